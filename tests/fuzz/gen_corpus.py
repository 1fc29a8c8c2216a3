#!/usr/bin/env python3
"""Writes the seed corpus of a fuzz target into a directory.

usage: gen_corpus.py TARGET DIR     (TARGET: one of TARGETS below)

The seeds are small synthetic inputs, generated at build time so that no
binaries live in git. Each is a plausible input that reaches deep into the
code: valid bzImages and ELF vmlinux files of several shapes and near-misses for
fuzz_kernel, and
register sequences of real drivers (Linux's 8250 probe, polled and
interrupt-driven output, input, loopback) for fuzz_uart8250, in the op format
described in fuzz_uart8250.c, API request bodies and HTTP responses (first
byte even: a body; odd: a response) for fuzz_api, and what Linux's rtc-cmos and
mc146818 code do to the CMOS RTC (reading and setting the time, alarms, update
and periodic interrupts, NVRAM) for fuzz_rtc_cmos, in its op format, and guest
RAM images holding split virtqueues (block-style requests, indirect tables,
indexes about to wrap, a full ring, and each malformed chain a hostile driver
can build) with a device's pops and pushes for fuzz_virtqueue, and PCI
configuration and BAR accesses (Linux's conf1 probe and enumeration, BAR
sizing, MSI-X set-up, masking and firing, BARs moved onto each other, odd
port accesses) for fuzz_pci, in its op format, and driver start-ups with
virtio-blk requests of every kind (reads, writes, flush, GET_ID, discard and
write-zeroes ranges, indirect chains, malformed and read-only cases, a reset
midway) for fuzz_virtio_blk, in fuzz_virtio_ops.h's op format, and what API clients
write (every route, bad paths, methods, headers and bodies, the body limits, chunked
bodies, Expect, HTTP/1.0, pipelined requests) for fuzz_api_http.

fuzz_snapshot's seeds are not here: they are state files, which
fuzz_snapshot_seeds.c writes with petrel's own writers so that they keep up
with the format.
"""
import os
import struct
import sys


def bzimage(setup_sects=2, pm_size=0x1000, version=0x020F, hdr_end=0x268,
            loadflags=0x01, xloadflags=0x03, init_size=0x10000,
            cmdline_size=2047, initrd_addr_max=0x7FFFFFFF, relocatable=1,
            mem_mib=64, initrd_size=0x100000, syssize=None):
    """A bzImage as petrel's parser sees it (boot protocol 2.12+)."""
    sects = setup_sects or 4
    setup_size = (sects + 1) * 512
    img = bytearray(setup_size + pm_size)
    img[0x1F0] = (mem_mib - 1) % 64  # the fuzz target's guest memory size
    img[0x1F1] = setup_sects
    if syssize is None:
        syssize = (pm_size + 15) // 16
    struct.pack_into("<I", img, 0x1F4, syssize)
    struct.pack_into("<H", img, 0x1FA, 0xFFFF)
    struct.pack_into("<H", img, 0x1FE, 0xAA55)
    img[0x200] = 0xEB
    img[0x201] = hdr_end - 0x202
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, version)
    img[0x211] = loadflags
    struct.pack_into("<I", img, 0x214, 0x100000)
    struct.pack_into("<I", img, 0x22C, initrd_addr_max)
    struct.pack_into("<I", img, 0x230, 0x200000)
    img[0x234] = relocatable
    img[0x235] = 21
    struct.pack_into("<H", img, 0x236, xloadflags)
    struct.pack_into("<I", img, 0x238, cmdline_size)
    struct.pack_into("<Q", img, 0x258, 0x1000000)
    struct.pack_into("<I", img, 0x260, init_size)
    for i in range(pm_size):
        img[setup_size + i] = (i * 13 + 5) & 0xFF
    # The last four bytes are the fuzz target's initrd size.
    struct.pack_into("<I", img, len(img) - 4, initrd_size)
    return bytes(img)


def bzimage_seeds():
    return {
        "valid-minimal": bzimage(),
        "valid-default-sects": bzimage(setup_sects=0, version=0x020C, hdr_end=0x264,
                                       mem_mib=16, initrd_size=0),
        "valid-big-init": bzimage(init_size=48 << 20, mem_mib=64, initrd_size=8 << 20),
        "valid-short-cmdline": bzimage(cmdline_size=16),
        "valid-low-initrd-max": bzimage(initrd_addr_max=0x00FFFFFF, initrd_size=0x1234),
        "valid-long-header": bzimage(hdr_end=0x301, setup_sects=1, pm_size=0x201),
        "valid-syssize-zero": bzimage(syssize=0, relocatable=0, mem_mib=2),
        "old-version": bzimage(version=0x020B),
        "no-kernel-64": bzimage(xloadflags=0x02),
        "zimage": bzimage(loadflags=0),
        "truncated": bzimage(syssize=0x1000),
        # syssize rounded up over a file that ends inside its last paragraph: loaded.
        "valid-partial-paragraph": bzimage(pm_size=0x1000 - 15, syssize=0x100),
        "short-by-a-paragraph": bzimage(pm_size=0x1000 - 16, syssize=0x100),
        # The kernel's memory ends at 4 GiB exactly (parsed; no guest memory holds it) ...
        "init-size-to-4g": bzimage(init_size=0xFFF00000),
        # ... or at 0x1000fffff, above it: what libFuzzer found the parser accepted.
        "init-size-above-4g": bzimage(init_size=0xFFFFFFFF),
        "gzip": b"\x1f\x8b\x08\x00" + bytes(1100),
    }


PF_X, PF_W, PF_R = 1, 2, 4


def vmlinux(segments=((0x100000, 0x300, 0x1000, PF_R | PF_X), (0x200000, 0x100, 0x4000,
                                                                  PF_R | PF_W)),
            entry=0x100000, machine=62, elf_class=2, etype=2, phentsize=56, extra_ph=(),
            mem_mib=8, initrd_size=0x10000):
    """An ELF vmlinux: segments are (paddr, filesz, memsz, flags), data after 0x200."""
    phs = [(1,) + tuple(s) for s in segments] + list(extra_ph)
    data_off = 0x200
    img = bytearray(data_off)
    img[0:4] = b"\x7fELF"
    img[4], img[5], img[6] = elf_class, 1, 1
    struct.pack_into("<HHIQQQIHHHHHH", img, 16, etype, machine, 1, entry, 64, 0, 0, 64,
                     phentsize, len(phs), 64, 0, 0)
    for i, (ptype, paddr, filesz, memsz, flags) in enumerate(phs):
        struct.pack_into("<IIQQQQQQ", img, 64 + 56 * i, ptype, flags, len(img),
                         (0xFFFFFFFF80000000 + paddr) % 2**64, paddr, filesz, memsz, 0x1000)
        img += bytes((j * 7 + i) & 0xFF for j in range(filesz))
    img[0x1F0] = (mem_mib - 1) % 64  # the fuzz target's guest memory size
    img += struct.pack("<I", initrd_size)  # the fuzz target's initrd size
    return bytes(img)


def kernel_seeds():
    seeds = bzimage_seeds()
    seeds.update({
        "elf-valid": vmlinux(),
        "elf-one-segment": vmlinux(segments=((0x1000000, 0x400, 0x400, PF_R | PF_X),),
                                   entry=0x1000010, mem_mib=32),
        "elf-note-and-empty": vmlinux(extra_ph=((4, 0x300000, 0x10, 0x10, PF_R),
                                                (1, 0x400000, 0, 0, PF_R))),
        "elf-big-bss": vmlinux(segments=((0x100000, 0x100, 0x100, PF_R | PF_X),
                                         (0x200000, 0, 40 << 20, PF_R | PF_W)),
                               mem_mib=64),
        "elf-overlap": vmlinux(segments=((0x100000, 0x100, 0x2000, PF_R | PF_X),
                                         (0x101000, 0x100, 0x100, PF_R | PF_W))),
        "elf-below-1m": vmlinux(segments=((0x1000, 0x100, 0x100, PF_R | PF_X),), entry=0x1000),
        "elf-entry-in-bss": vmlinux(entry=0x100400),
        "elf-entry-not-exec": vmlinux(entry=0x200000),
        "elf-32": vmlinux(elf_class=1),
        "elf-arm64": vmlinux(machine=183),
        "elf-dyn": vmlinux(etype=3),
        "elf-bad-phentsize": vmlinux(phentsize=32),
        # A segment ending at 4 GiB exactly, and one byte past it.
        "elf-to-4g": vmlinux(segments=((0xFFFFF000, 0x100, 0x1000, PF_R | PF_X),),
                             entry=0xFFFFF000),
        "elf-above-4g": vmlinux(segments=((0xFFFFF000, 0x100, 0x1001, PF_R | PF_X),),
                                entry=0xFFFFF000),
    })
    return seeds


# fuzz_uart8250's op format.
THR, RBR, DLL, IER, DLM, IIR, FCR, LCR, MCR, LSR, MSR, SCR = 0, 0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 7


def w(reg, val):
    return bytes([reg, val])


def r(reg):
    return bytes([0x40 | reg])


def rx(data):
    out = b""
    for i in range(0, len(data), 31):
        chunk = data[i:i + 31]
        out += bytes([0x80 | len(chunk)]) + chunk
    return out


def drain(n):
    return bytes([0xA0 | n])


SPACE = bytes([0xC0])
RESET = bytes([0xE0])


