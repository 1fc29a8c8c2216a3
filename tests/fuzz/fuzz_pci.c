/*
 * Fuzz target: PCI configuration mechanism #1 and a function's BARs, as a
 * hostile guest drives them: the host bridge and a fake function with a
 * 32-bit BAR 0, a 64-bit BAR 2 holding MSI-X (72 vectors: a two-qword PBA)
 * and a vendor capability, on real PIO and MMIO buses (where a sentinel
 * device sits at SENTINEL, for BARs to collide with).
 *
 * Input format (tests/fuzz/gen_corpus.py writes seeds in it): ops, each
 * starting with one byte OP; missing argument bytes read as 0.
 *   OP >> 5 == 0  CONFIG_ADDRESS = a dword built from the next 2 bytes S, R:
 *                 slot S & 0x1f, register R & 0xfc, S & 0x20 function 1,
 *                 S & 0x40 bus 1, S & 0x80 enable bit clear; OP & 1 sets an
 *                 extended register bit (24), OP & 2 writes the next 4 bytes raw
 *   OP >> 5 == 1  CONFIG_DATA write: port 0xcfc + (OP >> 2 & 3), size 1 << (OP & 3)
 *                 (8 means 4), the value in the next 4 bytes
 *   OP >> 5 == 2  CONFIG_DATA read, the same port and size
 *   OP >> 5 == 3  any port access: port 0xcf8 + (OP & 7), next byte A: A & 1
 *                 write (value in the next 4 bytes), size 1 << (A >> 1 & 3)
 *   OP >> 5 == 4  MMIO access where the fake function decodes: OP & 1 write,
 *                 size 1 << (OP >> 1 & 3), target OP >> 3 & 3 (BAR 0, BAR 2,
 *                 the MSI-X table, the PBA), a 2-byte offset, value in the
 *                 next 8 bytes for writes; skipped when that BAR decodes nowhere
 *   OP >> 5 == 5  the transport fires vector (next byte) % (vectors + 2)
 *   OP >> 5 == 6  the guest moves BAR (OP & 1 ? 2 : 0), through the ports, to the
 *                 place the next byte T picks: T % 4 = the other BAR's address,
 *                 the sentinel, the first place, or the next 4 bytes
 *   OP >> 5 == 7  OP & 1: function reset; else the command register = next 2 bytes
 *
 * Checked after every op: read-only bits of both functions never change, nor
 * the writable masks; BAR addresses are aligned to their size; each BAR is
 * registered exactly where it decodes (or nowhere after a conflict) and the
 * owner's bar_moved() view agrees; nothing else is on the MMIO bus; each
 * MSI-X vector's reported (address, data, masked) matches the table and
 * message control, and pending bits belong to masked vectors only; signals
 * are only sent for unmasked vectors whose unmasking was reported first.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "petrel/bus.h"
#include "petrel/pci.h"
#include "petrel/platform.h"

#define BAR0_SIZE (16 * KiB)
#define BAR2_SIZE (64 * KiB)
#define VECTORS   72
#define TABLE_OFF 0x1000
#define PBA_OFF   0x1800
#define SENTINEL  0xd0000000u

struct rig {
    struct bus pio, mmio;
    struct pci_bus pci;
    struct pci_dev fn;
    struct device sentinel;
    uint64_t tracked[PCI_NR_BARS];        /* where bar_moved() said each BAR is */
    struct pci_msix_vector seen[VECTORS]; /* what msix_vector() said */
    bool seen_enabled, seen_fmasked;      /* what msix_control() said */
    uint8_t ro_fn[PCI_CFG_SIZE], ro_host[PCI_CFG_SIZE];
    uint8_t wm_fn[PCI_CFG_SIZE], wm_host[PCI_CFG_SIZE];
    uint64_t first[PCI_NR_BARS];
};

static struct rig *to_rig(struct pci_dev *p)
{
    return container_of(p, struct rig, fn);
}

static uint64_t fn_bar_read(struct pci_dev *p, unsigned bar, uint64_t offset, unsigned size)
{
    (void)p;
    FUZZ_CHECK(bar == 0 || bar == 2);
    FUZZ_CHECK(offset + size <= (bar == 0 ? BAR0_SIZE : BAR2_SIZE));
    return offset;
}

