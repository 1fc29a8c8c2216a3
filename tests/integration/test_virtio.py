#!/usr/bin/env python3
"""virtio-pci as a driver sees it: the guest kit's PCI enumeration and virtio 1.x driver
(subprojects/petrel-kit/lib/pci.c, virtio.c) against petrel's transport and devices,
interrupt-driven through MSI-X."""
import mmap
import os
import re
import tempfile
import time
import zlib

from harness import TIMEOUT, Running, WriteGate, api, case, expect, kit, main, petrel, text

HOST_BRIDGE = "pci: 00:00.0 8086:0d57 class 060000 rev 00"
RNG_FUNC = re.compile(r"pci: 00:([0-9a-f]{2})\.0 1af4:1044 class ff0000 rev 01")


def rngcheck(*options, rng=True):
    args = ["run", "--kernel", kit("rngcheck"), "--debug-exit",
            "--cmdline", "console=ttyS0 " + " ".join(options)]
    if rng:
        args.append("--rng")
    return petrel(*args)


def passed(p, reads, size):
    out = text(p.stdout)
    expect(p.returncode == 0, "rngcheck ends with ACPI poweroff (status 0)", p)
    expect("FAIL" not in out, "no check failed", p)
    expect(out.startswith(HOST_BRIDGE) or ("\n" + HOST_BRIDGE) in out, "the host bridge", p)
    expect(RNG_FUNC.search(out), "virtio-rng is a PCI function (1af4:1044, class ff0000)", p)
    m = re.search(r"rngcheck: PASS reads (\d+) bytes (\d+) interrupts (\d+)\r?\n", out)
    expect(m is not None, "a PASS line", p)
    n, total, irqs = (int(g) for g in m.groups())
    expect(n == reads and total == reads * size,
           "%d reads of %d bytes each came back whole" % (reads, size), p)
    # rngcheck waits for each request's own interrupt: fewer than one per read cannot pass.
    expect(irqs >= reads, "an MSI-X interrupt per request (%d for %d)" % (irqs, reads), p)
    expect(len(re.findall(r"rngcheck: read \d+ %d bytes [0-9a-f]{16}\r?\n" % size, out)) == reads,
           "one line per read", p)
    expect("rngcheck: poweroff" in out, "then ACPI poweroff", p)
    return out


@case
def rng_reads_random_bytes_through_msix():
    out = passed(rngcheck(), 4, 64)
    # VERSION_1 is all the kit accepts; petrel offers INDIRECT_DESC and EVENT_IDX too.
    m = re.search(r"features 0x([0-9a-f]+) accepted 0x([0-9a-f]+) queue 0 size 16", out)
    expect(m is not None, "the negotiation line: " + out)
    offered, accepted = int(m.group(1), 16), int(m.group(2), 16)
    expect(offered & (1 << 32) and offered & (1 << 28) and offered & (1 << 29),
           "petrel offers VERSION_1, INDIRECT_DESC, EVENT_IDX: 0x%x" % offered)
    expect(accepted == 1 << 32, "the kit accepts VERSION_1 alone: 0x%x" % accepted)


@case
def rng_fills_a_whole_queue_of_large_reads():
    # 16 requests (the kit's queue size), 4 KiB each: the ring indexes go round once.
    passed(rngcheck("rngcheck.reads=16", "rngcheck.size=4096"), 16, 4096)


@case
def rng_chains_in_the_ring_and_in_indirect_tables_with_event_idx():
    # Each 100-byte read over 7 chained descriptors, then over 8 in an indirect
    # table with EVENT_IDX: the device walks the chains and still interrupts per request.
    passed(rngcheck("rngcheck.size=100", "rngcheck.segs=7"), 4, 100)
    out = passed(rngcheck("rngcheck.reads=16", "rngcheck.size=100", "rngcheck.segs=8",
                          "rngcheck.indirect=1", "rngcheck.event_idx=1"), 16, 100)
    expect("accepted 0x130000000 queue 0" in out, "INDIRECT_DESC and EVENT_IDX accepted: " + out)