def uart_seeds():
    probe = (w(IER, 0) + r(IER) + w(IER, 0x0F) + r(IER) + w(IER, 0)
             + w(MCR, 0x1A) + r(MSR) + w(MCR, 0x0B)
             + w(LCR, 0xBF) + w(LCR, 0x80) + w(DLL, 1) + w(DLM, 0) + r(DLL) + r(DLM)
             + w(LCR, 0x03) + w(FCR, 0xC7) + r(IIR) + w(FCR, 0) + r(IIR)
             + w(SCR, 0xA5) + r(SCR) + r(LSR) + r(MSR) + r(IIR))
    polled = b""
    for ch in b"Linux version 6.1.0 (petrel fuzz) #1 SMP\n":
        polled += r(LSR) + w(THR, ch)
    polled += drain(31) + drain(31)
    irq_tx = w(FCR, 0x07) + w(MCR, 0x0B) + w(IER, 0x02) + r(IIR)
    for ch in b"interrupt driven output that overflows the console":
        irq_tx += r(LSR) + w(THR, ch)
    irq_tx += r(IIR) + drain(3) + r(IIR) + SPACE + r(LSR) + w(THR, ord("!")) + drain(31)
    irq_rx = (w(LCR, 0x03) + w(FCR, 0x01) + w(IER, 0x05) + rx(b"root\nls -l /\n")
              + r(IIR) + r(LSR) + b"".join(r(RBR) for _ in range(14)) + r(LSR) + r(IIR)
              + rx(b"0123456789abcdefXYZ") + r(LSR) + r(RBR) + w(FCR, 0x03) + r(LSR))
    loop = (w(MCR, 0x10) + w(IER, 0x05) + w(THR, 0x55) + w(THR, 0xAA) + r(IIR) + r(LSR)
            + r(LSR) + r(RBR) + w(FCR, 0x01) + b"".join(w(THR, i) for i in range(18))
            + r(LSR) + b"".join(r(RBR) for _ in range(17)) + w(MCR, 0x00) + r(MSR))
    dlab = (w(LCR, 0x80) + w(THR, 0x30) + w(IER, 0x12) + r(RBR) + r(IER) + w(LCR, 0x00)
            + r(IER) + w(THR, 0x41) + r(LSR) + drain(1))
    reset = (w(IER, 0x0F) + rx(b"abc") + w(THR, 0x42) + RESET + r(IIR) + r(LSR) + r(IER)
             + drain(4) + SPACE)
    return {
        "probe": bytes([7]) + probe,
        "polled-output": bytes([15]) + polled,
        "irq-output": bytes([3]) + irq_tx,
        "irq-input": bytes([31]) + irq_rx,
        "loopback-overrun": bytes([0]) + loop,
        "dlab": bytes([1]) + dlab,
        "reset": bytes([2]) + reset,
    }


def api_seeds():
    bodies = {
        "body-pause": b'{"state": "Paused"}',
        "body-resume": b'{"state": "Resumed"}',
        "body-action": b'{"action_type": "SendCtrlAltDel"}',
        "body-both": b'{"state": "Paused", "action_type": "x"}',
        "body-unknown-field": b'{"mem_file_path": "/tmp/m"}',
        "body-not-string": b'{"state": 1}',
        "body-duplicate": b'{"state": "Paused", "state": "Resumed"}',
        "body-array": b'["Paused"]',
        "body-nested": b'{"state": {"a": [1, 2, {"b": null}]}}',
        "body-escapes": b'{"state": "\\u0000\\ud83d\\ude00\\n"}',
        "body-truncated": b'{"state": "Pau',
    }
    responses = {
        "resp-ok": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 19\r\n\r\n{\"state\": \"Paused\"}",
        "resp-no-content": b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        "resp-fault": b"HTTP/1.1 400 Bad Request\r\ncontent-length: 33\r\n\r\n"
                      b'{"fault_message": "unknown path"}',
        "resp-eof-body": b"HTTP/1.0 500 Internal\r\n\r\n{\"fault_message\": \"x\"}",
        "resp-short": b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort",
        "resp-extra": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}trailing",
    }
    # GET /events as the CLI decodes it (chunked); the first byte's high bits pick the
    # size of the pieces it is fed in.
    streams = {
        "chunks-events": b"3B\r\n{\"event\":\"state\",\"time\":1.5,\"state\":\"Running\"}\n\r\n"
                         b"1F;x=y\r\n{\"event\":\"paused\",\"time\":2.0}\n\r\n0\r\n\r\n",
        "chunks-trailer": b"2\nab\n0\r\nX-A: b\r\n\r\n",
        "chunks-huge-size": b"FFFFFFFFFFFFFFF\r\nabc",
        "chunks-after-end": b"0\r\n\r\n1\r\nx\r\n",
    }
    seeds = {name: b"\x00" + data for name, data in bodies.items()}
    seeds.update({name: b"\x01" + data for name, data in responses.items()})
    seeds.update({name: bytes([0x02 | (i << 2)]) + data
                  for i, (name, data) in enumerate(streams.items())})
    return seeds


def http_req(method, path, body=None, headers=(), version=b"HTTP/1.1"):
    """One HTTP request as a client writes it."""
    out = method + b" " + path + b" " + version + b"\r\nHost: localhost\r\n"
    for h in headers:
        out += h + b"\r\n"
    if body is not None:
        out += b"Content-Length: %d\r\n" % len(body)
    return out + b"\r\n" + (body or b"")


def api_http_seeds():
    """fuzz_api_http: flags byte, write size byte, then what a client writes."""
    P, R = http_req, b'{"state": "%s"}'
    act = b'{"action_type": "%s"}'
    reqs = {
        "get-root": P(b"GET", b"/"),
        "get-machine": P(b"GET", b"/machine-config"),
        "get-vm-query": P(b"GET", b"/vm?x=1#f"),
        "get-events": P(b"GET", b"/events"),
        "get-stats": P(b"GET", b"/stats"),
        "get-trace": P(b"GET", b"/trace"),
        "pause": P(b"PATCH", b"/vm", R % b"Paused"),
        "resume": P(b"PATCH", b"/vm", R % b"Resumed"),
        "bad-state": P(b"PATCH", b"/vm", R % b"Stopped"),
        "cad": P(b"PUT", b"/actions", act % b"SendCtrlAltDel"),
        "power": P(b"PUT", b"/actions", act % b"PowerButton"),
        "stop": P(b"PUT", b"/actions", act % b"Stop"),
        "put-trace": P(b"PUT", b"/trace", b'{"filter": "pio,mmio"}'),
        "put-trace-bad": P(b"PUT", b"/trace", b'{"filter": "xbad"}'),
        "patch-trace": P(b"PATCH", b"/trace", b'{"on": "virtio", "off": "pio"}'),
        "patch-trace-none": P(b"PATCH", b"/trace", b'{}'),
        "snapshot": P(b"PUT", b"/snapshot/create",
                      b'{"snapshot_path": "/tmp/s", "mem_file_path": "/tmp/m", '
                      b'"snapshot_type": "Full"}'),
        "snapshot-diff": P(b"PUT", b"/snapshot/create",
                           b'{"snapshot_path": "s", "mem_file_path": "m", '
                           b'"snapshot_type": "Diff"}'),
        "unknown-path": P(b"GET", b"/nope"),
        "long-path": P(b"GET", b"/" + b"a" * 300),
        "wrong-method": P(b"DELETE", b"/vm"),
        "head": P(b"HEAD", b"/"),
        "options": P(b"OPTIONS", b"/vm"),
        "get-with-body": P(b"GET", b"/vm", b"{}"),
        "no-body": P(b"PATCH", b"/vm"),
        "unknown-field": P(b"PATCH", b"/vm", b'{"state": "Paused", "x": "y"}'),
        "duplicate": P(b"PATCH", b"/vm", b'{"state": "Paused", "state": "Resumed"}'),
        "not-object": P(b"PATCH", b"/vm", b'["Paused"]'),
        "not-string": P(b"PUT", b"/actions", b'{"action_type": 1}'),
        "body-16k": P(b"PUT", b"/trace", b'{"filter": "' + b"a" * (16 * 1024 - 14) + b'"}'),
        "body-16k-plus": P(b"PUT", b"/trace", b'{"filter": "' + b"a" * (16 * 1024 - 13) + b'"}'),
        "body-over-1m": b"PUT /trace HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n{",
        "chunked": b"PATCH /vm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\n{\"sta\r\nE\r\nte\": \"Paused\"}\r\n0\r\n\r\n",
        "expect-continue": P(b"PATCH", b"/vm", R % b"Paused", [b"Expect: 100-continue"]),
        "expect-other": P(b"PATCH", b"/vm", R % b"Paused", [b"Expect: 42"]),
        "http10": P(b"GET", b"/vm", version=b"HTTP/1.0"),
        "close": P(b"GET", b"/", headers=[b"Connection: close"]),
        "bad-line": b"GARBAGE\r\n\r\n",
        "bad-header": b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "bad-length": b"PATCH /vm HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}",
        "two-lengths": b"PATCH /vm HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
                       b"\r\n{}x",
        "folded-header": b"GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n",
        "lf-only": b"GET /vm HTTP/1.1\nHost: x\n\n",
        "pipelined": P(b"GET", b"/") + P(b"PATCH", b"/vm", R % b"Paused") +
                     P(b"PATCH", b"/vm", R % b"Paused") + P(b"PUT", b"/snapshot/create",
                     b'{"snapshot_path": "s", "mem_file_path": "m"}') +
                     P(b"PATCH", b"/vm", R % b"Resumed") + P(b"GET", b"/vm"),
        "pipelined-stop": P(b"PATCH", b"/vm", R % b"Paused") + P(b"PUT", b"/actions",
                          act % b"Stop") + P(b"PATCH", b"/vm", R % b"Resumed") +
                          P(b"PUT", b"/actions", act % b"SendCtrlAltDel"),
        "pipelined-events": P(b"GET", b"/") + P(b"GET", b"/events") + P(b"GET", b"/"),
        "pipelined-errors": P(b"GET", b"/nope") + P(b"POST", b"/vm", b"{}") +
                            P(b"PATCH", b"/vm", b"{") + P(b"GET", b"/stats"),
        "many-pauses": b"".join(P(b"PATCH", b"/vm", R % (b"Paused" if i % 2 else b"Resumed"))
                                for i in range(70)),
    }
    seeds = {}
    for i, (name, data) in enumerate(reqs.items()):
        # Flags vary over the seeds (completion timing, keyboard, power button, ...).
        seeds[name] = bytes([(i * 37) & 0xFF, 0]) + data
        seeds[name + "-split"] = bytes([(i * 53 + 5) & 0xFF, 1 + i % 17]) + data
    for flags in (0x00, 0x01, 0x02, 0x03, 0x0C, 0x10, 0x20, 0x40, 0x80):
        seeds["all-%02x" % flags] = bytes([flags, 0]) + b"".join(reqs[k] for k in (
            "pause", "snapshot", "cad", "power", "resume", "power", "get-stats", "put-trace",
            "patch-trace", "get-events"))
    return seeds


