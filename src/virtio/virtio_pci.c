/*
 * The virtio 1.x modern PCI transport (virtio 1.2, 4.1). See virtio.h for
 * the split between transport and device and for the locking.
 *
 * BAR 0 (32-bit memory, 32 KiB):
 *   0x0000  common configuration (struct virtio_pci_common_cfg, 0x38 bytes)
 *   0x1000  ISR status (1 byte, read-to-clear)
 *   0x2000  device configuration (ops->config_size bytes)
 *   0x3000  notifications: queue q at 0x3000 + 4 q (notify_off q, multiplier 4)
 *   0x4000  MSI-X table (ops->nr_vectors entries: by default one per queue plus one for
 *           configuration; fewer, and the driver shares a vector among its queues)
 *   0x6000  MSI-X PBA
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <event2/event.h>

#include "petrel/virtio.h"

#define GSI_NONE        UINT32_MAX
#define PCI_CLASS_OTHER 0xff0000

static struct virtio_dev *to_vdev(struct pci_dev *pdev)
{
    return container_of(pdev, struct virtio_dev, pci);
}

/* ---- the KVM-touching calls, replaceable by tests ---- */

static int sys_irqfd_init(struct virtio_dev *v, struct irqfd *irq, uint32_t gsi)
{
    const struct virtio_sys_ops *o = v->sys.ops;
    return o && o->irqfd_init ? o->irqfd_init(irq, v->sys.vm_fd, gsi)
                              : irqfd_init(irq, v->sys.vm_fd, gsi);
}

static void sys_irqfd_destroy(struct virtio_dev *v, struct irqfd *irq)
{
    const struct virtio_sys_ops *o = v->sys.ops;
    if (o && o->irqfd_destroy)
        o->irqfd_destroy(irq);
    else
        irqfd_destroy(irq);
}

static int sys_bind(struct virtio_dev *v, struct ioeventfd *io, uint64_t addr)
{
    const struct virtio_sys_ops *o = v->sys.ops;
    return o && o->ioeventfd_bind ? o->ioeventfd_bind(io, addr, 2, false)
                                  : ioeventfd_bind(io, addr, 2, false);
}

static void sys_unbind(struct virtio_dev *v, struct ioeventfd *io)
{
    const struct virtio_sys_ops *o = v->sys.ops;
    if (o && o->ioeventfd_unbind)
        o->ioeventfd_unbind(io);
    else
        ioeventfd_unbind(io);
}

void virtio_warn(struct virtio_dev *v, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct pci_bus *bus = v->pci.bus;
    if (bus && bus->warn)
        bus->warn(bus->warn_ctx, msg);
    else
        fprintf(stderr, "petrel: %s\n", msg);
}

/* Wakes the loop for queue q, as KVM does on a notify write. */
static void kick_write(struct virtio_queue *vq)
{
    uint64_t one = 1;
    ssize_t r = write(vq->kick.fd, &one, sizeof(one));
    (void)r; /* EAGAIN: a wakeup is pending anyway */
}

void virtio_requeue_locked(struct virtio_dev *vdev, unsigned q)
{
    if (q < vdev->nr_queues)
        kick_write(&vdev->queues[q]);
}

/* ---- interrupts ---- */

static void fire(struct virtio_dev *v, uint16_t vector)
{
    if (vector != VIRTIO_NO_VECTOR)
        (void)pci_msix_fire_locked(&v->pci, vector);
}

void virtio_config_changed_locked(struct virtio_dev *vdev)
{
    vdev->config_generation++;
    vdev->isr |= VIRTIO_ISR_CONFIG;
    fire(vdev, vdev->config_vector);
}

/*
 * A queue is broken (virtqueue.h): DEVICE_NEEDS_RESET, and with DRIVER_OK a
 * configuration change notification, as 2.1.2 asks. Logged once per device.
 */
static void needs_reset(struct virtio_dev *v, unsigned q)
{
    if ((v->status & VIRTIO_STATUS_NEEDS_RESET) || v->reset_pending)
        return;
    if (!v->warned) {
        v->warned = true;
        virtio_warn(v, "%s: queue %u: %s; the device needs a reset", v->pci.dev.name, q,
                    v->queues[q].vq.broken_reason);
    }
    v->status |= VIRTIO_STATUS_NEEDS_RESET;
    if (v->sys.needs_reset) {
        char why[192];
        snprintf(why, sizeof(why), "queue %u: %s", q, v->queues[q].vq.broken_reason);
        v->sys.needs_reset(v->sys.needs_reset_ctx, v->sys.name ? v->sys.name : v->pci.dev.name,
                           why);
    }
    if (v->status & VIRTIO_STATUS_DRIVER_OK) {
        v->isr |= VIRTIO_ISR_CONFIG;
        fire(v, v->config_vector);
    }
}

void virtio_notify_queue_locked(struct virtio_dev *vdev, unsigned q)
{
    struct virtio_queue *vq = &vdev->queues[q];

    if (vdev->reset_pending)
        return; /* the driver is done with these rings: it is waiting for status 0 */
    if (vq->vq.broken) {
        needs_reset(vdev, q);
        return;
    }
    if (!virtq_need_interrupt(&vq->vq))
        return;
    vq->interrupts++;
    vdev->isr |= VIRTIO_ISR_QUEUE;
    fire(vdev, vq->vector);
}