static void fn_bar_write(struct pci_dev *p, unsigned bar, uint64_t offset, uint64_t value,
                         unsigned size)
{
    (void)p, (void)value;
    FUZZ_CHECK(bar == 0 || bar == 2);
    FUZZ_CHECK(offset + size <= (bar == 0 ? BAR0_SIZE : BAR2_SIZE));
}

static void fn_bar_moved(struct pci_dev *p, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
    struct rig *r = to_rig(p);
    FUZZ_CHECK(bar == 0 || bar == 2);
    FUZZ_CHECK(r->tracked[bar] == old_addr);
    FUZZ_CHECK(old_addr != new_addr);
    r->tracked[bar] = new_addr;
}

static void fn_msix_control(struct pci_dev *p, bool enabled, bool fmasked)
{
    struct rig *r = to_rig(p);
    FUZZ_CHECK(enabled != r->seen_enabled || fmasked != r->seen_fmasked);
    r->seen_enabled = enabled;
    r->seen_fmasked = fmasked;
}

static void fn_msix_vector(struct pci_dev *p, unsigned v, const struct pci_msix_vector *mv)
{
    struct rig *r = to_rig(p);
    FUZZ_CHECK(v < VECTORS);
    struct pci_msix_vector *s = &r->seen[v];
    FUZZ_CHECK(s->addr != mv->addr || s->data != mv->data || s->masked != mv->masked);
    *s = *mv;
}

static int fn_msix_signal(struct pci_dev *p, unsigned v)
{
    struct rig *r = to_rig(p);
    FUZZ_CHECK(v < VECTORS);
    /* Only unmasked vectors, and only after the transport heard they are unmasked. */
    FUZZ_CHECK(!r->seen[v].masked);
    FUZZ_CHECK(p->msix.enabled && !p->msix.fmasked);
    FUZZ_CHECK(!(p->msix.table[4 * v + 3] & PCI_MSIX_ENTRY_CTRL_MASKBIT));
    FUZZ_CHECK(!pci_msix_pending(p, v));
    return 0;
}

static const struct pci_dev_ops fn_ops = {
    .bar_read = fn_bar_read,
    .bar_write = fn_bar_write,
    .bar_moved = fn_bar_moved,
    .msix_control = fn_msix_control,
    .msix_vector = fn_msix_vector,
    .msix_signal = fn_msix_signal,
};

static void quiet(void *ctx, const char *msg)
{
    (void)ctx, (void)msg;
}

static uint64_t sentinel_read(struct device *dev, uint64_t offset, unsigned size)
{
    (void)dev, (void)offset, (void)size;
    return 0x5e;
}

static const struct dev_ops sentinel_ops = {.read = sentinel_read};

static uint32_t in(struct rig *r, uint16_t port, unsigned size)
{
    uint32_t v = 0;
    FUZZ_CHECK(bus_dispatch(&r->pio, port, &v, size, false) == 0);
    return v;
}

static void out(struct rig *r, uint16_t port, uint32_t v, unsigned size)
{
    FUZZ_CHECK(bus_dispatch(&r->pio, port, &v, size, true) == 0);
}

/* A config dword read that leaves the guest's CONFIG_ADDRESS as it was. */
static uint32_t peek(struct rig *r, unsigned slot, unsigned reg)
{
    uint32_t saved = in(r, 0xcf8, 4);
    out(r, 0xcf8, PCI_CONF1_ENABLE | slot << 11 | reg, 4);
    uint32_t v = in(r, 0xcfc, 4);
    out(r, 0xcf8, saved, 4);
    FUZZ_CHECK(in(r, 0xcf8, 4) == saved);
    return v;
}

static void poke(struct rig *r, unsigned slot, unsigned reg, uint32_t v)
{
    uint32_t saved = in(r, 0xcf8, 4);
    out(r, 0xcf8, PCI_CONF1_ENABLE | slot << 11 | reg, 4);
    out(r, 0xcfc, v, 4);
    out(r, 0xcf8, saved, 4);
}

static void check_ro(const struct pci_dev *p, const uint8_t *ro, const uint8_t *wm)
{
    FUZZ_CHECK(memcmp(p->wmask, wm, PCI_CFG_SIZE) == 0);
    for (unsigned i = 0; i < PCI_CFG_SIZE; i++)
        FUZZ_CHECK((p->cfg[i] & ~wm[i]) == ro[i]);
}

