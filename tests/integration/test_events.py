#!/usr/bin/env python3
"""GET /events and the commands built on it: a client hears paused, resumed and stopping
in order, and the end of the stream when petrel exits; `petrel wait --for Stopped`
returns when the guest powers off, and times out with a message and status 1; a client
that never reads does not hold the VM up."""
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

from harness import (PETREL, TIMEOUT, Running, UnixHTTP, api, case, expect, kit, main, petrel,
                     text)


def start(d, image, ready, *extra):
    sock = os.path.join(d, "ev.sock")
    r = Running("run", "--kernel", kit(image), "--api-sock", sock, *extra)
    expect(r.wait_output(ready), "guest ready: " + r.output() + r.errors())
    return r, sock


def listeners(sock):
    status, j, body = api(sock, "GET", "/vm")
    expect(status == 200, "GET /vm: %d %s" % (status, body))
    return j["events"]["clients"]


def wait_listeners(sock, n):
    """Until n clients listen to the VM's events (a failure guard bounds it)."""
    deadline = time.monotonic() + TIMEOUT
    while listeners(sock) != n:
        expect(time.monotonic() < deadline, "%d event clients within %ss" % (n, TIMEOUT))


def events_cli(sock):
    """petrel events --json, its first line (the state) read."""
    p = subprocess.Popen([PETREL, "events", "--api-sock", sock, "--json"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = json.loads(p.stdout.readline())
    expect(first["event"] == "state" and first["state"] == "Running",
           "the stream starts with the state: %r" % first)
    return p


def finish(p):
    """The rest of a petrel events stream, once petrel has exited."""
    out, err = p.communicate(timeout=TIMEOUT)
    expect(p.returncode == 0, "petrel events exits 0 when the VM's stream ends: %r" % err)
    return [json.loads(line) for line in text(out).splitlines()]


@case
def a_client_hears_paused_resumed_stopping_in_order():
    with tempfile.TemporaryDirectory() as d:
        r, sock = start(d, "halt", "halt: ready", "--cpus", "2")
        cli = events_cli(sock)
        # The API itself: 200, chunked JSON lines that stay open.
        raw = UnixHTTP(sock)
        raw.request("GET", "/events")
        resp = raw.getresponse()
        expect(resp.status == 200, "GET /events: 200")
        expect(resp.getheader("Transfer-Encoding") == "chunked", "a chunked answer")
        expect(resp.getheader("Content-Type") == "application/x-ndjson", "JSON lines")
        first = json.loads(resp.readline())
        expect(first["event"] == "state" and first["state"] == "Running", "state: %r" % first)
        for state in ("Paused", "Resumed"):
            status, _, body = api(sock, "PATCH", "/vm", {"state": state})
            expect(status == 204, "PATCH %s: %d %s" % (state, status, body))
        # A request that changes nothing is no event.
        status, _, _ = api(sock, "PATCH", "/vm", {"state": "Resumed"})
        expect(status == 200, "a resume of a running VM: 200")
        for name in ("paused", "resumed"):
            line = json.loads(resp.readline())
            expect(line["event"] == name, "API: %s next: %r" % (name, line))
        status, _, _ = api(sock, "PUT", "/actions", {"action_type": "Stop"})
        expect(status == 204, "stop accepted")
        line = json.loads(resp.readline())
        expect(line["event"] == "stopping" and line["detail"] == "stop", "stopping: %r" % line)
        expect(resp.readline() == b"", "the stream ends when petrel exits")
        raw.close()
        expect(r.wait() == 0, "petrel exits 0")
        got = finish(cli)
        expect([e["event"] for e in got] == ["paused", "resumed", "stopping"],
               "petrel events: %r" % got)
        times = [e["time"] for e in got]
        expect(times == sorted(times), "times in order: %r" % times)


@case
def wait_for_stopped_returns_when_the_guest_powers_off():
    with tempfile.TemporaryDirectory() as d:
        r, sock = start(d, "pwrbtn", "pwrbtn: armed", "--debug-exit")
        cli = events_cli(sock)
        w = subprocess.Popen([PETREL, "wait", "--api-sock", sock, "--for", "Stopped"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        wait_listeners(sock, 2)
        expect(w.poll() is None, "petrel wait waits while the guest runs")
        status, _, body = api(sock, "PUT", "/actions", {"action_type": "PowerButton"})
        expect(status == 204, "the power button: %d %s" % (status, body))
        out, err = w.communicate(timeout=TIMEOUT)
        expect(w.returncode == 0 and "stopped" in text(out),
               "petrel wait --for Stopped returns 0: %r %r" % (out, err))
        expect(r.wait() == 0, "petrel exits 0 after the poweroff")
        got = finish(cli)
        expect([e["event"] for e in got] == ["guest_poweroff", "stopping"] and
               got[1]["detail"] == "poweroff", "poweroff, then stopping: %r" % got)
        # The VM is gone: waiting for Stopped is done at once; for Running, an error.
        p = petrel("wait", "--api-sock", sock, "--for", "Stopped")
        expect(p.returncode == 0 and "not running" in text(p.stdout), "already stopped", p)
        p = petrel("wait", "--api-sock", sock, "--for", "Running")
        expect(p.returncode == 1 and "no VM" in text(p.stderr), "no VM to wait for", p)


@case
def wait_times_out_with_a_message():
    with tempfile.TemporaryDirectory() as d:
        r, sock = start(d, "halt", "halt: ready")
        p = petrel("wait", "--api-sock", sock, "--for", "Stopped", "--timeout", "1")
        expect(p.returncode == 1, "a timeout is status 1", p)
        expect("did not reach Stopped within 1 s (it is Running)" in text(p.stderr),
               "the timeout says so", p)
        p = petrel("wait", "--api-sock", sock, "--for", "Running", "--timeout", "1")
        expect(p.returncode == 0 and "Running" in text(p.stdout), "already Running", p)
        status, _, _ = api(sock, "PATCH", "/vm", {"state": "Paused"})
        expect(status == 204, "paused")
        p = petrel("wait", "--api-sock", sock, "--for", "Paused")
        expect(p.returncode == 0, "already Paused", p)
        for bad in (["--for", "Gone"], ["--timeout", "0", "--for", "Stopped"], []):
            p = petrel("wait", "--api-sock", sock, *bad)
            expect(p.returncode == 2, "bad command line %r: status 2" % bad, p)
        status, _, _ = api(sock, "PUT", "/actions", {"action_type": "Stop"})
        expect(status == 204 and r.wait() == 0, "stopped")


class Reader:
    """Reads a raw GET /events socket to its end on a thread; lines() parses what came."""

    def __init__(self, sock):
        self.sock = sock
        self.data = b""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        self.sock.settimeout(TIMEOUT)
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return
            with self.lock:
                self.data += chunk

    def lines(self):
        with self.lock:
            data = self.data
        return [json.loads(l) for l in data.split(b"\r\n") if l.startswith(b"{")]


def cycle(c, i):
    for state in ("Paused", "Resumed"):
        c.request("PATCH", "/vm", body=json.dumps({"state": state}),
                  headers={"Content-Type": "application/json"})
        resp = c.getresponse()
        resp.read()
        expect(resp.status == 204, "cycle %d %s answered: %d" % (i, state, resp.status))


@case
def a_client_that_never_reads_holds_nothing_up():
    cycles = 300
    with tempfile.TemporaryDirectory() as d:
        r, sock = start(d, "halt", "halt: ready")
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.connect(sock)
        stuck.sendall(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        wait_listeners(sock, 1)
        # Its queue fills, then events are dropped: every request is still answered.
        c = UnixHTTP(sock)
        for i in range(cycles):
            cycle(c, i)
        status, j, _ = api(sock, "GET", "/vm")
        expect(j["events"]["dropped"] > 0, "events were dropped: %r" % j["events"])
        # It reads at last: the next event that fits comes after a notice of the drops.
        reader = Reader(stuck)
        reader.start()
        deadline = time.monotonic() + TIMEOUT
        n = cycles
        while not any(e["event"] == "dropped" for e in reader.lines()):
            expect(time.monotonic() < deadline, "a dropped notice within %ss" % TIMEOUT)
            cycle(c, n)
            n += 1
        c.close()
        status, j, _ = api(sock, "GET", "/vm")
        dropped = j["events"]["dropped"]
        status, _, _ = api(sock, "PUT", "/actions", {"action_type": "Stop"})
        expect(status == 204 and r.wait() == 0, "stopped")
        reader.thread.join(TIMEOUT)
        stuck.close()
        lines = reader.lines()
        names = [e["event"] for e in lines]
        said = sum(int(e["count"]) for e in lines if e["event"] == "dropped")
        expect(names[0] == "state", "the first line: %r" % names[:1])
        expect(names.count("paused") + names.count("resumed") + said == 2 * n,
               "every event delivered or counted: %d + %d + %d dropped, %d cycles" % (
                   names.count("paused"), names.count("resumed"), said, n))
        expect(said == dropped, "the notices add up to the VM's count: %d, %d" % (said, dropped))
        expect(names[-1] == "stopping", "the stream ends with stopping: %r" % names[-3:])

@case
def console_clients_attaching_and_leaving_are_events():
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "ev.sock")
        r = Running("run", "--kernel", kit("halt"), "--api-sock", sock, "--console", "socket")
        expect(r.wait_output("petrel console", stream=1), "console socket: " + r.errors())
        cli = events_cli(sock)
        for _ in range(2):
            c = Running("console", "--api-sock", sock, stdin=subprocess.PIPE)
            expect(c.wait_output("halt: ready"), "the history is replayed: %r" % c.errors())
            c.proc.stdin.write(b"\x01d")
            c.proc.stdin.close()
            expect(c.wait() == 0, "detach exits 0: " + c.errors())
        status, _, _ = api(sock, "PUT", "/actions", {"action_type": "Stop"})
        expect(status == 204 and r.wait() == 0, "stopped")
        got = [e["event"] for e in finish(cli)]
        expect(got == ["console_attached", "console_detached"] * 2 + ["stopping"],
               "attach, leave, twice, then stopping: %r" % got)



@case
def a_device_that_needs_a_reset_is_an_event():
    # The kit's hostile driver breaks the queues of virtio-blk, virtio-rng and virtio-net 35
    # times in all, resetting the device after each (test_virtio says what each case does). With
    # --gdb the guest waits, paused, until `petrel resume`: the client listens first.
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "ev.sock")
        disk = os.path.join(d, "rw.img")
        with open(disk, "wb") as f:
            f.truncate(1 << 20)
        r = Running("run", "--kernel", kit("hostile"), "--debug-exit", "--rng", "--net", "user",
                    "--cmdline",
                    "console=ttyS0", "--drive", "path=%s,id=rw" % disk, "--api-sock", sock,
                    "--gdb", "unix:" + os.path.join(d, "gdb.sock"))
        try:
            expect(r.wait_output("the guest waits for gdb", stream=1), r.errors())
            p = subprocess.Popen([PETREL, "events", "--api-sock", sock, "--json"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            first = json.loads(p.stdout.readline())
            expect(first["event"] == "state" and first["state"] == "Paused",
                   "the stream starts with the state: %r" % first)
            res = petrel("resume", "--api-sock", sock)
            expect(res.returncode == 0, "resumed", res)
            expect(r.wait() == 0, "hostile powers off: " + r.output() + r.errors())
            events = finish(p)
        finally:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
    resets = [e for e in events if e["event"] == "device_needs_reset"]
    named = [e["detail"] for e in resets if "more devices" not in e["detail"]]
    lost = sum(int(e["detail"].split()[0]) for e in resets if "more devices" in e["detail"])
    expect(named and all(re.match(r"((vda|rng): queue 0|net0: queue [01]): \S", n) for n in named),
           "each names the device, the queue and why: %r" % named)
    expect(all(any(n.startswith(dev) for n in named) for dev in ("vda: ", "rng: ", "net0: ")),
           "the three devices among them: %r" % named)
    expect(len(named) + lost == 35, "one event per broken queue (35): %d named, %d counted: %r"
           % (len(named), lost, resets))
    # virtio-net's own reasons (virtio_net.c), not the transport's, for the net-specific cases.
    for why in ("net0: queue 1: transmitq chain 0 has 8 bytes, less than the header",
                "net0: queue 1: transmitq chain 0 has a device-writable buffer",
                "net0: queue 0: receiveq chain 0 has a device-readable buffer",
                "net0: queue 0: receiveq chain 0 has no room for the header"):
        expect(why in named, "%r among them: %r" % (why, named))

if __name__ == "__main__":
    main()