# fuzz_rtc_cmos's op format.
SEC, SEC_ALARM, MIN, MIN_ALARM, HOUR, HOUR_ALARM, WDAY, MDAY, MONTH, YEAR = range(10)
REG_A, REG_B, REG_C, REG_D, CENTURY = 0x0A, 0x0B, 0x0C, 0x0D, 0x32
RTC_TIMER = bytes([0xA0])
RTC_RESET = bytes([0xE0])
RTC_READ_C = bytes([0xE4])


def rtc_index(v):
    return bytes([0x00, v])


def rtc_w(reg, val):
    return rtc_index(reg) + bytes([0x20, val])


def rtc_r(reg):
    return bytes([0x60 | reg]) if reg < 32 else rtc_index(reg) + bytes([0x40])


def rtc_adv(mult, shift):
    """The clocks move on by mult << shift ns (mult 1-32)."""
    return bytes([0x80 | (mult - 1), shift])


def rtc_seeds():
    ms, sec, hour = rtc_adv(1, 20), rtc_adv(1, 30), rtc_adv(27, 37)  # ~1 ms, ~1 s, ~1 h
    get_time = b""
    for _ in range(6):
        get_time += (rtc_r(REG_A) + rtc_r(SEC) + rtc_r(REG_A) + rtc_r(SEC) + rtc_r(MIN)
                     + rtc_r(HOUR) + rtc_r(MDAY) + rtc_r(MONTH) + rtc_r(YEAR)
                     + rtc_r(CENTURY) + rtc_r(REG_B) + rtc_r(REG_A) + rtc_r(SEC) + sec)
    probe = (rtc_r(REG_D) + rtc_w(REG_A, 0x26) + rtc_r(REG_B) + rtc_r(REG_C)
             + rtc_w(REG_B, 0x02) + rtc_r(REG_C) + rtc_r(REG_B) + rtc_r(REG_A) + rtc_r(SEC)
             + ms + rtc_r(REG_A) + rtc_r(SEC))
    set_time = (rtc_r(REG_B) + rtc_w(REG_B, 0x82) + rtc_r(REG_A) + rtc_w(REG_A, 0x76)
                + rtc_w(SEC, 0x56) + rtc_w(MIN, 0x34) + rtc_w(HOUR, 0x12) + rtc_w(MDAY, 0x15)
                + rtc_w(MONTH, 0x06) + rtc_w(YEAR, 0x30) + rtc_w(CENTURY, 0x20) + sec
                + rtc_r(SEC) + rtc_w(REG_B, 0x02) + rtc_w(REG_A, 0x26) + ms + rtc_r(SEC) + sec
                + rtc_r(SEC) + rtc_r(MIN))
    alarm = (rtc_w(SEC_ALARM, 0x30) + rtc_w(MIN_ALARM, 0xFF) + rtc_w(HOUR_ALARM, 0xC0)
             + rtc_r(REG_C) + rtc_w(REG_B, 0x22) + rtc_adv(32, 30) + rtc_r(REG_C) + rtc_r(REG_C)
             + rtc_w(REG_B, 0x02) + rtc_w(HOUR_ALARM, 0x00) + rtc_w(MIN_ALARM, 0x01)
             + rtc_w(SEC_ALARM, 0x00) + rtc_r(REG_C) + rtc_w(REG_B, 0x22) + hour + RTC_READ_C
             + rtc_adv(20, 42) + RTC_READ_C)
    uie = rtc_r(REG_C) + rtc_w(REG_B, 0x12)
    for _ in range(5):
        uie += sec + rtc_r(REG_C) + rtc_r(SEC)
    uie += rtc_w(REG_B, 0x92) + sec + RTC_READ_C + rtc_w(REG_B, 0x12) + sec + RTC_READ_C
    periodic = rtc_w(REG_A, 0x23) + rtc_r(REG_C) + rtc_w(REG_B, 0x42)
    for rate in (0x23, 0x26, 0x21, 0x2F, 0x20, 0x2A):
        periodic += rtc_w(REG_A, rate) + ms + RTC_TIMER + RTC_READ_C + rtc_adv(5, 24) + RTC_READ_C
    periodic += rtc_w(REG_B, 0x72) + sec + RTC_READ_C + RTC_RESET + RTC_READ_C
    modes = b""
    for b in (0x06, 0x04, 0x00, 0x02, 0x07):
        modes += (rtc_w(REG_B, b) + rtc_r(HOUR) + rtc_r(SEC) + rtc_r(WDAY) + hour
                  + rtc_r(HOUR) + rtc_adv(31, 40) + rtc_r(MDAY) + rtc_r(MONTH))
    nvram = b""
    for i in range(0x0E, 0x80, 7):
        nvram += rtc_index(0x80 | i) + bytes([0x20, i ^ 0x5A, 0x40])
    nvram += bytes([0xC1, 0x45, 0x99, 0xC0]) + rtc_r(0x45) + bytes([0xE3, 0x47]) + rtc_r(0x15)
    nvram += rtc_r(0x5B) + rtc_r(0x2E) + rtc_index(0xFF) + bytes([0x40])
    steps = (rtc_w(REG_A, 0x20) + rtc_w(REG_B, 0x12) + sec + RTC_READ_C + bytes([0xE1, 60])
             + RTC_TIMER + sec + RTC_READ_C + bytes([0xE2, 200]) + sec + RTC_READ_C)
    halt = (rtc_w(REG_A, 0x76) + hour + rtc_r(SEC) + rtc_r(REG_A) + rtc_w(REG_A, 0x26)
            + ms + rtc_r(SEC) + rtc_adv(16, 25) + rtc_r(SEC) + rtc_w(REG_A, 0x36) + sec
            + rtc_w(REG_A, 0x06) + sec + rtc_r(SEC))
    y9999 = (rtc_w(REG_B, 0x86) + rtc_w(CENTURY, 99) + rtc_w(YEAR, 99) + rtc_w(MONTH, 12)
             + rtc_w(MDAY, 31) + rtc_w(HOUR, 23) + rtc_w(MIN, 59) + rtc_w(SEC, 58)
             + rtc_w(REG_B, 0x06) + sec + sec + rtc_r(YEAR) + rtc_r(CENTURY) + bytes([0xE1, 255])
             + rtc_adv(32, 44) + rtc_r(CENTURY))
    garbage = (rtc_w(REG_B, 0x80) + rtc_w(YEAR, 0x9A) + rtc_w(MONTH, 0x13) + rtc_w(MDAY, 0x00)
               + rtc_w(HOUR, 0x25) + rtc_w(WDAY, 0x00) + rtc_r(YEAR) + rtc_w(REG_B, 0x00)
               + rtc_r(HOUR) + rtc_w(HOUR, 0xFF) + rtc_w(MIN, 0xFF) + rtc_w(REG_D, 0)
               + rtc_w(REG_C, 0xFF) + rtc_r(REG_C))
    return {
        "linux-get-time": bytes([0x00, 0xF0]) + get_time,
        "linux-probe": bytes([0x08, 0x00]) + probe,
        "linux-set-time": bytes([0x21, 0x4C]) + set_time,
        "alarm": bytes([0x10, 0x80]) + alarm,
        "update-ended": bytes([0x02, 0xC0]) + uie,
        "periodic": bytes([0x03, 0x10]) + periodic,
        "binary-12h": bytes([0x04, 0xFF]) + modes,
        "nvram": bytes([0xF8, 0x01]) + nvram,
        "host-steps": bytes([0x05, 0x00]) + steps,
        "divider-halt": bytes([0x06, 0x20]) + halt,
        "year-9999": bytes([0x07, 0xFE]) + y9999,
        "garbage-time": bytes([0x01, 0x7F]) + garbage,
    }


# fuzz_virtqueue's format: a header, a guest RAM image holding the rings, then ops.
VQ_DESC, VQ_AVAIL, VQ_USED, VQ_TABLE, VQ_DATA = 0x0000, 0x1000, 0x1400, 0x1800, 0x2000
VQ_F_INDIRECT, VQ_F_EVENT, VQ_F_LEGACY = 1, 2, 4
D_NEXT, D_WRITE, D_INDIRECT = 1, 2, 4
VQ_POP, VQ_PROCESS, VQ_POKE, VQ_ADD, VQ_PUSH_HELD, VQ_IRQ, VQ_RESET, VQ_EVENT = range(8)
VQ_HOLD = 8


class Ring:
    """A driver's view of guest RAM: descriptors, the available ring, indirect tables."""

    def __init__(self, size, start=0):
        self.size, self.idx = size, start
        self.ram = bytearray(VQ_DATA)
        struct.pack_into("<H", self.ram, VQ_AVAIL + 2, start)
        struct.pack_into("<H", self.ram, VQ_USED + 2, start)

    def desc(self, i, addr, length, flags=0, nxt=0, table=VQ_DESC):
        struct.pack_into("<QIHH", self.ram, table + 16 * i, addr, length, flags, nxt)

    def add(self, head):
        struct.pack_into("<H", self.ram, VQ_AVAIL + 4 + 2 * (self.idx % self.size), head)
        self.idx = (self.idx + 1) & 0xFFFF
        struct.pack_into("<H", self.ram, VQ_AVAIL + 2, self.idx)

    def set_avail_idx(self, idx):
        struct.pack_into("<H", self.ram, VQ_AVAIL + 2, idx & 0xFFFF)

    def used_event(self, v):
        struct.pack_into("<H", self.ram, VQ_AVAIL + 4 + 2 * self.size, v)


def vq_input(ring, feat=0, cap=0, ops=b"", size_byte=None,
             addrs=(VQ_DESC, VQ_AVAIL, VQ_USED)):
    size_byte = (ring.size.bit_length() - 1) if size_byte is None else size_byte
    hdr = bytes([size_byte, feat | (cap << 3)]) + struct.pack("<H", ring_start(ring))
    hdr += struct.pack("<III", *addrs) + struct.pack("<H", len(ring.ram))
    return hdr + bytes(ring.ram) + ops


def ring_start(ring):
    return struct.unpack_from("<H", ring.ram, VQ_USED + 2)[0]


