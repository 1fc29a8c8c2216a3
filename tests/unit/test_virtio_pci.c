/*
 * The virtio-pci transport driven as a driver drives it: configuration
 * space and the BAR through a real PCI bus and MMIO bus, rings in fake guest
 * memory, kicks through the loop, and fake irqfds (plain eventfds) and
 * ioeventfds (recorded bindings) in place of KVM. Then virtio-rng end to end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <sys/eventfd.h>

#include "petrel/platform.h"
#include "petrel/virtio.h"
#include "petrel/virtio_rng.h"
#include "fake_state.h"
#include "fake_virtio_driver.h"

#define RAM_SIZE  (1 * MiB)
#define DESC_GPA  0x10000
#define AVAIL_GPA 0x11000
#define USED_GPA  0x12000
#define BUF_GPA   0x20000
#define QSIZE     16
#define TMAX      64 /* the test device's queue_max_size */

/* ---- a test device: two queues, 8 bytes of config ---- */

struct tdev {
    struct virtio_dev vdev;
    unsigned notified[2];
    unsigned resets;
    int reset_ret; /* what its reset callback returns: 0, or -EINPROGRESS (still busy) */
    uint8_t cfg[8];
    struct virtq_seg segs[TMAX];
    unsigned budget; /* chains per queue_notify() */
    unsigned chains; /* chains handled */
    /* Called with each chain before it is pushed (the driver racing the device). */
    void (*on_chain)(struct tdev *t, struct virtq *vq);
    void *ctx;
};

static struct tdev *to_tdev(struct virtio_dev *v)
{
    return container_of(v, struct tdev, vdev);
}

static enum virtio_chain_ret tdev_chain(struct virtio_dev *v, struct virtq *vq,
                                        struct virtq_chain *ch)
{
    struct tdev *t = to_tdev(v);
    t->chains++;
    if (t->on_chain)
        t->on_chain(t, vq);
    return virtq_push(vq, ch->head, 0) ? VIRTIO_CHAIN_BROKEN : VIRTIO_CHAIN_DONE;
}

static const struct virtio_queue_handler tdev_handler = {.chain = tdev_chain};

static void tdev_notify(struct virtio_dev *v, unsigned q)
{
    struct tdev *t = to_tdev(v);
    struct virtq_chain ch = {.segs = t->segs, .cap = TMAX};
    t->notified[q]++;
    virtio_serve_queue_locked(v, q, &ch, t->budget, &tdev_handler);
}

static uint64_t tdev_cfg_read(struct virtio_dev *v, unsigned off, unsigned size)
{
    uint64_t x = 0;
    memcpy(&x, to_tdev(v)->cfg + off, size);
    return x;
}

static int tdev_reset(struct virtio_dev *v)
{
    to_tdev(v)->resets++;
    return to_tdev(v)->reset_ret;
}

static const struct virtio_dev_ops tdev_ops = {
    .device_type = VIRTIO_ID_CONSOLE,
    .class_code = 0x078000,
    .num_queues = 2,
    .queue_max_size = TMAX,
    .config_size = 8,
    .config_read = tdev_cfg_read,
    .queue_notify = tdev_notify,
    .reset = tdev_reset,
};

/* ---- the rig ---- */

struct rig {
    struct fake_virtio_host h;
    struct tdev t;
    struct virtio_rng rng;
    struct virtio_dev *v; /* the device under test */
    uint16_t drv_avail;
};

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_int_equal(fake_virtio_host_init(&r->h, RAM_SIZE), 0);
    assert_int_equal(virtio_pci_init(&r->t.vdev, "vtest", &tdev_ops, 1ULL << 0, &r->h.sys), 0);
    r->t.budget = TMAX;
    assert_int_equal(virtio_pci_add(&r->t.vdev, &r->h.pci), 0);
    r->v = &r->t.vdev;
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    virtio_pci_destroy(&r->t.vdev);
    if (r->rng.vdev.ops)
        virtio_rng_destroy(&r->rng);
    fake_virtio_host_destroy(&r->h);
    free(r);
    return 0;
}

static uint32_t cfg_rd(struct rig *r, unsigned reg, unsigned size)
{
    return pci_config_read(&r->v->pci, reg, size); /* takes the function's lock */
}

static void cfg_wr(struct rig *r, unsigned reg, uint32_t val, unsigned size)
{
    pci_config_write(&r->v->pci, reg, val, size);
}

static uint64_t bar_rd(struct rig *r, uint64_t off, unsigned size)
{
    uint64_t x = 0;
    assert_int_equal(fake_virtio_bar(&r->h.mmio, r->v, off, &x, size, false), 0);
    return x;
}

static void bar_wr(struct rig *r, uint64_t off, uint64_t val, unsigned size)
{
    assert_int_equal(fake_virtio_bar(&r->h.mmio, r->v, off, &val, size, true), 0);
}

static uint64_t irq_count(struct rig *r, unsigned vector)
{
    return fake_virtio_irq_count(r->v, vector);
}

static void run_loop(struct rig *r)
{
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
}

/* Negotiates features (VERSION_1 and EVENT_IDX off unless asked). */
static void negotiate(struct rig *r, uint64_t features)
{
    fake_virtio_negotiate(&r->h.mmio, r->v, features);
}

/* Sets up queue q (size QSIZE, the rings at their places) and enables it. */
static void setup_queue(struct rig *r, unsigned q, uint16_t size, uint16_t vector)
{
    fake_virtio_setup_queue(&r->h.mmio, r->v, q, size, vector, DESC_GPA, AVAIL_GPA, USED_GPA);
}