static void check_invariants(struct rig *r)
{
    struct pci_dev *p = &r->fn;

    check_ro(p, r->ro_fn, r->wm_fn);
    check_ro(&r->pci.host, r->ro_host, r->wm_host);
    FUZZ_CHECK(peek(r, 0, PCI_VENDOR_ID) == (PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR));
    FUZZ_CHECK(peek(r, 0, PCI_CLASS_REVISION) == PCI_HOST_CLASS << 8);
    FUZZ_CHECK(peek(r, 1, PCI_VENDOR_ID) == 0x10411af4);
    FUZZ_CHECK(peek(r, 2, PCI_VENDOR_ID) == 0xffffffff);

    /* BARs: aligned, registered where they decode or nowhere, as the owner was told. */
    bool mem = pci_command(p) & PCI_COMMAND_MEMORY;
    unsigned on_bus = 1; /* the sentinel */
    for (unsigned i = 0; i < PCI_NR_BARS; i++) {
        const struct pci_bar *b = &p->bars[i];
        if (!b->size) {
            FUZZ_CHECK(b->mapped == PCI_BAR_UNMAPPED);
            continue;
        }
        uint64_t addr = pci_bar_addr(p, i);
        unsigned reg = PCI_BASE_ADDRESS_0 + 4 * i;
        uint64_t raw = (uint64_t)(p->cfg[reg] & 0xf0) | (uint64_t)p->cfg[reg + 1] << 8 |
                       (uint64_t)p->cfg[reg + 2] << 16 | (uint64_t)p->cfg[reg + 3] << 24;
        for (unsigned k = 4; k < (b->flags & PCI_BAR_64 ? 8u : 4u); k++)
            raw |= (uint64_t)p->cfg[reg + k] << (8 * k);
        FUZZ_CHECK(addr == raw);
        FUZZ_CHECK(addr % b->size == 0);
        FUZZ_CHECK(b->want == (mem ? addr : PCI_BAR_UNMAPPED));
        FUZZ_CHECK(b->mapped == PCI_BAR_UNMAPPED || b->mapped == b->want);
        FUZZ_CHECK(r->tracked[i] == b->mapped);
        if (b->mapped != PCI_BAR_UNMAPPED) {
            bool found = false;
            for (unsigned k = 0; k < r->mmio.nr; k++)
                if (r->mmio.ranges[k].dev == &b->region)
                    found = r->mmio.ranges[k].base == b->mapped && r->mmio.ranges[k].len == b->size;
            FUZZ_CHECK(found);
            on_bus++;
        }
    }
    FUZZ_CHECK(r->mmio.nr == on_bus);

    /* MSI-X: what the transport heard is what the table and message control say. */
    const struct pci_msix *m = &p->msix;
    uint16_t ctl = (uint16_t)(p->cfg[m->cap + 2] | p->cfg[m->cap + 3] << 8);
    bool enabled = ctl & PCI_MSIX_FLAGS_ENABLE, fmasked = ctl & PCI_MSIX_FLAGS_MASKALL;
    FUZZ_CHECK(m->enabled == enabled && m->fmasked == fmasked);
    FUZZ_CHECK(r->seen_enabled == enabled && r->seen_fmasked == fmasked);
    FUZZ_CHECK((ctl & PCI_MSIX_FLAGS_QSIZE) == VECTORS - 1);
    for (unsigned v = 0; v < VECTORS; v++) {
        const uint32_t *e = &m->table[4 * v];
        bool masked = !enabled || fmasked || (e[3] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
        FUZZ_CHECK((e[0] & 3) == 0 && (e[3] & ~PCI_MSIX_ENTRY_CTRL_MASKBIT) == 0);
        FUZZ_CHECK(r->seen[v].addr == ((uint64_t)e[1] << 32 | e[0]));
        FUZZ_CHECK(r->seen[v].data == e[2]);
        FUZZ_CHECK(r->seen[v].masked == masked);
        if (pci_msix_pending(p, v))
            FUZZ_CHECK(masked);
    }
}

/* The address dword op 0 builds. */
static uint32_t make_address(uint8_t op, uint8_t s, uint8_t reg)
{
    uint32_t a = (uint32_t)(s & 0x1f) << 11 | (reg & 0xfcu);
    if (s & 0x20)
        a |= 1u << 8;
    if (s & 0x40)
        a |= 1u << 16;
    if (!(s & 0x80))
        a |= PCI_CONF1_ENABLE;
    if (op & 1)
        a |= 1u << 24;
    return a;
}

struct input {
    const uint8_t *data;
    size_t size, pos;
};

static uint8_t next8(struct input *in_)
{
    return in_->pos < in_->size ? in_->data[in_->pos++] : 0;
}

static uint64_t next_n(struct input *in_, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)next8(in_) << (8 * i);
    return v;
}

