#!/usr/bin/env python3
"""Bad input: one clear line on stderr, a non-zero status, nothing left behind."""
import os
import struct
import subprocess
import tempfile

from harness import PETREL, case, expect, kit, kit_vmlinux, main, petrel, text


def one_line_error(p, status, *needles):
    err = text(p.stderr)
    expect(p.returncode == status, "status %d" % status, p)
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("Try ")]
    expect(len(lines) == 1, "exactly one error line", p)
    for n in needles:
        expect(n in err, "the error mentions %r" % n, p)
    expect(text(p.stdout) == "", "nothing on stdout", p)


def fake_bzimage(init_size=0x10000, version=0x020f, xloadflags=1, pm_size=4096):
    """A well-formed bzImage header over a protected-mode part of pm_size bytes."""
    setup_sects = 2
    img = bytearray((setup_sects + 1) * 512 + pm_size)
    img[0x1f1] = setup_sects
    struct.pack_into("<I", img, 0x1f4, pm_size // 16)
    struct.pack_into("<H", img, 0x1fe, 0xAA55)
    img[0x200] = 0xEB
    img[0x201] = 0x268 - 0x202
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, version)
    img[0x211] = 0x01
    struct.pack_into("<I", img, 0x214, 0x100000)
    struct.pack_into("<I", img, 0x22c, 0x7fffffff)
    struct.pack_into("<H", img, 0x236, xloadflags)
    struct.pack_into("<I", img, 0x238, 2048)
    struct.pack_into("<I", img, 0x260, init_size)
    return bytes(img)


def with_file(data, fn):
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return fn(f.name)


@case
def missing_kernel():
    one_line_error(petrel("run", "--kernel", "/nonexistent/bzImage"), 1,
                   "/nonexistent/bzImage", "No such file")


@case
def kernel_option_required():
    p = petrel("run")
    expect(p.returncode == 2 and "--kernel FILE (or --restore PATH) is required" in text(p.stderr), "usage error", p)


@case
def kernel_is_a_directory():
    one_line_error(petrel("run", "--kernel", "/"), 1, "not a regular file")


@case
def not_a_kernel():
    one_line_error(with_file(b"\x7fELF" + bytes(4096), lambda k: petrel("run", "--kernel", k)),
                   1, "a malformed ELF file")
    one_line_error(with_file(b"hello" * 1000, lambda k: petrel("run", "--kernel", k)),
                   1, "not a Linux kernel", "bzImage", "ELF vmlinux")


@case
def elf_that_is_not_a_vmlinux():
    # The kit's own link output keeps its real-mode part at address 0, where petrel keeps
    # the boot data: an ELF petrel must refuse before it touches guest memory.
    elf = os.path.join(os.path.dirname(kit("hello")), "kit-hello.elf")
    one_line_error(petrel("run", "--kernel", elf), 1, elf, "below 1 MiB")
    with open(kit_vmlinux("hello"), "rb") as f:
        good = bytearray(f.read())
    bad = bytearray(good)
    struct.pack_into("<Q", bad, 24, 0xffffffff81000000)  # e_entry: a virtual address
    one_line_error(with_file(bytes(bad), lambda k: petrel("run", "--kernel", k)),
                   1, "entry point")
    bad = bytearray(good)
    bad[18] = 183  # e_machine: aarch64
    one_line_error(with_file(bytes(bad), lambda k: petrel("run", "--kernel", k)),
                   1, "not an x86-64 ELF")
    one_line_error(with_file(bytes(good[:len(good) // 2]),
                             lambda k: petrel("run", "--kernel", k)), 1, "truncated")


@case
def truncated_and_old_bzimages():
    good = fake_bzimage()
    one_line_error(with_file(good[:3 * 512 + 100], lambda k: petrel("run", "--kernel", k)),
                   1, "truncated")
    one_line_error(with_file(fake_bzimage(version=0x0206), lambda k: petrel("run", "--kernel", k)),
                   1, "too old")
    one_line_error(with_file(fake_bzimage(xloadflags=0), lambda k: petrel("run", "--kernel", k)),
                   1, "64-bit entry")


@case
def kernel_too_big_for_memory():
    img = fake_bzimage(init_size=64 << 20)
    one_line_error(with_file(img, lambda k: petrel("run", "--kernel", k, "--memory", "32M")),
                   1, "kernel needs 64 MiB", "--memory")


@case
def initrd_too_big_for_memory():
    with tempfile.NamedTemporaryFile() as f:
        f.truncate(40 << 20)
        p = petrel("run", "--kernel", kit("hello"), "--initrd", f.name, "--memory", "16M")
    one_line_error(p, 1, "initrd", "does not fit", "--memory")


@case
def missing_initrd():
    one_line_error(petrel("run", "--kernel", kit("hello"), "--initrd", "/nonexistent.cpio"), 1,
                   "initrd", "/nonexistent.cpio")


@case
def cpus_out_of_range():
    p = petrel("run", "--kernel", kit("hello"), "--cpus", "0")
    one_line_error(p, 2, "--cpus")
    p = petrel("run", "--kernel", kit("hello"), "--cpus", "many")
    one_line_error(p, 2, "--cpus")
    # Above KVM's limit (KVM_CAP_MAX_VCPUS is at most 4096 on x86, and never 4096 here).
    p = petrel("run", "--kernel", kit("hello"), "--cpus", "4096")
    one_line_error(p, 1, "--cpus 4096", "allows 1 to")


@case
def memory_sizes():
    one_line_error(petrel("run", "--kernel", kit("hello"), "--memory", "4M"), 2, "too small")
    one_line_error(petrel("run", "--kernel", kit("hello"), "--memory", "12Q"), 2, "not a size")
    one_line_error(petrel("run", "--kernel", kit("hello"), "--memory", "2T"), 2, "too large")
    one_line_error(petrel("run", "--kernel", kit("hello"), "--memory", "16385K"), 2,
                   "4 KiB pages")
    one_line_error(petrel("run", "--kernel", kit("hello"), "--memory", "900G"), 1,
                   "more than this host's RAM")


@case
def cmdline_too_long():
    p = petrel("run", "--kernel", kit("hello"), "--cmdline", "x" * 5000)
    one_line_error(p, 1, "command line", "at most")


@case
def no_dev_kvm():
    # A private mount namespace where /dev is an empty tmpfs.
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs none /dev && exec "$0" run --kernel "$1"',
                        PETREL, kit("hello")], capture_output=True, timeout=60)
    one_line_error(p, 1, "/dev/kvm is not available")


@case
def no_permission_for_dev_kvm():
    st = os.stat("/dev/kvm")
    if st.st_mode & 0o006:
        raise AssertionError("/dev/kvm is world-accessible here; cannot test EACCES")
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        PETREL, "run", "--kernel", kit("hello")], capture_output=True,
                       timeout=60)
    one_line_error(p, 1, "no permission to open /dev/kvm")


@case
def unknown_option_and_extra_argument():
    p = petrel("run", "--kernel", kit("hello"), "--frobnicate")
    expect(p.returncode == 2 and "frobnicate" in text(p.stderr), "unknown option", p)
    p = petrel("run", "--kernel", kit("hello"), "extra")
    expect(p.returncode == 2 and "unexpected argument 'extra'" in text(p.stderr), "extra arg", p)


@case
def debugcon_file_not_left_behind_on_error():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "dc.txt")
        p = petrel("run", "--kernel", kit("hello"), "--cpus", "4096", "--debugcon", path)
        expect(p.returncode == 1, "fails", p)
        expect(not os.path.exists(path), "no debugcon file created", p)


if __name__ == "__main__":
    main()