static void driver_ok(struct rig *r)
{
    fake_virtio_driver_ok(&r->h.mmio, r->v);
}

/* MSI-X on, and vector v unmasked with a message. */
static void msix_enable(struct rig *r)
{
    fake_virtio_msix_enable(r->v);
}

static void msix_unmask(struct rig *r, unsigned v)
{
    fake_virtio_msix_unmask(&r->h.mmio, r->v, v);
}

/* The driver puts a one-descriptor writable chain of len bytes at addr on the queue in ram. */
static void ram_add_chain(uint8_t *ram, uint16_t *drv_avail, uint16_t size, uint64_t addr,
                          uint32_t len)
{
    struct virtq_desc d = {.addr = addr, .len = len, .flags = VIRTQ_DESC_F_WRITE};
    uint16_t i = *drv_avail & (size - 1);
    memcpy(ram + DESC_GPA + 16 * i, &d, sizeof(d));
    struct virtq_avail *av = (struct virtq_avail *)(ram + AVAIL_GPA);
    av->ring[i] = i;
    ++*drv_avail;
    __atomic_store_n(&av->idx, *drv_avail, __ATOMIC_RELEASE);
}

static void add_chain(struct rig *r, uint16_t size, uint64_t addr, uint32_t len)
{
    ram_add_chain(r->h.ram, &r->drv_avail, size, addr, len);
}

static struct virtq_used *used(struct rig *r)
{
    return (struct virtq_used *)(r->h.ram + USED_GPA);
}

static void kick(struct rig *r, unsigned q)
{
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, q, 2);
    run_loop(r);
}

/* ---- tests ---- */

/* A device may offer fewer MSI-X vectors than queues + 1, never fewer than 2 or more. */
static void test_nr_vectors(void **state)
{
    struct rig *r = *state;
    struct virtio_dev d;
    struct virtio_dev_ops ops = tdev_ops;

    assert_int_equal(r->v->nr_vectors, 3); /* the default: a vector per queue, one for config */
    for (unsigned n = 0; n <= 4; n++) {
        ops.nr_vectors = n;
        int ret = virtio_pci_init(&d, "vtest", &ops, 1ULL << 0, &r->h.sys);
        if (n == 1 || n == 4) {
            assert_int_equal(ret, -EINVAL);
            continue;
        }
        assert_int_equal(ret, 0);
        assert_int_equal(d.nr_vectors, n ? n : 3);
        assert_int_equal(d.pci.msix.nr, n ? n : 3);
        virtio_pci_destroy(&d);
    }
}

static void test_identity_and_caps(void **state)
{
    struct rig *r = *state;
    assert_int_equal(cfg_rd(r, PCI_VENDOR_ID, 2), VIRTIO_PCI_VENDOR);
    assert_int_equal(cfg_rd(r, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_CONSOLE);
    assert_int_equal(cfg_rd(r, PCI_REVISION_ID, 1), 1);
    assert_int_equal(cfg_rd(r, PCI_SUBSYSTEM_VENDOR_ID, 2), VIRTIO_PCI_VENDOR);
    assert_true(cfg_rd(r, PCI_SUBSYSTEM_ID, 2) >= 0x40);
    assert_int_equal(cfg_rd(r, PCI_CLASS_REVISION, 4) >> 8, 0x078000);
    assert_true(cfg_rd(r, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);

    unsigned seen = 0, ptr = cfg_rd(r, PCI_CAPABILITY_LIST, 1);
    bool msix = false;
    for (int n = 0; ptr && n < 16; n++, ptr = cfg_rd(r, ptr + 1, 1)) {
        unsigned id = cfg_rd(r, ptr, 1);
        if (id == PCI_CAP_ID_MSIX) {
            msix = true;
            assert_int_equal((cfg_rd(r, ptr + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1, 3);
            continue;
        }
        assert_int_equal(id, PCI_CAP_ID_VNDR);
        unsigned type = cfg_rd(r, ptr + 3, 1), off = cfg_rd(r, ptr + 8, 4);
        assert_int_equal(cfg_rd(r, ptr + 4, 1), VIRTIO_PCI_BAR);
        seen |= 1u << type;
        switch (type) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            assert_int_equal(off, VIRTIO_PCI_COMMON_OFF);
            assert_int_equal(cfg_rd(r, ptr + 12, 4), 0x38);
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            assert_int_equal(cfg_rd(r, ptr + 2, 1), 20);
            assert_int_equal(off, VIRTIO_PCI_NOTIFY_OFF);
            assert_int_equal(cfg_rd(r, ptr + 16, 4), VIRTIO_PCI_NOTIFY_MULT);
            break;
        case VIRTIO_PCI_CAP_ISR_CFG:
            assert_int_equal(off, VIRTIO_PCI_ISR_OFF);
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            assert_int_equal(off, VIRTIO_PCI_DEVICE_OFF);
            assert_int_equal(cfg_rd(r, ptr + 12, 4), 8);
            break;
        }
    }
    assert_true(msix);
    assert_int_equal(seen, 0x1e);
    assert_int_equal(r->v->bar_addr, PLAT_PCI_MMIO_BASE);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_NUMQ, 2), 2);
    r->t.cfg[2] = 0xab;
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + 2, 1), 0xab);
}

