#!/usr/bin/env python3
"""Booting guest-kit programs: output, exit statuses, vCPUs, stop by signal."""
import fcntl
import hashlib
import os
import signal
import struct
import tempfile

from harness import Running, case, expect, kit, kit_vmlinux, main, petrel, text

HELLO = "hello from the petrel guest kit"


@case
def hello_exits_zero_through_debug_exit():
    p = petrel("run", "--kernel", kit("hello"), "--debug-exit")
    out = text(p.stdout)
    expect(p.returncode == 0, "hello should exit 0", p)
    expect(HELLO + "\n" in out.replace("\r\n", "\n"), "the serial line is complete", p)
    expect(HELLO + " (debugcon)\n" in out, "debugcon output joins the console", p)
    expect(text(p.stderr) == "", "nothing on stderr", p)


@case
def debugcon_to_a_file():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "debugcon.txt")
        p = petrel("run", "--kernel", kit("hello"), "--debug-exit", "--debugcon", path)
        expect(p.returncode == 0, "hello should exit 0", p)
        with open(path) as f:
            expect(f.read() == HELLO + " (debugcon)\n", "the file holds the debugcon line", p)
        expect("(debugcon)" not in text(p.stdout), "debugcon output is not on the console", p)


@case
def bzimage_ending_inside_its_last_paragraph_boots():
    # syssize rounded up over a file that ends short of its last 16-byte paragraph, as a
    # tool that does not pad writes it: petrel loads what the file holds, as QEMU and
    # kvmtool do, and zeroes the rest of the paragraph.
    image = kit("hello-unpadded")
    with open(image, "rb") as f:
        data = f.read()
    pm_size = len(data) - (data[0x1f1] + 1) * 512
    short = struct.unpack_from("<I", data, 0x1f4)[0] * 16 - pm_size
    expect(1 <= short <= 15, "the image ends inside its last paragraph (%d bytes short)" % short)
    p = petrel("run", "--kernel", image, "--debug-exit")
    expect(p.returncode == 0, "hello-unpadded should exit 0", p)
    expect(HELLO + " (debugcon)\n" in text(p.stdout), "hello printed", p)
    # Short by a whole paragraph, the file was cut: refused.
    with tempfile.NamedTemporaryFile() as f:
        f.write(data[:len(data) - (16 - short)])
        f.flush()
        p = petrel("run", "--kernel", f.name, "--debug-exit")
    expect(p.returncode == 1 and "truncated" in text(p.stderr),
           "a file 16 bytes short of syssize is refused", p)


@case
def two_vcpus_with_aps_never_started_stop_cleanly():
    p = petrel("run", "--kernel", kit("hello"), "--debug-exit", "--cpus", "2")
    expect(p.returncode == 0, "exit 0 with an AP waiting for SIPI", p)
    expect(HELLO in text(p.stdout), "output complete", p)


@case
def aps_start_through_init_sipi_and_report_their_apic_ids():
    for cpus in (1, 2, 4):
        p = petrel("run", "--kernel", kit("smp"), "--debug-exit", "--cpus", str(cpus),
                   "--cmdline", "smp.expect=%d" % cpus)
        out = text(p.stdout)
        expect(p.returncode == 0, "%d vCPUs all came up" % cpus, p)
        expect("smp: cpus %d" % cpus in out, "the count", p)
        for i in range(cpus):
            expect("smp: cpu %d up" % i in out, "APIC ID %d (= vCPU index)" % i, p)


@case
def four_vcpus_and_more_memory():
    p = petrel("run", "--kernel", kit("hello"), "--debug-exit", "--cpus", "4", "--memory", "1G")
    expect(p.returncode == 0, "exit 0", p)


