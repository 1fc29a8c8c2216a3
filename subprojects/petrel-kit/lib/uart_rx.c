/* COM1 input through the receive interrupt; see include/kit/uart_rx.h. */
#include "kit/uart_rx.h"
#include "kit/io.h"
#include "kit/irq.h"
#include "kit/uart.h"

#include <stdint.h>

/*
 * The ring: the handler is the only producer (tail), the program the only
 * consumer (head). They never run interleaved (irq.h), so volatile suffices.
 */
static volatile uint8_t rx_ring[UART_RX_RING];
static volatile unsigned rx_head, rx_tail;
static volatile int rx_throttled; /* the ring filled: IER.RDI is off */
static volatile unsigned rx_overruns;

/* Reads LSR, counting overruns it reports (reading clears them). */
static uint8_t uart_rx_lsr(void)
{
    uint8_t lsr = inb(UART_COM1 + UART_LSR);

    if (lsr & UART_LSR_OE)
        rx_overruns++;
    return lsr;
}

/* Moves bytes from the UART to the ring while there are any and room. */
static void uart_rx_drain(void)
{
    while (rx_tail - rx_head < UART_RX_RING) {
        if (!(uart_rx_lsr() & UART_LSR_DR))
            return;
        rx_ring[rx_tail % UART_RX_RING] = inb(UART_COM1 + UART_RBR);
        rx_tail++;
    }
    /* Full: stop the interrupt (the line drops) and let bytes wait upstream. */
    rx_throttled = 1;
    outb(0, UART_COM1 + UART_IER);
}

/*
 * IRQ 4. Draining until LSR.DR is clear lowers the UART's line, so a byte
 * that arrives afterwards raises it again: a new edge, pending in the LAPIC
 * until the EOI that follows this handler.
 */
static void uart_rx_irq(unsigned vector)
{
    (void)vector;
    uart_rx_drain();
}

void uart_rx_init(void)
{
    irq_init();
    /*
     * The FIFOs stay off (FCR untouched since uart_init() wrote 0): switching
     * them on empties them, on a 16550, in QEMU and in petrel alike. A byte
     * the VMM queued before now would be lost, and so would the next one,
     * which the VMM pushes as soon as a read makes room: no order of "drain,
     * then enable" closes that race. With a one-byte receive buffer the VMM
     * holds the rest (back-pressure) and the handler takes one byte per
     * interrupt, or more when they come quickly.
     */
    outb(UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2, UART_COM1 + UART_MCR);
    /* The pin is live before the UART can raise its line: an edge that came
     * while the pin was masked would be lost. */
    irq_route_isa(UART_COM1_IRQ, uart_rx_irq);
    outb(UART_IER_RDI, UART_COM1 + UART_IER);
    /* A byte that came before the interrupt was on raised the line already:
     * there will be no edge for it, so take it now. */
    uart_rx_drain();
}

unsigned uart_rx_pending(void)
{
    return rx_tail - rx_head;
}

int uart_rx_trygetc(void)
{
    if (rx_head == rx_tail)
        return -1;
    int c = rx_ring[rx_head % UART_RX_RING];
    rx_head++;
    if (rx_throttled && rx_tail - rx_head <= UART_RX_RING / 2) {
        /* Room again: the line rises if bytes waited, and that edge brings them. */
        rx_throttled = 0;
        outb(UART_IER_RDI, UART_COM1 + UART_IER);
    }
    return c;
}

unsigned uart_rx_overruns(void)
{
    return rx_overruns;
}

int kit_getc(void)
{
    int c;

    while ((c = uart_rx_trygetc()) < 0)
        kit_idle();
    return c;
}
