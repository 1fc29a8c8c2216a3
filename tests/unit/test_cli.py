#!/usr/bin/env python3
"""The petrel command where no VM and no KVM is needed: --help and option errors,
every documented option being taken, and the socket directory the clients
refuse to trust (as root, also as a plain user facing a /tmp/petrel-UID another
user made). Runs in the unit suite."""
import ctypes
import difflib
import fcntl
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import PETREL, case, expect, main, petrel, text  # noqa: E402

COMMANDS = ["run", "pause", "resume", "stop", "status", "snapshot", "console", "list", "stat", "trace",
            "events", "wait", "cache"]
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..")
# Each command's --help as it is meant to read: tests/unit/cli-help/CMD.txt (petrel.txt:
# 'petrel --help'). A change to a help shows in review as a change to its file.
HELP_DIR = os.path.join(HERE, "cli-help")


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
def needs_no_libslirp():
    # libslirp (with glib, pcre2 and libm) is dlopen()ed by --net user alone: as a
    # DT_NEEDED library it was mapped and relocated at every start (docs/architecture.md,
    # start-up).
    p = subprocess.run(["readelf", "-d", PETREL], capture_output=True)
    expect(p.returncode == 0, "readelf -d petrel", p)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", text(p.stdout))
    expect("libc.so.6" in needed, "readelf lists petrel's libraries: %s" % needed, p)
    extra = [n for n in needed if re.match(r"lib(slirp|glib|pcre)", n)]
    expect(not extra, "petrel does not need %s at start" % extra, p)


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


def help_of(cmd):
    p = petrel(cmd, "--help") if cmd else petrel("--help")
    expect(p.returncode == 0 and text(p.stderr) == "", "petrel %s --help: status 0" % cmd, p)
    return text(p.stdout)


# An option line of a --help: "  -k, --kernel FILE     ..." or "      --stats    ...".
OPTION = re.compile(r"^  (?:-(\w), |    )--([a-z][a-z0-9-]*)(?: (\S+))?(?:  |$)")


def documented(cmd):
    """The options in the options section of petrel CMD --help: {name: (short, arg)}."""
    lines = help_of(cmd).splitlines()
    expect("options:" in lines, "petrel %s --help has an options section" % cmd)
    opts = {}
    for line in lines[lines.index("options:") + 1:]:
        if not line:
            break
        m = OPTION.match(line)
        if m:
            opts[m.group(2)] = (m.group(1), m.group(3))
        else:
            expect(line.startswith(" " * 24), "petrel %s --help: an option line or its help "
                   "in column 24: %r" % (cmd, line))
    return opts


@case
def every_help_is_as_written_and_fits_80_columns():
    for cmd in [""] + COMMANDS:
        out = help_of(cmd)
        for line in out.splitlines():
            expect(len(line) < 80, "petrel %s --help: a line of %d columns: %r" %
                   (cmd, len(line), line))
            expect(line == line.rstrip(), "petrel %s --help: blanks at the end of %r" %
                   (cmd, line))
        expect(help_of(cmd) == out, "petrel %s --help: the same twice" % cmd)
        name = os.path.join(HELP_DIR, (cmd or "petrel") + ".txt")
        with open(name) as f:
            want = f.read()
        diff = "".join(difflib.unified_diff(want.splitlines(True), out.splitlines(True),
                                            name, "petrel %s --help" % cmd))
        expect(out == want, "petrel %s --help differs from %s (if the change is meant, "
               "write the new help there):\n%s" % (cmd, name, diff))


def samples(d):
    """A plausible argument for every option of every command (no argument: None), with
    any option it needs besides. Every option a --help documents must have one here, and
    nothing else: a new option is tested as soon as it exists."""
    f = os.path.join(d, "file")
    with open(f, "wb") as out:
        out.write(bytes(512))
    sock = os.path.join(d, "x.sock")
    target = {"api-sock": [sock], "json": [None]}
    return {
        "run": {"kernel": [os.path.join(d, "no-kernel")], "kernel-entry": ["setup"],
                "initrd": [f],
                "cmdline": ["console=ttyS0 quiet"], "cpus": ["2"], "memory": ["512M"],
                "debug-exit": [None], "debugcon": [os.path.join(d, "debugcon")],
                "console": ["virtio,pty"], "name": ["test-cli"],
                "api-sock": [os.path.join(d, "api.sock")], "rng": [None], "testdev": [None],
                "drive": ["path=%s,ro,id=disk0" % f], "stats": [None], "seccomp": ["log"],
                "gdb": ["unix:" + os.path.join(d, "gdb.sock")],
                "net": ["user,hostfwd=tcp:127.0.0.1:1-:22,mac=52:54:00:00:00:02"],
                "trace": ["pio=0x3f8-0x3ff,virtio,control"],
                "trace-file": [os.path.join(d, "trace.log")],
                "restore": [os.path.join(d, "no-snapshot")],
                "restore-clock": ["frozen", "--restore", os.path.join(d, "no-snapshot")]},
        "pause": target, "resume": target, "status": target,
        "stop": {"api-sock": [sock], "graceful": [None], "timeout": ["5", "--graceful"]},
        "list": {"json": [None]},
        "console": {"api-sock": [sock]},
        "snapshot": {"api-sock": [sock], "resume": [None]},
        "stat": {"api-sock": [sock], "json": [None], "watch": ["1"]},
        "trace": {"api-sock": [sock], "json": [None], "on": ["virtio"], "off": ["pio"],
                  "filter": ["irq,control"]},
        "events": target,
        "wait": {"api-sock": [sock], "for": ["Paused"], "timeout": ["5"]},
        "cache": {"older-than": ["30d"], "max-size": ["1G"]},
    }


