/*
 * COM1 (an 8250/16550 at port 0x3f8): the kit's console. Output is polled:
 * each byte waits for the transmit holding register to be empty (LSR.THRE),
 * without a time limit, since petrel uses THRE for back-pressure. Input is
 * interrupt-driven, in uart_rx.h.
 */
#ifndef KIT_UART_H
#define KIT_UART_H

#include <stddef.h>

#define UART_COM1     0x3f8
#define UART_COM1_IRQ 4

/* Registers, as offsets from the base (8250/16550A datasheets). */
#define UART_RBR 0 /* receive buffer (read, DLAB=0) */
#define UART_THR 0 /* transmit holding register (write, DLAB=0) */
#define UART_DLL 0 /* divisor latch, low byte (DLAB=1) */
#define UART_IER 1 /* interrupt enable (DLAB=0) */
#define UART_DLM 1 /* divisor latch, high byte (DLAB=1) */
#define UART_FCR 2 /* FIFO control (write) */
#define UART_LCR 3 /* line control */
#define UART_MCR 4 /* modem control */
#define UART_LSR 5 /* line status */

#define UART_IER_RDI  0x01 /* interrupt while received data is available */
#define UART_LCR_8N1  0x03
#define UART_LCR_DLAB 0x80
#define UART_MCR_DTR  0x01
#define UART_MCR_RTS  0x02
#define UART_MCR_OUT2 0x08 /* gates the IRQ line on PC serial ports */
#define UART_LSR_DR   0x01 /* a received byte is waiting */
#define UART_LSR_OE   0x02 /* a received byte was lost (overrun) */
#define UART_LSR_THRE 0x20 /* the holding register can take a byte */
#define UART_LSR_TEMT 0x40 /* holding and shift registers are empty */

/* 115200 8N1, no interrupts, no FIFO. Called once by kit_start(). */
void uart_init(void);

/*
 * The console lock, for output that must not interleave with another CPU's:
 * printf(), puts() and putchar() take it around each call. It nests on one
 * CPU. The uart_* output functions themselves do not lock.
 */
void uart_lock(void);
void uart_unlock(void);

/* Sends one byte as is. */
void uart_putc(char c);

/* Sends len bytes, turning "\n" into "\r\n" for terminals. */
void uart_write(const char *s, size_t len);

/* Waits until every byte has left the transmitter (before the VM ends). */
void uart_flush(void);

#endif