/* ---- the loop: kicks ---- */

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct virtio_queue *vq = arg;
    struct virtio_dev *v = vq->vdev;
    unsigned q = (unsigned)(vq - v->queues);
    uint64_t n;
    (void)what;

    ssize_t r = read(fd, &n, sizeof(n));
    (void)r;
    virtio_lock(v);
    if (!v->reset_pending && !v->paused && (v->status & VIRTIO_STATUS_DRIVER_OK) &&
        !(v->status & VIRTIO_STATUS_NEEDS_RESET) && vq->vq.ready && !vq->vq.broken) {
        vq->kicks++;
        v->ops->queue_notify(v, q);
    }
    if (vq->vq.broken)
        needs_reset(v, q);
    virtio_unlock(v);
}

void virtio_serve_queue_locked(struct virtio_dev *vdev, unsigned q, struct virtq_chain *ch,
                               unsigned budget, const struct virtio_queue_handler *h)
{
    struct virtq *vq = virtio_vq(vdev, q);
    int r = 0;

    for (;;) {
        virtq_disable_notify(vq);
        while (budget) {
            if (h->ready && !h->ready(vdev, vq))
                goto out;
            r = virtq_pop(vq, ch);
            if (r <= 0)
                break;
            budget--;
            enum virtio_chain_ret ret = h->chain(vdev, vq, ch);
            if (ret == VIRTIO_CHAIN_WAIT)
                goto out;
            if (ret == VIRTIO_CHAIN_BROKEN) {
                r = -EIO;
                break;
            }
        }
        if (!budget) {
            virtio_requeue_locked(vdev, q); /* more may be waiting: later */
            break;
        }
        if (r < 0 || vq->broken || !virtq_enable_notify(vq))
            break;
    }
out:
    virtio_notify_queue_locked(vdev, q);
}

/* ---- device status, features, queues ---- */

/* The transport's half of a reset, once the device's is done (lock held). */
static void reset_finish(struct virtio_dev *v)
{
    v->reset_pending = false;
    for (unsigned q = 0; q < v->nr_queues; q++) {
        virtq_reset(&v->queues[q].vq);
        v->queues[q].vector = VIRTIO_NO_VECTOR;
    }
    v->config_vector = VIRTIO_NO_VECTOR;
    v->status = 0;
    v->isr = 0;
    v->driver_features = 0;
    v->dfselect = v->gfselect = 0;
    v->queue_sel = 0;
}

/*
 * The driver wrote 0 (vCPU thread, lock held). The device forgets its chains;
 * if something it runs is still in a host syscall, the reset waits for
 * virtio_reset_done() with the old status showing (virtio.h), so that the
 * vCPU returns to the guest at once.
 */
static void vdev_reset(struct virtio_dev *v)
{
    if (v->ops->reset && v->ops->reset(v) == -EINPROGRESS) {
        v->reset_pending = true;
        v->resets_pending++;
        return;
    }
    reset_finish(v);
}

void virtio_reset_done(struct virtio_dev *vdev)
{
    uint64_t one = 1;
    ssize_t r = write(vdev->reset_fd, &one, sizeof(one));
    (void)r; /* EAGAIN: the loop has a wakeup pending anyway */
}

/* The loop's side of virtio_reset_done(): the pending reset completes. */
static void on_reset_done(evutil_socket_t fd, short what, void *arg)
{
    struct virtio_dev *v = arg;
    uint64_t n;
    (void)what;

    ssize_t r = read(fd, &n, sizeof(n));
    (void)r;
    virtio_lock(v);
    if (v->reset_pending)
        reset_finish(v);
    virtio_unlock(v);
}

/* Has the device look at every enabled queue once, as if the driver had kicked each. */
static void kick_ready_queues(struct virtio_dev *v)
{
    for (unsigned q = 0; q < v->nr_queues; q++)
        if (v->queues[q].vq.ready)
            kick_write(&v->queues[q]);
}

/*
 * 3.1.1: the driver only adds bits, or writes 0 to reset. FEATURES_OK sticks
 * only for a subset of what was offered that includes VERSION_1 (a legacy
 * driver finds it clear and gives up). NEEDS_RESET is the device's bit.
 */
