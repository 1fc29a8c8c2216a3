#!/usr/bin/env python3
"""Boots a guest kit bzImage under QEMU (TCG) and checks how it ends.

QEMU's -kernel loader enters the image through its 16-bit entry, which petrel
never uses, so this proves the real-mode and 32-bit paths. With --loader
boot64-shim.elf, QEMU boots the shim (multiboot) with the image as its module
and the shim enters the image at its 64-bit entry the way petrel does.
isa-debug-exit makes
QEMU exit with (status << 1) | 1; with -no-reboot a triple fault (a reset)
makes it exit with 0.

usage: qemu_boot.py --qemu QEMU --image IMG [--loader SHIM] [--machine pc] [--append CMDLINE]
                    (--status N | --triple-fault) [--serial TEXT]... [--debugcon TEXT]...
Exit status 77 (a skip to meson) when QEMU cannot be run.
"""

import argparse
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--machine", default="pc")
    ap.add_argument("--append", default="console=ttyS0")
    ap.add_argument("--initrd")
    ap.add_argument("--loader", help="boot64-shim.elf: boot IMG through the 64-bit entry")
    end = ap.add_mutually_exclusive_group(required=True)
    end.add_argument("--status", type=int, help="expected kit_exit() status")
    end.add_argument("--triple-fault", action="store_true")
    ap.add_argument("--serial", action="append", default=[], help="text expected on COM1")
    ap.add_argument("--debugcon", action="append", default=[], help="text expected on 0xe9")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        debugcon = os.path.join(tmp, "debugcon.txt")
        cmd = [args.qemu, "-M", args.machine, "-accel", "tcg", "-m", "128M",
               "-display", "none", "-nodefaults", "-no-user-config", "-no-reboot",
               "-serial", "stdio", "-debugcon", "file:" + debugcon,
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
               "-append", args.append]
        if args.loader:
            # Multiboot: the shim is the kernel, the bzImage its module.
            if args.initrd:
                sys.exit("--initrd does not combine with --loader")
            cmd += ["-kernel", args.loader, "-initrd", args.image]
        else:
            cmd += ["-kernel", args.image]
            if args.initrd:
                cmd += ["-initrd", args.initrd]
        print("running:", " ".join(cmd))
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=args.timeout)
        except FileNotFoundError:
            print("skip: %s not found" % args.qemu)
            return 77
        except subprocess.TimeoutExpired as e:
            print("FAIL: QEMU still running after %gs; serial so far:" % args.timeout)
            print((e.stdout or b"").decode(errors="replace"))
            return 1
        if p.returncode != 0 and b"unsupported machine type" in p.stderr:
            print("skip: this QEMU has no %s machine" % args.machine)
            return 77
        serial = p.stdout.decode(errors="replace")
        try:
            with open(debugcon, "rb") as f:
                dc = f.read().decode(errors="replace")
        except FileNotFoundError:
            dc = ""

    print("exit status:", p.returncode)
    print("--- serial ---\n%s--- debugcon ---\n%s--- stderr ---\n%s" %
          (serial, dc, p.stderr.decode(errors="replace")))
    ok = True
    want = 0 if args.triple_fault else (args.status << 1) | 1
    if p.returncode != want:
        print("FAIL: QEMU exited with %d, expected %d" % (p.returncode, want))
        ok = False
    for text in args.serial:
        if text not in serial:
            print("FAIL: %r not on the serial console" % text)
            ok = False
    for text in args.debugcon:
        if text not in dc:
            print("FAIL: %r not on the debug console" % text)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
