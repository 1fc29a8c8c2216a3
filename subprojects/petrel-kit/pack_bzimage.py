#!/usr/bin/env python3
"""Packs a linked guest kit program (ELF, laid out by kit.ld) into a bzImage.

A bzImage (Linux Documentation/arch/x86/boot.rst) is the real-mode part
(boot sector + setup sectors) followed by the protected-mode part, which
loaders put at 0x100000. The ELF holds both as program headers: the one at
address 0 is the real-mode part, those at 0x100000 and up the protected-mode
part. This script lays their file bytes out, then writes the setup header
(everything the layout decides, and the protocol constants) at 0x1f1.

The assembly owns only the 2-byte jump at 0x200; the rest of 0x1f1-0x26b must
be zero in the ELF, so no code or data can hide under the header.

The protected-mode part is padded to a whole 16-byte paragraph, as Linux's
build pads it, so that syssize (in paragraphs) covers the file exactly. With
--unpadded the file ends inside its last paragraph instead, as a tool that
rounds syssize up without padding writes it: no padding, and the zero bytes
that end the program's data left out as well (a loader zeroes the rest of the
last paragraph, so the program is the same). syssize is the same as padded;
the file is 1 to 15 bytes shorter, or the packer fails.

usage: pack_bzimage.py [--unpadded] PROGRAM.elf OUTPUT.bzImage
"""

import struct
import sys

from kit_elf import Elf, ElfError

SECTOR = 512
LOAD_ADDR = 0x100000
HDR_START = 0x1f1
HDR_END = 0x26c  # end of the protocol 2.15 setup header
JUMP = 0x200
REALMODE_MAX = 0x8000  # the real-mode part may total 32 KiB
PAGE = 4096

PROTOCOL = 0x020f
LOADED_HIGH = 0x01
XLF_KERNEL_64 = 0x01
COMMAND_LINE_SIZE = 2048  # Linux's x86 COMMAND_LINE_SIZE


def align_up(v, a):
    return (v + a - 1) // a * a


def realmode_part(elf):
    segs = [s for s in elf.loads() if s.vaddr < LOAD_ADDR]
    if len(segs) != 1 or segs[0].vaddr != 0:
        raise ElfError("expected one real-mode segment at address 0")
    seg = segs[0]
    if seg.memsz > REALMODE_MAX:
        raise ElfError("real-mode part needs %#x bytes, more than %#x" % (seg.memsz, REALMODE_MAX))
    data = bytearray(elf.data[seg.offset:seg.offset + seg.filesz])
    if len(data) < HDR_END:
        raise ElfError("real-mode part ends inside the setup header")
    if any(data[HDR_START:JUMP]) or any(data[JUMP + 2:HDR_END]):
        raise ElfError("code or data inside the setup header area")
    if data[JUMP] != 0xeb or JUMP + 2 + data[JUMP + 1] < HDR_END:
        raise ElfError("0x200 must be a short jump past the setup header")
    # At least one setup sector: 0 would mean 4 to a loader.
    data += bytes(max(align_up(len(data), SECTOR), 2 * SECTOR) - len(data))
    return data


def protected_part(elf):
    """Returns (file bytes, bytes of memory needed from the load address)."""
    segs = [s for s in elf.loads() if s.vaddr >= LOAD_ADDR]
    if not segs or segs[0].vaddr != LOAD_ADDR:
        raise ElfError("expected the protected-mode part to start at %#x" % LOAD_ADDR)
    image = bytearray()
    mem_end = LOAD_ADDR
    for s in segs:
        start = s.vaddr - LOAD_ADDR
        if start < len(image) or s.vaddr < mem_end:
            raise ElfError("segment at %#x overlaps the one before" % s.vaddr)
        if s.filesz and mem_end > LOAD_ADDR + len(image):
            raise ElfError("file data at %#x follows memory-only data (bss)" % s.vaddr)
        if s.filesz:
            image += bytes(start - len(image))
            image += elf.data[s.offset:s.offset + s.filesz]
        mem_end = s.vaddr + s.memsz
    image += bytes(align_up(len(image), 16) - len(image))
    return image, mem_end - LOAD_ADDR


