/*
 * The x86 platform petrel presents to a guest: where things are and how
 * interrupts are wired. One place, shared by the ACPI tables, the MP table,
 * the irqchip routing and the devices, so the descriptions cannot disagree.
 * docs/platform.md explains the choices.
 */
#ifndef PETREL_PLATFORM_H
#define PETREL_PLATFORM_H

#include <stdbool.h>
#include <stdint.h>

/* APIC IDs are 0 .. nr_cpus-1 (one package, one thread per core); the
 * IOAPIC takes the next ID, so every ID fits the MP table's 8 bits. */
#define PLAT_MAX_CPUS 254

/* Guest-physical addresses. */
#define PLAT_ACPI_GPA      0xe0000 /* RSDP first, then the other ACPI tables */
#define PLAT_ACPI_SIZE     0x10000
#define PLAT_MPTABLE_GPA   0xf0000 /* MP floating pointer, then the MP config table */
#define PLAT_MPTABLE_SIZE  0x10000
#define PLAT_PCI_MMIO_BASE 0xc0000000u /* the 32-bit PCI window: a hole in e820 */
#define PLAT_PCI_MMIO_SIZE 0x3ec00000u /* up to the IOAPIC */
#define PLAT_IOAPIC_GPA    0xfec00000u
#define PLAT_LAPIC_GPA     0xfee00000u
#define PLAT_IOAPIC_PINS   24

/* ACPI fixed hardware (full FADT, not hardware-reduced): I/O ports. */
#define PLAT_PM1A_EVT_PORT 0x600 /* PM1_STS (2 bytes) + PM1_EN (2 bytes) */
#define PLAT_PM1A_CNT_PORT 0x604 /* PM1_CNT (2 bytes) */
#define PLAT_PM_TMR_PORT   0x608 /* 32-bit PM timer, 3.579545 MHz */
#define PLAT_RESET_PORT    0x60c /* FADT reset register (1 byte) */
#define PLAT_PM_PORTS      0x10  /* 0x600-0x60f */
#define PLAT_RESET_VALUE   0x01
#define PLAT_SLP_TYP_S5    5 /* the \_S5 package's SLP_TYPa */
#define PLAT_SCI_IRQ       9 /* level, active low */

/* Legacy devices. */
#define PLAT_COM1_IRQ  4
#define PLAT_KBD_IRQ   1
#define PLAT_MOUSE_IRQ 12
#define PLAT_RTC_IRQ   8
#define PLAT_PIT_IRQ   0

/* The PCI configuration mechanism #1 ports the host bridge claims. */
#define PLAT_PCI_CONF_PORT 0xcf8
#define PLAT_PCI_CONF_LEN  8

/* The IOAPIC's ID: the first ID no vCPU uses. */
static inline uint8_t plat_ioapic_id(unsigned nr_cpus)
{
    return (uint8_t)nr_cpus;
}

/* The IOAPIC pin (= ACPI GSI) of an ISA IRQ: IRQ 0 (the PIT) is on pin 2,
 * as on a PC, the others are on the pin of the same number. */
static inline unsigned plat_isa_gsi(unsigned isa_irq)
{
    return isa_irq == 0 ? 2 : isa_irq;
}

/* The one ISA IRQ that is not edge/active-high: the SCI. */
static inline bool plat_isa_irq_level_low(unsigned isa_irq)
{
    return isa_irq == PLAT_SCI_IRQ;
}

#endif