static void test_features(void **state)
{
    struct rig *r = *state;
    bar_wr(r, VIRTIO_COMMON_DFSELECT, 0, 4);
    uint32_t lo = (uint32_t)bar_rd(r, VIRTIO_COMMON_DF, 4);
    bar_wr(r, VIRTIO_COMMON_DFSELECT, 1, 4);
    uint32_t hi = (uint32_t)bar_rd(r, VIRTIO_COMMON_DF, 4);
    assert_true(lo & 1);
    assert_true(lo & (1u << VIRTIO_F_EVENT_IDX));
    assert_true(lo & (1u << VIRTIO_F_INDIRECT_DESC));
    assert_int_equal(hi, 1); /* VERSION_1 */
    bar_wr(r, VIRTIO_COMMON_DFSELECT, 2, 4);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_DF, 4), 0);

    /* A legacy driver (no VERSION_1) finds FEATURES_OK clear. */
    negotiate(r, 1);
    assert_false(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    /* A feature not offered is refused too. */
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5);
    assert_false(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    /* A subset with VERSION_1 is accepted, and then frozen. */
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1 | 1);
    assert_true(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    bar_wr(r, VIRTIO_COMMON_GFSELECT, 0, 4);
    bar_wr(r, VIRTIO_COMMON_GF, 0, 4);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_GF, 4), 1);
    assert_int_equal(r->v->driver_features, 1ULL << VIRTIO_F_VERSION_1 | 1);
}

static void test_reset(void **state)
{
    struct rig *r = *state;
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    setup_queue(r, 0, QSIZE, 0);
    bar_wr(r, VIRTIO_COMMON_MSIX, 2, 2);
    driver_ok(r);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_ENABLE, 2), 1);
    r->v->isr = VIRTIO_ISR_QUEUE;

    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), 0);
    assert_int_equal(r->t.resets, 1);
    bar_wr(r, VIRTIO_COMMON_Q_SELECT, 0, 2);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_ENABLE, 2), 0);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_SIZE, 2), TMAX);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_DESC, 8), 0);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_MSIX, 2), VIRTIO_NO_VECTOR);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_ISR_OFF, 1), 0);
    assert_int_equal(r->v->driver_features, 0);
}

/*
 * A device still busy in the host when the driver resets it (virtio.h): the
 * status write returns at once, the status keeps reading the old value, every
 * other write and every notify is ignored and nothing interrupts, until the
 * device says it is done; then the loop finishes the reset and the device
 * starts over as usual.
 */
static void test_reset_pending(void **state)
{
    struct rig *r = *state;
    uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                 VIRTIO_STATUS_DRIVER_OK;

    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    setup_queue(r, 0, QSIZE, 0);
    msix_enable(r);
    msix_unmask(r, 0);
    driver_ok(r);
    add_chain(r, QSIZE, BUF_GPA, 64);
    kick(r, 0);
    assert_int_equal(r->t.notified[0], 1);
    assert_int_equal(irq_count(r, 0), 1);

    r->t.reset_ret = -EINPROGRESS;
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1); /* returns: nothing here waits for the device */
    assert_int_equal(r->t.resets, 1);
    assert_true(r->v->reset_pending);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), st);

    /* Meanwhile: status, feature, queue and config writes change nothing... */
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    bar_wr(r, VIRTIO_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
    bar_wr(r, VIRTIO_COMMON_Q_SELECT, 1, 2);
    bar_wr(r, VIRTIO_COMMON_GFSELECT, 0, 4); /* negotiate() left it at 1 */
    assert_int_equal(r->t.resets, 1);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), st);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_SELECT, 2), 0);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_GFSELECT, 4), 1);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_ENABLE, 2), 1);
    /* ...a notify reaches no device, a push by a late worker interrupts nobody. */
    add_chain(r, QSIZE, BUF_GPA, 64);
    kick(r, 0);
    assert_int_equal(r->t.notified[0], 1);
    virtio_lock(r->v);
    virtio_notify_queue_locked(r->v, 0);
    virtio_unlock(r->v);
    assert_int_equal(irq_count(r, 0), 0);
    run_loop(r);
    assert_true(r->v->reset_pending); /* the loop does not finish it by itself */

    /* The device is done (from any thread): the loop completes the reset. */
    virtio_reset_done(r->v);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), st);
    run_loop(r);
    assert_false(r->v->reset_pending);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), 0);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_ENABLE, 2), 0);
    assert_int_equal(r->v->driver_features, 0);
    assert_int_equal(r->v->resets_pending, 1);
    /* A late or repeated signal does nothing to the next life. */
    r->t.reset_ret = 0;
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    virtio_reset_done(r->v);
    run_loop(r);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK,
                     VIRTIO_STATUS_FEATURES_OK);

    /* And it works again; a reset with nothing busy is done before the write returns. */
    memset(r->h.ram + DESC_GPA, 0, 0x3000);
    r->drv_avail = 0;
    setup_queue(r, 0, QSIZE, 0);
    driver_ok(r);
    add_chain(r, QSIZE, BUF_GPA, 64);
    kick(r, 0);
    assert_int_equal(r->t.notified[0], 2);
    assert_int_equal(used(r)->idx, 1);
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), 0);
    assert_int_equal(r->t.resets, 2);
    assert_int_equal(r->v->resets_pending, 1);
}