def vq_seeds():
    seeds = {}

    r = Ring(8)
    r.desc(0, VQ_DATA, 64)
    r.add(0)
    seeds["single"] = vq_input(r, ops=bytes([VQ_PROCESS]))

    # A block-style request: header out, data in, status in; several of them.
    r = Ring(16)
    for k in range(4):
        b = 3 * k
        r.desc(b, VQ_DATA + 0x1000 * k, 16, D_NEXT, b + 1)
        r.desc(b + 1, VQ_DATA + 0x1000 * k + 0x100, 512, D_NEXT | D_WRITE, b + 2)
        r.desc(b + 2, VQ_DATA + 0x1000 * k + 0x800, 1, D_WRITE)
        r.add(b)
    seeds["blk-requests"] = vq_input(r, ops=bytes([VQ_POP, VQ_POP | VQ_HOLD, VQ_PROCESS,
                                                   VQ_PUSH_HELD, 1, VQ_IRQ]))

    # Indirect tables after a direct descriptor, with EVENT_IDX.
    r = Ring(4)
    r.desc(1, VQ_DATA, 16, D_NEXT, 2)
    r.desc(2, VQ_TABLE, 4 * 16, D_INDIRECT)
    r.desc(0, VQ_DATA + 0x100, 32, D_NEXT, 2, table=VQ_TABLE)
    r.desc(2, VQ_DATA + 0x200, 4096, D_NEXT | D_WRITE, 3, table=VQ_TABLE)
    r.desc(3, VQ_DATA + 0x2000, 1, D_WRITE, table=VQ_TABLE)
    r.add(1)
    r.used_event(0)
    seeds["indirect"] = vq_input(r, VQ_F_INDIRECT | VQ_F_EVENT,
                                 ops=bytes([VQ_PROCESS, VQ_ADD, 1, VQ_EVENT | VQ_HOLD, 1, 0,
                                            VQ_PROCESS, VQ_IRQ | 16, VQ_ADD, 1, VQ_IRQ | 16,
                                            VQ_POP]))

    # Indexes about to wrap, the driver adding while the device works.
    r = Ring(4, start=65530)
    for i in range(4):
        r.desc(i, VQ_DATA + 0x100 * i, 8, D_WRITE)
    ops = b""
    for i in range(12):
        ops += bytes([VQ_ADD, i % 4, VQ_ADD, (i + 1) % 4, VQ_POP | VQ_HOLD, VQ_POP,
                      VQ_PUSH_HELD, i, VQ_IRQ])
    seeds["wrap"] = vq_input(r, VQ_F_EVENT, ops=ops + bytes([VQ_PROCESS]))

    # A full ring of 256 one-descriptor chains.
    r = Ring(256)
    for i in range(256):
        r.desc(i, VQ_DATA + 16 * i, 16, D_WRITE if i % 2 else 0)
        r.add(255 - i)
    seeds["full-256"] = vq_input(r, VQ_F_INDIRECT, ops=bytes([VQ_PROCESS, VQ_IRQ]))

    # The device holds every buffer of a small ring; the driver adds one more.
    r = Ring(2)
    r.desc(0, VQ_DATA, 16)
    r.desc(1, VQ_DATA + 16, 16, D_WRITE)
    r.add(0)
    r.add(1)
    seeds["all-held"] = vq_input(r, ops=bytes([VQ_POP | VQ_HOLD, VQ_POP | VQ_HOLD, VQ_ADD, 0,
                                               VQ_POP, VQ_PUSH_HELD, 3, VQ_PROCESS]))

    # NO_INTERRUPT and notification suppression without EVENT_IDX.
    r = Ring(8)
    r.desc(5, VQ_DATA, 100)
    r.add(5)
    seeds["no-interrupt"] = vq_input(r, ops=bytes([VQ_EVENT | VQ_HOLD, 0, 0, VQ_IRQ | 8,
                                                   VQ_PROCESS, VQ_IRQ, VQ_IRQ | 16, VQ_ADD, 5,
                                                   VQ_IRQ | 16, VQ_POP]))

    # Hostile chains, each followed by a reset and a good chain.
    def hostile(name, build, feat=VQ_F_INDIRECT | VQ_F_EVENT, cap=0):
        r = Ring(8)
        r.desc(7, VQ_DATA, 16)
        build(r)
        # The driver starts over: reset, avail->idx back to 0, a good chain.
        restart = bytes([VQ_RESET, VQ_POKE, (VQ_AVAIL + 2) & 0xFF, (VQ_AVAIL + 2) >> 8, 0,
                         VQ_POKE, (VQ_AVAIL + 3) & 0xFF, (VQ_AVAIL + 3) >> 8, 0])
        seeds["hostile-" + name] = vq_input(r, feat, cap, bytes([VQ_PROCESS]) + restart
                                            + bytes([VQ_ADD, 7, VQ_PROCESS]))

    def loop(r):
        r.desc(0, VQ_DATA, 16, D_NEXT, 1)
        r.desc(1, VQ_DATA, 16, D_NEXT, 0)
        r.add(0)
    hostile("loop", loop)

    def next_beyond(r):
        r.desc(0, VQ_DATA, 16, D_NEXT, 8)
        r.add(0)
    hostile("next-beyond", next_beyond)

    def write_read(r):
        r.desc(0, VQ_DATA, 16, D_NEXT | D_WRITE, 1)
        r.desc(1, VQ_DATA, 16)
        r.add(0)
    hostile("write-then-read", write_read)

    def outside(r):
        r.desc(0, 0xFFF0, 0x20)
        r.add(0)
    hostile("outside-ram", outside)

    def wraps(r):
        r.desc(0, 0xFFFFFFFFFFFFFFF0, 0x20)
        r.add(0)
    hostile("address-wraps", wraps)

    def zero(r):
        r.desc(0, VQ_DATA, 0)
        r.add(0)
    hostile("zero-length", zero)

    def nested(r):
        r.desc(0, VQ_TABLE, 32, D_INDIRECT)
        r.desc(0, VQ_TABLE + 0x100, 16, D_INDIRECT, table=VQ_TABLE)
        r.desc(0, VQ_DATA, 16, table=VQ_TABLE + 0x100)
        r.add(0)
    hostile("nested-indirect", nested)

    def ind_next(r):
        r.desc(0, VQ_TABLE, 16, D_INDIRECT | D_NEXT, 7)
        r.desc(0, VQ_DATA, 16, table=VQ_TABLE)
        r.add(0)
    hostile("indirect-next", ind_next)

    def ind_len(r):
        r.desc(0, VQ_TABLE, 24, D_INDIRECT)
        r.desc(0, VQ_DATA, 16, table=VQ_TABLE)
        r.add(0)
    hostile("indirect-len", ind_len)

    def ind_loop(r):
        r.desc(0, VQ_TABLE, 48, D_INDIRECT)
        for i in range(3):
            r.desc(i, VQ_DATA, 16, D_NEXT, (i + 1) % 3, table=VQ_TABLE)
        r.add(0)
    hostile("indirect-loop", ind_loop)

    def head(r):
        r.add(8)
    hostile("head-beyond", head)

    def jump(r):
        r.set_avail_idx(9)
    hostile("avail-jump", jump)

    def many(r):
        for i in range(5):
            r.desc(i, VQ_DATA, 16, D_NEXT if i < 4 else 0, i + 1)
        r.add(0)
    hostile("over-cap", many, cap=4)

    hostile("indirect-unnegotiated", nested, feat=VQ_F_EVENT)

    def write_ring(r):
        r.desc(0, VQ_DATA, 16, D_NEXT, 1)
        r.desc(1, VQ_AVAIL + 2, 2, D_WRITE)
        r.add(0)
    hostile("write-over-avail", write_ring)

    # Rings that do not fit: misaligned, past RAM, a size that is not a power of 2.
    r = Ring(8)
    r.desc(0, VQ_DATA, 16)
    r.add(0)
    seeds["bad-rings"] = vq_input(r, addrs=(VQ_DESC + 8, VQ_AVAIL, VQ_USED),
                                  ops=bytes([VQ_POP, VQ_RESET]))
    seeds["rings-overlap"] = vq_input(r, addrs=(VQ_DESC, VQ_AVAIL, VQ_AVAIL + 4),
                                      ops=bytes([VQ_PROCESS]))
    seeds["bad-size"] = vq_input(r, size_byte=0x86, ops=bytes([VQ_PROCESS]))
    seeds["rings-at-end"] = vq_input(r, addrs=(0x10000 - 128, VQ_AVAIL, VQ_USED),
                                     ops=bytes([VQ_PROCESS]))
    return seeds


# fuzz_pci's op format (see fuzz_pci.c).
PCI_MSIX_CTL = 0x4A  # the fake's MSI-X capability sits at 0x48, after an 8-byte vendor one
PCI_LOG2 = {1: 0, 2: 1, 4: 2, 8: 3}


def pci_addr(slot, reg, fn=0, bus=0, enable=True, ext=False):
    s = slot | (0x20 if fn else 0) | (0x40 if bus else 0) | (0 if enable else 0x80)
    return bytes([0x01 if ext else 0x00, s, reg])


def pci_raw_addr(v):
    return bytes([0x02, 0, 0]) + struct.pack("<I", v)


def pci_wr(port, size, v):
    """CONFIG_DATA write at 0xcfc + port."""
    return bytes([0x20 | port << 2 | PCI_LOG2[size]]) + struct.pack("<I", v & 0xFFFFFFFF)


def pci_rd(port, size):
    return bytes([0x40 | port << 2 | PCI_LOG2[size]])


def pci_port(off, size, value=None):
    """Any access to 0xcf8 + off; a write when value is given."""
    a = (1 if value is not None else 0) | PCI_LOG2[size] << 1
    out = bytes([0x60 | off, a])
    return out + (struct.pack("<I", value) if value is not None else b"")


def pci_mmio(target, size, off, value=None):
    """target: 0 BAR 0, 1 BAR 2, 2 the MSI-X table, 3 the PBA."""
    op = 0x80 | (1 if value is not None else 0) | PCI_LOG2[size] << 1 | target << 3
    out = bytes([op]) + struct.pack("<H", off)
    return out + (struct.pack("<Q", value) if value is not None else b"")


def pci_fire(v):
    return bytes([0xA0, v])


def pci_move(bar, t, addr=0):
    out = bytes([0xC0 | (1 if bar == 2 else 0), t])
    return out + (struct.pack("<I", addr) if t % 4 == 3 else b"")


PCI_RESET = bytes([0xE1])


def pci_cmd(v):
    return bytes([0xE0]) + struct.pack("<H", v)


def pci_cfg_write(slot, reg, size, v):
    return pci_addr(slot, reg & 0xFC) + pci_wr(reg & 3, size, v)


