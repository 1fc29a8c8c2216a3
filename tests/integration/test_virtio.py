#!/usr/bin/env python3
"""virtio-pci as a driver sees it: the guest kit's PCI enumeration and virtio 1.x driver
(tests/guest/lib/pci.c, virtio.c) against petrel's transport and devices, interrupt-driven
through MSI-X."""
import re

from harness import case, expect, kit, main, petrel, text

HOST_BRIDGE = "pci: 00:00.0 8086:0d57 class 060000 rev 00"
RNG_FUNC = re.compile(r"pci: 00:([0-9a-f]{2})\.0 1af4:1044 class ff0000 rev 01")


def rngcheck(*options, rng=True):
    args = ["run", "--kernel", kit("rngcheck"), "--debug-exit",
            "--cmdline", "console=ttyS0 " + " ".join(options)]
    if rng:
        args.append("--rng")
    return petrel(*args)


def passed(p, reads, size):
    out = text(p.stdout)
    expect(p.returncode == 0, "rngcheck ends with ACPI poweroff (status 0)", p)
    expect("FAIL" not in out, "no check failed", p)
    expect(out.startswith(HOST_BRIDGE) or ("\n" + HOST_BRIDGE) in out, "the host bridge", p)
    expect(RNG_FUNC.search(out), "virtio-rng is a PCI function (1af4:1044, class ff0000)", p)
    m = re.search(r"rngcheck: PASS reads (\d+) bytes (\d+) interrupts (\d+)\r?\n", out)
    expect(m is not None, "a PASS line", p)
    n, total, irqs = (int(g) for g in m.groups())
    expect(n == reads and total == reads * size,
           "%d reads of %d bytes each came back whole" % (reads, size), p)
    # rngcheck waits for each request's own interrupt: fewer than one per read cannot pass.
    expect(irqs >= reads, "an MSI-X interrupt per request (%d for %d)" % (irqs, reads), p)
    expect(len(re.findall(r"rngcheck: read \d+ %d bytes [0-9a-f]{16}\r?\n" % size, out)) == reads,
           "one line per read", p)
    expect("rngcheck: poweroff" in out, "then ACPI poweroff", p)
    return out


@case
def rng_reads_random_bytes_through_msix():
    out = passed(rngcheck(), 4, 64)
    # VERSION_1 is all the kit accepts; petrel offers INDIRECT_DESC and EVENT_IDX too.
    m = re.search(r"features 0x([0-9a-f]+) accepted 0x([0-9a-f]+) queue 0 size 16", out)
    expect(m is not None, "the negotiation line: " + out)
    offered, accepted = int(m.group(1), 16), int(m.group(2), 16)
    expect(offered & (1 << 32) and offered & (1 << 28) and offered & (1 << 29),
           "petrel offers VERSION_1, INDIRECT_DESC, EVENT_IDX: 0x%x" % offered)
    expect(accepted == 1 << 32, "the kit accepts VERSION_1 alone: 0x%x" % accepted)


@case
def rng_fills_a_whole_queue_of_large_reads():
    # 16 requests (the kit's queue size), 4 KiB each: the ring indexes go round once.
    passed(rngcheck("rngcheck.reads=16", "rngcheck.size=4096"), 16, 4096)


@case
def rng_chains_in_the_ring_and_in_indirect_tables_with_event_idx():
    # Each 100-byte read over 7 chained descriptors, then over 8 in an indirect
    # table with EVENT_IDX: the device walks the chains and still interrupts per request.
    passed(rngcheck("rngcheck.size=100", "rngcheck.segs=7"), 4, 100)
    out = passed(rngcheck("rngcheck.reads=16", "rngcheck.size=100", "rngcheck.segs=8",
                          "rngcheck.indirect=1", "rngcheck.event_idx=1"), 16, 100)
    expect("accepted 0x130000000 queue 0" in out, "INDIRECT_DESC and EVENT_IDX accepted: " + out)


@case
def without_rng_the_guest_finds_no_device():
    p = rngcheck(rng=False)
    out = text(p.stdout)
    expect(p.returncode == 3, "rngcheck exits 3 when there is no virtio-rng", p)
    expect("rngcheck: no virtio-rng (1af4:1044)" in out, "it says so", p)
    expect(re.findall(r"^pci: [^\r\n]*", out, re.M) == [HOST_BRIDGE],
           "bus 0 holds the host bridge alone", p)


if __name__ == "__main__":
    main()
