/*
 * testdev driven as its driver drives it: registers through a real PCI bus
 * and MMIO bus, buffers in fake guest RAM, the doorbell through the loop, and
 * fake irqfds (plain eventfds, read to count interrupts) and ioeventfds
 * (recorded bindings) in place of KVM. Good and hostile copies, overlap,
 * MSI-X masked and unmasked, pause, reset, and the snapshot round trip.
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

#include "petrel/platform.h"
#include "petrel/testdev.h"
#include "fake_state.h"
#include "fake_virtio_driver.h"

#define RAM_SIZE (4 * MiB) /* more than TESTDEV_DMA_MAX */
#define SRC      0x10000
#define DST      0x200000

static const struct testdev_sys_ops fake_td_ops = {
    .irqfd_init = fake_irqfd_init,
    .irqfd_destroy = fake_irqfd_destroy,
    .ioeventfd_bind = fake_ioeventfd_bind,
    .ioeventfd_unbind = fake_ioeventfd_unbind,
};

struct rig {
    struct fake_virtio_host h; /* RAM, MMIO and PCI buses, routing, loop */
    struct testdev td;
    unsigned warnings;
    char warning[256];
};

/* What the device logs about the guest. */
static void rig_warn(void *ctx, const char *msg)
{
    struct rig *r = ctx;
    r->warnings++;
    snprintf(r->warning, sizeof(r->warning), "%s", msg);
}

static int rig_init(struct rig *r)
{
    if (fake_virtio_host_init(&r->h, RAM_SIZE))
        return -1;
    r->h.pci.warn = rig_warn;
    r->h.pci.warn_ctx = r;
    struct testdev_sys sys = {
        .vm_fd = -1, .gm = &r->h.gm, .routing = &r->h.rt, .base = r->h.base, .ops = &fake_td_ops};
    if (testdev_init(&r->td, &sys))
        return -1;
    return pci_bus_add(&r->h.pci, &r->td.pdev, -1);
}

static void rig_destroy(struct rig *r)
{
    testdev_destroy(&r->td);
    fake_virtio_host_destroy(&r->h);
}

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    assert_int_equal(rig_init(r), 0);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    rig_destroy(r);
    free(r);
    return 0;
}

/* ---- the driver's side ---- */

static int bar_access(struct rig *r, uint64_t off, uint64_t *v, unsigned size, bool write)
{
    return bus_dispatch(&r->h.mmio, r->td.bar_addr + off, v, size, write);
}

static uint64_t rd(struct rig *r, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    assert_int_equal(bar_access(r, off, &v, size, false), 0);
    return v;
}

static void wr(struct rig *r, uint64_t off, uint64_t v, unsigned size)
{
    assert_int_equal(bar_access(r, off, &v, size, true), 0);
}

/* The loop runs what is ready (the doorbell's event). */
static void run_loop(struct rig *r)
{
    assert_int_not_equal(event_base_loop(r->h.base, EVLOOP_NONBLOCK), -1);
}

/* Interrupts sent since the last call (the fake irqfd's count). */
static uint64_t irqs(struct rig *r)
{
    uint64_t n = 0;
    if (read(r->td.irqfd.fd, &n, sizeof(n)) != sizeof(n))
        return 0;
    return n;
}

