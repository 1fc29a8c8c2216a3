#!/usr/bin/env python3
"""The example device (src/devices/testdev.c, petrel run --testdev) driven by its kit guest
(subprojects/petrel-kit/testdev.c): found on PCI, copies through the doorbell's ioeventfd
completed by MSI-X, and every hostile copy refused with an error status while the VM runs on."""
import os
import re
import select
import shutil
import subprocess
import tempfile
import time

from harness import PETREL, TIMEOUT, case, expect, kit, main, petrel, text

HOST_BRIDGE = "pci: 00:00.0 8086:0d57 class 060000 rev 00"
TESTDEV = re.compile(r"^pci: 00:([0-9a-f]{2})\.0 1234:7e57 class ff0000 rev 01\r?$", re.M)
HOSTILE = ["source far outside RAM", "destination far outside RAM", "source wrapping",
           "destination wrapping", "length 0", "length above the limit", "length 0xffffffff",
           "source in the device's BAR", "destination in the device's BAR",
           "destination on the MSI-X table", "destination in the LAPIC page",
           "destination running off RAM's end", "source running off RAM's end"]


def testdev(*extra, device=True):
    args = ["run", "--kernel", kit("testdev"), "--debug-exit"] + list(extra)
    if device:
        args.append("--testdev")
    return petrel(*args)


class Vm:
    """petrel run in the background, its console read here until a line shows."""

    def __init__(self, d, name, *args):
        self.sock = os.path.join(d, name + ".sock")
        self.err = os.path.join(d, name + ".err")
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen([PETREL, "run", *args, "--api-sock", self.sock],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err)
        self.out = b""

    def errors(self):
        with open(self.err, "rb") as f:
            return text(f.read())

    def read_until(self, needle):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + TIMEOUT
        while needle not in text(self.out):
            left = deadline - time.monotonic()
            expect(left > 0, "no %r on the console; got %r\nstderr: %s" % (
                needle, self.out[-400:], self.errors()))
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                expect(chunk, "petrel ended before %r: %r\nstderr: %s" % (
                    needle, self.out[-400:], self.errors()))
                self.out += chunk
        return text(self.out)

    def wait(self):
        rest, _ = self.proc.communicate(timeout=TIMEOUT)
        self.out += rest
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def lines(out):
    return [ln.rstrip("\r") for ln in out.splitlines() if ln.startswith("testdev: ")]


@case
def the_kit_guest_drives_the_device():
    p = testdev()
    out = text(p.stdout)
    expect(p.returncode == 0, "the guest passes and exits 0 through debug-exit", p)
    expect(TESTDEV.search(out), "testdev is a PCI function (1234:7e57, class ff0000)", p)
    got = lines(out)
    want = (["copy ok", "overlap ok"] + ["hostile %s ok" % h for h in HOSTILE]
            + ["masked ok", "again ok", "byte doorbell ok"])
    expect(got[1:-1] == ["testdev: " + w for w in want],
           "every case, in order:\n  " + "\n  ".join(got), p)
    m = re.match(r"testdev: PASS copies (\d+) refused (\d+) interrupts (\d+)$", got[-1])
    expect(m is not None, "a PASS line", p)
    copies, refused, irqs = (int(g) for g in m.groups())
    # copy 1, overlap 2, masked 1, again 1, byte doorbell 1: one interrupt per command,
    # the masked one's delivered at its unmask.
    expect(copies == 6 and refused == len(HOSTILE), "6 copies and %d refused" % len(HOSTILE), p)
    expect(irqs == copies + refused, "an MSI-X interrupt per command: %d" % irqs, p)
    err = text(p.stderr)
    # Logged once per device, whatever the guest does after.
    expect(len(re.findall(r"testdev: refused a copy", err)) == 1,
           "one log line for the refused copies:\n" + err, p)
    expect("cannot bind the doorbell" not in err, "the doorbell's ioeventfd is bound", p)


@case
def with_more_memory_ram_ends_elsewhere():
    # The off-the-end cases follow e820; RAM reaching into the 4 GiB split moves nothing else.
    p = testdev("--memory", "64M")
    expect(p.returncode == 0, "passes with 64 MiB", p)
    p = testdev("--memory", "3584M")
    expect(p.returncode == 0, "passes with RAM split around the PCI hole", p)


@case
def a_restored_device_runs_the_command_programmed_before_the_snapshot():
    """The guest programs a copy and SCRATCH, the VM is snapshotted and its process
    stopped; in a new process the guest rings the doorbell: the copy runs with the
    restored registers, the interrupt arrives through the restored MSI-X route, and
    every case passes after it."""
    with tempfile.TemporaryDirectory() as d:
        snap = os.path.join(d, "snap")
        vm = Vm(d, "orig", "--kernel", kit("testdev"), "--debug-exit", "--testdev",
                "--cmdline", "console=ttyS0 testdev.snapshot=1")
        try:
            vm.read_until("testdev: ready for a snapshot")
            p = petrel("snapshot", "--api-sock", vm.sock, snap)
            expect(p.returncode == 0, "petrel snapshot writes %s" % snap, p)
            p = petrel("stop", "--api-sock", vm.sock)
            expect(p.returncode == 0, "petrel stop", p)
            expect(vm.wait() == 0, "the stopped petrel exits 0: " + vm.errors())
        finally:
            vm.kill()
        dtc = shutil.which("dtc")
        if dtc:
            p = subprocess.run([dtc, "-I", "dtb", "-O", "dts", os.path.join(snap, "state")],
                               capture_output=True, timeout=TIMEOUT)
            dts = text(p.stdout)
            expect(re.search(r'testdev \{\n\t\t\tcompatible = "petrel,testdev-v1";', dts),
                   "a testdev node", p)
            expect(re.search(r"^\t\ttestdev = <0x01>;$", dts, re.M), "config says --testdev", p)
            expect(re.search(r"^\t\t\tscratch = <0x5eed>;$", dts, re.M), "SCRATCH saved", p)
        new = Vm(d, "new", "--restore", snap)
        try:
            new.proc.stdin.write(b"x")
            new.proc.stdin.flush()
            new.read_until("testdev: PASS")
            rc = new.wait()
        finally:
            new.kill()
        out = text(new.out)
        expect(rc == 0, "the restored guest passes: %r\n%s" % (rc, new.errors()))
        expect("testdev: after the snapshot ok" in out, "the command ran after the restore: " + out)


@case
def off_unless_asked_for():
    p = testdev(device=False)
    out = text(p.stdout)
    expect(p.returncode == 3, "the guest exits 3 without the device", p)
    expect("testdev: no testdev (1234:7e57)" in out, "it says so", p)
    expect(re.findall(r"^pci: [^\r\n]*", out, re.M) == [HOST_BRIDGE],
           "bus 0 holds the host bridge alone", p)


if __name__ == "__main__":
    main()
