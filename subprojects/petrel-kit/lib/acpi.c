/* ACPI tables, poweroff and reset; see include/kit/acpi.h. */
#include "kit/acpi.h"
#include "kit/bda.h"
#include "kit/boot_params.h"
#include "kit/io.h"
#include "kit/ioapic.h"
#include "kit/printf.h"
#include "kit/string.h"
#include "kit/uart.h"

#include <stdarg.h>

#define BP_ACPI_RSDP_ADDR 0x070 /* boot_params.acpi_rsdp_addr (protocol 2.14) */

#define RSDP_SIG      0x2052545020445352ull /* "RSD PTR " */
#define RSDP_V1_LEN   20
#define RSDP_V2_LEN   36
#define RSDP_SCAN_LO  0xe0000
#define RSDP_SCAN_HI  0x100000
#define ACPI_HDR_LEN  36
#define ACPI_TBL_MAX  (1u << 20) /* longer is taken as a lie: checksumming it would take seconds */
#define ACPI_ADDR_MAX (1ull << 32) /* the kit maps the low 4 GiB */

/* MADT entry types (ACPI 6.x, table 5.45). */
#define MADT_LAPIC          0
#define MADT_IOAPIC         1
#define MADT_ISO            2
#define MADT_LAPIC_OVERRIDE 5
#define MADT_X2APIC         9
#define MADT_ENABLED        0x1

/* FADT field offsets (ACPI 6.x, table 5.9) and the lengths that hold them. */
#define FADT_DSDT        40
#define FADT_SCI_INT     46
#define FADT_SMI_CMD     48
#define FADT_ACPI_ENABLE 52
#define FADT_PM1A_EVT    56
#define FADT_PM1B_EVT    60
#define FADT_PM1A_CNT    64
#define FADT_PM1B_CNT    68
#define FADT_PM_TMR      76
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_PM_TMR_LEN  91
#define FADT_CENTURY     108
#define FADT_FLAGS       112
#define FADT_V1_LEN      116 /* the ACPI 1.0 FADT ends here */
#define FADT_RESET_REG   116
#define FADT_RESET_VALUE 128
#define FADT_X_DSDT      140
#define FADT_X_PM1A_EVT  148
#define FADT_X_PM1B_EVT  160
#define FADT_X_PM1A_CNT  172
#define FADT_X_PM1B_CNT  184
#define FADT_X_PM_TMR    208
#define FADT_SLEEP_CTL   244
#define GAS_LEN          12

#define PM_TIMER_HZ      3579545u
#define PCI_CONF_ADDR    0xcf8
#define PCI_CONF_DATA    0xcfc
#define ACPI_GONE_MS     1000 /* how long poweroff and reset get to take effect */
#define ACPI_SPIN_PER_MS 1000 /* cpu_relax() rounds standing in for a ms without a PM timer */

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

/* The identity mapping the kit runs on: physical address = pointer. */
static const uint8_t *phys(uint64_t addr)
{
    return (const uint8_t *)(uintptr_t)addr;
}

static uint8_t acpi_sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;

    while (n--)
        s += *p++;
    return s;
}