/* MSI-X on, vector 0 with a message and unmasked. */
static void msix_on(struct rig *r)
{
    pci_config_write(&r->td.pdev, r->td.pdev.msix.cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
    wr(r, TESTDEV_MSIX_TABLE, 0xfee00000u, 4);
    wr(r, TESTDEV_MSIX_TABLE + 4, 0, 4);
    wr(r, TESTDEV_MSIX_TABLE + 8, 0x51, 4);
    wr(r, TESTDEV_MSIX_TABLE + 12, 0, 4);
}

/* One command as a driver runs it: registers, clear STATUS, doorbell, the loop. */
static void copy(struct rig *r, uint64_t src, uint64_t dst, uint32_t len)
{
    wr(r, TESTDEV_REG_SRC, src, 8);
    wr(r, TESTDEV_REG_DST, dst, 8);
    wr(r, TESTDEV_REG_LEN, len, 4);
    wr(r, TESTDEV_REG_STATUS, TESTDEV_ST_DONE | TESTDEV_ST_ERROR, 4);
    wr(r, TESTDEV_REG_DOORBELL, 1, 4);
    run_loop(r);
}

static void fill(struct rig *r, uint64_t gpa, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        r->h.ram[gpa + i] = (uint8_t)(seed + i * 7);
}

/* ---- registers ---- */

static void register_file(void **state)
{
    struct rig *r = *state;

    assert_int_equal(pci_config_read(&r->td.pdev, PCI_VENDOR_ID, 2), TESTDEV_VENDOR);
    assert_int_equal(pci_config_read(&r->td.pdev, PCI_DEVICE_ID, 2), TESTDEV_DEVICE);
    assert_int_equal(pci_config_read(&r->td.pdev, PCI_CLASS_REVISION, 4) >> 8, TESTDEV_CLASS);
    assert_int_equal(rd(r, TESTDEV_REG_ID, 4), TESTDEV_MAGIC);
    assert_int_equal(rd(r, TESTDEV_REG_VERSION, 4), TESTDEV_VERSION);
    assert_int_equal(rd(r, TESTDEV_REG_ID, 8), (uint64_t)TESTDEV_VERSION << 32 | TESTDEV_MAGIC);
    assert_int_equal(rd(r, TESTDEV_REG_ID + 1, 2), (TESTDEV_MAGIC >> 8) & 0xffff); /* any size */

    wr(r, TESTDEV_REG_SCRATCH, 0xdeadbeef, 4);
    assert_int_equal(rd(r, TESTDEV_REG_SCRATCH, 4), 0xdeadbeef);
    wr(r, TESTDEV_REG_SCRATCH, 0x11, 1); /* not 4 bytes: ignored */
    wr(r, TESTDEV_REG_SCRATCH + 1, 0x11223344, 4);
    assert_int_equal(rd(r, TESTDEV_REG_SCRATCH, 4), 0xdeadbeef);

    /* Read-only registers stay. */
    wr(r, TESTDEV_REG_ID, 0, 4);
    wr(r, TESTDEV_REG_ERROR, 5, 4);
    wr(r, TESTDEV_REG_COUNT, 5, 4);
    assert_int_equal(rd(r, TESTDEV_REG_ID, 4), TESTDEV_MAGIC);
    assert_int_equal(rd(r, TESTDEV_REG_ERROR, 4), 0);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 0);

    /* 64-bit addresses: two halves, or one 8-byte access. */
    wr(r, TESTDEV_REG_SRC, 0x89abcdef, 4);
    wr(r, TESTDEV_REG_SRC + 4, 0x01234567, 4);
    assert_int_equal(rd(r, TESTDEV_REG_SRC, 8), 0x0123456789abcdefULL);
    wr(r, TESTDEV_REG_DST, 0xfedcba9876543210ULL, 8);
    assert_int_equal(rd(r, TESTDEV_REG_DST + 4, 4), 0xfedcba98);
    assert_int_equal(rd(r, TESTDEV_REG_DST, 4), 0x76543210);
    wr(r, TESTDEV_REG_LEN, 0x1234, 4);
    assert_int_equal(rd(r, TESTDEV_REG_LEN, 4), 0x1234);
    wr(r, TESTDEV_REG_LEN, 0x99, 8); /* 8 bytes only at SRC and DST */
    assert_int_equal(rd(r, TESTDEV_REG_LEN, 4), 0x1234);

    /* Past the registers: zeros; the doorbell reads 0 and nothing ran. */
    assert_int_equal(rd(r, 0x30, 4), 0);
    assert_int_equal(rd(r, 0x2e, 4), 0); /* straddling the end: COUNT's top half, then 0 */
    assert_int_equal(rd(r, TESTDEV_REG_DOORBELL, 4), 0);
    assert_int_equal(rd(r, 0x7fc, 4), 0);
    run_loop(r);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 0);
}

