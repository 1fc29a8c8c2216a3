#!/usr/bin/env python3
"""Boots a guest kit bzImage under QEMU (TCG) and checks how it ends.

QEMU's -kernel loader enters the image through its 16-bit entry, which petrel
never uses, so this proves the real-mode and 32-bit paths. With --loader
boot64-shim.elf, QEMU boots the shim (multiboot) with the image as its module
and the shim enters the image at its 64-bit entry the way petrel does.
isa-debug-exit makes
QEMU exit with (status << 1) | 1; with -no-reboot a triple fault or a reset
makes it exit with 0, and so does an ACPI poweroff.

--poweroff and --reset tell those apart: QEMU starts paused (-S) with a QMP
socket, and the run must end with the SHUTDOWN event QEMU sends for the
guest's own poweroff ("guest-shutdown") or reset ("guest-reset"). QMP also
presses the ACPI power button (system_powerdown) for --powerdown-after TEXT,
once TEXT has appeared on COM1 (after any --input was sent).

--input DATA is written to the guest's COM1 (QEMU's stdin) once the text of
--input-after has appeared on COM1 (at once without it). DATA takes Python
escapes: 'help\rexit 3\r', '\x04'. In --serial texts, {initrd_size} and
{initrd_crc32} (8 hex digits, zlib.crc32) stand for the --initrd file's.

usage: qemu_boot.py --qemu QEMU --image IMG [--loader SHIM] [--machine pc] [--smp N[,opts]]
                    [--append CMDLINE] [--initrd FILE] [--device QEMU_DEVICE]...
                    [--disk SECTORS[,ro][,serial=S]]...
                    (--status N | --triple-fault | --reset | --poweroff)
                    [--input DATA [--input-after TEXT]] [--powerdown-after TEXT]
                    [--serial TEXT]... [--no-serial TEXT]... [--debugcon TEXT]... [--timeout S]
Exit status 77 (a skip to meson) when QEMU cannot be run.
"""

import argparse
import codecs
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib


class Qmp:
    """A QMP client: negotiates on connect, then a thread records every
    message (events and replies) until QEMU closes the socket."""

    def __init__(self, path, proc, deadline):
        # QEMU creates the socket during start-up: retry until it is there.
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        # Negotiation within the run's time; then the pump waits for as long
        # as QEMU runs (the run's own deadline ends it).
        self.sock.settimeout(max(0.1, deadline - time.monotonic()))
        self.file = self.sock.makefile("rwb")
        self.messages = []
        self._read()  # the greeting
        self.send("qmp_capabilities")
        self._read()
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _read(self):
        line = self.file.readline()
        return json.loads(line) if line else None

    def _pump(self):
        try:
            while True:
                msg = self._read()
                if msg is None:
                    break
                self.messages.append(msg)
        except (OSError, ValueError):
            pass

    def send(self, command):
        try:
            self.file.write(json.dumps({"execute": command}).encode() + b"\n")
            self.file.flush()
        except OSError:
            pass  # QEMU is gone: its exit is what gets checked

    def shutdown_reasons(self):
        self.thread.join(5)
        return [m.get("data", {}).get("reason") for m in self.messages
                if m.get("event") == "SHUTDOWN"]

    def close(self):
        self.sock.close()