static void test_queue_setup(void **state)
{
    struct rig *r = *state;
    /* Before FEATURES_OK, enabling does nothing. */
    setup_queue(r, 0, QSIZE, 0);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_ENABLE, 2), 0);

    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    /* A vector the table does not have reads back as NO_VECTOR. */
    bar_wr(r, VIRTIO_COMMON_Q_MSIX, 3, 2);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);
    /* A queue beyond num_queues reads 0 and ignores writes. */
    bar_wr(r, VIRTIO_COMMON_Q_SELECT, 5, 2);
    bar_wr(r, VIRTIO_COMMON_Q_SIZE, 8, 2);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_SIZE, 2), 0);

    setup_queue(r, 1, QSIZE, 1);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_ENABLE, 2), 1);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_NOFF, 2), 1);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_DESC, 8), DESC_GPA);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_AVAIL, 8), AVAIL_GPA);
    /* Frozen once enabled. */
    bar_wr(r, VIRTIO_COMMON_Q_DESC, 0x30000, 8);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_DESC, 8), DESC_GPA);

    /* Not a power of two: the queue does not come up and the device needs a reset. */
    setup_queue(r, 0, 3, 0);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_ENABLE, 2), 0);
    assert_true(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);

    /* Larger than the maximum, after a reset. */
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    assert_false(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
    setup_queue(r, 0, 2 * TMAX, 0);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_Q_ENABLE, 2), 0);
    assert_true(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_notify(void **state)
{
    struct rig *r = *state;
    /* The kicks are bound to the notify addresses in the BAR. */
    assert_true(r->v->queues[0].kick.bound);
    assert_int_equal(r->v->queues[1].kick.addr,
                     PLAT_PCI_MMIO_BASE + VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT);
    assert_int_equal(r->v->queues[1].kick.len, 2);

    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    setup_queue(r, 1, QSIZE, 1);
    /* Before DRIVER_OK a kick reaches no one. */
    kick(r, 1);
    assert_int_equal(r->t.notified[1], 0);
    /* DRIVER_OK looks at the enabled queues once. */
    driver_ok(r);
    run_loop(r);
    assert_int_equal(r->t.notified[1], 1);
    kick(r, 1);
    assert_int_equal(r->t.notified[1], 2);
    assert_int_equal(r->t.notified[0], 0);
    /* The disabled queue 0 is not called. */
    kick(r, 0);
    assert_int_equal(r->t.notified[0], 0);

    /* The guest moves the BAR: the kicks follow; decoding off unbinds them. */
    uint64_t nb = PLAT_PCI_MMIO_BASE + 0x100000;
    cfg_wr(r, PCI_BASE_ADDRESS_0, (uint32_t)nb, 4);
    assert_int_equal(r->v->bar_addr, nb);
    assert_int_equal(r->v->queues[0].kick.addr, nb + VIRTIO_PCI_NOTIFY_OFF);
    kick(r, 1);
    assert_int_equal(r->t.notified[1], 3);
    cfg_wr(r, PCI_COMMAND, 0, 2);
    assert_false(r->v->queues[0].kick.bound);
    assert_int_equal(r->v->bar_addr, PCI_BAR_UNMAPPED);
}

static void test_isr_and_interrupts(void **state)
{
    struct rig *r = *state;
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    setup_queue(r, 0, QSIZE, 0);
    driver_ok(r);
    msix_enable(r);

    /* Vector 0 still masked (entries start masked): pending, nothing sent. */
    add_chain(r, QSIZE, BUF_GPA, 64);
    kick(r, 0);
    assert_int_equal(r->t.notified[0], 1);
    assert_int_equal(used(r)->idx, 1);
    assert_int_equal(irq_count(r, 0), 0);
    virtio_lock(r->v);
    assert_true(pci_msix_pending(&r->v->pci, 0));
    virtio_unlock(r->v);
    assert_true(bar_rd(r, VIRTIO_PCI_MSIX_PBA, 8) & 1);

    /* ISR: read-to-clear. */
    assert_int_equal(bar_rd(r, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_ISR_OFF, 1), 0);

    /* Unmasking routes the vector, then delivers the pending interrupt once. */
    msix_unmask(r, 0);
    uint32_t gsi = r->v->gsi[0];
    struct irq_msi_route *rt = &r->h.rt.msi[gsi - IRQ_ROUTING_FIRST_MSI];
    assert_true(rt->valid);
    assert_int_equal(rt->addr, 0xfee00000u);
    assert_int_equal(rt->data, 0x40);
    assert_int_equal(irq_count(r, 0), 1);
    virtio_lock(r->v);
    assert_false(pci_msix_pending(&r->v->pci, 0));
    virtio_unlock(r->v);

    /* Unmasked: the next interrupt goes straight out. */
    add_chain(r, QSIZE, BUF_GPA, 64);
    kick(r, 0);
    assert_int_equal(irq_count(r, 0), 1);

    /* The driver asks for no interrupts: none. */
    ((struct virtq_avail *)(r->h.ram + AVAIL_GPA))->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    add_chain(r, QSIZE, BUF_GPA, 64);
    kick(r, 0);
    assert_int_equal(used(r)->idx, 3);
    assert_int_equal(irq_count(r, 0), 0);
}

static void test_broken_queue(void **state)
{
    struct rig *r = *state;
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    bar_wr(r, VIRTIO_COMMON_MSIX, 2, 2);
    setup_queue(r, 0, QSIZE, 0);
    driver_ok(r);
    msix_enable(r);
    msix_unmask(r, 2);
    uint8_t gen = (uint8_t)bar_rd(r, VIRTIO_COMMON_CFGGENERATION, 1);

    /* A descriptor outside RAM. */
    add_chain(r, QSIZE, RAM_SIZE - 8, 64);
    kick(r, 0);
    assert_true(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(irq_count(r, 2), 1);
    assert_int_equal(irq_count(r, 0), 0);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_CONFIG);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_CFGGENERATION, 1), gen);
    assert_true(r->v->warned);
    /* The device stays quiet until reset... */
    kick(r, 0);
    assert_int_equal(r->t.notified[0], 1);
    assert_int_equal(irq_count(r, 2), 0);
    /* ...and works again after one. */
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    memset(r->h.ram + AVAIL_GPA, 0, 0x2000);
    r->drv_avail = 0;
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    setup_queue(r, 0, QSIZE, 0);
    driver_ok(r);
    run_loop(r);
    add_chain(r, QSIZE, BUF_GPA, 64);
    kick(r, 0);
    assert_int_equal(used(r)->idx, 1);
    assert_false(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);

    /* A config change: new generation, ISR bit, config vector. */
    virtio_lock(r->v);
    virtio_config_changed_locked(r->v);
    virtio_unlock(r->v);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_CFGGENERATION, 1), (uint8_t)(gen + 1));
}

