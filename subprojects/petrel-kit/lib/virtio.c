/* The kit's virtio 1.x PCI driver; see include/kit/virtio.h. */
#include "kit/virtio.h"
#include "kit/io.h"
#include "kit/irq.h"
#include "kit/lapic.h"
#include "kit/printf.h"
#include "kit/string.h"

#include <stdarg.h>

/* Vendor capability types (4.1.4) and struct virtio_pci_cap's fields. */
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR    3
#define VIRTIO_PCI_CAP_DEVICE 4
#define VIRTIO_PCI_CAP_LEN    16
#define VIRTIO_PCI_NOTIFY_LEN 20 /* + notify_off_multiplier */

/* struct virtio_pci_common_cfg (4.1.4.3). */
#define COMMON_DFSELECT   0x00
#define COMMON_DF         0x04
#define COMMON_GFSELECT   0x08
#define COMMON_GF         0x0c
#define COMMON_MSIX       0x10
#define COMMON_NUMQ       0x12
#define COMMON_STATUS     0x14
#define COMMON_GENERATION 0x15
#define COMMON_Q_SELECT   0x16
#define COMMON_Q_SIZE     0x18
#define COMMON_Q_MSIX     0x1a
#define COMMON_Q_ENABLE   0x1c
#define COMMON_Q_NOFF     0x1e
#define COMMON_Q_DESC     0x20
#define COMMON_Q_DRIVER   0x28
#define COMMON_Q_DEVICE   0x30
#define COMMON_LEN        0x38

/* MSI-X capability and table (PCI Local Bus 3.0, 6.8.2). */
#define MSIX_CTRL            2
#define MSIX_TABLE           4
#define MSIX_CTRL_SIZE       0x07ff
#define MSIX_CTRL_MASKALL    0x4000
#define MSIX_CTRL_ENABLE     0x8000
#define MSIX_ENTRY_SIZE      16
#define MSIX_ENTRY_DATA      8
#define MSIX_ENTRY_CTRL      12
#define MSIX_ENTRY_CTRL_MASK 1

#define KIT_4G           0x100000000ull
#define GENERATION_TRIES 8
#define WAIT_MAX_MS      60000 /* the LAPIC timer's count holds ~68 s at divide 16 */
#define RESET_WAIT_MS    10000 /* a reset's limit when d->timeout_ms is 0 */

/* Ring memory, page-aligned: desc, avail and used each start a page. */
struct virtq_mem {
    struct virtq_desc desc[KIT_VIRTQ_MAX] __attribute__((aligned(4096)));
    struct virtq_avail avail __attribute__((aligned(4096)));
    struct virtq_used used __attribute__((aligned(4096)));
};

static struct virtq_mem virtq_pool[KIT_VIRTQ_POOL];
static unsigned virtq_pool_used;

/* Who an MSI vector belongs to: a queue, or a device's configuration vector. */
static struct virtq *msi_queue[IRQ_VECTOR_MSI_END - IRQ_VECTOR_MSI];
static struct virtio_dev *msi_config[IRQ_VECTOR_MSI_END - IRQ_VECTOR_MSI];

static volatile int wait_timer_fired;

/* The BARs virtio_probe() has read (sizing one costs ~10 configuration exits). */
static struct pci_bar probe_bars[PCI_NR_BARS];
static int probe_bar_err[PCI_NR_BARS];
static uint8_t probe_bar_read;

/* A plain access the compiler must make exactly once (ring memory the device shares). */
#define RING_READ(x)     (*(volatile __typeof__(x) *)&(x))
#define RING_WRITE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

static void fence(void)
{
    __asm__ volatile("mfence" : : : "memory");
}

