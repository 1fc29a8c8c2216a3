/* PCI configuration mechanism #1 on bus 0; see include/kit/pci.h. */
#include "kit/pci.h"
#include "kit/io.h"
#include "kit/printf.h"

#define PCI_CONF_ADDR 0xcf8
#define PCI_CONF_DATA 0xcfc
#define PCI_CONF_ON   0x80000000u

#define PCI_BAR_IO       0x1
#define PCI_BAR_MEM_TYPE 0x6 /* 0: 32-bit, 2: 64-bit, 1 and 3 reserved */
#define PCI_BAR_MEM_64   0x4
#define PCI_BAR_PREFETCH 0x8

/* CONFIG_ADDRESS is written as a dword (byte and word accesses do not reach it). */
static void pci_select(uint16_t bdf, unsigned reg)
{
    outl(PCI_CONF_ON | (uint32_t)bdf << 8 | (reg & 0xfc), PCI_CONF_ADDR);
}

uint32_t pci_read32(uint16_t bdf, unsigned reg)
{
    pci_select(bdf, reg);
    return inl(PCI_CONF_DATA);
}

uint16_t pci_read16(uint16_t bdf, unsigned reg)
{
    pci_select(bdf, reg);
    return inw(PCI_CONF_DATA + (reg & 2));
}

uint8_t pci_read8(uint16_t bdf, unsigned reg)
{
    pci_select(bdf, reg);
    return inb(PCI_CONF_DATA + (reg & 3));
}

void pci_write32(uint16_t bdf, unsigned reg, uint32_t v)
{
    pci_select(bdf, reg);
    outl(v, PCI_CONF_DATA);
}

void pci_write16(uint16_t bdf, unsigned reg, uint16_t v)
{
    pci_select(bdf, reg);
    outw(v, PCI_CONF_DATA + (reg & 2));
}

void pci_write8(uint16_t bdf, unsigned reg, uint8_t v)
{
    pci_select(bdf, reg);
    outb(v, PCI_CONF_DATA + (reg & 3));
}

int pci_func_read(uint16_t bdf, struct pci_func *f)
{
    uint32_t id = pci_read32(bdf, PCI_VENDOR_ID);

    if ((id & 0xffff) == 0xffff)
        return -1;
    uint32_t rc = pci_read32(bdf, PCI_REVISION);
    uint32_t sub = pci_read32(bdf, PCI_SUBSYS_VENDOR);
    f->bdf = bdf;
    f->vendor = (uint16_t)id;
    f->device = (uint16_t)(id >> 16);
    f->revision = (uint8_t)rc;
    f->class_code = rc >> 8;
    f->header_type = pci_read8(bdf, PCI_HEADER_TYPE) & ~PCI_HEADER_MULTI;
    f->subsys_vendor = (uint16_t)sub;
    f->subsys = (uint16_t)(sub >> 16);
    return 0;
}

unsigned pci_enumerate(struct pci_func *out, unsigned max)
{
    unsigned n = 0;

    for (unsigned dev = 0; dev < 32 && n < max; dev++) {
        if (pci_func_read(PCI_BDF(0, dev, 0), &out[n]))
            continue;
        n++;
        /* Functions 1-7 exist only behind a multi-function function 0. */
        if (!(pci_read8(PCI_BDF(0, dev, 0), PCI_HEADER_TYPE) & PCI_HEADER_MULTI))
            continue;
        for (unsigned fn = 1; fn < 8 && n < max; fn++)
            if (!pci_func_read(PCI_BDF(0, dev, fn), &out[n]))
                n++;
    }
    return n;
}

unsigned pci_scan(struct pci_func *out, unsigned max)
{
    unsigned n = pci_enumerate(out, max);
    for (unsigned i = 0; i < n; i++)
        pci_print(&out[i]);
    return n;
}

int pci_next(const struct pci_func *f, unsigned n, unsigned from, uint16_t vendor, uint16_t device)
{
    for (unsigned i = from; i < n; i++)
        if (f[i].vendor == vendor && f[i].device == device)
            return (int)i;
    return -1;
}