static void status_is_write_one_to_clear(void **state)
{
    struct rig *r = *state;

    fill(r, SRC, 16, 1);
    copy(r, SRC, DST, 16);
    copy(r, SRC, RAM_SIZE, 16); /* DONE stays from before, ERROR joins */
    wr(r, TESTDEV_REG_STATUS, 0, 4);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_ERROR);
    /* copy() cleared both before the second command: set them again by hand. */
    r->td.status = TESTDEV_ST_DONE | TESTDEV_ST_ERROR;
    wr(r, TESTDEV_REG_STATUS, TESTDEV_ST_DONE, 4);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_ERROR);
    wr(r, TESTDEV_REG_STATUS, 0xffffffff, 4);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), 0);
    assert_int_equal(rd(r, TESTDEV_REG_ERROR, 4), TESTDEV_ERR_DST); /* until the next command */
}

/* ---- DMA ---- */

static void dma_copies_and_interrupts(void **state)
{
    struct rig *r = *state;

    msix_on(r);
    fill(r, SRC, 4096, 3);
    memset(r->h.ram + DST - 16, 0xee, 4096 + 32);
    copy(r, SRC, DST, 4096);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_DONE);
    assert_int_equal(rd(r, TESTDEV_REG_ERROR, 4), TESTDEV_ERR_NONE);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 1);
    assert_memory_equal(r->h.ram + DST, r->h.ram + SRC, 4096);
    for (unsigned i = 0; i < 16; i++) { /* not a byte outside */
        assert_int_equal(r->h.ram[DST - 16 + i], 0xee);
        assert_int_equal(r->h.ram[DST + 4096 + i], 0xee);
    }
    assert_int_equal(irqs(r), 1);
    assert_int_equal(r->td.bytes, 4096);

    /* The route KVM got is the message the driver wrote. */
    const struct irq_msi_route *rt = &r->h.rt.msi[r->td.gsi - IRQ_ROUTING_FIRST_MSI];
    assert_true(rt->valid);
    assert_int_equal(rt->addr, 0xfee00000u);
    assert_int_equal(rt->data, 0x51);

    /* The largest copy, and one byte. */
    fill(r, 0, TESTDEV_DMA_MAX, 9);
    copy(r, 0, RAM_SIZE - TESTDEV_DMA_MAX, TESTDEV_DMA_MAX);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_DONE);
    assert_memory_equal(r->h.ram + RAM_SIZE - TESTDEV_DMA_MAX, r->h.ram, TESTDEV_DMA_MAX);
    copy(r, RAM_SIZE - 1, 0, 1);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_DONE);
    assert_int_equal(r->h.ram[0], r->h.ram[RAM_SIZE - 1]);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 3);
    assert_int_equal(irqs(r), 2);
}

