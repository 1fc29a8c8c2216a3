#!/usr/bin/env python3
"""The console as a person and as a script use it: a pseudo-terminal with the
escape keys and raw mode restored on every way out, and pipes."""
import fcntl
import os
import re
import signal
import subprocess
import tempfile
import termios
import time
import zlib

from harness import PETREL, TIMEOUT, OnPty, api, case, expect, kit, main, petrel, text


@case
def typed_bytes_reach_the_guest_and_escape_keys_work():
    t = OnPty("--kernel", kit("echo"), "--cmdline", "echo.exit=7a", "--debug-exit")
    try:
        t.read_until("echo: ready")
        expect(not t.settings_restored(), "the terminal is raw while petrel runs")
        t.type(b"ab")
        t.read_until("echo: 0x62")
        t.type(b"\x01\x01")  # Ctrl-A Ctrl-A: one Ctrl-A for the guest
        t.read_until("echo: 0x01")
        t.type(b"\x01h")  # help, nothing sent
        t.read_until("Ctrl-A x")
        t.type(b"c")
        t.read_until("echo: 0x63")
        t.type(b"z")  # echo.exit=7a ends the guest
        rc = t.wait()
        out = text(t.buf)
        expect(rc == 0, "exit 0 through debug-exit, got %r" % rc)
        expect(out.count("echo: 0x01") == 1, "exactly one Ctrl-A reached the guest: %r" % out)
        expect("echo: 0x68" not in out, "Ctrl-A h sent nothing to the guest")
        lines = re.findall(r"echo: (0x[0-9a-f]+)", out)
        expect(lines == ["0x61", "0x62", "0x01", "0x63", "0x7a"], "bytes in order: %r" % lines)
        expect(t.settings_restored(), "terminal settings restored")
    finally:
        t.close()


@case
def ctrl_a_x_quits_and_restores_the_terminal():
    t = OnPty("--kernel", kit("echo"))
    try:
        t.read_until("echo: ready")
        t.type(b"\x01x")
        expect(t.wait() == 0, "Ctrl-A x exits 0")
        expect(t.settings_restored(), "terminal settings equal those before")
    finally:
        t.close()


@case
def sigterm_and_sighup_restore_the_terminal():
    for sig, status in ((signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)):
        t = OnPty("--kernel", kit("echo"))
        try:
            t.read_until("echo: ready")
            t.proc.send_signal(sig)
            expect(t.wait() == status, "%s ends petrel with %d" % (sig.name, status))
            expect(t.settings_restored(), "terminal restored after %s" % sig.name)
        finally:
            t.close()


@case
def a_failing_start_leaves_the_terminal_alone():
    t = OnPty("--kernel", "/nonexistent")
    try:
        expect(t.wait() == 1, "fails")
        expect(t.settings_restored(), "terminal untouched")
    finally:
        t.close()


@case
def ctrl_a_p_pauses_and_resumes():
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "c.sock")
        t = OnPty("--kernel", kit("counter"), "--cmdline", "counter.ms=20", "--api-sock", sock)
        try:
            t.read_until("counter: 3\r\n")
            t.type(b"\x01p")
            t.read_until("[petrel: paused")
            status, j, _ = api(sock, "GET", "/")
            expect(j["state"] == "Paused", "the API says Paused: %r" % j)
            quiet = t.drain(0.4)
            expect(b"counter:" not in quiet, "no guest output while paused: %r" % quiet)
            t.type(b"\x01p")
            t.read_until("[petrel: resuming]")
            # The guest writes a byte per exit: a pause may land inside one of its lines,
            # and petrel's notes then sit in the middle of it ("coun\r\n[petrel: ...]
            # \r\n...ter: 4"). The guest's own bytes are what must go on without a skip.
            guest = lambda: re.sub(rb"\r\n\[petrel: [^\]\r\n]*\]\r\n", b"", t.buf)
            last = int(re.findall(rb"counter: (\d+)", guest())[-1])
            t.read_until("counter: %d\r\n" % (last + 5))
            nums = [int(n) for n in re.findall(rb"counter: (\d+)", guest())]
            expect(nums == list(range(nums[0], nums[0] + len(nums))),
                   "the counter continues without a skip: %r" % nums)
            t.type(b"\x01x")
            expect(t.wait() == 0, "quit")
        finally:
            t.close()


@case
def pipes_pass_bytes_untouched_and_keep_the_last_output():
    data = bytes([0x01, 0x03, 0x04, 0x1b, 0x61, 0x0d, 0x0a, 0x7f])
    p = petrel("run", "--kernel", kit("echo"), "--cmdline", "echo.exit=ff", "--debug-exit",
               input=data + b"\xff")
    out = text(p.stdout)
    got = re.findall(r"echo: (0x[0-9a-f]+)", out)
    expect(p.returncode == 0, "exit 0", p)
    expect(got == ["0x%02x" % b for b in data] + ["0xff"], "every byte, in order: %r" % got, p)
    expect(out.rstrip().endswith("echo: 0xff"), "the guest's last output arrived", p)