static void status_write(struct virtio_dev *v, uint8_t val)
{
    uint8_t old = v->status;

    if (v->sys.trace && TRACE_ON(v->sys.trace, TRACE_VIRTIO)) {
        struct trace_event e = {.kind = TRACE_VIRTIO,
                                .op = val ? TRACE_OP_STATUS : TRACE_OP_RESET,
                                .addr = old,
                                .value = val,
                                .dev = v->sys.name ? v->sys.name : v->pci.dev.name};
        trace_emit(v->sys.trace, -1, &e);
    }

    if (!val) {
        vdev_reset(v);
        return;
    }
    uint8_t now = (uint8_t)((val & ~VIRTIO_STATUS_NEEDS_RESET) | (old & VIRTIO_STATUS_NEEDS_RESET));
    if ((now & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
        bool ok = !(v->driver_features & ~v->device_features) &&
                  (v->driver_features & (1ULL << VIRTIO_F_VERSION_1));
        if (!ok)
            now &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
    }
    v->status = now;
    /* Buffers made available before DRIVER_OK were not looked at: look now. */
    if ((now & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK))
        kick_ready_queues(v);
}

static void queue_enable(struct virtio_dev *v, unsigned q)
{
    struct virtq *vq = &v->queues[q].vq;

    if (vq->ready || !(v->status & VIRTIO_STATUS_FEATURES_OK))
        return;
    if (virtq_enable(vq, v->driver_features))
        needs_reset(v, q);
}

static uint16_t vector_check(const struct virtio_dev *v, uint16_t vector)
{
    return vector < v->nr_vectors ? vector : VIRTIO_NO_VECTOR;
}

/* The common configuration as the driver reads it now. */
static void common_fill(const struct virtio_dev *v, uint8_t *b)
{
    const struct virtio_queue *sel = v->queue_sel < v->nr_queues ? &v->queues[v->queue_sel] : NULL;
    uint32_t df = v->dfselect < 2 ? (uint32_t)(v->device_features >> (32 * v->dfselect)) : 0;
    uint32_t gf = v->gfselect < 2 ? (uint32_t)(v->driver_features >> (32 * v->gfselect)) : 0;

    memset(b, 0, VIRTIO_PCI_COMMON_LEN);
#define PUT(off, val, n)                                                                           \
    do {                                                                                           \
        uint64_t x_ = (val);                                                                       \
        for (unsigned i_ = 0; i_ < (n); i_++)                                                      \
            b[(off) + i_] = (uint8_t)(x_ >> (8 * i_));                                             \
    } while (0)
    PUT(VIRTIO_COMMON_DFSELECT, v->dfselect, 4);
    PUT(VIRTIO_COMMON_DF, df, 4);
    PUT(VIRTIO_COMMON_GFSELECT, v->gfselect, 4);
    PUT(VIRTIO_COMMON_GF, gf, 4);
    PUT(VIRTIO_COMMON_MSIX, v->config_vector, 2);
    PUT(VIRTIO_COMMON_NUMQ, v->nr_queues, 2);
    PUT(VIRTIO_COMMON_STATUS, v->status, 1);
    PUT(VIRTIO_COMMON_CFGGENERATION, v->config_generation, 1);
    PUT(VIRTIO_COMMON_Q_SELECT, v->queue_sel, 2);
    if (sel) {
        PUT(VIRTIO_COMMON_Q_SIZE, sel->vq.size, 2);
        PUT(VIRTIO_COMMON_Q_MSIX, sel->vector, 2);
        PUT(VIRTIO_COMMON_Q_ENABLE, sel->vq.ready, 2);
        PUT(VIRTIO_COMMON_Q_NOFF, v->queue_sel, 2);
        PUT(VIRTIO_COMMON_Q_DESC, sel->vq.desc_gpa, 8);
        PUT(VIRTIO_COMMON_Q_AVAIL, sel->vq.avail_gpa, 8);
        PUT(VIRTIO_COMMON_Q_USED, sel->vq.used_gpa, 8);
    }
#undef PUT
}

static uint64_t get_le(const uint8_t *b, unsigned n)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++)
        x |= (uint64_t)b[i] << (8 * i);
    return x;
}

/* The fields of the common configuration; what a write to each does. */
static const struct {
    uint8_t off, len;
} common_fields[] = {
    {VIRTIO_COMMON_DFSELECT, 4}, {VIRTIO_COMMON_GFSELECT, 4}, {VIRTIO_COMMON_GF, 4},
    {VIRTIO_COMMON_MSIX, 2},     {VIRTIO_COMMON_STATUS, 1},   {VIRTIO_COMMON_Q_SELECT, 2},
    {VIRTIO_COMMON_Q_SIZE, 2},   {VIRTIO_COMMON_Q_MSIX, 2},   {VIRTIO_COMMON_Q_ENABLE, 2},
    {VIRTIO_COMMON_Q_DESC, 8},   {VIRTIO_COMMON_Q_AVAIL, 8},  {VIRTIO_COMMON_Q_USED, 8},
};

static void common_field_write(struct virtio_dev *v, unsigned off, uint64_t x)
{
    struct virtio_queue *sel = v->queue_sel < v->nr_queues ? &v->queues[v->queue_sel] : NULL;
    bool setup = sel && !sel->vq.ready; /* queue registers are frozen once enabled */

    switch (off) {
    case VIRTIO_COMMON_DFSELECT:
        v->dfselect = (uint32_t)x;
        break;
    case VIRTIO_COMMON_GFSELECT:
        v->gfselect = (uint32_t)x;
        break;
    case VIRTIO_COMMON_GF:
        if (v->gfselect < 2 && !(v->status & VIRTIO_STATUS_FEATURES_OK)) {
            unsigned sh = 32 * v->gfselect;
            v->driver_features = (v->driver_features & ~(0xffffffffULL << sh)) | (x << sh);
        }
        break;
    case VIRTIO_COMMON_MSIX:
        v->config_vector = vector_check(v, (uint16_t)x);
        break;
    case VIRTIO_COMMON_STATUS:
        status_write(v, (uint8_t)x);
        break;
    case VIRTIO_COMMON_Q_SELECT:
        v->queue_sel = (uint16_t)x;
        break;
    case VIRTIO_COMMON_Q_SIZE:
        if (setup)
            sel->vq.size = (uint16_t)x; /* checked by virtq_enable() */
        break;
    case VIRTIO_COMMON_Q_MSIX:
        if (sel)
            sel->vector = vector_check(v, (uint16_t)x);
        break;
    case VIRTIO_COMMON_Q_ENABLE:
        if (sel && x == 1)
            queue_enable(v, v->queue_sel);
        break;
    case VIRTIO_COMMON_Q_DESC:
        if (setup)
            sel->vq.desc_gpa = x;
        break;
    case VIRTIO_COMMON_Q_AVAIL:
        if (setup)
            sel->vq.avail_gpa = x;
        break;
    case VIRTIO_COMMON_Q_USED:
        if (setup)
            sel->vq.used_gpa = x;
        break;
    }
}

