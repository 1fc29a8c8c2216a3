/*
 * Unit tests for the 8250/16550A UART, driven like a guest driver (QEMU qtest
 * style): port reads and writes through a bus, a fake interrupt line that
 * records every level change, and a real outbuf as the console.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/bus.h"
#include "petrel/outbuf.h"
#include "petrel/uart8250.h"
#include "fake_irq.h"
#include "fake_state.h"

struct rig {
    struct bus bus;
    struct fake_irq irq;
    struct outbuf out;
    struct uart8250 u;
};

#define OUT_CAP 8

static int rig_setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    if (outbuf_init(&r->out, OUT_CAP) != 0) {
        free(r);
        return -1;
    }
    r->irq.line.set_level = fake_irq_set;
    bus_init(&r->bus, "pio");
    uart8250_init(&r->u, "com1", &r->irq.line, &r->out);
    /* As the VM wires it: room in the console buffer may re-raise THRE. */
    r->out.on_space = uart8250_tx_space;
    r->out.on_space_ctx = &r->u;
    if (bus_register(&r->bus, UART_COM1_BASE, UART_NR_REGS, &r->u.dev) != 0)
        return -1;
    *state = r;
    return 0;
}

static int rig_teardown(void **state)
{
    struct rig *r = *state;
    assert_int_equal(r->irq.repeats, 0); /* the UART reports changes only */
    bus_destroy(&r->bus);
    uart8250_destroy(&r->u);
    outbuf_destroy(&r->out);
    free(r);
    return 0;
}

static void outb(struct rig *r, unsigned reg, uint8_t v)
{
    assert_int_equal(bus_dispatch(&r->bus, UART_COM1_BASE + reg, &v, 1, true), 0);
}

static uint8_t inb(struct rig *r, unsigned reg)
{
    uint8_t v = 0;
    assert_int_equal(bus_dispatch(&r->bus, UART_COM1_BASE + reg, &v, 1, false), 0);
    return v;
}

/* Drains the console buffer and compares it with want. */
static void expect_output(struct rig *r, const char *want)
{
    char buf[64];
    size_t n = outbuf_peek(&r->out, buf, sizeof(buf));
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    outbuf_consume(&r->out, n);
}

