/*
 * pci.c driven through its ports, as a guest does: Linux's conf1 probe, the
 * host bridge, absent functions, BAR sizing and re-assignment (checked on a
 * real MMIO bus), memory decoding, read-only fields, the capability list, and
 * MSI-X (table, masking, PBA, the transport callbacks and their order).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/pci.h"
#include "petrel/platform.h"
#include "fake_state.h"

#define CONF_ADDR 0xcf8
#define CONF_DATA 0xcfc

/* The fake function's layout. */
#define FAKE_BAR0_SIZE (16 * KiB) /* 32-bit, the owner's registers */
#define FAKE_BAR2_SIZE (64 * KiB) /* 64-bit prefetchable: owner registers + MSI-X */
#define FAKE_VECTORS   70         /* > 64: the PBA has two qwords */
#define FAKE_TABLE_OFF 0x2000
#define FAKE_PBA_OFF   0x3000
#define FAKE_VNDR_LEN  8
/* pci_bus_add() places the largest BAR first, from the start of the window. */
#define FAKE1_BAR2 ((uint64_t)PLAT_PCI_MMIO_BASE)
#define FAKE1_BAR0 ((uint64_t)PLAT_PCI_MMIO_BASE + FAKE_BAR2_SIZE)

enum ev_type { EV_MOVED, EV_CONTROL, EV_VECTOR, EV_SIGNAL };

struct ev {
    enum ev_type type;
    unsigned n;    /* BAR or vector */
    uint64_t a, b; /* old/new address; or the vector's address */
    uint32_t data;
    bool x, y; /* enabled/function masked; or masked */
};

struct fake {
    struct pci_dev pci;
    struct ev log[512];
    unsigned nlog;
    bool unlocked_callback; /* a callback ran without pdev->dev.lock */
    unsigned bar_reads, bar_writes;
    unsigned last_bar;
    uint64_t last_offset, last_value;
    unsigned last_size;
    int signal_ret;
};

struct fixture {
    struct bus pio, mmio;
    struct pci_bus pci;
    struct fake f1, f2;
    unsigned warnings;
    char last_warning[256];
};

static struct fake *to_fake(struct pci_dev *p)
{
    return container_of(p, struct fake, pci);
}

static void check_locked(struct fake *f)
{
    int err = pthread_mutex_trylock(&f->pci.dev.lock);
    if (err == 0) {
        pthread_mutex_unlock(&f->pci.dev.lock);
        f->unlocked_callback = true;
    }
}

/* Records a callback; past the log's end only counts (never fails under the device lock). */
static void log_ev(struct fake *f, struct ev e)
{
    check_locked(f);
    if (f->nlog < ARRAY_SIZE(f->log))
        f->log[f->nlog] = e;
    f->nlog++;
}

static uint64_t fake_bar_read(struct pci_dev *p, unsigned bar, uint64_t offset, unsigned size)
{
    struct fake *f = to_fake(p);
    check_locked(f);
    f->bar_reads++;
    f->last_bar = bar;
    f->last_offset = offset;
    f->last_size = size;
    return 0xab000000u | bar << 16 | offset;
}

static void fake_bar_write(struct pci_dev *p, unsigned bar, uint64_t offset, uint64_t value,
                           unsigned size)
{
    struct fake *f = to_fake(p);
    check_locked(f);
    f->bar_writes++;
    f->last_bar = bar;
    f->last_offset = offset;
    f->last_value = value;
    f->last_size = size;
}

static void fake_bar_moved(struct pci_dev *p, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
    log_ev(to_fake(p), (struct ev){.type = EV_MOVED, .n = bar, .a = old_addr, .b = new_addr});
}

static void fake_msix_control(struct pci_dev *p, bool enabled, bool fmasked)
{
    log_ev(to_fake(p), (struct ev){.type = EV_CONTROL, .x = enabled, .y = fmasked});
}

static void fake_msix_vector(struct pci_dev *p, unsigned v, const struct pci_msix_vector *mv)
{
    log_ev(
        to_fake(p),
        (struct ev){.type = EV_VECTOR, .n = v, .a = mv->addr, .data = mv->data, .y = mv->masked});
}

static int fake_msix_signal(struct pci_dev *p, unsigned v)
{
    log_ev(to_fake(p), (struct ev){.type = EV_SIGNAL, .n = v});
    return to_fake(p)->signal_ret;
}

static const struct pci_dev_ops fake_ops = {
    .bar_read = fake_bar_read,
    .bar_write = fake_bar_write,
    .bar_moved = fake_bar_moved,
    .msix_control = fake_msix_control,
    .msix_vector = fake_msix_vector,
    .msix_signal = fake_msix_signal,
};

static const struct pci_id fake_id = {
    .vendor = 0x1af4,
    .device = 0x1042,
    .subsystem_vendor = 0x1af4,
    .subsystem = 0x0002,
    .class_code = 0x010000,
    .revision = 0x01,
};

static int vndr_cap_offset;
static int msix_cap_offset;

/* A function with a 32-bit BAR 0, a 64-bit BAR 2 holding MSI-X, and a vendor capability. */
static void fake_init(struct fake *f)
{
    static const uint8_t vndr[FAKE_VNDR_LEN] = {
        PCI_CAP_ID_VNDR, 0xee, FAKE_VNDR_LEN, 0x5a, 0x11, 0x22, 0x33, 0x44};
    static const uint8_t vndr_wmask[FAKE_VNDR_LEN] = {0xff, 0xff, 0, 0, 0xff, 0xff, 0x0f, 0};

    memset(f, 0, sizeof(*f));
    pci_dev_init(&f->pci, "fake", &fake_id, &fake_ops);
    assert_int_equal(pci_bar_set(&f->pci, 0, FAKE_BAR0_SIZE, 0), 0);
    assert_int_equal(pci_bar_set(&f->pci, 2, FAKE_BAR2_SIZE, PCI_BAR_64 | PCI_BAR_PREFETCH), 0);
    vndr_cap_offset = pci_cap_add(&f->pci, vndr, sizeof(vndr), vndr_wmask);
    assert_int_equal(vndr_cap_offset, PCI_CAP_FIRST);
    msix_cap_offset = pci_msix_init(&f->pci, FAKE_VECTORS, 2, FAKE_TABLE_OFF, FAKE_PBA_OFF);
    assert_int_equal(msix_cap_offset, PCI_CAP_FIRST + FAKE_VNDR_LEN);
}

static void on_warn(void *ctx, const char *msg)
{
    struct fixture *fx = ctx;
    fx->warnings++;
    snprintf(fx->last_warning, sizeof(fx->last_warning), "%s", msg);
}

