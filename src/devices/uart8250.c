/* 8250/16550A UART: registers, FIFOs, interrupt identification, back-pressure. */
#include "petrel/uart8250.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The bits uart8250_write() keeps in IER, FCR and MCR, and the sticky LSR errors. */
#define UART_IER_BITS 0x0f
#define UART_FCR_BITS 0xc9
#define UART_MCR_BITS 0x1f
#define UART_LSR_ERRS UART_LSR_OE

static struct uart8250 *to_uart(struct device *dev)
{
    return container_of(dev, struct uart8250, dev);
}

/* The receive FIFO's depth: one holding register while the FIFOs are off. */
static unsigned uart8250_rx_depth(uint8_t fcr)
{
    return (fcr & UART_FCR_ENABLE) ? UART_FIFO_SIZE : 1;
}

static bool uart8250_tx_ready(struct uart8250 *u)
{
    return !u->out || outbuf_space(u->out) > 0;
}

/* The highest-priority pending interrupt, as IIR reports it (without FIFO bits). */
static uint8_t uart8250_iir(struct uart8250 *u)
{
    if ((u->ier & UART_IER_RLSI) && u->lsr_err)
        return UART_IIR_RLSI;
    if ((u->ier & UART_IER_RDI) && u->rx_len)
        return UART_IIR_RDI;
    if ((u->ier & UART_IER_THRI) && u->thri_pending)
        return UART_IIR_THRI;
    if ((u->ier & UART_IER_MSI) && (u->msr & UART_MSR_DELTA))
        return UART_IIR_MSI;
    return UART_IIR_NO_INT;
}

/* Drives the line from the interrupt state; only changes reach the irqchip. */
static void uart8250_update_irq(struct uart8250 *u)
{
    bool level = uart8250_iir(u) != UART_IIR_NO_INT;

    if (level != u->irq_level) {
        u->irq_level = level;
        irq_set(u->irq, level);
    }
}

/* In loopback mode the modem outputs feed the modem inputs (Linux's probe checks this). */
static uint8_t uart8250_msr(struct uart8250 *u)
{
    if (!(u->mcr & UART_MCR_LOOP))
        return u->msr;
    uint8_t m = u->msr & UART_MSR_DELTA;
    if (u->mcr & UART_MCR_RTS)
        m |= UART_MSR_CTS;
    if (u->mcr & UART_MCR_DTR)
        m |= UART_MSR_DSR;
    if (u->mcr & UART_MCR_OUT1)
        m |= UART_MSR_RI;
    if (u->mcr & UART_MCR_OUT2)
        m |= UART_MSR_DCD;
    return m;
}

static void uart8250_rx_push(struct uart8250 *u, uint8_t byte)
{
    unsigned depth = uart8250_rx_depth(u->fcr);

    if (u->rx_len >= depth) {
        u->lsr_err |= UART_LSR_OE;
        return;
    }
    u->rx[(u->rx_head + u->rx_len) % UART_FIFO_SIZE] = byte;
    u->rx_len++;
}

/* Tells the console that input waiting for FIFO room may come in now. */
static void uart8250_notify_rx_room(struct uart8250 *u)
{
    if (u->rx_wanted && u->on_rx_room) {
        u->rx_wanted = false;
        u->on_rx_room(u->on_rx_room_ctx);
    }
}

static void uart8250_transmit(struct uart8250 *u, uint8_t byte)
{
    if (u->mcr & UART_MCR_LOOP) {
        uart8250_rx_push(u, byte);
    } else if (u->out && outbuf_put(u->out, &byte, 1) == 0) {
        /* The guest wrote without waiting for THRE: the byte has nowhere to go. */
        u->tx_dropped++;
    }
    /*
     * The holding register empties at once while the console has room; if it
     * has none, the THRE interrupt waits for uart8250_tx_space().
     */
    u->thri_pending = uart8250_tx_ready(u);
    u->tx_waiting = !u->thri_pending;
}