@case
def without_rng_the_guest_finds_no_device():
    p = rngcheck(rng=False)
    out = text(p.stdout)
    expect(p.returncode == 3, "rngcheck exits 3 when there is no virtio-rng", p)
    expect("rngcheck: no virtio-rng (1af4:1044)" in out, "it says so", p)
    expect(re.findall(r"^pci: [^\r\n]*", out, re.M) == [HOST_BRIDGE],
           "bus 0 holds the host bridge alone", p)


# ---- virtio-blk: subprojects/petrel-kit/blkcheck.c ----

SECTOR = 512
DISK = 2048 * SECTOR


def pattern(p, s):
    """Sector s of blkcheck's pattern p (blkcheck.c)."""
    return bytes((p + s + (s >> 8) + k + (k >> 8)) & 0xff for k in range(SECTOR))


def disk(d, name, content=None):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(content if content is not None else bytes(DISK))
    return path


def blkcheck(drives, *options):
    args = ["run", "--kernel", kit("blkcheck"), "--debug-exit",
            "--cmdline", "console=ttyS0 " + " ".join(options)]
    for spec in drives:
        args += ["--drive", spec]
    return petrel(*args)


def blk_passed(p, drives):
    out = text(p.stdout)
    expect(p.returncode == 0 and "FAIL" not in out, "blkcheck passes and powers off", p)
    m = re.search(r"blkcheck: PASS drives (\d+) requests (\d+) interrupts (\d+)\r?\n", out)
    expect(m is not None and int(m.group(1)) == drives, "%d drives checked" % drives, p)
    expect(int(m.group(3)) >= int(m.group(2)), "an MSI-X interrupt per request", p)
    return out


def drive_line(out, i):
    m = re.search(r"blkcheck: %d 00:[0-9a-f]{2}\.0 capacity (\d+) blk_size (\d+) "
                  r"features 0x([0-9a-f]+) (ro|rw) id \"([^\"]*)\"" % i, out)
    expect(m is not None, "drive %d's line: %s" % (i, out))
    return int(m.group(1)), int(m.group(2)), int(m.group(3), 16), m.group(4), m.group(5)


@case
def blk_writes_reach_the_host_file_after_flush():
    with tempfile.TemporaryDirectory() as d:
        path = disk(d, "a.img")
        p = blkcheck(["path=" + path], "blkcheck.write=0:0xa5,100:7:4")
        out = blk_passed(p, 1)
        capacity, blk_size, features, mode, _ = drive_line(out, 0)
        expect(capacity == DISK // SECTOR and blk_size == SECTOR and mode == "rw",
               "capacity, block size, read-write: " + out)
        expect(features & (1 << 9), "FLUSH negotiated: 0x%x" % features)
        expect("blkcheck: 0 write 0+1 pattern 0xa5 ok" in out and
               "blkcheck: 0 write 100+4 pattern 0x07 ok" in out and "blkcheck: 0 flush ok" in out,
               "the guest read its writes back and flushed", p)
        with open(path, "rb") as f:
            img = f.read()
        want = bytearray(DISK)
        want[0:SECTOR] = pattern(0xa5, 0)
        for s in range(100, 104):
            want[s * SECTOR:(s + 1) * SECTOR] = pattern(7, s)
        expect(len(img) == DISK, "the file keeps its size")
        expect(img == bytes(want), "the file holds exactly the sectors written")


@case
def blk_reads_what_the_host_wrote():
    with tempfile.TemporaryDirectory() as d:
        content = bytearray(DISK)
        content[10 * SECTOR:18 * SECTOR] = os.urandom(8 * SECTOR)
        content[-SECTOR:] = os.urandom(SECTOR)
        path = disk(d, "b.img", bytes(content))
        p = blkcheck(["path=" + path], "blkcheck.read=10:8,2047,9")
        out = blk_passed(p, 1)
        for start, n in ((10, 8), (2047, 1), (9, 1)):
            crc = zlib.crc32(content[start * SECTOR:(start + n) * SECTOR])
            expect("blkcheck: 0 read %d+%d crc32 %08x" % (start, n, crc) in out,
                   "sectors %d+%d read back exactly" % (start, n), p)
        expect("blkcheck: 0 read past the end refused" in out, "a read at the capacity fails", p)


