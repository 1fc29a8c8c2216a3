#!/usr/bin/env python3
"""Boots a guest kit bzImage under QEMU (TCG) and checks how it ends.

QEMU's -kernel loader enters the image through its 16-bit entry, which petrel
never uses, so this proves the real-mode and 32-bit paths. With --loader
boot64-shim.elf, QEMU boots the shim (multiboot) with the image as its module
and the shim enters the image at its 64-bit entry the way petrel does.
isa-debug-exit makes
QEMU exit with (status << 1) | 1; with -no-reboot a triple fault or a reset
makes it exit with 0.

--input DATA is written to the guest's COM1 (QEMU's stdin) once the text of
--input-after has appeared on COM1 (at once without it). DATA takes Python
escapes: 'help\rexit 3\r', '\x04'. In --serial texts, {initrd_size} and
{initrd_crc32} (8 hex digits, zlib.crc32) stand for the --initrd file's.

usage: qemu_boot.py --qemu QEMU --image IMG [--loader SHIM] [--machine pc] [--smp N] [--append CMDLINE]
                    [--initrd FILE] (--status N | --triple-fault | --reset)
                    [--input DATA [--input-after TEXT]] [--serial TEXT]... [--no-serial TEXT]...
                    [--debugcon TEXT]... [--timeout S]
Exit status 77 (a skip to meson) when QEMU cannot be run.
"""

import argparse
import codecs
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib


def run(cmd, data, after, timeout):
    """Runs cmd, feeding data on stdin once after is on stdout; returns
    (returncode or None on timeout, stdout bytes, stderr bytes)."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out = bytearray()
    err = bytearray()
    seen = threading.Condition()

    def pump(src, dst, notify):
        while True:
            chunk = os.read(src.fileno(), 4096)
            if not chunk:
                break
            with seen:
                dst.extend(chunk)
                if notify:
                    seen.notify_all()
        if notify:
            with seen:
                seen.notify_all()

    threads = [threading.Thread(target=pump, args=(p.stdout, out, True), daemon=True),
               threading.Thread(target=pump, args=(p.stderr, err, False), daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    try:
        if data is not None:
            with seen:
                while after and after not in out and p.poll() is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    seen.wait(min(left, 0.5))
            if p.poll() is None and (not after or after in out):
                # Kept open until QEMU ends: EOF on stdin is not an event the
                # guest should see.
                p.stdin.write(data)
                p.stdin.flush()
        rc = p.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = None
    except BrokenPipeError:
        rc = p.wait(max(0.0, deadline - time.monotonic()))
    for t in threads:
        t.join(5)
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    return rc, bytes(out), bytes(err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--machine", default="pc")
    ap.add_argument("--smp", type=int, default=1, help="number of CPUs (-smp)")
    ap.add_argument("--append", default="console=ttyS0")
    ap.add_argument("--initrd")
    ap.add_argument("--loader", help="boot64-shim.elf: boot IMG through the 64-bit entry")
    end = ap.add_mutually_exclusive_group(required=True)
    end.add_argument("--status", type=int, help="expected kit_exit() status")
    end.add_argument("--triple-fault", action="store_true")
    end.add_argument("--reset", action="store_true", help="the guest resets the machine")
    ap.add_argument("--input", help="bytes for COM1's input (Python escapes)")
    ap.add_argument("--input-after", help="send --input once this text is on COM1")
    ap.add_argument("--serial", action="append", default=[], help="text expected on COM1")
    ap.add_argument("--no-serial", action="append", default=[],
                    help="text that must not be on COM1")
    ap.add_argument("--debugcon", action="append", default=[], help="text expected on 0xe9")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    if args.initrd:
        with open(args.initrd, "rb") as f:
            blob = f.read()
        facts = {"initrd_size": len(blob), "initrd_crc32": "%08x" % zlib.crc32(blob)}
        args.serial = [t.format(**facts) for t in args.serial]

    with tempfile.TemporaryDirectory() as tmp:
        debugcon = os.path.join(tmp, "debugcon.txt")
        cmd = [args.qemu, "-M", args.machine, "-accel", "tcg", "-m", "128M",
               "-smp", str(args.smp),
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
        data = None
        if args.input is not None:
            data = codecs.decode(args.input, "unicode_escape").encode("latin-1")
        after = args.input_after.encode() if args.input_after else None
        try:
            (rc, stdout, stderr) = run(cmd, data, after, args.timeout)
        except FileNotFoundError:
            print("skip: %s not found" % args.qemu)
            return 77
        if rc is None:
            print("FAIL: QEMU still running after %gs; serial so far:" % args.timeout)
            print(stdout.decode(errors="replace"))
            if after and after not in stdout:
                print("FAIL: %r never appeared, so the input was not sent" % args.input_after)
            return 1
        if rc != 0 and b"unsupported machine type" in stderr:
            print("skip: this QEMU has no %s machine" % args.machine)
            return 77
        serial = stdout.decode(errors="replace")
        try:
            with open(debugcon, "rb") as f:
                dc = f.read().decode(errors="replace")
        except FileNotFoundError:
            dc = ""

    print("exit status:", rc)
    print("--- serial ---\n%s--- debugcon ---\n%s--- stderr ---\n%s" %
          (serial, dc, stderr.decode(errors="replace")))
    ok = True
    want = 0 if args.triple_fault or args.reset else (args.status << 1) | 1
    if rc != want:
        print("FAIL: QEMU exited with %d, expected %d" % (rc, want))
        ok = False
    for text in args.serial:
        if text not in serial:
            print("FAIL: %r not on the serial console" % text)
            ok = False
    for text in args.no_serial:
        if text in serial:
            print("FAIL: %r is on the serial console" % text)
            ok = False
    for text in args.debugcon:
        if text not in dc:
            print("FAIL: %r not on the debug console" % text)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