/* KVM's side of the doorbell: the ioeventfd is bound where BAR 0 puts it and follows the BAR. */
static void doorbell_is_an_ioeventfd(void **state)
{
    struct rig *r = *state;
    uint64_t one = 1;

    assert_true(r->td.bell.bound);
    assert_false(r->td.bell.pio);
    assert_int_equal(r->td.bell.len, 4);
    assert_int_equal(r->td.bell.addr, r->td.bar_addr + TESTDEV_REG_DOORBELL);

    fill(r, SRC, 64, 5);
    wr(r, TESTDEV_REG_SRC, SRC, 8);
    wr(r, TESTDEV_REG_DST, DST, 8);
    wr(r, TESTDEV_REG_LEN, 64, 4);
    assert_int_equal(write(r->td.bell.fd, &one, sizeof(one)), sizeof(one)); /* as KVM does */
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 0); /* the loop has not run */
    run_loop(r);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 1);
    assert_memory_equal(r->h.ram + DST, r->h.ram + SRC, 64);

    /* Rings the loop has not seen yet make one command. */
    wr(r, TESTDEV_REG_DOORBELL, 1, 4);
    wr(r, TESTDEV_REG_DOORBELL + 2, 1, 1); /* any size at the doorbell */
    assert_int_equal(write(r->td.bell.fd, &one, sizeof(one)), sizeof(one));
    run_loop(r);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 2);

    /* The guest moves the BAR: the doorbell follows; decoding off: unbound. */
    uint64_t old = r->td.bar_addr, to = old + 0x100000;
    pci_config_write(&r->td.pdev, PCI_BASE_ADDRESS_0, (uint32_t)to, 4);
    assert_int_equal(r->td.bar_addr, to);
    assert_int_equal(r->td.bell.addr, to + TESTDEV_REG_DOORBELL);
    assert_true(r->td.bell.bound);
    pci_config_write(&r->td.pdev, PCI_COMMAND, 0, 2);
    assert_int_equal(r->td.bar_addr, PCI_BAR_UNMAPPED);
    assert_false(r->td.bell.bound);
}

static void dma_overlap_is_memmove(void **state)
{
    struct rig *r = *state;
    uint8_t want[300];

    /* Forward: the destination 16 bytes above the source. */
    fill(r, SRC, 300, 1);
    memmove(want, r->h.ram + SRC, 256);
    copy(r, SRC, SRC + 16, 256);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_DONE);
    assert_memory_equal(r->h.ram + SRC + 16, want, 256);

    /* Backward: below it. */
    fill(r, SRC, 300, 2);
    memmove(want, r->h.ram + SRC + 16, 256);
    copy(r, SRC + 16, SRC, 256);
    assert_memory_equal(r->h.ram + SRC, want, 256);

    /* Onto itself. */
    fill(r, SRC, 300, 3);
    memcpy(want, r->h.ram + SRC, 256);
    copy(r, SRC, SRC, 256);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_DONE);
    assert_memory_equal(r->h.ram + SRC, want, 256);
}

static void dma_refuses_hostile_input(void **state)
{
    struct rig *r = *state;
    const uint64_t bar = r->td.bar_addr;
    const struct {
        uint64_t src, dst;
        uint32_t len;
        enum testdev_err err;
    } cases[] = {
        {SRC, DST, 0, TESTDEV_ERR_LEN},
        {SRC, DST, TESTDEV_DMA_MAX + 1, TESTDEV_ERR_LEN},
        {SRC, DST, UINT32_MAX, TESTDEV_ERR_LEN},
        {RAM_SIZE, DST, 16, TESTDEV_ERR_SRC},       /* just past RAM */
        {RAM_SIZE - 8, DST, 16, TESTDEV_ERR_SRC},   /* straddling its end */
        {UINT64_MAX - 7, DST, 16, TESTDEV_ERR_SRC}, /* wrapping */
        {1ULL << 47, DST, 16, TESTDEV_ERR_SRC},     /* far away */
        {bar, DST, 16, TESTDEV_ERR_SRC},            /* the device's own registers */
        {SRC, bar, 16, TESTDEV_ERR_DST},            /* ... as the destination */
        {SRC, bar + TESTDEV_MSIX_TABLE, 16, TESTDEV_ERR_DST},
        {SRC, 0xfee00000u, 4, TESTDEV_ERR_DST},    /* the LAPIC, in the hole */
        {SRC, RAM_SIZE - 15, 16, TESTDEV_ERR_DST}, /* one byte too far */
        {SRC, UINT64_MAX, 1, TESTDEV_ERR_DST},     /* the last address */
        {RAM_SIZE, RAM_SIZE, 0, TESTDEV_ERR_LEN},  /* the length is checked first */
    };
    uint8_t *before = malloc(RAM_SIZE);
    assert_non_null(before);

    msix_on(r);
    fill(r, 0, RAM_SIZE, 11);
    memcpy(before, r->h.ram, RAM_SIZE);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        copy(r, cases[i].src, cases[i].dst, cases[i].len);
        assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_ERROR);
        assert_int_equal(rd(r, TESTDEV_REG_ERROR, 4), cases[i].err);
        assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), i + 1);
        assert_int_equal(irqs(r), 1); /* a refused command completes too */
        assert_memory_equal(r->h.ram, before, RAM_SIZE);
    }
    assert_int_equal(r->warnings, 1); /* logged, once */
    assert_string_equal(r->warning, "testdev: refused a copy of 0 bytes from 0x10000 to 0x200000 "
                                    "(error 1)");
    assert_int_equal(r->td.bytes, 0);
    free(before);

    /* The device works on. */
    copy(r, SRC, DST, 32);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_DONE);
    assert_int_equal(rd(r, TESTDEV_REG_ERROR, 4), TESTDEV_ERR_NONE);
    assert_memory_equal(r->h.ram + DST, r->h.ram + SRC, 32);
}