static void test_reset_state(void **state)
{
    struct rig *r = *state;
    assert_int_equal(inb(r, UART_IER), 0);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_NO_INT);
    assert_int_equal(inb(r, UART_LCR), 0);
    assert_int_equal(inb(r, UART_MCR), 0);
    assert_int_equal(inb(r, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
    assert_int_equal(inb(r, UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
    assert_int_equal(inb(r, UART_RX), 0); /* empty receiver */
    assert_false(r->irq.level);
    assert_int_equal(r->irq.calls, 0);
}

static void test_thr_to_outbuf(void **state)
{
    struct rig *r = *state;
    outb(r, UART_TX, 'h');
    outb(r, UART_TX, 'i');
    expect_output(r, "hi");
    /* With no interrupt enabled, transmitting never touches the line. */
    assert_int_equal(r->irq.calls, 0);
    assert_int_equal(r->u.tx_dropped, 0);
}

/* LSR.THRE/TEMT follow the console buffer's room: that is the back-pressure. */
static void test_lsr_backpressure(void **state)
{
    struct rig *r = *state;
    for (unsigned i = 0; i < OUT_CAP; i++) {
        assert_int_equal(inb(r, UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT),
                         UART_LSR_THRE | UART_LSR_TEMT);
        outb(r, UART_TX, (uint8_t)('a' + i));
    }
    assert_int_equal(outbuf_space(&r->out), 0);
    assert_int_equal(inb(r, UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT), 0);
    /* A guest that writes anyway loses the byte, and it is counted. */
    outb(r, UART_TX, 'X');
    assert_int_equal(r->u.tx_dropped, 1);
    assert_int_equal(outbuf_len(&r->out), OUT_CAP);

    char c;
    assert_int_equal(outbuf_peek(&r->out, &c, 1), 1);
    outbuf_consume(&r->out, 1);
    assert_int_equal(inb(r, UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT),
                     UART_LSR_THRE | UART_LSR_TEMT);
    expect_output(r, "bcdefgh");
}

/* Enabling THRI with an empty transmitter raises the interrupt at once. */
static void test_ier_thri_raises(void **state)
{
    struct rig *r = *state;
    outb(r, UART_IER, UART_IER_THRI);
    assert_true(r->irq.level);
    assert_int_equal(r->irq.raises, 1);
    assert_int_equal(inb(r, UART_IER), UART_IER_THRI);
    /* Disabling it lowers the line. */
    outb(r, UART_IER, 0);
    assert_false(r->irq.level);
    assert_int_equal(r->irq.lowers, 1);
    /* Enabling it again raises it again. */
    outb(r, UART_IER, UART_IER_THRI | UART_IER_RDI);
    assert_true(r->irq.level);
    assert_int_equal(r->irq.raises, 2);
}

/* Reading IIR while it reports THRE acknowledges that interrupt. */
static void test_iir_acks_thri(void **state)
{
    struct rig *r = *state;
    outb(r, UART_IER, UART_IER_THRI);
    assert_true(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_THRI);
    assert_false(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_NO_INT);
    /* Writing a byte with room left makes THR empty again: a new interrupt. */
    outb(r, UART_TX, 'a');
    assert_true(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_THRI);
    assert_false(r->irq.level);
    assert_int_equal(r->irq.raises, 2);
    assert_int_equal(r->irq.lowers, 2);
    /* Nothing waits for room, so a space notification raises nothing. */
    uart8250_tx_space(&r->u);
    assert_false(r->irq.level);
    assert_int_equal(r->irq.calls, 4);
}

/*
 * An interrupt-driven driver fills the console, the line drops and stays low
 * while the console is full, and THRE fires again once the loop drains it.
 */
static void test_thri_after_space(void **state)
{
    struct rig *r = *state;
    unsigned sent = 0;

    outb(r, UART_IER, UART_IER_THRI);
    /* The interrupt handler: acknowledge, then write while THR is empty. */
    assert_true(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_THRI);
    while (inb(r, UART_LSR) & UART_LSR_THRE)
        outb(r, UART_TX, (uint8_t)('0' + sent++));
    assert_int_equal(sent, OUT_CAP);
    assert_false(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_NO_INT);
    unsigned raises = r->irq.raises;

    /* The loop writes out two bytes: room appears, THRE is back. */
    char buf[2];
    assert_int_equal(outbuf_peek(&r->out, buf, 2), 2);
    outbuf_consume(&r->out, 2);
    assert_true(r->irq.level);
    assert_int_equal(r->irq.raises, raises + 1);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_THRI);
    assert_false(r->irq.level);
    assert_int_equal(inb(r, UART_LSR) & UART_LSR_THRE, UART_LSR_THRE);
    /* Only one interrupt per wait: a second consume raises nothing new. */
    outbuf_consume(&r->out, 1);
    assert_false(r->irq.level);
    assert_int_equal(r->irq.raises, raises + 1);
    assert_int_equal(r->u.tx_dropped, 0);
}

/* THRI enabled while the console is full: no interrupt until there is room. */
static void test_thri_enabled_when_full(void **state)
{
    struct rig *r = *state;
    for (unsigned i = 0; i < OUT_CAP; i++)
        outb(r, UART_TX, 'x');
    outb(r, UART_IER, UART_IER_THRI);
    assert_false(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_NO_INT);
    outbuf_consume(&r->out, 1);
    assert_true(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_THRI);
}

static void test_dlab(void **state)
{
    struct rig *r = *state;
    outb(r, UART_IER, UART_IER_RDI);
    outb(r, UART_LCR, UART_LCR_DLAB | 0x03);
    assert_int_equal(inb(r, UART_DLL), 0x0c); /* 9600 baud after reset */
    assert_int_equal(inb(r, UART_DLM), 0x00);
    outb(r, UART_DLL, 0x01);
    outb(r, UART_DLM, 0x02);
    assert_int_equal(inb(r, UART_DLL), 0x01);
    assert_int_equal(inb(r, UART_DLM), 0x02);
    assert_int_equal(inb(r, UART_LCR), UART_LCR_DLAB | 0x03);
    /* Divisor writes went nowhere else: no output, IER intact. */
    assert_int_equal(outbuf_len(&r->out), 0);
    outb(r, UART_LCR, 0x03);
    assert_int_equal(inb(r, UART_IER), UART_IER_RDI);
    outb(r, UART_TX, 'z');
    expect_output(r, "z");
    /* The divisor survives leaving and re-entering DLAB. */
    outb(r, UART_LCR, UART_LCR_DLAB);
    assert_int_equal(inb(r, UART_DLL), 0x01);
    assert_int_equal(inb(r, UART_DLM), 0x02);
}

static void test_fcr_fifo_bits(void **state)
{
    struct rig *r = *state;
    assert_int_equal(inb(r, UART_IIR) & UART_IIR_FIFO, 0);
    outb(r, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX | UART_FCR_CLEAR_TX);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_FIFO | UART_IIR_NO_INT);
    outb(r, UART_FCR, 0);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_NO_INT);
}

