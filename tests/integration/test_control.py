#!/usr/bin/env python3
"""Pause, resume and stop through the API and the CLI; bad requests; consoles."""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile

from harness import Running, UnixHTTP, api, case, expect, kit, main, petrel, text

HELLO_DONE = "hello from the petrel guest kit (debugcon)"


class Vm:
    """A halted hello guest with its API socket in a private directory."""

    def __init__(self, *extra, name="t1", ready=HELLO_DONE, stream=0):
        self.dir = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.dir.name, name + ".sock")
        self.name = name
        self.r = Running("run", "--kernel", kit("hello"), "--name", name, "--api-sock", self.sock,
                         *extra)
        # The API socket exists before the guest runs: its output means the API is up.
        expect(self.r.wait_output(ready, stream=stream), "ready: " + self.r.errors())

    def api(self, method, path, body=None, raw=None):
        return api(self.sock, method, path, body, raw)

    def state(self):
        status, j, _ = self.api("GET", "/")
        expect(status == 200, "GET / answers")
        return j["state"]

    def stop(self):
        status, _, body = self.api("PUT", "/actions", {"action_type": "Stop"})
        expect(status == 204, "Stop answers 204, got %d %s" % (status, body))
        rc = self.r.wait()
        self.dir.cleanup()
        return rc


@case
def instance_info_like_firecracker():
    vm = Vm()
    status, j, _ = vm.api("GET", "/")
    expect(status == 200, "GET /")
    expect(j == {"id": "t1", "state": "Running", "vmm_version": j["vmm_version"],
                 "app_name": "petrel"}, "InstanceInfo fields: %r" % j)
    status, j, _ = vm.api("GET", "/machine-config")
    expect(status == 200 and j["vcpu_count"] == 1 and j["mem_size_mib"] == 256, repr(j))
    expect(vm.stop() == 0, "stop exits 0")


@case
def pause_resume_stop_through_the_api():
    vm = Vm("--cpus", "2")
    status, _, body = vm.api("PATCH", "/vm", {"state": "Paused"})
    expect(status == 204, "pause answers 204: %s" % body)
    expect(vm.state() == "Paused", "state Paused")
    status, j, _ = vm.api("GET", "/vm")
    expect(j["pause"]["count"] == 1 and j["pause"]["last_kick_us"] > 0, "kick time kept: %r" % j)
    status, j, _ = vm.api("PATCH", "/vm", {"state": "Paused"})
    expect(status == 200 and "already paused" in j["message"], "a second pause says so: %r" % j)
    status, _, _ = vm.api("PATCH", "/vm", {"state": "Resumed"})
    expect(status == 204 and vm.state() == "Running", "resumed")
    status, j, _ = vm.api("PATCH", "/vm", {"state": "Resumed"})
    expect(status == 200 and "not paused" in j["message"], "resume when running says so")
    sock = vm.sock
    expect(vm.stop() == 0, "stop exits 0")
    expect(not os.path.exists(sock) and not os.path.exists(sock + ".lock"),
           "socket and lock removed")


@case
def stop_while_paused():
    vm = Vm("--cpus", "2")
    status, _, _ = vm.api("PATCH", "/vm", {"state": "Paused"})
    expect(status == 204, "paused")
    expect(vm.stop() == 0, "a paused VM stops and exits 0")
    expect(HELLO_DONE in vm.r.output(), "output kept")


@case
def sigterm_while_paused():
    vm = Vm()
    expect(vm.api("PATCH", "/vm", {"state": "Paused"})[0] == 204, "paused")
    vm.r.signal(signal.SIGTERM)
    expect(vm.r.wait() == 143, "SIGTERM ends a paused VM")