# What each command is run with to fail in a known way once the options are taken: no
# kernel for run, no VM for the clients (list: none to list).
def baseline(cmd, d):
    return {"run": ["run", "--kernel", os.path.join(d, "no-kernel")],
            "list": ["list"],
            "cache": ["cache", "prune"],
            "snapshot": ["snapshot", "--api-sock", os.path.join(d, "x.sock"), d],
            # Waiting for Stopped when no VM runs is done at once (status 0).
            "wait": ["wait", "--api-sock", os.path.join(d, "x.sock"), "--for", "Running"],
            }.get(cmd, [cmd, "--api-sock", os.path.join(d, "x.sock")])


# Options that replace what the baseline fails on: each with its own baseline and failure.
def option_baseline(cmd, name, d):
    if cmd == "run" and name in ("restore", "restore-clock"):
        return ["run", "--restore", os.path.join(d, "no-snapshot")], "no-snapshot"
    return None, None


@case
def every_documented_option_is_taken():
    # Each option of a --help, long and short, with a plausible argument, added to a command
    # line that fails on something else (a missing kernel, a missing VM): it fails the same
    # way, not as a bad command line (status 2).
    d = tempfile.mkdtemp(prefix="petrel-test-cli.")
    try:
        env = env_with(d)
        all_samples = samples(d)
        for cmd in COMMANDS:
            opts = documented(cmd)
            want = all_samples[cmd]
            expect(set(opts) == set(want) | {"help"},
                   "petrel %s --help documents %s; this test has samples for %s" %
                   (cmd, sorted(opts), sorted(set(want) | {"help"})))
            base = baseline(cmd, d)
            b = base_run = run_as(None, base, env)
            expect(b.returncode == (0 if cmd in ("list", "cache") else 1), "petrel %s: status" % cmd,
                   b)
            if cmd == "run":
                expect("no-kernel" in text(b.stderr), "run: the error is the kernel", b)
            for name, (short, arg) in sorted(opts.items()):
                if name == "help":
                    continue
                value, extra = want[name][0], want[name][1:]
                base, b = baseline(cmd, d), base_run
                own, words = option_baseline(cmd, name, d)
                if own:
                    base, b = own, run_as(None, own, env)
                    expect(b.returncode == 1 and words in text(b.stderr),
                           "petrel %s: status and error" % " ".join(own), b)
                    if name == "restore":
                        continue  # the baseline is this option
                expect((arg is None) == (value is None),
                       "petrel %s --%s: takes an argument (%s) as the sample does" %
                       (cmd, name, arg))
                for form in ["--" + name] + (["-" + short] if short else []):
                    args = base + [form] + ([value] if value is not None else []) + extra
                    p = run_as(None, args, env)
                    expect(p.returncode == b.returncode and p.stderr == b.stderr,
                           "petrel %s: %s is taken (the same failure as without it)" %
                           (" ".join(args[1:] if cmd != "run" else args), form), p)
    finally:
        shutil.rmtree(d)


@case
def short_options_are_the_documented_ones():
    # The letters a short option would likely be: any command's short options and the
    # first letter of any long one (the getopt keys of long-only options were letters).
    opts = {cmd: documented(cmd) for cmd in COMMANDS}
    letters = set()
    for o in opts.values():
        letters |= {name[0] for name in o} | {short for short, _ in o.values() if short}
    letters |= {c.upper() for c in letters}
    for cmd in COMMANDS:
        shorts = {short for short, _ in opts[cmd].values() if short}
        for c in sorted(letters):
            if c in shorts:
                continue
            p = petrel(cmd, "-" + c)
            expect(p.returncode == 2 and
                   first_line(p) == "petrel %s: invalid option -- '%s'" % (cmd, c),
                   "petrel %s -%s is not an option" % (cmd, c), p)


def commands_in(path):
    """The petrel command lines in path's code blocks: (command, line), a line that starts
    with blanks continuing the one before it."""
    found, block, last = [], False, None
    with open(path) as f:
        for line in f:
            if line.startswith("```"):
                block, last = not block, None
                continue
            if not block:
                continue
            m = re.match(r"(?:\S*/)?petrel (\w+)(.*)", line)
            if m:
                last = m.group(1)
                found.append((last, m.group(2)))
            elif last and line[:1].isspace():
                found.append((last, line))
            else:
                last = None
    return found


@case
def readme_and_docs_name_real_options():
    # The usage lines of README.md and docs/*.md use only options petrel has.
    docs = os.path.join(SOURCE, "docs")
    paths = [os.path.join(SOURCE, "README.md")] + sorted(
        os.path.join(docs, n) for n in os.listdir(docs) if n.endswith(".md"))
    opts, seen = {}, 0
    for path in paths:
        for cmd, line in commands_in(path):
            if cmd not in COMMANDS:
                continue
            opts.setdefault(cmd, documented(cmd))
            for name in re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", line):
                seen += 1
                expect(name in opts[cmd], "%s: petrel %s has no --%s: %r" %
                       (os.path.relpath(path, SOURCE), cmd, name, line.strip()))
    expect(seen >= 10, "the docs' command lines were found (%d options)" % seen)


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
    env["XDG_CACHE_HOME"] = os.path.join(xdg or "/nonexistent", "cache")  # never the user's
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
