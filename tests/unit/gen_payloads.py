#!/usr/bin/env python3
"""gen_payloads.py OUTDIR: bzImage payloads for test_kernel_payload, made the way
Linux's build makes them (scripts/Makefile.lib, arch/x86/boot/compressed/Makefile):
each format's own command-line compressor with Linux's options, and the
uncompressed size appended as a little-endian 32-bit number (gzip's own ISIZE
trailer is that number already).

OUTDIR/plain       the uncompressed bytes (300 KiB: text, a counter, zeroes)
OUTDIR/zeroes      4 MiB of zeroes (compresses to a few KiB: a small bomb)
OUTDIR/NAME.FMT    NAME compressed as FMT (gzip, bzip2, lzma, xz, lzo, lz4, zstd)
"""
import os
import struct
import subprocess
import sys

# Linux's commands (cmd_gzip, cmd_bzip2_with_size, cmd_lzma_with_size, cmd_xzkern_with_size,
# cmd_lzo_with_size, cmd_lz4_with_size, cmd_zstd22_with_size).
COMPRESSORS = {
    "gzip": ["gzip", "-n", "-f", "-9"],
    "bzip2": ["bzip2", "-9"],
    "lzma": ["xz", "--format=lzma", "-9"],  # what Linux's `lzma -9` writes
    "xz": ["xz", "--check=crc32", "--x86", "--lzma2=dict=1MiB"],
    "lzo": ["lzop", "-9"],
    "lz4": ["lz4", "-l", "-9", "-c"],
    "zstd": ["zstd", "-22", "--ultra", "-c", "-q"],
}


def plain():
    out = bytearray()
    i = 0
    while len(out) < 300 * 1024:
        out += b"petrel payload line %08d: the quick brown fox\n" % i
        out += struct.pack("<QQ", i * 2654435761 % (1 << 64), i)
        i += 1
    out += bytes(4096)
    return bytes(out[:300 * 1024])


def compress(fmt, data):
    p = subprocess.run(COMPRESSORS[fmt], input=data, stdout=subprocess.PIPE, check=True)
    out = p.stdout
    if fmt != "gzip":
        out += struct.pack("<I", len(data))
    return out


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    inputs = {"plain": plain(), "zeroes": bytes(4 * 1024 * 1024)}
    for name, data in inputs.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
        for fmt in COMPRESSORS:
            with open(os.path.join(outdir, "%s.%s" % (name, fmt)), "wb") as f:
                f.write(compress(fmt, data))


if __name__ == "__main__":
    main()
