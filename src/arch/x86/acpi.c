/*
 * ACPI tables (ACPI 6.0, chapter 5.2) for the platform in docs/platform.md.
 * Everything is laid out in one buffer the caller copies to PLAT_ACPI_GPA:
 * RSDP, XSDT, FADT, FACS, MADT, DSDT, each 16-byte aligned (FACS 64).
 */
#include "petrel/acpi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "petrel/aml.h"
#include "petrel/platform.h"

#define ACPI_HDR_LEN 36
#define RSDP_LEN     36
#define FADT_LEN     276 /* revision 6 */
#define FACS_LEN     64

#define OEM_ID       "PETREL"
#define OEM_TABLE_ID "PETREL  "
#define OEM_REVISION 1
#define CREATOR_ID   "PTRL"
#define CREATOR_REV  1

/* FADT flags and IA-PC boot architecture flags used here. */
#define FADT_WBINVD          (1u << 0)
#define FADT_PROC_C1         (1u << 2)
#define FADT_SLP_BUTTON      (1u << 5)
#define FADT_TMR_VAL_EXT     (1u << 8)
#define FADT_RESET_REG_SUP   (1u << 10)
#define BOOT_LEGACY_DEVICES  (1u << 0)
#define BOOT_8042            (1u << 1)
#define BOOT_VGA_NOT_PRESENT (1u << 2)

/* Generic Address Structure: system I/O space. */
#define GAS_SYSTEM_IO 1
enum { GAS_BYTE = 1, GAS_WORD = 2, GAS_DWORD = 3 };

/* MADT entry types and interrupt flags. */
enum { MADT_LAPIC = 0, MADT_IOAPIC = 1, MADT_ISO = 2, MADT_LAPIC_NMI = 4 };
#define MADT_PCAT_COMPAT   1u
#define MPS_INTI_LOW_LEVEL 0x000f /* polarity active low (3), trigger level (3 << 2) */

struct out {
    uint8_t *buf;
    size_t cap, len;
};

static void put(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)-sum;
}

/* Claims len zeroed bytes at the next multiple of align; NULL when full. */
static uint8_t *take(struct out *o, size_t len, size_t align, size_t *off)
{
    size_t at = (o->len + align - 1) & ~(align - 1);
    if (at > o->cap || len > o->cap - at)
        return NULL;
    memset(o->buf + o->len, 0, at + len - o->len);
    o->len = at + len;
    *off = at;
    return o->buf + at;
}

static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(t, sig, 4);
    put(t + 4, len, 4);
    t[8] = rev;
    memcpy(t + 10, OEM_ID, 6);
    memcpy(t + 16, OEM_TABLE_ID, 8);
    put(t + 24, OEM_REVISION, 4);
    memcpy(t + 28, CREATOR_ID, 4);
    put(t + 32, CREATOR_REV, 4);
}

static void seal(uint8_t *t, uint32_t len)
{
    t[9] = 0;
    t[9] = checksum(t, len);
}

static void gas_io(uint8_t *g, uint16_t port, uint8_t bytes, uint8_t access)
{
    g[0] = GAS_SYSTEM_IO;
    g[1] = (uint8_t)(bytes * 8);
    g[2] = 0;
    g[3] = access;
    put(g + 4, port, 8);
}

static void dsdt_resources_pci(struct aml *a)
{
    aml_name(a, "_CRS");
    aml_buffer(a);
    aml_res_bus_range(a, 0, 0xff);
    aml_res_io(a, PLAT_PCI_CONF_PORT, PLAT_PCI_CONF_LEN);
    aml_res_io_range(a, 0x0000, PLAT_PCI_CONF_PORT - 1);
    aml_res_io_range(a, 0x0d00, 0xffff);
    aml_res_mem32_range(a, PLAT_PCI_MMIO_BASE, PLAT_PCI_MMIO_BASE + PLAT_PCI_MMIO_SIZE - 1);
    aml_res_end(a);
    aml_close(a);
}

/* A legacy device: _HID, then _CRS with an I/O range (len 0: none) and an IRQ. */
static void dsdt_legacy(struct aml *a, const char *name, const char *hid, uint16_t port,
                        uint8_t len, uint16_t port2, unsigned irq)
{
    aml_device(a, name);
    aml_name(a, "_HID");
    aml_eisaid(a, hid);
    aml_name(a, "_CRS");
    aml_buffer(a);
    if (len)
        aml_res_io(a, port, len);
    if (port2)
        aml_res_io(a, port2, 1);
    aml_res_irq(a, irq);
    aml_res_end(a);
    aml_close(a);
    aml_close(a);
}

