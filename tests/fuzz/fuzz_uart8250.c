/*
 * Fuzz target: the 8250 UART as a guest and the console drive it.
 *
 * Input format (tests/fuzz/gen_corpus.py writes seeds in it):
 *   byte 0        console buffer capacity - 1 (mod 32)
 *   then ops, each starting with one byte OP:
 *     OP >> 5 == 0, 1  write register OP & 7 with the next byte
 *     OP >> 5 == 2, 3  read register OP & 7
 *     OP >> 5 == 4     the console delivers OP & 31 bytes (the next ones) to the receiver
 *     OP >> 5 == 5     the loop drains up to OP & 31 bytes of output
 *     OP >> 5 == 6     a (possibly spurious) "space in the console" notification
 *     OP >> 5 == 7     device reset
 *
 * Accesses go through a bus, as a vCPU's port exits do. A model of what the
 * guest must observe runs alongside and is checked after every op: output
 * bytes arrive in order with none lost or invented (except those written while
 * LSR said the transmitter was full, which are counted), received bytes are
 * read back in order, LSR's THRE/DR/OE bits, the receive FIFO's bound, the
 * interrupt line being high exactly when IIR reports an interrupt, and a THRE
 * interrupt being acknowledged by the IIR read that reports it.
 */
#include <string.h>

#include "fuzz.h"
#include "petrel/bus.h"
#include "petrel/outbuf.h"
#include "petrel/uart8250.h"
#include "fake_irq.h"

/* What the guest and the console should see. */
struct model {
    uint8_t tx[64]; /* bytes in the console buffer, oldest first */
    size_t tx_len;
    uint8_t rx[64]; /* bytes waiting in the receiver, oldest first */
    size_t rx_len;
    bool oe;
    bool fifo;
    uint8_t lcr, mcr;
    uint64_t dropped;
};

struct rig {
    struct bus bus;
    struct fake_irq irq;
    struct outbuf out;
    struct uart8250 u;
    struct model m;
};

static uint8_t inb(struct rig *r, unsigned reg)
{
    uint8_t v = 0;
    FUZZ_CHECK(bus_dispatch(&r->bus, UART_COM1_BASE + reg, &v, 1, false) == 0);
    return v;
}

static void outb(struct rig *r, unsigned reg, uint8_t v)
{
    FUZZ_CHECK(bus_dispatch(&r->bus, UART_COM1_BASE + reg, &v, 1, true) == 0);
}

static void model_rx_push(struct model *m, uint8_t byte)
{
    size_t depth = m->fifo ? UART_FIFO_SIZE : 1;
    if (m->rx_len >= depth) {
        m->oe = true;
        return;
    }
    m->rx[m->rx_len++] = byte;
}

static void model_reset(struct model *m)
{
    m->rx_len = 0;
    m->oe = m->fifo = false;
    m->lcr = m->mcr = 0;
}

static void do_write(struct rig *r, unsigned reg, uint8_t v)
{
    struct model *m = &r->m;
    bool dlab = m->lcr & UART_LCR_DLAB;

    if (reg == UART_TX && !dlab) {
        if (m->mcr & UART_MCR_LOOP) {
            model_rx_push(m, v);
        } else if (outbuf_space(&r->out) > 0) {
            FUZZ_CHECK(m->tx_len < sizeof(m->tx));
            m->tx[m->tx_len++] = v;
        } else {
            m->dropped++;
        }
    } else if (reg == UART_FCR) {
        /* Clearing, or turning the FIFO on or off, empties it (as on a 16550). */
        if ((v & UART_FCR_CLEAR_RX) || !!(v & UART_FCR_ENABLE) != !!m->fifo)
            m->rx_len = 0;
        m->fifo = v & UART_FCR_ENABLE;
    } else if (reg == UART_LCR) {
        m->lcr = v;
    } else if (reg == UART_MCR) {
        m->mcr = v;
    }
    outb(r, reg, v);
}