/* The driver, while the device works: what it finds in used->flags and avail_event. */
struct race {
    struct rig *r;
    unsigned add; /* chains to add from inside the round */
    uint16_t flags_seen, event_seen;
};

static uint16_t *avail_event(struct rig *r)
{
    return (uint16_t *)&used(r)->ring[QSIZE];
}

static void race_add(struct tdev *t, struct virtq *vq)
{
    struct race *x = t->ctx;
    (void)vq;
    x->flags_seen = used(x->r)->flags;
    x->event_seen = *avail_event(x->r);
    if (x->add) {
        x->add--;
        add_chain(x->r, QSIZE, BUF_GPA, 64); /* no kick: the device asked for none */
    }
}

/*
 * The service loop (virtio_serve_queue_locked()): kicks are off while the
 * device works; a chain the driver adds before they are back on is served in
 * the same round without a kick; at the end the device asks for kicks again
 * (used->flags 0, or with EVENT_IDX avail_event at the next entry); a spent
 * budget comes back through the loop; and one interrupt covers the round.
 */
static void serve_queue(struct rig *r, bool event_idx)
{
    struct race x = {.r = r, .add = 2};
    uint64_t f = 1ULL << VIRTIO_F_VERSION_1 | (event_idx ? 1ULL << VIRTIO_F_EVENT_IDX : 0);

    r->t.on_chain = race_add;
    r->t.ctx = &x;
    negotiate(r, f);
    setup_queue(r, 0, QSIZE, 0);
    msix_enable(r);
    msix_unmask(r, 0);
    driver_ok(r);
    run_loop(r);
    assert_int_equal(r->t.notified[0], 1);

    add_chain(r, QSIZE, BUF_GPA, 64);
    kick(r, 0);
    assert_int_equal(r->t.notified[0], 2);
    assert_int_equal(r->t.chains, 3);
    assert_int_equal(used(r)->idx, 3);
    if (event_idx) {
        assert_int_equal(x.event_seen, 0); /* left behind while working */
        assert_int_equal(*avail_event(r), 3);
    } else {
        assert_int_equal(x.flags_seen, VIRTQ_USED_F_NO_NOTIFY);
    }
    assert_int_equal(used(r)->flags, 0);
    assert_int_equal(irq_count(r, 0), 1);

    /* A budget of 2 and 5 chains: 2, 2 and 1 chains in three calls, the last two requeued. */
    r->t.budget = 2;
    x.add = 0;
    for (int i = 0; i < 5; i++)
        add_chain(r, QSIZE, BUF_GPA, 64);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    unsigned calls = r->t.notified[0];
    for (int i = 0; i < 5 && used(r)->idx != 8; i++)
        run_loop(r);
    assert_int_equal(used(r)->idx, 8);
    assert_int_equal(r->t.notified[0] - calls, 3);
    if (event_idx)
        assert_int_equal(*avail_event(r), 8);
    else
        assert_int_equal(used(r)->flags, 0);
}

static void test_serve_queue(void **state)
{
    serve_queue(*state, false);
}

static void test_serve_queue_event_idx(void **state)
{
    serve_queue(*state, true);
}