static uint64_t uart8250_read(struct device *dev, uint64_t offset, unsigned size)
{
    struct uart8250 *u = to_uart(dev);
    uint8_t v = 0xff;
    (void)size;

    switch (offset) {
    case UART_RX:
        if (u->lcr & UART_LCR_DLAB) {
            v = u->dll;
        } else if (u->rx_len) {
            v = u->rx[u->rx_head];
            u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
            u->rx_len--;
            uart8250_notify_rx_room(u);
        } else {
            v = 0;
        }
        break;
    case UART_IER:
        v = (u->lcr & UART_LCR_DLAB) ? u->dlm : u->ier;
        break;
    case UART_IIR:
        v = uart8250_iir(u);
        /* Reading IIR while it reports THRE acknowledges that interrupt. */
        if (v == UART_IIR_THRI)
            u->thri_pending = false;
        if (u->fcr & UART_FCR_ENABLE)
            v |= UART_IIR_FIFO;
        break;
    case UART_LCR:
        v = u->lcr;
        break;
    case UART_MCR:
        v = u->mcr;
        break;
    case UART_LSR:
        v = u->lsr_err;
        if (u->rx_len)
            v |= UART_LSR_DR;
        if (uart8250_tx_ready(u))
            v |= UART_LSR_THRE | UART_LSR_TEMT;
        u->lsr_err = 0;
        break;
    case UART_MSR:
        v = uart8250_msr(u);
        u->msr &= ~UART_MSR_DELTA;
        break;
    case UART_SCR:
        v = u->scr;
        break;
    }
    uart8250_update_irq(u);
    return v;
}

static void uart8250_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct uart8250 *u = to_uart(dev);
    uint8_t v = (uint8_t)value;
    (void)size;

    switch (offset) {
    case UART_TX:
        if (u->lcr & UART_LCR_DLAB)
            u->dll = v;
        else
            uart8250_transmit(u, v);
        break;
    case UART_IER:
        if (u->lcr & UART_LCR_DLAB) {
            u->dlm = v;
        } else {
            /* Enabling THRI with an empty transmitter raises it at once (Linux's start_tx). */
            if (!(u->ier & UART_IER_THRI) && (v & UART_IER_THRI))
                u->thri_pending = uart8250_tx_ready(u);
            u->ier = v & UART_IER_BITS;
        }
        break;
    case UART_FCR:
        /* Clearing, or switching the FIFOs on or off, empties them (as a 16550 does). */
        if ((v & UART_FCR_CLEAR_RX) || ((v ^ u->fcr) & UART_FCR_ENABLE))
            u->rx_head = u->rx_len = 0;
        u->fcr = v & UART_FCR_BITS;
        uart8250_notify_rx_room(u);
        break;
    case UART_LCR:
        u->lcr = v;
        break;
    case UART_MCR:
        u->mcr = v & UART_MCR_BITS;
        break;
    case UART_SCR:
        u->scr = v;
        break;
    default: /* LSR and MSR are read-only */
        break;
    }
    uart8250_update_irq(u);
}

static void uart8250_reset(struct device *dev)
{
    struct uart8250 *u = to_uart(dev);

    u->ier = u->lcr = u->mcr = u->fcr = u->scr = u->lsr_err = 0;
    u->dll = 0x0c; /* 9600 baud, what firmware leaves behind */
    u->dlm = 0;
    u->msr = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS; /* a terminal is attached */
    u->rx_head = u->rx_len = 0;
    u->thri_pending = u->tx_waiting = false;
    uart8250_update_irq(u);
}

static const struct dev_ops uart8250_ops = {
    .read = uart8250_read,
    .write = uart8250_write,
    .reset = uart8250_reset,
};

void uart8250_init(struct uart8250 *u, const char *name, struct irq_line *irq, struct outbuf *out)
{
    memset(u, 0, sizeof(*u));
    device_init(&u->dev, name, &uart8250_ops);
    u->irq = irq;
    u->out = out;
    uart8250_reset(&u->dev);
}

void uart8250_destroy(struct uart8250 *u)
{
    device_destroy(&u->dev);
}

