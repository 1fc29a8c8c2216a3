#!/usr/bin/env python3
"""The gdb stub (petrel run --gdb): Debian's gdb in batch mode against kit guests, with
their ELF for symbols. Registers, a hardware breakpoint, steps, variables by symbol,
memory by virtual and physical address, a software breakpoint and a watchpoint, Ctrl-C
stopping a spinning SMP guest, detach.

What a host's KVM cannot deliver the stub refuses, and there these cases check that gdb
hears the refusal; where it can, they check the stops (docs/gdb.md):
- kvm_pvm (this project's hosts): hbreak and stepping stop; int3 and watchpoints refused;
- kvm_amd on QEMU's TCG emulation of SVM (the nested harness): no debug exit arrives, so
  every breakpoint, watchpoint and step is refused; registers, memory, Ctrl-C work;
- a hardware-virtualization KVM (kvm_intel, kvm_amd on a real CPU): everything stops."""
import os
import shutil
import signal
import subprocess
import tempfile

from harness import TIMEOUT, Running, case, expect, kit, main, petrel

# The stub knows kvm_pvm by this module and TCG by its CPUID signature; the nested
# harness (PETREL_NESTED=1) is always TCG.
PVM = os.path.exists("/sys/module/kvm_pvm")
TCG = os.environ.get("PETREL_NESTED") == "1"
HW_EXEC = not TCG     # hbreak and stepping
SW_AND_WATCH = not TCG and not PVM
GDB = shutil.which("gdb") or "gdb"


def elf(name):
    path = os.path.join(os.environ.get("KIT_DIR", ""), "kit-%s.elf" % name)
    expect(os.path.exists(path), "kit ELF with symbols: " + path)
    return path


class Stub:
    """A petrel with --gdb on a unix socket, waiting for gdb."""

    def __init__(self, program, *args, cpus=1):
        self.dir = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.dir.name, "gdb.sock")
        self.program = program
        self.r = Running("run", "--kernel", kit(program), "--debug-exit", "--cpus", str(cpus),
                         "--gdb", "unix:" + self.sock, *args)
        expect(self.r.wait_output("the guest waits for gdb", stream=1),
               "petrel announces the stub: " + self.r.errors())

    def gdb_args(self, commands):
        args = [GDB, "-nx", "-batch", "-ex", "set pagination off", "-ex", "set confirm off",
                "-ex", "file " + elf(self.program), "-ex", "target remote " + self.sock]
        for c in commands:
            args += ["-ex", c]
        return args

    def gdb(self, *commands):
        """Runs gdb with these commands to its end; returns its output."""
        p = subprocess.run(self.gdb_args(commands), capture_output=True, timeout=TIMEOUT,
                           stdin=subprocess.DEVNULL)
        return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")

    def finish(self, status=0):
        rc = self.r.wait()
        self.dir.cleanup()
        expect(rc == status, "petrel exits %d, got %r: %s" % (status, rc, self.r.errors()))
        expect(not os.path.exists(self.sock), "the socket file is removed")
        return self.r.output()


@case
def registers_memory_variables():
    # 3136M: 64 MiB of RAM at 4 GiB, which the kit's page tables (0-4 GiB, 1:1) do not map.
    s = Stub("gdbtarget", "--memory", "3136M")
    out = s.gdb("info registers rip", 'printf "cr0=%#x efer=%#x cs=%d\\n", $cr0, $efer, $cs',
                'printf "value=%d\\n", gdbt_value', "set var gdbt_marks = 100",
                'printf "marks=%d\\n", gdbt_marks',
                "x/2xb gdbt_tick", "x/1xb 0x100000000", "monitor phys", "x/2xb 0x100260",
                "x/1xb 0x100000000", "monitor virt", "set var $rax = 0x1234",
                'printf "rax=%#x\\n", $rax', "continue")
    # The guest waits for gdb at its entry (startup_64 at 1 MiB + 0x200), in long mode.
    expect("0x100200 <startup_64>" in out, "stopped at the entry: " + out)
    expect("cr0=0x80000011 " in out or "cr0=0x80000031 " in out, "cr0: PG and PE: " + out)
    expect("efer=0x500 cs=16\n" in out, "efer: LME, LMA; cs: the boot GDT's 0x10: " + out)
    expect("value=0\n" in out, "a variable by symbol: " + out)
    expect("rax=0x1234\n" in out, "a register written: " + out)
    # Virtual addresses go through the guest's page tables, physical ones straight to RAM.
    expect("Cannot access memory at address 0x100000000" in out, "unmapped virtually: " + out)
    expect("0x100000000:\t0x00" in out, "RAM at 4 GiB physically: " + out)
    expect(out.count("0x100260 <gdbt_tick>:\t0x48\t0x89") == 2, "both ways agree 1:1: " + out)
    expect("memory addresses are guest-physical" in out, out)
    expect("exited normally" in out, "the guest runs to its end: " + out)
    expect("marks=100\n" in out, "a variable written and read back: " + out)
    console = s.finish()
    # (The kit clears its bss at start, gdb's 100 with it.)
    expect("gdbtarget: done value 51 marks 3" in console, console)


