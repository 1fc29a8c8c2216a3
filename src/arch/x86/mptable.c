/* The MP spec 1.4 floating pointer and configuration table (docs/platform.md, "MP table"). */
#include "petrel/mptable.h"

#include <errno.h>
#include <string.h>

#include "petrel/platform.h"
#include "petrel/x86_boot.h"

_Static_assert(MPTABLE_SIZE(PLAT_MAX_CPUS) <= PLAT_MPTABLE_SIZE,
               "the MP table for PLAT_MAX_CPUS vCPUs must fit its reserved area");

/* Entry types, in the order the specification wants them in the table. */
enum {
    MP_PROCESSOR = 0,
    MP_BUS = 1,
    MP_IOAPIC = 2,
    MP_IOINTR = 3,
    MP_LINTR = 4,
};

/* Interrupt types of I/O and local interrupt entries. */
enum {
    MP_INT = 0,
    MP_NMI = 1,
    MP_EXTINT = 3,
};

#define MP_SPEC_REV 4 /* 1.4 */

#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP     0x02
#define MP_IOAPIC_EN   0x01

/*
 * Interrupt entry flags: polarity in bits 0-1, trigger mode in bits 2-3;
 * 0 in either means "conforms to the bus" (ISA: edge, active high).
 */
#define MP_IRQ_ACTIVE_LOW (3 << 0)
#define MP_IRQ_LEVEL      (3 << 2)

#define MP_BUS_PCI     0
#define MP_BUS_ISA     1
#define MP_ALL_LAPICS  0xff
#define MP_ISA_IRQS    16
#define MP_ISA_CASCADE 2 /* the slave PIC's input: no device, no entry */

/*
 * The versions KVM's in-kernel irqchip reports in its registers, which the
 * table should agree with: the LAPIC version register reads 0x14 (an
 * integrated xAPIC; arch/x86/kvm/lapic.c APIC_VERSION), the IOAPIC's 0x11
 * (arch/x86/kvm/ioapic.h IOAPIC_VERSION_ID; 0x20, with the EOI register, only
 * once userspace opts in to suppressing EOI broadcasts, which petrel does not).
 */
#define MP_LAPIC_VERSION  0x14
#define MP_IOAPIC_VERSION 0x11

/*
 * Linux reads only a processor entry's APIC ID and flags (older kernels the
 * LAPIC version too), never the CPU signature or feature flags. Rather than
 * thread the guest's CPUID through here, petrel reports what kvmtool does and
 * SeaBIOS does without CPUID: family 6, and CPUID.1:EDX with FPU and APIC.
 */
#define MP_CPU_SIGNATURE 0x600
#define MP_CPU_FEATURES  ((1u << 0) | (1u << 9))

#define MP_OEM_ID     "PETREL  "     /* 8 bytes, space padded */
#define MP_PRODUCT_ID "PETREL      " /* 12 bytes, space padded */

/* The byte that makes the sum of p[0, len) zero. */
static uint8_t mptable_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;

    for (size_t i = 0; i < len; i++)
        sum += p[i];
    return (uint8_t)-sum;
}

/* A processor entry; returns the next entry's position. */
static uint8_t *mptable_put_cpu(uint8_t *p, unsigned apic_id)
{
    p[0] = MP_PROCESSOR;
    p[1] = (uint8_t)apic_id;
    p[2] = MP_LAPIC_VERSION;
    p[3] = MP_CPU_ENABLED | (apic_id == 0 ? MP_CPU_BSP : 0);
    put_le32(p + 4, MP_CPU_SIGNATURE);
    put_le32(p + 8, MP_CPU_FEATURES);
    return p + MPTABLE_CPU_SIZE;
}

/* A bus entry; type is the specification's 6-character, space-padded name. */
static uint8_t *mptable_put_bus(uint8_t *p, uint8_t id, const char *type)
{
    p[0] = MP_BUS;
    p[1] = id;
    memcpy(p + 2, type, 6);
    return p + MPTABLE_ENTRY_SIZE;
}

