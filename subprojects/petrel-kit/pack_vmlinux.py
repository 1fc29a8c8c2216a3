#!/usr/bin/env python3
"""pack_vmlinux.py KIT.elf OUT: a guest kit program as an ELF vmlinux.

The kit's link output (kit.ld) has two parts: the real-mode part linked at 0 and
the protected-mode part at 1 MiB. A vmlinux is only the second: this writes a
minimal ELF64 executable (a header and program headers, no sections) with the
program's PT_LOAD segments at or above 1 MiB, physical = virtual address, and its
entry startup_64 (0x100200), where petrel starts a vmlinux like Linux's.
"""
import struct
import sys

from kit_elf import Elf

LOAD_MIN = 0x100000


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: pack_vmlinux.py KIT.elf OUT")
    with open(sys.argv[1], "rb") as f:
        elf = Elf(f.read())
    segs = [s for s in elf.loads() if s.vaddr >= LOAD_MIN and s.memsz]
    if not segs:
        sys.exit("pack_vmlinux: %s has no segment at or above 1 MiB" % sys.argv[1])
    entry = elf.symbol("startup_64")
    data_off = (64 + 56 * len(segs) + 4095) // 4096 * 4096
    out = bytearray(data_off)
    out[0:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", out, 16, 2, 62, 1, entry, 64, 0, 0, 64, 56,
                     len(segs), 64, 0, 0)
    for i, s in enumerate(segs):
        struct.pack_into("<IIQQQQQQ", out, 64 + 56 * i, 1, s.flags, len(out), s.vaddr,
                         s.vaddr, s.filesz, s.memsz, 4096)
        out += elf.data[s.offset:s.offset + s.filesz]
        out += bytes(-len(out) % 4096)
    with open(sys.argv[2], "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