static void mmio_access(struct rig *r, uint8_t op, struct input *in_)
{
    static const unsigned bars[4] = {0, 2, 2, 2};
    static const uint64_t base[4] = {0, 0, TABLE_OFF, PBA_OFF};
    static const uint64_t span[4] = {BAR0_SIZE, BAR2_SIZE, VECTORS * 16 + 8, 24};
    bool write = op & 1;
    unsigned size = 1u << (op >> 1 & 3), t = op >> 3 & 3;
    uint64_t off = base[t] + next_n(in_, 2) % span[t];
    uint64_t value = write ? next_n(in_, 8) : 0;
    uint64_t at = r->fn.bars[bars[t]].mapped;

    if (at == PCI_BAR_UNMAPPED)
        return;
    if (off + size > r->fn.bars[bars[t]].size)
        off = r->fn.bars[bars[t]].size - size;
    FUZZ_CHECK(bus_dispatch(&r->mmio, at + off, &value, size, write) == 0);
}

static void move_bar(struct rig *r, uint8_t op, struct input *in_)
{
    unsigned bar = op & 1 ? 2 : 0, other = 2 - bar;
    uint8_t t = next8(in_);
    uint64_t addr;

    switch (t % 4) {
    case 0:
        addr = pci_bar_addr(&r->fn, other);
        break;
    case 1:
        addr = SENTINEL;
        break;
    case 2:
        addr = r->first[bar];
        break;
    default:
        addr = next_n(in_, 4);
        break;
    }
    poke(r, 1, PCI_BASE_ADDRESS_0 + 4 * bar, (uint32_t)addr);
    if (bar == 2)
        poke(r, 1, PCI_BASE_ADDRESS_3, (uint32_t)(addr >> 32));
}

static void rig_init(struct rig *r)
{
    static const struct pci_id id = {.vendor = 0x1af4,
                                     .device = 0x1041,
                                     .subsystem_vendor = 0x1af4,
                                     .subsystem = 1,
                                     .class_code = 0x020000,
                                     .revision = 1};
    static const uint8_t vndr[8] = {PCI_CAP_ID_VNDR, 0, 8, 1, 0xaa, 0xbb, 0xcc, 0xdd};
    static const uint8_t vndr_wmask[8] = {0xff, 0xff, 0, 0, 0xff, 0x0f, 0xf0, 0};

    memset(r, 0, sizeof(*r));
    bus_init(&r->pio, "pio");
    bus_init(&r->mmio, "mmio");
    pci_bus_init(&r->pci, &r->mmio);
    r->pci.warn = quiet;
    FUZZ_CHECK(bus_register(&r->pio, PLAT_PCI_CONF_PORT, PLAT_PCI_CONF_LEN, &r->pci.dev) == 0);
    device_init(&r->sentinel, "sentinel", &sentinel_ops);
    FUZZ_CHECK(bus_register(&r->mmio, SENTINEL, 4 * KiB, &r->sentinel) == 0);

    pci_dev_init(&r->fn, "fake", &id, &fn_ops);
    FUZZ_CHECK(pci_bar_set(&r->fn, 0, BAR0_SIZE, 0) == 0);
    FUZZ_CHECK(pci_bar_set(&r->fn, 2, BAR2_SIZE, PCI_BAR_64 | PCI_BAR_PREFETCH) == 0);
    FUZZ_CHECK(pci_cap_add(&r->fn, vndr, sizeof(vndr), vndr_wmask) == PCI_CAP_FIRST);
    FUZZ_CHECK(pci_msix_init(&r->fn, VECTORS, 2, TABLE_OFF, PBA_OFF) > PCI_CAP_FIRST);
    for (unsigned i = 0; i < PCI_NR_BARS; i++)
        r->tracked[i] = PCI_BAR_UNMAPPED;
    for (unsigned v = 0; v < VECTORS; v++)
        r->seen[v].masked = true;
    FUZZ_CHECK(pci_bus_add(&r->pci, &r->fn, 1) == 0);
    for (unsigned i = 0; i < PCI_NR_BARS; i++)
        r->first[i] = pci_bar_addr(&r->fn, i);
    for (unsigned i = 0; i < PCI_CFG_SIZE; i++) {
        r->wm_fn[i] = r->fn.wmask[i];
        r->ro_fn[i] = r->fn.cfg[i] & ~r->fn.wmask[i];
        r->wm_host[i] = r->pci.host.wmask[i];
        r->ro_host[i] = r->pci.host.cfg[i] & ~r->pci.host.wmask[i];
    }
}

