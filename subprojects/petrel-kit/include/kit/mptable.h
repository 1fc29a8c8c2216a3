/*
 * The MultiProcessor Specification 1.4 tables, as a kit program reads them:
 * the floating pointer ("_MP_", searched for in the first KiB of the EBDA,
 * the last KiB of base memory and 0xf0000-0xfffff on 16-byte boundaries,
 * chapter 4) and the configuration table ("PCMP") it points to. Both
 * checksums must hold (and the extended table's, if there is one); entries
 * are walked by type (a processor is 20 bytes, the others 8) up to the base
 * table's length, as Linux does, and must number the header's entry count.
 */
#ifndef KIT_MPTABLE_H
#define KIT_MPTABLE_H

#include <stdint.h>

#define MP_MAX_CPUS    256
#define MP_MAX_BUSES   32
#define MP_MAX_IOAPICS 8
#define MP_MAX_INTS    64
#define MP_ERROR_LEN   96

#define MP_CPU_ENABLED 0x1
#define MP_CPU_BSP     0x2
#define MP_IOAPIC_EN   0x1

/* Interrupt entry flags (table 4-10): polarity bits 1:0, trigger bits 3:2,
 * 0 meaning "conforms to the bus"; the same encoding as ACPI's. */
#define MP_POLARITY_MASK 0x3
#define MP_TRIGGER_MASK  0xc

#define MP_INT_INT    0 /* vectored, through the I/O APIC */
#define MP_INT_NMI    1
#define MP_INT_SMI    2
#define MP_INT_EXTINT 3

struct mp_cpu {
    uint8_t apic_id;
    uint8_t flags; /* MP_CPU_ENABLED, MP_CPU_BSP */
};

struct mp_bus {
    uint8_t id;
    char type[7]; /* "ISA   ", "PCI   ", ... NUL-terminated */
};

struct mp_ioapic {
    uint8_t id;
    uint8_t flags; /* MP_IOAPIC_EN */
    uint32_t addr;
};

/* An I/O interrupt assignment entry (type 3). */
struct mp_int {
    uint8_t type; /* MP_INT_* */
    uint16_t flags;
    uint8_t bus, bus_irq;
    uint8_t ioapic, pin; /* ioapic 0xff: every I/O APIC */
};

struct mp_info {
    uint64_t mpf;        /* the floating pointer; 0: no MP table found */
    uint8_t spec_rev;    /* 1 (1.1) or 4 (1.4) */
    uint8_t default_cfg; /* feature byte 1: a default configuration, no table */
    uint32_t mpc;        /* the configuration table */
    uint32_t lapic_addr;
    unsigned ncpus;         /* processor entries kept, at most MP_MAX_CPUS */
    unsigned ncpus_enabled; /* enabled processor entries, all of them */
    struct mp_cpu cpus[MP_MAX_CPUS];
    unsigned nbuses;
    struct mp_bus buses[MP_MAX_BUSES];
    unsigned nioapics;
    struct mp_ioapic ioapics[MP_MAX_IOAPICS];
    unsigned nints;
    struct mp_int ints[MP_MAX_INTS];
    unsigned nlints; /* local interrupt entries (type 4), counted */
    char error[MP_ERROR_LEN];
};

/*
 * Finds and reads the MP table into *mi (zeroed first). Returns 0 when it is
 * there and sound, -1 when there is none (mi->error empty), -2 when something
 * is malformed (mi->error says what; what could be read is filled in).
 */
int mptable_init(struct mp_info *mi);

/* Whether bus id is an ISA bus (its type "ISA   "). */
int mptable_bus_is_isa(const struct mp_info *mi, unsigned id);

#endif
