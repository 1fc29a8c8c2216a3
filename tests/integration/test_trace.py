#!/usr/bin/env python3
"""Tracing and statistics with a kit guest whose accesses are known (exits.c): the trace
holds exactly its sequence, in order; the counters of GET /stats and `petrel stat` match
what it did; `petrel trace` changes the filter while it runs."""
import json
import os
import re
import subprocess
import tempfile

from harness import Running, api, case, expect, kit, main, petrel, text

LINE = re.compile(r"^(\d+)\.(\d{9}) vcpu=(\S+) (\S+) (\S+)(.*)$")

# What exits.c does after its byte, as trace lines without the time (vCPU 0).
SEQUENCE = (["vcpu=0 pio write addr=0x510 size=1 value=%#x dev=- unclaimed" % v
             for v in range(0x10, 0x20)] +
            ["vcpu=0 pio read addr=0x512 size=2 value=0xffff dev=- unclaimed",
             "vcpu=0 pio write addr=0x514 size=4 value=0xdeadbeef dev=- unclaimed",
             "vcpu=0 mmio write addr=0xd0000000 size=4 value=0xcafef00d dev=- unclaimed",
             "vcpu=0 mmio read addr=0xd0000004 size=1 value=0xff dev=- unclaimed"])


def events(path):
    """The trace's lines without their times, checking each line's shape and that times
    never go back."""
    with open(path) as f:
        lines = f.read().splitlines()
    out, last = [], 0
    for line in lines:
        m = LINE.match(line)
        expect(m, "a trace line: %r" % line)
        ns = int(m.group(1)) * 10**9 + int(m.group(2))
        expect(ns >= last, "times in order at %r" % line)
        last = ns
        out.append(line.split(" ", 1)[1])
    return out


class Guest:
    def __init__(self, cmdline, *extra):
        self.dir = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.dir.name, "t.sock")
        self.trace = os.path.join(self.dir.name, "t.trace")
        self.r = Running("run", "--kernel", kit("exits"), "--cmdline", cmdline, "--debug-exit",
                         "--api-sock", self.sock, "--trace-file", self.trace, *extra,
                         stdin=subprocess.PIPE)
        expect(self.r.wait_output("exits: ready\r\n"), "guest ready: " + self.r.errors())

    def send(self):
        self.r.proc.stdin.write(b"x")
        self.r.proc.stdin.flush()

    def cli(self, *args):
        p = petrel(*args[:1], "--api-sock", self.sock, *args[1:])
        expect(p.returncode == 0, "petrel %s: %s" % (" ".join(args), text(p.stderr)))
        return text(p.stdout)

    def stats(self):
        return json.loads(self.cli("stat", "--json"))

    def finish(self):
        rc = self.r.wait()
        expect(rc == 0, "petrel exits 0, got %r: %s" % (rc, self.r.errors()))
        # The file is made only once tracing goes on.
        return events(self.trace) if os.path.exists(self.trace) else None


@case
def the_guests_accesses_appear_in_the_trace_exactly_and_in_order():
    g = Guest("exits.count=3", "--trace", "pio=0x510-0x517,mmio,pio=0xe9,control")
    expect("petrel: tracing pio=0x510-0x517,mmio,pio=0xe9,control to %s" % g.trace in
           g.r.errors(), "says where the trace goes: " + g.r.errors())
    g.send()
    ev = g.finish()
    want = SEQUENCE + ["vcpu=0 pio read addr=0xe9 size=1 value=0xe9 dev=debugcon ok"] * 3
    got = [e for e in ev if " pio " in e or " mmio " in e]
    # Debug-exit's write (port 0xf4) is outside the ranges: nothing else may be in the trace.
    expect(got == want, "the sequence exactly:\n%s\nwant:\n%s" % ("\n".join(got),
                                                                  "\n".join(want)))
    expect(ev[-2:] == [e for e in ev[-2:] if " control stop" in e] and len(ev) == len(want) + 2,
           "then the stop and its end (control): %r" % ev[-3:])
    expect(re.search(r"control stopped kick_ns=[1-9]", ev[-1]), "the stop's time: %r" % ev[-1])