static int setup(void **state)
{
    struct fixture *fx = test_calloc(1, sizeof(*fx));
    bus_init(&fx->pio, "pio");
    bus_init(&fx->mmio, "mmio");
    pci_bus_init(&fx->pci, &fx->mmio);
    fx->pci.warn = on_warn;
    fx->pci.warn_ctx = fx;
    assert_int_equal(bus_register(&fx->pio, PLAT_PCI_CONF_PORT, PLAT_PCI_CONF_LEN, &fx->pci.dev),
                     0);
    fake_init(&fx->f1);
    assert_int_equal(pci_bus_add(&fx->pci, &fx->f1.pci, 1), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    assert_false(fx->f1.unlocked_callback);
    assert_false(fx->f2.unlocked_callback);
    pci_dev_destroy(&fx->f1.pci);
    if (fx->f2.pci.dev.ops)
        pci_dev_destroy(&fx->f2.pci);
    pci_bus_destroy(&fx->pci);
    /* Every BAR region is gone from the MMIO bus. */
    assert_int_equal(fx->mmio.nr, 0);
    bus_destroy(&fx->pio);
    bus_destroy(&fx->mmio);
    test_free(fx);
    return 0;
}

/* ---- port and MMIO helpers ---- */

static uint32_t in(struct fixture *fx, uint16_t port, unsigned size)
{
    uint32_t v = 0;
    bus_dispatch(&fx->pio, port, &v, size, false);
    return v;
}

static void out(struct fixture *fx, uint16_t port, uint32_t v, unsigned size)
{
    assert_int_equal(bus_dispatch(&fx->pio, port, &v, size, true), 0);
}

static uint32_t conf1(unsigned slot, unsigned reg)
{
    return PCI_CONF1_ENABLE | slot << 11 | (reg & 0xfc);
}

static uint32_t cfg_rd(struct fixture *fx, unsigned slot, unsigned reg, unsigned size)
{
    out(fx, CONF_ADDR, conf1(slot, reg), 4);
    return in(fx, (uint16_t)(CONF_DATA + (reg & 3)), size);
}

static void cfg_wr(struct fixture *fx, unsigned slot, unsigned reg, uint32_t v, unsigned size)
{
    out(fx, CONF_ADDR, conf1(slot, reg), 4);
    out(fx, (uint16_t)(CONF_DATA + (reg & 3)), v, size);
}

static int mmio_rd(struct fixture *fx, uint64_t addr, unsigned size, uint64_t *v)
{
    *v = 0;
    return bus_dispatch(&fx->mmio, addr, v, size, false);
}

static int mmio_wr(struct fixture *fx, uint64_t addr, uint64_t v, unsigned size)
{
    return bus_dispatch(&fx->mmio, addr, &v, size, true);
}

static uint64_t mmio_rd_ok(struct fixture *fx, uint64_t addr, unsigned size)
{
    uint64_t v;
    assert_int_equal(mmio_rd(fx, addr, size, &v), 0);
    return v;
}

static void clear_log(struct fake *f)
{
    f->nlog = 0;
}

static void assert_moved(const struct ev *e, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
    assert_int_equal(e->type, EV_MOVED);
    assert_int_equal(e->n, bar);
    assert_int_equal(e->a, old_addr);
    assert_int_equal(e->b, new_addr);
}

/* ---- conf1 ---- */

/* arch/x86/pci/direct.c: pci_check_type1() and pci_sanity_check(). */
static void linux_conf1_probe(void **state)
{
    struct fixture *fx = *state;

    out(fx, 0xcfb, 0x01, 1);
    uint32_t tmp = in(fx, CONF_ADDR, 4);
    assert_int_equal(tmp, 0);
    out(fx, CONF_ADDR, 0x80000000, 4);
    assert_int_equal(in(fx, CONF_ADDR, 4), 0x80000000);

    /* The sanity check: some devfn on bus 0 has class "host bridge" or Intel's vendor ID. */
    bool found = false;
    for (unsigned devfn = 0; devfn < 0x100 && !found; devfn++) {
        out(fx, CONF_ADDR, PCI_CONF1_ENABLE | devfn << 8 | (PCI_CLASS_DEVICE & 0xfc), 4);
        uint32_t class = in(fx, CONF_DATA + (PCI_CLASS_DEVICE & 3), 2);
        if (class == 0x0600) {
            assert_int_equal(devfn, 0);
            found = true;
        }
    }
    assert_true(found);
    out(fx, CONF_ADDR, tmp, 4);
    assert_int_equal(in(fx, CONF_ADDR, 4), tmp);
}

/* Only a dword at 0xcf8 is CONFIG_ADDRESS; smaller accesses (0xcf9: reboot=pci) pass it by. */
static void config_address_only_dword(void **state)
{
    struct fixture *fx = *state;

    out(fx, CONF_ADDR, conf1(1, 0x10), 4);
    out(fx, 0xcf9, 0x02, 1); /* Linux's BOOT_CF9 reset request */
    out(fx, 0xcf9, 0x06, 1);
    out(fx, 0xcf8, 0x1234, 2);
    out(fx, 0xcfa, 0x5678, 2);
    out(fx, 0xcfb, 0x00, 1);
    assert_int_equal(in(fx, CONF_ADDR, 4), conf1(1, 0x10));
    for (uint16_t port = 0xcf8; port < 0xcfc; port++)
        assert_int_equal(in(fx, port, 1), 0xff);
    assert_int_equal(in(fx, 0xcf8, 2), 0xffff);
    assert_int_equal(in(fx, 0xcfa, 2), 0xffff);
    /* Bits 1:0 are reserved. */
    out(fx, CONF_ADDR, 0x80000003, 4);
    assert_int_equal(in(fx, CONF_ADDR, 4), 0x80000000);
    /* The data port still reaches what CONFIG_ADDRESS selected. */
    assert_int_equal(cfg_rd(fx, 1, PCI_VENDOR_ID, 2), 0x1af4);
}

static void host_bridge_identity(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(cfg_rd(fx, 0, PCI_VENDOR_ID, 4), PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR);
    assert_int_equal(PCI_HOST_VENDOR, 0x8086);
    assert_int_equal(PCI_HOST_DEVICE, 0x0d57);
    assert_int_equal(cfg_rd(fx, 0, PCI_CLASS_REVISION, 4), 0x06000000);
    assert_int_equal(cfg_rd(fx, 0, PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_NORMAL);
    assert_int_equal(cfg_rd(fx, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
    assert_int_equal(cfg_rd(fx, 0, PCI_INTERRUPT_PIN, 1), 0);
    for (unsigned i = 0; i < PCI_NR_BARS; i++) {
        unsigned reg = PCI_BASE_ADDRESS_0 + 4 * i;
        assert_int_equal(cfg_rd(fx, 0, reg, 4), 0);
        cfg_wr(fx, 0, reg, 0xffffffff, 4);
        assert_int_equal(cfg_rd(fx, 0, reg, 4), 0); /* no BAR: sizes to 0 */
    }
    cfg_wr(fx, 0, PCI_VENDOR_ID, 0, 4);
    cfg_wr(fx, 0, PCI_CLASS_REVISION, 0, 4);
    assert_int_equal(cfg_rd(fx, 0, PCI_VENDOR_ID, 4), PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR);
    assert_int_equal(cfg_rd(fx, 0, PCI_CLASS_REVISION, 4), 0x06000000);
}

static void absent_functions_read_all_ones(void **state)
{
    struct fixture *fx = *state;

    for (unsigned slot = 2; slot < PCI_SLOTS; slot++)
        assert_int_equal(cfg_rd(fx, slot, PCI_VENDOR_ID, 4), 0xffffffff);
    /* Function 1-7 of a present slot, bus 1, decoding off, the extended register bits. */
    static const uint32_t addrs[] = {
        PCI_CONF1_ENABLE | 1 << 8,      PCI_CONF1_ENABLE | 1 << 11 | 7 << 8,
        PCI_CONF1_ENABLE | 1 << 16,     1 << 11,
        PCI_CONF1_ENABLE | 1u << 24,    PCI_CONF1_ENABLE | 1 << 11 | 0xfu << 24,
        PCI_CONF1_ENABLE | 0x40u << 24,
    };
    for (unsigned i = 0; i < ARRAY_SIZE(addrs); i++) {
        out(fx, CONF_ADDR, addrs[i], 4);
        assert_int_equal(in(fx, CONF_DATA, 4), 0xffffffff);
        assert_int_equal(in(fx, CONF_DATA + 2, 2), 0xffff);
        assert_int_equal(in(fx, CONF_DATA + 3, 1), 0xff);
        out(fx, CONF_ADDR, addrs[i] | PCI_COMMAND, 4);
        out(fx, CONF_DATA, 0, 2); /* would turn decoding off */
    }
    assert_int_equal(cfg_rd(fx, 1, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
    assert_int_equal(cfg_rd(fx, 1, PCI_VENDOR_ID, 4), 0x10421af4);
}

static void config_data_sizes_and_offsets(void **state)
{
    struct fixture *fx = *state;

    out(fx, CONF_ADDR, conf1(1, PCI_VENDOR_ID), 4);
    assert_int_equal(in(fx, 0xcfc, 4), 0x10421af4);
    assert_int_equal(in(fx, 0xcfc, 2), 0x1af4);
    assert_int_equal(in(fx, 0xcfe, 2), 0x1042);
    assert_int_equal(in(fx, 0xcfd, 2), 0x421a); /* unaligned: bytes 1-2 */
    assert_int_equal(in(fx, 0xcfc, 1), 0xf4);
    assert_int_equal(in(fx, 0xcfd, 1), 0x1a);
    assert_int_equal(in(fx, 0xcfe, 1), 0x42);
    assert_int_equal(in(fx, 0xcff, 1), 0x10);
    /* Accesses running past 0xcff: the part beyond reads all-ones. */
    assert_int_equal(in(fx, 0xcfd, 4), 0xff10421a);
    assert_int_equal(in(fx, 0xcff, 2), 0xff10);
    assert_int_equal(in(fx, 0xcff, 4), 0xffffff10);

    /* Writes at each offset: the cache line size (0x0c) and interrupt line (0x3c). */
    out(fx, CONF_ADDR, conf1(1, PCI_CACHE_LINE_SIZE), 4);
    out(fx, 0xcfc, 0x10, 1);
    assert_int_equal(in(fx, 0xcfc, 4) & 0xff, 0x10);
    out(fx, 0xcfc, 0xffffff20, 4); /* latency timer, header type, BIST: read-only */
    assert_int_equal(in(fx, 0xcfc, 4), 0x00000020);
    cfg_wr(fx, 1, PCI_INTERRUPT_LINE, 0x0b, 1);
    assert_int_equal(cfg_rd(fx, 1, PCI_INTERRUPT_LINE, 1), 0x0b);
    /* Command through the upper word of a dword write at 0xcfe would be status: read-only. */
    out(fx, CONF_ADDR, conf1(1, PCI_COMMAND), 4);
    out(fx, 0xcfe, 0xffff, 2);
    assert_int_equal(in(fx, 0xcfe, 2), PCI_STATUS_CAP_LIST);
    out(fx, 0xcfd, PCI_COMMAND_INTX_DISABLE >> 8, 1);
    assert_int_equal(in(fx, 0xcfc, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
}

/* ---- BARs ---- */

static void bars_pre_assigned(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_0, 4), FAKE1_BAR0);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_2, 4),
                     FAKE1_BAR2 | PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_3, 4), 0);
    assert_int_equal(cfg_rd(fx, 1, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
    /* Decoding from the start: the owner's registers answer at the pre-assigned places. */
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR0 + 0x10, 4), 0xab000010);
    assert_int_equal(fx->f1.last_bar, 0);
    assert_int_equal(fx->f1.last_offset, 0x10);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + 0x4000, 2), 0xab024000 & 0xffff);
    assert_int_equal(fx->f1.last_bar, 2);
    assert_int_equal(fx->f1.last_size, 2);
    assert_int_equal(mmio_wr(fx, FAKE1_BAR2 + 0x18, 0x1122334455667788ULL, 8), 0);
    assert_int_equal(fx->f1.last_value, 0x1122334455667788ULL);
    assert_int_equal(fx->f1.last_offset, 0x18);
    assert_int_equal(fx->f1.last_size, 8);
    /* The owner was told where its BARs are. */
    assert_int_equal(fx->f1.nlog, 2);
    assert_moved(&fx->f1.log[0], 0, PCI_BAR_UNMAPPED, FAKE1_BAR0);
    assert_moved(&fx->f1.log[1], 2, PCI_BAR_UNMAPPED, FAKE1_BAR2);
}

/* What Linux's __pci_read_base() does: decoding off, save, write all-ones, read, restore. */
static uint64_t linux_size_bar(struct fixture *fx, unsigned slot, unsigned bar, bool is64)
{
    unsigned reg = PCI_BASE_ADDRESS_0 + 4 * bar;
    uint16_t cmd = (uint16_t)cfg_rd(fx, slot, PCI_COMMAND, 2);
    cfg_wr(fx, slot, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY, 2);
    uint32_t l = cfg_rd(fx, slot, reg, 4);
    cfg_wr(fx, slot, reg, 0xffffffff, 4);
    uint32_t sz = cfg_rd(fx, slot, reg, 4);
    cfg_wr(fx, slot, reg, l, 4);
    uint64_t mask = sz & PCI_BASE_ADDRESS_MEM_MASK;
    if (is64) {
        uint32_t lh = cfg_rd(fx, slot, reg + 4, 4);
        cfg_wr(fx, slot, reg + 4, 0xffffffff, 4);
        uint32_t szh = cfg_rd(fx, slot, reg + 4, 4);
        cfg_wr(fx, slot, reg + 4, lh, 4);
        mask |= (uint64_t)szh << 32;
    } else {
        mask |= 0xffffffff00000000ULL;
    }
    /* The type bits survive sizing. */
    assert_int_equal(sz & ~PCI_BASE_ADDRESS_MEM_MASK, l & ~PCI_BASE_ADDRESS_MEM_MASK);
    cfg_wr(fx, slot, PCI_COMMAND, cmd, 2);
    return ~mask + 1;
}

static void bar_sizing(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(linux_size_bar(fx, 1, 0, false), FAKE_BAR0_SIZE);
    assert_int_equal(linux_size_bar(fx, 1, 2, true), FAKE_BAR2_SIZE);
    /* The raw sizing values. */
    cfg_wr(fx, 1, PCI_COMMAND, 0, 2);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_0, 4), 0xffffc000);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_2, 0xffffffff, 4);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_3, 0xffffffff, 4);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_2, 4), 0xffff000c);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_3, 4), 0xffffffff);
    /* Unused BARs size to 0. */
    for (unsigned bar = 4; bar < 6; bar++) {
        cfg_wr(fx, 1, PCI_BASE_ADDRESS_0 + 4 * bar, 0xffffffff, 4);
        assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_0 + 4 * bar, 4), 0);
    }
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_1, 0xffffffff, 4);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_1, 4), 0);
    /* Byte writes to a BAR are masked the same way. */
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xff, 1);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_0, 4), 0xffffc000);

    /* After a full sizing round the BARs decode where they were. */
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, (uint32_t)FAKE1_BAR0, 4);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_2, (uint32_t)FAKE1_BAR2, 4);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_3, 0, 4);
    clear_log(&fx->f1);
    cfg_wr(fx, 1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    assert_int_equal(fx->f1.nlog, 2);
    assert_moved(&fx->f1.log[0], 0, PCI_BAR_UNMAPPED, FAKE1_BAR0);
    assert_moved(&fx->f1.log[1], 2, PCI_BAR_UNMAPPED, FAKE1_BAR2);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR0, 4), 0xab000000);
}