@case
def malformed_requests_get_4xx_and_the_vm_runs_on():
    vm = Vm()
    bad = [
        ("PATCH", "/vm", '{"state": "Paused"', 400, "malformed JSON"),
        ("PATCH", "/vm", '{"state": "Paused", "x": 1}', 400, "unknown field"),
        ("PATCH", "/vm", '{"state": 3}', 400, "must be a string"),
        ("PATCH", "/vm", '{"state": "Sleeping"}', 400, "must be"),
        ("PATCH", "/vm", '["Paused"]', 400, "JSON object"),
        ("PATCH", "/vm", '{"state": "Paused", "state": "Resumed"}', 400, "malformed"),
        ("PATCH", "/vm", "", 400, "needs a JSON body"),
        ("PATCH", "/vm", '{"state": "' + "P" * 20000 + '"}', 400, "limit"),
        ("PUT", "/actions", '{"action_type": "Explode"}', 400, "action_type"),
        ("PUT", "/actions", "{}", 400, "missing field"),
        ("GET", "/vm", '{"a": "b"}', 400, "takes no body"),
        ("GET", "/nope", None, 404, "no such path"),
        ("DELETE", "/vm", None, None, None),
        ("PUT", "/", "{}", 405, "method"),
        ("PATCH", "/vm", '{"state": "Paused"}\x00garbage', 400, "malformed"),
    ]
    for method, path, raw, want, words in bad:
        status, j, body = vm.api(method, path, raw=raw)
        expect(400 <= status < 500, "%s %s gets a 4xx, not %d" % (method, path, status))
        if want is not None:
            expect(status == want, "%s %s %r: want %d got %d %s" % (method, path, raw and raw[:40],
                                                                    want, status, body[:200]))
            expect(j is not None and words in j.get("fault_message", ""),
                   "fault_message mentions %r: %s" % (words, body[:200]))
    # Headers are bounded too (64 KiB): a client cannot make petrel hold megabytes.
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(vm.sock)
    try:
        try:
            c.sendall(b"GET /vm HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 << 20) +
                      b"\r\n\r\n")
        except OSError:
            pass  # petrel may close before the rest is sent; its answer is below
        head = c.recv(4096).split(b"\r\n", 1)[0]
    finally:
        c.close()
    expect(re.match(rb"HTTP/1\.[01] 4\d\d ", head), "2 MiB of headers get a 4xx: %r" % head)
    expect(vm.state() == "Running", "the VM still runs")
    expect(vm.api("PATCH", "/vm", {"state": "Paused"})[0] == 204, "and still pauses")
    expect(vm.stop() == 0, "stop")


ALREADY = {"Paused": (200, {"state": "Paused", "message": "the VM was already paused"}),
           "Resumed": (200, {"state": "Running", "message": "the VM was not paused"})}
DONE = (204, None)
SETTLED = {"Paused": "Paused", "Resumed": "Running"}


@case
def two_concurrent_clients():
    """Each round two clients ask at once: one to leave the VM's state, one to return to it.

    petrel is stopped (SIGSTOP) while both connect and send, so when it goes
    on it reads both requests in one pass of its loop: the second comes while
    the first one's transition is still under way (no vCPU ack can be seen in
    between). Requests are served in arrival order and never cancel each
    other (docs/api.md), so whichever of the two petrel takes first the
    answers are exact: the later request gets 204 and leaves the VM in its
    state, the earlier one gets 200 if the VM already was in the state it
    asked for, else 204. The state after the round says which came later.
    """
    vm = Vm("--cpus", "2")
    orders = set()
    for i in range(40):
        start = "Running" if i % 2 == 0 else "Paused"
        status, _, _ = vm.api("PATCH", "/vm", {"state": "Resumed" if i % 2 == 0 else "Paused"})
        expect(status in (200, 204) and vm.state() == start, "round %d: %s first" % (i, start))
        asks = ["Paused", "Resumed"] if start == "Running" else ["Resumed", "Paused"]
        clients = [UnixHTTP(vm.sock), UnixHTTP(vm.sock)]
        answers = []
        vm.r.signal(signal.SIGSTOP)
        try:
            for c in clients:
                c.connect()  # the listening socket's backlog takes it
            for c, ask in zip(clients, asks):
                c.request("PATCH", "/vm", body=json.dumps({"state": ask}),
                          headers={"Content-Type": "application/json"})
        finally:
            vm.r.signal(signal.SIGCONT)
        try:
            for c in clients:
                r = c.getresponse()
                body = r.read().decode()
                answers.append((r.status, json.loads(body) if body else None))
        finally:
            for c in clients:
                c.close()
        now = vm.state()
        expect(now in ("Running", "Paused"), "round %d: settled, not %s" % (i, now))
        later = 0 if SETTLED[asks[0]] == now else 1
        earlier = 1 - later
        want_earlier = ALREADY[asks[earlier]] if SETTLED[asks[earlier]] == start else DONE
        expect(answers[later] == DONE and answers[earlier] == want_earlier,
               "round %d from %s: %s then %s should answer %r then %r, got %r then %r"
               % (i, start, asks[earlier], asks[later], want_earlier, DONE, answers[earlier],
                  answers[later]))
        orders.add(later)
    print("     note: the later request came from client %s"
          % " and ".join(str(k) for k in sorted(orders)))
    vm.api("PATCH", "/vm", {"state": "Resumed"})
    expect(vm.state() == "Running", "settles Running")
    expect(vm.stop() == 0, "stop")