@case
def memory_above_the_hole():
    # 3.5 GiB: RAM is split around the PCI hole; the e820 map shows both parts.
    p = petrel("run", "--kernel", kit("bootinfo"), "--debug-exit", "--memory", "3584M")
    out = text(p.stdout)
    expect(p.returncode == 0, "bootinfo exits 0", p)
    expect("e820 0000000100000000-000000011fffffff type 1" in out, "RAM above 4 GiB", p)
    ram_kib = (0x9fc00 + (0xC0000000 - 0x100000) + 512 * 2**20) // 1024
    expect("ram %d KiB" % ram_kib in out, "all RAM but the EBDA/BIOS area is usable", p)


@case
def default_and_given_command_lines():
    p = petrel("run", "--kernel", kit("bootinfo"), "--debug-exit")
    expect('cmdline "console=ttyS0"' in text(p.stdout), "default command line", p)
    line = "root=/dev/vda  quiet x=\"a b\""
    p = petrel("run", "--kernel", kit("bootinfo"), "--debug-exit", "--cmdline", line)
    expect('cmdline "%s"' % line in text(p.stdout), "the command line exactly as given", p)
    p = petrel("run", "--kernel", kit("bootinfo"), "--debug-exit", "--cmdline", "")
    expect('cmdline ""' in text(p.stdout), "an empty command line stays empty", p)


@case
def initrd_reaches_the_guest():
    data = bytes(range(7, 7 + 200)) * 50
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        p = petrel("run", "--kernel", kit("bootinfo"), "--debug-exit", "--initrd", f.name)
    out = text(p.stdout)
    expect(p.returncode == 0, "exit 0", p)
    expect("size %d" % len(data) in out, "initrd size in the zero page", p)
    head = " ".join("%02x" % b for b in data[:16])
    expect("initrd head " + head in out, "initrd bytes in guest memory", p)


@case
def vmlinux_gets_the_same_boot_data():
    # An ELF vmlinux has no setup header: petrel writes one, and the kernel must find the
    # command line, the initrd and the memory map exactly as a bzImage would.
    data = bytes(range(3, 3 + 250)) * 40
    line = "root=/dev/vda quiet"
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        outs = []
        for image in (kit("bootinfo"), kit_vmlinux("bootinfo")):
            p = petrel("run", "--kernel", image, "--debug-exit", "--initrd", f.name,
                       "--cmdline", line, "--memory", "256M")
            expect(p.returncode == 0, "%s exits 0" % os.path.basename(image), p)
            outs.append(text(p.stdout))
    out = outs[1]
    expect('cmdline "%s"' % line in out, "the command line", p)
    expect("size %d" % len(data) in out, "the initrd's size", p)
    head = " ".join("%02x" % b for b in data[:16])
    expect("initrd head " + head in out, "the initrd's bytes", p)
    expect("e820 0000000000100000-000000000fffffff type 1" in out, "the e820 map", p)
    same = [ln for ln in outs[0].splitlines() if ln.startswith(("bootinfo: e820", "bootinfo: cmdline",
                                                           "bootinfo: initrd"))]
    expect(same and all(ln in outs[1].splitlines() for ln in same),
           "the same command line, initrd and e820 lines as from the bzImage", p)
    for cpus in (1, 3):
        p = petrel("run", "--kernel", kit_vmlinux("smp"), "--debug-exit", "--cpus", str(cpus),
                   "--cmdline", "smp.expect=%d" % cpus)
        expect(p.returncode == 0 and "smp: cpus %d" % cpus in text(p.stdout),
               "smp.vmlinux brings up %d vCPU(s)" % cpus, p)


@case
def e820_map_of_256m():
    p = petrel("run", "--kernel", kit("bootinfo"), "--debug-exit", "--memory", "256M")
    out = text(p.stdout)
    for line in ("e820 0000000000000000-000000000009fbff type 1",
                 "e820 000000000009fc00-000000000009ffff type 2",
                 "e820 00000000000e0000-00000000000fffff type 2",  # ACPI and MP tables
                 "e820 0000000000100000-000000000fffffff type 1"):
        expect(line in out, "e820 has " + line, p)