/*
 * A write of any size: merged into the registers' current bytes, then every
 * writable field it touched is written whole (so the two 32-bit halves Linux
 * writes a 64-bit address with each land, and read-only fields stay).
 */
static void common_write(struct virtio_dev *v, unsigned off, uint64_t value, unsigned size)
{
    uint8_t b[VIRTIO_PCI_COMMON_LEN];

    if (off >= VIRTIO_PCI_COMMON_LEN || v->reset_pending)
        return; /* a pending reset: status 0 first (4.1.4.3.2), then anything else */
    common_fill(v, b);
    for (unsigned i = 0; i < size && off + i < VIRTIO_PCI_COMMON_LEN; i++)
        b[off + i] = (uint8_t)(value >> (8 * i));
    for (size_t f = 0; f < sizeof(common_fields) / sizeof(common_fields[0]); f++) {
        unsigned fo = common_fields[f].off, fl = common_fields[f].len;
        if (off < fo + fl && fo < off + size)
            common_field_write(v, fo, get_le(b + fo, fl));
    }
}

static uint64_t common_read(struct virtio_dev *v, unsigned off, unsigned size)
{
    uint8_t b[VIRTIO_PCI_COMMON_LEN];
    uint64_t x = 0;

    common_fill(v, b);
    for (unsigned i = 0; i < size; i++)
        if (off + i < VIRTIO_PCI_COMMON_LEN)
            x |= (uint64_t)b[off + i] << (8 * i);
    return x;
}

/* ---- the BAR ---- */

static uint64_t virtio_bar_read(struct pci_dev *pdev, unsigned bar, uint64_t offset, unsigned size)
{
    struct virtio_dev *v = to_vdev(pdev);

    if (bar != VIRTIO_PCI_BAR)
        return 0;
    if (offset < VIRTIO_PCI_ISR_OFF)
        return common_read(v, (unsigned)offset, size);
    if (offset == VIRTIO_PCI_ISR_OFF) {
        uint8_t isr = v->isr;
        v->isr = 0;
        return isr;
    }
    if (offset >= VIRTIO_PCI_DEVICE_OFF && offset < VIRTIO_PCI_DEVICE_OFF + v->ops->config_size) {
        unsigned o = (unsigned)(offset - VIRTIO_PCI_DEVICE_OFF);
        if (o + size <= v->ops->config_size && v->ops->config_read)
            return v->ops->config_read(v, o, size);
    }
    return 0;
}

static void virtio_bar_write(struct pci_dev *pdev, unsigned bar, uint64_t offset, uint64_t value,
                             unsigned size)
{
    struct virtio_dev *v = to_vdev(pdev);

    if (bar != VIRTIO_PCI_BAR || v->reset_pending)
        return; /* nothing but the status read means anything until the reset is done */
    if (offset < VIRTIO_PCI_ISR_OFF) {
        common_write(v, (unsigned)offset, value, size);
    } else if (offset >= VIRTIO_PCI_DEVICE_OFF &&
               offset < VIRTIO_PCI_DEVICE_OFF + v->ops->config_size) {
        unsigned o = (unsigned)(offset - VIRTIO_PCI_DEVICE_OFF);
        if (o + size <= v->ops->config_size && v->ops->config_write)
            v->ops->config_write(v, o, value, size);
    } else if (offset >= VIRTIO_PCI_NOTIFY_OFF &&
               offset < VIRTIO_PCI_NOTIFY_OFF + (uint64_t)VIRTIO_PCI_NOTIFY_MULT * v->nr_queues) {
        /* A notify write KVM did not catch (not bound yet, another size): the same path. */
        kick_write(&v->queues[(offset - VIRTIO_PCI_NOTIFY_OFF) / VIRTIO_PCI_NOTIFY_MULT]);
    }
}

/* The BAR moved: the queues' ioeventfds follow it (or wait while it does not decode). */
static void virtio_bar_moved(struct pci_dev *pdev, unsigned bar, uint64_t old_addr,
                             uint64_t new_addr)
{
    struct virtio_dev *v = to_vdev(pdev);
    (void)old_addr;

    if (bar != VIRTIO_PCI_BAR)
        return;
    v->bar_addr = new_addr;
    for (unsigned q = 0; q < v->nr_queues; q++) {
        struct ioeventfd *io = &v->queues[q].kick;
        if (new_addr == PCI_BAR_UNMAPPED) {
            sys_unbind(v, io);
            continue;
        }
        uint64_t a = new_addr + VIRTIO_PCI_NOTIFY_OFF + (uint64_t)VIRTIO_PCI_NOTIFY_MULT * q;
        int ret = sys_bind(v, io, a);
        if (ret && !v->warned_bind) { /* notifies still work, through petrel */
            v->warned_bind = true;
            virtio_warn(v, "%s: cannot bind queue %u's notify address 0x%" PRIx64 ": %s",
                        pdev->dev.name, q, a, strerror(-ret));
        }
    }
}