static void bar_reassignment(void **state)
{
    struct fixture *fx = *state;
    uint64_t v;

    clear_log(&fx->f1);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
    assert_int_equal(fx->f1.nlog, 1);
    assert_moved(&fx->f1.log[0], 0, FAKE1_BAR0, 0xd0000000);
    assert_int_equal(mmio_rd_ok(fx, 0xd0000000 + 0x3ffc, 4), 0xab003ffc);
    assert_int_equal(mmio_rd(fx, FAKE1_BAR0, 4, &v), -ENOENT);
    /* An unaligned address is aligned by the read-only low bits. */
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xd0001234, 4);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_0, 4), 0xd0000000);
    assert_int_equal(fx->f1.nlog, 1); /* same address: no callback */

    /* A 64-bit BAR moves with each dword, as on hardware; then above 4 GiB. */
    clear_log(&fx->f1);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_2, 0xe0000000, 4);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_3, 0x1, 4);
    assert_int_equal(fx->f1.nlog, 2);
    assert_moved(&fx->f1.log[0], 2, FAKE1_BAR2, 0xe0000000);
    assert_moved(&fx->f1.log[1], 2, 0xe0000000, 0x1e0000000);
    assert_int_equal(pci_bar_addr(&fx->f1.pci, 2), 0x1e0000000);
    assert_int_equal(mmio_rd_ok(fx, 0x1e0000000 + 0x100, 4), 0xab020100);
    assert_int_equal(mmio_rd(fx, 0xe0000000, 4, &v), -ENOENT);
    /* The MSI-X table moved with its BAR. */
    assert_int_equal(mmio_rd_ok(fx, 0x1e0000000 + FAKE_TABLE_OFF + 12, 4),
                     PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static void memory_decoding_toggle(void **state)
{
    struct fixture *fx = *state;
    uint64_t v;

    clear_log(&fx->f1);
    cfg_wr(fx, 1, PCI_COMMAND, PCI_COMMAND_MASTER, 2);
    assert_int_equal(fx->f1.nlog, 2);
    assert_moved(&fx->f1.log[0], 0, FAKE1_BAR0, PCI_BAR_UNMAPPED);
    assert_moved(&fx->f1.log[1], 2, FAKE1_BAR2, PCI_BAR_UNMAPPED);
    assert_int_equal(mmio_rd(fx, FAKE1_BAR0, 4, &v), -ENOENT);
    assert_int_equal(mmio_rd(fx, FAKE1_BAR2, 4, &v), -ENOENT);
    assert_int_equal(fx->mmio.nr, 0);
    /* Moving a BAR while decoding is off calls nothing; decoding on maps it there. */
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
    cfg_wr(fx, 1, PCI_COMMAND, PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE, 2);
    assert_int_equal(fx->f1.nlog, 2);
    cfg_wr(fx, 1, PCI_COMMAND, PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY, 2);
    assert_int_equal(fx->f1.nlog, 4);
    assert_moved(&fx->f1.log[2], 0, PCI_BAR_UNMAPPED, 0xd0000000);
    assert_moved(&fx->f1.log[3], 2, PCI_BAR_UNMAPPED, FAKE1_BAR2);
    assert_int_equal(mmio_rd_ok(fx, 0xd0000000, 4), 0xab000000);
    assert_int_equal(pci_command(&fx->f1.pci), PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
    /* Toggling another bit leaves the BARs alone. */
    cfg_wr(fx, 1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    assert_int_equal(fx->f1.nlog, 4);
}

static void bar_conflicts_are_refused_once(void **state)
{
    struct fixture *fx = *state;
    uint64_t v;

    fake_init(&fx->f2);
    assert_int_equal(pci_bus_add(&fx->pci, &fx->f2.pci, -1), 0);
    assert_int_equal(fx->f2.pci.slot, 2);
    uint64_t f2_bar0 = pci_bar_addr(&fx->f2.pci, 0);
    assert_true(f2_bar0 >= FAKE1_BAR0 + FAKE_BAR0_SIZE);
    assert_int_equal(f2_bar0 % FAKE_BAR0_SIZE, 0);

    /* f2's BAR 0 onto f1's: not registered, the owner told it decodes nowhere, one warning. */
    clear_log(&fx->f2);
    cfg_wr(fx, 2, PCI_BASE_ADDRESS_0, (uint32_t)FAKE1_BAR0, 4);
    assert_int_equal(fx->f2.nlog, 1);
    assert_moved(&fx->f2.log[0], 0, f2_bar0, PCI_BAR_UNMAPPED);
    assert_int_equal(fx->warnings, 1);
    assert_non_null(strstr(fx->last_warning, "overlaps"));
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR0 + 4, 4), 0xab000004);
    assert_int_equal(fx->f2.bar_reads, 0);
    assert_int_equal(mmio_rd(fx, f2_bar0, 4, &v), -ENOENT);
    /* Straddling f1's 64-bit BAR: refused, not logged again, no callback (still nowhere). */
    cfg_wr(fx, 2, PCI_BASE_ADDRESS_0, (uint32_t)FAKE1_BAR2 + 0x4000, 4);
    assert_int_equal(fx->f2.nlog, 1);
    assert_int_equal(fx->warnings, 1);
    /* Somewhere free: decodes again. */
    cfg_wr(fx, 2, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
    assert_int_equal(fx->f2.nlog, 2);
    assert_moved(&fx->f2.log[1], 0, PCI_BAR_UNMAPPED, 0xd0000000);
    assert_int_equal(mmio_rd_ok(fx, 0xd0000000, 4), 0xab000000);
    assert_int_equal(fx->f2.bar_reads, 1);
    /* The guest can still re-program everything. */
    cfg_wr(fx, 2, PCI_BASE_ADDRESS_0, (uint32_t)f2_bar0, 4);
    assert_int_equal(mmio_rd_ok(fx, f2_bar0, 4), 0xab000000);
}

static void pre_assignment_allocator(void **state)
{
    struct fixture *fx = *state;
    uint64_t a, b;

    assert_int_equal(pci_bus_alloc_mmio(&fx->pci, 4 * KiB, &a), 0);
    assert_true(a >= FAKE1_BAR0 + FAKE_BAR0_SIZE);
    assert_int_equal(pci_bus_alloc_mmio(&fx->pci, 256 * MiB, &b), 0);
    assert_int_equal(b % (256 * MiB), 0);
    assert_true(b > a);
    assert_int_equal(pci_bus_alloc_mmio(&fx->pci, 3 * KiB, &a), -EINVAL);
    assert_int_equal(pci_bus_alloc_mmio(&fx->pci, 1 * GiB, &a), -ENOSPC);
    /* Fill the window: 16 MiB ranges up to 0xfe000000, then 1 MiB ones up to the IOAPIC. */
    while (pci_bus_alloc_mmio(&fx->pci, 16 * MiB, &a) == 0)
        assert_true(a + 16 * MiB <= PLAT_IOAPIC_GPA);
    assert_int_equal(a, 0xfd000000);
    while (pci_bus_alloc_mmio(&fx->pci, 1 * MiB, &b) == 0)
        a = b;
    assert_int_equal(a + MiB, (uint64_t)PLAT_PCI_MMIO_BASE + PLAT_PCI_MMIO_SIZE);
    assert_int_equal(a + MiB, PLAT_IOAPIC_GPA);

    /* A function whose BARs no longer fit is refused and leaves its slot free. */
    struct fake big;
    memset(&big, 0, sizeof(big));
    pci_dev_init(&big.pci, "big", &fake_id, &fake_ops);
    assert_int_equal(pci_bar_set(&big.pci, 0, 64 * MiB, 0), 0);
    assert_int_equal(pci_bus_add(&fx->pci, &big.pci, 7), -ENOSPC);
    assert_null(fx->pci.slots[7]);
    pci_dev_destroy(&big.pci);
}

static void set_up_errors(void **state)
{
    struct fixture *fx = *state;
    struct pci_dev d;

    pci_dev_init(&d, "d", &fake_id, NULL);
    assert_int_equal(pci_bar_set(&d, 0, 2 * KiB, 0), -EINVAL);          /* < 4 KiB */
    assert_int_equal(pci_bar_set(&d, 0, 12 * KiB, 0), -EINVAL);         /* not a power of 2 */
    assert_int_equal(pci_bar_set(&d, 6, 4 * KiB, 0), -EINVAL);          /* no BAR 6 */
    assert_int_equal(pci_bar_set(&d, 5, 4 * KiB, PCI_BAR_64), -EINVAL); /* no upper half */
    assert_int_equal(pci_bar_set(&d, 0, 4 * GiB, 0), -EINVAL);          /* 32-bit */
    assert_int_equal(pci_bar_set(&d, 0, 4 * KiB, 0x80), -EINVAL);
    assert_int_equal(pci_bar_set(&d, 0, 4 * KiB, PCI_BAR_64), 0);
    assert_int_equal(pci_bar_set(&d, 1, 4 * KiB, 0), -EBUSY); /* the upper half */
    assert_int_equal(pci_bar_set(&d, 0, 4 * KiB, 0), -EBUSY);
    assert_int_equal(pci_bar_set(&d, 2, 8 * KiB, 0), 0);
    assert_int_equal(pci_msix_init(&d, 4, 3, 0, 0x800), -EINVAL);     /* no BAR 3 */
    assert_int_equal(pci_msix_init(&d, 4, 1, 0, 0x800), -EINVAL);     /* the upper half */
    assert_int_equal(pci_msix_init(&d, 0, 0, 0, 0x800), -EINVAL);     /* no vectors */
    assert_int_equal(pci_msix_init(&d, 2049, 0, 0, 0x800), -EINVAL);  /* too many */
    assert_int_equal(pci_msix_init(&d, 4, 0, 4, 0x800), -EINVAL);     /* unaligned */
    assert_int_equal(pci_msix_init(&d, 4, 0, 0, 0x38), -EINVAL);      /* PBA in the table */
    assert_int_equal(pci_msix_init(&d, 4, 0, 0xff8, 0x800), -EINVAL); /* past the BAR */
    assert_int_equal(pci_msix_init(&d, 65, 0, 0, 0xff8), -EINVAL);    /* PBA past the BAR */
    assert_int_equal(pci_msix_init(&d, 4, 2, 0x1000, 0x1800), PCI_CAP_FIRST);
    assert_int_equal(pci_msix_init(&d, 4, 2, 0x1000, 0x1800), -EEXIST);
    uint8_t cap[200] = {PCI_CAP_ID_VNDR};
    assert_int_equal(pci_cap_add(&d, cap, 1, NULL), -EINVAL);
    assert_int_equal(pci_cap_add(&d, cap, sizeof(cap), NULL), -ENOSPC); /* 0x4c + 200 > 256 */
    assert_int_equal(pci_cap_add(&d, cap, 180, NULL), 0x4c);
    assert_int_equal(pci_cap_add(&d, cap, 4, NULL), -ENOSPC); /* 0x100 */
    assert_int_equal(pci_bus_add(&fx->pci, &d, 1), -EBUSY);   /* f1's slot */
    assert_int_equal(pci_bus_add(&fx->pci, &d, 32), -EINVAL);
    assert_int_equal(pci_bus_add(&fx->pci, &d, 31), 0);
    assert_int_equal(pci_bar_set(&d, 4, 4 * KiB, 0), -EBUSY); /* after pci_bus_add */
    assert_int_equal(pci_cap_add(&d, cap, 4, NULL), -EBUSY);
    assert_int_equal(cfg_rd(fx, 31, PCI_VENDOR_ID, 2), 0x1af4);
    pci_dev_destroy(&d);
    assert_int_equal(cfg_rd(fx, 31, PCI_VENDOR_ID, 2), 0xffff);
}

/* ---- read-only fields and capabilities ---- */

static void read_only_fields_stay(void **state)
{
    struct fixture *fx = *state;
    uint32_t before[PCI_CFG_SIZE / 4];

    for (unsigned reg = 0; reg < PCI_CFG_SIZE; reg += 4)
        before[reg / 4] = cfg_rd(fx, 1, reg, 4);
    /* The guest writes all-ones, then zeroes, everywhere, in every size. */
    for (unsigned size = 1; size <= 4; size <<= 1) {
        for (unsigned pass = 0; pass < 2; pass++) {
            for (unsigned reg = 0; reg < PCI_CFG_SIZE; reg += size)
                cfg_wr(fx, 1, reg, pass ? 0 : 0xffffffff, size);
        }
    }
    for (unsigned reg = 0; reg < PCI_CFG_SIZE; reg += 4) {
        uint32_t now = cfg_rd(fx, 1, reg, 4);
        uint32_t wm = 0;
        for (unsigned i = 0; i < 4; i++)
            wm |= (uint32_t)fx->f1.pci.wmask[reg + i] << (8 * i);
        assert_int_equal(now & ~wm, before[reg / 4] & ~wm);
    }
    /* Named fields, read through the ports. */
    assert_int_equal(cfg_rd(fx, 1, PCI_VENDOR_ID, 4), 0x10421af4);
    assert_int_equal(cfg_rd(fx, 1, PCI_CLASS_REVISION, 4), 0x01000001);
    assert_int_equal(cfg_rd(fx, 1, PCI_HEADER_TYPE, 1), 0);
    assert_int_equal(cfg_rd(fx, 1, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x00021af4);
    assert_int_equal(cfg_rd(fx, 1, PCI_CAPABILITY_LIST, 1), PCI_CAP_FIRST);
    assert_int_equal(cfg_rd(fx, 1, PCI_STATUS, 2), PCI_STATUS_CAP_LIST);
    assert_int_equal(cfg_rd(fx, 1, PCI_INTERRUPT_PIN, 1), 0);
    assert_int_equal(cfg_rd(fx, 1, PCI_ROM_ADDRESS, 4), 0);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_0, 4) & 0xf, 0);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_2, 4) & 0xf, 0xc);
    assert_int_equal(cfg_rd(fx, 1, msix_cap_offset + PCI_MSIX_TABLE, 4), FAKE_TABLE_OFF | 2);
    assert_int_equal(cfg_rd(fx, 1, msix_cap_offset + PCI_MSIX_PBA, 4), FAKE_PBA_OFF | 2);
    assert_int_equal(cfg_rd(fx, 1, msix_cap_offset + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE,
                     FAKE_VECTORS - 1);
    /* The writable ones took the all-ones and then the zeroes. */
    cfg_wr(fx, 1, PCI_COMMAND, 0xffff, 2);
    assert_int_equal(cfg_rd(fx, 1, PCI_COMMAND, 2), PCI_COMMAND_WRITABLE);
    assert_int_equal(cfg_rd(fx, 1, PCI_CACHE_LINE_SIZE, 1), 0);
    assert_int_equal(cfg_rd(fx, 1, PCI_INTERRUPT_LINE, 1), 0);
    assert_int_equal(cfg_rd(fx, 1, PCI_LATENCY_TIMER, 1), 0);
}

