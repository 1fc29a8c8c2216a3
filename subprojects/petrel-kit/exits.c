/*
 * exits: a known sequence of port and MMIO accesses, for the trace and stat
 * tests and the exit benchmark (scripts/bench/exits).
 *
 * Without options (the tests): prints "exits: ready", waits for one byte on
 * COM1, then makes exactly this sequence and exits with status 0:
 *   outb 0x10..0x1f to port 0x510 (16 writes), inw from port 0x512,
 *   outl 0xdeadbeef to port 0x514, mmio_write32 0xcafef00d to 0xd0000000,
 *   mmio_read8 from 0xd0000004, then exits.count reads of the debug console's
 *   port (0xe9; default 8), then prints "exits: done" and, with exits.hold=1,
 *   waits for a second byte before it exits.
 * No device claims 0x510-0x517 or 0xd0000000-0xd0000fff in petrel, and nothing
 * else in the kit touches port 0xe9 here. Before the byte it makes no access
 * but the console's, so a test can change the trace filter or read the
 * counters first, and with exits.hold again after.
 *
 * With exits.bench=N: no waiting; "exits: pio" then N reads of the scratch
 * register (0x3ff: a real 8250 register in petrel and QEMU alike), "exits:
 * mmio" then N 32-bit reads at exits.mmio (default 0xd0000000: an address no
 * device claims in either VMM, so both exit to user space and answer),
 * "exits: done", then status 0. The host times the lines.
 */
#include "kit/cmdline.h"
#include "kit/io.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/uart_rx.h"

#define EXITS_PORT    0x510
#define EXITS_MMIO    0xd0000000UL
#define UART_SCR      0x3ff
#define DEBUGCON_PORT 0xe9

static void exits_bench(unsigned long n)
{
    unsigned long mmio = EXITS_MMIO;
    volatile uint32_t sink = 0;

    kit_cmdline_uint("exits.mmio", 0, &mmio);
    puts("exits: pio");
    for (unsigned long i = 0; i < n; i++)
        sink += inb(UART_SCR);
    puts("exits: mmio");
    for (unsigned long i = 0; i < n; i++)
        sink += mmio_read32(mmio);
    puts("exits: done");
    (void)sink;
}

int kit_main(void)
{
    unsigned long n = 0, count = 8, hold = 0;

    if (kit_cmdline_uint("exits.bench", 0, &n) == 0) {
        exits_bench(n);
        return 0;
    }
    kit_cmdline_uint("exits.count", 0, &count);
    kit_cmdline_uint("exits.hold", 0, &hold);
    uart_rx_init();
    puts("exits: ready");
    (void)kit_getc();
    for (unsigned v = 0x10; v < 0x20; v++)
        outb((uint8_t)v, EXITS_PORT);
    (void)inw(EXITS_PORT + 2);
    outl(0xdeadbeef, EXITS_PORT + 4);
    mmio_write32(EXITS_MMIO, 0xcafef00d);
    (void)mmio_read8(EXITS_MMIO + 4);
    for (unsigned long i = 0; i < count; i++)
        (void)inb(DEBUGCON_PORT);
    puts("exits: done");
    if (hold)
        (void)kit_getc();
    return 0;
}