/* ---- MSI-X ---- */

static void msix_masked_then_unmasked(void **state)
{
    struct rig *r = *state;
    const unsigned ctl = r->td.pdev.msix.cap + PCI_MSIX_FLAGS;

    fill(r, SRC, 8, 1);
    /* MSI-X off: nothing is sent or held. */
    copy(r, SRC, DST, 8);
    assert_int_equal(irqs(r), 0);
    assert_int_equal(rd(r, TESTDEV_MSIX_PBA, 8), 0);

    /* On, the entry masked (as reset leaves it): held in the PBA. */
    pci_config_write(&r->td.pdev, ctl, PCI_MSIX_FLAGS_ENABLE, 2);
    copy(r, SRC, DST, 8);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_DONE);
    assert_int_equal(irqs(r), 0);
    assert_int_equal(rd(r, TESTDEV_MSIX_PBA, 8), 1);

    /* Unmasked: the pending interrupt goes out, once. */
    msix_on(r);
    assert_int_equal(irqs(r), 1);
    assert_int_equal(rd(r, TESTDEV_MSIX_PBA, 8), 0);
    copy(r, SRC, DST, 8);
    assert_int_equal(irqs(r), 1);

    /* The function mask holds it the same way. */
    pci_config_write(&r->td.pdev, ctl, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
    copy(r, SRC, DST, 8);
    copy(r, SRC, DST, 8);
    assert_int_equal(irqs(r), 0);
    assert_int_equal(rd(r, TESTDEV_MSIX_PBA, 8), 1);
    pci_config_write(&r->td.pdev, ctl, PCI_MSIX_FLAGS_ENABLE, 2);
    assert_int_equal(irqs(r), 1); /* two completions, one pending bit */
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 5);
}

/* ---- pause, reset ---- */

static void pause_holds_the_doorbell(void **state)
{
    struct rig *r = *state;

    fill(r, SRC, 8, 1);
    wr(r, TESTDEV_REG_SRC, SRC, 8);
    wr(r, TESTDEV_REG_DST, DST, 8);
    wr(r, TESTDEV_REG_LEN, 8, 4);
    /* Rung before the pause, the loop not there yet: the pause takes it. */
    wr(r, TESTDEV_REG_DOORBELL, 1, 4);
    testdev_pause(&r->td);
    assert_true(r->td.pending);
    run_loop(r);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 0);
    /* Rung while paused (a vCPU cannot, but the restore path does). */
    wr(r, TESTDEV_REG_DOORBELL, 1, 4);
    run_loop(r);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 0);

    testdev_resume(&r->td);
    run_loop(r);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 1);
    assert_false(r->td.pending);
    run_loop(r);
    assert_int_equal(rd(r, TESTDEV_REG_COUNT, 4), 1);
}

