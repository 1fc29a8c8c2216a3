/*
 * COM1 input, interrupt-driven: the UART's receive interrupt (ISA IRQ 4,
 * I/O APIC pin 4, edge, active high) moves bytes into a small ring; programs
 * take them with kit_getc(), which sleeps in kit_idle() while the ring is
 * empty. Nothing is dropped in the guest: when the ring fills, the receive
 * interrupt is turned off and bytes wait in the UART (and, under petrel, in
 * its console input) until the program has taken half the ring. The UART's
 * FIFOs stay off: turning them on empties them (see uart_rx_init()).
 */
#ifndef KIT_UART_RX_H
#define KIT_UART_RX_H

#define UART_RX_RING 256 /* bytes; a power of two */

/* Turns on OUT2 and the receive interrupt and routes IRQ 4. Calls
 * irq_init() first. A byte already waiting in the UART is kept. */
void uart_rx_init(void);

/* Bytes waiting in the ring. */
unsigned uart_rx_pending(void);

/* The next byte, or -1 if the ring is empty; never sleeps. */
int uart_rx_trygetc(void);

/* Receive overruns the UART reported (bytes it lost before we read them). */
unsigned uart_rx_overruns(void);

/* The next byte from COM1, sleeping in kit_idle() until there is one.
 * Call with interrupts off, as kit programs run. */
int kit_getc(void);

#endif
