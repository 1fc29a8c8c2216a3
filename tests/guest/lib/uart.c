/* COM1 output by polling; see include/kit/uart.h. */
#include "kit/uart.h"
#include "kit/io.h"

/* Registers, as offsets from the base (8250 datasheet). */
#define UART_THR 0 /* transmit holding register (DLAB=0) */
#define UART_DLL 0 /* divisor latch, low byte (DLAB=1) */
#define UART_IER 1 /* interrupt enable (DLAB=0) */
#define UART_DLM 1 /* divisor latch, high byte (DLAB=1) */
#define UART_FCR 2 /* FIFO control (write) */
#define UART_LCR 3 /* line control */
#define UART_MCR 4 /* modem control */
#define UART_LSR 5 /* line status */

#define UART_LCR_8N1  0x03
#define UART_LCR_DLAB 0x80
#define UART_MCR_DTR  0x01
#define UART_MCR_RTS  0x02
#define UART_LSR_THRE 0x20 /* the holding register can take a byte */
#define UART_LSR_TEMT 0x40 /* holding and shift registers are empty */

/*
 * How many polls before sending anyway, as Linux's early serial console does
 * (arch/x86/boot/tty.c): a UART that never reports THRE must not hang the
 * guest. petrel holds THRE low while its console buffer is full; each poll is
 * a VM exit, so this budget outlasts any short stall of the console.
 */
#define UART_POLL_MAX 100000

/* Spins until one of the LSR bits in mask is set, or the poll budget ends. */
static void uart_wait(unsigned char mask)
{
    for (unsigned n = 0; n < UART_POLL_MAX; n++) {
        if (inb(UART_COM1 + UART_LSR) & mask)
            return;
        cpu_relax();
    }
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
