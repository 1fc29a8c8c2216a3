/*
 * ACPI firmware tables (ACPI 6.x, chapter 5.2) as a kit program reads them,
 * and the two fixed-hardware actions it can take: poweroff (\_S5) and reset
 * (the FADT's reset register).
 *
 * - The RSDP: boot_params.acpi_rsdp_addr (zero page 0x070, boot protocol
 *   2.14) if the loader set it, else the first KiB of the EBDA and
 *   0xe0000-0xfffff on 16-byte boundaries, as Linux searches. Its 20-byte
 *   checksum, and for revision 2 and later the extended one, must hold.
 * - The XSDT (RSDP revision >= 2 with an XSDT address) or else the RSDT, and
 *   every table they list: each header's checksum over its length must hold.
 *   Tables must lie below 4 GiB (the kit maps no more).
 * - MADT ("APIC"): LAPIC (type 0) and x2APIC (type 9) entries, IOAPICs,
 *   interrupt source overrides, the LAPIC address (and its override).
 * - FADT ("FACP"): SCI_INT, SMI_CMD/ACPI_ENABLE, the PM1 blocks and the PM
 *   timer (the X_ Generic Address Structures when non-zero, else the 32-bit
 *   port fields), the reset register, CENTURY, and the DSDT (X_DSDT or DSDT),
 *   which is checksummed and skimmed for \_S5 and the PCI host bridge
 *   (aml.h). SSDTs are checksummed, not skimmed.
 *
 * Everything is bounds-checked: a table that lies about its length, or an
 * entry that runs past its table, is an error message, not a fault.
 */
#ifndef KIT_ACPI_H
#define KIT_ACPI_H

#include "kit/aml.h"

#include <stdint.h>

#define ACPI_MAX_CPUS    256
#define ACPI_MAX_IOAPICS 8
#define ACPI_MAX_ISOS    24
#define ACPI_MAX_TABLES  32
#define ACPI_ERROR_LEN   96

/* Generic Address Structure address spaces the kit can reach. */
#define ACPI_GAS_MEM 0
#define ACPI_GAS_IO  1
#define ACPI_GAS_PCI 2 /* PCI configuration space, bus 0, through ports 0xcf8/0xcfc */

/* MPS INTI flags, as in MADT overrides (and MP table interrupt entries). */
#define ACPI_POLARITY_MASK 0x3 /* 0 conforms to the bus, 1 high, 3 low */
#define ACPI_POLARITY_HIGH 0x1
#define ACPI_POLARITY_LOW  0x3
#define ACPI_TRIGGER_MASK  0xc /* 0 conforms to the bus, 1 edge, 3 level */
#define ACPI_TRIGGER_EDGE  0x4
#define ACPI_TRIGGER_LEVEL 0xc

/* PM1 register bits (ACPI 6.x, 4.8.3). */
#define ACPI_PM1_PWRBTN            0x0100 /* PWRBTN_STS in PM1_STS, PWRBTN_EN in PM1_EN */
#define ACPI_PM1_CNT_SCI_EN        0x0001
#define ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define ACPI_PM1_CNT_SLP_TYP       0x1c00
#define ACPI_PM1_CNT_SLP_EN        0x2000
#define ACPI_SLEEP_CTL_TYP_SHIFT   2 /* the sleep control register (4.8.3.7) */
#define ACPI_SLEEP_CTL_TYP         0x1c
#define ACPI_SLEEP_CTL_EN          0x20

#define ACPI_FADT_TMR_VAL_EXT   (1u << 8)
#define ACPI_FADT_RESET_REG_SUP (1u << 10)

/* A register as a Generic Address Structure; addr 0 means "not present". */
struct acpi_gas {
    uint8_t space;
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t addr;
};

struct acpi_cpu {
    uint32_t apic_id;
    uint32_t uid;
    uint8_t enabled; /* flags bit 0; online-capable alone does not count */
    uint8_t x2apic;  /* from a type 9 entry */
};

struct acpi_ioapic {
    uint8_t id;
    uint32_t addr;
    uint32_t gsi_base;
};

struct acpi_iso {
    uint8_t bus, irq; /* bus 0 is ISA */
    uint32_t gsi;
    uint16_t flags; /* ACPI_POLARITY_*, ACPI_TRIGGER_* */
};

struct acpi_table {
    char sig[5];
    uint64_t addr;
    uint32_t len;
};

struct acpi_info {
    /* Where: the RSDP (0: no ACPI found) and the root table. */
    uint64_t rsdp;
    uint8_t rsdp_rev;
    uint64_t root;
    int xsdt; /* the root is an XSDT (else an RSDT) */
    unsigned ntables;
    struct acpi_table tables[ACPI_MAX_TABLES]; /* those the root lists, checked */

