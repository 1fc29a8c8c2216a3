/* PCI: conf1 ports, bus 0, the host bridge, type-0 functions with BARs, capabilities, MSI-X. */
#include "petrel/pci.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/platform.h"
#include "petrel/trace.h"

#define CONF1_ADDR_MASK 0xfffffffcu /* bits 1:0 are reserved and read 0 */

/* MSI-X table entry dwords and the bits the guest may write in each. */
#define MSIX_ADDR_LO 0
#define MSIX_ADDR_HI 1
#define MSIX_DATA    2
#define MSIX_CTRL    3
static const uint32_t msix_wmask[4] = {0xfffffffc, 0xffffffff, 0xffffffff,
                                       PCI_MSIX_ENTRY_CTRL_MASKBIT};

/* Little-endian fields of the configuration space. */
static uint16_t cfg16(const struct pci_dev *p, unsigned reg)
{
    return (uint16_t)(p->cfg[reg] | p->cfg[reg + 1] << 8);
}

static uint32_t cfg32(const struct pci_dev *p, unsigned reg)
{
    return (uint32_t)p->cfg[reg] | (uint32_t)p->cfg[reg + 1] << 8 |
           (uint32_t)p->cfg[reg + 2] << 16 | (uint32_t)p->cfg[reg + 3] << 24;
}