/* An I/O or local interrupt entry: both have the same layout. */
static uint8_t *mptable_put_irq(uint8_t *p, uint8_t entry, uint8_t irq_type, uint16_t flags,
                                uint8_t bus, uint8_t bus_irq, uint8_t dst_apic, uint8_t dst_pin)
{
    p[0] = entry;
    p[1] = irq_type;
    put_le16(p + 2, flags);
    p[4] = bus;
    p[5] = bus_irq;
    p[6] = dst_apic;
    p[7] = dst_pin;
    return p + MPTABLE_ENTRY_SIZE;
}

int mptable_build(void *buf, size_t cap, uint32_t gpa, unsigned nr_cpus)
{
    if (nr_cpus == 0 || nr_cpus > PLAT_MAX_CPUS)
        return -EINVAL;
    size_t size = MPTABLE_SIZE(nr_cpus);
    if (gpa % 16 != 0 || (uint64_t)gpa + size > 1ULL << 32)
        return -EINVAL;
    if (cap < size)
        return -ENOSPC;

    uint8_t *mpf = buf;
    uint8_t *mpc = mpf + MPTABLE_FLOAT_SIZE;
    uint8_t *p = mpc + MPTABLE_HEADER_SIZE;
    uint8_t ioapic_id = plat_ioapic_id(nr_cpus);
    memset(buf, 0, size);

    for (unsigned i = 0; i < nr_cpus; i++)
        p = mptable_put_cpu(p, i);

    p = mptable_put_bus(p, MP_BUS_PCI, "PCI   ");
    p = mptable_put_bus(p, MP_BUS_ISA, "ISA   ");

    p[0] = MP_IOAPIC;
    p[1] = ioapic_id;
    p[2] = MP_IOAPIC_VERSION;
    p[3] = MP_IOAPIC_EN;
    put_le32(p + 4, PLAT_IOAPIC_GPA);
    p += MPTABLE_ENTRY_SIZE;

    for (unsigned irq = 0; irq < MP_ISA_IRQS; irq++) {
        if (irq == MP_ISA_CASCADE)
            continue;
        uint16_t flags = plat_isa_irq_level_low(irq) ? MP_IRQ_LEVEL | MP_IRQ_ACTIVE_LOW : 0;
        p = mptable_put_irq(p, MP_IOINTR, MP_INT, flags, MP_BUS_ISA, (uint8_t)irq, ioapic_id,
                            (uint8_t)plat_isa_gsi(irq));
    }

    /*
     * KVM offers the PIC's output to every LAPIC whose LINT0 is unmasked
     * ExtINT (kvm_apic_accept_pic_intr()), so LINT0 is wired to all LAPICs,
     * as LINT1 is, as in the specification's default configurations (SeaBIOS
     * and kvmtool name only the BSP for ExtINT). Linux only prints these.
     */
    p = mptable_put_irq(p, MP_LINTR, MP_EXTINT, 0, MP_BUS_ISA, 0, MP_ALL_LAPICS, 0);
    p = mptable_put_irq(p, MP_LINTR, MP_NMI, 0, MP_BUS_ISA, 0, MP_ALL_LAPICS, 1);

    size_t mpc_len = (size_t)(p - mpc);
    memcpy(mpc, "PCMP", 4);
    put_le16(mpc + 4, (uint16_t)mpc_len);
    mpc[6] = MP_SPEC_REV;
    memcpy(mpc + 8, MP_OEM_ID, 8);
    memcpy(mpc + 16, MP_PRODUCT_ID, 12);
    put_le16(mpc + 34, (uint16_t)(nr_cpus + MPTABLE_FIXED_ENTRIES));
    put_le32(mpc + 36, PLAT_LAPIC_GPA);
    /* No OEM table (28-33) and no extended table (40-42): all zero. */
    mpc[7] = mptable_checksum(mpc, mpc_len);

    /* Feature bytes 1-5 stay 0: a configuration table follows, no IMCR (virtual wire mode). */
    memcpy(mpf, "_MP_", 4);
    put_le32(mpf + 4, gpa + MPTABLE_FLOAT_SIZE);
    mpf[8] = 1; /* length in 16-byte units */
    mpf[9] = MP_SPEC_REV;
    mpf[10] = mptable_checksum(mpf, MPTABLE_FLOAT_SIZE);

    return (int)(p - mpf);
}