    /* MADT */
    int madt;
    uint64_t lapic_addr;
    uint32_t madt_flags;
    unsigned ncpus;         /* LAPIC entries, enabled or not, at most ACPI_MAX_CPUS */
    unsigned ncpus_enabled; /* of those, enabled */
    struct acpi_cpu cpus[ACPI_MAX_CPUS];
    unsigned nioapics;
    struct acpi_ioapic ioapics[ACPI_MAX_IOAPICS];
    unsigned nisos;
    struct acpi_iso isos[ACPI_MAX_ISOS];

    /* FADT */
    int fadt;
    uint8_t fadt_rev;
    uint32_t fadt_flags;
    uint16_t sci_irq;
    uint32_t smi_cmd;
    uint8_t acpi_enable;
    uint8_t century; /* the RTC's century register, 0 if none */
    struct acpi_gas pm1a_evt, pm1b_evt, pm1a_cnt, pm1b_cnt, pm_tmr;
    unsigned pm1_evt_len; /* bytes: PM1_STS then PM1_EN, half each */
    struct acpi_gas reset_reg;
    uint8_t reset_value;
    int reset_sup;                 /* RESET_REG_SUP, and the FADT is long enough to have it */
    struct acpi_gas sleep_control; /* hardware-reduced ACPI's (FADT 5.0+), else addr 0 */
    uint64_t dsdt;

    /* The DSDT, skimmed. */
    struct aml_info aml;

    char error[ACPI_ERROR_LEN]; /* the first problem found; "" if none */
};

/*
 * Finds and reads the tables into *ai (zeroed first). Returns 0 when ACPI is
 * there and every checksum and length holds; -1 when there is no RSDP (ai->error
 * empty); -2 when something is malformed (ai->error says what; what could be
 * read is still filled in).
 */
int acpi_init(struct acpi_info *ai);

/* The nth table (0, 1, ...) with signature sig that the root lists, or NULL. */
const struct acpi_table *acpi_find(const struct acpi_info *ai, const char *sig, unsigned n);

/*
 * The interrupt source override for ISA IRQ irq (bus 0), or NULL when the
 * MADT has none (the IRQ is then GSI irq, bus-conforming).
 */
const struct acpi_iso *acpi_iso_for(const struct acpi_info *ai, unsigned irq);

/*
 * The SCI's GSI and IOAPIC flags (kit/ioapic.h IOAPIC_LEVEL, IOAPIC_ACTIVE_LOW):
 * the override's when there is one; "conforming" means level, active low for
 * the SCI (ACPI 6.x 5.2.12.5; Linux's acpi_sci_ioapic_setup()).
 */
void acpi_sci_route(const struct acpi_info *ai, unsigned *gsi, unsigned *ioapic_flags);

/* Reads or writes a register described by a GAS, bytes wide (1, 2 or 4).
 * Returns 0, or -1 if the address space is not one the kit reaches. */
int acpi_gas_read(const struct acpi_gas *g, unsigned off, unsigned bytes, uint32_t *v);
int acpi_gas_write(const struct acpi_gas *g, unsigned off, unsigned bytes, uint32_t v);

/* PM1_STS and PM1_EN of the PM1a event block (16 bits each). */
int acpi_pm1_sts_read(const struct acpi_info *ai, uint16_t *v);
int acpi_pm1_sts_clear(const struct acpi_info *ai, uint16_t bits);
int acpi_pm1_en_write(const struct acpi_info *ai, uint16_t v);

/*
 * Puts the machine in ACPI mode if it is not (SCI_EN clear): writes
 * ACPI_ENABLE to SMI_CMD and waits up to a second for SCI_EN. Returns 0 when
 * SCI_EN is set, -1 otherwise.
 */
int acpi_enable_sci(const struct acpi_info *ai);

/* Waits about ms milliseconds on the PM timer (a bounded spin without one). */
void acpi_delay_ms(const struct acpi_info *ai, unsigned ms);

/* Whether acpi_poweroff() has what it needs: \_S5 and PM1a_CNT (or, on
 * hardware-reduced ACPI, the sleep control register). */
int acpi_can_poweroff(const struct acpi_info *ai);

/*
 * Powers off: SLP_TYPa from \_S5 with SLP_EN into PM1a_CNT (and SLP_TYPb
 * into PM1b_CNT if there is one), 16-bit writes that keep the register's
 * other bits; without PM1a_CNT, SLP_TYPa with SLP_EN into the sleep control
 * register. Flushes the console first. Returns -1 at once if
 * !acpi_can_poweroff(), or, after waiting a second for the machine to go,
 * if it did not.
 */
int acpi_poweroff(const struct acpi_info *ai);

/*
 * Resets through the FADT's reset register (RESET_REG_SUP), writing the reset
 * value. Returns -1 at once without one, or after a second if nothing
 * happened.
 */
int acpi_reset(const struct acpi_info *ai);

#endif