def pci_cfg_read(slot, reg, size):
    return pci_addr(slot, reg & 0xFC) + pci_rd(reg & 3, size)


def pci_size_bar(slot, bar, is64):
    """Linux's __pci_read_base(): decoding off, save, all-ones, read, restore, decoding on."""
    reg = 0x10 + 4 * bar
    out = pci_cfg_read(slot, 0x04, 2) + pci_cfg_write(slot, 0x04, 2, 0x0000)
    regs = (reg, reg + 4) if is64 else (reg,)
    for r in regs:
        out += pci_cfg_read(slot, r, 4) + pci_cfg_write(slot, r, 4, 0xFFFFFFFF)
        out += pci_cfg_read(slot, r, 4)
    out += pci_cfg_write(slot, reg, 4, 0xC0010000 if bar == 0 else 0xC0000000)
    if is64:
        out += pci_cfg_write(slot, reg + 4, 4, 0)
    return out + pci_cfg_write(slot, 0x04, 2, 0x0002)


def pci_seeds():
    probe = (pci_port(3, 1, 0x01) + pci_port(0, 4) + pci_raw_addr(0x80000000) + pci_port(0, 4))
    for slot in range(32):
        probe += pci_addr(slot, 0x08) + pci_rd(2, 2)
        if slot < 3:
            probe += pci_addr(slot, 0x00) + pci_rd(0, 2)
    probe += pci_raw_addr(0)

    enum = b""
    for slot in range(4):
        enum += pci_cfg_read(slot, 0x00, 4) + pci_cfg_read(slot, 0x0E, 1)
        enum += pci_cfg_read(slot, 0x08, 4) + pci_cfg_read(slot, 0x06, 2)
    enum += pci_size_bar(1, 0, False) + pci_size_bar(1, 2, True)
    for bar in (1, 4, 5):
        enum += pci_cfg_write(1, 0x10 + 4 * bar, 4, 0xFFFFFFFF) + pci_cfg_read(1, 0x10 + 4 * bar, 4)
    enum += pci_cfg_read(1, 0x34, 1) + pci_cfg_read(1, 0x40, 2) + pci_cfg_read(1, 0x48, 2)
    enum += pci_cfg_read(1, 0x4C, 4) + pci_cfg_read(1, 0x50, 4)
    enum += pci_cfg_write(1, 0x0C, 1, 0x10) + pci_cfg_write(1, 0x3C, 1, 0x0B)
    enum += pci_cfg_write(1, 0x04, 2, 0x0006) + pci_mmio(0, 4, 0x10) + pci_mmio(1, 8, 0x20, 7)

    msix = pci_cfg_write(1, 0x04, 2, 0x0006)
    msix += pci_cfg_write(1, PCI_MSIX_CTL, 2, 0xC000)  # enable + function mask
    for v in (0, 1, 2, 65, 71):
        msix += pci_mmio(2, 4, 16 * v, 0xFEE00000 | v << 12)
        msix += pci_mmio(2, 4, 16 * v + 4, 0) + pci_mmio(2, 4, 16 * v + 8, 0x4000 | v)
    msix += pci_cfg_write(1, PCI_MSIX_CTL, 2, 0x8000)
    msix += pci_fire(0) + pci_fire(65) + pci_mmio(3, 8, 0) + pci_mmio(3, 8, 8)
    for v in (0, 1, 65):
        msix += pci_mmio(2, 4, 16 * v + 12, 0)
    msix += pci_fire(0) + pci_fire(1) + pci_fire(65)
    msix += pci_mmio(2, 4, 16 * 1 + 12, 1) + pci_fire(1) + pci_mmio(2, 8, 16 * 1, 0xFEE03000)
    msix += pci_mmio(2, 4, 16 * 1 + 12, 0) + pci_cfg_write(1, PCI_MSIX_CTL, 2, 0xC000)
    msix += pci_fire(0) + pci_fire(73) + pci_cfg_write(1, PCI_MSIX_CTL, 2, 0x8000)
    msix += pci_cfg_write(1, PCI_MSIX_CTL, 2, 0) + pci_fire(2) + pci_mmio(2, 8, 16 * 71 + 8, 0xFFFFFFFFFFFFFFFF)

    conflicts = (pci_move(0, 0) + pci_move(2, 1) + pci_mmio(0, 4, 0) + pci_move(0, 2)
                 + pci_move(2, 2) + pci_move(0, 1) + pci_cmd(0) + pci_move(0, 2) + pci_cmd(2)
                 + pci_move(2, 3, 0xE0000000) + pci_move(0, 3, 0xE0004000) + pci_cmd(6)
                 + pci_mmio(1, 4, 0x100, 5) + pci_move(2, 0) + PCI_RESET + pci_mmio(0, 4, 0))

    odd = (pci_addr(1, 0x00) + pci_port(1, 1, 0x06) + pci_port(2, 2, 0x1234) + pci_port(0, 2)
           + pci_port(3, 1) + pci_port(0, 4) + pci_rd(1, 4) + pci_rd(3, 2) + pci_rd(3, 4)
           + pci_port(5, 4, 0xFFFFFFFF) + pci_addr(1, 0x00, fn=1) + pci_rd(0, 4)
           + pci_addr(1, 0x00, bus=1) + pci_wr(0, 4, 0) + pci_addr(1, 0x04, enable=False)
           + pci_wr(0, 2, 0) + pci_addr(0, 0x00, ext=True) + pci_rd(0, 4)
           + pci_addr(1, 0x10) + pci_wr(1, 1, 0xFF) + pci_wr(2, 2, 0xFFFF) + pci_rd(0, 4)
           + pci_addr(1, 0x14) + pci_wr(0, 4, 0xFFFFFFFF) + PCI_RESET + pci_rd(0, 4)
           + pci_raw_addr(0x80000FFF) + pci_rd(0, 4) + pci_wr(0, 4, 0xFFFFFFFF))

    high = (pci_cfg_write(1, 0x18, 4, 0x00000000) + pci_cfg_write(1, 0x1C, 4, 0x00000001)
            + pci_mmio(1, 4, 0x200, 1) + pci_mmio(2, 8, 0) + pci_cfg_write(1, 0x1C, 4, 0xFFFFFFFF)
            + pci_cfg_write(1, 0x18, 4, 0xFFFF0000) + pci_mmio(1, 2, 0xFFFE)
            + pci_cfg_write(1, 0x1C, 4, 0) + pci_move(2, 2))

    return {
        "linux-probe": probe,
        "linux-enumerate": enum,
        "msix": msix,
        "bar-conflicts": conflicts,
        "odd-accesses": odd,
        "bar-high": high,
    }


# ---- virtio_pci: the transport's registers and virtio-rng (fuzz_virtio_pci.c) ----

def vp_op(kind, size=1):
    """The smallest op byte with op % 6 == kind and 1 << (op >> 3 & 3) == size."""
    for op in range(256):
        if op % 6 == kind and 1 << (op >> 3 & 3) == size:
            return bytes([op])
    raise ValueError((kind, size))


def vp_bar_w(off, val, size):
    return vp_op(0, size) + struct.pack("<HQ", off, val)


def vp_bar_r(off, size):
    return vp_op(1, size) + struct.pack("<H", off)


def vp_cfg_w(reg, val, size):
    return vp_op(2, size) + bytes([reg]) + struct.pack("<I", val)


def vp_mem(addr, data):
    out = b""
    for i in range(0, len(data), 255):
        chunk = data[i:i + 255]
        out += vp_op(4) + struct.pack("<HB", addr + i, len(chunk)) + chunk
    return out


VP_LOOP = vp_op(5)


def virtio_pci_seeds():
    # Common configuration offsets (virtio 1.2, 4.1.4.3) and the notify area.
    DFSEL, GFSEL, GF, STATUS = 0x00, 0x08, 0x0C, 0x14
    QSEL, QSIZE, QMSIX, QEN, QDESC, QAVAIL, QUSED = 0x16, 0x18, 0x1A, 0x1C, 0x20, 0x28, 0x30
    NOTIFY, ISR, TABLE = 0x3000, 0x1000, 0x4000
    desc, avail, used, buf = 0x1000, 0x2000, 0x3000, 0x8000

    def init(features_hi=1, size=16, vector=0):
        seq = vp_bar_w(STATUS, 1, 1) + vp_bar_w(STATUS, 3, 1)
        seq += vp_bar_w(DFSEL, 1, 4) + vp_bar_r(0x04, 4)
        seq += vp_bar_w(GFSEL, 1, 4) + vp_bar_w(GF, features_hi, 4)
        seq += vp_bar_w(STATUS, 0xB, 1) + vp_bar_r(STATUS, 1)
        seq += vp_bar_w(QSEL, 0, 2) + vp_bar_w(QSIZE, size, 2) + vp_bar_w(QMSIX, vector, 2)
        seq += vp_bar_w(QDESC, desc, 8) + vp_bar_w(QAVAIL, avail, 8) + vp_bar_w(QUSED, used, 8)
        seq += vp_bar_w(QEN, 1, 2) + vp_bar_w(STATUS, 0xF, 1)
        return seq

    def chain(n, length=64, flags=2, extra=0):
        # n one-descriptor writable chains, published in the avail ring, then a kick.
        d = b"".join(struct.pack("<QIHH", buf + 0x100 * i, length, flags | extra, 0)
                     for i in range(n))
        a = struct.pack("<HH", 0, n) + b"".join(struct.pack("<H", i) for i in range(n))
        return vp_mem(desc, d) + vp_mem(avail, a) + vp_bar_w(NOTIFY, 0, 2) + VP_LOOP

    msix_on = vp_cfg_w(0x42, 0x8000, 2)  # message control: enable (the capability at 0x40)
    entry0 = (vp_bar_w(TABLE, 0xFEE00000, 4) + vp_bar_w(TABLE + 8, 0x4041, 4)
              + vp_bar_w(TABLE + 12, 0, 4))
    return {
        "probe": vp_bar_r(0, 4) + vp_bar_r(ISR, 1) + vp_bar_r(STATUS, 1),
        "init-and-one-buffer": init() + chain(1) + vp_bar_r(ISR, 1),
        "msix-and-buffers": msix_on + entry0 + init() + chain(4) + vp_bar_r(used, 4),
        "no-version-1": init(features_hi=0) + chain(1),
        "bad-size": init(size=3) + chain(1),
        "readable-buffer": init() + chain(1, flags=0),
        "loop-descriptor": init() + chain(1, extra=1),
        "huge-length": init() + chain(1, length=0xFFFFFFFF),
        "reset-midway": init() + chain(2) + vp_bar_w(STATUS, 0, 1) + init() + chain(2),
    }