static void do_read(struct rig *r, unsigned reg)
{
    struct model *m = &r->m;
    bool dlab = m->lcr & UART_LCR_DLAB;
    bool level = r->irq.level;
    size_t space = outbuf_space(&r->out);
    uint8_t v = inb(r, reg);

    switch (reg) {
    case UART_RX:
        if (dlab)
            break;
        if (m->rx_len) {
            FUZZ_CHECK(v == m->rx[0]);
            memmove(m->rx, m->rx + 1, --m->rx_len);
        } else {
            FUZZ_CHECK(v == 0);
        }
        break;
    case UART_IIR: {
        /* The line is high exactly when IIR has an interrupt to report. */
        FUZZ_CHECK(!(v & UART_IIR_NO_INT) == level);
        uint8_t id = v & 0x0f;
        FUZZ_CHECK(id == UART_IIR_NO_INT || id == UART_IIR_MSI || id == UART_IIR_THRI ||
                   id == UART_IIR_RDI || id == UART_IIR_RLSI);
        FUZZ_CHECK((v & 0x30) == 0);
        FUZZ_CHECK((v & UART_IIR_FIFO) == (m->fifo ? UART_IIR_FIFO : 0));
        if (id == UART_IIR_RDI)
            FUZZ_CHECK(m->rx_len > 0);
        if (id == UART_IIR_RLSI)
            FUZZ_CHECK(m->oe);
        if (id == UART_IIR_THRI) {
            /* The read that reports THRE acknowledges it. */
            FUZZ_CHECK((inb(r, UART_IIR) & 0x0f) != UART_IIR_THRI);
        }
        break;
    }
    case UART_LSR:
        FUZZ_CHECK(!!(v & UART_LSR_DR) == (m->rx_len > 0));
        FUZZ_CHECK(!!(v & UART_LSR_OE) == m->oe);
        FUZZ_CHECK(!!(v & UART_LSR_THRE) == (space > 0));
        FUZZ_CHECK(!!(v & UART_LSR_TEMT) == (space > 0));
        m->oe = false;
        break;
    case UART_LCR:
        FUZZ_CHECK(v == m->lcr);
        break;
    case UART_MCR:
        FUZZ_CHECK(v == (m->mcr & 0x1f));
        break;
    }
}

static void check_invariants(struct rig *r)
{
    struct uart8250 *u = &r->u;
    FUZZ_CHECK(u->rx_len <= UART_FIFO_SIZE);
    FUZZ_CHECK(u->rx_head < UART_FIFO_SIZE);
    FUZZ_CHECK(u->rx_len == r->m.rx_len);
    FUZZ_CHECK(u->irq_level == r->irq.level);
    FUZZ_CHECK(r->irq.repeats == 0); /* the UART reports changes only */
    FUZZ_CHECK(outbuf_len(&r->out) == r->m.tx_len);
    FUZZ_CHECK(outbuf_len(&r->out) <= r->out.cap);
    FUZZ_CHECK(u->tx_dropped == r->m.dropped);
}

/* The loop writes out up to n bytes: they are the guest's, in order. */
static void do_consume(struct rig *r, size_t n)
{
    uint8_t buf[32];
    size_t got = outbuf_peek(&r->out, buf, n < sizeof(buf) ? n : sizeof(buf));
    FUZZ_CHECK(got <= r->m.tx_len);
    FUZZ_CHECK(memcmp(buf, r->m.tx, got) == 0);
    memmove(r->m.tx, r->m.tx + got, r->m.tx_len - got);
    r->m.tx_len -= got;
    outbuf_consume(&r->out, got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rig r;
    size_t pos = 0;

    if (size < 1)
        return 0;
    memset(&r, 0, sizeof(r));
    FUZZ_CHECK(outbuf_init(&r.out, 1 + data[pos++] % 32) == 0);
    fake_irq_init(&r.irq);
    bus_init(&r.bus, "pio");
    uart8250_init(&r.u, "com1", &r.irq.line, &r.out);
    r.out.on_space = uart8250_tx_space;
    r.out.on_space_ctx = &r.u;
    FUZZ_CHECK(bus_register(&r.bus, UART_COM1_BASE, UART_NR_REGS, &r.u.dev) == 0);
    check_invariants(&r);

    while (pos < size) {
        uint8_t op = data[pos++];
        switch (op >> 5) {
        case 0:
        case 1:
            if (pos < size)
                do_write(&r, op & 7, data[pos++]);
            break;
        case 2:
        case 3:
            do_read(&r, op & 7);
            break;
        case 4: {
            size_t n = op & 31;
            if (n > size - pos)
                n = size - pos;
            size_t room = uart8250_rx_room(&r.u);
            size_t took = uart8250_receive(&r.u, data + pos, n);
            FUZZ_CHECK(took == (n < room ? n : room));
            for (size_t i = 0; i < took; i++)
                model_rx_push(&r.m, data[pos + i]);
            pos += n;
            break;
        }
        case 5:
            do_consume(&r, op & 31);
            break;
        case 6:
            uart8250_tx_space(&r.u);
            break;
        case 7:
            r.u.dev.ops->reset(&r.u.dev);
            model_reset(&r.m);
            break;
        }
        check_invariants(&r);
    }
    /* Whatever is left in the console is the guest's output, in order. */
    do_consume(&r, r.m.tx_len);
    FUZZ_CHECK(outbuf_len(&r.out) == 0);

    bus_destroy(&r.bus);
    uart8250_destroy(&r.u);
    outbuf_destroy(&r.out);
    return 0;
}
