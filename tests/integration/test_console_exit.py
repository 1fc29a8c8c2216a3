#!/usr/bin/env python3
"""petrel's exit never waits forever for a console reader that stopped reading.

Three readers that take nothing (a pty nobody has open, a console socket
client that stopped reading, a stdout pipe nobody drains), each with a guest
that keeps printing (the kit's flood), and three ways to end: `petrel stop`,
SIGTERM, and the guest itself (flood ends through debug-exit on a byte of
input). Each time petrel must exit (the harness's guard timeout fails a
hang), with the status of that ending, and say on stderr how many bytes of
console output it dropped.
"""
import fcntl
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import PETREL, TIMEOUT, api, case, diagnose, expect, kit, main, petrel, text

F_SETPIPE_SZ = 1031
GUEST_STATUS = 5  # flood.exit: the status of an exit the guest asked for
DROPPED = re.compile(r"petrel: dropped (\d+) bytes of console output")


class Flood:
    """petrel run with the flood guest; stderr is collected by a thread."""

    def __init__(self, d, console, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.PIPE):
        self.sock = os.path.join(d, "f.sock")
        self.proc = subprocess.Popen(
            [PETREL, "run", "--kernel", kit("flood"), "--cmdline",
             "flood.exit=%d" % GUEST_STATUS, "--debug-exit", "--console", console,
             "--api-sock", self.sock], stdin=stdin, stdout=stdout, stderr=stderr)
        self._cond = threading.Condition()
        self._err = b""
        self._eof = self.proc.stderr is None
        self._thread = threading.Thread(target=self._reader, daemon=True)
        if not self._eof:
            self._thread.start()

    def _reader(self):
        while True:
            chunk = self.proc.stderr.read1(4096)
            with self._cond:
                if not chunk:
                    self._eof = True
                else:
                    self._err += chunk
                self._cond.notify_all()
            if not chunk:
                return

    def errors(self):
        with self._cond:
            return text(self._err)

    def wait_stderr(self, pattern):
        """Blocks until pattern matches stderr; the match (the guard timeout fails)."""
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while True:
                m = re.search(pattern, self._err)
                if m or self._eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        expect(m, "no %r on stderr: %r" % (pattern, text(self._err)))
        return m

    def wait_console(self, cond, what):
        """Polls GET /vm until cond(its "console" object) holds: a state, observed."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            expect(self.proc.poll() is None, "petrel ended early: " + self.errors())
            try:
                _, j, _ = api(self.sock, "GET", "/vm")
            except OSError:
                j = None
            if j and cond(j["console"]):
                return j["console"]
            expect(time.monotonic() < deadline, "%s never happened: %r" % (what, j))
            time.sleep(0.05)

    def wait(self):
        """petrel's exit status; the guard timeout fails a petrel that hangs."""
        try:
            rc = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            diagnose(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("petrel did not exit within %ss; stderr: %r" %
                                 (TIMEOUT, self.errors()))
        if self.proc.stderr is not None:
            self._thread.join()
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def end(vm, how, poke):
    """Ends the VM one way; returns the exit status petrel must have."""
    if how == "stop":
        p = petrel("stop", "--api-sock", vm.sock)
        expect(p.returncode == 0 and "stopped" in text(p.stdout),
               "petrel stop says the VM stopped", p)
        return 0
    if how == "sigterm":
        vm.proc.send_signal(signal.SIGTERM)
        return 128 + signal.SIGTERM
    poke()  # a byte of input: flood exits through debug-exit
    return GUEST_STATUS


def check_exit(vm, want, least=1, exactly=None):
    rc = vm.wait()
    err = vm.errors()
    expect(rc == want, "petrel exits %d, got %r; stderr: %r" % (want, rc, err))
    said = DROPPED.findall(err)
    expect(len(said) == 1, "one 'dropped N bytes' line: %r" % err)
    n = int(said[0])
    if exactly is not None:
        expect(n == exactly, "dropped exactly the %d queued bytes: %r" % (exactly, err))
    expect(n >= least, "dropped at least %d bytes: %r" % (least, err))


def full_pty(how):
    """--console pty, never opened: output the pty cannot take is dropped, and counted."""
    with tempfile.TemporaryDirectory() as d:
        vm = Flood(d, "pty")
        try:
            path = vm.wait_stderr(rb"the console is on (/dev/pts/\d+)").group(1).decode()
            seen = vm.wait_console(lambda c: c.get("dropped", 0) > 0, "dropped output")

            def poke():
                fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
                try:
                    os.write(fd, b"x")
                finally:
                    os.close(fd)

            check_exit(vm, end(vm, how, poke), least=seen["dropped"])
        finally:
            vm.close()


def stalled_socket(how):
    """--console socket with a client that connected and reads nothing."""
    with tempfile.TemporaryDirectory() as d:
        vm = Flood(d, "socket")
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            path = vm.wait_stderr(rb"the console is at (\S+) ").group(1).decode()
            client.connect(path)
            full = vm.wait_console(lambda c: c["buffered"] == c["capacity"], "a full buffer")
            check_exit(vm, end(vm, how, lambda: client.send(b"x")),
                       exactly=full["capacity"])
        finally:
            client.close()
            vm.close()


def stalled_pipe(how):
    """stdout a pipe (one page) nobody reads; stdin a pipe the guest's exit byte goes in."""
    rfd, wfd = os.pipe()
    fcntl.fcntl(rfd, F_SETPIPE_SZ, 4096)
    in_r, in_w = os.pipe()
    with tempfile.TemporaryDirectory() as d:
        vm = Flood(d, "stdio", stdin=in_r, stdout=wfd)
        os.close(wfd)
        os.close(in_r)
        try:
            full = vm.wait_console(lambda c: c["buffered"] == c["capacity"], "a full buffer")
            check_exit(vm, end(vm, how, lambda: os.write(in_w, b"x")),
                       exactly=full["capacity"])
        finally:
            vm.close()
            os.close(rfd)
            os.close(in_w)


@case
def one_stalled_pipe_for_stdout_and_stderr_ends_on_sigterm():
    """2>&1 into a pipe nobody reads: what petrel says at exit blocks there too, once
    the console is detached (the pipe is blocking again). petrel must still exit."""
    rfd, wfd = os.pipe()
    fcntl.fcntl(rfd, F_SETPIPE_SZ, 4096)
    with tempfile.TemporaryDirectory() as d:
        vm = Flood(d, "stdio", stdout=wfd, stderr=wfd)
        os.close(wfd)
        try:
            vm.wait_console(lambda c: c["buffered"] == c["capacity"], "a full buffer")
            vm.proc.send_signal(signal.SIGTERM)
            rc = vm.wait()
            expect(rc == 128 + signal.SIGTERM, "petrel exits 143, got %r" % rc)
        finally:
            vm.close()
            os.close(rfd)


for _setup in (full_pty, stalled_socket, stalled_pipe):
    for _how in ("stop", "sigterm", "guest_exit"):
        def _case(setup=_setup, how=_how):
            setup(how)
        _case.__name__ = "%s_ends_on_%s" % (_setup.__name__, _how)
        case(_case)


if __name__ == "__main__":
    main()