# ---- virtio_blk: virtio-blk requests on the transport (fuzz_virtio_blk.c, same op format) ----

def virtio_blk_seeds():
    DFSEL, GFSEL, GF, STATUS = 0x00, 0x08, 0x0C, 0x14
    QSEL, QSIZE, QMSIX, QEN, QDESC, QAVAIL, QUSED = 0x16, 0x18, 0x1A, 0x1C, 0x20, 0x28, 0x30
    NOTIFY, CFG = 0x3000, 0x2000
    desc, avail, used, hdr, ind, status, data = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x8000
    IN, OUT, FLUSH, GET_ID, DISCARD, WZ = 0, 1, 4, 8, 11, 13
    # SEG_MAX, BLK_SIZE, FLUSH, DISCARD, WRITE_ZEROES, INDIRECT_DESC, EVENT_IDX; VERSION_1.
    features_lo = (1 << 2) | (1 << 6) | (1 << 9) | (1 << 13) | (1 << 14) | (1 << 28) | (1 << 29)

    def init(size=32, lo=features_lo):
        seq = vp_bar_w(STATUS, 1, 1) + vp_bar_w(STATUS, 3, 1)
        seq += vp_bar_w(DFSEL, 0, 4) + vp_bar_r(0x04, 4) + vp_bar_r(CFG, 8)
        seq += vp_bar_w(GFSEL, 0, 4) + vp_bar_w(GF, lo, 4)
        seq += vp_bar_w(GFSEL, 1, 4) + vp_bar_w(GF, 1, 4)
        seq += vp_bar_w(STATUS, 0xB, 1) + vp_bar_r(STATUS, 1)
        seq += vp_bar_w(QSEL, 0, 2) + vp_bar_w(QSIZE, size, 2) + vp_bar_w(QMSIX, 0, 2)
        seq += vp_bar_w(QDESC, desc, 8) + vp_bar_w(QAVAIL, avail, 8) + vp_bar_w(QUSED, used, 8)
        seq += vp_bar_w(QEN, 1, 2) + vp_bar_w(STATUS, 0xF, 1)
        return seq

    def request(i, typ, sector, segs):
        """Request i: its header, then segs [(gpa, len, writable)], as descriptors 4i.."""
        d = b""
        for k, (gpa, ln, w) in enumerate(segs):
            last = k == len(segs) - 1
            nxt = 4 * i + k + 1
            d += struct.pack("<QIHH", gpa, ln, (2 if w else 0) | (0 if last else 1), 0 if last else nxt)
        return vp_mem(hdr + 16 * i, struct.pack("<IIQ", typ, 0, sector)) + vp_mem(desc + 64 * i, d)

    def rw(i, typ, sector, n, writable):
        return request(i, typ, sector, [(hdr + 16 * i, 16, False), (data + 512 * i, n, writable),
                                        (status + i, 1, True)])

    def bare(i, typ, sector=0):
        return request(i, typ, sector, [(hdr + 16 * i, 16, False), (status + i, 1, True)])

    def publish(n, first=0):
        a = struct.pack("<HH", 0, first + n) + b"".join(struct.pack("<H", 4 * i)
                                                        for i in range(first + n))
        return vp_mem(avail, a) + vp_bar_w(NOTIFY, 0, 2) + VP_LOOP

    def ranges(i, typ, rs):
        body = b"".join(struct.pack("<QII", *r) for r in rs)
        return (vp_mem(data + 512 * i, body)
                + request(i, typ, 0, [(hdr + 16 * i, 16, False), (data + 512 * i, len(body), False),
                                      (status + i, 1, True)]))

    def indirect(i, typ, sector, n):
        table = (struct.pack("<QIHH", hdr + 16 * i, 16, 1, 1)
                 + struct.pack("<QIHH", data + 512 * i, n, 2 | 1, 2)
                 + struct.pack("<QIHH", status + i, 1, 2, 0))
        return (vp_mem(hdr + 16 * i, struct.pack("<IIQ", typ, 0, sector)) + vp_mem(ind, table)
                + vp_mem(desc + 64 * i, struct.pack("<QIHH", ind, len(table), 4, 0)))

    return {
        "probe": vp_bar_r(CFG, 8) + vp_bar_r(CFG + 12, 4) + vp_bar_r(STATUS, 1),
        "write-read": init() + rw(0, OUT, 3, 1024, False) + rw(1, IN, 3, 1024, True) + publish(2),
        "flush-get-id": init() + bare(0, FLUSH) + rw(1, GET_ID, 0, 20, True) + publish(2),
        "discard-zeroes": init() + ranges(0, DISCARD, [(0, 8, 0), (16, 8, 0)])
            + ranges(1, WZ, [(4, 4, 1), (100, 28, 0)]) + publish(2),
        "indirect": init() + indirect(0, IN, 1, 512) + publish(1),
        "batch": init() + b"".join(rw(i, IN if i % 2 else OUT, i, 512, i % 2 == 1)
                                   for i in range(4)) + publish(4),
        "bad-requests": init() + rw(0, OUT, 127, 1024, False) + rw(1, IN, 0, 100, True)
            + rw(2, IN, 0, 512, False) + bare(3, 99) + rw(4, OUT, 2 ** 63, 512, False) + publish(5),
        "no-status": init() + request(0, FLUSH, 0, [(hdr, 16, False), (status, 1, False)]) + publish(1),
        # The first byte's top bit makes the drive read-only; 0x83 is also "run the loop".
        "read-only": b"\x83" + init(lo=features_lo & ~(3 << 13) | 1 << 5) + rw(0, OUT, 0, 512, False) + ranges(1, DISCARD, [(0, 1, 0)])
            + publish(2),
        "reset-midway": init() + rw(0, OUT, 0, 512, False) + publish(1) + vp_bar_w(STATUS, 0, 1)
            + init() + rw(0, IN, 0, 512, True) + publish(1),
    }


# ---- virtio_console: virtio-console's two queues (fuzz_virtio_console.c, same op format) ----

def virtio_console_seeds():
    DFSEL, GFSEL, GF, STATUS = 0x00, 0x08, 0x0C, 0x14
    QSEL, QSIZE, QMSIX, QEN, QDESC, QAVAIL, QUSED = 0x16, 0x18, 0x1A, 0x1C, 0x20, 0x28, 0x30
    NOTIFY, CFG, RX, TX = 0x3000, 0x2000, 0, 1
    rings = {RX: (0x1000, 0x2000, 0x3000), TX: (0x4000, 0x5000, 0x6000)}
    rxbuf, txbuf = 0x8000, 0xA000

    def first(op, feed, drain):
        """op with the host's mode in its top bits (the first byte is an op too)."""
        mode = (0x80 if feed else 0) | (0x40 if drain else 0)
        for b in range(256):
            if b % 6 == op[0] % 6 and (b >> 3 & 3) == (op[0] >> 3 & 3) and b & 0xC0 == mode:
                return bytes([b])
        raise ValueError(mode)

    def init(feed=True, drain=True, size=16, hi=1, lo=0):
        seq = vp_bar_w(STATUS, 1, 1)
        seq = first(seq, feed, drain) + seq[1:] + vp_bar_w(STATUS, 3, 1)
        seq += vp_bar_w(DFSEL, 0, 4) + vp_bar_r(0x04, 4) + vp_bar_r(CFG, 4) + vp_bar_r(CFG + 4, 4)
        seq += vp_bar_w(GFSEL, 0, 4) + vp_bar_w(GF, lo, 4)
        seq += vp_bar_w(GFSEL, 1, 4) + vp_bar_w(GF, hi, 4)
        seq += vp_bar_w(STATUS, 0xB, 1)
        for q in (RX, TX):
            d, a, u = rings[q]
            seq += vp_bar_w(QSEL, q, 2) + vp_bar_w(QSIZE, size, 2) + vp_bar_w(QMSIX, q + 1, 2)
            seq += vp_bar_w(QDESC, d, 8) + vp_bar_w(QAVAIL, a, 8) + vp_bar_w(QUSED, u, 8)
            seq += vp_bar_w(QEN, 1, 2)
        return seq + vp_bar_w(STATUS, 0xF, 1)

    def post(q, bufs, idx_from=0):
        """Chains [(gpa, len, flags)...] as descriptors 0.., one chain each, published."""
        d, a, _ = rings[q]
        descs = b"".join(struct.pack("<QIHH", g, ln, fl, nx) for g, ln, fl, nx in bufs)
        heads = [i for i, b in enumerate(bufs) if i == 0 or not bufs[i - 1][2] & 1]
        ring = struct.pack("<HH", 0, idx_from + len(heads)) + b"".join(
            struct.pack("<H", h) for h in heads)
        return vp_mem(d, descs) + vp_mem(a, ring) + vp_bar_w(NOTIFY + 4 * q, q, 2) + VP_LOOP

    def text(gpa, data):
        return vp_mem(gpa, data)

    rx4 = post(RX, [(rxbuf + 0x40 * i, 16, 2, 0) for i in range(4)])
    tx2 = text(txbuf, b"hello, console\r\n" * 4) + post(TX, [(txbuf, 64, 0, 0), (txbuf + 16, 30, 0, 0)])
    return {
        "probe": vp_bar_r(CFG, 4) + vp_bar_r(CFG + 4, 4) + vp_bar_r(CFG + 8, 4) + vp_bar_r(STATUS, 1),
        "echo": init() + rx4 + tx2 + VP_LOOP + vp_bar_r(rings[RX][2], 4),
        "no-reader": init(drain=False) + tx2 + text(txbuf, b"x" * 200)
            + post(TX, [(txbuf, 200, 0, 0), (txbuf, 200, 0, 0), (txbuf, 100, 0, 0)]) + VP_LOOP,
        "input-before-buffers": init() + VP_LOOP + VP_LOOP + rx4,
        "input-before-driver-ok": first(vp_bar_r(STATUS, 1), True, True) + vp_bar_r(STATUS, 1)[1:]
            + VP_LOOP + init() + rx4,
        "chained-tx": init() + text(txbuf, b"abcdefgh" * 8)
            + post(TX, [(txbuf, 8, 1, 1), (txbuf + 8, 8, 1, 2), (txbuf + 16, 40, 0, 0)]),
        "event-idx": init(lo=1 << 29) + rx4 + tx2 + rx4,
        "writable-on-tx": init() + post(TX, [(txbuf, 8, 1, 1), (txbuf + 8, 8, 2, 0)]),
        "readable-on-rx": init() + post(RX, [(rxbuf, 8, 0, 0)]),
        "reset-while-held": init(drain=False) + text(txbuf, b"y" * 255) + post(TX, [(txbuf, 255, 0, 0)] * 3)
            + vp_bar_w(STATUS, 0, 1) + init(drain=False) + rx4 + tx2,
    }


