/* COM1 output by polling; see include/kit/uart.h. */
#include "kit/uart.h"
#include "kit/io.h"
#include "kit/smp.h"
#include "kit/spinlock.h"

/*
 * The console lock. owner (APIC ID + 1 of the holder, 1 before other CPUs
 * run) and depth are written only by the holder; a CPU that finds itself the
 * owner (an exception report in the middle of a printf) goes on nested.
 */
static struct kit_spinlock uart_lock_word;
static volatile unsigned uart_owner;
static unsigned uart_depth;

/*
 * Spins until one of the LSR bits in mask is set, for as long as it takes.
 *
 * No give-up (Linux's early console sends anyway after 0xffff polls,
 * arch/x86/boot/tty.c): petrel holds THRE low while its console buffer is
 * full, as back-pressure, and a byte written without THRE is dropped, which a
 * test sees as a failure. A budget of polls is also no measure of time: each
 * poll is a VM exit of ~1-2 us under real VT-x/AMD-V, so 100,000 of them gave
 * up after a fraction of a second of a slow reader on petrel's stdout. A
 * missing UART cannot hang us either: an absent port reads 0xff, THRE set.
 */
static void uart_wait(unsigned char mask)
{
    while (!(inb(UART_COM1 + UART_LSR) & mask))
        cpu_relax();
}

void uart_init(void)
{
    outb(0x00, UART_COM1 + UART_IER);
    outb(UART_LCR_DLAB, UART_COM1 + UART_LCR);
    outb(0x01, UART_COM1 + UART_DLL); /* 115200 baud: 1.8432 MHz / 16 / 1 */
    outb(0x00, UART_COM1 + UART_DLM);
    outb(UART_LCR_8N1, UART_COM1 + UART_LCR);
    outb(0x00, UART_COM1 + UART_FCR);
    outb(UART_MCR_DTR | UART_MCR_RTS, UART_COM1 + UART_MCR);
}

void uart_lock(void)
{
    unsigned me = kit_smp_active() ? kit_cpu_id() + 1 : 1;

    if (uart_owner == me) {
        uart_depth++;
        return;
    }
    kit_spin_lock(&uart_lock_word);
    uart_owner = me;
    uart_depth = 1;
}

void uart_unlock(void)
{
    if (--uart_depth)
        return;
    uart_owner = 0;
    kit_spin_unlock(&uart_lock_word);
}

void uart_putc(char c)
{
    uart_wait(UART_LSR_THRE);
    outb((unsigned char)c, UART_COM1 + UART_THR);
}

void uart_write(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n')
            uart_putc('\r');
        uart_putc(s[i]);
    }
}

void uart_flush(void)
{
    uart_wait(UART_LSR_TEMT);
}