static void rig_destroy(struct rig *r)
{
    pci_dev_destroy(&r->fn);
    pci_bus_destroy(&r->pci);
    FUZZ_CHECK(bus_unregister(&r->mmio, SENTINEL) == 0);
    FUZZ_CHECK(r->mmio.nr == 0);
    device_destroy(&r->sentinel);
    bus_destroy(&r->pio);
    bus_destroy(&r->mmio);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rig r;
    struct input in_ = {.data = data, .size = size};

    rig_init(&r);
    check_invariants(&r);
    while (in_.pos < in_.size) {
        uint8_t op = next8(&in_);
        switch (op >> 5) {
        case 0: {
            uint8_t s = next8(&in_), reg = next8(&in_);
            uint32_t a = make_address(op, s, reg);
            if (op & 2)
                a = (uint32_t)next_n(&in_, 4);
            out(&r, 0xcf8, a, 4);
            FUZZ_CHECK(in(&r, 0xcf8, 4) == (a & 0xfffffffc));
            break;
        }
        case 1:
        case 2: {
            unsigned sz = 1u << (op & 3);
            if (sz > 4)
                sz = 4;
            uint16_t port = (uint16_t)(0xcfc + (op >> 2 & 3));
            if (op >> 5 == 1) {
                out(&r, port, (uint32_t)next_n(&in_, 4), sz);
            } else {
                uint32_t a = in(&r, 0xcf8, 4);
                uint32_t v = in(&r, port, sz);
                /* Nothing selected (only slots 0 and 1 are present): all-ones. */
                bool absent = !(a & PCI_CONF1_ENABLE) || (a & PCI_CONF1_EXT_MASK) ||
                              (a >> 16 & 0xff) || (a >> 8 & 7) || (a >> 11 & 0x1f) > 1;
                if (absent)
                    FUZZ_CHECK(v == (sz == 4 ? 0xffffffffu : (1u << (8 * sz)) - 1));
                /* The bytes of an access beyond 0xcff read all-ones. */
                for (unsigned b = 4 - (op >> 2 & 3); b < sz; b++)
                    FUZZ_CHECK((v >> (8 * b) & 0xff) == 0xff);
            }
            break;
        }
        case 3: {
            uint8_t a = next8(&in_);
            unsigned sz = 1u << (a >> 1 & 3);
            uint64_t v = a & 1 ? next_n(&in_, 4) : 0;
            if (sz > 4)
                sz = 4;
            uint32_t before = in(&r, 0xcf8, 4);
            FUZZ_CHECK(bus_dispatch(&r.pio, 0xcf8 + (op & 7), &v, sz, a & 1) == 0);
            /* Only a dword write at 0xcf8 changes CONFIG_ADDRESS. */
            if (!(a & 1 && (op & 7) == 0 && sz == 4))
                FUZZ_CHECK(in(&r, 0xcf8, 4) == before);
            break;
        }
        case 4:
            mmio_access(&r, op, &in_);
            break;
        case 5: {
            unsigned v = next8(&in_) % (VECTORS + 2);
            bool was_pending = v < VECTORS && pci_msix_pending(&r.fn, v);
            int ret = pci_msix_fire(&r.fn, v);
            if (v >= VECTORS)
                FUZZ_CHECK(ret == -EINVAL);
            else if (!r.fn.msix.enabled) /* dropped; a bit pending from before stays */
                FUZZ_CHECK(ret == PCI_MSIX_DROPPED && pci_msix_pending(&r.fn, v) == was_pending);
            else if (r.seen[v].masked)
                FUZZ_CHECK(ret == PCI_MSIX_PENDING && pci_msix_pending(&r.fn, v));
            else
                FUZZ_CHECK(ret == PCI_MSIX_SENT);
            break;
        }
        case 6:
            move_bar(&r, op, &in_);
            break;
        default:
            if (op & 1)
                pci_dev_reset(&r.fn);
            else
                poke(&r, 1, PCI_COMMAND, (uint32_t)next_n(&in_, 2));
            break;
        }
        check_invariants(&r);
    }
    rig_destroy(&r);
    return 0;
}