/* pci.h's contract: route while unmasked, keep the route while masked. */
static void virtio_msix_vector(struct pci_dev *pdev, unsigned vector,
                               const struct pci_msix_vector *m)
{
    struct virtio_dev *v = to_vdev(pdev);

    if (!m->masked && v->sys.routing && v->gsi[vector] != GSI_NONE)
        (void)irq_routing_msi_set(v->sys.routing, v->gsi[vector], m->addr, m->data);
}

static int virtio_msix_signal(struct pci_dev *pdev, unsigned vector)
{
    struct virtio_dev *v = to_vdev(pdev);
    return v->irqfds[vector].ready ? irqfd_signal(&v->irqfds[vector]) : -ENODEV;
}

static const struct pci_dev_ops virtio_pci_ops = {
    .bar_read = virtio_bar_read,
    .bar_write = virtio_bar_write,
    .bar_moved = virtio_bar_moved,
    .msix_vector = virtio_msix_vector,
    .msix_signal = virtio_msix_signal,
};

/* ---- set-up ---- */

/* A struct virtio_pci_cap (4.1.4), plus the notify multiplier when mult is nonzero. */
static int add_cap(struct pci_dev *pdev, uint8_t type, uint32_t off, uint32_t len, uint32_t mult)
{
    uint8_t c[VIRTIO_PCI_NOTIFY_CAP_LEN] = {0};
    unsigned n = mult ? VIRTIO_PCI_NOTIFY_CAP_LEN : VIRTIO_PCI_CAP_LEN;

    c[0] = PCI_CAP_ID_VNDR;
    c[2] = (uint8_t)n;
    c[3] = type;
    c[4] = VIRTIO_PCI_BAR;
    for (unsigned i = 0; i < 4; i++) {
        c[8 + i] = (uint8_t)(off >> (8 * i));
        c[12 + i] = (uint8_t)(len >> (8 * i));
        c[16 + i] = (uint8_t)(mult >> (8 * i));
    }
    int ret = pci_cap_add(pdev, c, n, NULL);
    return ret < 0 ? ret : 0;
}

static bool ops_valid(const struct virtio_dev_ops *ops)
{
    unsigned m = ops->queue_max_size;
    return ops->num_queues >= 1 && ops->num_queues <= VIRTIO_MAX_QUEUES && m &&
           m <= VIRTQ_MAX_SIZE && !(m & (m - 1)) && ops->config_size <= VIRTIO_PCI_DEVICE_MAX &&
           ops->queue_notify &&
           (!ops->nr_vectors || (ops->nr_vectors >= 2 && ops->nr_vectors <= ops->num_queues + 1));
}

/* The function's BAR, its virtio capabilities and MSI-X. */
static int init_bar(struct virtio_dev *vdev)
{
    const struct virtio_dev_ops *ops = vdev->ops;
    int ret = pci_bar_set(&vdev->pci, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE, 0);
    if (!ret)
        ret = add_cap(&vdev->pci, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
                      VIRTIO_PCI_COMMON_LEN, 0);
    if (!ret)
        ret = add_cap(&vdev->pci, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
                      VIRTIO_PCI_NOTIFY_MULT * vdev->nr_queues, VIRTIO_PCI_NOTIFY_MULT);
    if (!ret)
        ret = add_cap(&vdev->pci, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, 0);
    if (!ret && ops->config_size)
        ret = add_cap(&vdev->pci, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF,
                      ops->config_size, 0);
    if (ret)
        return ret;
    ret = pci_msix_init(&vdev->pci, vdev->nr_vectors, VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_TABLE,
                        VIRTIO_PCI_MSIX_PBA);
    return ret < 0 ? ret : 0;
}

/* A GSI and an irqfd per vector. */
static int init_vectors(struct virtio_dev *vdev)
{
    for (unsigned i = 0; i < vdev->nr_vectors; i++) {
        if (vdev->sys.routing) {
            int ret = irq_routing_msi_alloc(vdev->sys.routing, &vdev->gsi[i]);
            if (ret) {
                vdev->gsi[i] = GSI_NONE;
                return ret;
            }
        }
        int ret = sys_irqfd_init(vdev, &vdev->irqfds[i], vdev->gsi[i]);
        if (ret)
            return ret;
    }
    return 0;
}

/* The loop's events: virtio_reset_done()'s eventfd and each queue's kick. */
static int init_events(struct virtio_dev *vdev)
{
    struct event_base *base = vdev->sys.base;

    vdev->reset_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (vdev->reset_fd < 0)
        return -errno;
    vdev->reset_ev = event_new(base, vdev->reset_fd, EV_READ | EV_PERSIST, on_reset_done, vdev);
    if (!vdev->reset_ev || event_add(vdev->reset_ev, NULL))
        return -ENOMEM;
    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        struct virtio_queue *vq = &vdev->queues[q];
        int ret = ioeventfd_init(&vq->kick, vdev->sys.vm_fd);
        if (ret)
            return ret;
        vq->ev = event_new(base, vq->kick.fd, EV_READ | EV_PERSIST, on_kick, vq);
        if (!vq->ev || event_add(vq->ev, NULL))
            return -ENOMEM;
    }
    return 0;
}