@case
def blk_read_only_drive_refuses_writes_and_the_guest_goes_on():
    with tempfile.TemporaryDirectory() as d:
        path = disk(d, "ro.img")
        p = blkcheck(["path=%s,ro" % path], "blkcheck.write=5:0x11", "blkcheck.read=5")
        out = blk_passed(p, 1)
        _, _, features, mode, _ = drive_line(out, 0)
        expect(mode == "ro" and features & (1 << 5), "VIRTIO_BLK_F_RO: 0x%x" % features)
        expect("blkcheck: 0 write 5+1 refused (read-only)" in out, "the write got IOERR", p)
        expect("blkcheck: 0 read 5+1 crc32 %08x" % zlib.crc32(bytes(SECTOR)) in out,
               "and the sector still reads as zeros", p)
        with open(path, "rb") as f:
            expect(f.read() == bytes(DISK), "the file is untouched")


@case
def blk_two_drives_at_once():
    with tempfile.TemporaryDirectory() as d:
        a, b = disk(d, "a.img"), disk(d, "b.img")
        p = blkcheck(["path=%s,id=alpha" % a, "path=%s,ro,id=beta" % b],
                     "blkcheck.write=1:0x33:2")
        out = blk_passed(p, 2)
        expect(drive_line(out, 0)[3:] == ("rw", "alpha") and drive_line(out, 1)[3:] == ("ro", "beta"),
               "the drives in command-line order with their ids: " + out)
        expect("blkcheck: 0 write 1+2 pattern 0x33 ok" in out and
               "blkcheck: 1 write 1+2 refused (read-only)" in out, "each drive as it should", p)
        with open(a, "rb") as f:
            img = f.read()
        expect(img[SECTOR:3 * SECTOR] == pattern(0x33, 1) + pattern(0x33, 2) and
               img[:SECTOR] == bytes(SECTOR) and img[3 * SECTOR:] == bytes(DISK - 3 * SECTOR),
               "the first file holds the write")
        with open(b, "rb") as f:
            expect(f.read() == bytes(DISK), "the read-only file is untouched")


@case
def without_drives_the_guest_finds_no_virtio_blk():
    p = blkcheck([])
    expect(p.returncode == 3 and "blkcheck: no virtio-blk (1af4:1042)" in text(p.stdout),
           "blkcheck exits 3 without a drive", p)


# ---- a reset while the host still runs a request ----

def reset_busy(path, sock, *options):
    """blkcheck resetting drive 0 while its write to sector 100 waits behind a WriteGate.
    The gate shuts once petrel has opened the drive (opening it fallocate()s, which the
    gate would hold up too); then sector 101 tells the guest, through a shared mapping
    (a store to the page cache takes no inode lock). Returns (Running, WriteGate)."""
    r = Running("run", "--kernel", kit("blkcheck"), "--debug-exit", "--cpus", "2",
                "--api-sock", sock, "--drive", "path=" + path, "--cmdline",
                "console=ttyS0 blkcheck.reset_busy=100 blkcheck.timeout=60000 " +
                " ".join(options))
    try:
        expect(r.wait_output("blkcheck: 0 waiting for the host"),
               "blkcheck waits for the gate:\n" + r.output() + r.errors())
        gate = WriteGate(path, DISK - mmap.PAGESIZE)
    except BaseException:
        r.proc.kill()
        r.wait()
        raise
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), DISK) as m:
        m[101 * SECTOR:101 * SECTOR + 8] = b"GATE-SET"
    return r, gate