/* Records the first problem; later ones would mostly be its echoes. */
static void acpi_err(struct acpi_info *ai, const char *fmt, ...) KIT_PRINTF(2, 3);
static void acpi_err(struct acpi_info *ai, const char *fmt, ...)
{
    va_list ap;

    if (ai->error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(ai->error, sizeof(ai->error), fmt, ap);
    va_end(ap);
}

/* Whether a valid RSDP is at addr: signature, 20-byte checksum and, from
 * revision 2, the extended length and checksum. *why says what failed. */
static int acpi_rsdp_ok(uint64_t addr, const char **why)
{
    const uint8_t *p = phys(addr);

    if (rd64(p) != RSDP_SIG) {
        *why = "no signature";
        return 0;
    }
    if (acpi_sum(p, RSDP_V1_LEN)) {
        *why = "bad checksum";
        return 0;
    }
    if (p[15] >= 2) {
        uint32_t len = rd32(p + 20);

        if (len < RSDP_V2_LEN || len > 4096 || addr + len > ACPI_ADDR_MAX) {
            *why = "bad length";
            return 0;
        }
        if (acpi_sum(p, len)) {
            *why = "bad extended checksum";
            return 0;
        }
    }
    return 1;
}

/* Scans [lo, hi) on 16-byte boundaries; the first valid RSDP, else 0. A
 * signature with a bad checksum is remembered in *bad (stray bytes that look
 * like one are possible, so the scan goes on). */
static uint64_t acpi_rsdp_scan(uint64_t lo, uint64_t hi, uint64_t *bad)
{
    for (uint64_t a = lo; a + RSDP_V1_LEN <= hi; a += 16) {
        const char *why;

        if (rd64(phys(a)) != RSDP_SIG)
            continue;
        if (acpi_rsdp_ok(a, &why))
            return a;
        if (!*bad)
            *bad = a;
    }
    return 0;
}

static uint64_t acpi_find_rsdp(struct acpi_info *ai)
{
    uint64_t given, bad = 0, a = 0;
    const char *why;

    memcpy(&given, boot_params_base() + BP_ACPI_RSDP_ADDR, sizeof(given));
    if (given) {
        if (given < ACPI_ADDR_MAX - RSDP_V2_LEN && acpi_rsdp_ok(given, &why))
            return given;
        acpi_err(ai, "boot_params acpi_rsdp_addr 0x%llx: %s", (unsigned long long)given,
                 given < ACPI_ADDR_MAX - RSDP_V2_LEN ? why : "above 4 GiB");
    }
    uint32_t ebda = bda_ebda();
    if (ebda)
        a = acpi_rsdp_scan(ebda, ebda + 1024, &bad);
    if (!a)
        a = acpi_rsdp_scan(RSDP_SCAN_LO, RSDP_SCAN_HI, &bad);
    if (!a && bad)
        acpi_err(ai, "RSDP at 0x%llx fails its checksum", (unsigned long long)bad);
    return a;
}

/*
 * Checks the table at addr: below 4 GiB, a sane length, the checksum, and
 * the signature if sig is given. Returns it (and its length), or NULL when
 * it cannot be read safely; a bad checksum alone is an error but the table is
 * still returned, its entries being read with bounds checks anyway.
 */
static const uint8_t *acpi_table_at(struct acpi_info *ai, uint64_t addr, const char *sig,
                                    uint32_t *len)
{
    if (!addr || addr >= ACPI_ADDR_MAX - ACPI_HDR_LEN) {
        acpi_err(ai, "%s table address 0x%llx unusable", sig ? sig : "a", (unsigned long long)addr);
        return NULL;
    }
    const uint8_t *t = phys(addr);
    uint32_t n = rd32(t + 4);
    if (n < ACPI_HDR_LEN || n > ACPI_TBL_MAX || addr + n > ACPI_ADDR_MAX) {
        acpi_err(ai, "%.4s at 0x%llx: length %u", (const char *)t, (unsigned long long)addr, n);
        return NULL;
    }
    if (sig && memcmp(t, sig, 4)) {
        acpi_err(ai, "0x%llx: signature %.4s, expected %s", (unsigned long long)addr,
                 (const char *)t, sig);
        return NULL;
    }
    if (acpi_sum(t, n))
        acpi_err(ai, "%.4s at 0x%llx: checksum", (const char *)t, (unsigned long long)addr);
    *len = n;
    return t;
}

/* Adds a CPU unless a LAPIC and an x2APIC entry both name it. */
static void madt_cpu(struct acpi_info *ai, uint32_t apic_id, uint32_t uid, uint32_t flags,
                     int x2apic)
{
    for (unsigned i = 0; i < ai->ncpus; i++) {
        if (ai->cpus[i].apic_id == apic_id)
            return;
    }
    if (flags & MADT_ENABLED)
        ai->ncpus_enabled++;
    if (ai->ncpus >= ACPI_MAX_CPUS)
        return;
    struct acpi_cpu *c = &ai->cpus[ai->ncpus++];
    c->apic_id = apic_id;
    c->uid = uid;
    c->enabled = flags & MADT_ENABLED;
    c->x2apic = (uint8_t)x2apic;
}

static void acpi_parse_madt(struct acpi_info *ai, const uint8_t *t, uint32_t len)
{
    /* Shortest legal length of each entry type the kit reads. */
    static const uint8_t need[] = {[MADT_LAPIC] = 8,
                                   [MADT_IOAPIC] = 12,
                                   [MADT_ISO] = 10,
                                   [MADT_LAPIC_OVERRIDE] = 12,
                                   [MADT_X2APIC] = 16};

    if (len < 44) {
        acpi_err(ai, "MADT: length %u", len);
        return;
    }
    ai->madt = 1;
    ai->lapic_addr = rd32(t + 36);
    ai->madt_flags = rd32(t + 40);
    for (uint32_t off = 44; off < len;) {
        if (len - off < 2 || t[off + 1] < 2 || t[off + 1] > len - off) {
            acpi_err(ai, "MADT: entry at offset %u runs past the table", off);
            return;
        }
        const uint8_t *e = t + off;
        uint8_t type = e[0], elen = e[1];
        off += elen;
        if (type < sizeof(need) && elen < need[type]) {
            acpi_err(ai, "MADT: type %u entry of length %u", type, elen);
            return;
        }
        switch (type) {
        case MADT_LAPIC:
            madt_cpu(ai, e[3], e[2], rd32(e + 4), 0);
            break;
        case MADT_X2APIC:
            madt_cpu(ai, rd32(e + 4), rd32(e + 12), rd32(e + 8), 1);
            break;
        case MADT_IOAPIC:
            if (ai->nioapics < ACPI_MAX_IOAPICS) {
                struct acpi_ioapic *io = &ai->ioapics[ai->nioapics++];
                io->id = e[2];
                io->addr = rd32(e + 4);
                io->gsi_base = rd32(e + 8);
            }
            break;
        case MADT_ISO:
            if (ai->nisos < ACPI_MAX_ISOS) {
                struct acpi_iso *s = &ai->isos[ai->nisos++];
                s->bus = e[2];
                s->irq = e[3];
                s->gsi = rd32(e + 4);
                s->flags = rd16(e + 8);
            }
            break;
        case MADT_LAPIC_OVERRIDE:
            ai->lapic_addr = rd64(e + 4);
            break;
        }
    }
}

/* A register from the FADT: the X_ GAS at xoff when the FADT has it and it is
 * non-zero, else the 32-bit I/O port at off, bytes wide. */
static void fadt_reg(const uint8_t *t, uint32_t len, unsigned off, unsigned xoff, unsigned bytes,
                     struct acpi_gas *g)
{
    memset(g, 0, sizeof(*g));
    if (len >= xoff + GAS_LEN && rd64(t + xoff + 4)) {
        g->space = t[xoff];
        g->bit_width = t[xoff + 1];
        g->bit_offset = t[xoff + 2];
        g->access_size = t[xoff + 3];
        g->addr = rd64(t + xoff + 4);
        return;
    }
    g->space = ACPI_GAS_IO;
    g->bit_width = (uint8_t)(bytes * 8);
    g->addr = rd32(t + off);
}

static void acpi_parse_fadt(struct acpi_info *ai, const uint8_t *t, uint32_t len)
{
    if (len < FADT_V1_LEN) {
        acpi_err(ai, "FADT: length %u", len);
        return;
    }
    ai->fadt = 1;
    ai->fadt_rev = t[8];
    ai->fadt_flags = rd32(t + FADT_FLAGS);
    ai->sci_irq = rd16(t + FADT_SCI_INT);
    ai->smi_cmd = rd32(t + FADT_SMI_CMD);
    ai->acpi_enable = t[FADT_ACPI_ENABLE];
    ai->century = t[FADT_CENTURY];
    fadt_reg(t, len, FADT_PM1A_EVT, FADT_X_PM1A_EVT, t[FADT_PM1_EVT_LEN], &ai->pm1a_evt);
    fadt_reg(t, len, FADT_PM1B_EVT, FADT_X_PM1B_EVT, t[FADT_PM1_EVT_LEN], &ai->pm1b_evt);
    fadt_reg(t, len, FADT_PM1A_CNT, FADT_X_PM1A_CNT, t[FADT_PM1_CNT_LEN], &ai->pm1a_cnt);
    fadt_reg(t, len, FADT_PM1B_CNT, FADT_X_PM1B_CNT, t[FADT_PM1_CNT_LEN], &ai->pm1b_cnt);
    fadt_reg(t, len, FADT_PM_TMR, FADT_X_PM_TMR, t[FADT_PM_TMR_LEN], &ai->pm_tmr);
    ai->pm1_evt_len = ai->pm1a_evt.bit_width / 8;
    if (!ai->pm1_evt_len)
        ai->pm1_evt_len = t[FADT_PM1_EVT_LEN];
    if (len >= FADT_RESET_VALUE + 1) {
        const uint8_t *g = t + FADT_RESET_REG;

        ai->reset_reg.space = g[0];
        ai->reset_reg.bit_width = g[1];
        ai->reset_reg.bit_offset = g[2];
        ai->reset_reg.access_size = g[3];
        ai->reset_reg.addr = rd64(g + 4);
        ai->reset_value = t[FADT_RESET_VALUE];
        ai->reset_sup = (ai->fadt_flags & ACPI_FADT_RESET_REG_SUP) && ai->reset_reg.addr;
    }
    if (len >= FADT_SLEEP_CTL + GAS_LEN && rd64(t + FADT_SLEEP_CTL + 4)) {
        const uint8_t *g = t + FADT_SLEEP_CTL;

        ai->sleep_control.space = g[0];
        ai->sleep_control.bit_width = g[1];
        ai->sleep_control.bit_offset = g[2];
        ai->sleep_control.access_size = g[3];
        ai->sleep_control.addr = rd64(g + 4);
    }
    ai->dsdt = rd32(t + FADT_DSDT);
    if (len >= FADT_X_DSDT + 8 && rd64(t + FADT_X_DSDT))
        ai->dsdt = rd64(t + FADT_X_DSDT);
}

/* Checks the DSDT and skims its AML. */
static void acpi_parse_dsdt(struct acpi_info *ai)
{
    uint32_t len;

    if (!ai->dsdt) {
        acpi_err(ai, "FADT: no DSDT");
        return;
    }
    const uint8_t *t = acpi_table_at(ai, ai->dsdt, "DSDT", &len);
    if (!t)
        return;
    if (aml_skim(t + ACPI_HDR_LEN, len - ACPI_HDR_LEN, &ai->aml))
        acpi_err(ai, "DSDT: %s", ai->aml.error);
}

int acpi_init(struct acpi_info *ai)
{
    memset(ai, 0, sizeof(*ai));
    ai->rsdp = acpi_find_rsdp(ai);
    if (!ai->rsdp)
        return ai->error[0] ? -2 : -1;

    const uint8_t *rsdp = phys(ai->rsdp);
    ai->rsdp_rev = rsdp[15];
    ai->xsdt = ai->rsdp_rev >= 2 && rd64(rsdp + 24);
    ai->root = ai->xsdt ? rd64(rsdp + 24) : rd32(rsdp + 16);
    unsigned esize = ai->xsdt ? 8 : 4;
    uint32_t len;
    const uint8_t *root = acpi_table_at(ai, ai->root, ai->xsdt ? "XSDT" : "RSDT", &len);
    if (!root)
        return -2;
    if ((len - ACPI_HDR_LEN) % esize)
        acpi_err(ai, "%s: length %u is not a whole number of entries", ai->xsdt ? "XSDT" : "RSDT",
                 len);
    for (uint32_t off = ACPI_HDR_LEN; off + esize <= len; off += esize) {
        uint64_t addr = esize == 8 ? rd64(root + off) : rd32(root + off);
        uint32_t tlen;
        const uint8_t *t = acpi_table_at(ai, addr, NULL, &tlen);

        if (!t)
            continue;
        if (ai->ntables < ACPI_MAX_TABLES) {
            struct acpi_table *e = &ai->tables[ai->ntables++];
            memcpy(e->sig, t, 4);
            e->sig[4] = '\0';
            e->addr = addr;
            e->len = tlen;
        }
        if (!memcmp(t, "APIC", 4) && !ai->madt)
            acpi_parse_madt(ai, t, tlen);
        else if (!memcmp(t, "FACP", 4) && !ai->fadt)
            acpi_parse_fadt(ai, t, tlen);
    }
    if (ai->fadt)
        acpi_parse_dsdt(ai);
    return ai->error[0] ? -2 : 0;
}

const struct acpi_table *acpi_find(const struct acpi_info *ai, const char *sig, unsigned n)
{
    for (unsigned i = 0; i < ai->ntables; i++) {
        if (!memcmp(ai->tables[i].sig, sig, 4) && n-- == 0)
            return &ai->tables[i];
    }
    return NULL;
}

const struct acpi_iso *acpi_iso_for(const struct acpi_info *ai, unsigned irq)
{
    for (unsigned i = 0; i < ai->nisos; i++) {
        if (ai->isos[i].bus == 0 && ai->isos[i].irq == irq)
            return &ai->isos[i];
    }
    return NULL;
}

void acpi_sci_route(const struct acpi_info *ai, unsigned *gsi, unsigned *ioapic_flags)
{
    const struct acpi_iso *s = acpi_iso_for(ai, ai->sci_irq);
    unsigned pol = s ? s->flags & ACPI_POLARITY_MASK : 0;
    unsigned trig = s ? s->flags & ACPI_TRIGGER_MASK : 0;

    *gsi = s ? s->gsi : ai->sci_irq;
    *ioapic_flags = 0;
    if (pol != ACPI_POLARITY_HIGH) /* low, or conforming: the SCI's default is low */
        *ioapic_flags |= IOAPIC_ACTIVE_LOW;
    if (trig != ACPI_TRIGGER_EDGE) /* level, or conforming: the SCI's default is level */
        *ioapic_flags |= IOAPIC_LEVEL;
}

/* Selects a PCI configuration register through mechanism #1; the GAS puts
 * the device in bits 47:32, the function in 31:16, the offset in 15:0. */
static uint16_t acpi_pci_select(uint64_t addr)
{
    unsigned dev = (addr >> 32) & 0x1f, fn = (addr >> 16) & 0x7, reg = addr & 0xff;

    outl(0x80000000u | dev << 11 | fn << 8 | (reg & 0xfc), PCI_CONF_ADDR);
    return (uint16_t)(PCI_CONF_DATA + (reg & 3));
}

int acpi_gas_read(const struct acpi_gas *g, unsigned off, unsigned bytes, uint32_t *v)
{
    uint64_t a = g->addr + off;

    if (g->space == ACPI_GAS_PCI) {
        a = acpi_pci_select(a);
    } else if (g->space != ACPI_GAS_IO && g->space != ACPI_GAS_MEM) {
        return -1;
    }
    int io = g->space != ACPI_GAS_MEM;
    switch (bytes) {
    case 1:
        *v = io ? inb((uint16_t)a) : mmio_read8(a);
        return 0;
    case 2:
        *v = io ? inw((uint16_t)a) : mmio_read16(a);
        return 0;
    case 4:
        *v = io ? inl((uint16_t)a) : mmio_read32(a);
        return 0;
    }
    return -1;
}

int acpi_gas_write(const struct acpi_gas *g, unsigned off, unsigned bytes, uint32_t v)
{
    uint64_t a = g->addr + off;

    if (g->space == ACPI_GAS_PCI) {
        a = acpi_pci_select(a);
    } else if (g->space != ACPI_GAS_IO && g->space != ACPI_GAS_MEM) {
        return -1;
    }
    int io = g->space != ACPI_GAS_MEM;
    switch (bytes) {
    case 1:
        if (io)
            outb((uint8_t)v, (uint16_t)a);
        else
            mmio_write8(a, (uint8_t)v);
        return 0;
    case 2:
        if (io)
            outw((uint16_t)v, (uint16_t)a);
        else
            mmio_write16(a, (uint16_t)v);
        return 0;
    case 4:
        if (io)
            outl(v, (uint16_t)a);
        else
            mmio_write32(a, v);
        return 0;
    }
    return -1;
}

int acpi_pm1_sts_read(const struct acpi_info *ai, uint16_t *v)
{
    uint32_t x;

    if (!ai->pm1a_evt.addr || acpi_gas_read(&ai->pm1a_evt, 0, 2, &x))
        return -1;
    *v = (uint16_t)x;
    return 0;
}

int acpi_pm1_sts_clear(const struct acpi_info *ai, uint16_t bits)
{
    /* Status bits are write-1-to-clear: zeros leave the others alone. */
    if (!ai->pm1a_evt.addr)
        return -1;
    return acpi_gas_write(&ai->pm1a_evt, 0, 2, bits);
}

int acpi_pm1_en_write(const struct acpi_info *ai, uint16_t v)
{
    /* PM1_EN is the second half of the event block (ACPI 6.x, 4.8.3.1). */
    unsigned half = ai->pm1_evt_len >= 4 ? ai->pm1_evt_len / 2 : 2;

    if (!ai->pm1a_evt.addr)
        return -1;
    return acpi_gas_write(&ai->pm1a_evt, half, 2, v);
}

/* PM1a_CNT, 16 bits; 0 when there is none. */
static uint16_t acpi_pm1_cnt(const struct acpi_info *ai)
{
    uint32_t v = 0;

    if (ai->pm1a_cnt.addr && acpi_gas_read(&ai->pm1a_cnt, 0, 2, &v))
        v = 0;
    return (uint16_t)v;
}

int acpi_enable_sci(const struct acpi_info *ai)
{
    if (!ai->fadt || !ai->pm1a_cnt.addr)
        return -1;
    if (acpi_pm1_cnt(ai) & ACPI_PM1_CNT_SCI_EN)
        return 0;
    if (!ai->smi_cmd || !ai->acpi_enable)
        return -1;
    /* The firmware hands the fixed hardware over (ACPI 6.x, 16.3.1). */
    outb(ai->acpi_enable, (uint16_t)ai->smi_cmd);
    for (unsigned ms = 0; ms < ACPI_GONE_MS; ms++) {
        if (acpi_pm1_cnt(ai) & ACPI_PM1_CNT_SCI_EN)
            return 0;
        acpi_delay_ms(ai, 1);
    }
    return -1;
}

void acpi_delay_ms(const struct acpi_info *ai, unsigned ms)
{
    uint32_t mask = ai->fadt_flags & ACPI_FADT_TMR_VAL_EXT ? 0xffffffffu : 0xffffffu;
    uint64_t want = (uint64_t)ms * PM_TIMER_HZ / 1000, seen = 0;
    uint32_t last, now;
    unsigned still = 0;

    if (!ai->pm_tmr.addr || acpi_gas_read(&ai->pm_tmr, 0, 4, &last)) {
        for (unsigned long i = 0; i < (unsigned long)ms * ACPI_SPIN_PER_MS; i++)
            cpu_relax();
        return;
    }
    /* At 3.58 MHz the count moves between any two reads (each is a VM exit);
     * one that stands still for a thousand reads is broken: stop waiting. */
    while (seen < want && still < 1000) {
        if (acpi_gas_read(&ai->pm_tmr, 0, 4, &now))
            return;
        if ((now & mask) == (last & mask)) {
            still++;
            continue;
        }
        still = 0;
        seen += (now - last) & mask;
        last = now;
    }
}

/* Writes SLP_TYP, then SLP_TYP | SLP_EN, keeping PM1x_CNT's other bits
 * (SCI_EN above all), as Linux's acpi_hw_legacy_sleep() does. */
static void acpi_sleep_write(const struct acpi_gas *cnt, unsigned typ)
{
    uint32_t v;

    if (!cnt->addr || acpi_gas_read(cnt, 0, 2, &v))
        return;
    v &= ~(uint32_t)(ACPI_PM1_CNT_SLP_TYP | ACPI_PM1_CNT_SLP_EN);
    v |= (typ << ACPI_PM1_CNT_SLP_TYP_SHIFT) & ACPI_PM1_CNT_SLP_TYP;
    acpi_gas_write(cnt, 0, 2, v);
    acpi_gas_write(cnt, 0, 2, v | ACPI_PM1_CNT_SLP_EN);
}

int acpi_can_poweroff(const struct acpi_info *ai)
{
    return ai->fadt && ai->aml.s5 && (ai->pm1a_cnt.addr || ai->sleep_control.addr);
}

int acpi_poweroff(const struct acpi_info *ai)
{
    if (!acpi_can_poweroff(ai))
        return -1;
    /* The VMM may stop reading the console the moment the machine is off. */
    uart_flush();
    if (ai->pm1a_cnt.addr) {
        acpi_sleep_write(&ai->pm1b_cnt, ai->aml.slp_typb);
        acpi_sleep_write(&ai->pm1a_cnt, ai->aml.slp_typa);
    } else {
        uint32_t v = (ai->aml.slp_typa << ACPI_SLEEP_CTL_TYP_SHIFT) & ACPI_SLEEP_CTL_TYP;
        acpi_gas_write(&ai->sleep_control, 0, 1, v | ACPI_SLEEP_CTL_EN);
    }
    acpi_delay_ms(ai, ACPI_GONE_MS);
    return -1;
}

int acpi_reset(const struct acpi_info *ai)
{
    if (!ai->reset_sup)
        return -1;
    uart_flush();
    /* The reset register is 8 bits wide (ACPI 6.x, 4.8.3.6). */
    if (acpi_gas_write(&ai->reset_reg, 0, 1, ai->reset_value))
        return -1;
    acpi_delay_ms(ai, ACPI_GONE_MS);
    return -1;
}