/* Stores little-endian fields into a config image (cfg, wmask or reset_cfg). */
static void put16(uint8_t *b, unsigned reg, uint16_t v)
{
    b[reg] = (uint8_t)v;
    b[reg + 1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *b, unsigned reg, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        b[reg + i] = (uint8_t)(v >> (8 * i));
}

/* Whether [a, a + alen) and [b, b + blen) share a byte. */
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Logs a problem the guest caused, through the bus's hook or on stderr. */
static void pci_warn(struct pci_bus *bus, const char *fmt, ...) PRINTF(2, 3);

static void pci_warn(struct pci_bus *bus, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (bus->warn)
        bus->warn(bus->warn_ctx, msg);
    else
        fprintf(stderr, "petrel: %s\n", msg);
}

/* The command register. */
uint16_t pci_command(const struct pci_dev *pdev)
{
    return cfg16(pdev, PCI_COMMAND);
}

/* The address in BAR bar's registers, whether or not it decodes. */
uint64_t pci_bar_addr(const struct pci_dev *pdev, unsigned bar)
{
    if (bar >= PCI_NR_BARS || !pdev->bars[bar].size)
        return 0;
    unsigned reg = PCI_BASE_ADDRESS_0 + 4 * bar;
    uint64_t addr = cfg32(pdev, reg) & PCI_BASE_ADDRESS_MEM_MASK;
    if (pdev->bars[bar].flags & PCI_BAR_64)
        addr |= (uint64_t)cfg32(pdev, reg + 4) << 32;
    return addr;
}

/*
 * Makes the MMIO bus match what BAR i decodes now: unregister the old range,
 * register the new one (a conflict leaves it unregistered, logged once), then
 * tell the owner. Only a change of the wanted address does anything, so a
 * conflicting BAR stays off the bus until the guest moves it again.
 */
static void bar_update(struct pci_dev *p, unsigned i)
{
    struct pci_bar *b = &p->bars[i];
    struct bus *mmio = p->bus ? p->bus->mmio : NULL;

    if (!b->size || !p->bus)
        return;
    uint64_t want = pci_command(p) & PCI_COMMAND_MEMORY ? pci_bar_addr(p, i) : PCI_BAR_UNMAPPED;
    if (want == b->want)
        return;
    b->want = want;
    uint64_t old = b->mapped;
    if (old != PCI_BAR_UNMAPPED && mmio)
        (void)bus_unregister(mmio, old);
    b->mapped = PCI_BAR_UNMAPPED;
    if (want != PCI_BAR_UNMAPPED) {
        int ret = mmio ? bus_register(mmio, want, b->size, &b->region) : 0;
        if (!ret) {
            b->mapped = want;
        } else if (!b->warned) {
            b->warned = true;
            pci_warn(p->bus,
                     "PCI %02x:%02x.0 (%s): the guest put BAR %u at 0x%" PRIx64 " (size 0x%" PRIx64
                     "), which %s; it does not decode there",
                     0, p->slot, p->dev.name, i, want, b->size,
                     ret == -EEXIST ? "overlaps another device" : "cannot be registered");
        }
    }
    if (old != b->mapped && p->ops && p->ops->bar_moved)
        p->ops->bar_moved(p, i, old, b->mapped);
}

/* Re-evaluates every BAR (memory decoding changed, or a reset). */
static void bars_update(struct pci_dev *p)
{
    for (unsigned i = 0; i < PCI_NR_BARS; i++)
        bar_update(p, i);
}

/* ---- MSI-X ---- */

/* Whether vector v may not be sent now (PCI 3.0 6.8.2.9). */
static bool msix_masked(const struct pci_msix *m, unsigned v)
{
    return !m->enabled || m->fmasked || (m->table[4 * v + MSIX_CTRL] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

/* Vector's PBA bit. */
bool pci_msix_pending(const struct pci_dev *pdev, unsigned vector)
{
    const struct pci_msix *m = &pdev->msix;
    return vector < m->nr && (m->pba[vector / 64] >> (vector % 64) & 1);
}

/* Hands vector v to the transport to deliver. */
static int msix_signal(struct pci_dev *p, unsigned v)
{
    return p->ops && p->ops->msix_signal ? p->ops->msix_signal(p, v) : 0;
}

/*
 * Reports vector v's (address, data, masked) if it changed, then delivers
 * its pending interrupt if it is now unmasked: in that order, so that the
 * transport's route exists before the signal.
 */
static void msix_sync(struct pci_dev *p, unsigned v)
{
    struct pci_msix *m = &p->msix;
    const uint32_t *e = &m->table[4 * v];
    struct pci_msix_vector now = {
        .addr = (uint64_t)e[MSIX_ADDR_HI] << 32 | e[MSIX_ADDR_LO],
        .data = e[MSIX_DATA],
        .masked = msix_masked(m, v),
    };
    struct pci_msix_vector *was = &m->reported[v];

    if (now.addr != was->addr || now.data != was->data || now.masked != was->masked) {
        *was = now;
        if (p->ops && p->ops->msix_vector)
            p->ops->msix_vector(p, v, &now);
    }
    if (!now.masked && pci_msix_pending(p, v)) {
        m->pba[v / 64] &= ~(1ULL << (v % 64));
        (void)msix_signal(p, v);
    }
}

/* Acts on a message control write: enable and function mask (PCI 3.0 6.8.2.3). */
static void msix_control_update(struct pci_dev *p)
{
    struct pci_msix *m = &p->msix;
    uint16_t ctl = cfg16(p, m->cap + PCI_MSIX_FLAGS);
    bool enabled = ctl & PCI_MSIX_FLAGS_ENABLE, fmasked = ctl & PCI_MSIX_FLAGS_MASKALL;

    if (enabled == m->enabled && fmasked == m->fmasked)
        return;
    m->enabled = enabled;
    m->fmasked = fmasked;
    if (p->ops && p->ops->msix_control)
        p->ops->msix_control(p, enabled, fmasked);
    for (unsigned v = 0; v < m->nr; v++)
        msix_sync(p, v);
}

/* MSI-X as at power-on: table entries masked, nothing pending, message control from cfg. */
static void msix_reset(struct pci_dev *p)
{
    struct pci_msix *m = &p->msix;

    if (!m->nr)
        return;
    for (unsigned v = 0; v < m->nr; v++) {
        uint32_t *e = &m->table[4 * v];
        e[MSIX_ADDR_LO] = e[MSIX_ADDR_HI] = e[MSIX_DATA] = 0;
        e[MSIX_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT; /* entries start masked */
    }
    memset(m->pba, 0, (m->nr + 63) / 64 * sizeof(m->pba[0]));
    msix_control_update(p);
    for (unsigned v = 0; v < m->nr; v++)
        msix_sync(p, v);
}

/* Bytes of the table and of the PBA in their BAR. */
static uint64_t msix_table_len(const struct pci_msix *m)
{
    return (uint64_t)m->nr * PCI_MSIX_ENTRY_SIZE;
}

static uint64_t msix_pba_len(const struct pci_msix *m)
{
    return (m->nr + 63) / 64 * 8;
}

/* Table or PBA bytes; an access that runs past the structure reads 0 there. */
static uint64_t msix_read(struct pci_dev *p, bool pba, uint64_t off, unsigned size)
{
    const struct pci_msix *m = &p->msix;
    uint64_t v = 0;

    for (unsigned i = 0; i < size; i++) {
        uint64_t o = off + i;
        uint8_t byte = 0;
        if (pba && o < msix_pba_len(m))
            byte = (uint8_t)(m->pba[o / 8] >> (8 * (o % 8)));
        else if (!pba && o < msix_table_len(m))
            byte = (uint8_t)(m->table[o / 4] >> (8 * (o % 4)));
        v |= (uint64_t)byte << (8 * i);
    }
    return v;
}

/*
 * A table write of any size at any offset, merged byte by byte under each
 * dword's writable mask; then every entry it touched is re-synced once. (The
 * PBA is read-only.) The spec only defines aligned dword and qword accesses;
 * this gives the others a harmless meaning.
 */
static void msix_table_write(struct pci_dev *p, uint64_t off, uint64_t value, unsigned size)
{
    struct pci_msix *m = &p->msix;
    uint64_t len = msix_table_len(m);

    if (off >= len)
        return;
    for (unsigned i = 0; i < size && off + i < len; i++) {
        uint64_t o = off + i;
        uint32_t *w = &m->table[o / 4];
        unsigned shift = 8 * (unsigned)(o % 4);
        uint32_t mask = msix_wmask[(o / 4) % 4] & (0xffu << shift);
        uint32_t byte = (uint32_t)(uint8_t)(value >> (8 * i)) << shift;
        *w = (*w & ~mask) | (byte & mask);
    }
    uint64_t last = off + size - 1 < len ? off + size - 1 : len - 1;
    for (uint64_t v = off / PCI_MSIX_ENTRY_SIZE; v <= last / PCI_MSIX_ENTRY_SIZE; v++)
        msix_sync(p, (unsigned)v);
}

/* The transport raises vector (see the contract in pci.h). */
static int msix_fire(struct pci_dev *pdev, unsigned vector)
{
    struct pci_msix *m = &pdev->msix;

    if (vector >= m->nr)
        return -EINVAL;
    if (!m->enabled)
        return PCI_MSIX_DROPPED;
    if (msix_masked(m, vector)) {
        m->pba[vector / 64] |= 1ULL << (vector % 64);
        return PCI_MSIX_PENDING;
    }
    int ret = msix_signal(pdev, vector);
    if (ret >= 0)
        m->sent++;
    return ret < 0 ? ret : PCI_MSIX_SENT;
}

int pci_msix_fire_locked(struct pci_dev *pdev, unsigned vector)
{
    int ret = msix_fire(pdev, vector);
    struct trace *t = pdev->bus ? pdev->bus->trace : NULL;

    if (t && TRACE_ON(t, TRACE_IRQ)) {
        struct trace_event e = {.kind = TRACE_IRQ,
                                .op = TRACE_OP_MSI,
                                .addr = vector,
                                .value = (uint64_t)(int64_t)ret,
                                .dev = device_label(&pdev->dev)};
        trace_emit(t, -1, &e);
    }
    return ret;
}

/* pci_msix_fire_locked() for callers that do not hold the lock. */
int pci_msix_fire(struct pci_dev *pdev, unsigned vector)
{
    pthread_mutex_lock(&pdev->dev.lock);
    int ret = pci_msix_fire_locked(pdev, vector);
    pthread_mutex_unlock(&pdev->dev.lock);
    return ret;
}

/* ---- configuration space ---- */

/* A guest read of size bytes at reg; the owner may amend it. */
static uint32_t cfg_read(struct pci_dev *p, unsigned reg, unsigned size)
{
    uint32_t v = 0;

    for (unsigned i = 0; i < size; i++)
        v |= (uint32_t)p->cfg[reg + i] << (8 * i);
    if (p->ops && p->ops->config_read)
        v = p->ops->config_read(p, reg, size, v);
    return v;
}

/* A guest write: only writable bits change; then whatever the new bits decode is acted on. */
static void cfg_write(struct pci_dev *p, unsigned reg, uint32_t value, unsigned size)
{
    uint16_t old_cmd = pci_command(p);

    for (unsigned i = 0; i < size; i++) {
        uint8_t m = p->wmask[reg + i];
        p->cfg[reg + i] = (uint8_t)((p->cfg[reg + i] & ~m) | ((value >> (8 * i)) & m));
    }
    if (overlaps(reg, size, PCI_COMMAND, 2) && ((old_cmd ^ pci_command(p)) & PCI_COMMAND_MEMORY))
        bars_update(p);
    for (unsigned i = 0; i < PCI_NR_BARS; i++) {
        const struct pci_bar *b = &p->bars[i];
        unsigned regs = b->flags & PCI_BAR_64 ? 8 : 4;
        if (b->size && overlaps(reg, size, PCI_BASE_ADDRESS_0 + 4 * i, regs))
            bar_update(p, i);
    }
    if (p->msix.nr && overlaps(reg, size, p->msix.cap + PCI_MSIX_FLAGS, 2))
        msix_control_update(p);
    if (p->ops && p->ops->config_write)
        p->ops->config_write(p, reg, value, size);
}

/* Whether [reg, reg + size) is a 1-4 byte access inside the 256 bytes. */
static bool cfg_access_ok(unsigned reg, unsigned size)
{
    return size >= 1 && size <= 4 && reg < PCI_CFG_SIZE && size <= PCI_CFG_SIZE - reg;
}

/* Configuration accesses for callers that do not hold the lock (tests, set-up). */
uint32_t pci_config_read(struct pci_dev *pdev, unsigned reg, unsigned size)
{
    if (!cfg_access_ok(reg, size))
        return UINT32_MAX;
    pthread_mutex_lock(&pdev->dev.lock);
    uint32_t v = cfg_read(pdev, reg, size);
    pthread_mutex_unlock(&pdev->dev.lock);
    return v;
}

void pci_config_write(struct pci_dev *pdev, unsigned reg, uint32_t value, unsigned size)
{
    if (!cfg_access_ok(reg, size))
        return;
    pthread_mutex_lock(&pdev->dev.lock);
    cfg_write(pdev, reg, value, size);
    pthread_mutex_unlock(&pdev->dev.lock);
}

/* The function back to how pci_bus_add() left it. */
void pci_dev_reset_locked(struct pci_dev *pdev)
{
    memcpy(pdev->cfg, pdev->reset_cfg, sizeof(pdev->cfg));
    bars_update(pdev);
    msix_reset(pdev);
}

/* pci_dev_reset_locked() for callers that do not hold the lock. */
void pci_dev_reset(struct pci_dev *pdev)
{
    pthread_mutex_lock(&pdev->dev.lock);
    pci_dev_reset_locked(pdev);
    pthread_mutex_unlock(&pdev->dev.lock);
}

/* pdev->dev as a device whose registers are its configuration space (caller holds the lock). */
static uint64_t pci_function_read(struct device *dev, uint64_t offset, unsigned size)
{
    struct pci_dev *p = container_of(dev, struct pci_dev, dev);
    return offset < PCI_CFG_SIZE && cfg_access_ok((unsigned)offset, size)
               ? cfg_read(p, (unsigned)offset, size)
               : UINT64_MAX;
}

static void pci_function_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct pci_dev *p = container_of(dev, struct pci_dev, dev);
    if (offset < PCI_CFG_SIZE && cfg_access_ok((unsigned)offset, size))
        cfg_write(p, (unsigned)offset, (uint32_t)value, size);
}

static void pci_function_reset(struct device *dev)
{
    pci_dev_reset_locked(container_of(dev, struct pci_dev, dev));
}

static const struct dev_ops pci_function_ops = {
    .read = pci_function_read,
    .write = pci_function_write,
    .reset = pci_function_reset,
};

/* ---- BAR regions on the MMIO bus ---- */

/* The BAR behind a region device, and its index. */
static struct pci_bar *to_bar(struct device *dev)
{
    return container_of(dev, struct pci_bar, region);
}

static unsigned bar_index(const struct pci_bar *b)
{
    return (unsigned)(b - b->pdev->bars);
}

/* Which MSI-X structure (if any) an access at offset of BAR i starts in. */
static bool msix_claims(const struct pci_dev *p, unsigned i, uint64_t offset, bool *pba,
                        uint64_t *off)
{
    const struct pci_msix *m = &p->msix;

    if (!m->nr || m->bar != i)
        return false;
    if (offset >= m->table_off && offset - m->table_off < msix_table_len(m)) {
        *pba = false;
        *off = offset - m->table_off;
        return true;
    }
    if (offset >= m->pba_off && offset - m->pba_off < msix_pba_len(m)) {
        *pba = true;
        *off = offset - m->pba_off;
        return true;
    }
    return false;
}

/* An MMIO read in a BAR: the MSI-X structures, or the owner's registers. */
static uint64_t pci_bar_read(struct device *dev, uint64_t offset, unsigned size)
{
    struct pci_bar *b = to_bar(dev);
    struct pci_dev *p = b->pdev;
    unsigned i = bar_index(b);
    uint64_t v = 0, off;
    bool pba;

    pthread_mutex_lock(&p->dev.lock);
    if (msix_claims(p, i, offset, &pba, &off))
        v = msix_read(p, pba, off, size);
    else if (p->ops && p->ops->bar_read)
        v = p->ops->bar_read(p, i, offset, size);
    pthread_mutex_unlock(&p->dev.lock);
    return v;
}

/* An MMIO write in a BAR: the MSI-X table (the PBA is read-only), or the owner's. */
static void pci_bar_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct pci_bar *b = to_bar(dev);
    struct pci_dev *p = b->pdev;
    unsigned i = bar_index(b);
    uint64_t off;
    bool pba;

    pthread_mutex_lock(&p->dev.lock);
    if (msix_claims(p, i, offset, &pba, &off)) {
        if (!pba)
            msix_table_write(p, off, value, size);
    } else if (p->ops && p->ops->bar_write) {
        p->ops->bar_write(p, i, offset, value, size);
    }
    pthread_mutex_unlock(&p->dev.lock);
}

static const struct dev_ops pci_bar_ops = {
    .read = pci_bar_read,
    .write = pci_bar_write,
};

/* ---- functions ---- */

/* A function with its identity, a type-0 header and the default writable bits. */
void pci_dev_init(struct pci_dev *pdev, const char *name, const struct pci_id *id,
                  const struct pci_dev_ops *ops)
{
    memset(pdev, 0, sizeof(*pdev));
    device_init(&pdev->dev, name, &pci_function_ops);
    pdev->ops = ops;
    pdev->cap_next = PCI_CAP_FIRST;
    put16(pdev->cfg, PCI_VENDOR_ID, id->vendor);
    put16(pdev->cfg, PCI_DEVICE_ID, id->device);
    pdev->cfg[PCI_REVISION_ID] = id->revision;
    pdev->cfg[PCI_CLASS_PROG] = (uint8_t)id->class_code;
    put16(pdev->cfg, PCI_CLASS_DEVICE, (uint16_t)(id->class_code >> 8));
    pdev->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL; /* single function */
    put16(pdev->cfg, PCI_SUBSYSTEM_VENDOR_ID, id->subsystem_vendor);
    put16(pdev->cfg, PCI_SUBSYSTEM_ID, id->subsystem);
    /* Interrupt pin 0: no INTx (there is no _PRT to route it); MSI-X only. */

    put16(pdev->wmask, PCI_COMMAND, PCI_COMMAND_WRITABLE);
    pdev->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    pdev->wmask[PCI_INTERRUPT_LINE] = 0xff; /* a scratch byte for the OS */
    for (unsigned i = 0; i < PCI_NR_BARS; i++) {
        struct pci_bar *b = &pdev->bars[i];
        device_init(&b->region, name, &pci_bar_ops);
        b->pdev = pdev;
        b->want = b->mapped = PCI_BAR_UNMAPPED;
    }
    memcpy(pdev->reset_cfg, pdev->cfg, sizeof(pdev->cfg));
}

/* Takes the function off both buses and frees its MSI-X state. */
void pci_dev_destroy(struct pci_dev *pdev)
{
    struct bus *mmio = pdev->bus ? pdev->bus->mmio : NULL;

    for (unsigned i = 0; i < PCI_NR_BARS; i++) {
        struct pci_bar *b = &pdev->bars[i];
        if (b->mapped != PCI_BAR_UNMAPPED && mmio)
            (void)bus_unregister(mmio, b->mapped);
        b->mapped = b->want = PCI_BAR_UNMAPPED;
        device_destroy(&b->region);
    }
    if (pdev->bus && pdev->bus->slots[pdev->slot] == pdev)
        pdev->bus->slots[pdev->slot] = NULL;
    pdev->bus = NULL;
    free(pdev->msix.table);
    free(pdev->msix.pba);
    free(pdev->msix.reported);
    memset(&pdev->msix, 0, sizeof(pdev->msix));
    device_destroy(&pdev->dev);
}

/* Whether x is a power of two. */
static bool is_pow2(uint64_t x)
{
    return x && !(x & (x - 1));
}

/* Declares a memory BAR: its type bits, and address bits above its size writable. */
int pci_bar_set(struct pci_dev *pdev, unsigned bar, uint64_t size, unsigned flags)
{
    bool is64 = flags & PCI_BAR_64;

    if (pdev->bus)
        return -EBUSY;
    if (bar >= PCI_NR_BARS || (flags & ~(PCI_BAR_64 | PCI_BAR_PREFETCH)) || !is_pow2(size) ||
        size < PCI_BAR_MIN_SIZE || (is64 && bar + 1 >= PCI_NR_BARS) || (!is64 && size > 2 * GiB) ||
        (is64 && size > (1ULL << 63)))
        return -EINVAL;
    if (pdev->bars[bar].size || pdev->bars[bar].flags || (is64 && pdev->bars[bar + 1].size))
        return -EBUSY;

    unsigned reg = PCI_BASE_ADDRESS_0 + 4 * bar;
    uint32_t type = PCI_BASE_ADDRESS_SPACE_MEMORY |
                    (is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : PCI_BASE_ADDRESS_MEM_TYPE_32) |
                    (flags & PCI_BAR_PREFETCH ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
    uint64_t addr_mask = ~(size - 1); /* the address bits above the size: what sizing reads */
    put32(pdev->cfg, reg, type);
    put32(pdev->wmask, reg, (uint32_t)addr_mask & PCI_BASE_ADDRESS_MEM_MASK);
    if (is64) {
        put32(pdev->cfg, reg + 4, 0);
        put32(pdev->wmask, reg + 4, (uint32_t)(addr_mask >> 32));
        pdev->bars[bar + 1].flags = PCI_BAR_UPPER;
    }
    pdev->bars[bar].size = size;
    pdev->bars[bar].flags = flags;
    memcpy(pdev->reset_cfg, pdev->cfg, sizeof(pdev->cfg));
    return 0;
}

/* Appends a capability to the list, dword aligned, from PCI_CAP_FIRST up. */
int pci_cap_add(struct pci_dev *pdev, const void *cap, unsigned len, const void *wmask)
{
    const uint8_t *c = cap, *w = wmask;
    unsigned off = pdev->cap_next;

    if (pdev->bus)
        return -EBUSY;
    if (!cap || len < 2)
        return -EINVAL;
    if (off >= PCI_CFG_SIZE || len > PCI_CFG_SIZE - off)
        return -ENOSPC;
    memcpy(&pdev->cfg[off], c, len);
    pdev->cfg[off + 1] = 0; /* the end of the list */
    if (w)
        memcpy(&pdev->wmask[off], w, len);
    pdev->wmask[off] = pdev->wmask[off + 1] = 0;
    if (pdev->cap_last) {
        pdev->cfg[pdev->cap_last + 1] = (uint8_t)off;
    } else {
        pdev->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
        put16(pdev->cfg, PCI_STATUS, cfg16(pdev, PCI_STATUS) | PCI_STATUS_CAP_LIST);
    }
    pdev->cap_last = (uint8_t)off;
    pdev->cap_next = (uint16_t)((off + len + 3) & ~3u);
    memcpy(pdev->reset_cfg, pdev->cfg, sizeof(pdev->cfg));
    return (int)off;
}

/* Adds the MSI-X capability (PCI 3.0 6.8.2) and its table and PBA. */
int pci_msix_init(struct pci_dev *pdev, unsigned nr, unsigned bar, uint64_t table_off,
                  uint64_t pba_off)
{
    struct pci_msix *m = &pdev->msix;

    if (pdev->bus)
        return -EBUSY;
    if (m->nr)
        return -EEXIST;
    if (nr < 1 || nr > PCI_MSIX_MAX_VECTORS || bar >= PCI_NR_BARS || !pdev->bars[bar].size ||
        (table_off | pba_off) & PCI_MSIX_TABLE_BIR)
        return -EINVAL;
    uint64_t size = pdev->bars[bar].size;
    uint64_t tlen = (uint64_t)nr * PCI_MSIX_ENTRY_SIZE, plen = (nr + 63) / 64 * 8;
    if (table_off >= size || tlen > size - table_off || pba_off >= size || plen > size - pba_off ||
        overlaps(table_off, tlen, pba_off, plen) || table_off > UINT32_MAX || pba_off > UINT32_MAX)
        return -EINVAL;

    uint8_t cap[PCI_MSIX_CAP_LEN] = {PCI_CAP_ID_MSIX}, wm[PCI_MSIX_CAP_LEN] = {0};
    put16(cap, PCI_MSIX_FLAGS, (uint16_t)(nr - 1));
    put32(cap, PCI_MSIX_TABLE, (uint32_t)table_off | bar);
    put32(cap, PCI_MSIX_PBA, (uint32_t)pba_off | bar);
    put16(wm, PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);

    uint32_t *table = calloc((size_t)nr * 4, sizeof(*table));
    uint64_t *pba = calloc((nr + 63) / 64, sizeof(*pba));
    struct pci_msix_vector *reported = calloc(nr, sizeof(*reported));
    if (!table || !pba || !reported) {
        free(table);
        free(pba);
        free(reported);
        return -ENOMEM;
    }
    int off = pci_cap_add(pdev, cap, sizeof(cap), wm);
    if (off < 0) {
        free(table);
        free(pba);
        free(reported);
        return off;
    }
    *m = (struct pci_msix){.nr = nr,
                           .bar = bar,
                           .table_off = table_off,
                           .pba_off = pba_off,
                           .cap = (uint8_t)off,
                           .table = table,
                           .pba = pba,
                           .reported = reported};
    for (unsigned v = 0; v < nr; v++) {
        table[4 * v + MSIX_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
        reported[v].masked = true; /* what the owner assumes before any report */
    }
    return off;
}

/* ---- the bus and configuration mechanism #1 ---- */

/* The pre-assignment allocator: naturally aligned, upwards from the window's base. */
int pci_bus_alloc_mmio(struct pci_bus *bus, uint64_t size, uint64_t *addr)
{
    if (!is_pow2(size))
        return -EINVAL;
    uint64_t a = (bus->mmio_next + size - 1) & ~(size - 1);
    if (a < bus->mmio_next || a >= bus->mmio_end || size > bus->mmio_end - a)
        return -ENOSPC;
    *addr = a;
    bus->mmio_next = a + size;
    return 0;
}

/* Writes a BAR's address registers (set-up: no side effects). */
static void bar_place(struct pci_dev *p, unsigned i, uint64_t addr)
{
    unsigned reg = PCI_BASE_ADDRESS_0 + 4 * i;
    put32(p->cfg, reg, (cfg32(p, reg) & ~PCI_BASE_ADDRESS_MEM_MASK) | (uint32_t)addr);
    if (p->bars[i].flags & PCI_BAR_64)
        put32(p->cfg, reg + 4, (uint32_t)(addr >> 32));
}

/* Plugs a function in as firmware would: BARs placed, memory decoding on. */
int pci_bus_add(struct pci_bus *bus, struct pci_dev *pdev, int slot)
{
    int ret = 0;

    if (pdev->bus || slot >= PCI_SLOTS)
        return -EINVAL;
    pthread_mutex_lock(&bus->dev.lock);
    if (slot < 0) {
        for (slot = 0; slot < PCI_SLOTS && bus->slots[slot]; slot++)
            ;
        if (slot == PCI_SLOTS)
            ret = -ENOSPC;
    } else if (bus->slots[slot]) {
        ret = -EBUSY;
    }
    pthread_mutex_unlock(&bus->dev.lock);
    if (ret)
        return ret;

    /* Largest first, so that natural alignment leaves no holes inside one function. */
    bool placed[PCI_NR_BARS] = {false};
    bool any = false;
    for (;;) {
        int best = -1;
        for (unsigned i = 0; i < PCI_NR_BARS; i++)
            if (pdev->bars[i].size && !placed[i] &&
                (best < 0 || pdev->bars[i].size > pdev->bars[best].size))
                best = (int)i;
        if (best < 0)
            break;
        uint64_t addr;
        ret = pci_bus_alloc_mmio(bus, pdev->bars[best].size, &addr);
        if (ret)
            return ret;
        bar_place(pdev, (unsigned)best, addr);
        placed[best] = any = true;
    }
    if (any) /* as firmware leaves it: decoding on, bus mastering left to the driver */
        put16(pdev->cfg, PCI_COMMAND, PCI_COMMAND_MEMORY);
    memcpy(pdev->reset_cfg, pdev->cfg, sizeof(pdev->cfg));

    pthread_mutex_lock(&bus->dev.lock);
    pdev->bus = bus;
    pdev->slot = (unsigned)slot;
    bus->slots[slot] = pdev;
    pthread_mutex_unlock(&bus->dev.lock);

    pthread_mutex_lock(&pdev->dev.lock);
    bars_update(pdev);
    for (unsigned i = 0; i < PCI_NR_BARS; i++)
        if (pdev->bars[i].want != pdev->bars[i].mapped)
            ret = -EEXIST;
    pthread_mutex_unlock(&pdev->dev.lock);
    if (ret) {
        struct bus *mmio = bus->mmio;
        for (unsigned i = 0; i < PCI_NR_BARS; i++) {
            struct pci_bar *b = &pdev->bars[i];
            if (b->mapped != PCI_BAR_UNMAPPED && mmio)
                (void)bus_unregister(mmio, b->mapped);
            b->mapped = b->want = PCI_BAR_UNMAPPED;
        }
        pthread_mutex_lock(&bus->dev.lock);
        bus->slots[slot] = NULL;
        pdev->bus = NULL;
        pthread_mutex_unlock(&bus->dev.lock);
    }
    return ret;
}

/*
 * The function CONFIG_ADDRESS selects, and the register: NULL when decoding
 * is off, for a bus other than 0, a function other than 0, an empty slot, or
 * a register beyond 255 (AMD's extended register bits 24-27: Linux uses them
 * on AMD CPUs, pci_io_ecs_init(), and must find no extended space).
 */
static struct pci_dev *conf1_target(struct pci_bus *bus, unsigned *reg)
{
    uint32_t a = bus->config_address;

    if (!(a & PCI_CONF1_ENABLE) || (a & PCI_CONF1_EXT_MASK) || ((a >> 16) & 0xff) || ((a >> 8) & 7))
        return NULL;
    *reg = a & 0xfc;
    return bus->slots[(a >> 11) & 0x1f];
}

/*
 * CONFIG_ADDRESS is only a dword access at 0xcf8: byte and word accesses to
 * 0xcf8-0xcfb pass through to the I/O bus on Intel chipsets (0xcf9 is the
 * reset control register there, which petrel leaves out: its reset is the
 * FADT's), so they read all-ones and never change CONFIG_ADDRESS. CONFIG_DATA
 * bytes map to the selected dword; the part of an access beyond 0xcff reads
 * all-ones.
 */
static uint64_t pci_conf1_read(struct device *dev, uint64_t offset, unsigned size)
{
    struct pci_bus *bus = container_of(dev, struct pci_bus, dev);
    uint64_t v = UINT64_MAX;
    unsigned reg;

    if (offset < 4)
        return offset == 0 && size == 4 ? bus->config_address : v;
    unsigned o = (unsigned)offset - 4, n = size < 4 - o ? size : 4 - o;
    struct pci_dev *p = conf1_target(bus, &reg);
    if (!p)
        return v;
    pthread_mutex_lock(&p->dev.lock);
    uint32_t x = cfg_read(p, reg + o, n);
    pthread_mutex_unlock(&p->dev.lock);
    uint64_t mask = n == 4 ? 0xffffffffULL : (1ULL << (8 * n)) - 1;
    return (v & ~mask) | (x & mask);
}

/* CONFIG_ADDRESS (a dword at 0xcf8 only) or CONFIG_DATA. */
static void pci_conf1_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct pci_bus *bus = container_of(dev, struct pci_bus, dev);
    unsigned reg;

    if (offset < 4) {
        if (offset == 0 && size == 4)
            bus->config_address = (uint32_t)value & CONF1_ADDR_MASK;
        return;
    }
    unsigned o = (unsigned)offset - 4, n = size < 4 - o ? size : 4 - o;
    struct pci_dev *p = conf1_target(bus, &reg);
    if (!p)
        return;
    pthread_mutex_lock(&p->dev.lock);
    cfg_write(p, reg + o, (uint32_t)value, n);
    pthread_mutex_unlock(&p->dev.lock);
}

static const struct dev_ops pci_conf1_ops = {
    .read = pci_conf1_read,
    .write = pci_conf1_write,
};

/* Bus 0 with the host bridge; the conf1 device is for the caller to register. */
void pci_bus_init(struct pci_bus *bus, struct bus *mmio)
{
    static const struct pci_id host_id = {
        .vendor = PCI_HOST_VENDOR,
        .device = PCI_HOST_DEVICE,
        .class_code = PCI_HOST_CLASS,
    };

    memset(bus, 0, sizeof(*bus));
    device_init(&bus->dev, "pci-conf1", &pci_conf1_ops);
    bus->mmio = mmio;
    bus->mmio_next = PLAT_PCI_MMIO_BASE;
    bus->mmio_end = (uint64_t)PLAT_PCI_MMIO_BASE + PLAT_PCI_MMIO_SIZE;
    pci_dev_init(&bus->host, "pci-host", &host_id, NULL);
    /* No BARs, a free slot 0: cannot fail. */
    int ret = pci_bus_add(bus, &bus->host, 0);
    (void)ret;
}

/* Frees the host bridge and the conf1 device (functions first). */
void pci_bus_destroy(struct pci_bus *bus)
{
    pci_dev_destroy(&bus->host);
    device_destroy(&bus->dev);
}

/* ---- saving and restoring ---- */

/* The MSI-X pending bits as u32 cells: cell k holds vectors 32k to 32k + 31. */
#define MSIX_PENDING_CELLS(nr) (((nr) + 31) / 32)

int pci_dev_save(const struct pci_dev *pdev, struct state_out *out)
{
    const struct pci_msix *m = &pdev->msix;
    uint32_t pending[MSIX_PENDING_CELLS(PCI_MSIX_MAX_VECTORS)];

    state_put_bytes(out, "config", pdev->cfg, sizeof(pdev->cfg));
    if (!m->nr)
        return out->err;
    for (unsigned k = 0; k < MSIX_PENDING_CELLS(m->nr); k++)
        pending[k] = (uint32_t)(m->pba[k / 2] >> (32 * (k % 2)));
    state_put_u32_array(out, "msix-table", m->table, 4 * (size_t)m->nr);
    state_put_u32_array(out, "msix-pending", pending, MSIX_PENDING_CELLS(m->nr));
    return out->err;
}

/* A saved configuration space whose read-only bits are not this function's is refused. */
static void check_config(const struct pci_dev *p, const uint8_t *cfg, struct state_in *in)
{
    for (unsigned i = 0; i < PCI_CFG_SIZE; i++) {
        if ((cfg[i] ^ p->reset_cfg[i]) & ~p->wmask[i]) {
            state_invalid(in,
                          "property 'config': byte %#x is %#x, but its read-only bits are %#x "
                          "in this function",
                          i, cfg[i], p->reset_cfg[i] & ~p->wmask[i]);
            return;
        }
    }
}

/* The table's entries hold only their writable bits; no pending bit past the last vector. */
static void check_msix(const struct pci_msix *m, const uint32_t *table, const uint32_t *pending,
                       struct state_in *in)
{
    for (unsigned i = 0; i < 4 * m->nr; i++) {
        if (table[i] & ~msix_wmask[i % 4]) {
            state_invalid(in, "property 'msix-table': vector %u dword %u is %#x", i / 4, i % 4,
                          table[i]);
            return;
        }
    }
    if (m->nr % 32 && pending[m->nr / 32] >> (m->nr % 32))
        state_invalid(in, "property 'msix-pending' has bits past vector %u", m->nr - 1);
}

/* The function's MSI-X as restored, acted on as the guest's writes would be. */
static void msix_restore(struct pci_dev *p, const uint32_t *table, const uint32_t *pending)
{
    struct pci_msix *m = &p->msix;

    memcpy(m->table, table, 4 * sizeof(*table) * m->nr);
    memset(m->pba, 0, (m->nr + 63) / 64 * sizeof(m->pba[0]));
    for (unsigned k = 0; k < MSIX_PENDING_CELLS(m->nr); k++)
        m->pba[k / 2] |= (uint64_t)pending[k] << (32 * (k % 2));
    msix_control_update(p);
    for (unsigned v = 0; v < m->nr; v++)
        msix_sync(p, v);
}

int pci_dev_restore(struct pci_dev *pdev, struct state_in *in)
{
    const struct pci_msix *m = &pdev->msix;
    uint32_t pending[MSIX_PENDING_CELLS(PCI_MSIX_MAX_VECTORS)];
    uint8_t cfg[PCI_CFG_SIZE];
    uint32_t *table = NULL;

    state_get_bytes(in, "config", cfg, sizeof(cfg));
    check_config(pdev, cfg, in);
    if (m->nr && !in->err) {
        table = calloc(4 * (size_t)m->nr, sizeof(*table));
        if (!table) {
            in->err = -ENOMEM;
            return err_set(in->eb, -ENOMEM, "out of memory for an MSI-X table");
        }
        state_get_u32_array(in, "msix-table", table, 4 * (size_t)m->nr);
        state_get_u32_array(in, "msix-pending", pending, MSIX_PENDING_CELLS(m->nr));
        if (!in->err)
            check_msix(m, table, pending, in);
    }
    if (!in->err) {
        pthread_mutex_lock(&pdev->dev.lock);
        memcpy(pdev->cfg, cfg, sizeof(cfg));
        bars_update(pdev);
        if (m->nr)
            msix_restore(pdev, table, pending);
        pthread_mutex_unlock(&pdev->dev.lock);
    }
    free(table);
    return in->err;
}

int pci_bus_save(const struct pci_bus *bus, struct state_out *out)
{
    state_put_u32(out, "config-address", bus->config_address);
    state_begin(out, "host", PCI_DEV_STATE_COMPATIBLE);
    if (pci_dev_save(&bus->host, out) == 0)
        state_end(out);
    return out->err;
}

/* Takes a function's BARs off the MMIO bus (pci_dev_restore() registers them again). */
static void bars_unmap(struct pci_dev *p)
{
    struct bus *mmio = p->bus ? p->bus->mmio : NULL;

    for (unsigned i = 0; i < PCI_NR_BARS; i++) {
        struct pci_bar *b = &p->bars[i];
        uint64_t old = b->mapped;
        b->want = b->mapped = PCI_BAR_UNMAPPED;
        if (old == PCI_BAR_UNMAPPED)
            continue;
        if (mmio)
            (void)bus_unregister(mmio, old);
        if (p->ops && p->ops->bar_moved)
            p->ops->bar_moved(p, i, old, PCI_BAR_UNMAPPED);
    }
}

int pci_bus_restore(struct pci_bus *bus, struct state_in *in)
{
    struct state_in host;
    uint32_t addr;

    state_get_bits(in, "config-address", CONF1_ADDR_MASK, &addr);
    if (state_open(in, "host", PCI_DEV_STATE_COMPATIBLE, &host) == 0)
        in->err = pci_dev_restore(&bus->host, &host);
    else
        in->err = host.err;
    if (in->err)
        return in->err;

    pthread_mutex_lock(&bus->dev.lock);
    bus->config_address = addr;
    pthread_mutex_unlock(&bus->dev.lock);
    for (unsigned slot = 0; slot < PCI_SLOTS; slot++) {
        struct pci_dev *p = bus->slots[slot];
        if (!p)
            continue;
        pthread_mutex_lock(&p->dev.lock);
        bars_unmap(p);
        pthread_mutex_unlock(&p->dev.lock);
    }
    return 0;
}

/* The machine's PCI host bridge (hwdev.h): bus 0's configuration ports and its state. */
static int pci_host_realize(struct hwdev *hw, struct errbuf *eb)
{
    int ret =
        bus_register(hw->host->pio, PLAT_PCI_CONF_PORT, PLAT_PCI_CONF_LEN, &hw->host->pci->dev);
    if (ret)
        return err_set(eb, ret, "cannot register the PCI configuration ports: %s", strerror(-ret));
    return 0;
}

static int pci_host_save(struct hwdev *hw, struct state_out *out)
{
    return pci_bus_save(hw->host->pci, out);
}

static int pci_host_restore(struct hwdev *hw, struct state_in *in)
{
    return pci_bus_restore(hw->host->pci, in);
}

static void pci_host_destroy(struct hwdev *hw)
{
    if (hw->realized)
        (void)bus_unregister(hw->host->pio, PLAT_PCI_CONF_PORT);
}

const struct hwdev_ops pci_host_bridge = {
    .type = "pci-host",
    .compatible = PCI_BUS_STATE_COMPATIBLE,
    .size = sizeof(struct hwdev),
    .name = "pci",
    .realize = pci_host_realize,
    .save = pci_host_save,
    .restore = pci_host_restore,
    .destroy = pci_host_destroy,
};