@case
def blk_reset_waits_for_the_host_not_the_loop_or_a_vcpu():
    """A driver reset while the drive's write hangs in the host: the status write returns
    and the status reads non-zero (the reset is pending), the guest's notifies (from its
    second CPU, every millisecond) are ignored, and the API answers, pause and resume
    included, while the write still hangs; when the host lets go, the reset completes,
    the guest starts the drive over and uses it."""
    with tempfile.TemporaryDirectory() as d:
        path, sock = disk(d, "busy.img"), os.path.join(d, "api.sock")
        r, gate = reset_busy(path, sock, "blkcheck.write=7:0x42")
        try:
            expect(r.wait_output("blkcheck: 0 reset pending"),
                   "the guest's status write returned with the write still in the host:\n" +
                   r.output() + r.errors())
            status, j, body = api(sock, "GET", "/vm")
            expect(status == 200 and j["state"] == "Running", "GET /vm answers: %s" % body)
            for action in ("pause", "resume"):
                p = petrel(action, "--api-sock", sock)
                expect(p.returncode == 0, "petrel %s answers" % action, p)
            expect("reset done" not in r.output(), "the reset waited for the host: " + r.output())
            gate.open()
            rc = r.wait()
        finally:
            gate.open()
            if r.proc.poll() is None:
                r.proc.kill()
                r.wait()
        out = r.output()
        expect(rc == 0 and "FAIL" not in out, "blkcheck passes and powers off (%d):\n%s%s" %
               (rc, out, r.errors()))
        expect(re.search(r"blkcheck: 0 reset pending status 0x0f cpus 2\r?\n", out),
               "pending with the old status, two CPUs: " + out)
        m = re.search(r"blkcheck: 0 reset done kicks (\d+)\r?\n", out)
        expect(m and int(m.group(1)) > 0, "the second CPU rang the notify meanwhile: " + out)
        expect("blkcheck: 0 write 7+1 pattern 0x42 ok" in out and "blkcheck: PASS drives 1" in out,
               "the drive works after the reset: " + out)
        with open(path, "rb") as f:
            img = f.read()
        # The held write ran once the host let go (its completion was dropped).
        expect(img[100 * SECTOR:101 * SECTOR] == pattern(0x5c, 100), "sector 100 was written")


@case
def blk_stop_while_a_reset_waits_for_the_host():
    """The same pending reset, then a stop: answered at once; petrel exits once the
    drive's write has left the host (VM teardown joins the drive's workers)."""
    with tempfile.TemporaryDirectory() as d:
        path, sock = disk(d, "busy.img"), os.path.join(d, "api.sock")
        r, gate = reset_busy(path, sock)
        try:
            expect(r.wait_output("blkcheck: 0 reset pending"), "pending:\n" + r.output())
            status, _, body = api(sock, "PUT", "/actions", {"action_type": "Stop"})
            expect(status == 204, "Stop answers 204 with the write still in the host: " + body)
            gate.open()
            rc = r.wait()
        finally:
            gate.open()
            if r.proc.poll() is None:
                r.proc.kill()
                r.wait()
        expect(rc == 0, "a stopped petrel exits 0 (%d): %s" % (rc, r.errors()))
        expect("reset done" not in r.output(), "the guest was stopped while it waited")