static void reset_is_power_on(void **state)
{
    struct rig *r = *state;
    uint64_t first = r->td.bar_addr;

    msix_on(r);
    wr(r, TESTDEV_REG_SCRATCH, 7, 4);
    copy(r, RAM_SIZE, DST, 8);
    pci_config_write(&r->td.pdev, PCI_BASE_ADDRESS_0, (uint32_t)first + 0x100000, 4);
    wr(r, TESTDEV_REG_DOORBELL, 1, 4); /* rung, the loop not there yet */
    testdev_reset(&r->td);
    run_loop(r); /* the ring went with the reset */
    assert_int_equal(r->td.bar_addr, first);
    assert_int_equal(r->td.bell.addr, first + TESTDEV_REG_DOORBELL);
    for (unsigned off = TESTDEV_REG_SCRATCH; off < 0x30; off += 4)
        assert_int_equal(rd(r, off, 4), 0);
    assert_int_equal(pci_config_read(&r->td.pdev, r->td.pdev.msix.cap + PCI_MSIX_FLAGS, 2) &
                         PCI_MSIX_FLAGS_ENABLE,
                     0);
    (void)irqs(r);
    fill(r, SRC, 8, 1);
    copy(r, SRC, DST, 8);
    assert_int_equal(rd(r, TESTDEV_REG_STATUS, 4), TESTDEV_ST_DONE);
    assert_int_equal(irqs(r), 0); /* MSI-X is off again */
}

/* ---- snapshots ---- */

static void save_td(struct state_out *out, void *ctx)
{
    state_begin(out, "testdev", TESTDEV_STATE_COMPATIBLE);
    if (testdev_save(ctx, out) == 0)
        state_end(out);
}

static int restore_td(const void *tree, struct testdev *td, struct errbuf *eb)
{
    struct state_in root = state_test_root(tree, eb), in;
    if (state_open(&root, "testdev", TESTDEV_STATE_COMPATIBLE, &in))
        return in.err;
    return testdev_restore(td, &in);
}

/* What a driver can read: configuration space, registers, MSI-X table and PBA. */
static void read_all(struct rig *r, uint32_t *v, size_t n)
{
    size_t k = 0;
    for (unsigned off = 0; off < PCI_CFG_SIZE; off += 4)
        v[k++] = pci_config_read(&r->td.pdev, off, 4);
    for (unsigned off = 0; off < 0x30; off += 4)
        v[k++] = (uint32_t)rd(r, off, 4);
    for (unsigned off = 0; off < 16 * TESTDEV_VECTORS; off += 4)
        v[k++] = (uint32_t)rd(r, TESTDEV_MSIX_TABLE + off, 4);
    v[k++] = (uint32_t)rd(r, TESTDEV_MSIX_PBA, 4);
    assert_int_equal(k, n);
}

#define NREGS (PCI_CFG_SIZE / 4 + 12 + 4 * TESTDEV_VECTORS + 1)

