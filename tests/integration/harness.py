"""A small runner for petrel's integration tests (python3 stdlib only).

Each test file defines functions decorated with @case; main() runs them all,
prints one line per case and exits non-zero if any failed. Timeouts here are
failure guards (a hang fails the case), never synchronisation.
"""
import ctypes
import fcntl
import http.client
import json
import mmap
import os
import select
import socket
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import traceback

PETREL = os.environ.get("PETREL", "petrel")
KIT_DIR = os.environ.get("KIT_DIR", "")
# Generous: under the nested harness every guest exit is emulated by TCG.
TIMEOUT = float(os.environ.get("PETREL_TEST_TIMEOUT", "120"))

_cases = []


def case(fn):
    _cases.append(fn)
    return fn


def diagnose(pid):
    """Prints every thread's stack of a stuck petrel (when gdb is installed), for the log."""
    gdb = shutil.which("gdb")
    if not gdb:
        print("(no gdb: cannot show petrel's threads)")
        return
    p = subprocess.run([gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
                       capture_output=True, timeout=60)
    print("petrel %d threads:" % pid)
    for line in text(p.stdout).splitlines():
        if line.startswith(("#", "Thread")):
            print("  " + line)
    sys.stdout.flush()


def kit(name):
    path = os.path.join(KIT_DIR, name + ".bzImage")
    if not os.path.exists(path):
        raise AssertionError("guest kit image missing: " + path)
    return path


def kit_vmlinux(name):
    """The same program as an ELF vmlinux: petrel enters it at its 64-bit entry."""
    path = os.path.join(KIT_DIR, name + ".vmlinux")
    if not os.path.exists(path):
        raise AssertionError("guest kit vmlinux missing: " + path)
    return path


def petrel(*args, input=None, timeout=None, env=None):
    """Runs petrel to completion; returns CompletedProcess with text output."""
    return subprocess.run([PETREL, *args], input=input, capture_output=True,
                          timeout=timeout or TIMEOUT, env=env)


def text(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


def expect(cond, what, proc=None):
    if not cond:
        msg = what
        if proc is not None:
            msg += "\n  status: %r\n  stdout: %r\n  stderr: %r" % (
                proc.returncode, text(proc.stdout)[-2000:], text(proc.stderr)[-2000:])
        raise AssertionError(msg)


class Running:
    """A petrel started in the background; reader threads collect its output."""

    def __init__(self, *args, stdin=subprocess.DEVNULL):
        self.proc = subprocess.Popen([PETREL, *args], stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._cond = threading.Condition()
        self._out = bytearray()
        self._err = bytearray()
        self._threads = [threading.Thread(target=self._reader, args=(f, b), daemon=True)
                         for f, b in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))]
        for t in self._threads:
            t.start()

    def _reader(self, f, buf):
        while True:
            chunk = f.read1(65536)
            with self._cond:
                if not chunk:
                    self._cond.notify_all()
                    return
                buf += chunk
                self._cond.notify_all()

    def output(self):
        with self._cond:
            return text(bytes(self._out))

    def errors(self):
        with self._cond:
            return text(bytes(self._err))

    def wait_output(self, needle, timeout=None, stream=0):
        """Blocks until needle appears on stdout (stream 1: stderr); False if the stream
        ends or the guard expires."""
        needle = needle.encode() if isinstance(needle, str) else needle
        buf = (self._out, self._err)[stream]
        deadline = time.monotonic() + (timeout or TIMEOUT)
        with self._cond:
            while needle not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not self._threads[stream].is_alive():
                    return needle in buf
                self._cond.wait(left)
            return True

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=None):
        try:
            rc = self.proc.wait(timeout=timeout or TIMEOUT)
        except subprocess.TimeoutExpired:
            diagnose(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("petrel did not exit within %ss\nstdout: %r\nstderr: %r" % (
                timeout or TIMEOUT, self.output()[-2000:], self.errors()[-2000:]))
        for t in self._threads:
            t.join()
        return rc


class UnixHTTP(http.client.HTTPConnection):
    """An HTTP connection to a unix socket (the VM's API)."""

    def __init__(self, path, timeout=None):
        super().__init__("localhost", timeout=timeout or TIMEOUT)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class OnPty:
    """petrel run on a fresh pseudo-terminal, as if typed at a terminal."""

    def __init__(self, *args):
        self.master, slave = os.openpty()
        self.slave = slave
        self.before = termios.tcgetattr(slave)
        self.proc = subprocess.Popen([PETREL, "run", *args], stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True)
        self.buf = b""

    def read_until(self, needle, timeout=None):
        """Reads the terminal until needle shows; the guard timeout fails the test."""
        needle = needle.encode() if isinstance(needle, str) else needle
        deadline = time.monotonic() + (timeout or TIMEOUT)
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r on the terminal; got %r" % (needle, self.buf[-500:]))
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError("terminal closed before %r: %r" % (needle, self.buf[-500:]))
                self.buf += chunk
        return self.buf

    def drain(self, seconds):
        """Collects whatever arrives within seconds (an observation window)."""
        deadline = time.monotonic() + seconds
        got = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    return got
                got += chunk
                self.buf += chunk

    def type(self, data):
        os.write(self.master, data)

    def wait(self):
        try:
            rc = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("petrel did not exit: %r" % self.buf[-500:])
        # The last bytes still in the pty: with petrel gone and our slave end closed,
        # the master reads them and then EOF (EIO), so no timer decides when all is in.
        self.after = termios.tcgetattr(self.slave)
        os.close(self.slave)
        self.slave = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], deadline - time.monotonic())
            try:
                chunk = os.read(self.master, 4096) if r else b""
            except OSError:
                chunk = b""
            if not chunk:
                break
            self.buf += chunk
        return rc

    def settings_restored(self):
        """Whether the terminal is as before petrel started (after wait(): as petrel left it)."""
        now = termios.tcgetattr(self.slave) if self.slave is not None else self.after
        return now == self.before

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        if self.slave is not None:
            os.close(self.slave)