TD_SRC, TD_DST, TD_LEN, TD_STATUS, TD_DOORBELL = 0x10, 0x18, 0x20, 0x0C, 0x100
TD_TABLE, TD_PBA, TD_MSIX_CAP = 0x800, 0xC00, 0x40
TD_LOOP, TD_RESET, TD_PAUSE, TD_RESUME, TD_KVM_RING = b"\x40", b"\xc0", b"\xa1", b"\xa0", b"\xe0"


def td_w(off, val, size=4):
    return bytes([PCI_LOG2[size]]) + struct.pack("<HQ", off, val & (2 ** 64 - 1))


def td_r(off, size=4):
    return bytes([0x20 | PCI_LOG2[size]]) + struct.pack("<H", off)


def td_place(reg, t, plus=0):
    """reg: 0 SRC, 1 DST, 2 LEN, 3 SCRATCH; t indexes fuzz_testdev.c's places (| 0x80: the BAR)."""
    return bytes([0x60 | reg, t, plus])


def td_cfg(reg, val, size):
    return bytes([0x80 | (1 if size == 4 else 0), reg]) + struct.pack("<I", val)


def td_copy(src, dst, length):
    return (td_w(TD_SRC, src, 8) + td_w(TD_DST, dst, 8) + td_w(TD_LEN, length)
            + td_w(TD_STATUS, 3) + td_w(TD_DOORBELL, 1) + TD_LOOP + td_r(TD_STATUS) + td_r(0x24))


def td_msix_on():
    return (td_cfg(TD_MSIX_CAP + 2, 0x8000, 2) + td_w(TD_TABLE, 0xFEE00000) + td_w(TD_TABLE + 8, 0x51)
            + td_w(TD_TABLE + 12, 0))


def testdev_seeds():
    regs = b"".join(td_r(off, 4) for off in range(0, 0x30, 4)) + td_r(0, 8) + td_r(1, 2)
    return {
        "registers": regs + td_w(8, 0x12345678) + td_r(8) + td_w(0x10, 0x1234, 8) + td_r(0x14),
        "copy": td_msix_on() + td_copy(0x100, 0x8000, 0x1000),
        "overlap": td_copy(0x100, 0x110, 0x200) + td_copy(0x110, 0x100, 0x200),
        "hostile": td_msix_on() + td_copy(0x100, 0x10000, 16) + td_copy(0xFFF8, 0, 16)
            + td_copy(0, 0xFEE00000, 4) + td_copy(0xFFFFFFFFFFFFFFF0, 0, 0x20)
            + td_copy(0, 0, 0) + td_copy(0, 0, 0xFFFFFFFF) + td_copy(0, 0, 0x100001),
        "places": td_place(0, 1) + td_place(1, 0x80) + td_place(2, 11) + TD_KVM_RING + TD_LOOP
            + td_place(0, 3) + td_place(1, 14) + td_place(2, 0, 8) + TD_KVM_RING + TD_LOOP,
        "masked": td_cfg(TD_MSIX_CAP + 2, 0x8000, 2) + td_copy(0, 0x100, 8) + td_r(TD_PBA, 8)
            + td_w(TD_TABLE + 12, 0) + td_cfg(TD_MSIX_CAP + 2, 0xC000, 2) + td_copy(0, 0x100, 8)
            + td_cfg(TD_MSIX_CAP + 2, 0x8000, 2),
        "move-bar": td_cfg(0x10, 0xC0100000, 4) + td_copy(0, 0x100, 8) + td_cfg(0x04, 0, 2)
            + TD_KVM_RING + TD_LOOP + td_cfg(0x04, 2, 2) + td_copy(0, 0x200, 8),
        "pause": td_w(TD_SRC, 0, 8) + td_w(TD_DST, 0x100, 8) + td_w(TD_LEN, 8) + td_w(TD_DOORBELL, 1)
            + TD_PAUSE + TD_LOOP + TD_KVM_RING + TD_LOOP + TD_RESUME + TD_LOOP,
        "reset": td_msix_on() + td_w(TD_DOORBELL, 1) + TD_RESET + TD_LOOP + td_copy(0, 0x100, 8),
    }


def escape_seeds():
    """Typed streams: byte 0 seeds the read splits."""
    return {
        "plain": b"\x00echo hello\r",
        "quit": b"\x05ls\r\x01x",
        "help-pause-detach": b"\x11\x01h\x01p\x01P\x01d\x01?",
        "ctrl-a-twice": b"\x03a\x01\x01b\x01\x01\x01x",
        "unknown-key": b"\x07\x01z\x01\x02c",
        "split-escape": b"\xff" + b"x" * 15 + b"\x01" + b"X",
    }


def kbc_w(port, v):
    return bytes([(0 if port == 0x60 else 1) << 5, v])


def i8042_seeds():
    """Linux's i8042/atkbd/psmouse probe, loopback, reset, keys, save/restore."""
    rd = bytes([2 << 5])
    st = bytes([3 << 5])
    probe = (kbc_w(0x64, 0x20) + rd + kbc_w(0x64, 0xaa) + rd + kbc_w(0x64, 0x60)
             + kbc_w(0x60, 0x47) + kbc_w(0x64, 0xab) + rd + kbc_w(0x64, 0xa8)
             + kbc_w(0x64, 0xa9) + rd)
    kbd = kbc_w(0x60, 0xff) + rd + rd + kbc_w(0x60, 0xf2) + rd + rd + rd + kbc_w(0x60, 0xed) \
        + kbc_w(0x60, 0x07) + rd
    aux = kbc_w(0x64, 0xd4) + kbc_w(0x60, 0xff) + rd + rd + rd + kbc_w(0x64, 0xd4) \
        + kbc_w(0x60, 0xf3) + kbc_w(0x64, 0xd4) + kbc_w(0x60, 0x64) + st + rd
    loop = kbc_w(0x64, 0xd2) + kbc_w(0x60, 0x5a) + st + rd + kbc_w(0x64, 0xd3) \
        + kbc_w(0x60, 0xa5) + st + rd
    return {
        "probe": probe,
        "keyboard": probe + kbd,
        "mouse": probe + aux,
        "loopback": loop,
        "keys-save-restore": probe + bytes([4 << 5 | 4]) + b"\x1d\x38\x53\x9d" + bytes([7 << 5])
            + rd + st + bytes([7 << 5]) + rd,
        "full-queue": bytes([4 << 5 | 31]) + bytes(range(1, 32)) + bytes([4 << 5 | 8])
            + bytes(8) + bytes([7 << 5]),
        "pending-then-save": kbc_w(0x64, 0x60) + bytes([7 << 5]) + kbc_w(0x60, 0x03)
            + kbc_w(0x60, 0xed) + bytes([7 << 5]) + kbc_w(0x60, 0x02) + bytes([6 << 5]),
        "reset-line": kbc_w(0x64, 0xd1) + kbc_w(0x60, 0x00) + kbc_w(0x64, 0xfe),
        "other-ports": bytes([5 << 5, 0x12, 5 << 5 | 1, 0x34]),
    }


def gdb_pkt(payload):
    """A gdb client packet, framed with its checksum."""
    return b"$" + payload + b"#%02x" % (sum(payload) & 0xff)


GDB_STOP = 0xfe  # fuzz_gdb: the next byte is a target event


def gdb_seeds():
    """gdb sessions as gdb starts them, then breakpoints, memory and stops (fuzz_gdb.c)."""
    hello = (gdb_pkt(b"qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+") + b"+"
             + gdb_pkt(b"vMustReplyEmpty") + b"+" + gdb_pkt(b"qXfer:features:read:target.xml:0,ffb")
             + gdb_pkt(b"?") + gdb_pkt(b"qfThreadInfo") + gdb_pkt(b"qsThreadInfo")
             + gdb_pkt(b"Hg1") + gdb_pkt(b"g") + gdb_pkt(b"qAttached"))
    bps = (gdb_pkt(b"Z0,1010,1") + gdb_pkt(b"m1000,40") + gdb_pkt(b"M100f,4:01020304")
           + gdb_pkt(b"Z1,1020,1") + gdb_pkt(b"Z2,1028,8") + gdb_pkt(b"Z4,1030,4")
           + gdb_pkt(b"Z3,1040,2") + gdb_pkt(b"Z1,1050,1") + gdb_pkt(b"z2,1028,8"))
    run = (gdb_pkt(b"c") + b"\x03" + bytes([GDB_STOP, 0x00]) + gdb_pkt(b"Hc2") + gdb_pkt(b"s")
           + bytes([GDB_STOP, 0x45]) + gdb_pkt(b"c1234") + bytes([GDB_STOP, 0x06])
           + gdb_pkt(b"s") + bytes([GDB_STOP, 0xff]))
    regs = (gdb_pkt(b"p10") + gdb_pkt(b"P10=0010000000000000") + gdb_pkt(b"p3d")
            + gdb_pkt(b"G" + b"00" * 600) + gdb_pkt(b"Hg2") + gdb_pkt(b"P7=1"))
    noise = (b"$g#00-+--$qC#b4\x03$" + b"a" * 300 + b"#00" + gdb_pkt(b"qRcmd,70687973")
             + gdb_pkt(b"m0,ffff") + gdb_pkt(b"qRcmd,76697274") + gdb_pkt(b"D") + gdb_pkt(b"k"))
    return {"hello": b"\x02" + hello, "breakpoints": b"\x02" + hello + bps,
            "run": b"\x03" + bps + run, "registers": b"\x01" + regs,
            "refused": b"\x82" + bps + run, "noise": b"\x04" + noise}