static int fail(struct virtio_dev *d, const char *fmt, ...) KIT_PRINTF(2, 3);
static int fail(struct virtio_dev *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->error, sizeof(d->error), fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the common configuration ---- */

static uint8_t common_r8(const struct virtio_dev *d, unsigned off)
{
    return mmio_read8(d->common + off);
}

static uint16_t common_r16(const struct virtio_dev *d, unsigned off)
{
    return mmio_read16(d->common + off);
}

static uint32_t common_r32(const struct virtio_dev *d, unsigned off)
{
    return mmio_read32(d->common + off);
}

static void common_w8(const struct virtio_dev *d, unsigned off, uint8_t v)
{
    mmio_write8(d->common + off, v);
}

static void common_w16(const struct virtio_dev *d, unsigned off, uint16_t v)
{
    mmio_write16(d->common + off, v);
}

static void common_w32(const struct virtio_dev *d, unsigned off, uint32_t v)
{
    mmio_write32(d->common + off, v);
}

/* 64-bit fields as two 32-bit writes, low half first, as Linux does (4.1.3.1). */
static void common_w64(const struct virtio_dev *d, unsigned off, uint64_t v)
{
    common_w32(d, off, (uint32_t)v);
    common_w32(d, off + 4, (uint32_t)(v >> 32));
}

uint8_t virtio_status(const struct virtio_dev *d)
{
    return common_r8(d, COMMON_STATUS);
}

void virtio_reset(struct virtio_dev *d)
{
    common_w8(d, COMMON_STATUS, 0);
}

/* ---- probing: capabilities and BARs ---- */

/*
 * Where a capability's structure is: its BAR must be a memory BAR below
 * 4 GiB holding offset + length (overflow-checked). 0 or -1.
 */
static int cap_locate(struct virtio_dev *d, const char *what, unsigned bar, uint32_t off,
                      uint32_t len, uint64_t *addr)
{
    struct pci_bar b;

    if (bar >= PCI_NR_BARS)
        return fail(d, "%s capability: BAR %u", what, bar);
    if (!(probe_bar_read & 1u << bar)) {
        probe_bar_err[bar] = pci_bar_read(d->pci.bdf, bar, &probe_bars[bar]);
        probe_bar_read |= (uint8_t)(1u << bar);
    }
    int r = probe_bar_err[bar];
    b = probe_bars[bar];
    if (r || !b.size || b.io)
        return fail(d, "%s capability: BAR %u is %s", what, bar,
                    r         ? "malformed"
                    : !b.size ? "not implemented"
                              : "an I/O BAR");
    if ((uint64_t)off + len > b.size)
        return fail(d, "%s capability: 0x%x+0x%x outside BAR %u (0x%llx bytes)", what, off, len,
                    bar, (unsigned long long)b.size);
    if (b.addr + b.size > KIT_4G || b.addr + b.size < b.addr)
        return fail(d, "BAR %u at 0x%llx is above 4 GiB (the kit maps the low 4 GiB only)", bar,
                    (unsigned long long)b.addr);
    if (!b.addr)
        return fail(d, "BAR %u is not assigned (address 0)", bar);
    *addr = b.addr + off;
    return 0;
}

/* The MSI-X table: its BAR and offset from the capability, checked against the BAR. */
static int msix_probe(struct virtio_dev *d, unsigned cap)
{
    uint16_t ctrl = pci_read16(d->pci.bdf, cap + MSIX_CTRL);
    uint32_t table = pci_read32(d->pci.bdf, cap + MSIX_TABLE);

    d->msix_cap = (uint8_t)cap;
    d->msix_size = (ctrl & MSIX_CTRL_SIZE) + 1;
    return cap_locate(d, "MSI-X", table & 7, table & ~7u, d->msix_size * MSIX_ENTRY_SIZE,
                      &d->msix_table);
}

int virtio_probe(struct virtio_dev *d, const struct pci_func *f)
{
    struct pci_cap caps[PCI_CAP_TTL];
    int have[5] = {0};
    int msix = 0;

    memset(d, 0, sizeof(*d));
    d->pci = *f;
    probe_bar_read = 0;
    int n = pci_caps(f->bdf, caps, PCI_CAP_TTL);
    if (n < 0)
        return fail(d, "the capability list is malformed (a loop or a pointer below 0x40)");
    for (int i = 0; i < n; i++) {
        unsigned off = caps[i].off;

        if (caps[i].id == PCI_CAP_ID_MSIX && !msix) {
            if (msix_probe(d, off))
                return -1;
            msix = 1;
            continue;
        }
        if (caps[i].id != PCI_CAP_ID_VNDR)
            continue;
        /* struct virtio_pci_cap: id, next, cap_len, cfg_type, bar, id, pad[2], offset, length. */
        uint32_t w0 = pci_read32(f->bdf, off);
        unsigned cap_len = (w0 >> 16) & 0xff, type = w0 >> 24;
        if (type < VIRTIO_PCI_CAP_COMMON || type > VIRTIO_PCI_CAP_DEVICE || have[type])
            continue; /* the first of each type is the one to use (4.1.4) */
        if (cap_len < VIRTIO_PCI_CAP_LEN || off + cap_len > 0x100 ||
            (type == VIRTIO_PCI_CAP_NOTIFY && cap_len < VIRTIO_PCI_NOTIFY_LEN))
            return fail(d, "vendor capability at 0x%x: cap_len %u", off, cap_len);
        unsigned bar = pci_read8(f->bdf, off + 4);
        uint32_t boff = pci_read32(f->bdf, off + 8), blen = pci_read32(f->bdf, off + 12);
        static const char *const names[] = {"", "common", "notify", "ISR", "device"};
        uint64_t addr;
        if (cap_locate(d, names[type], bar, boff, blen, &addr))
            return -1;
        switch (type) {
        case VIRTIO_PCI_CAP_COMMON:
            if (blen < COMMON_LEN)
                return fail(d, "common capability: length 0x%x < 0x%x", blen, COMMON_LEN);
            d->common = addr;
            break;
        case VIRTIO_PCI_CAP_NOTIFY:
            d->notify = addr;
            d->notify_len = blen;
            d->notify_mult = pci_read32(f->bdf, off + 16);
            break;
        case VIRTIO_PCI_CAP_ISR:
            if (!blen)
                return fail(d, "ISR capability: length 0");
            d->isr = addr;
            break;
        case VIRTIO_PCI_CAP_DEVICE:
            d->device = addr;
            d->device_len = blen;
            break;
        }
        have[type] = 1;
    }
    if (!have[VIRTIO_PCI_CAP_COMMON] || !have[VIRTIO_PCI_CAP_NOTIFY] || !have[VIRTIO_PCI_CAP_ISR])
        return fail(d, "missing capabilities:%s%s%s", have[1] ? "" : " common",
                    have[2] ? "" : " notify", have[3] ? "" : " ISR");
    if (!msix)
        return fail(d, "no MSI-X capability (the kit's driver needs MSI-X)");
    pci_enable(f->bdf, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    return 0;
}

/* ---- interrupts ---- */

/* Every virtio MSI vector: count it against its queue or device; the waiter re-checks. */
static void virtio_msi(unsigned vector)
{
    unsigned i = vector - IRQ_VECTOR_MSI;

    if (i >= IRQ_VECTOR_MSI_END - IRQ_VECTOR_MSI)
        return;
    if (msi_queue[i]) {
        /* Every queue on the vector (shared when the table is small, as Linux does it). */
        struct virtio_dev *d = msi_queue[i]->dev;
        for (unsigned q = 0; q < KIT_VIRTIO_QUEUES; q++)
            if (d->vq[q].msi.vector == vector)
                d->vq[q].interrupts++;
    } else if (msi_config[i])
        msi_config[i]->config_interrupts++;
}

static void wait_timer(unsigned vector)
{
    (void)vector;
    wait_timer_fired = 1;
}

/* Programs MSI-X table entry i with msg and unmasks it. */
static void msix_entry_set(struct virtio_dev *d, unsigned i, const struct irq_msi *msg)
{
    uint64_t e = d->msix_table + (uint64_t)i * MSIX_ENTRY_SIZE;

    mmio_write32(e + MSIX_ENTRY_CTRL, MSIX_ENTRY_CTRL_MASK);
    mmio_write32(e, (uint32_t)msg->addr);
    mmio_write32(e + 4, (uint32_t)(msg->addr >> 32));
    mmio_write32(e + MSIX_ENTRY_DATA, msg->data);
    mmio_write32(e + MSIX_ENTRY_CTRL, 0);
}

/* ---- status and features ---- */

/* Sets FAILED (2.2.1: the driver gives up) and returns -1. */
static int give_up(struct virtio_dev *d)
{
    common_w8(d, COMMON_STATUS, common_r8(d, COMMON_STATUS) | VIRTIO_STATUS_FAILED);
    return -1;
}

int virtio_reset_wait(struct virtio_dev *d)
{
    unsigned ms = d->timeout_ms ? d->timeout_ms : RESET_WAIT_MS;
    uint8_t st = common_r8(d, COMMON_STATUS);

    if (!st)
        return 0; /* the usual case: done before the status write returned */
    if (ms > WAIT_MAX_MS)
        ms = WAIT_MAX_MS;
    d->resets_waited++;
    /* The device sends no interrupt for it: read the status with interrupts on
     * until it is 0 or the one-shot timer fires. */
    irq_set_handler(IRQ_VECTOR_WAIT, wait_timer);
    wait_timer_fired = 0;
    lapic_timer_oneshot(IRQ_VECTOR_WAIT, ms * LAPIC_TIMER_TICKS_PER_MS);
    __asm__ volatile("sti" : : : "memory");
    while ((st = common_r8(d, COMMON_STATUS)) && !wait_timer_fired)
        cpu_relax();
    lapic_timer_stop(); /* before cli: a tick already raised is taken now, not in a later wait */
    __asm__ volatile("cli" : : : "memory");
    if (st)
        return fail(d, "status stays 0x%02x for %u ms after a reset", st, ms);
    return 0;
}

int virtio_start(struct virtio_dev *d, uint64_t want)
{
    irq_init();
    virtio_reset(d);
    if (virtio_reset_wait(d))
        return -1;
    common_w8(d, COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    common_w8(d, COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);

    common_w32(d, COMMON_DFSELECT, 0);
    uint64_t lo = common_r32(d, COMMON_DF);
    common_w32(d, COMMON_DFSELECT, 1);
    d->features = (uint64_t)common_r32(d, COMMON_DF) << 32 | lo;
    if (!(d->features & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
        fail(d, "the device does not offer VERSION_1 (features 0x%llx)",
             (unsigned long long)d->features);
        return give_up(d);
    }
    d->accepted = (want & d->features) | VIRTIO_BIT(VIRTIO_F_VERSION_1);
    common_w32(d, COMMON_GFSELECT, 0);
    common_w32(d, COMMON_GF, (uint32_t)d->accepted);
    common_w32(d, COMMON_GFSELECT, 1);
    common_w32(d, COMMON_GF, (uint32_t)(d->accepted >> 32));
    common_w8(d, COMMON_STATUS,
              VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    uint8_t st = common_r8(d, COMMON_STATUS);
    if (!(st & VIRTIO_STATUS_FEATURES_OK)) {
        fail(d, "FEATURES_OK did not stick (features 0x%llx, status 0x%02x)",
             (unsigned long long)d->accepted, st);
        return give_up(d);
    }
    d->num_queues = common_r16(d, COMMON_NUMQ);

    /* MSI-X on with every entry masked, then the configuration vector. */
    if (d->msix_size < 2) {
        fail(d,
             "MSI-X table has %u entries; the kit needs one for configuration and one "
             "for the queues",
             d->msix_size);
        return give_up(d);
    }
    uint16_t ctrl = pci_read16(d->pci.bdf, d->msix_cap + MSIX_CTRL);
    pci_write16(d->pci.bdf, d->msix_cap + MSIX_CTRL, ctrl | MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    /* Started before (a reset and a new start): keep the vector. */
    if (!d->config_msi.vector) {
        if (irq_msi_alloc(virtio_msi, &d->config_msi)) {
            fail(d, "no MSI vector left");
            return give_up(d);
        }
        msi_config[d->config_msi.vector - IRQ_VECTOR_MSI] = d;
    }
    msix_entry_set(d, 0, &d->config_msi);
    pci_write16(d->pci.bdf, d->msix_cap + MSIX_CTRL,
                (ctrl | MSIX_CTRL_ENABLE) & ~MSIX_CTRL_MASKALL);
    common_w16(d, COMMON_MSIX, 0);
    if (common_r16(d, COMMON_MSIX) != 0) {
        fail(d, "the device refused MSI-X entry 0 as its configuration vector");
        return give_up(d);
    }
    irq_set_handler(IRQ_VECTOR_WAIT, wait_timer);
    return 0;
}

/* virtio_queue_setup(), the used ring where the device is told (0: the kit's own). */
static int queue_setup(struct virtio_dev *d, unsigned q, unsigned size, uint64_t used)
{
    struct virtq *vq;

    if (q >= KIT_VIRTIO_QUEUES)
        return fail(d, "queue %u: the kit sets up at most %u queues", q, KIT_VIRTIO_QUEUES);
    vq = &d->vq[q];
    if (q >= d->num_queues) {
        fail(d, "queue %u: the device has %u queues", q, d->num_queues);
        return give_up(d);
    }
    if (!vq->desc && virtq_pool_used == KIT_VIRTQ_POOL) {
        fail(d, "queue %u: the kit's %u rings are in use", q, KIT_VIRTQ_POOL);
        return give_up(d);
    }
    common_w16(d, COMMON_Q_SELECT, (uint16_t)q);
    unsigned max = common_r16(d, COMMON_Q_SIZE);
    if (!max) {
        fail(d, "queue %u is not available (size 0)", q);
        return give_up(d);
    }
    if (size > max)
        size = max;
    if (size > KIT_VIRTQ_MAX)
        size = KIT_VIRTQ_MAX;
    while (size & (size - 1))
        size &= size - 1; /* a power of 2 */
    if (!size) {
        fail(d, "queue %u: size 0 asked", q);
        return give_up(d);
    }
    unsigned noff = common_r16(d, COMMON_Q_NOFF);
    uint64_t nat = (uint64_t)noff * d->notify_mult;
    if (nat + 2 > d->notify_len) {
        fail(d, "queue %u: notify offset %u x %u is outside the notify area (0x%x bytes)", q, noff,
             d->notify_mult, d->notify_len);
        return give_up(d);
    }

    /* Set up before (the device was reset since): the same rings and vector. */
    int again = vq->desc != NULL;
    struct virtq_mem *m =
        again ? (struct virtq_mem *)(void *)vq->desc : &virtq_pool[virtq_pool_used++];
    memset(m, 0, sizeof(*m));
    vq->dev = d;
    vq->index = q;
    vq->size = (uint16_t)size;
    vq->desc = m->desc;
    vq->avail = &m->avail;
    vq->used = &m->used;
    vq->avail_idx = vq->last_used = 0;
    vq->interrupts = 0;
    vq->notify = d->notify + nat;
    /* Entry q + 1 where the table has one; else the queues left share its last entry and
     * its MSI vector (Linux's fallback when it cannot have a vector per queue). */
    unsigned entry = q + 1 < d->msix_size ? q + 1 : d->msix_size - 1;
    if (!again) {
        struct virtq *with = 0;
        for (unsigned p = 0; p < q && entry != q + 1; p++)
            if (d->vq[p].desc && d->vq[p].entry == entry)
                with = &d->vq[p];
        if (with) {
            vq->msi = with->msi;
        } else if (irq_msi_alloc(virtio_msi, &vq->msi)) {
            fail(d, "queue %u: no MSI vector left", q);
            return give_up(d);
        } else {
            msi_queue[vq->msi.vector - IRQ_VECTOR_MSI] = vq;
        }
        vq->entry = entry;
    }
    msix_entry_set(d, vq->entry, &vq->msi);

    common_w16(d, COMMON_Q_SIZE, (uint16_t)size);
    common_w64(d, COMMON_Q_DESC, (uint64_t)(uintptr_t)vq->desc);
    common_w64(d, COMMON_Q_DRIVER, (uint64_t)(uintptr_t)vq->avail);
    common_w64(d, COMMON_Q_DEVICE, used ? used : (uint64_t)(uintptr_t)vq->used);
    common_w16(d, COMMON_Q_MSIX, (uint16_t)vq->entry);
    if (common_r16(d, COMMON_Q_MSIX) != vq->entry) {
        fail(d, "queue %u: the device refused MSI-X entry %u", q, vq->entry);
        return give_up(d);
    }
    common_w16(d, COMMON_Q_ENABLE, 1);
    if (common_r16(d, COMMON_Q_ENABLE) != 1) {
        fail(d, "queue %u: queue_enable stays 0", q);
        return give_up(d);
    }
    return 0;
}

int virtio_queue_setup(struct virtio_dev *d, unsigned q, unsigned size)
{
    return queue_setup(d, q, size, 0);
}

int virtio_queue_setup_used(struct virtio_dev *d, unsigned q, unsigned size, uint64_t used)
{
    return queue_setup(d, q, size, used);
}

int virtio_driver_ok(struct virtio_dev *d)
{
    common_w8(d, COMMON_STATUS,
              VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                  VIRTIO_STATUS_DRIVER_OK);
    uint8_t st = common_r8(d, COMMON_STATUS);
    if (st & (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_NEEDS_RESET) || !(st & VIRTIO_STATUS_DRIVER_OK))
        return fail(d, "status 0x%02x after DRIVER_OK", st);
    return 0;
}

/* ---- device configuration ---- */

/* Copies len bytes between buf and the device area, with the widest aligned accesses. */
static void config_copy(struct virtio_dev *d, unsigned off, uint8_t *buf, unsigned len, int write)
{
    for (unsigned i = 0; i < len;) {
        uint64_t a = d->device + off + i;
        unsigned n = (len - i >= 4 && !(a & 3)) ? 4 : (len - i >= 2 && !(a & 1)) ? 2 : 1;
        uint32_t v = 0;

        if (write) {
            memcpy(&v, buf + i, n);
            if (n == 4)
                mmio_write32(a, v);
            else if (n == 2)
                mmio_write16(a, (uint16_t)v);
            else
                mmio_write8(a, (uint8_t)v);
        } else {
            v = n == 4 ? mmio_read32(a) : n == 2 ? mmio_read16(a) : mmio_read8(a);
            memcpy(buf + i, &v, n);
        }
        i += n;
    }
}

int virtio_config_read(struct virtio_dev *d, unsigned off, void *buf, unsigned len)
{
    if (!d->device || (uint64_t)off + len > d->device_len)
        return fail(d, "configuration 0x%x+%u outside the device area (0x%x bytes)", off, len,
                    d->device_len);
    for (unsigned t = 0; t < GENERATION_TRIES; t++) {
        uint8_t gen = common_r8(d, COMMON_GENERATION);
        config_copy(d, off, buf, len, 0);
        if (common_r8(d, COMMON_GENERATION) == gen)
            return 0;
    }
    return fail(d, "the configuration generation keeps changing");
}

int virtio_config_write(struct virtio_dev *d, unsigned off, const void *buf, unsigned len)
{
    if (!d->device || (uint64_t)off + len > d->device_len)
        return fail(d, "configuration 0x%x+%u outside the device area (0x%x bytes)", off, len,
                    d->device_len);
    config_copy(d, off, (uint8_t *)buf, len, 1);
    return 0;
}

/* ---- the queue ---- */

int virtq_desc_set(struct virtq *vq, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                   uint16_t next)
{
    if (i >= vq->size)
        return -1;
    struct virtq_desc *dsc = &vq->desc[i];
    dsc->addr = addr;
    dsc->len = len;
    dsc->flags = flags;
    dsc->next = next;
    return 0;
}

void virtq_publish(struct virtq *vq, uint16_t head)
{
    /* With EVENT_IDX, before the device can see the buffer: a device that uses it
     * at once decides on the interrupt from the used_event it finds then. */
    RING_WRITE(vq->avail->ring[vq->size], vq->last_used);
    RING_WRITE(vq->avail->ring[vq->avail_idx & (vq->size - 1)], head);
    /* x86 keeps stores in order; the compiler must too: the descriptors and the
     * ring entry before the index (2.7.13). */
    __asm__ volatile("" : : : "memory");
    vq->avail_idx++;
    RING_WRITE(vq->avail->idx, vq->avail_idx);
}

void virtq_kick(struct virtq *vq)
{
    fence(); /* the index is visible before the device looks (2.7.13.4) */
    mmio_write16(vq->notify, (uint16_t)vq->index);
}

/*
 * Whether a wait should end: the used index moved (irqs 0), or the queue has
 * taken irqs interrupts; or the device asks for a reset (its status is read
 * only after a configuration interrupt: each read is an exit).
 */
static int wait_check(struct virtq *vq, unsigned irqs)
{
    struct virtio_dev *d = vq->dev;

    if (irqs ? vq->interrupts >= irqs : RING_READ(vq->used->idx) != vq->last_used)
        return 1;
    unsigned seen = d->config_interrupts;
    if (seen != d->config_checked) {
        d->config_checked = seen;
        if (virtio_status(d) & VIRTIO_STATUS_NEEDS_RESET)
            return -VIRTIO_ERR_RESET;
    }
    return 0;
}

/* Sleeps until wait_check() says so or d->timeout_ms passes. 0 or a negative VIRTIO_ERR_*. */
static int wait_for(struct virtq *vq, unsigned irqs)
{
    struct virtio_dev *d = vq->dev;
    int r;

    if (d->timeout_ms) {
        unsigned ms = d->timeout_ms < WAIT_MAX_MS ? d->timeout_ms : WAIT_MAX_MS;
        wait_timer_fired = 0;
        lapic_timer_oneshot(IRQ_VECTOR_WAIT, ms * LAPIC_TIMER_TICKS_PER_MS);
    }
    /* Check, then sleep: sti's shadow keeps an interrupt from slipping in between. */
    while (!(r = wait_check(vq, irqs))) {
        if (d->timeout_ms && wait_timer_fired)
            break;
        kit_idle();
    }
    if (d->timeout_ms)
        lapic_timer_stop();
    if (r < 0) {
        fail(d, "queue %u: the device needs a reset (status 0x%02x)", vq->index, virtio_status(d));
        return r;
    }
    if (!r) {
        fail(d, "queue %u: %s within %u ms (%u interrupts)", vq->index,
             irqs ? "too few interrupts" : "nothing used", d->timeout_ms, vq->interrupts);
        return -VIRTIO_ERR_TIMEOUT;
    }
    return 0;
}

int virtq_wait_interrupts(struct virtq *vq, unsigned count)
{
    return count ? wait_for(vq, count) : 0;
}

int virtq_wait(struct virtq *vq, struct virtq_used_elem *elem)
{
    struct virtio_dev *d = vq->dev;

    /* With EVENT_IDX: interrupt me for the next used element (2.7.10); then
     * re-check the used index (wait_for does) after the fence. */
    RING_WRITE(vq->avail->ring[vq->size], vq->last_used);
    fence();
    int r = wait_for(vq, 0);
    if (r)
        return r;
    uint16_t used = RING_READ(vq->used->idx);
    if ((uint16_t)(used - vq->last_used) > (uint16_t)(vq->avail_idx - vq->last_used)) {
        fail(d, "queue %u: used index %u ran ahead of the available index %u", vq->index, used,
             vq->avail_idx);
        return -VIRTIO_ERR_DEVICE;
    }
    __asm__ volatile("" : : : "memory"); /* the element after the index */
    struct virtq_used_elem *e = &vq->used->ring[vq->last_used & (vq->size - 1)];
    elem->id = RING_READ(e->id);
    elem->len = RING_READ(e->len);
    vq->last_used++;
    return 0;
}

int virtq_xfer(struct virtq *vq, const struct virtq_buf *bufs, unsigned nout, unsigned nin,
               uint32_t *written)
{
    struct virtio_dev *d = vq->dev;
    unsigned n = nout + nin;
    uint64_t room = 0;
    struct virtq_used_elem e;

    if (!n || n > vq->size) {
        fail(d, "queue %u: a chain of %u buffers (queue size %u)", vq->index, n, vq->size);
        return -VIRTIO_ERR_ARG;
    }
    if (vq->avail_idx != vq->last_used) {
        fail(d, "queue %u: a request is still in flight", vq->index);
        return -VIRTIO_ERR_ARG;
    }
    for (unsigned i = 0; i < n; i++) {
        uint16_t flags = (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0) | (i >= nout ? VIRTQ_DESC_F_WRITE : 0);
        virtq_desc_set(vq, i, (uint64_t)(uintptr_t)bufs[i].addr, bufs[i].len, flags,
                       (uint16_t)(i + 1));
        if (i >= nout)
            room += bufs[i].len;
    }
    virtq_publish(vq, 0);
    virtq_kick(vq);
    int r = virtq_wait(vq, &e);
    if (r)
        return r;
    if (e.id != 0) {
        fail(d, "queue %u: used element id %u, 0 was submitted", vq->index, e.id);
        return -VIRTIO_ERR_DEVICE;
    }
    if (e.len > room) {
        fail(d, "queue %u: the device says it wrote %u bytes into %llu", vq->index, e.len,
             (unsigned long long)room);
        return -VIRTIO_ERR_DEVICE;
    }
    *written = e.len;
    return 0;
}