static void capability_list_walk(void **state)
{
    struct fixture *fx = *state;
    unsigned ids[8], offs[8], n = 0;

    assert_true(cfg_rd(fx, 1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    /* Linux's __pci_find_next_cap_ttl(): follow next pointers, low two bits masked. */
    for (unsigned pos = cfg_rd(fx, 1, PCI_CAPABILITY_LIST, 1); pos; n++) {
        assert_true(n < ARRAY_SIZE(ids));
        assert_true(pos >= PCI_CAP_FIRST && pos % 4 == 0);
        uint32_t hdr = cfg_rd(fx, 1, pos, 2);
        ids[n] = hdr & 0xff;
        offs[n] = pos;
        pos = (hdr >> 8) & 0xfc;
    }
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], PCI_CAP_ID_VNDR);
    assert_int_equal(offs[0], vndr_cap_offset);
    assert_int_equal(ids[1], PCI_CAP_ID_MSIX);
    assert_int_equal(offs[1], msix_cap_offset);

    /* The vendor capability's bytes, and its writable mask (bytes 4, 5 and the low 4 bits of 6). */
    unsigned vc = (unsigned)vndr_cap_offset;
    assert_int_equal(cfg_rd(fx, 1, vc, 4), 0x5a080000 | (unsigned)msix_cap_offset << 8 | 0x09);
    assert_int_equal(cfg_rd(fx, 1, vc + 4, 4), 0x44332211);
    cfg_wr(fx, 1, vc, 0xffffffff, 4); /* id, next, length, type: read-only */
    cfg_wr(fx, 1, vc + 4, 0xa5a5a5a5, 4);
    assert_int_equal(cfg_rd(fx, 1, vc, 4), 0x5a080000 | (unsigned)msix_cap_offset << 8 | 0x09);
    assert_int_equal(cfg_rd(fx, 1, vc + 4, 4), 0x4435a5a5);
    /* Message control: only enable and function mask are writable. */
    cfg_wr(fx, 1, msix_cap_offset + PCI_MSIX_FLAGS, 0x3fff, 2);
    assert_int_equal(cfg_rd(fx, 1, msix_cap_offset + PCI_MSIX_FLAGS, 2), FAKE_VECTORS - 1);
}