SYS_USERFAULTFD = 323  # x86_64
UFFD_API = 0xAA
UFFDIO_API = 0xC018AA3F  # _IOWR(0xAA, 0x3F, struct uffdio_api)
UFFDIO_REGISTER = 0xC020AA00  # _IOWR(0xAA, 0x00, struct uffdio_register)
UFFDIO_REGISTER_MODE_MISSING = 1
UFFD_EVENT_PAGEFAULT = 0x12


class WriteGate:
    """Makes every write to a file wait in the host kernel until open() is called: a thread
    writes to the file from a page that userfaultfd leaves unfilled, so it faults inside
    write(), holding the inode's lock, and every other write (petrel's pwritev) queues
    behind it. Closing the userfaultfd lets the fault finish as an ordinary one. A real
    hung syscall with no test hook in petrel; needs userfaultfd with kernel-mode faults
    (root, or vm.unprivileged_userfaultfd=1), which the nested harness has."""

    def __init__(self, path, offset):
        self.uffd = -1
        libc = ctypes.CDLL(None, use_errno=True)
        self.uffd = libc.syscall(SYS_USERFAULTFD, os.O_CLOEXEC)
        expect(self.uffd >= 0, "userfaultfd: %s" % os.strerror(ctypes.get_errno()))
        fcntl.ioctl(self.uffd, UFFDIO_API, bytearray(struct.pack("QQQ", UFFD_API, 0, 0)))
        self.page = mmap.mmap(-1, mmap.PAGESIZE)
        self.addr = ctypes.addressof(ctypes.c_char.from_buffer(self.page))
        fcntl.ioctl(self.uffd, UFFDIO_REGISTER, bytearray(struct.pack(
            "QQQQ", self.addr, mmap.PAGESIZE, UFFDIO_REGISTER_MODE_MISSING, 0)))
        self.fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        self.thread = threading.Thread(target=os.pwrite, args=(self.fd, self.page, offset),
                                       daemon=True)
        self.thread.start()
        # The fault's message: the writer is inside write(), holding the lock.
        ready, _, _ = select.select([self.uffd], [], [], TIMEOUT)
        expect(ready, "the gate's write faulted")
        msg = os.read(self.uffd, 32)
        expect(msg[0] == UFFD_EVENT_PAGEFAULT, "a page fault message: %r" % msg)

    def open(self):
        if self.uffd < 0:
            return
        os.close(self.uffd)
        self.uffd = -1
        self.thread.join(TIMEOUT)
        expect(not self.thread.is_alive(), "the gate's own write finished")
        os.close(self.fd)


def api(sock, method, path, body=None, raw=None):
    """One API request; returns (status, parsed JSON or None, raw body text)."""
    c = UnixHTTP(sock)
    try:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text_body = r.read().decode("utf-8", "replace")
        try:
            parsed = json.loads(text_body) if text_body else None
        except ValueError:
            parsed = None
        return r.status, parsed, text_body
    finally:
        c.close()


def main():
    only = sys.argv[1:]
    failed = 0
    ran = 0
    for fn in _cases:
        if only and fn.__name__ not in only:
            continue
        ran += 1
        start = time.monotonic()
        try:
            fn()
            print("ok   %-45s %.2fs" % (fn.__name__, time.monotonic() - start), flush=True)
        except Exception:
            failed += 1
            print("FAIL %-45s %.2fs" % (fn.__name__, time.monotonic() - start), flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    print("%d passed, %d failed" % (ran - failed, failed))
    sys.exit(1 if failed or not ran else 0)


__all__ = ["case", "kit", "petrel", "expect", "text", "Running", "OnPty", "main", "signal",
           "TIMEOUT", "WriteGate"]