/* Writes all-ones to a BAR register and returns what reads back; puts the old value back. */
static uint32_t pci_bar_probe(uint16_t bdf, unsigned reg, uint32_t old)
{
    pci_write32(bdf, reg, 0xffffffff);
    uint32_t mask = pci_read32(bdf, reg);
    pci_write32(bdf, reg, old);
    return mask;
}

int pci_bar_read(uint16_t bdf, unsigned n, struct pci_bar *bar)
{
    unsigned reg = PCI_BAR0 + 4 * n;

    bar->addr = bar->size = 0;
    bar->io = bar->is64 = bar->prefetch = 0;
    if (n >= PCI_NR_BARS)
        return -1;
    uint32_t lo = pci_read32(bdf, reg);
    bar->io = lo & PCI_BAR_IO;
    if (!bar->io) {
        unsigned type = lo & PCI_BAR_MEM_TYPE;
        if (type != 0 && type != PCI_BAR_MEM_64)
            return -2;
        bar->is64 = type == PCI_BAR_MEM_64;
        bar->prefetch = !!(lo & PCI_BAR_PREFETCH);
        if (bar->is64 && n == PCI_NR_BARS - 1)
            return -2;
    }
    uint32_t hi = bar->is64 ? pci_read32(bdf, reg + 4) : 0;

    /* Size with decoding off, so the BAR never decodes at the all-ones address. */
    uint16_t cmd = pci_read16(bdf, PCI_COMMAND);
    pci_write16(bdf, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
    uint32_t mlo = pci_bar_probe(bdf, reg, lo) & (bar->io ? ~0x3u : ~0xfu);
    uint32_t mhi = bar->is64 ? pci_bar_probe(bdf, reg + 4, hi) : 0;
    pci_write16(bdf, PCI_COMMAND, cmd);

    if (!mlo && !mhi)
        return 0; /* not implemented: no address bit is writable */
    bar->addr = ((uint64_t)hi << 32 | lo) & (bar->io ? ~0x3ull : ~0xfull);
    uint64_t mask = (uint64_t)mhi << 32 | mlo;
    if (bar->io)
        mask |= 0xffffffffffff0000ull; /* I/O BARs may decode only 16 bits */
    else if (!bar->is64)
        mask |= 0xffffffff00000000ull;
    uint64_t size = ~mask + 1;
    if (!size || (size & (size - 1)))
        return -2; /* the mask has holes: no power-of-two size */
    bar->size = size;
    return 0;
}

int pci_caps(uint16_t bdf, struct pci_cap *out, unsigned max)
{
    unsigned n = 0;

    if (!(pci_read16(bdf, PCI_STATUS) & PCI_STATUS_CAP))
        return 0;
    unsigned off = pci_read8(bdf, PCI_CAP_PTR) & 0xfc;
    for (unsigned ttl = 0; off; ttl++) {
        /* A pointer into the header, or more entries than fit in the space: a loop. */
        if (off < 0x40 || ttl == PCI_CAP_TTL)
            return -1;
        uint16_t w = pci_read16(bdf, off); /* ID, next */
        if (n < max) {
            out[n].off = (uint8_t)off;
            out[n].id = (uint8_t)w;
        }
        n++;
        off = (w >> 8) & 0xfc;
    }
    return (int)(n < max ? n : max);
}

int pci_cap_find(uint16_t bdf, uint8_t id)
{
    struct pci_cap caps[PCI_CAP_TTL];
    int n = pci_caps(bdf, caps, PCI_CAP_TTL);

    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (caps[i].id == id)
            return caps[i].off;
    return 0;
}

void pci_enable(uint16_t bdf, uint16_t bits)
{
    uint16_t cmd = pci_read16(bdf, PCI_COMMAND);

    if ((cmd & bits) != bits)
        pci_write16(bdf, PCI_COMMAND, cmd | bits);
}

void pci_print(const struct pci_func *f)
{
    printf("pci: %02x:%02x.%x %04x:%04x class %06x rev %02x\n", PCI_BDF_BUS(f->bdf),
           PCI_BDF_DEV(f->bdf), PCI_BDF_FN(f->bdf), f->vendor, f->device, f->class_code,
           f->revision);
}
