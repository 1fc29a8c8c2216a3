/*
 * pwrbtn: waits for the ACPI power button, then powers off through ACPI.
 *
 * Reads the FADT and MADT (include/kit/acpi.h), routes the SCI (SCI_INT,
 * through the MADT's override for it: its GSI, polarity and trigger; level,
 * active low when it conforms, as the SCI does) from its I/O APIC pin to
 * vector IRQ_VECTOR_ISA + SCI_INT, makes sure ACPI mode is on (SCI_EN),
 * clears PWRBTN_STS and sets PM1_EN to PWRBTN_EN alone, prints
 *
 *   pwrbtn: sci <irq> gsi <gsi> <low|high> <level|edge>
 *   pwrbtn: armed
 *
 * and sleeps in kit_idle(). On an SCI it reads PM1_STS: with PWRBTN_STS it
 * writes the bit back to clear it (which drops the SCI), prints "pwrbtn:
 * pressed" and powers off (\_S5); if that returns, "pwrbtn: FAIL ..." and
 * exit 1. An SCI without PWRBTN_STS prints "pwrbtn: sci without PWRBTN_STS
 * (PM1_STS 0x<hex>)" and is ignored; PWRBTN_STORM of them in a row (a line
 * stuck high) mask the pin, print a FAIL line and exit 1. Anything missing
 * (no ACPI, no PM1 event block, no \_S5, the SCI not on the I/O APIC at
 * 0xfec00000) prints "pwrbtn: FAIL <why>" and exits 1. No options.
 *
 * A press before "armed" is not seen: PWRBTN_STS is cleared when arming.
 */
#include "kit/acpi.h"
#include "kit/ioapic.h"
#include "kit/irq.h"
#include "kit/kit.h"
#include "kit/printf.h"

#define PWRBTN_STORM 100

static struct acpi_info acpi;
static unsigned sci_pin;
static unsigned strays; /* SCIs in a row without PWRBTN_STS */

/*
 * The SCI. PWRBTN_STS is cleared before the handler returns, so the level
 * is low by the EOI that irq.c sends next; that EOI is broadcast to the I/O
 * APIC (the kit leaves SVR's suppress-EOI-broadcast bit clear), which clears
 * the pin's Remote IRR so the next press is delivered.
 */
static void pwrbtn_sci(unsigned vector)
{
    uint16_t sts = 0;

    (void)vector;
    acpi_pm1_sts_read(&acpi, &sts);
    if (!(sts & ACPI_PM1_PWRBTN)) {
        printf("pwrbtn: sci without PWRBTN_STS (PM1_STS 0x%04x)\n", sts);
        if (++strays == PWRBTN_STORM) {
            ioapic_mask(sci_pin);
            printf("pwrbtn: FAIL %u SCIs in a row without a cause: pin %u masked\n", strays,
                   sci_pin);
            kit_exit(1);
        }
        return;
    }
    strays = 0;
    acpi_pm1_sts_clear(&acpi, ACPI_PM1_PWRBTN);
    puts("pwrbtn: pressed");
    acpi_poweroff(&acpi);
    puts("pwrbtn: FAIL poweroff: the machine is still on");
    kit_exit(1);
}

/* Whether gsi is a pin of the I/O APIC the kit drives (kit/ioapic.h). */
static int pwrbtn_gsi_ok(unsigned gsi)
{
    for (unsigned i = 0; i < acpi.nioapics; i++) {
        const struct acpi_ioapic *io = &acpi.ioapics[i];

        if (io->addr == IOAPIC_BASE && gsi >= io->gsi_base && gsi - io->gsi_base < ioapic_pins()) {
            sci_pin = gsi - io->gsi_base;
            return 1;
        }
    }
    return 0;
}

int kit_main(void)
{
    unsigned gsi, flags;

    int r = acpi_init(&acpi);
    if (r == -1) {
        puts("pwrbtn: FAIL no ACPI tables");
        return 1;
    }
    if (r < 0) {
        printf("pwrbtn: FAIL acpi: %s\n", acpi.error);
        return 1;
    }
    if (!acpi.pm1a_evt.addr) {
        puts("pwrbtn: FAIL the FADT has no PM1a event block");
        return 1;
    }
    if (!acpi_can_poweroff(&acpi)) {
        puts("pwrbtn: FAIL no ACPI poweroff (\\_S5 or PM1a_CNT missing)");
        return 1;
    }
    if (acpi.sci_irq >= 16) {
        printf("pwrbtn: FAIL SCI_INT %u is not an ISA IRQ\n", acpi.sci_irq);
        return 1;
    }
    acpi_sci_route(&acpi, &gsi, &flags);
    if (!pwrbtn_gsi_ok(gsi)) {
        printf("pwrbtn: FAIL the SCI's GSI %u is not on the I/O APIC at 0x%x\n", gsi, IOAPIC_BASE);
        return 1;
    }
    irq_init();
    if (acpi_enable_sci(&acpi)) {
        puts("pwrbtn: FAIL SCI_EN stays clear (ACPI mode is off)");
        return 1;
    }
    /* Quiet first: no event enabled, no stale press; then the pin; then the
     * one event wanted. */
    acpi_pm1_en_write(&acpi, 0);
    acpi_pm1_sts_clear(&acpi, ACPI_PM1_PWRBTN);
    unsigned vector = IRQ_VECTOR_ISA + acpi.sci_irq;
    irq_set_handler(vector, pwrbtn_sci);
    ioapic_route(sci_pin, vector, flags, lapic_id());
    acpi_pm1_en_write(&acpi, ACPI_PM1_PWRBTN);
    printf("pwrbtn: sci %u gsi %u %s %s\n", acpi.sci_irq, gsi,
           flags & IOAPIC_ACTIVE_LOW ? "low" : "high", flags & IOAPIC_LEVEL ? "level" : "edge");
    puts("pwrbtn: armed");
    for (;;)
        kit_idle();
}