@case
def triple_fault_reports_registers():
    p = petrel("run", "--kernel", kit("fault"), "--debug-exit")
    err = text(p.stderr)
    expect(p.returncode == 3, "a crashed guest exits 3", p)
    expect("triple fault" in err, "stderr names the triple fault", p)
    expect("rip " in err and "cr3 " in err, "stderr shows the registers", p)
    expect("fault: loading an empty IDT" in text(p.stdout), "output before the crash kept", p)


@case
def sigterm_stops_a_halted_guest():
    # Without --debug-exit the guest's write to 0xf4 is ignored and it halts with
    # interrupts off: SIGTERM must still stop the halted vCPU through the kick.
    r = Running("run", "--kernel", kit("hello"))
    expect(r.wait_output(HELLO + " (debugcon)"), "hello printed")
    r.signal(signal.SIGTERM)
    rc = r.wait()
    expect(rc == 128 + signal.SIGTERM, "SIGTERM ends petrel with 143, got %r" % rc)
    expect(HELLO in r.output(), "output kept")


@case
def sigint_stops_a_halted_two_vcpu_guest():
    r = Running("run", "--kernel", kit("hello"), "--cpus", "2")
    expect(r.wait_output(HELLO + " (debugcon)"), "hello printed")
    r.signal(signal.SIGINT)
    rc = r.wait()
    expect(rc == 128 + signal.SIGINT, "SIGINT ends petrel with 130, got %r" % rc)


PAYLOAD_FORMATS = ["gzip", "bzip2", "lzma", "xz", "lzo", "lz4", "zstd"]
COLD = ("kernel booted as bzImage; its payload is being decompressed into the kernel cache in "
        "the background")
WARM = "kernel booted as the bzImage's payload, from the kernel cache"
SETUP = "kernel booted as bzImage ("


def wait_for_filler(cache, image):
    """Waits for the process that fills image's cache entry: it holds id-DEV-INO.lock (the
    bzImage file's, while it does not know the key) or KEY.lock until it is done."""
    with open(image, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()
    st = os.stat(image)
    kernels = os.path.join(cache, "petrel", "kernels")
    for name in ("id-%x-%x.lock" % (st.st_dev, st.st_ino), key + ".lock"):
        path = os.path.join(kernels, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)
        try:
            os.unlink(path)  # the one made here, if the filler had removed its own
        except FileNotFoundError:
            pass


@case
def compressed_payload_boots_through_the_cache():
    # bootinfo.FORMAT.bzImage carries bootinfo as a compressed vmlinux too. The first boot
    # runs the bzImage's own path while a filler decompresses the payload into the cache;
    # the second boots the cached vmlinux and hands the guest exactly what the bzImage's
    # own path does (--kernel-entry setup): the setup header, command line, initrd and
    # e820 that bootinfo prints.
    data = bytes(range(5, 5 + 240)) * 30
    with tempfile.TemporaryDirectory() as cache, tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        env = dict(os.environ, XDG_CACHE_HOME=cache)
        for fmt in PAYLOAD_FORMATS:
            args = ["run", "--kernel", kit("bootinfo." + fmt), "--debug-exit", "--stats",
                    "--initrd", f.name, "--cmdline", "kit.payload=" + fmt]
            ref = petrel(*args, "--kernel-entry", "setup", env=env)
            cold = petrel(*args, env=env)
            wait_for_filler(cache, kit("bootinfo." + fmt))
            warm = petrel(*args, env=env)
            for p, how in ((ref, SETUP), (cold, COLD), (warm, WARM)):
                expect(p.returncode == 0 and how in text(p.stderr),
                       "%s: booted as %r" % (fmt, how.strip()), p)
                expect("kernel %s:" % kit("bootinfo." + fmt) not in text(p.stderr),
                       "%s: no note on stderr" % fmt, p)
            out = text(ref.stdout)
            expect("bootinfo: setup header fnv" in out and "initrd head" in out,
                   "%s: bootinfo reports the header and the initrd" % fmt, ref)
            expect(cold.stdout == ref.stdout and warm.stdout == ref.stdout,
                   "%s: the same boot info from the cache as from the bzImage" % fmt, warm)
        p = petrel("cache", "list", env=env)
        expect(p.returncode == 0 and "%d entries" % len(PAYLOAD_FORMATS) in text(p.stdout),
               "one cache entry per image", p)


@case
def corrupt_cache_entry_is_rebuilt_not_booted():
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, XDG_CACHE_HOME=cache)
        args = ["run", "--kernel", kit("bootinfo.zstd"), "--debug-exit", "--stats"]
        ref = petrel(*args, env=env)
        expect(ref.returncode == 0 and COLD in text(ref.stderr), "the entry is made", ref)
        wait_for_filler(cache, kit("bootinfo.zstd"))
        kernels = os.path.join(cache, "petrel", "kernels")
        (entry,) = [n for n in os.listdir(kernels) if n.endswith(".vmlinux")]
        path = os.path.join(kernels, entry)
        with open(path, "r+b") as e:
            e.seek(0x300)  # inside the ELF's first segment: what a boot would run
            b = e.read(1)
            e.seek(0x300)
            e.write(bytes([b[0] ^ 0xff]))
        p = petrel(*args, env=env)
        err = text(p.stderr)
        expect(p.returncode == 0 and "wrong checksum (corrupt)" in err and
               "decompressing it again in the background" in err and COLD in err,
               "the corrupt entry is not booted, but rebuilt", p)
        expect(p.stdout == ref.stdout, "and the guest is the same", p)
        wait_for_filler(cache, kit("bootinfo.zstd"))
        p = petrel(*args, env=env)
        expect(p.returncode == 0 and WARM in text(p.stderr) and "corrupt" not in text(p.stderr),
               "the rebuilt entry is used", p)