int virtio_pci_init(struct virtio_dev *vdev, const char *name, const struct virtio_dev_ops *ops,
                    uint64_t features, const struct virtio_sys *sys)
{
    int ret;

    memset(vdev, 0, sizeof(*vdev));
    if (!ops_valid(ops))
        return -EINVAL;
    struct pci_id id = {
        .vendor = VIRTIO_PCI_VENDOR,
        .device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->device_type),
        .subsystem_vendor = VIRTIO_PCI_VENDOR,
        .subsystem = VIRTIO_PCI_SUBSYS,
        .class_code = ops->class_code ? ops->class_code : PCI_CLASS_OTHER,
        .revision = VIRTIO_PCI_REVISION,
    };
    pci_dev_init(&vdev->pci, name, &id, &virtio_pci_ops);
    /* Traces and GET /stats name it as the machine does ("vda"), not by its long name. */
    vdev->pci.dev.label = sys->name;
    for (unsigned i = 0; i < PCI_NR_BARS; i++)
        vdev->pci.bars[i].region.label = sys->name;
    vdev->ops = ops;
    vdev->sys = *sys;
    vdev->device_features = features | 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_INDIRECT_DESC |
                            1ULL << VIRTIO_F_EVENT_IDX;
    vdev->config_vector = VIRTIO_NO_VECTOR;
    vdev->bar_addr = PCI_BAR_UNMAPPED;
    vdev->reset_fd = -1;
    vdev->nr_queues = ops->num_queues;
    vdev->nr_vectors = ops->nr_vectors ? ops->nr_vectors : ops->num_queues + 1;

    vdev->queues = calloc(vdev->nr_queues, sizeof(*vdev->queues));
    vdev->gsi = malloc(vdev->nr_vectors * sizeof(*vdev->gsi));
    vdev->irqfds = calloc(vdev->nr_vectors, sizeof(*vdev->irqfds));
    if (!vdev->queues || !vdev->gsi || !vdev->irqfds) {
        ret = -ENOMEM;
        goto err_destroy;
    }
    for (unsigned i = 0; i < vdev->nr_vectors; i++)
        vdev->gsi[i] = GSI_NONE;
    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        vdev->queues[q].vdev = vdev;
        vdev->queues[q].vector = VIRTIO_NO_VECTOR;
        vdev->queues[q].kick.fd = -1;
        virtq_init(&vdev->queues[q].vq, sys->gm, ops->queue_max_size);
        vdev->queues[q].vq.trace = sys->trace;
        vdev->queues[q].vq.trace_dev = sys->name ? sys->name : vdev->pci.dev.name;
        vdev->queues[q].vq.trace_queue = (uint16_t)q;
    }
    ret = init_bar(vdev);
    if (!ret)
        ret = init_vectors(vdev);
    if (!ret)
        ret = init_events(vdev);
    if (ret)
        goto err_destroy;
    return 0;

err_destroy:
    virtio_pci_destroy(vdev);
    return ret;
}

int virtio_pci_add(struct virtio_dev *vdev, struct pci_bus *bus)
{
    return pci_bus_add(bus, &vdev->pci, -1);
}

void virtio_pci_destroy(struct virtio_dev *vdev)
{
    if (!vdev->ops)
        return;
    if (vdev->queues) {
        for (unsigned q = 0; q < vdev->nr_queues; q++) {
            struct virtio_queue *vq = &vdev->queues[q];
            if (vq->ev)
                event_free(vq->ev);
            if (vq->kick.ready) {
                sys_unbind(vdev, &vq->kick);
                ioeventfd_destroy(&vq->kick);
            }
        }
    }
    if (vdev->reset_ev)
        event_free(vdev->reset_ev);
    if (vdev->reset_fd >= 0)
        close(vdev->reset_fd);
    vdev->reset_ev = NULL;
    vdev->reset_fd = -1;
    if (vdev->irqfds)
        for (unsigned i = 0; i < vdev->nr_vectors; i++)
            sys_irqfd_destroy(vdev, &vdev->irqfds[i]);
    if (vdev->gsi && vdev->sys.routing)
        for (unsigned i = 0; i < vdev->nr_vectors; i++)
            if (vdev->gsi[i] != GSI_NONE)
                irq_routing_msi_free(vdev->sys.routing, vdev->gsi[i]);
    pci_dev_destroy(&vdev->pci);
    free(vdev->queues);
    free(vdev->gsi);
    free(vdev->irqfds);
    vdev->queues = NULL;
    vdev->gsi = NULL;
    vdev->irqfds = NULL;
    vdev->ops = NULL;
}

void virtio_pci_pause(struct virtio_dev *vdev)
{
    virtio_lock(vdev);
    vdev->paused = true;
    virtio_unlock(vdev);
}

void virtio_pci_resume(struct virtio_dev *vdev)
{
    virtio_lock(vdev);
    vdev->paused = false;
    kick_ready_queues(vdev);
    virtio_unlock(vdev);
}