def proc_stat(pid):
    """(state letter, system call in progress or None) of task pid, from /proc."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open("/proc/%d/syscall" % pid) as f:
            call = f.read().split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None, None
    return state, int(call) if call.lstrip("-").isdigit() else None


SYS_FUTEX, SYS_PPOLL = 202, 271


def exiting_with_the_drive_waiting(pid):
    """Whether petrel (pid) has left vm_run() for good and either waits for a drive or has
    called exit_group(): its exit holder (a child of its own, CLONE_VM) is up and waits in
    ppoll(), which it enters only once petrel went on past exit_holder_start(), and petrel's
    main thread sleeps in a futex (a drive's requests) or is a zombie (exit_group(), its
    other threads still inside the host's writes)."""
    main_state, main_call = proc_stat(pid)
    if main_state == "Z":
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == pid:
            continue
        try:
            with open("/proc/%s/status" % entry) as f:
                ppid = re.search(r"^PPid:\s+(\d+)", f.read(), re.M)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if ppid and int(ppid.group(1)) == pid:
            _, call = proc_stat(int(entry))
            if call == SYS_PPOLL and main_state == "S" and main_call == SYS_FUTEX:
                return True
    return False


@case
def blk_writes_in_flight_when_the_guest_exits_reach_the_file():
    """The guest publishes more one-sector writes than petrel has disk workers, while the
    host holds every write to the file (WriteGate), and exits at once (debug-exit): some
    requests are inside pwritev(), the rest still queued in petrel. The gate opens only
    once petrel is past its run (its exit holder is up) and waits for the drive, or has
    called exit_group(): every write reaches the file all the same, and petrel exits with
    the guest's status. Fails with an exit that leaves queued requests to exit_group()."""
    with tempfile.TemporaryDirectory() as d:
        path = disk(d, "exit.img")
        r = Running("run", "--kernel", kit("blkcheck"), "--debug-exit", "--drive",
                    "path=" + path, "--cmdline",
                    "console=ttyS0 blkcheck.exit_in_flight=200 blkcheck.timeout=60000")
        gate = None
        try:
            expect(r.wait_output("blkcheck: 0 waiting for the host"),
                   "blkcheck waits for the gate:\n" + r.output() + r.errors())
            gate = WriteGate(path, DISK - mmap.PAGESIZE)
            with open(path, "r+b") as f, mmap.mmap(f.fileno(), DISK) as m:
                m[201 * SECTOR:201 * SECTOR + 8] = b"GATE-SET"
            m = r.wait_output("writes in flight")
            expect(m, "the guest published its writes:\n" + r.output() + r.errors())
            n = int(re.search(r"exit with (\d+) writes in flight", r.output()).group(1))
            expect(n > 4, "more writes than petrel's 4 disk workers: %d" % n)
            deadline = time.monotonic() + TIMEOUT
            while not exiting_with_the_drive_waiting(r.proc.pid):
                expect(r.proc.poll() is None, "petrel waits for the held writes before it "
                       "ends (%s):\n%s" % (r.proc.returncode, r.errors()))
                expect(time.monotonic() < deadline, "petrel reached its exit")
                time.sleep(0.01)  # polling /proc for a state, not a wait in its place
            gate.open()
            rc = r.wait()
        finally:
            if gate:
                gate.open()
            if r.proc.poll() is None:
                r.proc.kill()
                r.wait()
        expect(rc == 0, "petrel exits with the guest's status 0 (%d): %s" % (rc, r.errors()))
        with open(path, "rb") as f:
            img = f.read()
        for s in [200] + list(range(202, 201 + n)):
            expect(img[s * SECTOR:(s + 1) * SECTOR] == pattern(0x3c, s),
                   "sector %d, written by the guest before it exited, is on the file" % s)


# ---- a hostile driver: subprojects/petrel-kit/hostile.c ----

# How petrel answers each malformed request (src/virtio/virtqueue.c, virtio_blk.c,
# virtio_net.c): a chain it cannot walk, or one with nowhere to put a status byte, breaks the
# queue (DEVICE_NEEDS_RESET); a chain that walks but asks for something wrong gets a status.
# virtio-net (net-*, with --net user): a chain no conforming driver builds (virtio 1.2
# 5.1.6: a transmit chain shorter than the header or with a device-writable buffer; a receive
# chain with a device-readable buffer or no room for the header, with or without MRG_RXBUF)
# breaks the queue, and so do rings over each other, at queue_enable (net-rings-overlap); a transmit chain that walks but holds no frame (a runt, or one larger
# than NET_MAX_FRAME) is used with length 0 and counted as dropped, as on a wire. Each net-rx-*
# chain is broken by the frame that comes for it (slirp's answer to an ARP request), which is
# dropped and counted too.
HOSTILE = {
    "desc-outside-ram": "needs reset", "desc-mmio": "needs reset",
    "desc-len-wrap": "needs reset", "chain-loop": "needs reset",
    "chain-too-long": "needs reset", "next-out-of-range": "needs reset",
    "indirect-outside-ram": "needs reset", "indirect-bad-len": "needs reset",
    "indirect-nested": "needs reset", "head-out-of-range": "needs reset",
    "avail-idx-jump": "needs reset", "data-over-ring": "needs reset",
    "header-short": "IOERR", "status-readable": "needs reset",
    "readable-after-write": "needs reset", "in-readable-data": "IOERR",
    "data-not-sectors": "IOERR", "out-beyond-capacity": "IOERR", "in-at-capacity": "IOERR",
    "sector-overflow": "IOERR", "sector-max": "IOERR", "flush-with-data": "IOERR",
    "unknown-type": "UNSUPP", "ro-write": "IOERR",
    "rng-desc-outside-ram": "needs reset", "rng-chain-loop": "needs reset",
    "rng-head-out-of-range": "needs reset", "rng-avail-idx-jump": "needs reset",
    "rng-data-over-ring": "needs reset",
    "net-tx-desc-outside-ram": "needs reset", "net-tx-chain-loop": "needs reset",
    "net-tx-head-out-of-range": "needs reset", "net-tx-avail-idx-jump": "needs reset",
    "net-tx-data-over-ring": "needs reset", "net-tx-header-short": "needs reset",
    "net-tx-writable": "needs reset", "net-tx-runt": "dropped", "net-tx-too-big": "dropped",
    "net-rings-overlap": "needs reset",
    "net-rx-desc-outside-ram": "needs reset", "net-rx-chain-loop": "needs reset",
    "net-rx-head-out-of-range": "needs reset", "net-rx-avail-idx-jump": "needs reset",
    "net-rx-data-over-ring": "needs reset", "net-rx-readable": "needs reset",
    "net-rx-header-short": "needs reset", "net-rx-mrg-header-short": "needs reset",
}
# Frames --stats counts as dropped: the two net-tx ones answered "dropped", and the frame
# that broke each of the eight net-rx-* queues (slirp sends nothing unasked: no IPv6).
HOSTILE_NET_DROPPED = 10


@case
def hostile_driver_gets_errors_and_petrel_lives_on():
    with tempfile.TemporaryDirectory() as d:
        rw, ro = disk(d, "rw.img"), disk(d, "ro.img", os.urandom(DISK))
        with open(ro, "rb") as f:
            ro_before = f.read()
        p = petrel("run", "--kernel", kit("hostile"), "--debug-exit", "--rng", "--net", "user",
                   "--stats", "--cmdline", "console=ttyS0", "--drive", "path=%s,id=rw" % rw,
                   "--drive", "path=%s,ro,id=ro" % ro)
        out, err = text(p.stdout), text(p.stderr)
        expect(p.returncode == 0, "hostile powers off and petrel exits 0", p)
        got = dict(re.findall(r"^hostile: (\S+) ok \(([^)]*)\)\r?$", out, re.M))
        expect(got == HOSTILE, "every case refused as designed:\n  got  %r\n  want %r" %
               (got, HOSTILE), p)
        expect("FAIL" not in out and "skipped (" not in out, "no case failed or was skipped", p)
        expect(re.search(r"hostile: PASS cases 47 needs-reset 35 ioerr 9 unsupp 1 dropped 2 "
                         r"skipped 0\r?\nhostile: poweroff", out), "the summary", p)
        dropped = re.findall(r"^petrel: stats: network frames dropped (\d+)$", err, re.M)
        expect(dropped == [str(HOSTILE_NET_DROPPED)],
               "%d frames counted as dropped: %r" % (HOSTILE_NET_DROPPED, dropped), p)
        # Logged once per device, not once per request: the first broken queue of each
        # device and the first bad request of the drive.
        resets = re.findall(r"^petrel: (.*) the device needs a reset$", err, re.M)
        expect(len(resets) == 3, "one 'needs a reset' line per device (blk, rng, net)", p)
        expect(len(re.findall(r"further bad requests are not logged", err)) == 1,
               "one bad-request line for the read-write drive", p)
        expect(not re.search(r"(?i)sanitizer|segfault|abort|assert", err), "no crash", p)
        # The good reads after each reset checked sectors 0-7; the files say the rest.
        with open(rw, "rb") as f:
            img = f.read()
        want = bytes((i * 7 + (i >> 9) + 1) & 0xff for i in range(8 * SECTOR))
        expect(img[:8 * SECTOR] == want, "the read-write file holds the reference sectors")
        expect(img[8 * SECTOR:] == bytes(DISK - 8 * SECTOR),
               "and nothing else: no refused write reached it")
        with open(ro, "rb") as f:
            expect(f.read() == ro_before, "the read-only file is untouched")


if __name__ == "__main__":
    main()
