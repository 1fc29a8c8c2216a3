#!/usr/bin/env python3
"""--console virtio: the console on virtio-console (hvc0), driven by the guest kit's
vconsole (subprojects/petrel-kit/vconsole.c), with the serial console's terminal handling, escape
keys, backends and input queueing."""
import os
import re
import subprocess
import tempfile

from harness import PETREL, TIMEOUT, OnPty, api, case, expect, kit, main, petrel, text

CONSOLE_FUNC = re.compile(r"pci: 00:([0-9a-f]{2})\.0 1af4:1043 class 078000 rev 01")


@case
def typed_input_is_echoed_on_hvc_and_escape_keys_work():
    t = OnPty("--kernel", kit("vconsole"), "--console", "virtio")
    try:
        # Typed before the guest's driver is up: petrel keeps it until buffers are posted.
        t.type(b"early\r")
        t.read_until("hvc: ready")
        t.read_until("EARLY\r\n")
        expect(not t.settings_restored(), "the terminal is raw while petrel runs")
        t.type(b"abc")
        t.read_until("ABC")
        t.type(b"\x01\x01")  # Ctrl-A Ctrl-A: one Ctrl-A for the guest, echoed back
        t.read_until(b"ABC\x01")
        t.type(b"\x01h")  # help, nothing sent
        t.read_until("send Ctrl-A to the guest\r\n")
        t.type(b"d\r")
        t.read_until("D\r\n")
        t.type(b"\x01x")
        expect(t.wait() == 0, "Ctrl-A x exits 0")
        out = text(t.buf)
        expect(CONSOLE_FUNC.search(out), "COM1's lines show on the same terminal: %r" % out)
        expect("vconsole: virtio-console " in out, "the guest found the device: %r" % out)
        expect(out.count("\x01") == 1, "exactly one Ctrl-A reached the guest: %r" % out)
        expect(out.endswith("send Ctrl-A to the guest\r\nD\r\n\r\n"),
               "Ctrl-A h sent nothing to the guest, Ctrl-A x ends the line: %r" % out[-200:])
        expect(t.settings_restored(), "terminal settings restored")
    finally:
        t.close()


@case
def pipes_in_order_split_over_small_buffers_then_exit_powers_off():
    # 3-byte receive buffers: each line spans several chains, delivered in order.
    p = petrel("run", "--kernel", kit("vconsole"), "--console", "virtio",
               "--cmdline", "vconsole.rxsize=3", input=b"hello world\rsecond line\nexit\r")
    out = text(p.stdout)
    expect(p.returncode == 0, "exit 0 (ACPI poweroff)", p)
    expect("hvc: ready\r\nHELLO WORLD\r\nSECOND LINE\r\nEXIT\r\nhvc: bye\r\n" in out,
           "the echo, in order", p)
    m = re.search(r"vconsole: received (\d+) bytes in (\d+) chunks", out)
    expect(m and int(m.group(1)) == 29, "29 bytes received", p)
    expect(int(m.group(2)) >= 10, "over at least 10 chains of 3 bytes", p)
    expect("vconsole: poweroff" in out, "then poweroff", p)


@case
def more_input_than_petrel_queues_is_held_back_not_lost():
    # 9000 bytes at once: petrel queues 4 KiB while the guest has no buffer posted,
    # then stops reading the pipe; the guest gets every byte, in order.
    body = bytes(b"abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(9000))
    p = petrel("run", "--kernel", kit("vconsole"), "--console", "virtio",
               input=body + b"\rexit\r")
    out = text(p.stdout)
    expect(p.returncode == 0, "exit 0", p)
    echoed = out.split("hvc: ready\r\n", 1)[1].split("\r\n", 1)[0]
    expect(echoed == body.upper().decode(), "9000 bytes echoed in order (got %d)" % len(echoed),
           p)
    expect("vconsole: received 9006 bytes" in out, "the guest counted 9006 bytes", p)


@case
def socket_backend_attach_type_detach():
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "v.sock")
        vm = subprocess.Popen([PETREL, "run", "--kernel", kit("vconsole"), "--console",
                               "virtio,socket", "--api-sock", sock], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            expect(b"petrel console" in vm.stderr.readline(), "the console socket is up")
            for key in (b"q", b"r"):
                master, slave = os.openpty()
                c = subprocess.Popen([PETREL, "console", "--api-sock", sock], stdin=slave,
                                     stdout=slave, stderr=slave, start_new_session=True)
                t = OnPty.__new__(OnPty)
                t.master, t.slave, t.proc, t.buf = master, slave, c, b""
                t.before = None
                try:
                    t.read_until("attached")
                    t.read_until("hvc: ready")  # the history is replayed
                    t.type(key + b"\r")
                    t.read_until(key.upper() + b"\r\n")
                    t.type(b"\x01d")
                    t.read_until("detached")
                    expect(t.wait() == 0, "detach exits 0")
                finally:
                    t.close()
            status, _, _ = api(sock, "PUT", "/actions", {"action_type": "Stop"})
            expect(status == 204, "stop")
            expect(vm.wait(timeout=TIMEOUT) == 0, "the VM ends with 0")
        finally:
            if vm.poll() is None:
                vm.kill()
                vm.wait()


@case
def without_virtio_the_guest_finds_no_console_device():
    p = petrel("run", "--kernel", kit("vconsole"), "--debug-exit")
    expect(p.returncode == 3, "vconsole exits 3 without the device", p)
    expect("vconsole: no virtio-console (1af4:1043)" in text(p.stdout), "it says so", p)


@case
def the_default_command_line_names_hvc0():
    # The kit's info program prints on COM1, which still reaches the console.
    p = petrel("run", "--kernel", kit("info"), "--console", "virtio", "--debug-exit")
    expect(p.returncode == 0, "exit 0", p)
    expect('info: cmdline "console=hvc0"' in text(p.stdout), "console=hvc0 by default", p)
    p = petrel("run", "--kernel", kit("info"), "--console", "serial,stdio", "--debug-exit")
    expect('info: cmdline "console=ttyS0"' in text(p.stdout), "console=ttyS0 with serial", p)


@case
def bad_console_combinations_are_usage_errors():
    for arg, says in (("pty,virtio", "first: virtio,pty"), ("virtio,serial", "one device"),
                      ("virtio,nowhere", "must be"), ("virtio,", "must be")):
        p = petrel("run", "--kernel", kit("vconsole"), "--console", arg)
        expect(p.returncode == 2, "--console %s is a usage error" % arg, p)
        expect(says in text(p.stderr), "--console %s says %r" % (arg, says), p)


if __name__ == "__main__":
    main()