/* ---- MSI-X ---- */

static uint64_t table(unsigned v, unsigned field)
{
    return FAKE1_BAR2 + FAKE_TABLE_OFF + v * PCI_MSIX_ENTRY_SIZE + field;
}

static void msix_set_control(struct fixture *fx, uint16_t ctl)
{
    cfg_wr(fx, 1, msix_cap_offset + PCI_MSIX_FLAGS, ctl, 2);
}

static void assert_vector_ev(const struct ev *e, unsigned v, uint64_t addr, uint32_t data,
                             bool masked)
{
    assert_int_equal(e->type, EV_VECTOR);
    assert_int_equal(e->n, v);
    assert_int_equal(e->a, addr);
    assert_int_equal(e->data, data);
    assert_int_equal(e->y, masked);
}

static void msix_table_read_write(void **state)
{
    struct fixture *fx = *state;

    for (unsigned v = 0; v < FAKE_VECTORS; v++) {
        assert_int_equal(mmio_rd_ok(fx, table(v, PCI_MSIX_ENTRY_LOWER_ADDR), 8), 0);
        assert_int_equal(mmio_rd_ok(fx, table(v, PCI_MSIX_ENTRY_DATA), 4), 0);
        assert_int_equal(mmio_rd_ok(fx, table(v, PCI_MSIX_ENTRY_VECTOR_CTRL), 4),
                         PCI_MSIX_ENTRY_CTRL_MASKBIT);
    }
    clear_log(&fx->f1);
    /* Linux's __pci_write_msi_msg(): lower, upper, data, each a dword. */
    assert_int_equal(mmio_wr(fx, table(5, PCI_MSIX_ENTRY_LOWER_ADDR), 0xfee01003, 4), 0);
    assert_int_equal(mmio_wr(fx, table(5, PCI_MSIX_ENTRY_UPPER_ADDR), 0, 4), 0);
    assert_int_equal(mmio_wr(fx, table(5, PCI_MSIX_ENTRY_DATA), 0x4041, 4), 0);
    assert_int_equal(mmio_rd_ok(fx, table(5, PCI_MSIX_ENTRY_LOWER_ADDR), 4), 0xfee01000);
    assert_int_equal(mmio_rd_ok(fx, table(5, 0), 8), 0xfee01000);
    assert_int_equal(mmio_rd_ok(fx, table(5, PCI_MSIX_ENTRY_DATA), 8),
                     (uint64_t)PCI_MSIX_ENTRY_CTRL_MASKBIT << 32 | 0x4041);
    assert_int_equal(mmio_rd_ok(fx, table(5, PCI_MSIX_ENTRY_DATA + 1), 1), 0x40);
    /* Each change of (address, data) was reported, masked (MSI-X is off). */
    assert_int_equal(fx->f1.nlog, 2);
    assert_vector_ev(&fx->f1.log[0], 5, 0xfee01000, 0, true);
    assert_vector_ev(&fx->f1.log[1], 5, 0xfee01000, 0x4041, true);

    /* A qword write of the address; reserved control bits read 0. */
    assert_int_equal(mmio_wr(fx, table(6, 0), 0x00000001fee02000ULL, 8), 0);
    assert_int_equal(mmio_rd_ok(fx, table(6, PCI_MSIX_ENTRY_UPPER_ADDR), 4), 1);
    assert_int_equal(mmio_wr(fx, table(6, PCI_MSIX_ENTRY_VECTOR_CTRL), 0xfffffffe, 4), 0);
    assert_int_equal(mmio_rd_ok(fx, table(6, PCI_MSIX_ENTRY_VECTOR_CTRL), 4), 0);
    assert_int_equal(mmio_wr(fx, table(6, PCI_MSIX_ENTRY_VECTOR_CTRL), 0xffffffff, 4), 0);
    assert_int_equal(mmio_rd_ok(fx, table(6, PCI_MSIX_ENTRY_VECTOR_CTRL), 4), 1);
    /* The last entry, and the PBA: read-only zeroes. */
    assert_int_equal(mmio_wr(fx, table(FAKE_VECTORS - 1, PCI_MSIX_ENTRY_DATA), 0x77, 4), 0);
    assert_int_equal(mmio_rd_ok(fx, table(FAKE_VECTORS - 1, PCI_MSIX_ENTRY_DATA), 4), 0x77);
    assert_int_equal(mmio_wr(fx, FAKE1_BAR2 + FAKE_PBA_OFF, ~0ULL, 8), 0);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + FAKE_PBA_OFF, 8), 0);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + FAKE_PBA_OFF + 8, 8), 0);
    /* None of that reached the owner; the bytes around the table do. */
    assert_int_equal(fx->f1.bar_writes, 0);
    assert_int_equal(fx->f1.bar_reads, 0);
    mmio_rd_ok(fx, table(FAKE_VECTORS, 0), 4);
    assert_int_equal(fx->f1.bar_reads, 1);
    assert_int_equal(fx->f1.last_offset, FAKE_TABLE_OFF + FAKE_VECTORS * PCI_MSIX_ENTRY_SIZE);
}