static void test_rng(void **state)
{
    struct rig *r = *state;
    assert_int_equal(virtio_rng_init(&r->rng, &r->h.sys), 0);
    assert_int_equal(virtio_pci_add(&r->rng.vdev, &r->h.pci), 0);
    r->v = &r->rng.vdev;
    assert_int_equal(cfg_rd(r, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_NUMQ, 2), 1);

    negotiate(r, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX);
    assert_true(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    setup_queue(r, 0, QSIZE, 0);
    msix_enable(r);
    msix_unmask(r, 0);
    driver_ok(r);
    run_loop(r);

    /* One chain in: 100 random bytes out, the right length, one interrupt. */
    uint8_t zero[100] = {0};
    add_chain(r, QSIZE, BUF_GPA, 100);
    kick(r, 0);
    assert_int_equal(used(r)->idx, 1);
    assert_int_equal(used(r)->ring[0].id, 0);
    assert_int_equal(used(r)->ring[0].len, 100);
    assert_memory_not_equal(r->h.ram + BUF_GPA, zero, sizeof(zero));
    assert_int_equal(r->h.ram[BUF_GPA + 100], 0);
    assert_int_equal(irq_count(r, 0), 1);
    assert_int_equal(r->rng.bytes, 100);

    /* A huge buffer gets at most VIRTIO_RNG_CHAIN_MAX bytes. */
    add_chain(r, QSIZE, BUF_GPA, 256 * KiB);
    kick(r, 0);
    assert_int_equal(used(r)->idx, 2);
    assert_int_equal(used(r)->ring[1].len, VIRTIO_RNG_CHAIN_MAX);
    /* EVENT_IDX: the driver still asks for an interrupt at used index 0 only. */
    assert_int_equal(irq_count(r, 0), 0);
    uint16_t *used_event = &((struct virtq_avail *)(r->h.ram + AVAIL_GPA))->ring[QSIZE];
    *used_event = 2;
    add_chain(r, QSIZE, BUF_GPA, 16);
    kick(r, 0);
    assert_int_equal(used(r)->idx, 3);
    assert_int_equal(irq_count(r, 0), 1);
    virtio_rng_destroy(&r->rng);
    memset(&r->rng, 0, sizeof(r->rng));
    r->v = &r->t.vdev;
}

/* ---- save and restore ---- */

static uint8_t tree[STATE_TEST_TREE], edited[STATE_TEST_TREE];

/* Another host with a copy of the first one's RAM: a new process restoring a snapshot. */
static void twin_init(struct fake_virtio_host *w, const struct rig *r)
{
    assert_int_equal(fake_virtio_host_init(w, RAM_SIZE), 0);
    memcpy(w->ram, r->h.ram, RAM_SIZE);
}

/* A fresh test device, set up as the rig's was. */
static void tdev_fresh(struct tdev *t, struct fake_virtio_host *h)
{
    memset(t, 0, sizeof(*t));
    assert_int_equal(virtio_pci_init(&t->vdev, "vtest", &tdev_ops, 1ULL << 0, &h->sys), 0);
    assert_int_equal(virtio_pci_add(&t->vdev, &h->pci), 0);
    t->budget = TMAX;
}

struct save_ctx {
    struct virtio_dev *v;
    struct errbuf *eb;
};

/* The device's node, as the device model writes it: "vtest" with the transport inside. */
static void save_vtest(struct state_out *out, void *ctx)
{
    struct save_ctx *c = ctx;
    out->eb = c->eb;
    state_begin(out, "vtest", "petrel,test-device-v1");
    if (virtio_pci_save(c->v, out) == 0)
        state_end(out);
}

static int restore_vtest(const void *t, struct virtio_dev *v, struct errbuf *eb)
{
    struct state_in root = state_test_root(t, eb), in;
    if (state_open(&root, "vtest", "petrel,test-device-v1", &in))
        return in.err;
    return virtio_pci_restore(v, &in, NULL);
}

static void assert_same_regs(struct bus *mmio_a, struct virtio_dev *a, struct bus *mmio_b,
                             struct virtio_dev *b)
{
    uint32_t va, vb;
    int i = fake_virtio_regs_differ(mmio_a, a, mmio_b, b, &va, &vb);
    if (i >= 0)
        fail_msg("register read %d: %#x, then %#x", i, va, vb);
}

/*
 * The driver brings the test device up and uses queue 0 (EVENT_IDX); queue 1
 * is configured and not enabled, its vector masked; the configuration
 * changed once; the last chain is made available without a kick, as if the
 * snapshot came before the loop read the kick.
 */
static void make_busy(struct rig *r)
{
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | 1);
    bar_wr(r, VIRTIO_COMMON_MSIX, 2, 2);
    setup_queue(r, 0, QSIZE, 0);
    bar_wr(r, VIRTIO_COMMON_Q_SELECT, 1, 2);
    bar_wr(r, VIRTIO_COMMON_Q_SIZE, 8, 2);
    bar_wr(r, VIRTIO_COMMON_Q_DESC, 0x30000, 8);
    bar_wr(r, VIRTIO_COMMON_Q_MSIX, 1, 2);
    msix_enable(r);
    msix_unmask(r, 0);
    msix_unmask(r, 2);
    driver_ok(r);
    run_loop(r);
    for (int i = 0; i < 3; i++) {
        add_chain(r, QSIZE, BUF_GPA, 64);
        kick(r, 0);
    }
    assert_int_equal(used(r)->idx, 3);
    virtio_lock(r->v);
    virtio_config_changed_locked(r->v);
    virtio_unlock(r->v);
    bar_wr(r, VIRTIO_COMMON_DFSELECT, 1, 4);
    add_chain(r, QSIZE, BUF_GPA, 64);
    (void)irq_count(r, 0);
    (void)irq_count(r, 2);
}

/*
 * Saved and restored into a fresh device in another host with the same RAM:
 * every register reads the same, the BAR decodes where it did with the kicks
 * bound and the MSI-X routes set, the chain the lost kick announced is served,
 * and the next request completes with the interrupt EVENT_IDX asks for.
 */