static int dsdt_build(struct aml *a, unsigned nr_cpus)
{
    aml_name(a, "\\_S5");
    aml_package(a, 4);
    aml_int(a, PLAT_SLP_TYP_S5);
    aml_int(a, PLAT_SLP_TYP_S5);
    aml_int(a, 0);
    aml_int(a, 0);
    aml_close(a);

    aml_scope(a, "\\_SB");
    for (unsigned i = 0; i < nr_cpus; i++) {
        char name[16];
        snprintf(name, sizeof(name), "C%03X", i & 0xfff);
        aml_device(a, name);
        aml_name(a, "_HID");
        aml_string(a, "ACPI0007");
        aml_name(a, "_UID");
        aml_int(a, i);
        aml_close(a);
    }

    aml_device(a, "PCI0");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0A03");
    aml_name(a, "_SEG");
    aml_int(a, 0);
    aml_name(a, "_BBN");
    aml_int(a, 0);
    aml_name(a, "_UID");
    aml_int(a, 0);
    dsdt_resources_pci(a);
    aml_close(a);

    dsdt_legacy(a, "COM1", "PNP0501", 0x3f8, 8, 0, PLAT_COM1_IRQ);
    dsdt_legacy(a, "KBD", "PNP0303", 0x60, 1, 0x64, PLAT_KBD_IRQ);
    dsdt_legacy(a, "MOU", "PNP0F13", 0, 0, 0, PLAT_MOUSE_IRQ);
    dsdt_legacy(a, "RTC", "PNP0B00", 0x70, 2, 0, PLAT_RTC_IRQ);
    aml_close(a);
    return aml_finish(a);
}

static uint8_t *build_dsdt(struct out *o, unsigned nr_cpus, size_t *off, int *err)
{
    struct aml a;
    aml_init(&a);
    *err = dsdt_build(&a, nr_cpus);
    uint8_t *t = NULL;
    if (!*err) {
        t = take(o, ACPI_HDR_LEN + a.len, 16, off);
        if (t) {
            header(t, "DSDT", (uint32_t)(ACPI_HDR_LEN + a.len), 2);
            memcpy(t + ACPI_HDR_LEN, a.buf, a.len);
            seal(t, (uint32_t)(ACPI_HDR_LEN + a.len));
        } else {
            *err = -ENOSPC;
        }
    }
    aml_free(&a);
    return t;
}

static uint8_t *build_madt(struct out *o, unsigned nr_cpus, size_t *off)
{
    uint32_t len = ACPI_HDR_LEN + 8 + 8 * nr_cpus + 12 + 2 * 10 + 6;
    uint8_t *t = take(o, len, 16, off);
    if (!t)
        return NULL;
    header(t, "APIC", len, 4);
    put(t + 36, PLAT_LAPIC_GPA, 4);
    put(t + 40, MADT_PCAT_COMPAT, 4);
    uint8_t *e = t + 44;
    for (unsigned i = 0; i < nr_cpus; i++, e += 8) {
        e[0] = MADT_LAPIC;
        e[1] = 8;
        e[2] = (uint8_t)i; /* ACPI processor UID: the DSDT's _UID */
        e[3] = (uint8_t)i; /* APIC ID */
        put(e + 4, 1, 4);  /* enabled */
    }
    e[0] = MADT_IOAPIC;
    e[1] = 12;
    e[2] = plat_ioapic_id(nr_cpus);
    put(e + 4, PLAT_IOAPIC_GPA, 4);
    put(e + 8, 0, 4); /* GSI base */
    e += 12;
    static const unsigned overrides[] = {PLAT_PIT_IRQ, PLAT_SCI_IRQ};
    for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++, e += 10) {
        unsigned irq = overrides[i];
        e[0] = MADT_ISO;
        e[1] = 10;
        e[2] = 0; /* ISA */
        e[3] = (uint8_t)irq;
        put(e + 4, plat_isa_gsi(irq), 4);
        put(e + 8, plat_isa_irq_level_low(irq) ? MPS_INTI_LOW_LEVEL : 0, 2);
    }
    e[0] = MADT_LAPIC_NMI;
    e[1] = 6;
    e[2] = 0xff; /* all processors */
    put(e + 3, 0, 2);
    e[5] = 1; /* LINT1 */
    seal(t, len);
    return t;
}

