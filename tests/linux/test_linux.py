#!/usr/bin/env python3
"""Stock Debian Linux under petrel: the default Linux guest (scripts/mkguest) booted a
few ways, each boot running several checks through the guest's serial console. The
kernel is booted in both forms petrel takes: the bzImage (vmlinuz, unchanged, through its
own decompressor) and the uncompressed ELF vmlinux (straight into the kernel), each with
2 vCPUs (the ELF also with 1) across the scenarios.

test_linux.py [SCENARIO...] runs every scenario (or the named ones) and prints one line
per check ("ok   name" / "FAIL name"), then "N passed, N failed" (what scripts/test
counts). Every scenario has a hard time limit (PETREL_LINUX_TIMEOUT, default 300 s): a
guest that hangs fails its remaining checks and petrel is killed. It runs wherever
/dev/kvm can boot Linux: directly on VT-x/AMD-V hosts, or inside the nested harness
(tests/nested/run); the first line says which.

Each scenario's console (petrel's output) is written as it arrives to
LINUX_GUEST_DIR/logs/SCENARIO.log, so that it shows how far a guest got even when the
nested harness's L1 froze.

Environment (meson sets them; by hand they default to ./build's): PETREL (the binary),
LINUX_GUEST_DIR (where scripts/mkguest puts vmlinuz, vmlinux and initrd.gz), LINUX_MKGUEST
(scripts/mkguest: run first, a no-op when the guest is current), PETREL_LINUX_TIMEOUT.
"""
import fcntl
import hashlib
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "..", "..", "build")
# By hand, without meson: ./build's petrel and guest.
os.environ.setdefault("PETREL", os.path.normpath(os.path.join(BUILD, "src", "petrel")))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import PETREL, api, diagnose, text  # noqa: E402

GUEST_DIR = os.environ.get("LINUX_GUEST_DIR",
                           os.path.normpath(os.path.join(BUILD, "tests", "linux")))
MKGUEST = os.environ.get("LINUX_MKGUEST", os.path.join(HERE, "..", "..", "scripts", "mkguest"))
VMLINUZ = os.path.join(GUEST_DIR, "vmlinuz")
VMLINUX = os.path.join(GUEST_DIR, "vmlinux")
INITRD = os.path.join(GUEST_DIR, "initrd.gz")
ALLOWLIST = os.path.join(HERE, "bootlog-allow.txt")
LIMIT = float(os.environ.get("PETREL_LINUX_TIMEOUT", "300"))
NESTED = os.environ.get("PETREL_NESTED") == "1"

READY = "petrel-guest: ready"
# Boot-log lines that need an explanation (bootlog-allow.txt).
FLAGGED = re.compile(r"timeout|missing|fail|bug|firmware|warning|error|broken|fatal", re.I)


class Lost(Exception):
    """The guest is gone or out of time: the scenario's remaining checks cannot run."""