struct virtio_sys virtio_sys_of(const struct hwdev_host *host)
{
    return (struct virtio_sys){
        .vm_fd = host->vm_fd,
        .gm = host->mem,
        .routing = host->routing,
        .base = host->base,
        .trace = host->trace,
        .needs_reset = host->device_needs_reset,
        .needs_reset_ctx = host->vm,
    };
}

int virtio_pci_plug(struct virtio_dev *vdev, const struct hwdev_host *host, const char *name,
                    struct errbuf *eb)
{
    int ret = virtio_pci_add(vdev, host->pci);
    if (ret) {
        virtio_pci_destroy(vdev);
        return err_set(eb, ret, "cannot plug %s into PCI: %s", name, strerror(-ret));
    }
    return 0;
}

/* ---- saving and restoring ---- */

#define STATUS_BITS                                                                                \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |                  \
     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

static void queue_save(const struct virtio_queue *vq, unsigned q, struct state_out *out)
{
    struct virtq_state st;
    char name[16];

    virtq_save(&vq->vq, &st);
    snprintf(name, sizeof(name), "queue%u", q);
    state_begin(out, name, VIRTIO_QUEUE_STATE_COMPATIBLE);
    state_put_u32(out, "size", st.size);
    state_put_bool(out, "enabled", st.ready);
    state_put_u32(out, "vector", vq->vector);
    state_put_u64(out, "desc-addr", st.desc_gpa);
    state_put_u64(out, "avail-addr", st.avail_gpa);
    state_put_u64(out, "used-addr", st.used_gpa);
    state_put_u32(out, "last-avail-idx", st.last_avail_idx);
    state_put_u32(out, "used-idx", st.used_idx);
    state_put_u32(out, "signalled-used", st.signalled_used);
    state_put_bool(out, "signalled-used-valid", st.signalled_used_valid);
    state_put_bool(out, "broken", st.broken);
    state_end(out);
}

int virtio_pci_save(const struct virtio_dev *vdev, struct state_out *out)
{
    if (vdev->reset_pending)
        return state_refuse(out, -EBUSY,
                            "%s: the driver's reset is still waiting for host I/O to finish; a "
                            "snapshot can be taken once it has",
                            vdev->pci.dev.name);
    state_begin(out, "virtio", VIRTIO_PCI_STATE_COMPATIBLE);
    state_put_u32(out, "num-queues", vdev->nr_queues);
    state_put_u32(out, "device-status", vdev->status);
    state_put_u64(out, "device-features", vdev->device_features);
    state_put_u64(out, "driver-features", vdev->driver_features);
    state_put_u32(out, "device-feature-select", vdev->dfselect);
    state_put_u32(out, "driver-feature-select", vdev->gfselect);
    state_put_u32(out, "queue-select", vdev->queue_sel);
    state_put_u32(out, "config-vector", vdev->config_vector);
    state_put_u32(out, "config-generation", vdev->config_generation);
    state_put_u32(out, "isr", vdev->isr);
    state_begin(out, "pci", PCI_DEV_STATE_COMPATIBLE);
    if (pci_dev_save(&vdev->pci, out) == 0)
        state_end(out);
    for (unsigned q = 0; q < vdev->nr_queues; q++)
        queue_save(&vdev->queues[q], q, out);
    state_end(out);
    return out->err;
}

/* The transport's registers as a snapshot has them, checked. */
struct saved_regs {
    uint32_t status, isr, dfselect, gfselect;
    uint64_t device_features, driver_features;
    uint16_t config_vector, queue_sel;
    uint8_t config_generation;
};

/* A vector a register can hold: one of the table's, or none. */
static void vector_get(const struct virtio_dev *v, struct state_in *in, const char *name,
                       uint16_t *vector)
{
    state_get_u16(in, name, vector);
    if (*vector != VIRTIO_NO_VECTOR && *vector >= v->nr_vectors)
        state_invalid(in, "property '%s' is %u: the device has vectors 0 to %u and 0xffff (none)",
                      name, *vector, v->nr_vectors - 1);
}

static void regs_get(const struct virtio_dev *v, struct state_in *in, struct saved_regs *r)
{
    uint32_t nq;

    state_get_u32(in, "num-queues", &nq);
    if (!in->err && nq != v->nr_queues)
        state_invalid(in, "property 'num-queues' is %u; this device has %u", nq, v->nr_queues);
    state_get_u64(in, "device-features", &r->device_features);
    if (!in->err && r->device_features != v->device_features)
        state_invalid(in, "property 'device-features' is %#llx; this device offers %#llx",
                      (unsigned long long)r->device_features,
                      (unsigned long long)v->device_features);
    state_get_u64(in, "driver-features", &r->driver_features);
    if (!in->err && (r->driver_features & ~v->device_features))
        state_invalid(in, "property 'driver-features' has bits %#llx the device does not offer",
                      (unsigned long long)(r->driver_features & ~v->device_features));
    state_get_bits(in, "device-status", STATUS_BITS, &r->status);
    /* status_write() sets FEATURES_OK only for a modern driver. */
    if ((r->status & VIRTIO_STATUS_FEATURES_OK) &&
        !(r->driver_features & (1ULL << VIRTIO_F_VERSION_1)))
        state_invalid(in, "property 'status' has FEATURES_OK without VERSION_1 in "
                          "'driver-features'");
    state_get_u32(in, "device-feature-select", &r->dfselect);
    state_get_u32(in, "driver-feature-select", &r->gfselect);
    state_get_u16(in, "queue-select", &r->queue_sel);
    vector_get(v, in, "config-vector", &r->config_vector);
    state_get_u8(in, "config-generation", &r->config_generation);
    state_get_bits(in, "isr", VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG, &r->isr);
}