static void test_save_restore(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    struct fake_virtio_host w;
    struct tdev t;

    make_busy(r);
    struct save_ctx c = {r->v, &eb};
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vtest, &c), 0);
    twin_init(&w, r);
    tdev_fresh(&t, &w);
    assert_int_equal(restore_vtest(tree, &t.vdev, &eb), 0);
    assert_same_regs(&r->h.mmio, r->v, &w.mmio, &t.vdev);

    assert_int_equal(t.vdev.bar_addr, r->v->bar_addr);
    assert_true(t.vdev.queues[0].kick.bound);
    assert_int_equal(t.vdev.queues[0].kick.addr, r->v->queues[0].kick.addr);
    struct irq_msi_route *rt = &w.rt.msi[t.vdev.gsi[0] - IRQ_ROUTING_FIRST_MSI];
    assert_true(rt->valid);
    assert_int_equal(rt->data, 0x40);
    assert_int_equal(t.vdev.queues[0].vq.last_avail_idx, 3);

    /* The restore looks at the enabled queue once: the unkicked chain is served. */
    struct virtq_used *u = (struct virtq_used *)(w.ram + USED_GPA);
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    assert_int_equal(u->idx, 4);
    assert_int_equal(t.notified[0], 1);
    assert_int_equal(fake_virtio_irq_count(&t.vdev, 0), 0); /* used_event is still 0 */
    /* The driver wants an interrupt for the next one. */
    uint16_t drv = r->drv_avail;
    ((struct virtq_avail *)(w.ram + AVAIL_GPA))->ring[QSIZE] = 4;
    ram_add_chain(w.ram, &drv, QSIZE, BUF_GPA, 64);
    fake_virtio_bar_wr(&w.mmio, &t.vdev, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    assert_int_equal(u->idx, 5);
    assert_int_equal(u->ring[4].id, 4);
    assert_int_equal(fake_virtio_irq_count(&t.vdev, 0), 1);
    uint16_t avail_event;
    memcpy(&avail_event, w.ram + USED_GPA + 4 + 8 * QSIZE, 2);
    assert_int_equal(avail_event, 5); /* kick for entry 5 */

    virtio_pci_destroy(&t.vdev);
    fake_virtio_host_destroy(&w);
}

/* One hostile edit of the saved tree: a u32 or u64 property, or a byte of a byte string. */
struct edit {
    const char *node, *prop;
    uint64_t v;
    int size; /* 4, 8, or 1: byte v >> 8 of the property set to v & 0xff */
};

/* Applies the edits to a copy of tree; the restore must refuse it with want in the message. */
static void refused(struct tdev *t, const struct edit *e, unsigned n, const char *want)
{
    struct errbuf eb = {{0}};
    memcpy(edited, tree, sizeof(tree));
    for (unsigned i = 0; i < n; i++) {
        if (e[i].size == 4) {
            assert_int_equal(state_test_set_u32(edited, e[i].node, e[i].prop, (uint32_t)e[i].v), 0);
        } else if (e[i].size == 8) {
            assert_int_equal(state_test_set_u64(edited, e[i].node, e[i].prop, e[i].v), 0);
        } else {
            int len;
            uint8_t *p = state_test_prop(edited, e[i].node, e[i].prop, &len);
            assert_non_null(p);
            p[e[i].v >> 8] = (uint8_t)e[i].v;
        }
    }
    assert_int_equal(restore_vtest(edited, &t->vdev, &eb), -EINVAL);
    if (!strstr(eb.msg, want))
        fail_msg("the refusal \"%s\" does not say \"%s\"", eb.msg, want);
}

/*
 * A state node is hostile: each bad value is refused with the property
 * named, and the device is left as it was made (every register as a fresh
 * one's), ready for a driver.
 */
static void test_restore_refuses_hostile(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    struct fake_virtio_host w, fw;
    struct tdev t, fresh;
    const char *v = "/vtest/virtio", *q0 = "/vtest/virtio/queue0", *q1 = "/vtest/virtio/queue1";
    uint64_t features = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | 1;

    make_busy(r);
    struct save_ctx c = {r->v, &eb};
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vtest, &c), 0);
    twin_init(&w, r);
    tdev_fresh(&t, &w);
    twin_init(&fw, r);
    tdev_fresh(&fresh, &fw);

    refused(&t, &(struct edit){q0, "size", 3, 4}, 1, "property 'size' is 3, not a power of 2");
    refused(&t, &(struct edit){q0, "size", 2 * TMAX, 4}, 1, "property 'size' is 128");
    refused(
        &t, &(struct edit){q0, "desc-addr", RAM_SIZE - 16, 8}, 1,
        "'desc-addr', 'avail-addr', 'used-addr': descriptor ring [0xffff0, +0x100) is not in RAM");
    refused(&t, &(struct edit){q0, "used-addr", AVAIL_GPA, 8}, 1, "overlap");
    refused(&t, &(struct edit){v, "driver-features", features | 1ULL << 5, 8}, 1,
            "property 'driver-features' has bits 0x20 the device does not offer");
    refused(&t, &(struct edit){v, "device-features", features, 8}, 1, "property 'device-features'");
    /* last_avail_idx far ahead: more in flight than the device holds, or than the ring has. */
    refused(&t, &(struct edit){q0, "last-avail-idx", 1000, 4}, 1,
            "properties 'last-avail-idx' 1000 and 'used-idx' 3 have 997 chains in flight");
    refused(&t, (struct edit[]){{q0, "last-avail-idx", 9, 4}, {q0, "used-idx", 9, 4}}, 2,
            "property 'last-avail-idx' is 9, not within the size 16 behind the available index 4");
    refused(&t, (struct edit[]){{q0, "last-avail-idx", 2, 4}, {q0, "used-idx", 2, 4}}, 2,
            "property 'used-idx' is 2, not the used index 3 in guest memory");
    refused(&t, &(struct edit){q1, "last-avail-idx", 1, 4}, 1, "not 0 in a queue that is not");
    refused(&t, &(struct edit){q0, "vector", 3, 4}, 1, "property 'vector' is 3");
    refused(&t, &(struct edit){v, "config-vector", 7, 4}, 1, "property 'config-vector' is 7");
    refused(&t, &(struct edit){v, "device-status", 0x30, 4}, 1, "property 'device-status'");
    refused(&t, &(struct edit){v, "device-status", 0x3, 4}, 1,
            "property 'enabled' is set, but 'device-status' has no FEATURES_OK");
    refused(&t, &(struct edit){v, "isr", 4, 4}, 1, "property 'isr'");
    refused(&t, &(struct edit){v, "num-queues", 3, 4}, 1, "property 'num-queues' is 3");
    refused(&t, &(struct edit){"/vtest/virtio/pci", "config", 0x0042, 1}, 1,
            "property 'config': byte 0");
    assert_same_regs(&w.mmio, &t.vdev, &fw.mmio, &fresh.vdev);
    assert_int_equal(fake_virtio_bar_rd(&w.mmio, &t.vdev, VIRTIO_COMMON_STATUS, 1), 0);

    /* And a driver can use it. */
    memset(w.ram + DESC_GPA, 0, 0x3000);
    uint16_t drv = 0;
    fake_virtio_negotiate(&w.mmio, &t.vdev, 1ULL << VIRTIO_F_VERSION_1);
    fake_virtio_setup_queue(&w.mmio, &t.vdev, 0, QSIZE, 0, DESC_GPA, AVAIL_GPA, USED_GPA);
    fake_virtio_driver_ok(&w.mmio, &t.vdev);
    ram_add_chain(w.ram, &drv, QSIZE, BUF_GPA, 64);
    fake_virtio_bar_wr(&w.mmio, &t.vdev, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    assert_int_equal(((struct virtq_used *)(w.ram + USED_GPA))->idx, 1);

    virtio_pci_destroy(&t.vdev);
    virtio_pci_destroy(&fresh.vdev);
    fake_virtio_host_destroy(&w);
    fake_virtio_host_destroy(&fw);
}