static void test_rx_fifo(void **state)
{
    struct rig *r = *state;
    uint8_t in[20];
    for (unsigned i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(0x40 + i);

    outb(r, UART_FCR, UART_FCR_ENABLE);
    outb(r, UART_IER, UART_IER_RDI);
    assert_false(r->irq.level);
    /* Move the ring's head so that the fill below wraps around its end. */
    assert_int_equal(uart8250_receive(&r->u, (const uint8_t *)"xyz", 3), 3);
    assert_true(r->irq.level);
    assert_int_equal(inb(r, UART_RX), 'x');
    assert_int_equal(inb(r, UART_RX), 'y');
    assert_int_equal(inb(r, UART_RX), 'z');
    assert_false(r->irq.level);

    assert_int_equal(uart8250_rx_room(&r->u), UART_FIFO_SIZE);
    assert_int_equal(uart8250_receive(&r->u, in, sizeof(in)), UART_FIFO_SIZE);
    assert_int_equal(uart8250_rx_room(&r->u), 0);
    assert_true(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_FIFO | UART_IIR_RDI);
    assert_int_equal(inb(r, UART_LSR) & (UART_LSR_DR | UART_LSR_OE), UART_LSR_DR);
    /* A full FIFO takes nothing more (the caller keeps it). */
    assert_int_equal(uart8250_receive(&r->u, in + 16, 4), 0);

    for (unsigned i = 0; i < UART_FIFO_SIZE; i++) {
        assert_true(inb(r, UART_LSR) & UART_LSR_DR);
        assert_int_equal(inb(r, UART_RX), in[i]);
    }
    assert_int_equal(inb(r, UART_LSR) & UART_LSR_DR, 0);
    assert_false(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_FIFO | UART_IIR_NO_INT);
    assert_int_equal(uart8250_rx_room(&r->u), UART_FIFO_SIZE);

    /* The rest arrives later, in order. */
    assert_int_equal(uart8250_receive(&r->u, in + 16, 4), 4);
    assert_true(r->irq.level);
    for (unsigned i = 16; i < 20; i++)
        assert_int_equal(inb(r, UART_RX), in[i]);
    assert_false(r->irq.level);
}

static void test_rx_without_fifo(void **state)
{
    struct rig *r = *state;
    static const uint8_t in[3] = {'a', 'b', 'c'};
    assert_int_equal(uart8250_rx_room(&r->u), 1);
    assert_int_equal(uart8250_receive(&r->u, in, 3), 1);
    assert_int_equal(uart8250_rx_room(&r->u), 0);
    assert_int_equal(uart8250_receive(&r->u, in + 1, 2), 0);
    /* RDI is not enabled: the line stays low, LSR still reports the byte. */
    assert_false(r->irq.level);
    assert_int_equal(inb(r, UART_LSR) & UART_LSR_DR, UART_LSR_DR);
    assert_int_equal(inb(r, UART_RX), 'a');
    assert_int_equal(uart8250_receive(&r->u, in + 1, 2), 1);
    assert_int_equal(inb(r, UART_RX), 'b');
    assert_int_equal(inb(r, UART_LSR) & UART_LSR_DR, 0);
}

static void test_fcr_clears_rx(void **state)
{
    struct rig *r = *state;
    static const uint8_t in[5] = {1, 2, 3, 4, 5};
    outb(r, UART_FCR, UART_FCR_ENABLE);
    outb(r, UART_IER, UART_IER_RDI);
    assert_int_equal(uart8250_receive(&r->u, in, 5), 5);
    assert_true(r->irq.level);
    outb(r, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
    assert_int_equal(inb(r, UART_LSR) & UART_LSR_DR, 0);
    assert_false(r->irq.level);
    assert_int_equal(uart8250_rx_room(&r->u), UART_FIFO_SIZE);
}

/* Overrun (through loopback, the one way a byte can arrive to a full receiver). */
static void test_overrun(void **state)
{
    struct rig *r = *state;
    outb(r, UART_MCR, UART_MCR_LOOP);
    outb(r, UART_IER, UART_IER_RLSI | UART_IER_RDI);
    outb(r, UART_TX, 'A');
    assert_true(r->irq.level);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_RDI);
    outb(r, UART_TX, 'B'); /* no FIFO: the holding register is full */
    /* Line status outranks received data. */
    assert_int_equal(inb(r, UART_IIR), UART_IIR_RLSI);
    assert_int_equal(inb(r, UART_LSR) & (UART_LSR_OE | UART_LSR_DR), UART_LSR_OE | UART_LSR_DR);
    /* Reading LSR cleared OE. */
    assert_int_equal(inb(r, UART_LSR) & (UART_LSR_OE | UART_LSR_DR), UART_LSR_DR);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_RDI);
    assert_int_equal(inb(r, UART_RX), 'A');
    assert_false(r->irq.level);
    assert_int_equal(outbuf_len(&r->out), 0);

    /* With the FIFO on, the 17th byte overruns. */
    outb(r, UART_FCR, UART_FCR_ENABLE);
    for (unsigned i = 0; i < UART_FIFO_SIZE; i++)
        outb(r, UART_TX, (uint8_t)i);
    assert_int_equal(inb(r, UART_LSR) & UART_LSR_OE, 0);
    outb(r, UART_TX, 0xee);
    assert_int_equal(inb(r, UART_LSR) & UART_LSR_OE, UART_LSR_OE);
    for (unsigned i = 0; i < UART_FIFO_SIZE; i++)
        assert_int_equal(inb(r, UART_RX), i);
    assert_int_equal(inb(r, UART_LSR) & (UART_LSR_OE | UART_LSR_DR), 0);
}

