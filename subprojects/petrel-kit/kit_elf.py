"""Just enough of an ELF64 reader for the guest kit's packer and checker.

Python standard library only, so the kit builds wherever meson runs.
"""

import struct

PT_LOAD = 1
SHT_SYMTAB = 2


class ElfError(Exception):
    pass


class Segment:
    """One program header."""

    def __init__(self, p_type, flags, offset, vaddr, filesz, memsz):
        self.type = p_type
        self.flags = flags
        self.offset = offset
        self.vaddr = vaddr
        self.filesz = filesz
        self.memsz = memsz


class Elf:
    """A little-endian x86-64 ELF file: its loadable segments and symbols."""

    def __init__(self, data):
        self.data = data
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ElfError("not a little-endian ELF64 file")
        (e_machine,) = struct.unpack_from("<H", data, 18)
        if e_machine != 62:
            raise ElfError("not an x86-64 ELF file (e_machine %d)" % e_machine)
        (phoff, shoff) = struct.unpack_from("<QQ", data, 32)
        (phentsize, phnum, shentsize, shnum) = struct.unpack_from("<HHHH", data, 54)

        self.segments = []
        for i in range(phnum):
            (p_type, p_flags, p_offset, p_vaddr, _p_paddr, p_filesz, p_memsz, _p_align) = (
                struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize))
            self.segments.append(Segment(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz))

        self.symbols = {}
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                    for i in range(shnum)]
        for (_name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize) in sections:
            if sh_type != SHT_SYMTAB:
                continue
            strtab_offset = sections[link][4]
            for pos in range(offset, offset + size, entsize):
                (st_name, _st_info, _st_other, st_shndx, st_value, _st_size) = (
                    struct.unpack_from("<IBBHQQ", data, pos))
                if st_name == 0 or st_shndx == 0:
                    continue
                end = data.index(b"\0", strtab_offset + st_name)
                self.symbols[data[strtab_offset + st_name:end].decode()] = st_value

    def loads(self):
        """The PT_LOAD segments, by address."""
        return sorted((s for s in self.segments if s.type == PT_LOAD), key=lambda s: s.vaddr)

    def symbol(self, name):
        if name not in self.symbols:
            raise ElfError("symbol %s not found" % name)
        return self.symbols[name]

    def read(self, vaddr, n):
        """n file-backed bytes at vaddr."""
        for s in self.loads():
            if s.vaddr <= vaddr and vaddr + n <= s.vaddr + s.filesz:
                start = s.offset + vaddr - s.vaddr
                return self.data[start:start + n]
        raise ElfError("no file data at %#x+%#x" % (vaddr, n))
