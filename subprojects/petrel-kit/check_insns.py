#!/usr/bin/env python3
"""Fails if a kit program's 64-bit code holds instructions kvm_pvm cannot run.

On this project's hosts, guest code at CPL0 goes through the host's
instruction emulator, which fails on SSE/AVX/x87, int3, int n, cmpxchg16b,
xsave/xrstor and xgetbv (../shared/PVM.md). The compiler flags in meson.build
keep them out; this catches a flag that stops working or inline assembly that
slips one in. Disassembles the 64-bit part (load address + 0x200 onwards)
with objdump.

usage: check_insns.py [--allow-sse] OBJDUMP PROGRAM.elf

--allow-sse lets SSE instructions (%xmm operands) through, for a program
that only runs where KVM is real (mmiosplit: the nested harness, hardware).
"""

import re
import subprocess
import sys

START_64 = 0x100200

# Register operands that only SSE/AVX/MMX/x87 instructions take.
VECTOR_REG = re.compile(r"%(x|y|z)mm\d|%mm\d|%st\b|%st\(")
FORBIDDEN = {"int3", "int", "into", "int1", "icebp", "cmpxchg16b", "xgetbv", "emms",
             "ldmxcsr", "stmxcsr", "endbr64", "endbr32"}
# fxsave/fxrstor work on kvm_pvm; every other f-mnemonic is x87.
X87_OK = {"fxsave", "fxsave64", "fxrstor", "fxrstor64"}


def bad(mnemonic, operands, allow_sse=False):
    if mnemonic in FORBIDDEN:
        return True
    m = VECTOR_REG.search(operands)
    if m and not (allow_sse and m.group(0).startswith("%xmm")):
        return True
    if mnemonic.startswith(("xsave", "xrstor")):
        return True
    return mnemonic.startswith("f") and mnemonic not in X87_OK


def main(argv):
    allow_sse = len(argv) > 1 and argv[1] == "--allow-sse"
    if allow_sse:
        argv = argv[:1] + argv[2:]
    if len(argv) != 3:
        sys.stderr.write("usage: %s [--allow-sse] OBJDUMP PROGRAM.elf\n" % argv[0])
        return 2
    out = subprocess.run([argv[1], "-d", "--no-show-raw-insn", "-j", ".text",
                          "--start-address=%#x" % START_64, argv[2]],
                         check=True, stdout=subprocess.PIPE).stdout.decode()
    found = []
    count = 0
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)", line)
        if not m:
            continue
        count += 1
        (addr, mnemonic, operands) = m.groups()
        # Prefixes objdump prints as words of their own (rep, lock, data16, cs).
        words = (mnemonic + " " + operands).split()
        while len(words) > 1 and words[0] in ("rep", "repz", "repnz", "lock", "data16",
                                              "cs", "ds", "es", "ss", "fs", "gs", "notrack"):
            words = words[1:]
        if bad(words[0], " ".join(words[1:]), allow_sse):
            found.append("%s: %s %s" % (addr, mnemonic, operands))
    if count == 0:
        sys.stderr.write("%s: no 64-bit code found\n" % argv[2])
        return 1
    for f in found:
        sys.stderr.write("%s: not runnable on kvm_pvm: %s\n" % (argv[2], f))
    print("%s: %d instructions checked, %d forbidden" % (argv[2], count, len(found)))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
