#!/usr/bin/env python3
"""Pause and resume under load: the kick reaches spinning, halted and chatty vCPUs,
hundreds of times, without a hang or a lost console byte."""
import http.client
import json
import os
import re
import signal
import tempfile
import time

from harness import Running, UnixHTTP, api, case, diagnose, expect, kit, main

CYCLES = int(os.environ.get("PETREL_PAUSE_CYCLES", "500"))


class Guest:
    def __init__(self, image, cmdline, ready, cpus=1):
        self.dir = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.dir.name, "g.sock")
        self.r = Running("run", "--kernel", kit(image), "--cmdline", cmdline, "--cpus", str(cpus),
                         "--api-sock", self.sock, "--stats")
        expect(self.r.wait_output(ready), "guest ready: " + self.r.errors())

    def cycles(self, n):
        """n pause/resume cycles on one keep-alive connection, as a script would do."""
        c = UnixHTTP(self.sock)
        try:
            for i in range(n):
                for state in ("Paused", "Resumed"):
                    try:
                        c.request("PATCH", "/vm", body=json.dumps({"state": state}),
                                  headers={"Content-Type": "application/json"})
                        r = c.getresponse()
                        body = r.read()
                    except OSError as e:
                        diagnose(self.r.proc.pid)
                        raise AssertionError("cycle %d %s: no answer (%s); output ends %r" % (
                            i, state, e, self.r.output()[-200:]))
                    expect(r.status == 204, "cycle %d %s: %d %r" % (i, state, r.status, body))
        finally:
            c.close()
        _, j, _ = api(self.sock, "GET", "/vm")
        expect(j["pause"]["count"] >= n, "every pause completed: %r" % j["pause"])
        expect(j["state"] == "Running", "running again")
        return j

    def stop(self):
        status, _, _ = api(self.sock, "PUT", "/actions", {"action_type": "Stop"})
        expect(status == 204, "stop accepted")
        rc = self.r.wait()
        self.dir.cleanup()
        expect(rc == 0, "petrel exits 0, got %r: %s" % (rc, self.r.errors()))
        expect("console output dropped 0" in self.r.errors(), "no byte dropped: " +
               self.r.errors())


def consecutive(out, pattern=r"counter: (\d+)\r\n"):
    nums = [int(n) for n in re.findall(pattern, out)]
    expect(len(nums) > 2, "some lines: %r" % out[-200:])
    expect(nums == list(range(nums[0], nums[0] + len(nums))),
           "consecutive, no skip or repeat: first bad at %s" % next(
               (i for i in range(1, len(nums)) if nums[i] != nums[i - 1] + 1), None))
    return nums


@case
def paused_guest_is_silent_and_resumes_without_a_skip():
    g = Guest("counter", "counter.ms=20", "counter: 5\r\n")
    expect(api(g.sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204, "paused")
    before = g.r.output()
    time.sleep(0.4)  # the observation window: a paused guest prints nothing in it
    expect(g.r.output() == before, "no output while paused")
    _, j, _ = api(g.sock, "GET", "/")
    expect(j["state"] == "Paused", "status says Paused")
    expect(api(g.sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204, "resumed")
    last = int(re.findall(r"counter: (\d+)", before)[-1])
    expect(g.r.wait_output("counter: %d\r\n" % (last + 5)), "counting again")
    g.stop()
    consecutive(g.r.output())


@case
def cycles_with_the_guest_spinning():
    g = Guest("spin", "", "spin: ready")
    g.cycles(CYCLES)
    g.stop()


@case
def cycles_with_the_guest_halted():
    g = Guest("halt", "", "halt: ready")
    g.cycles(CYCLES)
    g.stop()


@case
def cycles_with_a_halted_ap_and_a_spinning_bsp():
    # The AP never gets a SIPI: it waits in KVM's in-kernel LAPIC, and must park too.
    g = Guest("spin", "", "spin: ready", cpus=2)
    g.cycles(CYCLES)
    g.stop()


@case
def cycles_with_two_busy_vcpus():
    g = Guest("spin", "spin.smp=1", "spin: ready cpus 2", cpus=2)
    g.cycles(CYCLES)
    g.stop()


@case
def cycles_with_two_busy_vcpus_while_one_prints():
    # The AP spins without exits while the BSP prints the counter: no lost byte.
    g = Guest("counter", "counter.ms=10 counter.smp=1", "counter: 3\r\n", cpus=2)
    g.cycles(CYCLES // 2)
    g.stop()
    consecutive(g.r.output())


@case
def cycles_while_the_guest_prints_nonstop():
    # Every byte is a port exit (and THRE polls are port reads): pauses land in the
    # middle of them, and each must complete before the vCPU parks.
    g = Guest("counter", "counter.ms=10", "counter: 3\r\n")
    g.cycles(CYCLES // 2)
    g.stop()
    consecutive(g.r.output())


@case
def stop_during_a_pause_storm():
    g = Guest("counter", "counter.ms=10", "counter: 3\r\n", cpus=2)
    g.cycles(20)
    expect(api(g.sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204, "paused")
    g.stop()
    consecutive(g.r.output())


if __name__ == "__main__":
    main()