@case
def send_ctrl_alt_del():
    vm = Vm()
    status, _, body = vm.api("PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    expect(status == 204, "SendCtrlAltDel answers 204: %s" % body)
    expect(vm.stop() == 0, "stop")


@case
def power_button_the_guest_never_enabled_and_graceful_stop_falls_back():
    # hello never enables the ACPI power button: a press is refused, and says why.
    vm = Vm()
    status, _, _ = vm.api("PATCH", "/vm", {"state": "Paused"})
    expect(status == 204, "paused")
    status, j, _ = vm.api("PUT", "/actions", {"action_type": "PowerButton"})
    expect(status == 409 and j["fault_message"].startswith("the VM is Paused: "),
           "no power button while paused: %r" % j)
    p = petrel("stop", "--api-sock", vm.sock, "--graceful")
    expect(p.returncode == 1 and "the VM is Paused: " in text(p.stderr) and "(HTTP 409)"
           in text(p.stderr), "a graceful stop of a paused VM is refused", p)
    status, _, _ = vm.api("PATCH", "/vm", {"state": "Resumed"})
    expect(status == 204, "resumed")
    status, j, body = vm.api("PUT", "/actions", {"action_type": "PowerButton"})
    expect(status == 422 and "has not enabled the ACPI power button" in j["fault_message"],
           "PowerButton says the guest cannot see it: %d %s" % (status, body))
    expect(vm.state() == "Running", "nothing happened")
    # No --timeout: the default is long, and stop must not wait for a press nobody sees.
    p = petrel("stop", "--api-sock", vm.sock, "--graceful")
    expect(p.returncode == 0 and "has not enabled the ACPI power button" in text(p.stderr)
           and "; stopping it" in text(p.stderr) and "did not power off" not in text(p.stderr)
           and "stopped" in text(p.stdout), "graceful stop falls back to a hard stop at once", p)
    expect(vm.r.wait() == 0, "petrel exits 0")
    vm.dir.cleanup()


@case
def cli_pause_status_resume_stop_list():
    with tempfile.TemporaryDirectory() as rundir:
        env = dict(os.environ, XDG_RUNTIME_DIR=rundir)
        r = subprocess.Popen([os.environ["PETREL"], "run", "--kernel", kit("hello"), "--name",
                              "web1", "--cpus", "2"], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # The first line of output comes after the API socket exists.
            expect(b"hello" in r.stdout.readline(), "guest output")

            def cli(*args):
                return petrel(*args, env=env)

            p = cli("list")
            expect(p.returncode == 0 and "web1" in text(p.stdout) and "Running" in text(p.stdout),
                   "list shows web1", p)
            p = cli("pause", "web1")
            expect(p.returncode == 0 and text(p.stdout) == "web1: paused\n", "pause", p)
            p = cli("pause", "web1")
            expect(p.returncode == 0 and "already paused" in text(p.stdout), "second pause", p)
            p = cli("status", "web1")
            expect(p.returncode == 0 and "web1: Paused, 2 vCPUs, 256 MiB" in text(p.stdout),
                   "status", p)
            p = cli("status", "web1", "--json")
            j = json.loads(text(p.stdout))
            expect(j["state"] == "Paused" and j["vcpu_count"] == 2, "status --json", p)
            p = cli("resume", "web1")
            expect(p.returncode == 0 and text(p.stdout) == "web1: resumed\n", "resume", p)
            p = cli("run", "--kernel", kit("hello"), "--name", "web1")
            expect(p.returncode == 1 and "already running" in text(p.stderr), "name taken", p)
            p = cli("pause", "web1")
            p = cli("stop", "web1")
            expect(p.returncode == 0 and text(p.stdout) == "web1: stopped\n", "stop", p)
            expect(r.wait(timeout=60) == 0, "petrel exits 0")
            p = cli("list")
            expect("web1" not in text(p.stdout), "gone from the list", p)
            p = cli("status", "web1")
            expect(p.returncode == 1 and "no VM named 'web1'" in text(p.stderr), "no such VM", p)
        finally:
            if r.poll() is None:
                r.kill()
                r.wait()


@case
def stale_socket_is_reported_and_cleaned():
    with tempfile.TemporaryDirectory() as rundir:
        env = dict(os.environ, XDG_RUNTIME_DIR=rundir)
        r = subprocess.Popen([os.environ["PETREL"], "run", "--kernel", kit("hello"), "--name",
                              "gone"], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        expect(b"hello" in r.stdout.readline(), "guest output")
        r.kill()
        r.wait()
        sock = os.path.join(rundir, "petrel", "gone.sock")
        expect(os.path.exists(sock), "a killed petrel leaves its socket")
        p = petrel("pause", "gone", env=env)
        expect(p.returncode == 1 and "not running" in text(p.stderr), "stale reported", p)
        p = petrel("list", env=env)
        expect(p.returncode == 0 and "gone" not in text(p.stdout), "list skips it", p)
        expect(not os.path.exists(sock), "list removed the stale socket")
        # The name is free again.
        p = petrel("run", "--kernel", kit("hello"), "--name", "gone", "--debug-exit", env=env)
        expect(p.returncode == 0, "the name can be used again", p)


@case
def console_socket_attach_detach_reattach():
    vm = Vm("--console", "socket", name="c1", ready="petrel console c1", stream=1)
    expect(vm.r.output() == "", "nothing on stdout with a socket console")
    for _ in range(3):
        # Ctrl-A d only once the history has arrived: typed at once, it may detach
        # before the replay does (the guest may not even have printed yet).
        c = Running("console", "--api-sock", vm.sock, stdin=subprocess.PIPE)
        expect(c.wait_output("hello from the petrel guest kit"),
               "the history is replayed: %r %r" % (c.output(), c.errors()))
        c.proc.stdin.write(b"\x01d")
        c.proc.stdin.close()
        expect(c.wait() == 0, "detach exits 0: " + c.errors())
        expect("detached" in c.output(), "says it detached: %r" % c.output())
    expect(vm.stop() == 0, "stop")


@case
def console_file_and_pty():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "console.txt")
        p = petrel("run", "--kernel", kit("hello"), "--debug-exit", "--console", "file=" + path)
        expect(p.returncode == 0, "exit 0", p)
        with open(path) as f:
            expect("hello from the petrel guest kit" in f.read(), "the file has the output")
    vm = Vm("--console", "pty", name="p1", ready="the console is on", stream=1)
    err = vm.r.errors()
    expect("the console is on /dev/pts/" in err, "the pty path is printed: " + err)
    expect(vm.stop() == 0, "stop")


if __name__ == "__main__":
    main()