# ---- virtio_net: virtio-net's two queues (fuzz_virtio_net.c, same op format) ----

def virtio_net_seeds():
    DFSEL, GFSEL, GF, STATUS = 0x00, 0x08, 0x0C, 0x14
    QSEL, QSIZE, QMSIX, QEN, QDESC, QAVAIL, QUSED = 0x16, 0x18, 0x1A, 0x1C, 0x20, 0x28, 0x30
    NOTIFY, CFG, RX, TX = 0x3000, 0x2000, 0, 1
    MRG = 1 << 15
    rings = {RX: (0x1000, 0x2000, 0x3000), TX: (0x4000, 0x5000, 0x6000)}
    rxbuf, txbuf = 0x8000, 0xA000

    def first(op, feed, choke, vnet=False):
        """op with the host's mode in its top bits (the first byte is an op too)."""
        mode = (0x80 if feed else 0) | (0x40 if choke else 0) | (0x20 if vnet else 0)
        for b in range(256):
            if b % 6 == op[0] % 6 and (b >> 3 & 3) == (op[0] >> 3 & 3) and b & 0xE0 == mode:
                return bytes([b])
        raise ValueError(mode)

    def init(feed=True, choke=False, size=16, hi=1, lo=0, vnet=False):
        seq = vp_bar_w(STATUS, 1, 1)
        seq = first(seq, feed, choke, vnet) + seq[1:] + vp_bar_w(STATUS, 3, 1)
        seq += vp_bar_w(DFSEL, 0, 4) + vp_bar_r(0x04, 4) + vp_bar_r(CFG, 4) + vp_bar_r(CFG + 4, 4)
        seq += vp_bar_w(GFSEL, 0, 4) + vp_bar_w(GF, lo, 4)
        seq += vp_bar_w(GFSEL, 1, 4) + vp_bar_w(GF, hi, 4)
        seq += vp_bar_w(STATUS, 0xB, 1)
        for q in (RX, TX):
            d, a, u = rings[q]
            seq += vp_bar_w(QSEL, q, 2) + vp_bar_w(QSIZE, size, 2) + vp_bar_w(QMSIX, q + 1, 2)
            seq += vp_bar_w(QDESC, d, 8) + vp_bar_w(QAVAIL, a, 8) + vp_bar_w(QUSED, u, 8)
            seq += vp_bar_w(QEN, 1, 2)
        return seq + vp_bar_w(STATUS, 0xF, 1)

    def post(q, bufs, idx_from=0):
        """Chains [(gpa, len, flags, next)...] as descriptors 0.., published and kicked."""
        d, a, _ = rings[q]
        descs = b"".join(struct.pack("<QIHH", g, ln, fl, nx) for g, ln, fl, nx in bufs)
        heads = [i for i, b in enumerate(bufs) if i == 0 or not bufs[i - 1][2] & 1]
        ring = struct.pack("<HH", 0, idx_from + len(heads)) + b"".join(
            struct.pack("<H", h) for h in heads)
        return vp_mem(d, descs) + vp_mem(a, ring) + vp_bar_w(NOTIFY + 4 * q, q, 2) + VP_LOOP

    arp = bytes(12) + b"\xff" * 6 + bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56]) + b"\x08\x06" + bytes(46)
    rx4 = post(RX, [(rxbuf + 0x600 * i, 0x600, 2, 0) for i in range(4)])
    rx_small = post(RX, [(rxbuf + 0x100 * i, 0x100, 2, 0) for i in range(8)])
    tx2 = vp_mem(txbuf, arp) + post(TX, [(txbuf, len(arp), 0, 0), (txbuf, len(arp), 0, 0)])
    return {
        "probe": vp_bar_r(CFG, 4) + vp_bar_r(CFG + 4, 4) + vp_bar_r(CFG + 8, 2) + vp_bar_r(STATUS, 1),
        "both-ways": init() + rx4 + tx2 + VP_LOOP + vp_bar_r(rings[RX][2], 4),
        "mergeable": init(lo=MRG) + rx_small + VP_LOOP + VP_LOOP + rx_small,
        "back-pressure": init(choke=True) + tx2 + VP_LOOP + tx2 + VP_LOOP,
        "split-header": init() + vp_mem(txbuf, arp)
            + post(TX, [(txbuf, 5, 1, 1), (txbuf + 5, 7, 1, 2), (txbuf + 12, len(arp) - 12, 0, 0)]),
        "event-idx": init(lo=1 << 29 | MRG) + rx4 + tx2 + rx4,
        "writable-on-tx": init() + post(TX, [(txbuf, 72, 1, 1), (txbuf + 72, 8, 2, 0)]),
        "readable-on-rx": init() + post(RX, [(rxbuf, 8, 0, 0)]),
        "short-rx-mrg": init(lo=MRG) + post(RX, [(rxbuf, 0x100, 2, 0), (rxbuf + 0x100, 4, 2, 0)]),
        "runt-tx": init() + post(TX, [(txbuf, 12, 0, 0), (txbuf, 3, 0, 0)]),
        "reset-midway": init(choke=True) + tx2 + vp_bar_w(STATUS, 0, 1) + init() + rx4 + tx2,
        # A tap's device: offloads offered; all taken, then none.
        "tap-offloads": init(vnet=True, lo=MRG | 0x1983) + rx4 + tx2 + vp_bar_w(STATUS, 0, 1)
            + init(vnet=True) + rx4 + tx2,
        "tap-csum-tx": init(vnet=True, lo=0x1) + vp_mem(txbuf, b"\x01" + arp[1:])
            + post(TX, [(txbuf, len(arp), 0, 0)]),
    }
def trace_seeds():
    specs = {
        "all": b"pio,mmio,virtio,irq,control",
        "range": b"pio=0x3f8-0x3ff,mmio=0xfe000000-0xfe000fff",
        "dev": b"virtio,dev=vda,dev=com1",
        "bad-kind": b"pio,disk",
        "bad-range": b"pio=0x3ff-0x3f8",
        "empty-item": b"pio,,mmio",
        "many": b",".join(b"pio=%d" % i for i in range(12)),
    }
    seeds = {"spec-" + name: b"\x00" + data for name, data in specs.items()}
    seeds["change"] = b"\x01virtio,irq=1\npio,mmio"
    seeds["change-off-range"] = b"\x01virtio\npio=1-2"
    seeds["body-put"] = b'\x02{"filter": "pio=0x3f8-0x3ff,control"}'
    seeds["body-patch"] = b'\x02{"on": "virtio", "off": "pio"}'
    seeds["body-bad"] = b'\x02{"on": 1}'
    return seeds


# Linux's compressor commands (scripts/Makefile.lib), as tests/unit/gen_payloads.py has
# them, but with small dictionaries: each iteration's decoder allocates what the header asks.
PAYLOAD_COMPRESSORS = {
    "gzip": ["gzip", "-n", "-f", "-9"],
    "bzip2": ["bzip2", "-1"],
    "lzma": ["xz", "--format=lzma", "--lzma1=preset=9,dict=64KiB"],
    "xz": ["xz", "--check=crc32", "--x86", "--lzma2=preset=9,dict=64KiB"],
    "lzo": ["lzop", "-9"],
    "lz4": ["lz4", "-l", "-9", "-c"],
    "zstd": ["zstd", "-19", "-c", "-q"],
}


def payload(fmt, data):
    """data compressed as Linux's build does it, the size appended (gzip's ISIZE is it)."""
    import subprocess
    out = subprocess.run(PAYLOAD_COMPRESSORS[fmt], input=data, stdout=subprocess.PIPE,
                         check=True).stdout
    return out if fmt == "gzip" else out + struct.pack("<I", len(data))


def bzimage_with_payload(pl, pref=0x100000, init_size=0x200000):
    """A bzImage whose protected-mode part is 0x400 bytes of code, then the payload."""
    img = bytearray(bzimage(pm_size=0x400 + len(pl) + 4, init_size=init_size))
    setup = 3 * 512
    img[setup + 0x400:setup + 0x400 + len(pl)] = pl
    struct.pack_into("<II", img, 0x248, 0x400, len(pl))
    struct.pack_into("<Q", img, 0x258, pref)
    return bytes(img)


def payload_seeds():
    """fuzz_payload: byte 0 even: a payload alone; odd: a bzImage carrying one."""
    elf = vmlinux()
    seeds = {}
    for fmt in PAYLOAD_COMPRESSORS:
        pl = payload(fmt, elf)
        seeds["raw-" + fmt] = b"\x00" + pl
        seeds["bzimage-" + fmt] = b"\x01" + bzimage_with_payload(pl)
        seeds["bomb-" + fmt] = b"\x00" + payload(fmt, bytes(1 << 20))[:-4] + \
            struct.pack("<I", 1000)
    seeds["bzimage-wrong-pref"] = b"\x01" + bzimage_with_payload(payload("xz", elf), 0x1000000)
    seeds["bzimage-small-init"] = b"\x01" + bzimage_with_payload(payload("xz", elf),
                                                                   init_size=0x1000)
    seeds["bzimage-not-elf"] = b"\x01" + bzimage_with_payload(payload("gzip", bytes(4096)))
    return seeds


TARGETS = {"kernel": kernel_seeds, "payload": payload_seeds, "uart8250": uart_seeds, "api": api_seeds,
           "rtc_cmos": rtc_seeds, "virtqueue": vq_seeds, "pci": pci_seeds,
           "virtio_pci": virtio_pci_seeds, "virtio_blk": virtio_blk_seeds,
           "virtio_console": virtio_console_seeds, "virtio_net": virtio_net_seeds,
           "gdb": gdb_seeds, "escape": escape_seeds, "i8042": i8042_seeds,
           "testdev": testdev_seeds, "trace": trace_seeds,
           "api_http": api_http_seeds}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in TARGETS:
        sys.exit("usage: gen_corpus.py {%s} DIR" % ",".join(TARGETS))
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.unlink(os.path.join(out, name))
    for name, data in TARGETS[sys.argv[1]]().items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    # Reproducers of what a fuzzing campaign found (scripts/fuzz), kept as seeds.
    kept = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", sys.argv[1])
    if os.path.isdir(kept):
        for name in sorted(os.listdir(kept)):
            with open(os.path.join(kept, name), "rb") as f:
                data = f.read()
            with open(os.path.join(out, "kept-" + name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