@case
def hbreak_and_step():
    s = Stub("gdbtarget")
    out = s.gdb("hbreak gdbt_mark", "continue", 'printf "value=%d\\n", gdbt_value',
                "stepi", 'printf "moved=%d\\n", $pc != gdbt_mark', "continue",
                'printf "value=%d\\n", gdbt_value', "delete", "continue")
    if HW_EXEC:
        expect("Breakpoint 1, gdbt_mark ()" in out, "the hardware breakpoint stops: " + out)
        expect("value=17\n" in out, "gdbt_value by symbol after round 1: " + out)
        expect("moved=1\n" in out, "a step moved the pc past the breakpoint: " + out)
        expect("value=34\n" in out, "the next round stops again: " + out)
    else:
        expect("Could not insert hardware breakpoint" in out, "gdb hears the refusal: " + out)
        expect(s.r.wait_output("breakpoints, watchpoints and stepping are refused", stream=1),
               s.r.errors())
    expect("exited normally" in out, "the guest runs to its end: " + out)
    console = s.finish()
    expect("gdbtarget: done value 51 marks 3" in console, "the guest ran unharmed: " + console)


@case
def software_breakpoint():
    s = Stub("gdbtarget")
    out = s.gdb("break gdbt_tick", "continue", "print round", "x/1xb $pc",
                "continue", "print round", "delete", "continue")
    if not SW_AND_WATCH:
        expect("Cannot insert breakpoint 1" in out, "gdb hears the refusal: " + out)
        expect(s.r.wait_output("are refused", stream=1) and "breakpoints" in s.r.errors(),
               s.r.errors())
    else:
        expect("Breakpoint 1, gdbt_tick (round=1)" in out,
               "int3 stops: " + out + "\npetrel: " + s.r.errors())
        # gdb reads the original byte, not the int3 planted there.
        expect("0xcc" not in out.split("Breakpoint 1, gdbt_tick (round=1)")[1].split("\n$")[1],
               "the int3 is hidden: " + out)
        expect("Breakpoint 1, gdbt_tick (round=2)" in out, "stops again: " + out)
    expect("exited normally" in out, out)
    console = s.finish()
    expect("gdbtarget: done value 51 marks 3" in console, "original bytes back: " + console)


@case
def watchpoint():
    s = Stub("gdbtarget")
    out = s.gdb("watch gdbt_value", "continue", "continue", "print gdbt_marks", "delete",
                "continue")
    if not SW_AND_WATCH:
        expect("Could not insert hardware watchpoint" in out, "gdb hears the refusal: " + out)
        expect(s.r.wait_output("are refused", stream=1) and "watchpoints" in s.r.errors(),
               s.r.errors())
    else:
        expect("Old value = 0\nNew value = 17" in out,
               "stops on the first write: " + out + "\npetrel: " + s.r.errors())
        expect("Old value = 17\nNew value = 34" in out, "and on the second: " + out)
        expect("= 1\n" in out, "between gdbt_mark's first and second calls: " + out)
    expect("exited normally" in out, out)
    s.finish()


@case
def ctrl_c_stops_spinning_smp():
    s = Stub("spin", "--cmdline", "spin.smp=1", cpus=2)
    g = subprocess.Popen(s.gdb_args(["continue", "info threads", "thread 2", "print $pc",
                                     "print spin_cpu_counter[1].n > 0", "thread 1",
                                     "print $pc", "kill"]),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        # gdb's continue started the guest; both CPUs spin without exits.
        expect(s.r.wait_output("spin: ready cpus 2"), "guest spinning: " + s.r.output())
        g.send_signal(signal.SIGINT)  # gdb's Ctrl-C: it sends 0x03
        out, _ = g.communicate(timeout=TIMEOUT)
    finally:
        if g.poll() is None:
            g.kill()
    out = out.decode("utf-8", "replace")
    expect("received signal SIGINT" in out, "stopped by Ctrl-C: " + out)
    expect("Thread 1 (vCPU 0)" in out and "Thread 2 (vCPU 1)" in out, "a thread per vCPU: " + out)
    expect("<spin_ap+" in out, "vCPU 1 is in its loop: " + out)
    expect("$3 = (void (*)()) 0x" in out, "vCPU 0's pc (in its loop or still printing): " + out)
    expect("= 1\n" in out, "vCPU 1's counter by symbol: " + out)
    s.finish(0)  # gdb's kill stops the VM


@case
def detach_lets_the_guest_run():
    s = Stub("gdbtarget")
    out = s.gdb("hbreak gdbt_tick", "detach")
    expect("detached" in out, out)
    console = s.finish()
    expect("gdbtarget: done value 51" in console, "ran on after gdb left: " + console)


@case
def attach_to_a_running_guest():
    # After a detach the guest runs; a new gdb stops it through the same pause.
    s = Stub("spin")
    out = s.gdb("detach")
    expect("detached" in out, out)
    expect(s.r.wait_output("spin: ready"), "the guest runs after the detach: " + s.r.output())
    out = s.gdb('printf "counting=%d\\n", spin_counter > 0', "info registers rip", "kill")
    expect("counting=1\n" in out, "stopped and read: " + out)
    expect("<kit_main+" in out, "stopped in its loop: " + out)
    s.finish(0)


@case
def addresses_refused():
    for addr in ("0.0.0.0:1234", "192.168.1.1:1234", "tcp::1234", ":1234", "127.0.0.1:0",
                 "127.0.0.1:99999", "unix:"):
        p = petrel("run", "--kernel", kit("hello"), "--gdb", addr)
        expect(p.returncode == 2, "--gdb %s refused" % addr, p)
    p = petrel("run", "--kernel", kit("hello"), "--gdb", "0.0.0.0:1234")
    expect(b"127.0.0.1:PORT" in p.stderr and b"no other address" in p.stderr, "says why", p)


if __name__ == "__main__":
    main()
