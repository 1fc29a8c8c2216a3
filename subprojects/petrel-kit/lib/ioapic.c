/* I/O APIC redirection entries; see include/kit/ioapic.h. */
#include "kit/ioapic.h"
#include "kit/io.h"

#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN    0x10

#define IOAPIC_REG_VER 0x01
#define IOAPIC_REG_RED 0x10 /* pin n: low word at 0x10 + 2n, high word after it */

#define IOAPIC_RED_LEVEL      0x8000
#define IOAPIC_RED_ACTIVE_LOW 0x2000
#define IOAPIC_RED_MASKED     0x10000

static uint32_t ioapic_read(unsigned reg)
{
    mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
    return mmio_read32(IOAPIC_BASE + IOAPIC_WIN);
}

static void ioapic_write(unsigned reg, uint32_t v)
{
    mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
    mmio_write32(IOAPIC_BASE + IOAPIC_WIN, v);
}

unsigned ioapic_pins(void)
{
    return ((ioapic_read(IOAPIC_REG_VER) >> 16) & 0xff) + 1;
}

void ioapic_mask_all(void)
{
    unsigned n = ioapic_pins();

    for (unsigned pin = 0; pin < n; pin++)
        ioapic_write(IOAPIC_REG_RED + 2 * pin, IOAPIC_RED_MASKED);
}

void ioapic_route(unsigned pin, unsigned vector, unsigned flags, unsigned dest)
{
    uint32_t lo = vector & 0xff; /* fixed delivery, physical destination */

    if (flags & IOAPIC_LEVEL)
        lo |= IOAPIC_RED_LEVEL;
    if (flags & IOAPIC_ACTIVE_LOW)
        lo |= IOAPIC_RED_ACTIVE_LOW;
    /* Destination first, so the entry is never live with a stale one. */
    ioapic_write(IOAPIC_REG_RED + 2 * pin, IOAPIC_RED_MASKED);
    ioapic_write(IOAPIC_REG_RED + 2 * pin + 1, (dest & 0xff) << 24);
    ioapic_write(IOAPIC_REG_RED + 2 * pin, lo);
}

void ioapic_mask(unsigned pin)
{
    uint32_t lo = ioapic_read(IOAPIC_REG_RED + 2 * pin);

    ioapic_write(IOAPIC_REG_RED + 2 * pin, lo | IOAPIC_RED_MASKED);
}
