/*
 * COM1 (an 8250/16550 at port 0x3f8), polled: the kit's console. Interrupts
 * stay off on the UART; each byte waits for the transmit holding register.
 */
#ifndef KIT_UART_H
#define KIT_UART_H

#include <stddef.h>

#define UART_COM1 0x3f8

/* 115200 8N1, no interrupts, no FIFO. Called once by kit_start(). */
void uart_init(void);

/* Sends one byte as is. */
void uart_putc(char c);

/* Sends len bytes, turning "\n" into "\r\n" for terminals. */
void uart_write(const char *s, size_t len);

/* Waits until every byte has left the transmitter (before the VM ends). */
void uart_flush(void);

#endif