/* Programs vector v (masked) with a message. */
static void program(struct fixture *fx, unsigned v, uint32_t addr, uint32_t data)
{
    assert_int_equal(mmio_wr(fx, table(v, PCI_MSIX_ENTRY_LOWER_ADDR), addr, 4), 0);
    assert_int_equal(mmio_wr(fx, table(v, PCI_MSIX_ENTRY_DATA), data, 4), 0);
}

static void unmask(struct fixture *fx, unsigned v, bool masked)
{
    assert_int_equal(mmio_wr(fx, table(v, PCI_MSIX_ENTRY_VECTOR_CTRL), masked, 4), 0);
}

static void msix_enable_and_function_mask(void **state)
{
    struct fixture *fx = *state;

    program(fx, 0, 0xfee00000, 0x30);
    program(fx, 1, 0xfee00000, 0x31);
    unmask(fx, 1, false);
    clear_log(&fx->f1);
    /* Linux's msix_capability_init(): enable with everything masked, then unmask the function. */
    msix_set_control(fx, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    assert_int_equal(fx->f1.nlog, 1);
    assert_int_equal(fx->f1.log[0].type, EV_CONTROL);
    assert_true(fx->f1.log[0].x);
    assert_true(fx->f1.log[0].y);
    msix_set_control(fx, PCI_MSIX_FLAGS_ENABLE);
    assert_int_equal(fx->f1.nlog, 3);
    assert_int_equal(fx->f1.log[1].type, EV_CONTROL);
    assert_false(fx->f1.log[1].y);
    /* Vector 1 (entry unmasked) became deliverable; vector 0 is still masked by its entry. */
    assert_vector_ev(&fx->f1.log[2], 1, 0xfee00000, 0x31, false);
    /* Writing the same control again does nothing. */
    msix_set_control(fx, PCI_MSIX_FLAGS_ENABLE);
    assert_int_equal(fx->f1.nlog, 3);

    assert_int_equal(pci_msix_fire(&fx->f1.pci, 1), PCI_MSIX_SENT);
    assert_int_equal(fx->f1.log[3].type, EV_SIGNAL);
    assert_int_equal(fx->f1.log[3].n, 1);
    /* The function mask holds it in the PBA; clearing it delivers after the route update. */
    msix_set_control(fx, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    assert_int_equal(fx->f1.nlog, 6);
    assert_vector_ev(&fx->f1.log[5], 1, 0xfee00000, 0x31, true);
    assert_int_equal(pci_msix_fire(&fx->f1.pci, 1), PCI_MSIX_PENDING);
    assert_int_equal(fx->f1.nlog, 6);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + FAKE_PBA_OFF, 8), 2);
    msix_set_control(fx, PCI_MSIX_FLAGS_ENABLE);
    assert_int_equal(fx->f1.nlog, 9);
    assert_int_equal(fx->f1.log[6].type, EV_CONTROL);
    assert_vector_ev(&fx->f1.log[7], 1, 0xfee00000, 0x31, false);
    assert_int_equal(fx->f1.log[8].type, EV_SIGNAL);
    assert_int_equal(fx->f1.log[8].n, 1);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + FAKE_PBA_OFF, 8), 0);

    /* Disabled: fires are dropped (no INTx) and set no pending bit. */
    msix_set_control(fx, 0);
    clear_log(&fx->f1);
    assert_int_equal(pci_msix_fire(&fx->f1.pci, 1), PCI_MSIX_DROPPED);
    assert_int_equal(fx->f1.nlog, 0);
    assert_false(pci_msix_pending(&fx->f1.pci, 1));
    assert_int_equal(pci_msix_fire(&fx->f1.pci, FAKE_VECTORS), -EINVAL);
}

static void msix_vector_mask_and_pba(void **state)
{
    struct fixture *fx = *state;

    msix_set_control(fx, PCI_MSIX_FLAGS_ENABLE);
    program(fx, 3, 0xfee00000, 0x33);
    program(fx, 66, 0xfee01000, 0x66);
    clear_log(&fx->f1);
    /* Masked vectors fire into the PBA (qword 0 bit 3, qword 1 bit 2). */
    assert_int_equal(pci_msix_fire(&fx->f1.pci, 3), PCI_MSIX_PENDING);
    assert_int_equal(pci_msix_fire(&fx->f1.pci, 66), PCI_MSIX_PENDING);
    assert_int_equal(pci_msix_fire(&fx->f1.pci, 66), PCI_MSIX_PENDING);
    assert_int_equal(fx->f1.nlog, 0);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + FAKE_PBA_OFF, 8), 1 << 3);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + FAKE_PBA_OFF + 8, 8), 1 << 2);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + FAKE_PBA_OFF + 8, 1), 1 << 2);
    assert_true(pci_msix_pending(&fx->f1.pci, 66));

    /* Unmasking delivers once, after reporting the vector unmasked (the route first). */
    unmask(fx, 66, false);
    assert_int_equal(fx->f1.nlog, 2);
    assert_vector_ev(&fx->f1.log[0], 66, 0xfee01000, 0x66, false);
    assert_int_equal(fx->f1.log[1].type, EV_SIGNAL);
    assert_int_equal(fx->f1.log[1].n, 66);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + FAKE_PBA_OFF + 8, 8), 0);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR2 + FAKE_PBA_OFF, 8), 1 << 3);
    /* Unmasked: straight to the signal. */
    assert_int_equal(pci_msix_fire(&fx->f1.pci, 66), PCI_MSIX_SENT);
    assert_int_equal(fx->f1.nlog, 3);
    /* Linux re-targets a vector masked: mask, new message, unmask. */
    unmask(fx, 66, true);
    program(fx, 66, 0xfee02000, 0x67);
    unmask(fx, 66, false);
    assert_int_equal(fx->f1.nlog, 7);
    assert_vector_ev(&fx->f1.log[3], 66, 0xfee01000, 0x66, true);
    assert_vector_ev(&fx->f1.log[4], 66, 0xfee02000, 0x66, true);
    assert_vector_ev(&fx->f1.log[5], 66, 0xfee02000, 0x67, true);
    assert_vector_ev(&fx->f1.log[6], 66, 0xfee02000, 0x67, false);
    /* A signal failure comes back to the caller. */
    fx->f1.signal_ret = -EBADF;
    assert_int_equal(pci_msix_fire(&fx->f1.pci, 66), -EBADF);
    fx->f1.signal_ret = 0;
    /* Vector 3 still waits for its unmask. */
    assert_true(pci_msix_pending(&fx->f1.pci, 3));
    unmask(fx, 3, false);
    assert_false(pci_msix_pending(&fx->f1.pci, 3));
    assert_int_equal(fx->f1.log[fx->f1.nlog - 1].type, EV_SIGNAL);
    assert_int_equal(fx->f1.log[fx->f1.nlog - 1].n, 3);
}