class Guest:
    """petrel booting the default Linux guest, its console on pipes.

    Output is collected by a reader thread; the test types on petrel's standard input
    (petrel passes a non-tty stdin's bytes to the UART) and waits for answers."""

    def __init__(self, name, kernel, cpus, memory, cmdline, args=(), prepare=None, wrap=(),
                 env=None):
        self.tmp = tempfile.TemporaryDirectory()
        # More environment for petrel, @TMP@ in its values as in args.
        self.env = dict(os.environ, **{k: v.replace("@TMP@", self.tmp.name)
                                       for k, v in (env or {}).items()})
        # A scenario's files (disk images) go in the temporary directory, @TMP@ in args.
        if prepare:
            prepare(self.tmp.name)
        args = [a.replace("@TMP@", self.tmp.name) for a in args]
        self.sock = os.path.join(self.tmp.name, "api.sock")
        self.memory = memory
        self.restored = []
        self.t0 = time.monotonic()
        self.deadline = self.t0 + LIMIT
        self.argv = [*wrap, PETREL, "run", "--kernel", kernel, "--initrd", INITRD, "--cmdline",
                     cmdline, "--cpus", str(cpus), "--memory", memory, "--name",
                     "%s-%d" % (name, os.getpid()), "--api-sock", self.sock, *args]
        self._start(name, self.argv)

    def rerun(self, suffix):
        """The same petrel run again, once this one has exited, in a new process with the
        same temporary directory and environment, within this scenario's time limit."""
        r = Guest.__new__(Guest)
        r.tmp = None
        r.sock = self.sock
        r.memory = self.memory
        r.restored = []
        r.env = self.env
        r.argv = self.argv
        r.t0 = time.monotonic()
        r.deadline = self.deadline
        self.restored.append(r)
        r._start("%s-%s" % (self.name, suffix), self.argv)
        return r

    def _start(self, name, argv):
        self.name = name
        os.makedirs(os.path.join(GUEST_DIR, "logs"), exist_ok=True)
        self.log = open(os.path.join(GUEST_DIR, "logs", name + ".log"), "wb", buffering=0)
        self.n = 0
        self.ready_at = None
        self.started = time.time()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     env=getattr(self, "env", None))
        self.cond = threading.Condition()
        self.buf = bytearray()
        self.eof = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def restore(self, suffix, snapshot, args=()):
        """petrel run --restore SNAPSHOT (more options in args) in a new process: a Guest
        on its console and its own API socket, within this scenario's time limit, closed
        with this one. Its log is logs/SCENARIO-SUFFIX.log. The machine, drives included
        (their files in this guest's directory), is the snapshot's."""
        r = Guest.__new__(Guest)
        r.tmp = None
        r.sock = os.path.join(self.tmp.name, suffix + ".sock")
        r.memory = self.memory
        r.restored = []
        r.env = self.env
        r.t0 = time.monotonic()
        r.deadline = self.deadline
        self.restored.append(r)
        r._start("%s-%s" % (self.name, suffix),
                 [PETREL, "run", "--restore", snapshot, "--name",
                  "%s-%s-%d" % (self.name, suffix, os.getpid()), "--api-sock", r.sock, *args])
        return r

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
            self.log.write(chunk)
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.buf += chunk
                self.cond.notify_all()

    def output(self, start=0):
        """The console so far (petrel's stderr included), without CRs."""
        with self.cond:
            return text(bytes(self.buf[start:])).replace("\r", "")

    def mark(self):
        with self.cond:
            return len(self.buf)

    def left(self):
        return self.deadline - time.monotonic()

    def wait_for(self, pattern, start=0, what=None, limit=None):
        """Waits until pattern (a string, or a compiled regex) appears in the output
        after byte offset start; returns the match. Raises Lost if petrel exits or the
        scenario's time (or the limit, in seconds, if sooner) runs out."""
        rx = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        deadline = min(self.deadline, time.monotonic() + (limit or LIMIT))
        with self.cond:
            while True:
                m = rx.search(text(bytes(self.buf[start:])).replace("\r", ""))
                if m:
                    return m
                if self.eof:
                    raise Lost("petrel exited (status %s) before %s" %
                               (self.proc.wait(), what or repr(rx.pattern)))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Lost("%s did not come within %d s" %
                               (what or repr(rx.pattern), limit if limit and limit < LIMIT
                                else LIMIT))
                self.cond.wait(min(left, 1.0))

    def type(self, s):
        """Types s on the console."""
        try:
            self.proc.stdin.write(s.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise Lost("petrel's console input is closed (status %s)" % self.proc.poll())

    def boot(self):
        """Waits for the guest's ready line; returns the console up to and including it."""
        m = self.wait_for(re.compile(re.escape(READY) + r".*\n"), what="the ready line")
        self.ready_at = time.monotonic() - self.t0
        return self.output()[:m.end()]

    def sh(self, cmd, limit=None):
        """Runs cmd in the guest's shell; returns (exit status, its output). Markers
        around it are written as arithmetic, so that a typed (echoed) command line
        never looks like its answer."""
        self.n += 1
        n = self.n
        start = self.mark()
        self.type("echo @@B$((%d))@@; %s; echo @@E$((%d)):$?@@\n" % (n, cmd, n))
        try:
            b = self.wait_for("@@B%d@@\n" % n, start, what="the start of `%s`" % cmd,
                              limit=limit)
            e = self.wait_for(re.compile(r"@@E%d:(\d+)@@" % n), start,
                              what="the end of `%s`" % cmd, limit=limit)
        except Lost as lost:
            # busybox init starts a new shell (its banner) when the one we typed to ends.
            if "BusyBox v" in self.output(start):
                raise Lost("%s; the guest's shell ended meanwhile and init started a new one"
                           % lost)
            raise
        out = self.output(start)[b.end():e.start()]
        return int(e.group(1)), out

    def sh_ok(self, cmd):
        status, out = self.sh(cmd)
        check(status == 0, "`%s` exited %d: %r" % (cmd, status, out[-1000:]))
        return out

    def exit_status(self):
        """Waits for petrel to exit (within the scenario's limit); returns its status."""
        try:
            rc = self.proc.wait(timeout=max(self.left(), 1))
        except subprocess.TimeoutExpired:
            raise Lost("petrel did not exit within the scenario's %d s limit" % LIMIT)
        self.reader.join(timeout=10)
        return rc

    def close(self):
        for r in self.restored:
            r.close()
        if self.proc.poll() is None:
            diagnose(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.log):
            try:
                f.close()
            except OSError:
                pass
        if self.tmp:
            self.tmp.cleanup()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def need(cond, what):
    """A check that the scenario's remaining ones depend on: it ends the scenario."""
    if not cond:
        raise Lost(what)


# ---- the boot-log allowlist ----------------------------------------------------------

def load_allowlist(path=ALLOWLIST):
    """Entries of bootlog-allow.txt: dicts with pattern (compiled), nested_only, reason."""
    entries = []
    cur = None
    with open(path) as f:
        for no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            if line[0] in " \t":
                if cur is None:
                    raise ValueError("%s:%d: a reason without a pattern" % (path, no))
                cur["reason"] += line.strip() + " "
                continue
            nested_only = line.startswith("[nested] ")
            pat = line[len("[nested] "):] if nested_only else line
            cur = {"pattern": re.compile(pat, re.I), "nested_only": nested_only,
                   "reason": "", "line": no, "used": 0}
            entries.append(cur)
    for e in entries:
        if not e["reason"].strip():
            raise ValueError("%s:%d: pattern %r has no reason" % (path, e["line"],
                                                                 e["pattern"].pattern))
    return entries


def bootlog_units(log):
    """Splits a console log into units to judge: a kernel WARNING/BUG report from its
    "cut here" line to its WARNING:/BUG: line (the register dump and call trace after it
    are not judged: its frames are named things like report_bug) as one unit, every other
    line as one. Timestamps are dropped. Returns (text, lines) pairs."""
    units = []
    lines = [re.sub(r"^\[ *\d+\.\d+\] ", "", ln) for ln in log.split("\n")]
    i = 0
    while i < len(lines):
        ln = lines[i]
        if "[ cut here ]" in ln:
            j = i + 1
            while j < len(lines) and not re.match(r"(WARNING|BUG|kernel BUG)\b", lines[j]):
                j += 1
            head = lines[i + 1:j + 1]
            k = j
            while k < len(lines) and "---[ end trace" not in lines[k]:
                k += 1
            units.append((" | ".join(head), lines[i:k + 1]))
            i = k + 1
            continue
        units.append((ln, [ln]))
        i += 1
    return units


def unexplained(log, entries):
    """The flagged units of log that no entry accepts (entries' use counts go up)."""
    bad = []
    for unit, lines in bootlog_units(log):
        if not FLAGGED.search(unit):
            continue
        for e in entries:
            if e["nested_only"] and not NESTED:
                continue
            if e["pattern"].search(unit):
                e["used"] += 1
                break
        else:
            bad.append(unit)
    return bad


# ---- scenarios ------------------------------------------------------------------------

SCENARIOS = []


def scenario(checks, kernel, cpus, memory, cmdline, args=(), prepare=None, wrap=(), env=None):
    """Registers a scenario: one boot of kernel (VMLINUZ or VMLINUX) with these settings
    (args: more petrel run options, where @TMP@ is the guest's temporary directory, which
    prepare(dir) fills first; wrap: a command petrel runs under, e.g. ip netns exec NS),
    running the named checks in that order (declared up front, so that a boot that dies
    still counts every check)."""
    def deco(fn):
        SCENARIOS.append({"fn": fn, "name": fn.__name__, "checks": checks, "kernel": kernel,
                          "cpus": cpus, "memory": memory, "cmdline": cmdline, "args": args,
                          "prepare": prepare, "wrap": wrap, "env": env})
        return fn
    return deco


class Run:
    """Results of one scenario's checks."""

    def __init__(self, sc, guest):
        self.sc = sc
        self.g = guest
        self.done = []
        self.passed = 0
        self.failed = 0

    def check(self, name):
        run = self

        class Ctx:
            def __enter__(self):
                expected = run.sc["checks"][len(run.done)]
                assert name == expected, "check %s out of order (expected %s)" % (name, expected)
                self.t = time.monotonic()

            def __exit__(self, typ, val, tb):
                run.done.append(name)
                took = time.monotonic() - self.t
                if typ is None:
                    run.passed += 1
                    print("ok   %-44s %6.2fs" % (name, took), flush=True)
                    return False
                run.failed += 1
                print("FAIL %-44s %6.2fs" % (name, took), flush=True)
                if typ is AssertionError or typ is Lost:
                    print("     %s" % str(val).replace("\n", "\n     "))
                else:
                    traceback.print_exception(typ, val, tb)
                sys.stdout.flush()
                return typ is AssertionError   # Lost and bugs end the scenario
        return Ctx()


def typed_command_answered(g):
    g.type("echo typed-$((6*7))\n")
    g.wait_for("typed-42\n", what="the answer to a typed `echo typed-$((6*7))`")
    # From here on the test talks to the shell without echo (clean answers). ash then
    # reads its lines with fgets(), which a SIGCHLD ends: see start_busy_loops().
    status, _ = g.sh("stty -echo")
    check(status == 0, "stty -echo failed")


def start_busy_loops(g):
    """Starts two busy loops in the guest, at nice 19 so that the shell still answers;
    returns their pids. Each is started by a subshell that exits at once, so that the
    loops are init's children, not the shell's. The shell must never have a child that
    ends while it waits at its prompt: with echo off (typed_command_answered) busybox
    ash 1.35 reads its command line with fgets(), a SIGCHLD interrupts that read
    (EINTR: ash's handler has no SA_RESTART), and ash takes it for the end of its input
    and exits. A loop killed later would end the shell whenever its SIGCHLD came after
    the next prompt (two_vcpus failed so about one run in five)."""
    out = g.sh_ok("for i in 1 2; do (sh -c 'renice 19 $$ && while :; do :; done' & "
                  "echo busy=$!); done")
    busy = re.findall(r"busy=(\d+)", out)
    need(len(busy) == 2, "the busy loops did not start: %r" % out)
    return busy


def nproc_is(g, n):
    out = g.sh_ok("nproc; grep -c ^processor /proc/cpuinfo; "
                  "grep -c '^flags.* tsc_deadline_timer' /proc/cpuinfo").split()
    check(out[:2] == [str(n), str(n)], "nproc and /proc/cpuinfo say %r, expected %d" % (out, n))
    # petrel sets the CPUID bit KVM leaves to userspace; without it Linux spends boot time
    # calibrating the LAPIC timer.
    check(out[2:] == [str(n)], "not every vCPU has tsc_deadline_timer: %r" % out)


def memtotal_matches(g):
    out = g.sh_ok("grep MemTotal /proc/meminfo")
    m = re.search(r"MemTotal:\s+(\d+) kB", out)
    check(m, "no MemTotal in %r" % out)
    kib = int(m.group(1))
    want = int(g.memory.rstrip("M")) * 1024
    # The kernel keeps its own code, page tables and reservations out of MemTotal.
    check(0.80 * want <= kib <= want,
          "MemTotal %d kB is not 80-100%% of --memory %s (%d kB)" % (kib, g.memory, want))


def date_matches_host(g):
    # The system clock (Linux takes it from kvmclock's wall clock, else the RTC) and the
    # CMOS RTC itself (what hwclock and kernels without kvmclock read).
    out = g.sh_ok("date +%s; cat /sys/class/rtc/rtc0/since_epoch 2>/dev/null || echo no-rtc; date")
    words = out.split()
    host = time.time()
    check(words[1] != "no-rtc", "the guest has no RTC (/sys/class/rtc/rtc0 is missing; "
          "petrel's CMOS RTC at ports 0x70-0x71 was not found):\n%s" % out)
    for what, t in (("system clock", int(words[0])), ("RTC", int(words[1]))):
        check(abs(t - host) < 60,
              "the guest's %s says %d (%s), the host's %d (%s): %+d s apart"
              % (what, t, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)), host,
                 time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(host)), t - host))


def ctrl_c_interrupts_a_command(g):
    # The shell has the console's tty as its controlling terminal (cttyhack), so
    # Ctrl-C reaches the command it runs in the foreground.
    # The subshell prints from inside the foreground job and then becomes `sleep`:
    # once its line is out, a Ctrl-C reaches the job whether or not exec is done;
    # the shell answering within 30 s shows `sleep 1000` was interrupted.
    start = g.mark()
    g.type("(echo sleep$((1000)); exec sleep 1000)\n")
    g.wait_for("sleep1000\n", start, what="`sleep 1000` starting", limit=30)
    g.type("\x03")
    g.sh("true", limit=30)


