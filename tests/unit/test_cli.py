#!/usr/bin/env python3
"""The petrel command where no VM and no KVM is needed: option errors, and the
socket directory the clients refuse to trust (as root, also as a plain user
facing a /tmp/petrel-UID another user made). Runs in the unit suite."""
import ctypes
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import PETREL, case, expect, main, petrel, text  # noqa: E402

COMMANDS = ["run", "pause", "resume", "stop", "status", "console", "list"]


def first_line(p):
    lines = text(p.stderr).splitlines()
    return lines[0] if lines else ""


@case
def getopt_errors_name_the_command():
    # getopt's own messages start with argv[0]: "petrel CMD: ", like petrel's.
    for cmd in COMMANDS:
        p = petrel(cmd, "--frobnicate")
        expect(p.returncode == 2, "petrel %s --frobnicate: status 2" % cmd, p)
        expect(first_line(p) == "petrel %s: unrecognized option '--frobnicate'" % cmd,
               "petrel %s: getopt's message starts 'petrel %s: '" % (cmd, cmd), p)
        expect(text(p.stdout) == "", "nothing on stdout", p)
    p = petrel("run", "-Z")
    expect(first_line(p) == "petrel run: invalid option -- 'Z'", "a bad short option", p)
    p = petrel("run", "--kernel")
    expect(first_line(p) == "petrel run: option '--kernel' requires an argument",
           "a missing argument", p)
    p = petrel("status", "--json=yes", "x")
    expect(first_line(p) == "petrel status: option '--json' doesn't allow an argument",
           "an argument where none goes", p)
    p = petrel("console", "--api-sock")
    expect(first_line(p) == "petrel console: option '--api-sock' requires an argument",
           "console: a missing argument", p)


@case
def options_of_another_command_are_unknown():
    # --graceful and --timeout are petrel stop's; --json is pause/resume/status's.
    for cmd in ("pause", "resume", "status"):
        p = petrel(cmd, "--graceful", "x")
        expect(p.returncode == 2 and
               first_line(p) == "petrel %s: unrecognized option '--graceful'" % cmd,
               "petrel %s --graceful is refused by name" % cmd, p)
    p = petrel("stop", "--json", "x")
    expect(p.returncode == 2 and first_line(p) == "petrel stop: unrecognized option '--json'",
           "petrel stop --json is refused by name", p)


@case
def list_takes_options_like_the_others():
    p = petrel("list", "extra")
    expect(p.returncode == 2 and first_line(p) == "petrel list: unexpected argument 'extra'",
           "an extra argument", p)
    p = petrel("list", "--help")
    expect(p.returncode == 0 and text(p.stdout).startswith("usage: petrel list"), "--help", p)


@case
def unknown_command():
    p = petrel("frobnicate")
    expect(p.returncode == 2 and first_line(p) == "petrel: unknown command 'frobnicate'",
           "an unknown command", p)


# Every client that finds a VM's sockets by name.
CLIENTS = [("pause", "x"), ("resume", "x"), ("stop", "x"), ("stop", "--graceful", "x"),
           ("status", "x"), ("console", "x"), ("list",)]
VICTIM, OTHER = 65533, 65534  # uids no test host is expected to have


class FakeVM:
    """Sockets another user could put in a socket directory, looking like a live VM named x:
    x.sock.lock held, x.sock answering every request with 204, x.console saying hello and
    closing. Counts the clients that reached them."""

    def __init__(self, directory, owner=None):
        self.connections = 0
        self._lock = threading.Lock()
        lock = os.path.join(directory, "x.sock.lock")
        self._lockfile = open(lock, "w")
        fcntl.flock(self._lockfile, fcntl.LOCK_EX)
        if owner is not None:
            os.chown(lock, owner, owner)
        for suffix in (".sock", ".console"):
            path = os.path.join(directory, "x" + suffix)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            os.chmod(path, 0o666)
            if owner is not None:
                os.chown(path, owner, owner)
            s.listen(16)
            threading.Thread(target=self._serve, args=(s, suffix), daemon=True).start()

    def _serve(self, s, suffix):
        while True:
            c, _ = s.accept()
            with self._lock:
                self.connections += 1
            with c:
                c.settimeout(10)
                try:
                    if suffix == ".sock":
                        data = b""
                        while b"\r\n\r\n" not in data:
                            chunk = c.recv(4096)
                            if not chunk:
                                break
                            data += chunk
                        c.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                    else:
                        c.sendall(b"fake console\r\n")
                except OSError:
                    pass

    def reached(self):
        with self._lock:
            return self.connections