/* Queue q's subnode into vq (a reset queue) and *vector, checked; held: chains the device holds. */
static void queue_get(const struct virtio_dev *v, struct state_in *in, unsigned q,
                      const struct saved_regs *r, uint16_t held, struct virtq *vq, uint16_t *vector)
{
    struct virtq_state st;
    struct state_in qin;
    char name[16], why[256];

    snprintf(name, sizeof(name), "queue%u", q);
    if (state_open(in, name, VIRTIO_QUEUE_STATE_COMPATIBLE, &qin)) {
        in->err = qin.err;
        return;
    }
    state_get_u16(&qin, "size", &st.size);
    state_get_bool(&qin, "enabled", &st.ready);
    vector_get(v, &qin, "vector", vector);
    state_get_u64(&qin, "desc-addr", &st.desc_gpa);
    state_get_u64(&qin, "avail-addr", &st.avail_gpa);
    state_get_u64(&qin, "used-addr", &st.used_gpa);
    state_get_u16(&qin, "last-avail-idx", &st.last_avail_idx);
    state_get_u16(&qin, "used-idx", &st.used_idx);
    state_get_u16(&qin, "signalled-used", &st.signalled_used);
    state_get_bool(&qin, "signalled-used-valid", &st.signalled_used_valid);
    state_get_bool(&qin, "broken", &st.broken);
    /* queue_enable() takes a queue only after FEATURES_OK. */
    if (st.ready && !(r->status & VIRTIO_STATUS_FEATURES_OK))
        state_invalid(&qin, "property 'enabled' is set, but 'device-status' has no FEATURES_OK");
    if (st.ready && !st.broken && (uint16_t)(st.last_avail_idx - st.used_idx) != held)
        state_invalid(&qin,
                      "properties 'last-avail-idx' %u and 'used-idx' %u have %u chains in "
                      "flight; the device holds %u",
                      st.last_avail_idx, st.used_idx, (uint16_t)(st.last_avail_idx - st.used_idx),
                      held);
    if (!qin.err && virtq_restore(vq, &st, r->driver_features, why, sizeof(why)))
        state_invalid(&qin, "%s", why);
    in->err = qin.err;
}

/* The checked state goes in (lock held). */
static void regs_apply(struct virtio_dev *v, const struct saved_regs *r, const struct virtq *vqs,
                       const uint16_t *vectors)
{
    v->status = (uint8_t)r->status;
    v->driver_features = r->driver_features;
    v->dfselect = r->dfselect;
    v->gfselect = r->gfselect;
    v->queue_sel = r->queue_sel;
    v->config_vector = r->config_vector;
    v->config_generation = r->config_generation;
    v->isr = (uint8_t)r->isr;
    for (unsigned q = 0; q < v->nr_queues; q++) {
        v->queues[q].vq = vqs[q];
        v->queues[q].vector = vectors[q];
    }
    /* Kicks pending in the old process (the driver's, a device's requeue) are not in the state. */
    if (v->status & VIRTIO_STATUS_DRIVER_OK)
        kick_ready_queues(v);
}

int virtio_pci_restore(struct virtio_dev *vdev, struct state_in *parent, const uint16_t *held)
{
    struct saved_regs r;
    struct state_in in, pci;
    uint16_t vectors[VIRTIO_MAX_QUEUES];

    if (state_open(parent, "virtio", VIRTIO_PCI_STATE_COMPATIBLE, &in))
        return parent->err = in.err;
    struct virtq *vqs = calloc(vdev->nr_queues, sizeof(*vqs));
    if (!vqs)
        return parent->err = err_set(in.eb, -ENOMEM, "out of memory for virtqueue state");
    regs_get(vdev, &in, &r);
    for (unsigned q = 0; q < vdev->nr_queues && !in.err; q++) {
        vqs[q] = vdev->queues[q].vq;
        virtq_reset(&vqs[q]);
        queue_get(vdev, &in, q, &r, held ? held[q] : 0, &vqs[q], &vectors[q]);
    }
    /* The function last: it applies itself (BARs, kicks bound, MSI-X routes) when it passes. */
    if (!in.err) {
        if (state_open(&in, "pci", PCI_DEV_STATE_COMPATIBLE, &pci) == 0)
            pci.err = pci_dev_restore(&vdev->pci, &pci);
        in.err = pci.err;
    }
    if (!in.err) {
        virtio_lock(vdev);
        regs_apply(vdev, &r, vqs, vectors);
        virtio_unlock(vdev);
    }
    free(vqs);
    return parent->err = in.err;
}

void virtio_stats(struct virtio_dev *vdev, struct hwdev_stats *st)
{
    virtio_lock(vdev);
    st->interrupts += vdev->pci.msix.sent;
    for (unsigned q = 0; q < vdev->nr_queues; q++) {
        const struct virtq *vq = &vdev->queues[q].vq;
        st->requests += vq->chains;
        st->bytes_out += vq->bytes_out;
        st->bytes_in += vq->bytes_in;
    }
    virtio_unlock(vdev);
}