def ends_with(g, command, status=0, shows=None):
    """Types command (which ends the guest) and checks petrel's exit status and output."""
    start = g.mark()
    g.type(command + "\n")
    rc = g.exit_status()
    out = g.output(start)
    check(rc == status, "`%s`: petrel exited %s, expected %d; output after it:\n%s"
          % (command, rc, status, out[-1500:]))
    for s in shows or ():
        check(s in out, "`%s`: no %r in the output after it:\n%s" % (command, s, out[-1500:]))


@scenario(["boots_1_vcpu", "typed_command_answered", "ctrl_c_interrupts_a_command", "nproc_1",
           "memtotal_256M", "date_matches_host", "poweroff_exits_0"],
          kernel=VMLINUX, cpus=1, memory="256M", cmdline="console=ttyS0 quiet")
def one_vcpu(r, g):
    with r.check("boots_1_vcpu"):
        g.boot()
    with r.check("typed_command_answered"):
        typed_command_answered(g)
    with r.check("ctrl_c_interrupts_a_command"):
        ctrl_c_interrupts_a_command(g)
    with r.check("nproc_1"):
        nproc_is(g, 1)
    with r.check("memtotal_256M"):
        memtotal_matches(g)
    with r.check("date_matches_host"):
        date_matches_host(g)
    with r.check("poweroff_exits_0"):
        # busybox init shuts down, then the kernel enters ACPI S5.
        ends_with(g, "poweroff", shows=["The system is going down", "reboot: Power down"])


COLD = ("kernel booted as bzImage; its payload is being decompressed into the kernel cache in "
        "the background")
WARM = "kernel booted as the bzImage's payload, from the kernel cache"


@scenario(["cache_cold_boots_1_vcpu", "cache_cold_typed_command_answered", "cache_cold_nproc_1",
           "cache_cold_memtotal_256M", "cache_cold_poweroff_exits_0", "cache_cold_entry_made",
           "cache_warm_boots_1_vcpu", "cache_warm_typed_command_answered", "cache_warm_nproc_1",
           "cache_warm_poweroff_exits_0", "cache_warm_entry_found"],
          kernel=VMLINUZ, cpus=1, memory="256M", cmdline="console=ttyS0 quiet",
          args=("--stats",), env={"XDG_CACHE_HOME": "@TMP@/cache"})
def bzimage_cache(r, g):
    # Debian's bzImage as a user boots /boot/vmlinuz-*: the first boot runs its own
    # decompressor while a filler decompresses its payload on the host into the cache,
    # the second boots the cached vmlinux; both pass what the vmlinux scenario (one_vcpu)
    # checks.
    for phase, want in (("cold", COLD), ("warm", WARM)):
        with r.check("cache_%s_boots_1_vcpu" % phase):
            g.boot()
        with r.check("cache_%s_typed_command_answered" % phase):
            typed_command_answered(g)
        with r.check("cache_%s_nproc_1" % phase):
            nproc_is(g, 1)
        if phase == "cold":
            with r.check("cache_cold_memtotal_256M"):
                memtotal_matches(g)
        with r.check("cache_%s_poweroff_exits_0" % phase):
            ends_with(g, "poweroff", shows=["The system is going down", "reboot: Power down"])
        with r.check("cache_%s_entry_%s" % (phase, "made" if phase == "cold" else "found")):
            out = g.output()
            check(want in out, "petrel did not say %r; its stats:\n%s"
                  % (want, "\n".join(ln for ln in out.splitlines() if "petrel" in ln)))
            check("petrel: kernel " not in out, "petrel had a note on the kernel:\n%s"
                  % "\n".join(ln for ln in out.splitlines() if "petrel: kernel" in ln))
            kernels = os.path.join(g.env["XDG_CACHE_HOME"], "petrel", "kernels")
            if phase == "cold":  # the filler holds a lock until the entry is written: the
                # bzImage file's (id-DEV-INO.lock) while it hashes, then the key's
                with open(VMLINUZ, "rb") as f:
                    key = hashlib.sha256(f.read()).hexdigest()
                st = os.stat(VMLINUZ)
                for name in ("id-%x-%x.lock" % (st.st_dev, st.st_ino), key + ".lock"):
                    lock = os.path.join(kernels, name)
                    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    os.close(fd)
                    if os.path.exists(lock):
                        os.unlink(lock)
            check(len([n for n in os.listdir(kernels) if n.endswith(".vmlinux")]) == 1,
                  "not one entry in %s: %r" % (kernels, os.listdir(kernels)))
        if phase == "cold":
            g = g.rerun("warm")


@scenario(["boots_2_vcpus", "nproc_2", "memtotal_512M", "virtio_rng_gives_bytes",
           "pause_resume_no_soft_lockup", "reboot_exits_0"],
          kernel=VMLINUZ, cpus=2, memory="512M", cmdline="console=ttyS0 quiet",
          args=("--rng", "--kernel-entry", "setup"))
def two_vcpus(r, g):
    with r.check("boots_2_vcpus"):
        g.boot()
        typed_command_answered(g)
    with r.check("nproc_2"):
        nproc_is(g, 2)
    with r.check("memtotal_512M"):
        memtotal_matches(g)
    with r.check("virtio_rng_gives_bytes"):
        # Debian's virtio_pci and virtio_rng find petrel's device on PCI bus 0 (MSI-X).
        out = g.sh_ok("cat /sys/class/misc/hw_random/rng_available; "
                      "head -c 4096 /dev/hwrng | od -An -tx1 | tr -s ' \\n' '\\n' | "
                      "grep -c .; head -c 4096 /dev/hwrng | od -An -tx1 | tr -s ' \\n' '\\n' "
                      "| sort -u | grep -c .")
        words = out.split()
        check("virtio_rng.0" in words, "no virtio_rng.0 in rng_available: %r" % out)
        check(len(words) >= 3 and words[-2] == "4096",
              "/dev/hwrng did not give 4096 bytes: %r" % out)
        # 4096 random bytes take (almost surely) at least 200 of the 256 values.
        check(int(words[-1]) >= 200, "/dev/hwrng's bytes do not look random: %r" % out)
    with r.check("pause_resume_no_soft_lockup"):
        # The soft-lockup watchdog fires when a CPU has not scheduled for 2 x
        # watchdog_thresh seconds by the guest's clock, which runs on during a pause;
        # petrel tells the guest it was stopped (KVM_KVMCLOCK_CTRL) so that it does not.
        # Lowering the threshold to 6 s makes a pause of 8 s a real test of that. Both
        # vCPUs are busy across the pause (a loop each at nice 19, so the shell still
        # answers): an idle CPU's first interrupt after the clock's jump touches the
        # watchdog (tick_nohz_update_jiffies()), so an idle guest reports nothing either
        # way (see the snapshot scenario).
        g.sh_ok("echo 3 > /proc/sys/kernel/watchdog_thresh")
        busy = start_busy_loops(g)
        status, _, body = api(g.sock, "PATCH", "/vm", {"state": "Paused"})
        check(status == 204, "pause: %d %s" % (status, body))
        time.sleep(8)  # the pause's length, not a wait for anything
        status, _, body = api(g.sock, "PATCH", "/vm", {"state": "Resumed"})
        check(status == 204, "resume: %d %s" % (status, body))
        # Let each CPU's watchdog timer run a few times (every 2/5 of the threshold).
        g.sh_ok("sleep 3")
        status, out = g.sh("kill %s" % " ".join(busy))
        check(status == 0, "the busy loops (pids %s) did not run across the pause: %r"
              % (" ".join(busy), out))
        status, out = g.sh("dmesg | grep -i -A3 'soft lockup'")
        check(status == 1, "soft lockup reported after the pause:\n%s" % out[-2000:])
    with r.check("reboot_exits_0"):
        # Through busybox init, then the kernel's reset (the ACPI reset register).
        ends_with(g, "reboot", shows=["The system is going down", "reboot: Restarting system"])


RO_MAGIC = b"petrel-ro-disk"


def make_drives(d):
    """vda: 8 MiB of zeros; vdb: 1 MiB that starts with RO_MAGIC (attached read-only)."""
    with open(os.path.join(d, "a.img"), "wb") as f:
        f.truncate(8 << 20)
    with open(os.path.join(d, "b.img"), "wb") as f:
        f.write(RO_MAGIC)
        f.truncate(1 << 20)


