#!/usr/bin/env python3
"""Writes the seed corpus of a fuzz target into a directory.

usage: gen_corpus.py TARGET DIR     (TARGET: bzimage, uart8250, api)

The seeds are small synthetic inputs, generated at build time so that no
binaries live in git. Each is a plausible input that reaches deep into the
code: valid bzImages of several shapes and near-misses for fuzz_bzimage, and
register sequences of real drivers (Linux's 8250 probe, polled and
interrupt-driven output, input, loopback) for fuzz_uart8250, in the op format
described in fuzz_uart8250.c, and API request bodies and HTTP responses (first
byte even: a body; odd: a response) for fuzz_api.
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
        "elf": b"\x7fELF\x02\x01\x01" + bytes(2041),
        "gzip": b"\x1f\x8b\x08\x00" + bytes(1100),
    }


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
    seeds = {name: b"\x00" + data for name, data in bodies.items()}
    seeds.update({name: b"\x01" + data for name, data in responses.items()})
    return seeds


TARGETS = {"bzimage": bzimage_seeds, "uart8250": uart_seeds, "api": api_seeds}


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


if __name__ == "__main__":
    main()