def run(cmd, actions, timeout, qmp_path=None):
    """Runs cmd; actions is a list of (text or None, kind, data) done in order,
    each once text is on stdout: ("input", bytes) writes to stdin, ("qmp",
    command) sends a QMP command. Returns (returncode or None on timeout,
    stdout bytes, stderr bytes, the Qmp client or None, texts never seen)."""
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
    qmp = None
    missed = []
    try:
        if qmp_path:
            try:
                qmp = Qmp(qmp_path, p, deadline)
            except (OSError, ValueError):
                qmp = None  # QEMU failed to start: its exit status says why
            else:
                qmp.send("cont")  # QEMU was started paused (-S)
        for (after, kind, data) in actions:
            with seen:
                while after and after not in out and p.poll() is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    seen.wait(min(left, 0.5))
            if after and after not in out:
                missed.append(after)
                break
            if p.poll() is not None:
                break
            if kind == "input":
                # Kept open until QEMU ends: EOF on stdin is not an event the
                # guest should see.
                p.stdin.write(data)
                p.stdin.flush()
            elif qmp:
                qmp.send(data)
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
    return rc, bytes(out), bytes(err), qmp, missed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--machine", default="pc")
    ap.add_argument("--smp", default="1", help="-smp: the number of CPUs[,topology]")
    ap.add_argument("--append", default="console=ttyS0")
    ap.add_argument("--initrd")
    ap.add_argument("--loader", help="boot64-shim.elf: boot IMG through the 64-bit entry")
    ap.add_argument("--device", action="append", default=[],
                    help="one more QEMU -device (virtio-rng-pci,disable-legacy=on)")
    ap.add_argument("--netdev", action="append", default=[], help="-netdev SPEC")
    ap.add_argument("--disk", action="append", default=[],
                    help="SECTORS[,ro][,serial=S]: a zeroed raw image on a modern virtio-blk-pci")
    end = ap.add_mutually_exclusive_group(required=True)
    end.add_argument("--status", type=int, help="expected kit_exit() status")
    end.add_argument("--triple-fault", action="store_true")
    end.add_argument("--reset", action="store_true", help="the guest resets the machine")
    end.add_argument("--poweroff", action="store_true", help="the guest powers off (ACPI)")
    ap.add_argument("--input", help="bytes for COM1's input (Python escapes)")
    ap.add_argument("--input-after", help="send --input once this text is on COM1")
    ap.add_argument("--powerdown-after",
                    help="press the ACPI power button (QMP) once this text is on COM1")
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
        for nd in args.netdev:
            cmd += ["-netdev", nd]
        for dev in args.device:
            cmd += ["-device", dev]
        for i, spec in enumerate(args.disk):
            words = spec.split(",")
            img = os.path.join(tmp, "disk%d.img" % i)
            with open(img, "wb") as f:
                f.truncate(int(words[0]) * 512)
            ro = ",readonly=on" if "ro" in words[1:] else ""
            serial = "".join("," + w for w in words[1:] if w.startswith("serial="))
            cmd += ["-drive", "file=%s,if=none,format=raw,id=disk%d%s" % (img, i, ro),
                    "-device", "virtio-blk-pci,drive=disk%d,disable-legacy=on%s" % (i, serial)]
        qmp_path = None
        if args.poweroff or args.reset or args.powerdown_after:
            qmp_path = os.path.join(tmp, "qmp.sock")
            cmd += ["-S", "-qmp", "unix:%s,server=on,wait=off" % qmp_path]
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
        actions = []
        if args.input is not None:
            data = codecs.decode(args.input, "unicode_escape").encode("latin-1")
            after = args.input_after.encode() if args.input_after else None
            actions.append((after, "input", data))
        if args.powerdown_after:
            actions.append((args.powerdown_after.encode(), "qmp", "system_powerdown"))
        try:
            (rc, stdout, stderr, qmp, missed) = run(cmd, actions, args.timeout, qmp_path)
        except FileNotFoundError:
            print("skip: %s not found" % args.qemu)
            return 77
        reasons = qmp.shutdown_reasons() if qmp else []
        if qmp:
            qmp.close()
        if rc is None:
            print("FAIL: QEMU still running after %gs; serial so far:" % args.timeout)
            print(stdout.decode(errors="replace"))
            for text in missed:
                print("FAIL: %r never appeared, so what should follow it was not sent" %
                      text.decode())
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
    if qmp_path:
        print("shutdown events:", ", ".join(str(r) for r in reasons) or "none")
    print("--- serial ---\n%s--- debugcon ---\n%s--- stderr ---\n%s" %
          (serial, dc, stderr.decode(errors="replace")))
    ok = True
    want = 0 if args.triple_fault or args.reset or args.poweroff else (args.status << 1) | 1
    if rc != want:
        print("FAIL: QEMU exited with %d, expected %d" % (rc, want))
        ok = False
    want_reason = "guest-shutdown" if args.poweroff else "guest-reset" if args.reset else None
    if want_reason and reasons != [want_reason]:
        print("FAIL: QEMU's shutdown events were %s, expected one %r" % (reasons, want_reason))
        ok = False
    for text in missed:
        print("FAIL: %r never appeared, so what should follow it was not sent" % text.decode())
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