static void save_restore_round_trip(void **state)
{
    static uint8_t tree[STATE_TEST_TREE];
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    uint32_t a[NREGS], b[NREGS];

    /* Busy: registers set, a refused command, MSI-X on with the vector masked and pending,
     * the BAR moved, a doorbell rung and not yet run. */
    msix_on(r);
    fill(r, SRC, 64, 4);
    copy(r, SRC, RAM_SIZE, 64);
    wr(r, TESTDEV_MSIX_TABLE + 12, 1, 4);
    copy(r, SRC, DST + 1, 64);
    (void)irqs(r);
    wr(r, TESTDEV_REG_SCRATCH, 0x5a5a, 4);
    wr(r, TESTDEV_REG_DST, DST + 128, 8);
    pci_config_write(&r->td.pdev, PCI_BASE_ADDRESS_0, (uint32_t)r->td.bar_addr + 0x10000, 4);
    wr(r, TESTDEV_REG_DOORBELL, 1, 4);
    testdev_pause(&r->td);
    read_all(r, a, NREGS);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_td, &r->td), 0);

    struct rig *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    assert_int_equal(rig_init(n), 0);
    memcpy(n->h.ram, r->h.ram, RAM_SIZE); /* the memory file */
    assert_int_equal(restore_td(tree, &n->td, &eb), 0);
    assert_int_equal(n->td.bar_addr, r->td.bar_addr);
    assert_int_equal(n->td.bell.addr, r->td.bell.addr);
    read_all(n, b, NREGS);
    assert_memory_equal(a, b, sizeof(a));

    /* The same behaviour next: the pending doorbell runs, then the unmask delivers. */
    run_loop(n);
    assert_int_equal(rd(n, TESTDEV_REG_COUNT, 4), 3);
    assert_memory_equal(n->h.ram + DST + 128, n->h.ram + SRC, 64);
    assert_int_equal(irqs(n), 0);
    wr(n, TESTDEV_MSIX_TABLE + 12, 0, 4);
    assert_int_equal(irqs(n), 1);
    const struct irq_msi_route *rt = &n->h.rt.msi[n->td.gsi - IRQ_ROUTING_FIRST_MSI];
    assert_true(rt->valid);
    assert_int_equal(rt->data, 0x51);
    rig_destroy(n);
    free(n);
}

static void restore_refuses_hostile_state(void **state)
{
    static uint8_t tree[STATE_TEST_TREE];
    struct rig *r = *state;
    const struct {
        const char *prop;
        uint32_t v;
    } bad[] = {{"status", 4},
               {"status", 0x80000001u},
               {"error", TESTDEV_ERR_MAX + 1},
               {"error", UINT32_MAX}};

    copy(r, RAM_SIZE, DST, 8);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_td, &r->td), 0);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        static uint8_t edited[STATE_TEST_TREE];
        struct errbuf eb = {{0}};
        memcpy(edited, tree, sizeof(tree));
        assert_int_equal(state_test_set_u32(edited, "/testdev", bad[i].prop, bad[i].v), 0);

        struct rig *n = calloc(1, sizeof(*n));
        assert_non_null(n);
        assert_int_equal(rig_init(n), 0);
        assert_int_equal(restore_td(edited, &n->td, &eb), -EINVAL);
        char want[64];
        snprintf(want, sizeof(want), "'%s'", bad[i].prop);
        assert_non_null(strstr(eb.msg, want));
        /* Refused: the fresh device is as testdev_init() made it, and works. */
        assert_int_equal(rd(n, TESTDEV_REG_STATUS, 4), 0);
        assert_int_equal(rd(n, TESTDEV_REG_ERROR, 4), 0);
        assert_int_equal(rd(n, TESTDEV_REG_COUNT, 4), 0);
        fill(n, SRC, 8, 1);
        copy(n, SRC, DST, 8);
        assert_int_equal(rd(n, TESTDEV_REG_STATUS, 4), TESTDEV_ST_DONE);
        rig_destroy(n);
        free(n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(register_file, setup, teardown),
        cmocka_unit_test_setup_teardown(status_is_write_one_to_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(dma_copies_and_interrupts, setup, teardown),
        cmocka_unit_test_setup_teardown(doorbell_is_an_ioeventfd, setup, teardown),
        cmocka_unit_test_setup_teardown(dma_overlap_is_memmove, setup, teardown),
        cmocka_unit_test_setup_teardown(dma_refuses_hostile_input, setup, teardown),
        cmocka_unit_test_setup_teardown(msix_masked_then_unmasked, setup, teardown),
        cmocka_unit_test_setup_teardown(pause_holds_the_doorbell, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_is_power_on, setup, teardown),
        cmocka_unit_test_setup_teardown(save_restore_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(restore_refuses_hostile_state, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