def write_header(setup, image, init_size, kernel_info):
    """Fills the setup header at 0x1f1 (field offsets from boot.rst)."""
    fields = [
        (0x1f1, "B", len(setup) // SECTOR - 1),  # setup_sects
        (0x1f2, "H", 0),  # root_flags
        (0x1f4, "I", len(image) // 16),  # syssize, in 16-byte paragraphs
        (0x1fa, "H", 0xffff),  # vid_mode: "normal"
        (0x1fe, "H", 0xaa55),  # boot_flag
        (0x202, "4s", b"HdrS"),  # header
        (0x206, "H", PROTOCOL),  # version
        (0x20c, "H", 0x1000),  # start_sys_seg (obsolete, as Linux sets it)
        (0x211, "B", LOADED_HIGH),  # loadflags
        (0x214, "I", LOAD_ADDR),  # code32_start
        (0x22c, "I", 0x7fffffff),  # initrd_addr_max, as Linux: below 2 GiB
        (0x230, "I", LOAD_ADDR),  # kernel_alignment: the only load address we support
        (0x234, "B", 0),  # relocatable_kernel: no, linked at 0x100000
        (0x235, "B", LOAD_ADDR.bit_length() - 1),  # min_alignment (log2)
        (0x236, "H", XLF_KERNEL_64),  # xloadflags: 64-bit entry at +0x200
        (0x238, "I", COMMAND_LINE_SIZE - 1),  # cmdline_size, without the NUL
        (0x258, "Q", LOAD_ADDR),  # pref_address
        (0x260, "I", init_size),  # init_size
        (0x268, "I", kernel_info - LOAD_ADDR),  # kernel_info_offset
    ]
    for (off, fmt, value) in fields:
        struct.pack_into("<" + fmt, setup, off, value)


def pack(elf, unpadded=False):
    setup = realmode_part(elf)
    if len(setup) // SECTOR - 1 > 0xff:
        raise ElfError("too many setup sectors")
    image, mem_size = protected_part(elf)
    if elf.symbol("startup_32") != LOAD_ADDR:
        raise ElfError("startup_32 is not at the load address")
    if elf.symbol("startup_64") != LOAD_ADDR + 0x200:
        raise ElfError("startup_64 is not at load address + 0x200")
    kernel_info = elf.symbol("kernel_info")
    if not LOAD_ADDR <= kernel_info < LOAD_ADDR + len(image):
        raise ElfError("kernel_info is not in the protected-mode file data")
    write_header(setup, image, align_up(mem_size, PAGE), kernel_info)
    if unpadded:
        end = len(image)
        while end > len(image) - 15 and image[end - 1] == 0:
            end -= 1
        if end == len(image):
            raise ElfError("--unpadded: the image ends on a whole paragraph in a non-zero byte")
        if kernel_info + 16 > LOAD_ADDR + end:
            raise ElfError("--unpadded: kernel_info would end past the file")
        image = image[:end]
    return bytes(setup) + bytes(image)


def main(argv):
    prog, args = argv[0], argv[1:]
    unpadded = args[:1] == ["--unpadded"]
    if unpadded:
        args = args[1:]
    if len(args) != 2:
        sys.stderr.write("usage: %s [--unpadded] PROGRAM.elf OUTPUT.bzImage\n" % prog)
        return 2
    with open(args[0], "rb") as f:
        data = f.read()
    try:
        out = pack(Elf(data), unpadded)
    except (ElfError, ValueError, struct.error) as e:
        sys.stderr.write("%s: %s: %s\n" % (prog, args[0], e))
        return 1
    with open(args[1], "wb") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