@case
def end_of_input_does_not_end_the_vm():
    r = subprocess.Popen([PETREL, "run", "--kernel", kit("echo")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r.stdin.write(b"q")
    r.stdin.close()
    line = b""
    while b"echo: 0x71" not in line:
        chunk = r.stdout.readline()
        expect(chunk, "output until the byte arrives")
        line += chunk
    expect(r.poll() is None, "petrel still runs after end of input")
    r.send_signal(signal.SIGTERM)
    expect(r.wait(timeout=TIMEOUT) == 143, "stops on SIGTERM")


@case
def info_reports_exactly_what_it_was_given():
    initrd = os.urandom(12345)
    with tempfile.NamedTemporaryFile() as f:
        f.write(initrd)
        f.flush()
        p = petrel("run", "--kernel", kit("info"), "--debug-exit", "--memory", "300M",
                   "--cmdline", "hello  world x=1", "--initrd", f.name)
    out = text(p.stdout)
    expect(p.returncode == 0, "exit 0", p)
    expect('info: cmdline "hello  world x=1"' in out, "command line", p)
    expect("info: initrd 12345 bytes crc32 %08x" % zlib.crc32(initrd) in out, "initrd crc", p)
    ram_kib = (0x9fc00 + 300 * 2**20 - 0x100000) // 1024
    expect("info: memory %d KiB" % ram_kib in out, "memory (e820 RAM) %d KiB" % ram_kib, p)


@case
def a_slow_reader_loses_nothing():
    # spin.report prints as fast as the UART lets it (a line every 64 counts: kvm_pvm runs
    # the guest at about 1 us an instruction, and a line every 4096 took minutes to fill
    # the buffer under load). This reader first reads nothing: its pipe (shrunk to one
    # page) and petrel's console buffer fill, and the UART's THRE must then hold the
    # guest back; then it reads everything and checks it.
    F_SETPIPE_SZ = 1031
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "s.sock")
        rfd, wfd = os.pipe()
        fcntl.fcntl(rfd, F_SETPIPE_SZ, 4096)
        r = subprocess.Popen([PETREL, "run", "--kernel", kit("spin"), "--cmdline",
                              "spin.report=6", "--stats", "--api-sock", sock],
                             stdin=subprocess.DEVNULL, stdout=wfd, stderr=subprocess.PIPE)
        os.close(wfd)
        try:
            deadline = time.monotonic() + TIMEOUT
            j = None
            while True:  # wait for the state "buffer full", observed through the API
                expect(time.monotonic() < deadline, "the console buffer never filled: %r"
                       % (j and j["console"],))
                try:
                    _, j, _ = api(sock, "GET", "/vm")
                except OSError:
                    j = None
                if j and j["console"]["buffered"] == j["console"]["capacity"]:
                    break
                time.sleep(0.05)
            held = j["console"]["capacity"]
            got = b""
            while len(got) < 2 * (held + 4096):
                chunk = os.read(rfd, 4096)
                expect(chunk, "output goes on")
                got += chunk
            r.send_signal(signal.SIGTERM)
            while True:
                chunk = os.read(rfd, 65536)
                if not chunk:
                    break
                got += chunk
            err = r.stderr.read().decode()
            expect(r.wait(timeout=TIMEOUT) == 143, "stops on SIGTERM")
        finally:
            if r.poll() is None:
                r.kill()
                r.wait()
            os.close(rfd)
    counts = [int(n) for n in re.findall(rb"spin: (\d+)\r\n", got)]
    step = 1 << 6
    expect(len(counts) > 100, "enough lines: %d" % len(counts))
    bad = [i for i in range(1, len(counts)) if counts[i] - counts[i - 1] != step]
    expect(not bad, "every line arrived, in order (first gap at line %s)" % (bad[:1],))
    expect("console output dropped 0" in err, "nothing dropped: " + err)


@case
def a_closed_stdout_is_warned_about_once_and_the_vm_goes_on():
    rfd, wfd = os.pipe()
    os.close(rfd)  # nobody will ever read the console
    p = subprocess.run([PETREL, "run", "--kernel", kit("info"), "--debug-exit"],
                       stdin=subprocess.DEVNULL, stdout=wfd, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    os.close(wfd)
    err = text(p.stderr)
    expect(p.returncode == 0, "the guest still ran to its exit: %r" % err)
    expect(err.count("cannot write guest output") == 1, "one warning: %r" % err)


@case
def petrel_console_on_a_pty_attach_detach_reattach():
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "e.sock")
        vm = subprocess.Popen([PETREL, "run", "--kernel", kit("echo"), "--console", "socket",
                               "--api-sock", sock], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            expect(b"petrel console" in vm.stderr.readline(), "the console socket is up")
            expect(os.stat(sock).st_mode & 0o777 == 0o600, "the API socket is 0600")
            for i, key in enumerate((b"a", b"b", b"c")):
                master, slave = os.openpty()
                before = termios.tcgetattr(slave)
                c = subprocess.Popen([PETREL, "console", "--api-sock", sock], stdin=slave,
                                     stdout=slave, stderr=slave, start_new_session=True)
                t = OnPty.__new__(OnPty)
                t.master, t.slave, t.proc, t.buf, t.before = master, slave, c, b"", before
                try:
                    t.read_until("attached")
                    t.read_until("echo: ready")  # the history is replayed on every attach
                    t.type(key)
                    t.read_until("echo: 0x%02x" % key[0])
                    t.type(b"\x01d")
                    t.read_until("detached")
                    expect(t.wait() == 0, "detach exits 0")
                    expect(t.settings_restored(), "the terminal is restored after detach")
                finally:
                    t.close()
            status, _, _ = api(sock, "PUT", "/actions", {"action_type": "Stop"})
            expect(status == 204, "stop")
            expect(vm.wait(timeout=TIMEOUT) == 0, "the VM ends with 0")
        finally:
            if vm.poll() is None:
                vm.kill()
                vm.wait()


if __name__ == "__main__":
    main()
