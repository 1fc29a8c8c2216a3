/*
 * An 8250/16550A UART, as on a PC's COM1 (0x3f8, IRQ 4).
 *
 * Transmitted bytes go to an outbuf drained by the loop. The transmitter looks
 * empty (LSR.THRE/TEMT, and the THRE interrupt) only while that buffer has
 * space, which is how a slow console slows the guest instead of losing output.
 * Received bytes enter a 16-byte FIFO through uart8250_receive() on the loop.
 */
#ifndef PETREL_UART8250_H
#define PETREL_UART8250_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/bus.h"
#include "petrel/hwdev.h"
#include "petrel/irq.h"
#include "petrel/outbuf.h"
#include "petrel/state.h"

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ  4
#define UART_NR_REGS   8
#define UART_FIFO_SIZE 16

/* Register offsets and bits (see a 16550A data sheet; Linux's serial_reg.h). */
#define UART_RX  0 /* in: receive buffer (DLAB=0) */
#define UART_TX  0 /* out: transmit holding (DLAB=0) */
#define UART_DLL 0 /* divisor latch low (DLAB=1) */
#define UART_IER 1
#define UART_DLM 1 /* divisor latch high (DLAB=1) */
#define UART_IIR 2 /* in */
#define UART_FCR 2 /* out */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define UART_IER_RDI  0x01
#define UART_IER_THRI 0x02
#define UART_IER_RLSI 0x04
#define UART_IER_MSI  0x08

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI    0x00
#define UART_IIR_THRI   0x02
#define UART_IIR_RDI    0x04
#define UART_IIR_RLSI   0x06
#define UART_IIR_FIFO   0xc0

#define UART_FCR_ENABLE   0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_FCR_CLEAR_TX 0x04

#define UART_LCR_DLAB 0x80

#define UART_MCR_DTR  0x01
#define UART_MCR_RTS  0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10

#define UART_LSR_DR   0x01
#define UART_LSR_OE   0x02
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

#define UART_MSR_DCTS  0x01
#define UART_MSR_DDSR  0x02
#define UART_MSR_TERI  0x04
#define UART_MSR_DDCD  0x08
#define UART_MSR_CTS   0x10
#define UART_MSR_DSR   0x20
#define UART_MSR_RI    0x40
#define UART_MSR_DCD   0x80
#define UART_MSR_DELTA 0x0f

struct uart8250 {
    struct device dev; /* dev.lock guards everything below */
    struct irq_line *irq;
    struct outbuf *out; /* transmit sink; NULL drops output */

    uint8_t ier, lcr, mcr, fcr, scr, dll, dlm;
    uint8_t lsr_err; /* sticky error bits (OE), cleared by reading LSR */
    uint8_t msr;     /* modem status, with delta bits */
    bool thri_pending;
    bool tx_waiting; /* a byte filled the console: raise THRE when room appears */
    bool irq_level;

    uint8_t rx[UART_FIFO_SIZE];
    unsigned rx_head, rx_len;

    uint64_t tx_dropped; /* bytes written while the transmitter was not empty */

    /*
     * Called (on a vCPU thread, under dev.lock) when the guest makes room in
     * the receive FIFO after uart8250_receive() could not take everything.
     */
    void (*on_rx_room)(void *ctx);
    void *on_rx_room_ctx;
    bool rx_wanted; /* input is waiting for room */
};

/* Initialises u in its reset state; out may be NULL, irq may be NULL. */
void uart8250_init(struct uart8250 *u, const char *name, struct irq_line *irq, struct outbuf *out);
void uart8250_destroy(struct uart8250 *u);

/*
 * Delivers received bytes (the loop, from the console's input). Returns how
 * many fit in the receive FIFO; the caller keeps the rest for later.
 */
size_t uart8250_receive(struct uart8250 *u, const uint8_t *buf, size_t len);

/* Free room in the receive FIFO right now. */
size_t uart8250_rx_room(struct uart8250 *u);

/* outbuf on_space callback: the transmitter may look empty again. */
void uart8250_tx_space(void *ctx);

#define UART8250_STATE_COMPATIBLE "petrel,uart8250-v1"

/*
 * Writes the registers, the receive FIFO and the pending THRE interrupt into a
 * node the caller began (UART8250_STATE_COMPATIBLE), with the VM paused. Not
 * saved: the console (its outbuf, input waiting for room) and tx_dropped.
 * Returns out->err.
 */
int uart8250_save(const struct uart8250 *u, struct state_out *out) MUST_CHECK;

/*
 * Loads what uart8250_save() wrote into a UART set up by uart8250_init(),
 * refusing (in->err, with the property named) any value the UART cannot
 * hold, in which case u is unchanged. Re-derives the line from the registers.
 */
int uart8250_restore(struct uart8250 *u, struct state_in *in) MUST_CHECK;

/* COM1 (0x3f8, IRQ 4) in the machine table (machine.c): the console's UART. */
extern const struct hwdev_ops uart8250_com1;

#endif