@scenario(["boots_with_2_drives", "drive_sizes_serials_ro", "ro_drive_reads_refuses_writes",
           "writes_read_back_after_drop_caches", "discard_and_write_zeroes",
           "synced_data_in_the_file_after_poweroff"],
          kernel=VMLINUX, cpus=2, memory="256M", cmdline="console=ttyS0 quiet",
          args=("--drive", "path=@TMP@/a.img,id=petrel-a", "--drive", "path=@TMP@/b.img,ro"),
          prepare=make_drives)
def drives(r, g):
    with r.check("boots_with_2_drives"):
        g.boot()
        typed_command_answered(g)
    with r.check("drive_sizes_serials_ro"):
        # Debian's virtio_blk finds both functions, in command-line order.
        out = g.sh_ok("cat /sys/block/vda/size /sys/block/vdb/size /sys/block/vda/ro "
                      "/sys/block/vdb/ro /sys/block/vda/serial; echo; cat /sys/block/vdb/serial")
        words = out.split()
        check(words[:6] == ["16384", "2048", "0", "1", "petrel-a", "b.img"],
              "sizes, ro flags and serials of vda and vdb: %r" % out)
    with r.check("ro_drive_reads_refuses_writes"):
        out = g.sh_ok("head -c %d /dev/vdb" % len(RO_MAGIC))
        check(RO_MAGIC.decode() in out, "vdb does not start with %r: %r" % (RO_MAGIC, out))
        status, out = g.sh("echo x | dd of=/dev/vdb 2>&1")
        check(status != 0, "a write to the read-only vdb succeeded: %r" % out)
    with r.check("writes_read_back_after_drop_caches"):
        # 1 MiB of random data at 64 KiB, and a marker in sector 100; fsync sends FLUSH.
        g.sh_ok("dd if=/dev/urandom of=/tmp/r bs=64k count=16 2>/dev/null; "
                "dd if=/tmp/r of=/dev/vda bs=64k seek=1 conv=fsync 2>/dev/null; "
                "printf petrel-vda | dd of=/dev/vda bs=512 seek=100 conv=sync,fsync 2>/dev/null")
        out = g.sh_ok("echo 3 > /proc/sys/vm/drop_caches; md5sum < /tmp/r; "
                      "dd if=/dev/vda bs=64k skip=1 count=16 2>/dev/null | md5sum; "
                      "head -c 983040 /tmp/r | md5sum")
        sums = re.findall(r"\b[0-9a-f]{32}\b", out)
        check(len(sums) == 3 and sums[0] == sums[1], "vda read back differs: %r" % out)
        g.md5_15 = sums[2]   # the first 15 blocks, which stay
    with r.check("discard_and_write_zeroes"):
        out = g.sh_ok("cat /sys/block/vda/queue/discard_max_bytes "
                      "/sys/block/vda/queue/write_zeroes_max_bytes "
                      "/sys/block/vdb/queue/discard_max_bytes")
        words = out.split()
        check(len(words) == 3 and int(words[0]) > 0 and int(words[1]) > 0 and words[2] == "0",
              "discard/write-zeroes limits of vda and vdb: %r" % out)
        # The last 64 KiB of the random data (at 1 MiB): discarded (BLKDISCARD drops the
        # guest's cached copy too). petrel punches a hole there, so it reads back as zeros.
        status, out = g.sh("blkdiscard -o 1048576 -l 65536 /dev/vda 2>&1")
        check(status == 0, "blkdiscard failed: %r" % out)
        out = g.sh_ok("echo 3 > /proc/sys/vm/drop_caches; "
                      "dd if=/dev/vda bs=64k skip=16 count=1 2>/dev/null > /tmp/z; "
                      "wc -c < /tmp/z; od -An -v -tx1 < /tmp/z | tr -d ' \\n0' | wc -c")
        check(out.split() == ["65536", "0"],
              "vda's discarded 64 KiB: %r (bytes, non-zero digits)" % out)
    with r.check("synced_data_in_the_file_after_poweroff"):
        ends_with(g, "poweroff", shows=["reboot: Power down"])
        with open(os.path.join(g.tmp.name, "a.img"), "rb") as f:
            img = f.read()
        check(img[100 * 512:100 * 512 + 10] == b"petrel-vda",
              "sector 100 of a.img: %r" % img[100 * 512:100 * 512 + 16])
        check(hashlib.md5(img[1 << 16:16 << 16]).hexdigest() == g.md5_15,
              "a.img's bytes at 64 KiB differ from what the guest wrote")
        check(img[16 << 16:17 << 16] == bytes(65536), "a.img's discarded 64 KiB are not zeros")


ROOT_IMAGE = os.path.join(GUEST_DIR, "root.ext4")


def sbin(tool):
    """e2fsprogs' tools live in /sbin, which a user's PATH may lack."""
    return shutil.which(tool) or os.path.join("/sbin", tool)


def copy_root(d):
    """A copy of mkguest's root.ext4: the guest writes to it."""
    with open(ROOT_IMAGE, "rb") as src, open(os.path.join(d, "root.ext4"), "wb") as dst:
        dst.write(src.read())


@scenario(["boots_with_root_on_vda", "root_is_ext4_on_vda_rw", "pci_functions_listed",
           "synced_file_in_the_image_after_poweroff"],
          kernel=VMLINUX, cpus=1, memory="256M", cmdline="console=ttyS0 quiet root=/dev/vda rw",
          args=("--drive", "path=@TMP@/root.ext4"), prepare=copy_root)
def root_on_vda(r, g):
    with r.check("boots_with_root_on_vda"):
        # The initramfs loads ext4, mounts /dev/vda and switch_roots; the image's /init
        # says where the root is.
        log = g.boot()
        check("root /dev/vda ext4)" in log, "the ready line does not name /dev/vda:\n%s"
              % log[-600:])
        typed_command_answered(g)
    with r.check("root_is_ext4_on_vda_rw"):
        out = g.sh_ok("awk '$2 == \"/\"' /proc/mounts")
        check(re.search(r"^/dev/vda / ext4 rw\b", out, re.M),
              "/ is not /dev/vda, ext4, read-write: %r" % out)
    with r.check("pci_functions_listed"):
        # What lspci would say (busybox has none): the host bridge and the disk.
        out = g.sh_ok("for d in /sys/bus/pci/devices/*; do echo ${d##*/} $(cat $d/vendor "
                      "$d/device $d/class); done")
        check("0000:00:00.0 0x8086 0x0d57 0x060000" in out, "no host bridge: %r" % out)
        check(re.search(r"0000:00:0[0-9a-f]\.0 0x1af4 0x1042 0x01", out),
              "no virtio-blk function (1af4:1042, class storage): %r" % out)
    with r.check("synced_file_in_the_image_after_poweroff"):
        g.sh_ok("echo petrel-root-$$ > /root/written; sync; cat /root/written")
        ends_with(g, "poweroff", shows=["reboot: Power down"])
        img = os.path.join(g.tmp.name, "root.ext4")
        got = subprocess.run([sbin("debugfs"), "-R", "cat /root/written", img],
                             capture_output=True, timeout=60)
        check(text(got.stdout).startswith("petrel-root-"),
              "/root/written in the image: %r %r" % (got.stdout, got.stderr[-300:]))
        # busybox init remounted / read-only at poweroff: the image is clean.
        fsck = subprocess.run([sbin("e2fsck"), "-fn", img], capture_output=True, timeout=60)
        check(fsck.returncode == 0, "e2fsck -fn exited %d: %s"
              % (fsck.returncode, text(fsck.stdout + fsck.stderr)[-800:]))


# ---- snapshot and restore -------------------------------------------------------------

# Lines after the snapshot that say the restore looked like a hang or broke the clock:
# never accepted (the allowlist does not apply to them).
RESTORE_HAZARDS = re.compile(r"lockup|hung.task|blocked for more than|stall|clocksource|"
                             r"unstable|watchdog|skew|timekeeping|time went backwards", re.I)
# The catch-up restore's clock: within 1 s of the host's (the figure). The guest's
# reading is bracketed by host times taken before the command is typed and after its
# answer, so the console's latency is not part of it; KVM sets the clock to the
# microsecond (saved clock + host realtime elapsed), and the guest's own offset from the
# host before the snapshot (kvmclock's wall clock at boot) is well under that.
CATCH_UP_TOLERANCE = 1.0
# How far a restored guest's clock may be off what the host's times around the snapshot
# and the restore allow (the frozen lag, CLOCK_MONOTONIC's advance). Every reading is
# bracketed by host times, so this only absorbs the guest's clock running at a rate a
# little off the host's (parts per million over a minute) and the readings' rounding.
BRACKET_SLACK = 0.25
# Each restore comes at least this long after the snapshot: twice the lowered
# soft-lockup threshold (2 x 3 s) and more, so that the caught-up clock's jump would be
# reported as a soft lockup without KVMCLOCK_CTRL; and far more than the catch-up
# tolerance, so that a clock that caught up cannot pass as frozen.
AWAY_MIN = 12.0