size_t uart8250_receive(struct uart8250 *u, const uint8_t *buf, size_t len)
{
    size_t n = 0;

    pthread_mutex_lock(&u->dev.lock);
    unsigned depth = uart8250_rx_depth(u->fcr);
    while (n < len && u->rx_len < depth)
        uart8250_rx_push(u, buf[n++]);
    u->rx_wanted = n < len;
    uart8250_update_irq(u);
    pthread_mutex_unlock(&u->dev.lock);
    return n;
}

size_t uart8250_rx_room(struct uart8250 *u)
{
    pthread_mutex_lock(&u->dev.lock);
    unsigned depth = uart8250_rx_depth(u->fcr);
    size_t room = u->rx_len < depth ? depth - u->rx_len : 0;
    pthread_mutex_unlock(&u->dev.lock);
    return room;
}

void uart8250_tx_space(void *ctx)
{
    struct uart8250 *u = ctx;

    pthread_mutex_lock(&u->dev.lock);
    if (u->tx_waiting && uart8250_tx_ready(u)) {
        u->tx_waiting = false;
        u->thri_pending = true;
        uart8250_update_irq(u);
    }
    pthread_mutex_unlock(&u->dev.lock);
}

int uart8250_save(const struct uart8250 *u, struct state_out *out)
{
    uint8_t rx[UART_FIFO_SIZE];

    for (unsigned i = 0; i < u->rx_len; i++)
        rx[i] = u->rx[(u->rx_head + i) % UART_FIFO_SIZE];
    state_put_u32(out, "ier", u->ier);
    state_put_u32(out, "lcr", u->lcr);
    state_put_u32(out, "mcr", u->mcr);
    state_put_u32(out, "fcr", u->fcr);
    state_put_u32(out, "scr", u->scr);
    state_put_u32(out, "dll", u->dll);
    state_put_u32(out, "dlm", u->dlm);
    state_put_u32(out, "lsr-errors", u->lsr_err);
    state_put_u32(out, "msr", u->msr);
    state_put_bool(out, "thri-pending", u->thri_pending);
    state_put_bool(out, "tx-waiting", u->tx_waiting);
    state_put_u32(out, "rx-count", u->rx_len);
    state_put_bytes(out, "rx", rx, u->rx_len);
    return out->err;
}

int uart8250_restore(struct uart8250 *u, struct state_in *in)
{
    uint32_t ier, mcr, fcr, lsr_err, count;
    uint8_t lcr, scr, dll, dlm, msr, rx[UART_FIFO_SIZE];
    bool thri_pending, tx_waiting;

    state_get_bits(in, "ier", UART_IER_BITS, &ier);
    state_get_u8(in, "lcr", &lcr);
    state_get_bits(in, "mcr", UART_MCR_BITS, &mcr);
    state_get_bits(in, "fcr", UART_FCR_BITS, &fcr);
    state_get_u8(in, "scr", &scr);
    state_get_u8(in, "dll", &dll);
    state_get_u8(in, "dlm", &dlm);
    state_get_bits(in, "lsr-errors", UART_LSR_ERRS, &lsr_err);
    state_get_u8(in, "msr", &msr);
    state_get_bool(in, "thri-pending", &thri_pending);
    state_get_bool(in, "tx-waiting", &tx_waiting);
    state_get_u32(in, "rx-count", &count);
    if (count > uart8250_rx_depth((uint8_t)fcr)) {
        state_invalid(in, "property 'rx-count' is %u, more than the receiver's %u bytes", count,
                      uart8250_rx_depth((uint8_t)fcr));
        count = 0;
    }
    state_get_bytes(in, "rx", rx, count);
    if (in->err)
        return in->err;

    pthread_mutex_lock(&u->dev.lock);
    u->ier = (uint8_t)ier;
    u->lcr = lcr;
    u->mcr = (uint8_t)mcr;
    u->fcr = (uint8_t)fcr;
    u->scr = scr;
    u->dll = dll;
    u->dlm = dlm;
    u->lsr_err = (uint8_t)lsr_err;
    u->msr = msr;
    u->thri_pending = thri_pending;
    u->tx_waiting = tx_waiting;
    memcpy(u->rx, rx, count);
    u->rx_head = 0;
    u->rx_len = count;
    /* A THRE that waited for the old console's room: this console may have room now. */
    if (u->tx_waiting && uart8250_tx_ready(u)) {
        u->tx_waiting = false;
        u->thri_pending = true;
    }
    uart8250_update_irq(u);
    pthread_mutex_unlock(&u->dev.lock);
    return 0;
}