@case
def stat_counts_what_the_guest_did_and_trace_changes_at_run_time():
    g = Guest("exits.count=37 exits.hold=1", "--trace", "pio=0xe9")
    before = g.stats()
    # At run time: pio off (with its range), then mmio and a new pio range on, from the CLI.
    out = g.cli("trace", "--off", "pio")
    expect(re.search(r"tracing none to .*t\.trace \(0 events written, 0 dropped\)", out), out)
    out = g.cli("trace", "--on", "mmio,pio=0x514")
    expect("tracing pio=0x514-0x514,mmio to " in out, out)
    j = json.loads(g.cli("trace", "--json"))
    expect(j["filter"] == "pio=0x514-0x514,mmio" and j["compiled_in"], "GET /trace: %r" % j)
    g.send()
    expect(g.r.wait_output("exits: done\r\n"), "guest done")
    after = g.stats()

    def dev(s, name):
        return next((d for d in s["devices"] if d["name"] == name), {"accesses": 0})

    def delta(f):
        return f(after) - f(before)

    un = lambda k, rw: lambda s: s["unclaimed"][k][rw]  # noqa: E731
    expect(delta(un("pio", "writes")) == 17, "17 unclaimed port writes: %r" % after["unclaimed"])
    expect(delta(un("pio", "reads")) == 1, "1 unclaimed port read")
    expect(delta(un("mmio", "writes")) == 1 and delta(un("mmio", "reads")) == 1,
           "1 unclaimed MMIO write and read: %r" % after["unclaimed"])
    expect(delta(lambda s: dev(s, "debugcon")["accesses"]) == 37,
           "37 debugcon reads: %r" % dev(after, "debugcon"))
    exits = lambda s: s["vcpus"][0]["exits"]  # noqa: E731
    expect(delta(lambda s: exits(s).get("mmio", 0)) == 2, "2 MMIO exits: %r" % exits(after))
    expect(delta(lambda s: exits(s).get("io", 0)) >= 17 + 1 + 37, "port exits: %r" % exits(after))
    expect(after["vcpus"][0]["guest_s"] > 0, "time in the guest: %r" % after["vcpus"][0])
    com1 = dev(after, "com1")
    expect(com1["accesses"] > 0 and com1["interrupts"] > 0, "COM1 counted: %r" % com1)
    # The human form shows the same figures.
    text = g.cli("stat")
    expect(re.search(r"^debugcon\s+%d\s" % dev(after, "debugcon")["accesses"], text, re.M),
           "petrel stat's table: %s" % text)
    expect("unclaimed: port reads %d, writes %d; MMIO reads 1, writes 1" % (
        after["unclaimed"]["pio"]["reads"], after["unclaimed"]["pio"]["writes"]) in text, text)
    g.send()
    ev = g.finish()
    got = [e for e in ev if " pio " in e or " mmio " in e]
    want = [SEQUENCE[17]] + SEQUENCE[18:]
    expect(got == want, "only what the filter let through, after the change: %r" % got)


@case
def stat_watch_ends_when_the_vm_goes_away():
    g = Guest("exits.count=1 exits.hold=1")
    w = subprocess.Popen([os.environ["PETREL"], "stat", "--api-sock", g.sock, "--watch", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Its first draw ends with the trace line: the VM is still there until we end it.
    first = b""
    while not first.endswith(b"dropped\n"):
        line = w.stdout.readline()
        expect(line, "stat --watch draws: %r %r" % (first, w.stderr.read() if not line else ""))
        first += line
    expect(b"debugcon" in first and b"exits" in first, "a whole table: %r" % first)
    g.send()
    expect(g.r.wait_output("exits: done\r\n"), "guest done")
    g.send()
    expect(g.finish() is None, "no trace file: tracing never went on")
    out, err = w.communicate(timeout=60)
    out = first + out
    expect(w.returncode == 0, "stat --watch exits 0 once the VM is gone: %r %r" % (out, err))
    expect(b"the VM has gone away" in out, "and says so: %r" % out[-300:])


@case
def trace_refuses_bad_specs():
    g = Guest("exits.count=1")
    p = petrel("trace", "--api-sock", g.sock, "--on", "pio=0x20-0x10")
    expect(p.returncode == 1 and "is empty or not a port range" in text(p.stderr), text(p.stderr))
    status, j, _ = api(g.sock, "PUT", "/trace", {"filter": "disk"})
    expect(status == 400 and "unknown kind" in j["fault_message"], "PUT /trace: %r" % j)
    status, j, _ = api(g.sock, "PATCH", "/trace", {})
    expect(status == 400, "PATCH /trace without on/off: %r" % j)
    p = petrel("run", "--kernel", kit("exits"), "--trace", "pio,bogus")
    expect(p.returncode == 2 and "unknown kind 'bogus'" in text(p.stderr), text(p.stderr))
    g.send()
    g.finish()


if __name__ == "__main__":
    main()