def run_as(uid, args, env):
    prefix = []
    if uid is not None:
        prefix = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"]
    return subprocess.run(prefix + [PETREL, *args], env=env, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def env_with(xdg):
    env = dict(os.environ)
    env.pop("XDG_RUNTIME_DIR", None)
    if xdg is not None:
        env["XDG_RUNTIME_DIR"] = xdg
    return env


def clients_refuse(directory, words, fake, uid=None, xdg=None):
    """Every client refuses: status 1, one line naming the directory and what is wrong,
    and none reached the sockets in it."""
    for args in CLIENTS:
        p = run_as(uid, args, env_with(xdg))
        what = "petrel %s%s" % (" ".join(args), "" if uid is None else " as uid %d" % uid)
        lines = [l for l in text(p.stderr).splitlines() if l.strip()]
        want = "petrel %s: the socket directory %s " % (args[0], directory)
        expect(p.returncode == 1, what + ": status 1", p)
        expect(len(lines) == 1 and lines[0].startswith(want) and words in lines[0],
               "%s: one line starting %r, saying %r" % (what, want, words), p)
        expect(text(p.stdout) == "", what + ": nothing on stdout", p)
    expect(fake.reached() == 0,
           "no client reached the sockets in %s (%d did)" % (directory, fake.reached()))


def scratch():
    d = tempfile.mkdtemp(prefix="petrel-test-cli.")
    os.chmod(d, 0o755)  # other users (setpriv) reach what is in it
    return d


@case
def clients_refuse_a_directory_others_can_write():
    d = scratch()
    try:
        sockdir = os.path.join(d, "petrel")
        os.mkdir(sockdir)
        fake = FakeVM(sockdir)
        for mode in (0o777, 0o1770):
            os.chmod(sockdir, mode)
            clients_refuse(sockdir, "is writable by others (mode %04o)" % mode, fake, xdg=d)
    finally:
        shutil.rmtree(d)


@case
def clients_refuse_a_link():
    d = scratch()
    try:
        real, sockdir = os.path.join(d, "real"), os.path.join(d, "petrel")
        os.mkdir(real, 0o700)
        fake = FakeVM(real)
        os.symlink(real, sockdir)
        clients_refuse(sockdir, "is a symbolic link", fake, xdg=d)
    finally:
        shutil.rmtree(d)


@case
def clients_use_their_own_directory():
    # The same sockets in a directory of this user's own are used (the check does not get
    # in the way), and a missing directory means no VM.
    d = scratch()
    try:
        env = env_with(d)
        p = run_as(None, ["pause", "x"], env)
        expect(p.returncode == 1 and "no VM named 'x'" in text(p.stderr), "no directory: no VM", p)
        p = run_as(None, ["list"], env)
        expect(p.returncode == 0 and text(p.stdout) == "", "no directory: nothing listed", p)
        sockdir = os.path.join(d, "petrel")
        os.mkdir(sockdir, 0o700)
        fake = FakeVM(sockdir)
        p = run_as(None, ["pause", "x"], env)
        expect(p.returncode == 0 and text(p.stdout) == "x: paused\n", "pause reaches it", p)
        p = run_as(None, ["list", "--json"], env)
        expect(p.returncode == 0 and '"id":"x"' in text(p.stdout), "list shows it", p)
        expect(fake.reached() >= 2, "the clients reached the sockets")
    finally:
        shutil.rmtree(d)


@case
def clients_refuse_another_users_directory():
    if os.geteuid() != 0:
        print("  (not root: another user's directory needs root to make; CI runs this as root)")
        return
    d = scratch()
    try:
        sockdir = os.path.join(d, "petrel")
        os.mkdir(sockdir, 0o755)
        os.chown(sockdir, OTHER, OTHER)
        clients_refuse(sockdir, "is owned by uid %d, not by you (uid 0)" % OTHER,
                       FakeVM(sockdir, owner=OTHER), xdg=d)
    finally:
        shutil.rmtree(d)


def in_private_tmp(fn):
    """Runs fn() in a child process with a mount namespace and a /tmp of its own (root)."""
    r, w = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        status, msg = 0, ""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
            subprocess.run(["mount", "--make-rprivate", "/"], check=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp"],
                           check=True)
            fn()
        except BaseException:
            status, msg = 1, traceback.format_exc()
        os.write(w, msg.encode())
        os._exit(status)
    os.close(w)
    msg = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        msg += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise AssertionError("in a private /tmp:\n" + msg.decode("utf-8", "replace"))


@case
def plain_user_refuses_a_tmp_dir_another_user_made():
    # The case: no XDG_RUNTIME_DIR, so a plain user's sockets are in
    # /tmp/petrel-UID, and another user made that directory first, with sockets in it.
    if os.geteuid() != 0:
        print("  (not root: needs root to act as two users; CI runs this as root)")
        return

    def scenario():
        sockdir = "/tmp/petrel-%d" % VICTIM
        os.mkdir(sockdir)
        os.chmod(sockdir, 0o755)
        os.chown(sockdir, OTHER, OTHER)
        clients_refuse(sockdir, "is owned by uid %d, not by you (uid %d)" % (OTHER, VICTIM),
                       FakeVM(sockdir, owner=OTHER), uid=VICTIM)
        # The victim's own directory is used as before.
        shutil.rmtree(sockdir)
        os.mkdir(sockdir, 0o700)
        os.chown(sockdir, VICTIM, VICTIM)
        p = run_as(VICTIM, ["status", "x"], env_with(None))
        expect(p.returncode == 1 and
               "no VM named 'x' (no socket at %s/x.sock)" % sockdir in text(p.stderr),
               "the victim's own directory: no VM", p)
    in_private_tmp(scenario)


if __name__ == "__main__":
    main()