/* The machine's COM1 (hwdev.h): the UART on its port and IRQ, as the console's device. */
struct uart8250_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct kvm_irq_gsi irq;
    struct uart8250 uart;
    struct console_port port;
};

static size_t com1_receive(void *dev, const uint8_t *buf, size_t len)
{
    return uart8250_receive(dev, buf, len);
}

static void com1_set_room_hook(void *dev, void (*hook)(void *ctx), void *ctx)
{
    struct uart8250 *u = dev;
    pthread_mutex_lock(&u->dev.lock);
    u->on_rx_room = hook;
    u->on_rx_room_ctx = ctx;
    pthread_mutex_unlock(&u->dev.lock);
}

static int com1_create(struct hwdev *hw, unsigned index, struct errbuf *eb)
{
    struct uart8250_hw *d = container_of(hw, struct uart8250_hw, hw);
    (void)index, (void)eb;
    d->port = (struct console_port){.dev = &d->uart,
                                    .receive = com1_receive,
                                    .set_room_hook = com1_set_room_hook,
                                    .tx_space = uart8250_tx_space};
    return 0;
}

static int com1_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct uart8250_hw *d = container_of(hw, struct uart8250_hw, hw);
    const struct hwdev_host *host = hw->host;

    kvm_irq_gsi_init(&d->irq, host->vm_fd, UART_COM1_IRQ);
    d->irq.trace = host->trace;
    d->irq.name = "com1";
    uart8250_init(&d->uart, "com1", &d->irq.line, host->console_out);
    int ret = bus_register(host->pio, UART_COM1_BASE, UART_NR_REGS, &d->uart.dev);
    if (ret) {
        uart8250_destroy(&d->uart);
        return err_set(eb, ret, "cannot register COM1: %s", strerror(-ret));
    }
    host->console_connect(host->vm, &d->port, true);
    return 0;
}

static int com1_save(struct hwdev *hw, struct state_out *out)
{
    return uart8250_save(&container_of(hw, struct uart8250_hw, hw)->uart, out);
}

static int com1_restore(struct hwdev *hw, struct state_in *in)
{
    return uart8250_restore(&container_of(hw, struct uart8250_hw, hw)->uart, in);
}

static void com1_stats(struct hwdev *hw, struct hwdev_stats *st)
{
    struct uart8250 *u = &container_of(hw, struct uart8250_hw, hw)->uart;
    pthread_mutex_lock(&u->dev.lock);
    st->output_dropped += u->tx_dropped;
    pthread_mutex_unlock(&u->dev.lock);
    st->interrupts += atomic_load(&container_of(hw, struct uart8250_hw, hw)->irq.raised);
}

static void com1_destroy(struct hwdev *hw)
{
    struct uart8250_hw *d = container_of(hw, struct uart8250_hw, hw);
    if (hw->realized) {
        hw->host->console_disconnect(hw->host->vm, &d->port);
        (void)bus_unregister(hw->host->pio, UART_COM1_BASE);
        uart8250_destroy(&d->uart);
    }
}

const struct hwdev_ops uart8250_com1 = {
    .type = "uart8250",
    .compatible = UART8250_STATE_COMPATIBLE,
    .size = sizeof(struct uart8250_hw),
    .name = "com1",
    .create = com1_create,
    .realize = com1_realize,
    .save = com1_save,
    .restore = com1_restore,
    .stats = com1_stats,
    .destroy = com1_destroy,
};