/* pci_dev_reset(): back to the state pci_bus_add() left. */
static void reset_restores_firmware_state(void **state)
{
    struct fixture *fx = *state;

    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
    cfg_wr(fx, 1, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    msix_set_control(fx, PCI_MSIX_FLAGS_ENABLE);
    program(fx, 2, 0xfee00000, 0x22);
    unmask(fx, 2, false);
    clear_log(&fx->f1);
    pci_dev_reset(&fx->f1.pci);
    assert_int_equal(cfg_rd(fx, 1, PCI_BASE_ADDRESS_0, 4), FAKE1_BAR0);
    assert_int_equal(cfg_rd(fx, 1, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
    assert_int_equal(cfg_rd(fx, 1, msix_cap_offset + PCI_MSIX_FLAGS, 2), FAKE_VECTORS - 1);
    assert_int_equal(mmio_rd_ok(fx, table(2, PCI_MSIX_ENTRY_VECTOR_CTRL), 4), 1);
    assert_int_equal(mmio_rd_ok(fx, table(2, PCI_MSIX_ENTRY_DATA), 4), 0);
    assert_int_equal(mmio_rd_ok(fx, FAKE1_BAR0, 4), 0xab000000);
    assert_moved(&fx->f1.log[0], 0, 0xd0000000, FAKE1_BAR0);
    assert_int_equal(fx->f1.log[1].type, EV_CONTROL);
    assert_false(fx->f1.log[1].x);
    assert_vector_ev(&fx->f1.log[2], 2, 0, 0, true);
    assert_int_equal(fx->f1.nlog, 3);
}

/* ---- save and restore ---- */

static uint8_t tree[STATE_TEST_TREE];

/* The PCI part of a machine's state: the bus, then each function in a node of its own. */
static void save_pci(struct state_out *out, void *ctx)
{
    struct fixture *fx = ctx;
    state_begin(out, "pci", PCI_BUS_STATE_COMPATIBLE);
    assert_int_equal(pci_bus_save(&fx->pci, out), 0);
    state_end(out);
    state_begin(out, "f1", PCI_DEV_STATE_COMPATIBLE);
    assert_int_equal(pci_dev_save(&fx->f1.pci, out), 0);
    state_end(out);
    if (fx->f2.pci.dev.ops) {
        state_begin(out, "f2", PCI_DEV_STATE_COMPATIBLE);
        assert_int_equal(pci_dev_save(&fx->f2.pci, out), 0);
        state_end(out);
    }
}

static int restore_node(struct fixture *fx, const char *name, struct errbuf *eb)
{
    struct state_in root = state_test_root(tree, eb), in;
    bool bus = !strcmp(name, "pci");
    struct pci_dev *p = !strcmp(name, "f1") ? &fx->f1.pci : &fx->f2.pci;

    if (state_open(&root, name, bus ? PCI_BUS_STATE_COMPATIBLE : PCI_DEV_STATE_COMPATIBLE, &in))
        return in.err;
    return bus ? pci_bus_restore(&fx->pci, &in) : pci_dev_restore(p, &in);
}

/* The bus first, then the functions, as a VM restores them. */
static int restore_pci(struct fixture *fx, struct errbuf *eb)
{
    int ret = restore_node(fx, "pci", eb);
    if (!ret)
        ret = restore_node(fx, "f1", eb);
    if (!ret && fx->f2.pci.dev.ops)
        ret = restore_node(fx, "f2", eb);
    return ret;
}

/* A new machine with f1 in slot 1 (and f2 in slot 2 if with_f2), set up as the old one was. */
static struct fixture *fixture_new(bool with_f2)
{
    void *p = NULL;
    assert_int_equal(setup(&p), 0);
    struct fixture *fx = p;
    if (with_f2) {
        fake_init(&fx->f2);
        assert_int_equal(pci_bus_add(&fx->pci, &fx->f2.pci, 2), 0);
    }
    return fx;
}

static void fixture_free(struct fixture *fx)
{
    void *p = fx;
    assert_int_equal(teardown(&p), 0);
}

/* Every configuration dword of slot, and CONFIG_ADDRESS, read the same on both machines. */
static void same_config(struct fixture *a, struct fixture *b, unsigned slot)
{
    uint32_t addr = in(a, CONF_ADDR, 4);
    assert_int_equal(in(b, CONF_ADDR, 4), addr);
    for (unsigned reg = 0; reg < PCI_CFG_SIZE; reg += 4)
        assert_int_equal(cfg_rd(b, slot, reg, 4), cfg_rd(a, slot, reg, 4));
    out(a, CONF_ADDR, addr, 4);
    out(b, CONF_ADDR, addr, 4);
}

/* f1's MSI-X table and PBA, read the same on both (BAR 2 is where it started on both). */
static void same_msix(struct fixture *a, struct fixture *b)
{
    for (unsigned v = 0; v < FAKE_VECTORS; v++)
        for (unsigned field = 0; field < PCI_MSIX_ENTRY_SIZE; field += 4)
            assert_int_equal(mmio_rd_ok(b, table(v, field), 4), mmio_rd_ok(a, table(v, field), 4));
    for (unsigned q = 0; q < 2; q++)
        assert_int_equal(mmio_rd_ok(b, FAKE1_BAR2 + FAKE_PBA_OFF + 8 * q, 8),
                         mmio_rd_ok(a, FAKE1_BAR2 + FAKE_PBA_OFF + 8 * q, 8));
}

/* The last callback f got. */
static const struct ev *last_ev(const struct fake *f)
{
    assert_true(f->nlog > 0);
    return &f->log[f->nlog - 1];
}

/*
 * A function the guest re-programmed: BAR 0 moved, bus mastering on, its
 * capability's writable bytes, the OS's scratch bytes, MSI-X enabled with one
 * vector unmasked and one masked with its interrupt pending; CONFIG_ADDRESS
 * left pointing at it. The restored machine reads the same through the ports
 * and the BARs, told the owner what it must know (where BAR 0 is, MSI-X on,
 * vector 66's route), and behaves the same on the next accesses.
 */
static void save_restore_round_trip(void **state)
{
    struct fixture *fx = *state;

    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
    cfg_wr(fx, 1, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    cfg_wr(fx, 1, PCI_CACHE_LINE_SIZE, 0x10, 1);
    cfg_wr(fx, 1, PCI_INTERRUPT_LINE, 0x0b, 1);
    cfg_wr(fx, 1, (unsigned)vndr_cap_offset + 4, 0xa5a5a5a5, 4);
    cfg_wr(fx, 0, PCI_COMMAND, PCI_COMMAND_MASTER, 2); /* the host bridge */
    msix_set_control(fx, PCI_MSIX_FLAGS_ENABLE);
    program(fx, 3, 0xfee00000, 0x33);
    program(fx, 66, 0xfee01000, 0x66);
    unmask(fx, 66, false);
    assert_int_equal(pci_msix_fire(&fx->f1.pci, 3), PCI_MSIX_PENDING);
    out(fx, CONF_ADDR, conf1(1, PCI_COMMAND), 4);

    assert_int_equal(state_test_write(tree, sizeof(tree), save_pci, fx), 0);
    struct fixture *n = fixture_new(false);
    clear_log(&n->f1);
    struct errbuf eb = {0};
    assert_int_equal(restore_pci(n, &eb), 0);
    assert_int_equal(n->warnings, 0);

    /* The owner heard: BAR 0 and BAR 2 off the bus (the bus's restore), back on where the
     * registers say, then MSI-X on and the programmed vectors: 3 masked, 66 not. */
    assert_int_equal(n->f1.nlog, 7);
    assert_moved(&n->f1.log[0], 0, FAKE1_BAR0, PCI_BAR_UNMAPPED);
    assert_moved(&n->f1.log[1], 2, FAKE1_BAR2, PCI_BAR_UNMAPPED);
    assert_moved(&n->f1.log[2], 0, PCI_BAR_UNMAPPED, 0xd0000000);
    assert_moved(&n->f1.log[3], 2, PCI_BAR_UNMAPPED, FAKE1_BAR2);
    assert_int_equal(n->f1.log[4].type, EV_CONTROL);
    assert_true(n->f1.log[4].x);
    assert_false(n->f1.log[4].y);
    assert_vector_ev(&n->f1.log[5], 3, 0xfee00000, 0x33, true);
    assert_vector_ev(&n->f1.log[6], 66, 0xfee01000, 0x66, false);

    /* CONFIG_DATA reaches the register CONFIG_ADDRESS was left at. */
    assert_int_equal(in(n, CONF_DATA, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    same_config(fx, n, 0);
    same_config(fx, n, 1);
    same_msix(fx, n);
    uint64_t v;
    assert_int_equal(mmio_rd(n, FAKE1_BAR0, 4, &v), -ENOENT);
    assert_int_equal(mmio_rd_ok(n, 0xd0000000 + 8, 4), mmio_rd_ok(fx, 0xd0000000 + 8, 4));
    assert_int_equal(n->f1.last_offset, 8);

    /* The next accesses: 66 is sent, 3 stays pending until unmasked, then is delivered. */
    assert_int_equal(pci_msix_fire(&n->f1.pci, 66), pci_msix_fire(&fx->f1.pci, 66));
    assert_int_equal(last_ev(&n->f1)->type, EV_SIGNAL);
    assert_int_equal(last_ev(&n->f1)->n, 66);
    assert_true(pci_msix_pending(&n->f1.pci, 3));
    clear_log(&n->f1);
    unmask(n, 3, false);
    unmask(fx, 3, false);
    assert_int_equal(n->f1.nlog, 2);
    assert_vector_ev(&n->f1.log[0], 3, 0xfee00000, 0x33, false);
    assert_int_equal(n->f1.log[1].type, EV_SIGNAL);
    assert_int_equal(n->f1.log[1].n, 3);
    same_msix(fx, n);
    /* The guest moves BAR 0 again on both. */
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xd0004000, 4);
    cfg_wr(n, 1, PCI_BASE_ADDRESS_0, 0xd0004000, 4);
    assert_moved(last_ev(&n->f1), 0, 0xd0000000, 0xd0004000);
    assert_int_equal(mmio_rd_ok(n, 0xd0004000, 4), mmio_rd_ok(fx, 0xd0004000, 4));
    fixture_free(n);
}

/*
 * The guest swapped two functions' BAR 0s. In the new process each starts at
 * its old place, which the other must take: restoring the bus first clears
 * the way, so both decode, each where the guest put it, with no conflict.
 */
static void restore_swapped_bars(void **state)
{
    struct fixture *fx = *state;

    fake_init(&fx->f2);
    assert_int_equal(pci_bus_add(&fx->pci, &fx->f2.pci, 2), 0);
    uint64_t f2_bar0 = pci_bar_addr(&fx->f2.pci, 0);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
    cfg_wr(fx, 2, PCI_BASE_ADDRESS_0, (uint32_t)FAKE1_BAR0, 4);
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, (uint32_t)f2_bar0, 4);
    assert_int_equal(fx->warnings, 0);

    assert_int_equal(state_test_write(tree, sizeof(tree), save_pci, fx), 0);
    struct fixture *n = fixture_new(true);
    assert_int_equal(pci_bar_addr(&n->f2.pci, 0), f2_bar0);
    struct errbuf eb = {0};
    assert_int_equal(restore_pci(n, &eb), 0);
    assert_int_equal(n->warnings, 0);
    same_config(fx, n, 1);
    same_config(fx, n, 2);
    mmio_rd_ok(n, f2_bar0, 4);
    assert_int_equal(n->f1.bar_reads, 1);
    mmio_rd_ok(n, FAKE1_BAR0, 4);
    assert_int_equal(n->f2.bar_reads, 1);
    fixture_free(n);
}

/* Saves fx, lets edit() spoil the tree, and expects node to be refused naming want. */
static void expect_refused(struct fixture *fx, const char *node, void (*edit)(void),
                           const char *want)
{
    assert_int_equal(state_test_write(tree, sizeof(tree), save_pci, fx), 0);
    edit();
    struct fixture *n = fixture_new(false);
    clear_log(&n->f1);
    struct errbuf eb = {0};
    assert_int_equal(restore_node(n, node, &eb), -EINVAL);
    if (!strstr(eb.msg, want))
        fail_msg("refusal '%s' does not name %s", eb.msg, want);
    /* Nothing changed, nothing was reported, and the machine works. */
    assert_int_equal(n->f1.nlog, 0);
    assert_int_equal(in(n, CONF_ADDR, 4), 0);
    assert_int_equal(cfg_rd(n, 0, PCI_COMMAND, 2), 0);
    assert_int_equal(cfg_rd(n, 1, PCI_BASE_ADDRESS_0, 4), FAKE1_BAR0);
    assert_int_equal(cfg_rd(n, 1, msix_cap_offset + PCI_MSIX_FLAGS, 2), FAKE_VECTORS - 1);
    assert_int_equal(mmio_rd_ok(n, table(5, PCI_MSIX_ENTRY_VECTOR_CTRL), 4), 1);
    assert_int_equal(mmio_rd_ok(n, FAKE1_BAR0 + 4, 4), 0xab000004);
    msix_set_control(n, PCI_MSIX_FLAGS_ENABLE);
    assert_int_equal(pci_msix_fire(&n->f1.pci, 5), PCI_MSIX_PENDING);
    fixture_free(n);
}

static uint8_t *config_prop(const char *path)
{
    int len = 0;
    uint8_t *cfg = state_test_prop(tree, path, "config", &len);
    assert_non_null(cfg);
    assert_int_equal(len, PCI_CFG_SIZE);
    return cfg;
}

static void set_vendor(void)
{
    config_prop("/f1")[PCI_VENDOR_ID] = 0x42;
}
static void set_bar_type(void)
{
    config_prop("/f1")[PCI_BASE_ADDRESS_0] |= PCI_BASE_ADDRESS_MEM_PREFETCH;
}
static void set_msix_qsize(void)
{
    config_prop("/f1")[msix_cap_offset + PCI_MSIX_FLAGS] = 0x7f;
}
static void set_host_class(void)
{
    config_prop("/pci/host")[PCI_CLASS_DEVICE] = 0x80;
}
static void set_table_ctrl(void)
{
    int len = 0;
    uint8_t *t = state_test_prop(tree, "/f1", "msix-table", &len);
    assert_int_equal(len, FAKE_VECTORS * PCI_MSIX_ENTRY_SIZE);
    t[5 * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL + 3] |= 2; /* big-endian cell */
}
static void set_pending_past_end(void)
{
    int len = 0;
    uint8_t *p = state_test_prop(tree, "/f1", "msix-pending", &len);
    assert_int_equal(len, 12);
    p[11] |= 1 << (FAKE_VECTORS % 32); /* vector 70 */
}
static void set_config_address(void)
{
    assert_int_equal(state_test_set_u32(tree, "/pci", "config-address", 0x80000001), 0);
}
static void drop_pending(void)
{
    assert_int_equal(fdt_nop_property(tree, fdt_path_offset(tree, "/f1"), "msix-pending"), 0);
}

static void restore_refuses_hostile(void **state)
{
    struct fixture *fx = *state;
    cfg_wr(fx, 1, PCI_BASE_ADDRESS_0, 0xd0000000, 4);
    msix_set_control(fx, PCI_MSIX_FLAGS_ENABLE);
    out(fx, CONF_ADDR, conf1(1, 0), 4);

    /* Another function's identity, BAR type or MSI-X size: read-only bits that differ. */
    expect_refused(fx, "f1", set_vendor,
                   "'config': byte 0 is 0x42, but its read-only bits are 0xf4");
    expect_refused(fx, "f1", set_bar_type, "'config': byte 0x10");
    expect_refused(fx, "f1", set_msix_qsize, "'config': byte 0x4a");
    expect_refused(fx, "pci", set_host_class, "state node 'host': property 'config': byte 0xa");
    /* MSI-X bits no table entry holds, a pending bit for a vector that does not exist. */
    expect_refused(fx, "f1", set_table_ctrl, "'msix-table': vector 5 dword 3 is 0x3");
    expect_refused(fx, "f1", set_pending_past_end, "'msix-pending' has bits past vector 69");
    expect_refused(fx, "f1", drop_pending, "no property 'msix-pending'");
    expect_refused(fx, "pci", set_config_address, "'config-address' is 0x80000001");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(linux_conf1_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(config_address_only_dword, setup, teardown),
        cmocka_unit_test_setup_teardown(host_bridge_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(absent_functions_read_all_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(config_data_sizes_and_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(bars_pre_assigned, setup, teardown),
        cmocka_unit_test_setup_teardown(bar_sizing, setup, teardown),
        cmocka_unit_test_setup_teardown(bar_reassignment, setup, teardown),
        cmocka_unit_test_setup_teardown(memory_decoding_toggle, setup, teardown),
        cmocka_unit_test_setup_teardown(bar_conflicts_are_refused_once, setup, teardown),
        cmocka_unit_test_setup_teardown(pre_assignment_allocator, setup, teardown),
        cmocka_unit_test_setup_teardown(set_up_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(read_only_fields_stay, setup, teardown),
        cmocka_unit_test_setup_teardown(capability_list_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(msix_table_read_write, setup, teardown),
        cmocka_unit_test_setup_teardown(msix_enable_and_function_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(msix_vector_mask_and_pba, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_restores_firmware_state, setup, teardown),
        cmocka_unit_test_setup_teardown(save_restore_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(restore_swapped_bars, setup, teardown),
        cmocka_unit_test_setup_teardown(restore_refuses_hostile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