/* A reset waiting for the device's host I/O cannot be saved; once it is done, it can. */
static void test_save_refuses_pending_reset(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    struct save_ctx c = {r->v, &eb};

    negotiate(r, 1ULL << VIRTIO_F_VERSION_1);
    r->t.reset_ret = -EINPROGRESS;
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    assert_true(r->v->reset_pending);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vtest, &c), -EBUSY);
    assert_non_null(strstr(eb.msg, "vtest: the driver's reset is still waiting for host I/O"));
    virtio_reset_done(r->v);
    run_loop(r);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vtest, &c), 0);
}

static void save_rng(struct state_out *out, void *ctx)
{
    state_begin(out, "rng", VIRTIO_RNG_STATE_COMPATIBLE);
    if (virtio_rng_save(ctx, out) == 0)
        state_end(out);
}

/* virtio-rng: only the transport's state; the restored device goes on filling buffers. */
static void test_rng_save_restore(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    struct fake_virtio_host w;
    struct virtio_rng rng2;

    assert_int_equal(virtio_rng_init(&r->rng, &r->h.sys), 0);
    assert_int_equal(virtio_pci_add(&r->rng.vdev, &r->h.pci), 0);
    r->v = &r->rng.vdev;
    negotiate(r, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX);
    setup_queue(r, 0, QSIZE, 0);
    msix_enable(r);
    msix_unmask(r, 0);
    driver_ok(r);
    run_loop(r);
    add_chain(r, QSIZE, BUF_GPA, 100);
    kick(r, 0);
    assert_int_equal(used(r)->idx, 1);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_rng, &r->rng), 0);

    twin_init(&w, r);
    assert_int_equal(virtio_rng_init(&rng2, &w.sys), 0);
    /* The same slot and BAR as in the first host: the test device is not in this one. */
    assert_int_equal(virtio_pci_add(&rng2.vdev, &w.pci), 0);
    struct state_in root = state_test_root(tree, &eb), in;
    assert_int_equal(state_open(&root, "rng", VIRTIO_RNG_STATE_COMPATIBLE, &in), 0);
    int ret = virtio_rng_restore(&rng2, &in);
    if (ret)
        fail_msg("%s", eb.msg);
    /* The test device took slot 1 in the first host, so the BAR differs: compare the rest. */
    assert_int_equal(fake_virtio_bar_rd(&w.mmio, &rng2.vdev, VIRTIO_COMMON_STATUS, 1),
                     bar_rd(r, VIRTIO_COMMON_STATUS, 1));
    fake_virtio_bar_wr(&w.mmio, &rng2.vdev, VIRTIO_COMMON_Q_SELECT, 0, 2);
    assert_int_equal(fake_virtio_bar_rd(&w.mmio, &rng2.vdev, VIRTIO_COMMON_Q_ENABLE, 2), 1);
    assert_int_equal(fake_virtio_bar_rd(&w.mmio, &rng2.vdev, VIRTIO_COMMON_Q_DESC, 8), DESC_GPA);

    uint16_t drv = r->drv_avail;
    uint8_t zero[32] = {0};
    memset(w.ram + BUF_GPA, 0, 0x1000);
    ram_add_chain(w.ram, &drv, QSIZE, BUF_GPA, 32);
    fake_virtio_bar_wr(&w.mmio, &rng2.vdev, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    struct virtq_used *u = (struct virtq_used *)(w.ram + USED_GPA);
    assert_int_equal(u->idx, 2);
    assert_int_equal(u->ring[1].len, 32);
    assert_memory_not_equal(w.ram + BUF_GPA, zero, sizeof(zero));

    virtio_rng_destroy(&rng2);
    fake_virtio_host_destroy(&w);
    r->v = &r->t.vdev;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_and_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nr_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_features, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_setup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_isr_and_interrupts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_queue_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rng, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refuses_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_pending_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rng_save_restore, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