@case
def unusable_payload_or_cache_boots_the_bzimage():
    # A payload that is not what its magic says (found by the filler on the first boot,
    # said by every later one), and a cache that cannot be made: the bzImage's own path
    # boots, and petrel says why once.
    with tempfile.TemporaryDirectory() as d:
        with open(kit("bootinfo.xz"), "rb") as f:
            img = bytearray(f.read())
        setup = (img[0x1f1] or 4) * 512 + 512
        off, length = struct.unpack_from("<II", img, 0x248)
        for i in range(16, length - 8, 97):
            img[setup + off + i] ^= 0x5a
        bad = os.path.join(d, "bad-payload.bzImage")
        with open(bad, "wb") as f:
            f.write(img)
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(d, "cache"))
        p = petrel("run", "--kernel", bad, "--debug-exit", "--stats", env=env)
        expect(p.returncode == 0 and COLD in text(p.stderr), "the first boot: as a bzImage", p)
        wait_for_filler(os.path.join(d, "cache"), bad)
        # The file is new: petrel hashes it itself while it is racy (2 s), else its filler
        # does and remembers the key, which the boot after that uses. Either way the third
        # boot at the latest knows the key, and so the reason.
        for _ in range(2):
            p = petrel("run", "--kernel", bad, "--debug-exit", "--stats", env=env)
            err = text(p.stderr)
            wait_for_filler(os.path.join(d, "cache"), bad)
            if "booting the bzImage's own decompressor" in err:
                break
        expect(p.returncode == 0 and "the xz payload is corrupt" in err and
               "booting the bzImage's own decompressor" in err and SETUP in err,
               "a corrupt payload: the bzImage boots, with a note", p)
        expect(err.count("petrel: kernel ") == 1, "said once", p)
        blocker = os.path.join(d, "file")
        open(blocker, "w").close()
        env = dict(os.environ, XDG_CACHE_HOME=blocker)
        p = petrel("run", "--kernel", kit("bootinfo.gzip"), "--debug-exit", "--stats", env=env)
        err = text(p.stderr)
        expect(p.returncode == 0 and "the kernel cache cannot be used" in err and SETUP in err,
               "an unusable cache: the bzImage boots, with a note", p)
        expect(err.count("petrel: kernel ") == 1, "said once", p)


if __name__ == "__main__":
    main()