def snap_clocks(g):
    """The guest's CLOCK_REALTIME (adjtimex: microseconds) and CLOCK_MONOTONIC
    (/proc/timer_list's "now at": ktime_get()), with the host's time just before the
    command was typed and just after its answer: a dict of realtime, monotonic, t1, t2
    and off_lo/off_hi, the bounds of the guest's realtime minus the host's."""
    t1 = time.time()
    out = g.sh_ok("adjtimex | grep 'time.tv_'; grep -m1 'now at' /proc/timer_list")
    t2 = time.time()
    sec = re.search(r"time\.tv_sec:\s*(\d+)", out)
    usec = re.search(r"time\.tv_usec:\s*(\d+)", out)
    mono = re.search(r"now at (\d+) nsecs", out)
    need(sec and usec and mono, "no clock readings in %r" % out)
    real = int(sec.group(1)) + int(usec.group(1)) / 1e6
    return {"realtime": real, "monotonic": int(mono.group(1)) / 1e9, "t1": t1, "t2": t2,
            "off_lo": real - t2, "off_hi": real - t1}


def fmt_off(c):
    return "%+.3f..%+.3f s" % (c["off_lo"], c["off_hi"])


def dmesg_since_marker(g, marker):
    """The guest's kernel log after marker (written to /dev/kmsg before the snapshot),
    cut in the guest: the whole log takes tens of seconds on a nested serial console."""
    out = g.sh_ok("dmesg | sed -n '/%s/,$p'" % marker)
    check(marker in out.split("\n", 1)[0], "the kernel log has lost the marker %r written "
          "before the snapshot: %r" % (marker, out[-2000:]))
    return out.split("\n", 1)[1] if "\n" in out else ""


def restored_dmesg_clean(g, marker):
    """No lockup, hung-task, stall or clocksource report in the kernel log since the
    snapshot; anything else flagged must be explained in bootlog-allow.txt."""
    # Let the watchdogs run: the soft-lockup timer every 1.2 s (threshold 3 s), the
    # clocksource watchdog every 0.5 s; the first of each fires at once, overdue, on a
    # clock that jumped.
    g.sh_ok("sleep 3")
    log = dmesg_since_marker(g, marker)
    hazards = [u for u, _ in bootlog_units(log) if RESTORE_HAZARDS.search(u)]
    check(not hazards, "the kernel log after the restore reports:\n%s\n(all of it since the "
          "snapshot:)\n%s" % ("\n".join(hazards), log[-2500:]))
    bad = unexplained(log, load_allowlist())
    check(not bad, "kernel log lines after the restore not explained in %s:\n%s"
          % (os.path.relpath(ALLOWLIST), "\n".join(bad)))


def answers_after_restore(g, word, busy):
    """The restored shell (echo off since before the snapshot) runs a typed command, and
    kills the busy loops that ran when the snapshot was taken."""
    start = g.mark()
    g.type("echo %s-$((6*7))\n" % word)
    g.wait_for("%s-42\n" % word, start, what="the restored guest's answer to a typed command")
    status, out = g.sh("kill %s" % " ".join(busy))
    check(status == 0, "the busy loops (pids %s) were not running after the restore: %r"
          % (" ".join(busy), out))


def stop_vm(g):
    """petrel stop (a hard stop, from any state): petrel exits 0. The next restore
    needs the drive this VM holds, so a VM that does not stop ends the scenario."""
    stop = subprocess.run([PETREL, "stop", "--api-sock", g.sock], capture_output=True,
                          timeout=max(g.left(), 1))
    rc = g.exit_status()
    need(stop.returncode == 0 and rc == 0, "petrel stop exited %d (%r), petrel %s"
         % (stop.returncode, text(stop.stdout + stop.stderr), rc))


def wait_away(t_snap):
    """Lets the snapshot be away AWAY_MIN s: not synchronization, the time away."""
    away = time.time() - t_snap
    if away < AWAY_MIN:
        time.sleep(AWAY_MIN - away)


def copy_file(src, dst):
    with open(src, "rb") as f, open(dst, "wb") as o:
        shutil.copyfileobj(f, o, 1 << 20)


@scenario(["snapshot_guest_boots_writes_vda", "snapshot_written_original_stopped",
           "restored_answers_on_console", "restored_clock_caught_up",
           "restored_monotonic_moved_on", "restored_file_on_vda_reads_back",
           "restored_dmesg_clean", "frozen_answers_on_console", "frozen_clock_behind_by_away",
           "frozen_monotonic_moved_on", "frozen_dmesg_clean", "frozen_poweroff_image_clean"],
          kernel=VMLINUX, cpus=2, memory="256M", cmdline="console=ttyS0 quiet root=/dev/vda rw",
          args=("--drive", "path=@TMP@/root.ext4"), prepare=copy_root)