static void build_fadt(uint8_t *t, uint64_t facs, uint64_t dsdt)
{
    header(t, "FACP", FADT_LEN, 6);
    /* FIRMWARE_CTRL must be 0 when X_FIRMWARE_CTRL is set (Linux would map the FACS twice). */
    put(t + 40, dsdt, 4);
    put(t + 46, PLAT_SCI_IRQ, 2);
    put(t + 48, 0, 4); /* SMI_CMD: ACPI is always enabled */
    put(t + 56, PLAT_PM1A_EVT_PORT, 4);
    put(t + 64, PLAT_PM1A_CNT_PORT, 4);
    put(t + 76, PLAT_PM_TMR_PORT, 4);
    t[88] = 4;            /* PM1_EVT_LEN */
    t[89] = 2;            /* PM1_CNT_LEN */
    t[91] = 4;            /* PM_TMR_LEN */
    put(t + 96, 101, 2);  /* P_LVL2_LAT > 100: no C2 */
    put(t + 98, 1001, 2); /* P_LVL3_LAT > 1000: no C3 */
    t[108] = 0x32;        /* CENTURY: the RTC's century register */
    put(t + 109, BOOT_LEGACY_DEVICES | BOOT_8042 | BOOT_VGA_NOT_PRESENT, 2);
    put(t + 112,
        FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_TMR_VAL_EXT | FADT_RESET_REG_SUP, 4);
    gas_io(t + 116, PLAT_RESET_PORT, 1, GAS_BYTE);
    t[128] = PLAT_RESET_VALUE;
    t[131] = 0; /* FADT minor version: ACPI 6.0 */
    put(t + 132, facs, 8);
    put(t + 140, dsdt, 8);
    gas_io(t + 148, PLAT_PM1A_EVT_PORT, 4, GAS_WORD);
    gas_io(t + 172, PLAT_PM1A_CNT_PORT, 2, GAS_WORD);
    gas_io(t + 208, PLAT_PM_TMR_PORT, 4, GAS_DWORD);
    seal(t, FADT_LEN);
}

ssize_t acpi_build(void *buf, size_t cap, uint64_t gpa, unsigned nr_cpus)
{
    struct out o = {.buf = buf, .cap = cap};
    size_t rsdp_off = 0, xsdt_off = 0, fadt_off = 0, facs_off = 0, madt_off = 0, dsdt_off = 0;
    int err = 0;

    if (nr_cpus < 1 || nr_cpus > PLAT_MAX_CPUS)
        return -EINVAL;
    uint8_t *rsdp = take(&o, RSDP_LEN, 16, &rsdp_off);
    uint32_t xsdt_len = ACPI_HDR_LEN + 2 * 8;
    uint8_t *xsdt = take(&o, xsdt_len, 16, &xsdt_off);
    uint8_t *fadt = take(&o, FADT_LEN, 16, &fadt_off);
    uint8_t *facs = take(&o, FACS_LEN, 64, &facs_off);
    uint8_t *madt = build_madt(&o, nr_cpus, &madt_off);
    uint8_t *dsdt = build_dsdt(&o, nr_cpus, &dsdt_off, &err);
    if (err)
        return err;
    if (!rsdp || !xsdt || !fadt || !facs || !madt || !dsdt)
        return -ENOSPC;
    if (gpa + o.len > UINT32_MAX)
        return -EINVAL; /* the FADT's 32-bit FACS and DSDT fields must reach */

    memcpy(facs, "FACS", 4);
    put(facs + 4, FACS_LEN, 4);
    facs[32] = 2; /* version */

    build_fadt(fadt, gpa + facs_off, gpa + dsdt_off);

    header(xsdt, "XSDT", xsdt_len, 1);
    put(xsdt + 36, gpa + fadt_off, 8);
    put(xsdt + 44, gpa + madt_off, 8);
    seal(xsdt, xsdt_len);

    memcpy(rsdp, "RSD PTR ", 8);
    memcpy(rsdp + 9, OEM_ID, 6);
    rsdp[15] = 2; /* revision: ACPI 2.0 and later, XSDT only */
    put(rsdp + 20, RSDP_LEN, 4);
    put(rsdp + 24, gpa + xsdt_off, 8);
    rsdp[8] = checksum(rsdp, 20);
    rsdp[32] = checksum(rsdp, RSDP_LEN);
    return (ssize_t)o.len;
}
