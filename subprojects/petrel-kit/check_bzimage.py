#!/usr/bin/env python3
"""Checks a packed guest kit bzImage against the boot protocol and its ELF.

Reads the header the way a loader does (Documentation/arch/x86/boot.rst) and
asserts every field petrel and QEMU rely on, then that the bytes at the
entry points are the ELF's startup_32 (load address) and startup_64 (load
address + 0x200) and that the 16-bit entry sits where the jump at 0x200 goes.
Independent of pack_bzimage.py on purpose: a packer bug must not hide here.

usage: check_bzimage.py IMAGE.bzImage PROGRAM.elf
"""

import struct
import sys

from kit_elf import Elf, ElfError

LOAD_ADDR = 0x100000


class CheckError(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise CheckError(what)


def check(img, elf):
    def u(off, fmt):
        return struct.unpack_from("<" + fmt, img, off)[0]

    expect(len(img) >= 1024, "shorter than a boot sector and a setup sector")
    expect(img[:4] != b"\x7fELF", "looks like an ELF file (QEMU would boot it as PVH)")
    expect(u(0x1fe, "H") == 0xaa55, "boot_flag is not 0xaa55")
    expect(u(0x202, "4s") == b"HdrS", "no HdrS signature at 0x202")
    expect(u(0x206, "H") == 0x020f, "protocol is %#x, not 2.15" % u(0x206, "H"))
    expect(img[0x200] == 0xeb, "0x200 is not a short jump")
    hdr_end = 0x202 + img[0x201]
    expect(hdr_end >= 0x26c, "the jump at 0x200 lands inside the 2.15 header")

    setup_sects = img[0x1f1]
    expect(1 <= setup_sects <= 63, "setup_sects %d out of range" % setup_sects)
    pm_off = (setup_sects + 1) * 512
    pm = img[pm_off:]
    expect(len(pm) > 0x200, "no protected-mode part")
    expect(u(0x1f4, "I") * 16 == len(pm), "syssize %#x paragraphs, file has %#x bytes" %
           (u(0x1f4, "I"), len(pm)))

    expect(u(0x211, "B") & 0x01, "loadflags lacks LOADED_HIGH")
    expect(u(0x214, "I") == LOAD_ADDR, "code32_start is not 0x100000")
    expect(u(0x234, "B") == 0, "claims to be relocatable")
    expect(u(0x236, "H") & 0x01, "xloadflags lacks XLF_KERNEL_64")
    expect(not u(0x236, "H") & 0x02, "claims it can be loaded above 4 GiB")
    expect(u(0x258, "Q") == LOAD_ADDR, "pref_address is not 0x100000")
    align = u(0x230, "I")
    expect(align and align & (align - 1) == 0 and LOAD_ADDR % align == 0,
           "kernel_alignment %#x does not fit the load address" % align)
    expect(u(0x238, "I") >= 255, "cmdline_size below the historical 255")
    expect(u(0x22c, "I") >= LOAD_ADDR, "initrd_addr_max below 1 MiB")
    for (off, name) in [(0x210, "type_of_loader"), (0x218, "ramdisk_image"),
                        (0x21c, "ramdisk_size"), (0x228, "cmd_line_ptr"),
                        (0x250, "setup_data")]:
        expect(u(off, "B" if off == 0x210 else "I") == 0, "%s is not 0 in the file" % name)

    init_size = u(0x260, "I")
    mem_end = elf.symbol("_end") - LOAD_ADDR
    expect(init_size % 4096 == 0, "init_size not page-aligned")
    expect(init_size >= len(pm) and init_size >= mem_end,
           "init_size %#x does not cover the image (%#x in memory)" % (init_size, mem_end))

    ki = u(0x268, "I")
    expect(ki + 16 <= len(pm), "kernel_info_offset past the image")
    expect(pm[ki:ki + 4] == b"LToP", "no LToP at kernel_info_offset")
    (size, size_total) = struct.unpack_from("<II", pm, ki + 4)
    expect(16 <= size <= size_total and ki + size_total <= len(pm), "kernel_info sizes")

    # The entry points hold what the ELF put there.
    expect(elf.symbol("startup_32") == LOAD_ADDR, "startup_32 is not at 0x100000")
    expect(elf.symbol("startup_64") == LOAD_ADDR + 0x200, "startup_64 is not at 0x100200")
    expect(pm[:32] == elf.read(LOAD_ADDR, 32), "32-bit entry bytes differ from the ELF")
    expect(pm[0x200:0x220] == elf.read(LOAD_ADDR + 0x200, 32),
           "64-bit entry bytes differ from the ELF")
    expect(elf.symbol("setup_start16") == hdr_end, "16-bit entry is not where the jump goes")
    expect(img[hdr_end:hdr_end + 16] == elf.read(hdr_end, 16),
           "16-bit entry bytes differ from the ELF")
    # Every file-backed byte of the protected-mode segments, where it belongs.
    for seg in elf.loads():
        if seg.vaddr < LOAD_ADDR or not seg.filesz:
            continue
        start = seg.vaddr - LOAD_ADDR
        expect(pm[start:start + seg.filesz] == elf.data[seg.offset:seg.offset + seg.filesz],
               "segment at %#x differs from the ELF" % seg.vaddr)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: %s IMAGE.bzImage PROGRAM.elf\n" % argv[0])
        return 2
    with open(argv[1], "rb") as f:
        img = f.read()
    with open(argv[2], "rb") as f:
        elf = Elf(f.read())
    try:
        check(img, elf)
    except (CheckError, ElfError) as e:
        sys.stderr.write("%s: %s\n" % (argv[1], e))
        return 1
    print("%s: ok (setup_sects %d, syssize %#x, init_size %#x)" %
          (argv[1], img[0x1f1], struct.unpack_from("<I", img, 0x1f4)[0],
           struct.unpack_from("<I", img, 0x260)[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
