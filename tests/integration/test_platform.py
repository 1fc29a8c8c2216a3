#!/usr/bin/env python3
"""The platform a stock kernel expects, read by kit guests: ACPI and MP tables that match
the command line, ACPI poweroff and reset, the power button, the CMOS RTC."""
import datetime
import os
import re
import tempfile
import time

from harness import Running, case, expect, kit, main, petrel, text

WINDOW = "pci 0xc0000000-0xfebfffff"


def platform(cpus, *options):
    cmdline = "console=ttyS0 platform.cpus=%d %s" % (cpus, " ".join(options))
    return petrel("run", "--kernel", kit("platform"), "--cpus", str(cpus), "--debug-exit",
                  "--cmdline", cmdline)


def tables_match(cpus):
    p = platform(cpus, "platform.poweroff=1")
    out = text(p.stdout)
    apics = ",".join(str(i) for i in range(cpus))
    expect(p.returncode == 0 and "platform: ok" in out and "platform: poweroff" in out,
           "%d vCPUs: the tables agree and ACPI poweroff ends petrel with 0" % cpus, p)
    expect("acpi: cpus %d apic %s ioapic %d@0xfec00000 gsi0 sci 9 irq0->gsi2 "
           "irq9->gsi9:low,level %s s5 5" % (cpus, apics, cpus, WINDOW) in out,
           "the MADT, FADT and DSDT say what petrel was told", p)
    expect("mp: cpus %d apic %s bsp 0 ioapic %d@0xfec00000 irq0->pin2 irq9->pin9:low,level"
           % (cpus, apics, cpus) in out, "the MP table says the same", p)
    expect("reset 0x60c=0x1" in out and "pm1a_cnt 0x604" in out, "the FADT's registers", p)


@case
def tables_for_one_vcpu_and_acpi_poweroff():
    tables_match(1)


@case
def tables_for_two_vcpus_and_acpi_poweroff():
    tables_match(2)


@case
def tables_for_four_vcpus():
    tables_match(4)


@case
def acpi_reset_register_ends_petrel_with_0():
    p = platform(1, "platform.reset=1")
    expect(p.returncode == 0 and "platform: reset" in text(p.stdout),
           "the FADT's reset register resets the machine", p)


@case
def rtc_reads_the_host_date():
    # platform prints the RTC's date and time (UTC) and exits through debug-exit.
    before = datetime.datetime.now(datetime.timezone.utc)
    p = platform(1)
    after = datetime.datetime.now(datetime.timezone.utc)
    expect(p.returncode == 0, "platform ran", p)
    m = re.search(r"rtc: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text(p.stdout))
    expect(m is not None, "an rtc line", p)
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    # The RTC counts whole seconds: allow one on each side.
    expect(before - datetime.timedelta(seconds=1) <= t <= after + datetime.timedelta(seconds=1),
           "RTC %s between %s and %s" % (t, before, after), p)


@case
def power_button_reaches_the_guest_and_graceful_stop_completes():
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "pb.sock")
        r = Running("run", "--kernel", kit("pwrbtn"), "--name", "pb", "--api-sock", sock,
                    "--debug-exit")
        expect(r.wait_output("pwrbtn: armed"), "the guest enables the power button: " +
               r.output() + r.errors())
        p = petrel("stop", "--api-sock", sock, "--graceful", "--timeout", "60")
        expect(p.returncode == 0 and "powered off" in text(p.stdout), "graceful stop", p)
        expect(r.wait() == 0, "petrel exits 0 after the guest's poweroff")
        expect("pwrbtn: pressed" in r.output(), "the SCI reached the guest: " + r.output())


@case
def demo_shell_poweroff():
    p = petrel("run", "--kernel", kit("demo"), "--debug-exit", input=b"poweroff\n")
    expect(p.returncode == 0 and "powering off" in text(p.stdout),
           "the demo's poweroff ends petrel with 0", p)


if __name__ == "__main__":
    main()