def snapshot_restore(r, g):
    """petrel snapshot of a booted guest with its root on vda, the original stopped, and
    petrel run --restore of it in new processes: first with the clock caught up (the
    default), then (the disk put back as it was at the snapshot) --restore-clock frozen."""
    snap = os.path.join(g.tmp.name, "snap")
    img = os.path.join(g.tmp.name, "root.ext4")
    marker = "petrel-test: before the snapshot"
    with r.check("snapshot_guest_boots_writes_vda"):
        log = g.boot()
        check("root /dev/vda ext4)" in log, "the ready line does not name /dev/vda:\n%s"
              % log[-600:])
        typed_command_answered(g)
        # A soft lockup is reported after 2 x watchdog_thresh s without a reschedule by
        # the guest's clock: 6 s here, well under the time the snapshot is away.
        g.sh_ok("echo 3 > /proc/sys/kernel/watchdog_thresh")
        # 256 KiB of random data and a line, on the ext4 root on vda, synced.
        g.sh_ok("dd if=/dev/urandom of=/root/data bs=64k count=4 2>/dev/null; "
                "echo petrel-snapshot-$$ > /root/written; sync")
        out = g.sh_ok("md5sum /root/data; cat /root/written")
        m = re.search(r"\b([0-9a-f]{32})\b.*\n(petrel-snapshot-\d+)", out)
        need(m, "md5sum and /root/written: %r" % out)
        data_md5, written = m.group(1), m.group(2)
        cs = g.sh_ok("cat /sys/devices/system/clocksource/clocksource0/current_clocksource")
        print("     note: the guest's clocksource: %s" % cs.strip())
        g.sh_ok("echo '%s' > /dev/kmsg" % marker)
        before = snap_clocks(g)
        print("     note: the guest's realtime minus the host's before the snapshot: %s"
              % fmt_off(before))
        check(before["off_lo"] - CATCH_UP_TOLERANCE <= 0 <= before["off_hi"] + CATCH_UP_TOLERANCE,
              "the guest's clock is %s off the host's before the snapshot" % fmt_off(before))
        # Every vCPU busy when the snapshot is taken: a loop each, at nice 19 so that the
        # shell still answers. An idle CPU's tick is stopped, and its first interrupt
        # after the clock's jump touches the soft-lockup watchdog (the kernel's
        # tick_nohz_update_jiffies()), so an idle guest shows nothing either way; a busy
        # one reports a soft lockup unless the restore told it it had been stopped
        # (KVMCLOCK_CTRL). The loops run until the restored guests kill them.
        busy = start_busy_loops(g)
    with r.check("snapshot_written_original_stopped"):
        t_snap0 = time.time()
        sn = subprocess.run([PETREL, "snapshot", "--api-sock", g.sock, snap],
                            capture_output=True, timeout=max(g.left(), 1))
        t_snap1 = time.time()
        # Without a snapshot nothing else can be checked.
        need(sn.returncode == 0, "petrel snapshot exited %d: %r"
             % (sn.returncode, text(sn.stdout + sn.stderr)))
        print("     note: petrel snapshot took %.2f s; state %d bytes, memory file %d bytes "
              "(%d KiB on disk)" % (t_snap1 - t_snap0, os.path.getsize(snap + "/state"),
                                    os.path.getsize(snap + "/mem"),
                                    os.stat(snap + "/mem").st_blocks // 2))
        stop_vm(g)
        # The disk as the snapshot has it, for the second restore: the first one's guest
        # writes to it (a disk changed after the snapshot is the user's to keep apart).
        copy_file(img, img + ".at-snapshot")
    wait_away(t_snap1)
    c = g.restore("catch-up", snap)
    with r.check("restored_answers_on_console"):
        answers_after_restore(c, "restored", busy)
    with r.check("restored_clock_caught_up"):
        after = snap_clocks(c)
        print("     note: the guest's realtime minus the host's after the restore: %s "
              "(before the snapshot: %s)" % (fmt_off(after), fmt_off(before)))
        check(after["off_lo"] - CATCH_UP_TOLERANCE <= 0 <= after["off_hi"] + CATCH_UP_TOLERANCE,
              "the restored guest's clock is %s off the host's (tolerance %.1f s), %.1f s "
              "after the snapshot" % (fmt_off(after), CATCH_UP_TOLERANCE, after["t1"] - t_snap1))
    with r.check("restored_monotonic_moved_on"):
        # Caught up, CLOCK_MONOTONIC moved on with the host's time across the snapshot.
        adv = after["monotonic"] - before["monotonic"]
        lo, hi = after["t1"] - before["t2"], after["t2"] - before["t1"]
        check(adv > 0, "CLOCK_MONOTONIC went back by %.6f s across the restore" % -adv)
        check(lo - BRACKET_SLACK <= adv <= hi + BRACKET_SLACK,
              "CLOCK_MONOTONIC moved %.3f s across the restore, the host's time %.3f..%.3f s"
              % (adv, lo, hi))
    with r.check("restored_file_on_vda_reads_back"):
        # From the disk, not the page cache: the restored virtio-blk reads it.
        out = c.sh_ok("echo 3 > /proc/sys/vm/drop_caches; md5sum /root/data; cat /root/written")
        check(data_md5 in out and written in out,
              "/root/data (md5 %s) and /root/written (%r) after the restore: %r"
              % (data_md5, written, out))
        # And it writes: a file through the restored queue, synced and read back.
        out = c.sh_ok("echo after-restore > /root/after; sync; echo 3 > /proc/sys/vm/drop_caches;"
                      " cat /root/after")
        check("after-restore" in out, "a file written after the restore: %r" % out)
    with r.check("restored_dmesg_clean"):
        restored_dmesg_clean(c, marker)
    with r.check("frozen_answers_on_console"):
        # The first restored VM stopped (it holds the drive's lock), its disk put back.
        stop_vm(c)
        copy_file(img + ".at-snapshot", img)
        wait_away(t_snap1)
        f = g.restore("frozen", snap, ("--restore-clock", "frozen"))
        answers_after_restore(f, "frozen", busy)
    with r.check("frozen_clock_behind_by_away"):
        fro = snap_clocks(f)
        # The guest's clock stopped at the snapshot's KVM_GET_CLOCK (during petrel
        # snapshot) and went on at the restore's KVM_SET_CLOCK (after petrel run started).
        lag_lo = before["off_lo"] - fro["off_hi"]
        lag_hi = before["off_hi"] - fro["off_lo"]
        away_lo, away_hi = f.started - t_snap1, fro["t1"] - t_snap0
        print("     note: the frozen guest's realtime is %.3f..%.3f s behind where it was; "
              "away %.3f..%.3f s" % (lag_lo, lag_hi, away_lo, away_hi))
        check(lag_hi + BRACKET_SLACK >= away_lo and lag_lo - BRACKET_SLACK <= away_hi,
              "the frozen guest's clock is %.3f..%.3f s behind, the snapshot was away "
              "%.3f..%.3f s" % (lag_lo, lag_hi, away_lo, away_hi))
    with r.check("frozen_monotonic_moved_on"):
        # Frozen, CLOCK_MONOTONIC goes on from the snapshot: it moved by the host's time
        # since the first reading less the time away.
        adv = fro["monotonic"] - before["monotonic"]
        lo = (fro["t1"] - before["t2"]) - away_hi
        hi = (fro["t2"] - before["t1"]) - away_lo
        check(adv > 0, "CLOCK_MONOTONIC went back by %.6f s across the restore" % -adv)
        check(lo - BRACKET_SLACK <= adv <= hi + BRACKET_SLACK,
              "CLOCK_MONOTONIC moved %.3f s across the frozen restore, expected %.3f..%.3f s"
              % (adv, lo, hi))
    with r.check("frozen_dmesg_clean"):
        restored_dmesg_clean(f, marker)
    with r.check("frozen_poweroff_image_clean"):
        out = f.sh_ok("echo 3 > /proc/sys/vm/drop_caches; md5sum /root/data; cat /root/written;"
                      " ls /root")
        check(data_md5 in out and written in out and "after" not in out.split(),
              "/root after the frozen restore (the disk as at the snapshot): %r" % out)
        ends_with(f, "poweroff", shows=["reboot: Power down"])
        got = subprocess.run([sbin("debugfs"), "-R", "cat /root/written", img],
                             capture_output=True, timeout=60)
        check(text(got.stdout).strip() == written,
              "/root/written in the image: %r %r" % (got.stdout, got.stderr[-300:]))
        fsck = subprocess.run([sbin("e2fsck"), "-fn", img], capture_output=True, timeout=60)
        check(fsck.returncode == 0, "e2fsck -fn exited %d: %s"
              % (fsck.returncode, text(fsck.stdout + fsck.stderr)[-800:]))


@scenario(["boot_log_explained", "stop_graceful_powers_off"],
          kernel=VMLINUX, cpus=2, memory="512M", cmdline="console=ttyS0")
def verbose_boot(r, g):
    with r.check("boot_log_explained"):
        log = g.boot()
        entries = load_allowlist()
        bad = unexplained(log, entries)
        for e in entries:
            if not e["used"] and (NESTED or not e["nested_only"]):
                print("     note: allowlist entry %r (line %d) matched nothing in this boot"
                      % (e["pattern"].pattern, e["line"]))
        check(not bad, "boot-log lines not explained in %s:\n%s"
              % (os.path.relpath(ALLOWLIST), "\n".join(bad)))
    with r.check("stop_graceful_powers_off"):
        typed_command_answered(g)
        start = g.mark()
        stop = subprocess.run([PETREL, "stop", "--api-sock", g.sock, "--graceful",
                               "--timeout", "120"],
                              capture_output=True, timeout=max(g.left(), 1))
        rc = g.exit_status()
        out = g.output(start)
        check(stop.returncode == 0 and rc == 0,
              "petrel stop --graceful exited %d (%r), petrel %s; console after it:\n%s"
              % (stop.returncode, text(stop.stdout + stop.stderr), rc, out[-1500:]))
        for s in ("petrel-guest: power button pressed", "The system is going down",
                  "reboot: Power down"):
            check(s in out, "no %r on the console after the power button:\n%s"
                  % (s, out[-1500:]))
        check("did not power off" not in text(stop.stderr),
              "petrel stop had to stop the VM itself: %r" % text(stop.stderr))


@scenario(["acpi_off_mptable_finds_every_vcpu", "acpi_off_reboot_f_exits_0"],
          kernel=VMLINUZ, cpus=2, memory="256M", cmdline="console=ttyS0 quiet acpi=off",
          args=("--kernel-entry", "setup"))
def acpi_off(r, g):
    with r.check("acpi_off_mptable_finds_every_vcpu"):
        g.boot()
        typed_command_answered(g)
        nproc_is(g, 2)
        status, out = g.sh("ls /sys/firmware/acpi")
        check(status != 0, "ACPI is in use despite acpi=off: %r" % out)
        out = g.sh_ok("dmesg | grep -i -e 'MP-table' -e 'MPTABLE' -e 'Processor #'")
        check(out.strip(), "dmesg does not mention the MP table")
    with r.check("acpi_off_reboot_f_exits_0"):
        # No ACPI: the kernel resets through the i8042 (or a triple fault).
        ends_with(g, "reboot -f", shows=["reboot: Restarting system"])


@scenario(["virtio_console_boots_on_hvc0", "virtio_console_typed_command_answered",
           "virtio_console_ctrl_c_interrupts", "virtio_console_is_hvc0",
           "virtio_console_poweroff_exits_0"],
          kernel=VMLINUX, cpus=1, memory="256M", cmdline="console=hvc0 quiet",
          args=("--console", "virtio"))
def virtio_console(r, g):
    # petrel run --console virtio: Debian's virtio_console (loaded by the guest's /init)
    # makes petrel's virtio-console hvc0, the kernel's console; the shell runs on it.
    with r.check("virtio_console_boots_on_hvc0"):
        g.boot()
    with r.check("virtio_console_typed_command_answered"):
        typed_command_answered(g)
    with r.check("virtio_console_ctrl_c_interrupts"):
        ctrl_c_interrupts_a_command(g)
    with r.check("virtio_console_is_hvc0"):
        out = g.sh_ok("cat /sys/class/tty/console/active; tty; "
                      "cat /sys/bus/virtio/devices/*/device")
        words = out.split()
        check(words[:2] == ["hvc0", "/dev/hvc0"],
              "the console and the shell's terminal are not hvc0: %r" % out)
        check("0x0003" in words[2:], "no virtio device of type 3 (console): %r" % out)
    with r.check("virtio_console_poweroff_exits_0"):
        # The kernel's last line ("reboot: Power down") cannot reach hvc0: it comes after
        # device_shutdown(), which breaks and resets every virtio device (virtio.c's
        # virtio_dev_shutdown(), in this kernel too). busybox init's lines come before.
        ends_with(g, "poweroff", shows=["The system is going down", "Requesting system poweroff"])


GDB = shutil.which("gdb") or "gdb"


def gdb_batch(sock, *commands):
    """gdb -batch on the stub at sock with these commands, started in the background."""
    args = [GDB, "-nx", "-batch", "-ex", "set pagination off", "-ex", "set confirm off",
            "-ex", "target remote " + sock]
    for c in commands:
        args += ["-ex", c]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def gdb_output(p, g):
    try:
        out, _ = p.communicate(timeout=max(g.left(), 1))
    except subprocess.TimeoutExpired:
        p.kill()
        raise Lost("gdb did not finish: %r" % p.communicate()[0][-1000:])
    return text(out)


@scenario(["gdb_attaches_at_entry", "gdb_boots_after_detach",
           "gdb_hbreak_on_kernel_function", "gdb_detach_lets_it_finish"],
          kernel=VMLINUX, cpus=2, memory="256M", cmdline="console=ttyS0 quiet",
          args=("--gdb", "unix:@TMP@/gdb.sock"))
def gdb_kernel(r, g):
    # petrel run --gdb: the kernel waits for gdb at startup_64. The extracted vmlinux is
    # stripped, so the breakpoint's address comes from the guest's /proc/kallsyms (the
    # vmlinux path has no KASLR). Under the nested harness (QEMU's TCG emulation of SVM) no
    # debug exit reaches KVM, so petrel refuses the breakpoint and this checks that gdb is
    # told and the guest goes on; with a hardware-virtualization KVM it checks the stop.
    sock = os.path.join(g.tmp.name, "gdb.sock")
    with r.check("gdb_attaches_at_entry"):
        g.wait_for("the guest waits for gdb", what="petrel's stub announcement")
        out = gdb_output(gdb_batch(sock, 'printf "rip=%#x cr0=%#x\\n", $rip, $cr0',
                                   "info threads", "detach"), g)
        m = re.search(r"rip=(0x[0-9a-f]+) cr0=(0x[0-9a-f]+)", out)
        need(m, "no registers from gdb: %r" % out[-1500:])
        check(int(m.group(2), 16) & 0x80000001 == 0x80000001, "paging off at entry: " + out)
        check("Thread 2" in out, "no thread for vCPU 1: " + out)
        check("detached" in out, out)
    with r.check("gdb_boots_after_detach"):
        g.boot()
        typed_command_answered(g)
    with r.check("gdb_hbreak_on_kernel_function"):
        sym = g.sh_ok("grep ' __x64_sys_sethostname$' /proc/kallsyms").split()
        need(len(sym) == 3 and int(sym[0], 16) != 0, "no address in kallsyms: %r" % sym)
        addr = "0x" + sym[0]
        _, before, _ = api(g.sock, "GET", "/vm")
        p = gdb_batch(sock, "hbreak *" + addr, "continue",
                      'printf "stopped=%d\\n", $pc == ' + addr, "info threads",
                      "delete", "detach")
        # gdb's attach pauses the VM (a pause counted in GET /vm): typed input waits in
        # the UART until gdb has planted its breakpoint and continued.
        deadline = time.monotonic() + max(g.left(), 1)
        while True:
            _, now, _ = api(g.sock, "GET", "/vm")
            if now["pause"]["count"] > before["pause"]["count"]:
                break
            need(time.monotonic() < deadline and p.poll() is None, "gdb never attached")
            time.sleep(0.1)
        g.type("hostname gdbtest; echo host-$(hostname)\n")
        out = gdb_output(p, g)
        if NESTED:
            check("Could not insert hardware breakpoint" in out, "no refusal: " + out)
            check("breakpoints, watchpoints and stepping are refused" in g.output(),
                  "petrel does not say why")
        else:
            check("stopped=1" in out, "no stop at %s (__x64_sys_sethostname): %s" % (addr, out))
            check("Hardware assisted breakpoint 1" in out, out)
    with r.check("gdb_detach_lets_it_finish"):
        g.wait_for("host-gdbtest", what="the shell's hostname after the breakpoint")
        ends_with(g, "poweroff", shows=["reboot: Power down"])
def free_tcp_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NET_FWD_PORT = free_tcp_port()
NET_PAGE = b"petrel-net-page " + bytes(range(256)) * 64  # 16 KiB and a bit


def serve_page():
    """An HTTP server on the host's loopback (an ephemeral port) serving NET_PAGE at
    /page; returns (server, port). It runs on a thread until shutdown()."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/page":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(NET_PAGE)))
            self.end_headers()
            self.wfile.write(NET_PAGE)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


@scenario(["net_boots_with_a_dhcp_lease", "net_address_route_dns", "net_fetches_from_host_loopback",
           "net_hostfwd_reaches_the_guest", "net_stats_count_the_traffic", "net_poweroff_exits_0"],
          kernel=VMLINUX, cpus=1, memory="256M", cmdline="console=ttyS0 quiet",
          args=("--net", "user,hostfwd=tcp:127.0.0.1:%d-:8080" % NET_FWD_PORT))
def net_user(r, g):
    # petrel run --net user: Debian's virtio_net on petrel's virtio-net, libslirp behind it.
    with r.check("net_boots_with_a_dhcp_lease"):
        # The guest's /init runs udhcpc before the ready line; its script says so.
        g.wait_for("petrel-guest: eth0 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3\n",
                   what="udhcpc's lease line")
        g.boot()
        typed_command_answered(g)
    with r.check("net_address_route_dns"):
        out = g.sh_ok("ip -4 addr show eth0; ip route; cat /etc/resolv.conf; "
                      "cat /sys/class/net/eth0/address")
        check("inet 10.0.2.15/24" in out, "eth0 has no 10.0.2.15/24: %r" % out)
        check("default via 10.0.2.2 dev eth0" in out, "no default route via 10.0.2.2: %r" % out)
        check("nameserver 10.0.2.3" in out, "resolv.conf does not name 10.0.2.3: %r" % out)
        check("52:54:00:12:34:56" in out, "eth0's MAC is not petrel's default: %r" % out)
    with r.check("net_fetches_from_host_loopback"):
        # slirp's gateway 10.0.2.2 is the host's loopback.
        srv, port = serve_page()
        try:
            out = g.sh_ok("wget -q -O - http://10.0.2.2:%d/page | md5sum" % port)
        finally:
            srv.shutdown()
        want = hashlib.md5(NET_PAGE).hexdigest()
        check(want in out, "the page's md5 is %s, the guest got %r" % (want, out))
    with r.check("net_hostfwd_reaches_the_guest"):
        # A TCP server in the guest (busybox nc on 8080), reached from the host's
        # 127.0.0.1:NET_FWD_PORT through hostfwd.
        # The guest's shell answers once nc listens (a condition, polled in the guest).
        g.sh_ok("(echo petrel-hostfwd-$((7*6)) | nc -l -p 8080 >/dev/null 2>&1 &); i=0; "
                "until netstat -ltn | grep -q ':8080 '; do i=$((i+1)); [ $i -lt 1000 ] || "
                "break; usleep 10000; done; netstat -ltn | grep ':8080 '")
        got = b""
        with socket.create_connection(("127.0.0.1", NET_FWD_PORT), timeout=30) as c:
            while b"\n" not in got:
                chunk = c.recv(100)
                if not chunk:
                    break
                got += chunk
        check(got.startswith(b"petrel-hostfwd-42\n"),
              "the guest's server said %r through 127.0.0.1:%d" % (got, NET_FWD_PORT))
    with r.check("net_stats_count_the_traffic"):
        # GET /stats counts the NIC's interrupts, chains and bytes, as for every virtio
        # device: at least the 16 KiB page came in and the request went out.
        status, j, body = api(g.sock, "GET", "/stats")
        net0 = [d for d in (j or {}).get("devices", []) if d["name"] == "net0"]
        check(net0 and net0[0].get("requests", 0) > 0 and net0[0].get("bytes_in", 0) > 16384
              and net0[0].get("bytes_out", 0) > 0 and net0[0].get("interrupts", 0) > 0,
              "GET /stats for net0: %d %s" % (status, net0 or body[:500]))
    with r.check("net_poweroff_exits_0"):
        ends_with(g, "poweroff", shows=["The system is going down"])


TAP_NS = "petrel-linux-%d" % os.getpid()
# 100 MiB each way; 16 inside the nested harness, where 100 MiB from /dev/urandom and
# over the tap took 274 s of the scenario's 300 (the bytes are emulated twice there).
TAP_MB = int(os.environ.get("PETREL_LINUX_TAP_MB", "16" if NESTED else "100"))


def tap_ns(d):
    """A network namespace with tap ptap0 at 10.9.0.1/24 (the host's side), for the
    tap scenario; deleted when the scenario ends (net_tap's last check, or atexit)."""
    import atexit
    subprocess.run(["ip", "netns", "add", TAP_NS], check=True)
    atexit.register(lambda: subprocess.run(["ip", "netns", "del", TAP_NS]))
    for cmd in ("ip link set lo up", "ip tuntap add dev ptap0 mode tap", "ip link set ptap0 up",
                "ip addr add 10.9.0.1/24 dev ptap0"):
        subprocess.run(["ip", "netns", "exec", TAP_NS] + cmd.split(), check=True)


# The host's side of a transfer: receives one TCP connection on 10.9.0.1:PORT and prints
# the byte count and MD5 of what came; or sends N MiB of a pattern and prints its MD5.
TAP_PEER = r"""
import hashlib, socket, sys
mode, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.9.0.1", port)); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
h, n = hashlib.md5(), 0
if mode == "recv":
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b); n += len(b)
else:
    block = bytes(range(256)) * 4096
    for i in range(int(sys.argv[3])):
        c.sendall(block); h.update(block); n += len(block)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
c.close()
print(n, h.hexdigest(), flush=True)
"""


def tap_peer(*args):
    p = subprocess.Popen(["ip", "netns", "exec", TAP_NS, sys.executable, "-c", TAP_PEER,
                          *args], stdout=subprocess.PIPE, text=True)
    check(p.stdout.readline() == "listening\n", "the host's peer did not start")
    return p


@scenario(["tap_boots", "tap_offloads_negotiated", "tap_ping", "tap_guest_to_host_md5",
           "tap_host_to_guest_md5", "tap_poweroff_exits_0"],
          kernel=VMLINUX, cpus=1, memory="512M", cmdline="console=ttyS0 quiet",
          args=("--net", "tap=ptap0"), prepare=tap_ns,
          wrap=("ip", "netns", "exec", TAP_NS))
def net_tap(r, g):
    # A tap in a network namespace: Debian's virtio_net takes petrel's checksum and TSO
    # offloads, so large TCP segments cross the tap whole in both directions.
    with r.check("tap_boots"):
        g.boot()
        typed_command_answered(g)
        g.sh_ok("ip addr add 10.9.0.2/24 dev eth0 && ip link set eth0 up")
    with r.check("tap_offloads_negotiated"):
        out = g.sh_ok("cat /sys/bus/virtio/devices/*/features; "
                      "cat /sys/class/net/eth0/features 2>/dev/null; true")
        # One line of 0/1 per virtio device: virtio-net's has CSUM (bit 0), GUEST_CSUM
        # (1), GUEST_TSO4 (7), HOST_TSO4 (11), MRG_RXBUF (15).
        lines = [l for l in out.split() if re.fullmatch(r"[01]{64}", l)]
        check(any(all(l[b] == "1" for b in (0, 1, 7, 11, 15)) for l in lines),
              "no virtio device with CSUM, GUEST_CSUM, GUEST_TSO4, HOST_TSO4 and MRG_RXBUF "
              "negotiated: %r" % out)
    with r.check("tap_ping"):
        out = g.sh_ok("ping -c 3 -W 5 10.9.0.1")
        check("3 packets received" in out, "ping through the tap: %r" % out)
    with r.check("tap_guest_to_host_md5"):
        peer = tap_peer("recv", "5001")
        out = g.sh_ok("dd if=/dev/urandom of=/tmp/x bs=1M count=%d 2>/dev/null && md5sum /tmp/x "
                      "&& nc 10.9.0.1 5001 < /tmp/x && rm /tmp/x" % TAP_MB)
        got = peer.stdout.readline().split()
        peer.wait()
        check(len(got) == 2 and int(got[0]) == TAP_MB << 20 and got[1] in out,
              "the host received %r; the guest's md5sum: %r" % (got, out))
    with r.check("tap_host_to_guest_md5"):
        peer = tap_peer("send", "5002", str(TAP_MB))
        out = g.sh_ok("nc 10.9.0.1 5002 </dev/null | md5sum")
        got = peer.stdout.readline().split()
        peer.wait()
        check(len(got) == 2 and got[1] in out, "the host sent %r; the guest's md5sum: %r"
              % (got, out))
    with r.check("tap_poweroff_exits_0"):
        ends_with(g, "poweroff", shows=["The system is going down"])


def kvm_module():
    return next((m for m in ("kvm_intel", "kvm_amd", "kvm_pvm")
                 if os.path.isdir("/sys/module/" + m)), "no kvm module")


def where():
    kvm = kvm_module()
    if NESTED:
        return "inside the nested harness (L1's /dev/kvm from %s)" % kvm
    return "directly on this host's /dev/kvm (%s)" % kvm


def main():
    only = sys.argv[1:]
    if not NESTED and kvm_module() not in ("kvm_intel", "kvm_amd"):
        # Meson's "skipped": this host has no hardware virtualization, and a stock kernel
        # does not boot at a usable speed on another KVM (kvm_pvm) or without one.
        print("linux tests: skipped: this host has no kvm_intel or kvm_amd (%s); run them "
              "inside the nested harness, as scripts/test does: tests/nested/run --rw $PWD "
              "-- meson test -C $PWD/build --suite linux --no-rebuild" % kvm_module())
        sys.exit(77)
    # Builds the guest, or (the usual case) finds it current at once. Inside the nested
    # harness there is no network: scripts/test has built it on the host.
    mk = subprocess.run([MKGUEST, GUEST_DIR], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sys.stdout.write(text(mk.stdout))
    if mk.returncode != 0 or not all(os.path.isfile(f)
                                     for f in (VMLINUZ, VMLINUX, INITRD, ROOT_IMAGE)):
        print("the Linux guest could not be built: %s %s exited %d"
              % (MKGUEST, GUEST_DIR, mk.returncode))
        print("0 passed, 1 failed")
        sys.exit(1)
    release = ""
    try:
        with open(os.path.join(GUEST_DIR, "stamp")) as f:
            release = next((ln.split("=", 1)[1].strip() for ln in f
                            if ln.startswith("kernel=")), "")
    except OSError:
        pass
    print("linux tests: %s; Linux %s from %s; limit %d s per scenario"
          % (where(), release or "?", GUEST_DIR, LIMIT), flush=True)
    load_allowlist()   # a malformed allowlist fails at once
    passed = failed = 0
    unknown = [n for n in only if n not in [s["name"] for s in SCENARIOS]]
    if unknown:
        print("unknown scenario(s): %s (have: %s)"
              % (" ".join(unknown), " ".join(s["name"] for s in SCENARIOS)))
        sys.exit(2)
    for sc in SCENARIOS:
        if only and sc["name"] not in only:
            continue
        print("-- %s: %s, %d vCPU(s), %s, \"%s\"%s"
              % (sc["name"], os.path.basename(sc["kernel"]), sc["cpus"], sc["memory"],
                 sc["cmdline"], "".join(" " + a for a in sc["args"])), flush=True)
        g = Guest(sc["name"], sc["kernel"], sc["cpus"], sc["memory"], sc["cmdline"],
                  sc["args"], sc["prepare"], sc["wrap"], sc["env"])
        r = Run(sc, g)
        lost = None
        try:
            sc["fn"](r, g)
        except Lost as e:
            lost = str(e)
        except Exception:
            traceback.print_exc()   # a bug in the scenario (a check out of order, say)
            sys.stdout.flush()
            lost = "the scenario failed (see above)"
        finally:
            g.close()
        for name in sc["checks"][len(r.done):]:
            r.failed += 1
            print("FAIL %-44s (not reached: %s)" % (name, lost or "?"), flush=True)
        if r.failed:
            for one in [g] + g.restored:
                print("     console of %s (last 3000 characters):\n%s"
                      % (one.name, one.output()[-3000:]))
        print("-- %s: %s in %.1f s (ready after %s)"
              % (sc["name"], "passed" if not r.failed else "FAILED",
                 time.monotonic() - g.t0,
                 "%.1f s" % g.ready_at if g.ready_at is not None else "-"), flush=True)
        passed += r.passed
        failed += r.failed
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
