#!/usr/bin/env python3
"""Snapshot and restore with guest-kit programs: a snapshot written by one petrel
process, that process stopped, and a new one going on exactly where the guest was
(its counter, its console, its drive); snapshots of resumed and of restored VMs;
busy vCPUs; snapshots that cannot be written; the API; the state file under dtc;
and the restores petrel must refuse."""
import glob
import mmap
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
import zlib

from harness import PETREL, TIMEOUT, WriteGate, api, case, expect, kit, main, petrel, text

SECTOR = 512
DISK_SECTORS = 8192  # 4 MiB: the counters here never wrap around it
# counter.blk=1 (subprojects/petrel-kit/counter.c): tick N writes sector N with
# pattern N & 0xff, then prints "counter: N wrote N".
COUNTER = "counter.ms=20 counter.blk=1"
LINE = re.compile(r"counter: (\d+) wrote (\d+)")


def pattern(p, s):
    """Sector s of blkcheck's pattern p (counter.c and blkcheck.c)."""
    return bytes((p + s + (s >> 8) + k + (k >> 8)) & 0xff for k in range(SECTOR))


def make_disk(d, name="disk.img", sectors=DISK_SECTORS):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.truncate(sectors * SECTOR)
    return path


class Vm:
    """petrel run in the background. Its console (stdout) is read here, on this thread
    only, so that once the VM is paused and petrel holds no console output, reading
    the pipe empty gives exactly what the guest wrote so far: where a snapshot cut
    the console (settle()). stderr goes to a file."""

    def __init__(self, d, name, *args, prefix=(), stdin=False):
        self.sock = os.path.join(d, name + ".sock")
        self.err_path = os.path.join(d, name + ".err")
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*prefix, PETREL, "run", *args, "--api-sock", self.sock],
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=err)
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.out = b""
        self.eof = False

    def errors(self):
        with open(self.err_path, "rb") as f:
            return text(f.read())

    def output(self):
        return text(self.out)

    def _read(self):
        """What the pipe holds now; False once it is empty (or at EOF)."""
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            self.eof = True
            return False
        self.out += chunk
        return True

    def read_until(self, needle):
        """Reads the console until needle (a string, or a compiled pattern) shows; the
        guard timeout fails the case. Returns the console so far."""
        found = needle.search if hasattr(needle, "search") else (lambda s: needle in s)
        deadline = time.monotonic() + TIMEOUT
        while not found(self.output()):
            left = deadline - time.monotonic()
            expect(left > 0 and not self.eof, "no %r on the console (%s); got %r\nstderr: %s" % (
                needle, "it ended" if self.eof else "timed out", self.out[-400:], self.errors()))
            select.select([self.fd], [], [], left)
            while self._read():
                pass
        return self.output()

    def settle(self):
        """With the VM paused: every byte the guest wrote, read. petrel's console buffer
        empty (GET /vm) means all of it is in the pipe; reading continues meanwhile so a
        full pipe cannot hold it up."""
        for _ in range(10000):
            while self._read():
                pass
            status, j, body = self.api("GET", "/vm")
            expect(status == 200 and j["state"] == "Paused", "paused: %s" % body)
            if j["console"]["buffered"] == 0:
                while self._read():
                    pass
                return self.output()
        raise AssertionError("petrel's console buffer never emptied")

    def api(self, method, path, body=None, raw=None):
        return api(self.sock, method, path, body, raw)

    def state(self):
        status, j, body = self.api("GET", "/")
        expect(status == 200, "GET / answers: %s" % body)
        return j["state"]

    def wait(self):
        try:
            rc = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("petrel did not exit; stderr: " + self.errors())
        os.set_blocking(self.fd, True)
        while not self.eof:
            self._read()
        return rc

    def stop(self):
        status, _, body = self.api("PUT", "/actions", {"action_type": "Stop"})
        expect(status == 204, "Stop answers 204: %d %s" % (status, body))
        rc = self.wait()
        expect(rc == 0, "a stopped petrel exits 0, not %r: %s" % (rc, self.errors()))
        return self.output()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        if self.proc.stdin:
            self.proc.stdin.close()

    def type(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()


def snapshot(vm, snap, *extra):
    """petrel snapshot through the VM's socket into snap; the CompletedProcess."""
    return petrel("snapshot", "--api-sock", vm.sock, snap, *extra)


def snapshot_ok(vm, snap, *extra):
    p = snapshot(vm, snap, *extra)
    expect(p.returncode == 0, "petrel snapshot writes %s" % snap, p)
    expect("snapshot written to %s/state and %s/mem" % (snap, snap) in text(p.stdout),
           "it says where", p)
    expect(sorted(os.listdir(snap)) == ["mem", "state"], "DIR holds state and mem alone: %r" %
           os.listdir(snap))
    return p


def counted(stream, cap=DISK_SECTORS):
    """What counter.blk printed, in order, across the processes that ran it (stream):
    headers, then "counter: N wrote N % cap" for N = 0, 1, 2, ... with no number
    skipped or repeated; the last line may be cut short (the VM was stopped, or
    snapshotted, in the middle of it). Returns the last whole N (-1: none)."""
    lines = stream.split("\r\n")
    tail = lines.pop()
    n = -1
    header = True  # until the first counter line
    for i, line in enumerate(lines):
        m = LINE.fullmatch(line)
        if header and not m:
            expect(line.startswith("pci: ") or re.fullmatch(r"counter: cpus \d+", line) or
                   line == "counter: blk capacity %d" % cap,
                   "header line %d: %r" % (i, line))
            continue
        header = False
        expect(m, "line %d is a counter line: %r (stream ends %r)" % (i, line, stream[-300:]))
        got, sector = int(m.group(1)), int(m.group(2))
        expect(got == n + 1, "counter %d after %d: %s (line %d; stream around it %r)" % (
            got, n, "a repeat" if got <= n else "a skip", i,
            "\r\n".join(lines[max(0, i - 3):i + 3])))
        expect(sector == got % cap, "counter %d wrote sector %d" % (got, sector))
        n = got
    nxt = "counter: %d wrote %d\r\n" % (n + 1, (n + 1) % cap)
    expect(nxt.startswith(tail), "the last line %r is not the start of %r" % (tail, nxt))
    return n


def check_disk(path, last):
    """The drive holds counter.blk's sector for every N up to last; the one after may
    or may not have been written (a stop between the write and its line); nothing
    past it."""
    with open(path, "rb") as f:
        img = f.read()
    expect(len(img) == DISK_SECTORS * SECTOR, "the drive keeps its size")
    for n in range(last + 1):
        expect(img[n * SECTOR:(n + 1) * SECTOR] == pattern(n & 0xff, n),
               "sector %d holds counter %d's pattern" % (n, n))
    nxt = img[(last + 1) * SECTOR:(last + 2) * SECTOR]
    expect(nxt in (bytes(SECTOR), pattern((last + 1) & 0xff, last + 1)),
           "sector %d: zeros or counter %d's pattern" % (last + 1, last + 1))
    expect(img[(last + 2) * SECTOR:] == bytes(len(img) - (last + 2) * SECTOR),
           "nothing written past sector %d" % (last + 1))


def last_number(out):
    nums = LINE.findall(out)
    return int(nums[-1][0]) if nums else -1


def counter_vm(d, name, disk, *extra, cmdline=COUNTER):
    vm = Vm(d, name, "--kernel", kit("counter"), "--cmdline", cmdline, "--drive",
            "path=" + disk, *extra)
    vm.read_until("counter: 5 wrote 5\r\n")
    return vm


def restore(d, name, snap, *extra, stdin=False):
    return Vm(d, name, "--restore", snap, *extra, stdin=stdin)


def snap_and_stop(vm, snap):
    """petrel snapshot (the VM stays paused), the console as the snapshot cut it, then
    a stop: nothing more comes out of a paused VM. Returns the console."""
    snapshot_ok(vm, snap)
    expect(vm.state() == "Paused", "the VM stays paused after a snapshot")
    cut = vm.settle()
    out = vm.stop()
    expect(out == cut, "a paused VM prints nothing more: %r" % out[len(cut):])
    return cut


def goes_on(vm, before, more=8):
    """The restored vm counts on from exactly where before (the console up to the
    snapshot) ends; returns the console of both."""
    last = last_number(before)
    # The whole line: a stop right after "counter: N wrote" could cut it short, and the
    # caller then counts only to N - 1.
    vm.read_until(re.compile(r"counter: %d wrote \d+\r\n" % (last + more)))
    stream = before + vm.output()
    counted(stream)
    return stream


@case
def counter_with_a_busy_drive_goes_on_in_a_new_process():
    """A counter that writes its drive every tick (by a relative path, as a user types
    it), snapshotted, its process stopped, restored in a new one: the next number,
    no skip or repeat; the drive holds every sector, as the file and blkcheck read it."""
    with tempfile.TemporaryDirectory() as d:
        disk = make_disk(d)
        snap = os.path.join(d, "snap")
        vm = counter_vm(d, "orig", os.path.relpath(disk))
        try:
            cut = snap_and_stop(vm, snap)
        finally:
            vm.kill()
        last = counted(cut)
        expect(last >= 5, "counted before the snapshot")
        check_disk(disk, last)  # the snapshot waited for the guest's writes
        r = restore(d, "restored", snap)
        try:
            goes_on(r, cut)
            expect(r.state() == "Running", "a restored VM runs")
            final = counted(cut + r.stop())
        finally:
            r.kill()
        expect(final >= last + 8, "the restored guest counted on")
        check_disk(disk, final)
        # The guest's view: blkcheck reads back what the two processes wrote.
        n = min(final + 1, 64)
        p = petrel("run", "--kernel", kit("blkcheck"), "--debug-exit", "--drive", "path=" + disk,
                   "--cmdline", "console=ttyS0 blkcheck.read=0:%d" % n)
        want = zlib.crc32(b"".join(pattern(s & 0xff, s) for s in range(n)))
        expect(p.returncode == 0 and "blkcheck: 0 read 0+%d crc32 %08x\r\n" % (n, want) in
               text(p.stdout), "blkcheck reads the %d sectors back" % n, p)


@case
def nic_with_a_user_network_restores():
    """A counter with a NIC (--net user and a hostfwd port): snapshotted, stopped,
    restored. The NIC's state comes back (the counter goes on, the config keeps the
    --net), and the new process listens on the hostfwd port again: slirp starts
    afresh from the saved --net (docs/architecture.md: its connections are not kept)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    net = "user,hostfwd=tcp:127.0.0.1:%d-:22,mac=52:54:00:00:00:42" % port
    with tempfile.TemporaryDirectory() as d:
        disk = make_disk(d)
        snap = os.path.join(d, "snap")
        vm = counter_vm(d, "orig", disk, "--net", net)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
            cut = snap_and_stop(vm, snap)
        finally:
            vm.kill()
        dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", os.path.join(snap, "state")],
                             capture_output=True, text=True)
        expect('spec = "%s";' % net in dts.stdout, "the config keeps the --net", dts)
        expect("net0 {" in dts.stdout and '"petrel,virtio-net-v2"' in dts.stdout,
               "the NIC's node", dts)
        r = restore(d, "restored", snap)
        try:
            goes_on(r, cut)
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
            r.stop()
        finally:
            r.kill()


SYS_PWRITEV = 296  # x86_64: virtio-blk's writes (src/virtio/blk_io.c)


def wait_in_pwritev(pid):
    """Until a thread of pid sits in pwritev() (/proc/PID/task/*/syscall; root): the
    guest's write has reached the host and waits there. A condition polled, with the
    guard timeout."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        for path in glob.glob("/proc/%d/task/*/syscall" % pid):
            try:
                with open(path) as f:
                    if f.read().split(" ", 1)[0] == str(SYS_PWRITEV):
                        return
            except OSError:
                pass
        expect(time.monotonic() < deadline, "no petrel thread in pwritev()")
        time.sleep(0.01)


@case
def snapshot_waits_for_a_write_in_the_host():
    """The counter's write hangs in the host (WriteGate: the disk file's lock held) when
    two snapshots are asked: one waits for the write, with the VM paused, the API
    answering and no file under a final name; the other is refused at once (409). Once
    the host lets go the first completes, and the restored guest finds its write done:
    that number's line comes first, then the next ones."""
    with tempfile.TemporaryDirectory() as d:
        disk = make_disk(d)
        dirs = [os.path.join(d, "a"), os.path.join(d, "b")]
        for x in dirs:
            os.mkdir(x)
        vm = counter_vm(d, "orig", disk)
        gate = None
        answers = [None, None]
        try:
            gate = WriteGate(disk, DISK_SECTORS * SECTOR - mmap.PAGESIZE)
            wait_in_pwritev(vm.proc.pid)
            expect(vm.api("PATCH", "/vm", {"state": "Paused"})[0] == 204, "paused")
            done = threading.Condition()

            def ask(i):
                status, j, _ = vm.api("PUT", "/snapshot/create", {
                    "snapshot_path": dirs[i] + "/state", "mem_file_path": dirs[i] + "/mem"})
                with done:
                    answers[i] = (status, j)
                    done.notify_all()

            askers = [threading.Thread(target=ask, args=(i,), daemon=True) for i in (0, 1)]
            for t in askers:
                t.start()
            with done:
                expect(done.wait_for(lambda: any(answers), TIMEOUT), "an answer")
            refused_one = 0 if answers[0] else 1
            status, j = answers[refused_one]
            expect(status == 409 and "a snapshot is being written" in j["fault_message"],
                   "the second snapshot is refused: %r" % (answers,))
            expect(vm.state() == "Paused", "the API answers while the snapshot waits")
            expect(answers[1 - refused_one] is None, "the first waits for the write")
            for x in dirs:
                expect(not [f for f in os.listdir(x) if f in ("state", "mem")],
                       "nothing under a final name yet: %r" % os.listdir(x))
            gate.open()
            for t in askers:
                t.join(TIMEOUT)
            status, j = answers[1 - refused_one]
            expect(status == 204, "the snapshot completes once the write has: %r" % (j,))
            snap = dirs[1 - refused_one]
            expect(sorted(os.listdir(snap)) == ["mem", "state"], "written")
            cut = vm.settle()
            expect(vm.stop() == cut, "nothing more from a paused VM")
        finally:
            if gate:
                gate.open()
            vm.kill()
        last = counted(cut)
        expect(cut.endswith("counter: %d wrote %d\r\n" % (last, last)),
               "the guest was waiting for its write, not printing: %r" % cut[-60:])
        check_disk(disk, last + 1)  # the write that waited reached the file
        r = restore(d, "restored", snap)
        try:
            out = r.read_until("counter: %d wrote" % (last + 4))
            expect(out.startswith("counter: %d wrote %d\r\n" % (last + 1, last + 1)),
                   "the guest takes the completed write: %r" % out[:80])
            check_disk(disk, counted(cut + r.stop()))
        finally:
            r.kill()


@case
def serial_console_answers_after_restore():
    """echo on COM1: a byte before the snapshot, one after the restore, each answered."""
    with tempfile.TemporaryDirectory() as d:
        snap = os.path.join(d, "snap")
        vm = Vm(d, "orig", "--kernel", kit("echo"), stdin=True)
        try:
            vm.read_until("echo: ready\r\n")
            vm.type(b"a")
            vm.read_until("echo: 0x61\r\n")
            cut = snap_and_stop(vm, snap)
        finally:
            vm.kill()
        expect(cut.endswith("echo: 0x61\r\n"), "the console at the snapshot: %r" % cut)
        r = restore(d, "restored", snap, stdin=True)
        try:
            r.type(b"bz")
            r.read_until("echo: 0x7a\r\n")
            expect(r.output() == "echo: 0x62\r\necho: 0x7a\r\n",
                   "each byte answered once, in order: %r" % r.output())
            r.stop()
        finally:
            r.kill()


@case
def virtio_console_answers_after_restore():
    """vconsole: receive buffers the guest posted before the snapshot take input after
    the restore; 'exit' ends it with an ACPI poweroff."""
    with tempfile.TemporaryDirectory() as d:
        snap = os.path.join(d, "snap")
        vm = Vm(d, "orig", "--kernel", kit("vconsole"), "--console", "virtio", stdin=True)
        try:
            vm.read_until("hvc: ready\r\n")
            vm.type(b"before\r")
            vm.read_until("BEFORE\r\n")
            snap_and_stop(vm, snap)
        finally:
            vm.kill()
        r = restore(d, "restored", snap, stdin=True)
        try:
            r.type(b"after\r")
            r.read_until("AFTER\r\n")
            r.type(b"exit\r")
            r.read_until("hvc: bye\r\n")
            rc = r.wait()
        finally:
            r.kill()
        out = r.output()
        expect(rc == 0, "vconsole powers off: %r %s" % (rc, r.errors()))
        expect(out.startswith("AFTER\r\n"), "nothing before the echo: %r" % out)
        # 7 bytes before the snapshot, 11 after: the guest's count spans both processes.
        expect("vconsole: received 18 bytes in " in out, "every byte received once: %r" % out)


@case
def snapshot_resume_snapshot_again_both_restore():
    with tempfile.TemporaryDirectory() as d:
        disk = make_disk(d)
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        vm = counter_vm(d, "orig", disk)
        try:
            # A without --resume first, to read the console it cut; then petrel resume.
            snapshot_ok(vm, a)
            cut_a = vm.settle()
            p = petrel("resume", "--api-sock", vm.sock)
            expect(p.returncode == 0 and vm.state() == "Running", "resumed", p)
            vm.read_until("counter: %d wrote" % (last_number(cut_a) + 5))
            # B with --resume: it resumes by itself; then pause to read B's cut.
            p = snapshot(vm, b, "--resume")
            expect(p.returncode == 0 and "resumed" in text(p.stdout), "snapshot B and resume", p)
            expect(sorted(os.listdir(b)) == ["mem", "state"], "B's files")
            expect(vm.state() == "Running", "running after --resume")
            last_b_min = last_number(vm.output())
            vm.read_until("counter: %d wrote" % (last_b_min + 5))
            whole = vm.stop()
        finally:
            vm.kill()
        counted(whole)
        expect(whole.startswith(cut_a), "A's cut is where the original's console was")
        top = last_number(whole)
        for snap, cut_len in ((a, len(cut_a)), (b, None)):
            r = restore(d, "restored-" + os.path.basename(snap), snap)
            try:
                if cut_len is None:
                    # B's cut, from the restored console: it starts with the rest of the
                    # line the snapshot cut (nothing, when it cut between lines), then
                    # whole lines from N on.
                    first = r.read_until(re.compile(r"(^|\r\n)counter: \d+ wrote"))
                    m = re.search(r"(^|\r\n)counter: (\d+) wrote", first)
                    n, lead = int(m.group(2)), first[:m.start() + len(m.group(1))]
                    prev = "counter: %d wrote %d\r\n" % (n - 1, n - 1)
                    expect(prev.endswith(lead), "B restores at the end of a line or inside "
                           "one: %r, then counter %d" % (lead, n))
                    expect(n - 1 >= last_b_min, "B was taken once the counter had reached %d; "
                           "its restore goes on after %d" % (last_b_min, n - 1))
                    cut_len = whole.index(prev) + len(prev) - len(lead)
                goes_on(r, whole[:cut_len])
                top = max(top, counted(whole[:cut_len] + r.stop()))
            finally:
                r.kill()
        # Each N writes the same sector the same way, whichever process runs it.
        check_disk(disk, top)


@case
def restored_vm_snapshotted_and_restored_again():
    """A chain: the first snapshot's directory is gone before the second restore, so
    the second snapshot's memory file stands alone."""
    with tempfile.TemporaryDirectory() as d:
        disk = make_disk(d)
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        vm = counter_vm(d, "orig", disk)
        try:
            cut = snap_and_stop(vm, a)
        finally:
            vm.kill()
        r1 = restore(d, "r1", a)
        try:
            goes_on(r1, cut)
            cut = cut + snap_and_stop(r1, b)
        finally:
            r1.kill()
        counted(cut)
        shutil.rmtree(a)
        r2 = restore(d, "r2", b)
        try:
            goes_on(r2, cut)
            stream = cut + r2.stop()
        finally:
            r2.kill()
        check_disk(disk, counted(stream))


def busy_vcpus(cpus):
    """counter.smp=1: the APs spin without exits while the BSP counts and writes."""
    with tempfile.TemporaryDirectory() as d:
        disk = make_disk(d)
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        vm = counter_vm(d, "orig", disk, "--cpus", str(cpus),
                        cmdline=COUNTER + " counter.smp=1")
        try:
            expect(vm.output().count("counter: cpus %d\r\n" % cpus) == 1, "%d CPUs up" % cpus)
            cut = snap_and_stop(vm, a)
        finally:
            vm.kill()
        r = restore(d, "r1", a)
        try:
            goes_on(r, cut)
            _, j, _ = r.api("GET", "/vm")
            expect(j["vcpu_count"] == cpus, "the snapshot's vCPUs: %r" % j)
            # The restored busy vCPUs park for a pause, and for a snapshot of their own.
            for state in ("Paused", "Resumed"):
                status, _, body = r.api("PATCH", "/vm", {"state": state})
                expect(status == 204, "%s: %s" % (state, body))
            goes_on(r, cut, more=12)
            cut = cut + snap_and_stop(r, b)
        finally:
            r.kill()
        r = restore(d, "r2", b)
        try:
            goes_on(r, cut)
            stream = cut + r.stop()
        finally:
            r.kill()
        check_disk(disk, counted(stream))


@case
def one_busy_vcpu():
    busy_vcpus(2)


@case
def two_busy_vcpus():
    busy_vcpus(3)


# ---- snapshots that cannot be written ----

def in_namespace(d, mounts):
    """A command prefix that runs petrel in a mount namespace of its own, where each
    (directory, options) in mounts is a tmpfs: what petrel sees there, the test
    reaches through /proc/PID/root. Needs root (the tests run as root in CI and in
    the nested harness)."""
    script = " && ".join("mount -t tmpfs -o %s tmpfs %s" % (opts, path) for path, opts in mounts)
    return ("unshare", "-m", "--propagation", "private", "--", "sh", "-c",
            script + ' && exec "$0" "$@"')


def fails_cleanly(vm, snap, words, seen, *extra, there=()):
    """petrel snapshot into snap fails: status 1, the reason, no file under a final name
    (nor a temporary one) as petrel sees snap; the VM paused (or with --resume,
    running)."""
    p = snapshot(vm, snap, *extra)
    err = text(p.stderr)
    expect(p.returncode == 1, "a failed snapshot exits 1", p)
    expect(words in err and "(HTTP 400)" in err, "the reason: %r" % words, p)
    expect(not re.search(r"(?i)sanitizer|segfault|abort", vm.errors()), "no crash: " + vm.errors())
    left = sorted(f for f in os.listdir(seen) if f not in there)
    expect(not [f for f in left if f in ("state", "mem") or ".tmp-" in f],
           "nothing left in %s: %r" % (snap, left))
    if extra:
        expect(vm.state() == "Running", "--resume resumed it")
    else:
        expect("is still paused ('petrel resume' goes on)" in err, "it says the VM is paused", p)
        expect(vm.state() == "Paused", "still paused")
    return err


@case
def snapshot_into_an_unwritable_or_full_directory_fails_and_the_vm_runs_on():
    """A read-only filesystem; a full one (a 64 KiB tmpfs: the memory file does not fit);
    a state file on a full one (4 KiB) with the memory file elsewhere (through the API,
    which takes the two paths); a 'state' that is a directory. Each fails cleanly, the
    VM resumes, and a snapshot then works."""
    with tempfile.TemporaryDirectory() as d:
        disk = make_disk(d)
        ro, full, tiny, memdir, good = (os.path.join(d, n)
                                        for n in ("ro", "full", "tiny", "memdir", "good"))
        for path in (ro, full, tiny, memdir):
            os.mkdir(path)
        prefix = in_namespace(d, [(ro, "ro,size=1m"), (full, "size=64k"), (tiny, "size=4k")])
        vm = Vm(d, "orig", "--kernel", kit("counter"), "--cmdline", COUNTER, "--drive",
                "path=" + disk, prefix=prefix)
        try:
            vm.read_until("counter: 5 wrote 5\r\n")
            root = "/proc/%d/root" % vm.proc.pid
            fails_cleanly(vm, ro, "Read-only file system", root + ro)
            p = petrel("resume", "--api-sock", vm.sock)
            expect(p.returncode == 0 and vm.state() == "Running", "resumes", p)
            vm.read_until("counter: %d wrote" % (last_number(vm.output()) + 3))
            fails_cleanly(vm, full, "cannot write the memory file %s/mem.tmp-%d: No space left "
                          "on device" % (full, vm.proc.pid), root + full, "--resume")
            vm.read_until("counter: %d wrote" % (last_number(vm.output()) + 3))
            # The memory file is written whole, then the state file finds no room.
            expect(vm.api("PATCH", "/vm", {"state": "Paused"})[0] == 204, "paused")
            status, j, body = vm.api("PUT", "/snapshot/create", {
                "snapshot_path": tiny + "/state", "mem_file_path": memdir + "/mem"})
            expect(status == 400 and "cannot write %s/state.tmp-%d: No space left on device" % (
                tiny, vm.proc.pid) in j["fault_message"], "the state file's ENOSPC: %d %s (%s) "
                "%r %r %s" % (status, body, vm.errors(),
                              [(f, os.path.getsize(os.path.join(root + tiny, f)))
                               for f in os.listdir(root + tiny)], os.listdir(memdir),
                              [ln for ln in open("/proc/%d/mountinfo" % vm.proc.pid)
                               if "tiny" in ln]))
            expect(os.listdir(root + tiny) == [] and os.listdir(memdir) == [],
                   "neither file left: %r %r" % (os.listdir(root + tiny), os.listdir(memdir)))
            expect(vm.state() == "Paused", "still paused")
            bad = os.path.join(d, "bad")
            os.makedirs(os.path.join(bad, "state", "x"))
            fails_cleanly(vm, bad, "cannot replace", bad, there=("state",))
            expect(os.path.isdir(os.path.join(bad, "state", "x")), "the directory is untouched")
            # Then it runs on and a snapshot works.
            p = petrel("resume", "--api-sock", vm.sock)
            expect(p.returncode == 0, "resumes", p)
            vm.read_until("counter: %d wrote" % (last_number(vm.output()) + 3))
            cut = snap_and_stop(vm, good)
        finally:
            vm.kill()
        counted(cut)
        r = restore(d, "restored", good)
        try:
            goes_on(r, cut)
            check_disk(disk, counted(cut + r.stop()))
        finally:
            r.kill()


# ---- the API ----

@case
def api_snapshot_create_requests():
    with tempfile.TemporaryDirectory() as d:
        vm = Vm(d, "orig", "--kernel", kit("counter"), "--cmdline", "counter.ms=50")
        try:
            vm.read_until("counter: 2\r\n")
            state, mem = os.path.join(d, "state"), os.path.join(d, "mem")
            good = {"snapshot_path": state, "mem_file_path": mem}
            status, j, body = vm.api("PUT", "/snapshot/create", good)
            expect(status == 409 and "must be Paused" in j.get("fault_message", ""),
                   "running: 409 with the reason: %d %s" % (status, body))
            expect(vm.state() == "Running", "the VM still runs")
            expect(not os.path.exists(state) and not os.path.exists(mem), "no files")
            expect(vm.api("PATCH", "/vm", {"state": "Paused"})[0] == 204, "paused")
            bad = [
                ('{"snapshot_path": "%s"' % state, "malformed"),
                ("", "needs a JSON body"),
                ('["x"]', "JSON object"),
                ('{"snapshot_path": "%s"}' % state, "must be strings"),
                ('{"mem_file_path": "%s"}' % mem, "must be strings"),
                ('{"snapshot_path": 1, "mem_file_path": "%s"}' % mem, "must be a string"),
                ('{"snapshot_path": "%s", "mem_file_path": "%s", "x": 1}' % (state, mem),
                 "unknown field"),
                ('{"snapshot_path": "%s", "mem_file_path": "%s", "snapshot_type": "Diff"}' %
                 (state, mem), "\"snapshot_type\" must be \"Full\""),
                ('{"snapshot_path": "%s", "mem_file_path": "%s", "snapshot_type": 1}' %
                 (state, mem), "\"snapshot_type\" must be a string"),
                ('{"snapshot_path": "%s", "mem_file_path": "%s"}' % (state, state), "one path"),
                ('{"snapshot_path": "", "mem_file_path": "%s"}' % mem, "empty"),
            ]
            for raw, words in bad:
                status, j, body = vm.api("PUT", "/snapshot/create", raw=raw)
                expect(status == 400, "%r: 400, not %d %s" % (raw[:80], status, body))
                expect(j is not None and words in j.get("fault_message", ""),
                       "%r: the fault names %r: %s" % (raw[:80], words, body))
                expect(vm.state() == "Paused", "still paused")
            expect(not [f for f in os.listdir(d) if f.startswith(("state", "mem"))],
                   "no file written: %r" % os.listdir(d))
            status, _, body = vm.api("PUT", "/snapshot/create",
                                     dict(good, snapshot_type="Full"))
            expect(status == 204, "Full, paused: 204: %s" % body)
            expect(os.path.getsize(mem) == 256 << 20 and os.path.getsize(state) > 0, "written")
            expect(vm.state() == "Paused", "and paused")
            vm.stop()
        finally:
            vm.kill()


# ---- the state file under dtc ----

@case
def dtc_shows_every_vcpu_and_device():
    dtc = shutil.which("dtc")
    expect(dtc, "dtc is installed (scripts/setup: device-tree-compiler)")
    with tempfile.TemporaryDirectory() as d:
        a, b = make_disk(d, "a.img"), make_disk(d, "b.img", 2048)
        snap = os.path.join(d, "snap")
        vm = Vm(d, "orig", "--kernel", kit("vconsole"), "--console", "virtio", "--rng",
                "--debug-exit", "--cpus", "2", "--drive", "path=" + a,
                "--drive", "path=%s,ro" % b)
        try:
            vm.read_until("vconsole: virtio-console")
            snapshot_ok(vm, snap)
            vm.stop()
        finally:
            vm.kill()
        p = subprocess.run([dtc, "-I", "dtb", "-O", "dts", os.path.join(snap, "state")],
                           capture_output=True, timeout=TIMEOUT)
        dts = text(p.stdout)
        expect(p.returncode == 0 and dts.startswith("/dts-v1/;"), "dtc reads the state file", p)
        expect('compatible = "petrel,snapshot-v1";' in dts, "the format", p)
        expect('mem-file = "%s/mem";' % snap in dts, "the memory file's path")
        expect('path = "%s";' % a in dts and 'path = "%s";' % b in dts, "the drives' paths")
        nodes = re.findall(r"^\t\t(\S+) \{$", dts, re.M)  # the root's grandchildren
        for vcpu in ("vcpu0", "vcpu1"):
            body = re.search(r"^\t\t%s \{\n(.*?)^\t\t\};" % vcpu, dts, re.M | re.S)
            expect(body, "node %s: %r" % (vcpu, nodes))
            expect(re.search(r"^\t\t\trip = <0x[0-9a-f]+ 0x[0-9a-f]+>;$", body.group(1), re.M),
                   "%s's rip" % vcpu)
            for reg in ("rsp", "cr3", "efer", "apic-base"):
                expect(re.search(r"^\t\t\t%s = " % reg, body.group(1), re.M),
                       "%s's %s" % (vcpu, reg))
        devices = re.search(r"^\tdevices \{\n(.*?)^\t\};", dts, re.M | re.S)
        expect(devices, "a devices node")
        have = re.findall(r"^\t\t(\S+) \{$", devices.group(1), re.M)
        expect(have == ["com1", "i8042", "pm", "rtc", "pci", "rng", "vda", "vdb", "vcons"],
               "a node per device with state, in the machine's order: %r" % have)
        for kvm in ("pic-master", "pic-slave", "ioapic", "pit"):
            expect(kvm in nodes, "the VM's %s: %r" % (kvm, nodes))


# ---- restores petrel refuses ----

def refused(snap, words, *extra, status=1):
    p = petrel("run", "--restore", snap, *extra)
    err = text(p.stderr)
    expect(p.returncode == status, "refused with status %d" % status, p)
    expect(words in err, "the message says %r" % words, p)
    lines = [l for l in err.splitlines() if l and not l.startswith("Try 'petrel run --help'")]
    expect(len(lines) == 1, "one message: %r" % err)
    expect(not re.search(r"(?i)sanitizer|segfault|abort|assert", err), "no crash", p)
    expect(text(p.stdout) == "", "the guest never ran", p)
    return err


@case
def restore_refuses_broken_snapshots():
    with tempfile.TemporaryDirectory() as d:
        disk = make_disk(d)
        snap = os.path.join(d, "snap")
        vm = counter_vm(d, "orig", disk)
        try:
            snapshot_ok(vm, snap)
            # The original still holds the drive: a restore now is refused, not a second writer.
            refused(snap, "is in use")
            vm.stop()
        finally:
            vm.kill()

        def copy(name):
            to = os.path.join(d, name)
            shutil.copytree(snap, to)
            return to

        state = os.path.join(snap, "state")
        size = os.path.getsize(state)
        t = copy("truncated")
        with open(os.path.join(t, "state"), "r+b") as f:
            f.truncate(size // 2)
        refused(t, "truncated or corrupt")
        refused(os.path.join(t, "state"), "truncated or corrupt")
        with open(os.path.join(t, "state"), "r+b") as f:
            f.truncate(16)
        refused(t, "not a petrel state file")
        # The state file names its memory file: the snapshot's own, resized.
        mem = os.path.join(snap, "mem")
        mem_size = os.path.getsize(mem)
        for delta in (-4096, 4096):
            os.truncate(mem, mem_size + delta)
            err = refused(snap, "the memory file %s has %d bytes" % (mem, mem_size + delta))
            expect("the state says %d" % mem_size in err, "and what it should have: " + err)
        os.truncate(mem, mem_size)
        os.rename(mem, mem + ".away")
        refused(snap, "cannot open the memory file %s" % mem)
        os.rename(mem + ".away", mem)
        # The drive changed size.
        os.truncate(disk, (DISK_SECTORS + 8) * SECTOR)
        refused(snap, "the disk changed size")
        os.truncate(disk, DISK_SECTORS * SECTOR)
        # Options that shape the machine do not go with --restore.
        refused(snap, "--cpus does not go with --restore", "--cpus", "2", status=2)
        refused(snap, "--drive does not go with --restore", "--drive", "path=" + disk, status=2)
        refused(snap, "--kernel does not go with --restore", "--kernel", kit("counter"), status=2)
        # After all that the snapshot itself is whole and restores.
        r = restore(d, "restored", snap)
        try:
            r.read_until(" wrote ")
            r.stop()
        finally:
            r.kill()


if __name__ == "__main__":
    main()