/* Loopback, as Linux's 8250 probe checks it. */
static void test_loopback(void **state)
{
    struct rig *r = *state;
    outb(r, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
    assert_int_equal(inb(r, UART_MSR) & 0xf0, UART_MSR_DCD | UART_MSR_CTS);
    assert_int_equal(inb(r, UART_MSR) & 0xf0, 0x90);
    outb(r, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
    assert_int_equal(inb(r, UART_MSR) & 0xf0, UART_MSR_DSR | UART_MSR_RI);
    outb(r, UART_MCR, UART_MCR_LOOP);
    assert_int_equal(inb(r, UART_MSR) & 0xf0, 0);

    /* Transmitted bytes come back on RBR and never reach the console. */
    outb(r, UART_FCR, UART_FCR_ENABLE);
    outb(r, UART_TX, 'p');
    outb(r, UART_TX, 'q');
    assert_int_equal(inb(r, UART_LSR) & UART_LSR_DR, UART_LSR_DR);
    assert_int_equal(inb(r, UART_RX), 'p');
    assert_int_equal(inb(r, UART_RX), 'q');
    assert_int_equal(outbuf_len(&r->out), 0);

    /* Leaving loopback restores the real modem status and the console. */
    outb(r, UART_MCR, UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2);
    assert_int_equal(inb(r, UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
    assert_int_equal(inb(r, UART_MCR), UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2);
    outb(r, UART_TX, 'r');
    expect_output(r, "r");
}

static void test_scratch(void **state)
{
    struct rig *r = *state;
    outb(r, UART_SCR, 0x5a);
    assert_int_equal(inb(r, UART_SCR), 0x5a);
    outb(r, UART_SCR, 0xa5);
    assert_int_equal(inb(r, UART_SCR), 0xa5);
    assert_int_equal(outbuf_len(&r->out), 0);
}

/* LSR and MSR are read-only. */
static void test_read_only_regs(void **state)
{
    struct rig *r = *state;
    outb(r, UART_LSR, 0x00);
    outb(r, UART_MSR, 0x00);
    assert_int_equal(inb(r, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
    assert_int_equal(inb(r, UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
}

/* The device's reset puts it back in its power-on state and lowers the line. */
static void test_reset(void **state)
{
    struct rig *r = *state;
    static const uint8_t in[2] = {1, 2};
    outb(r, UART_LCR, 0x03);
    outb(r, UART_SCR, 0x77);
    outb(r, UART_FCR, UART_FCR_ENABLE);
    outb(r, UART_IER, UART_IER_RDI | UART_IER_THRI);
    assert_int_equal(uart8250_receive(&r->u, in, 2), 2);
    assert_true(r->irq.level);

    r->u.dev.ops->reset(&r->u.dev);
    assert_false(r->irq.level);
    assert_int_equal(inb(r, UART_IER), 0);
    assert_int_equal(inb(r, UART_LCR), 0);
    assert_int_equal(inb(r, UART_SCR), 0);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_NO_INT);
    assert_int_equal(inb(r, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
}

/* Only level changes reach the irqchip. */
static void test_irq_changes_only(void **state)
{
    struct rig *r = *state;
    static const uint8_t in[3] = {1, 2, 3};
    outb(r, UART_FCR, UART_FCR_ENABLE);
    outb(r, UART_IER, UART_IER_RDI);
    assert_int_equal(uart8250_receive(&r->u, in, 1), 1);
    assert_int_equal(uart8250_receive(&r->u, in + 1, 2), 2);
    outb(r, UART_SCR, 1);
    (void)inb(r, UART_LSR);
    assert_int_equal(r->irq.calls, 1);
    assert_true(r->irq.level);
    (void)inb(r, UART_RX);
    (void)inb(r, UART_RX);
    assert_int_equal(r->irq.calls, 1);
    (void)inb(r, UART_RX);
    assert_int_equal(r->irq.calls, 2);
    assert_false(r->irq.level);
}

/* Without an outbuf or an interrupt line the UART still works (and drops output). */
static void test_no_sinks(void **state)
{
    (void)state;
    struct uart8250 u;
    uart8250_init(&u, "null", NULL, NULL);
    const struct dev_ops *ops = u.dev.ops;
    ops->write(&u.dev, UART_IER, UART_IER_THRI, 1);
    ops->write(&u.dev, UART_TX, 'x', 1);
    assert_int_equal(ops->read(&u.dev, UART_LSR, 1) & UART_LSR_THRE, UART_LSR_THRE);
    assert_int_equal(ops->read(&u.dev, UART_IIR, 1), UART_IIR_THRI);
    assert_int_equal(u.tx_dropped, 0);
    uart8250_destroy(&u);
}

/* ---- save and restore ---- */

static uint8_t tree[STATE_TEST_TREE];

static void save_com1(struct state_out *out, void *ctx)
{
    state_begin(out, "com1", UART8250_STATE_COMPATIBLE);
    assert_int_equal(uart8250_save(ctx, out), 0);
    state_end(out);
}

/* Restores the node "com1" of tree into r's UART; returns what restore returned. */
static int restore_com1(struct rig *r, struct errbuf *eb)
{
    struct state_in root = state_test_root(tree, eb), in;
    if (state_open(&root, "com1", UART8250_STATE_COMPATIBLE, &in))
        return in.err;
    return uart8250_restore(&r->u, &in);
}

/* A second rig, as a new petrel process would set one up. */
static struct rig *rig_new(void)
{
    void *p = NULL;
    assert_int_equal(rig_setup(&p), 0);
    return p;
}

static void rig_free(struct rig *r)
{
    void *p = r;
    rig_teardown(&p);
}

/* The same read on both UARTs gives the same value and leaves the same line level. */
static void same_inb(struct rig *a, struct rig *b, unsigned reg)
{
    assert_int_equal(inb(a, reg), inb(b, reg));
    assert_int_equal(a->irq.level, b->irq.level);
}

/*
 * A UART mid-conversation: FIFO on and wrapped, a divisor, modem lines, THRE
 * and received data both pending. The restored one reads the same and then
 * behaves the same: the same bytes come out, the same interrupts follow.
 */
static void test_save_restore_round_trip(void **state)
{
    struct rig *r = *state;
    uint8_t in[24];
    for (unsigned i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)('A' + i);

    outb(r, UART_LCR, UART_LCR_DLAB | 0x03);
    outb(r, UART_DLL, 0x01);
    outb(r, UART_DLM, 0x02);
    outb(r, UART_LCR, 0x1b);
    outb(r, UART_MCR, UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2);
    outb(r, UART_SCR, 0x5a);
    outb(r, UART_FCR, UART_FCR_ENABLE);
    outb(r, UART_IER, UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI);
    assert_int_equal(uart8250_receive(&r->u, in, 10), 10);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(inb(r, UART_RX), in[i]);
    assert_int_equal(uart8250_receive(&r->u, in + 10, 14), 14); /* wraps the ring */
    assert_true(r->irq.level);

    assert_int_equal(state_test_write(tree, sizeof(tree), save_com1, &r->u), 0);
    struct rig *n = rig_new();
    struct errbuf eb = {0};
    assert_int_equal(restore_com1(n, &eb), 0);
    assert_true(n->irq.level); /* re-derived from the restored registers */
    assert_int_equal(n->irq.raises, 1);

    static const unsigned regs[] = {UART_LCR, UART_MCR, UART_SCR, UART_IER, UART_LSR, UART_MSR};
    for (unsigned i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
        same_inb(r, n, regs[i]);
    outb(r, UART_LCR, 0x1b | UART_LCR_DLAB);
    outb(n, UART_LCR, 0x1b | UART_LCR_DLAB);
    same_inb(r, n, UART_DLL);
    same_inb(r, n, UART_DLM);
    outb(r, UART_LCR, 0x1b);
    outb(n, UART_LCR, 0x1b);

    /* The next accesses: the FIFO drains in the same order, then THRE is reported. */
    assert_int_equal(uart8250_rx_room(&n->u), uart8250_rx_room(&r->u));
    for (unsigned i = 0; i < 16; i++) {
        same_inb(r, n, UART_IIR);
        same_inb(r, n, UART_LSR);
        same_inb(r, n, UART_RX);
    }
    same_inb(r, n, UART_IIR); /* THRE, acknowledged by this read */
    same_inb(r, n, UART_IIR);
    assert_false(n->irq.level);
    /* A byte received and one transmitted, on both. */
    assert_int_equal(uart8250_receive(&r->u, (const uint8_t *)"z", 1), 1);
    assert_int_equal(uart8250_receive(&n->u, (const uint8_t *)"z", 1), 1);
    assert_true(n->irq.level);
    same_inb(r, n, UART_IIR);
    same_inb(r, n, UART_RX);
    outb(r, UART_TX, 'k');
    outb(n, UART_TX, 'k');
    assert_true(n->irq.level);
    same_inb(r, n, UART_IIR);
    expect_output(n, "k");
    rig_free(n);
}

/* THRE that waited for the old console's room is raised when the new console has some. */
static void test_restore_thre_waiting_for_room(void **state)
{
    struct rig *r = *state;
    outb(r, UART_IER, UART_IER_THRI);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_THRI);
    for (unsigned i = 0; i < OUT_CAP; i++)
        outb(r, UART_TX, 'x');
    assert_true(r->u.tx_waiting);
    assert_false(r->irq.level);

    assert_int_equal(state_test_write(tree, sizeof(tree), save_com1, &r->u), 0);
    struct rig *n = rig_new();
    struct errbuf eb = {0};
    assert_int_equal(restore_com1(n, &eb), 0);
    assert_true(n->irq.level);
    assert_int_equal(inb(n, UART_IIR), UART_IIR_THRI);
    assert_false(n->irq.level);
    /* The original does the same once its console drains. */
    outbuf_consume(&r->out, 1);
    assert_int_equal(inb(r, UART_IIR), UART_IIR_THRI);
    rig_free(n);
}

/* A fresh UART that refused a state is as it was: reset registers, a working FIFO. */
static void assert_still_fresh(struct rig *n)
{
    assert_false(n->irq.level);
    assert_int_equal(n->irq.calls, 0);
    assert_int_equal(inb(n, UART_IER), 0);
    assert_int_equal(inb(n, UART_IIR), UART_IIR_NO_INT);
    assert_int_equal(inb(n, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
    assert_int_equal(uart8250_receive(&n->u, (const uint8_t *)"ok", 2), 1);
    assert_int_equal(inb(n, UART_RX), 'o');
}

/* Saves r, applies one hostile edit, and checks the refusal names want. */
static void expect_refused(struct rig *r, const char *prop, uint32_t v, const char *want)
{
    assert_int_equal(state_test_write(tree, sizeof(tree), save_com1, &r->u), 0);
    assert_int_equal(state_test_set_u32(tree, "/com1", prop, v), 0);
    struct rig *n = rig_new();
    struct errbuf eb = {0};
    assert_int_equal(restore_com1(n, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, want));
    assert_still_fresh(n);
    rig_free(n);
}

static void test_restore_refuses_hostile(void **state)
{
    struct rig *r = *state;
    outb(r, UART_FCR, UART_FCR_ENABLE);
    outb(r, UART_IER, UART_IER_RDI);
    assert_int_equal(uart8250_receive(&r->u, (const uint8_t *)"abc", 3), 3);

    /* More bytes than the FIFO holds: later reads would index past it. */
    expect_refused(r, "rx-count", UART_FIFO_SIZE + 1, "'rx-count' is 17");
    expect_refused(r, "rx-count", 0xffffffff, "'rx-count'");
    /* The count and the bytes disagree. */
    expect_refused(r, "rx-count", 2, "property 'rx' has 3 bytes, not 2");
    /* Bits no 16550A register holds. */
    expect_refused(r, "ier", 0xf1, "'ier' is 0xf1");
    expect_refused(r, "fcr", 0x07, "'fcr'");
    expect_refused(r, "mcr", 0x20, "'mcr'");
    expect_refused(r, "lsr-errors", UART_LSR_DR, "'lsr-errors'");
    expect_refused(r, "lcr", 0x100, "'lcr'");
    expect_refused(r, "thri-pending", 2, "'thri-pending'");
    /* Three bytes in a receiver whose FIFO is off (one holding register). */
    expect_refused(r, "fcr", 0, "'rx-count' is 3, more than the receiver's 1 bytes");
}

#define RIG_TEST(fn) cmocka_unit_test_setup_teardown(fn, rig_setup, rig_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        RIG_TEST(test_reset_state),
        RIG_TEST(test_thr_to_outbuf),
        RIG_TEST(test_lsr_backpressure),
        RIG_TEST(test_ier_thri_raises),
        RIG_TEST(test_iir_acks_thri),
        RIG_TEST(test_thri_after_space),
        RIG_TEST(test_thri_enabled_when_full),
        RIG_TEST(test_dlab),
        RIG_TEST(test_fcr_fifo_bits),
        RIG_TEST(test_rx_fifo),
        RIG_TEST(test_rx_without_fifo),
        RIG_TEST(test_fcr_clears_rx),
        RIG_TEST(test_overrun),
        RIG_TEST(test_loopback),
        RIG_TEST(test_scratch),
        RIG_TEST(test_read_only_regs),
        RIG_TEST(test_reset),
        RIG_TEST(test_irq_changes_only),
        cmocka_unit_test(test_no_sinks),
        RIG_TEST(test_save_restore_round_trip),
        RIG_TEST(test_restore_thre_waiting_for_room),
        RIG_TEST(test_restore_refuses_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
