/*
 * flood: prints 64-byte lines ("flood: <8 hex digits> ...\r\n") on COM1 as
 * fast as THRE allows, forever, until a byte arrives on COM1; then it ends
 * through debug-exit with status flood.exit (default 0), without waiting for
 * its output to leave the UART: a test uses it to end a VM whose console
 * reader stopped reading (THRE then stays low) from inside the guest.
 *
 * One loop polls LSR for both: DR (a byte came: exit) and THRE (room: send the
 * next byte). COM1 input stays polled (no IRQ), so nothing else runs.
 * A bad flood.exit prints "flood: bad flood.exit=..." and exits 2.
 */
#include "kit/cmdline.h"
#include "kit/io.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/uart.h"

#define FLOOD_LINE 64

/* The line numbered n, FLOOD_LINE bytes with its "\r\n". */
static void flood_line(char *buf, unsigned n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned i = 0;

    for (const char *p = "flood: "; *p; p++)
        buf[i++] = *p;
    for (int shift = 28; shift >= 0; shift -= 4)
        buf[i++] = hex[(n >> shift) & 0xf];
    buf[i++] = ' ';
    for (; i < FLOOD_LINE - 2; i++)
        buf[i] = (char)('a' + i % 26);
    buf[i++] = '\r';
    buf[i] = '\n';
}

int kit_main(void)
{
    unsigned long status = 0;
    char line[FLOOD_LINE], arg[32];
    unsigned n = 0, at = FLOOD_LINE;

    if (kit_cmdline_uint("flood.exit", 0, &status) == -2 || status > 255) {
        kit_cmdline_get("flood.exit", arg, sizeof(arg));
        printf("flood: bad flood.exit=%s (want 0-255)\n", arg);
        return 2;
    }
    for (;;) {
        unsigned char lsr = inb(UART_COM1 + UART_LSR);

        if (lsr & UART_LSR_DR)
            break;
        if (!(lsr & UART_LSR_THRE)) {
            cpu_relax();
            continue;
        }
        if (at == FLOOD_LINE) {
            flood_line(line, n++);
            at = 0;
        }
        outb((unsigned char)line[at++], UART_COM1 + UART_THR);
    }
    /* Not kit_exit(): it waits for TEMT, which a stalled console never gives. */
    outb((unsigned char)status, KIT_DEBUG_EXIT_PORT);
    kit_halt();
}
