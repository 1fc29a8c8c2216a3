#!/usr/bin/env python3
"""pack_payload.py FORMAT PROGRAM.bzImage PROGRAM.vmlinux OUTPUT.bzImage

A kit bzImage that also carries its program as a compressed payload, the way
Linux's bzImage carries its vmlinux: the setup header's payload_offset and
payload_length name the program's ELF vmlinux compressed as FORMAT by that
format's own compressor with Linux's options (scripts/Makefile.lib), its
uncompressed size appended as a little-endian 32-bit number (gzip's own
trailer already is that number).

The protected-mode part keeps the program itself at its start, so the image
still boots the bzImage's way (--kernel-entry setup, QEMU); the payload
follows it at the first page past the program's memory (init_size), where the
program never writes, and init_size grows to cover it. A loader that
decompresses the payload gets the same program as an ELF vmlinux.
"""
import struct
import subprocess
import sys

COMPRESSORS = {
    "gzip": ["gzip", "-n", "-f", "-9"],
    "bzip2": ["bzip2", "-9"],
    "lzma": ["xz", "--format=lzma", "-9"],
    "xz": ["xz", "--check=crc32", "--x86", "--lzma2=dict=1MiB"],
    "lzo": ["lzop", "-9"],
    "lz4": ["lz4", "-l", "-9", "-c"],
    "zstd": ["zstd", "-22", "--ultra", "-c", "-q"],
}
PAGE = 4096


def main(argv):
    if len(argv) != 5 or argv[1] not in COMPRESSORS:
        sys.stderr.write("usage: %s {%s} PROGRAM.bzImage PROGRAM.vmlinux OUTPUT.bzImage\n" %
                         (argv[0], ",".join(COMPRESSORS)))
        return 2
    fmt = argv[1]
    with open(argv[2], "rb") as f:
        img = bytearray(f.read())
    with open(argv[3], "rb") as f:
        elf = f.read()
    payload = subprocess.run(COMPRESSORS[fmt], input=elf, stdout=subprocess.PIPE,
                             check=True).stdout
    if fmt != "gzip":
        payload += struct.pack("<I", len(elf))
    setup = (img[0x1f1] or 4) * 512 + 512
    init_size = struct.unpack_from("<I", img, 0x260)[0]
    pm = img[setup:]
    offset = (max(init_size, len(pm)) + PAGE - 1) // PAGE * PAGE
    pm += bytes(offset - len(pm)) + payload
    pm += bytes(-len(pm) % 16)
    struct.pack_into("<I", img, 0x1f4, len(pm) // 16)  # syssize
    struct.pack_into("<II", img, 0x248, offset, len(payload))  # payload_offset, _length
    struct.pack_into("<I", img, 0x260, (len(pm) + PAGE - 1) // PAGE * PAGE)  # init_size
    with open(argv[4], "wb") as f:
        f.write(bytes(img[:setup]) + bytes(pm))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
