/*
 * platform: reads the machine's firmware tables and clock and checks they
 * agree. Walks ACPI (include/kit/acpi.h) and the MP table (mptable.h), reads
 * the CMOS RTC (rtc.h), and prints (tokens are "none" where a part is
 * missing):
 *
 *   acpi: rsdp <addr> rev <n> xsdt|rsdt <addr> tables <SIG,SIG,...> dsdt <addr>
 *   acpi: cpus <n> apic <id,id,...> ioapic <id>@<addr> gsi<base> [ioapic ...]
 *         sci <irq> [irq<i>-><gsi>[:<flags>] ...] pci <min>-<max> s5 <SLP_TYPa>
 *   acpi: pm1a_evt <reg> pm1a_cnt <reg> pm_tmr <reg> reset <reg>=<value>
 *         pcibus <min>-<max> pci64 <min>-<max> century <reg> aml-skipped <n>
 *   mp: cpus <n> apic <id,...> bsp <id> ioapic <id>@<addr> [...] [irq<i>->pin<p>[:<flags>] ...]
 *   rtc: <yyyy>-<mm>-<dd> <hh>:<mm>:<ss> bcd|binary 24h|12h century <reg>|none
 *   platform: ok
 *
 * (each acpi line is one line). Registers print as 0x600 (I/O port),
 * mem:0x... or pci:0x...; <flags> are the MPS INTI polarity and trigger,
 * "high"/"low" and "edge"/"level", those not conforming to the bus. `irq`
 * lists every MADT override, and the MP table's ISA interrupts that are not
 * pin = IRQ, conforming.
 *
 * Checks: every ACPI checksum and length, the MP table's checksums, the MADT
 * and MP table agree on the enabled CPUs (count and APIC IDs), on the I/O
 * APICs (ID and address) and on which pin each ISA IRQ the MP table lists
 * arrives on; this CPU is in both (and the MP table's BSP); the RTC reads
 * sane. Each failure prints "platform: FAIL <why>"; then the exit status is 1.
 *
 * Options: platform.cpus=<n> the CPU count every table gives must be n;
 * platform.poweroff=1, once ok, prints "platform: poweroff" and powers off
 * through ACPI (\_S5); platform.reset=1 prints "platform: reset" and resets
 * through the FADT's reset register. If either returns, "platform: FAIL ..."
 * and exit 1. A bad value prints "platform: bad platform.<option>" and exits 2.
 */
#include "kit/acpi.h"
#include "kit/cmdline.h"
#include "kit/kit.h"
#include "kit/lapic.h"
#include "kit/mptable.h"
#include "kit/printf.h"
#include "kit/rtc.h"

#include <stdarg.h>

static struct acpi_info acpi;
static struct mp_info mp;
static unsigned failures;

static void fail(const char *fmt, ...) KIT_PRINTF(1, 2);
static void fail(const char *fmt, ...)
{
    va_list ap;
    char why[160];

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    printf("platform: FAIL %s\n", why);
    failures++;
}

/* Prints ":high,level"-style flags; nothing when both conform to the bus. */
static void print_inti(unsigned flags)
{
    static const char *const pol[] = {NULL, "high", "pol2", "low"};
    static const char *const trig[] = {NULL, "edge", "trig2", "level"};
    const char *p = pol[flags & 3], *t = trig[(flags >> 2) & 3];

    if (p && t)
        printf(":%s,%s", p, t);
    else if (p || t)
        printf(":%s", p ? p : t);
}

static void print_reg(const char *name, const struct acpi_gas *g)
{
    static const char *const space[] = {"mem:", "", "pci:"};

    if (!g->addr)
        printf(" %s none", name);
    else if (g->space <= ACPI_GAS_PCI)
        printf(" %s %s0x%llx", name, space[g->space], (unsigned long long)g->addr);
    else
        printf(" %s space%u:0x%llx", name, g->space, (unsigned long long)g->addr);
}

static void print_acpi(void)
{
    const struct aml_info *aml = &acpi.aml;

    printf("acpi: rsdp 0x%llx rev %u %s 0x%llx tables", (unsigned long long)acpi.rsdp,
           acpi.rsdp_rev, acpi.xsdt ? "xsdt" : "rsdt", (unsigned long long)acpi.root);
    for (unsigned i = 0; i < acpi.ntables; i++)
        printf("%c%s", i ? ',' : ' ', acpi.tables[i].sig);
    if (!acpi.ntables)
        printf(" none");
    printf(" dsdt 0x%llx\n", (unsigned long long)acpi.dsdt);

    printf("acpi:");
    if (acpi.madt) {
        printf(" cpus %u apic", acpi.ncpus_enabled);
        unsigned listed = 0;
        for (unsigned i = 0; i < acpi.ncpus; i++) {
            if (acpi.cpus[i].enabled)
                printf("%c%u", listed++ ? ',' : ' ', acpi.cpus[i].apic_id);
        }
        if (!listed)
            printf(" none");
        for (unsigned i = 0; i < acpi.nioapics; i++)
            printf(" ioapic %u@0x%x gsi%u", acpi.ioapics[i].id, acpi.ioapics[i].addr,
                   acpi.ioapics[i].gsi_base);
        if (!acpi.nioapics)
            printf(" ioapic none");
    } else {
        printf(" cpus none apic none ioapic none");
    }
    if (acpi.fadt)
        printf(" sci %u", acpi.sci_irq);
    else
        printf(" sci none");
    for (unsigned i = 0; i < acpi.nisos; i++) {
        printf(" irq%u->gsi%u", acpi.isos[i].irq, acpi.isos[i].gsi);
        print_inti(acpi.isos[i].flags);
    }
    if (aml->has_mem32)
        printf(" pci 0x%llx-0x%llx", (unsigned long long)aml->mem32.min,
               (unsigned long long)aml->mem32.max);
    else
        printf(" pci none");
    if (aml->s5)
        printf(" s5 %u\n", aml->slp_typa);
    else
        printf(" s5 none\n");

    printf("acpi:");
    print_reg("pm1a_evt", &acpi.pm1a_evt);
    print_reg("pm1a_cnt", &acpi.pm1a_cnt);
    print_reg("pm_tmr", &acpi.pm_tmr);
    if (acpi.reset_sup) {
        print_reg("reset", &acpi.reset_reg);
        printf("=0x%x", acpi.reset_value);
    } else {
        printf(" reset none");
    }
    if (aml->has_bus)
        printf(" pcibus %llu-%llu", (unsigned long long)aml->bus.min,
               (unsigned long long)aml->bus.max);
    else
        printf(" pcibus none");
    if (aml->has_mem64)
        printf(" pci64 0x%llx-0x%llx", (unsigned long long)aml->mem64.min,
               (unsigned long long)aml->mem64.max);
    else
        printf(" pci64 none");
    if (acpi.century)
        printf(" century 0x%x", acpi.century);
    else
        printf(" century none");
    printf(" aml-skipped %u\n", aml->skipped);
}

/* The ISA interrupts worth a token: not on the pin of their number, or not
 * conforming to the bus. */
static int mp_int_notable(const struct mp_int *n)
{
    return n->type == MP_INT_INT && mptable_bus_is_isa(&mp, n->bus) &&
           (n->pin != n->bus_irq || n->flags);
}

static void print_mp(void)
{
    if (mp.default_cfg) {
        printf("mp: default config %u\n", mp.default_cfg);
        return;
    }
    printf("mp: cpus %u apic", mp.ncpus_enabled);
    unsigned listed = 0;
    int bsp = -1;
    for (unsigned i = 0; i < mp.ncpus; i++) {
        if (!(mp.cpus[i].flags & MP_CPU_ENABLED))
            continue;
        printf("%c%u", listed++ ? ',' : ' ', mp.cpus[i].apic_id);
        if (mp.cpus[i].flags & MP_CPU_BSP && bsp < 0)
            bsp = mp.cpus[i].apic_id;
    }
    if (!listed)
        printf(" none");
    if (bsp >= 0)
        printf(" bsp %d", bsp);
    else
        printf(" bsp none");
    for (unsigned i = 0; i < mp.nioapics; i++)
        printf(" ioapic %u@0x%x", mp.ioapics[i].id, mp.ioapics[i].addr);
    if (!mp.nioapics)
        printf(" ioapic none");
    for (unsigned i = 0; i < mp.nints; i++) {
        if (!mp_int_notable(&mp.ints[i]))
            continue;
        printf(" irq%u->pin%u", mp.ints[i].bus_irq, mp.ints[i].pin);
        print_inti(mp.ints[i].flags);
    }
    printf("\n");
}

static int acpi_has_cpu(unsigned apic_id)
{
    for (unsigned i = 0; i < acpi.ncpus; i++) {
        if (acpi.cpus[i].enabled && acpi.cpus[i].apic_id == apic_id)
            return 1;
    }
    return 0;
}

static int mp_has_cpu(unsigned apic_id)
{
    for (unsigned i = 0; i < mp.ncpus; i++) {
        if ((mp.cpus[i].flags & MP_CPU_ENABLED) && mp.cpus[i].apic_id == apic_id)
            return 1;
    }
    return 0;
}

/* The MADT's view of ISA IRQ irq: its GSI (override or identity). */
static unsigned acpi_isa_gsi(unsigned irq)
{
    const struct acpi_iso *s = acpi_iso_for(&acpi, irq);

    return s ? s->gsi : irq;
}

/* The MADT's I/O APIC with this ID (an MP table destination; 0xff: all, so
 * the first), or NULL. A missing one is reported by check_agree() already. */
static const struct acpi_ioapic *acpi_ioapic_with_id(unsigned id)
{
    for (unsigned i = 0; i < acpi.nioapics; i++) {
        if (id == 0xff || acpi.ioapics[i].id == id)
            return &acpi.ioapics[i];
    }
    return NULL;
}

/* The MADT and the MP table describe one machine: check they agree. */
static void check_agree(void)
{
    if (acpi.ncpus_enabled != mp.ncpus_enabled)
        fail("the MADT has %u cpus, the MP table %u", acpi.ncpus_enabled, mp.ncpus_enabled);
    for (unsigned i = 0; i < mp.ncpus; i++) {
        if ((mp.cpus[i].flags & MP_CPU_ENABLED) && !acpi_has_cpu(mp.cpus[i].apic_id))
            fail("APIC ID %u is in the MP table, not the MADT", mp.cpus[i].apic_id);
    }
    if (acpi.nioapics != mp.nioapics)
        fail("the MADT has %u IOAPICs, the MP table %u", acpi.nioapics, mp.nioapics);
    for (unsigned i = 0; i < acpi.nioapics && i < mp.nioapics; i++) {
        if (acpi.ioapics[i].addr != mp.ioapics[i].addr || acpi.ioapics[i].id != mp.ioapics[i].id)
            fail("IOAPIC %u@0x%x in the MADT, %u@0x%x in the MP table", acpi.ioapics[i].id,
                 acpi.ioapics[i].addr, mp.ioapics[i].id, mp.ioapics[i].addr);
    }
    /* Pins, not flags: firmware describes PCI-shared ISA IRQs differently in
     * the two (SeaBIOS's MP table says active low where QEMU's MADT says high). */
    for (unsigned i = 0; i < mp.nints; i++) {
        const struct mp_int *n = &mp.ints[i];
        const struct acpi_ioapic *io = acpi_ioapic_with_id(n->ioapic);

        if (n->type != MP_INT_INT || !mptable_bus_is_isa(&mp, n->bus) || !io)
            continue;
        unsigned gsi = acpi_isa_gsi(n->bus_irq);
        if (gsi != io->gsi_base + n->pin)
            fail("ISA IRQ %u: GSI %u in the MADT, pin %u (GSI %u) in the MP table", n->bus_irq, gsi,
                 n->pin, io->gsi_base + n->pin);
    }
}

static void check_tables(int have_acpi, int have_mp, int want_cpus, unsigned long cpus)
{
    unsigned self = lapic_id();

    if (!have_acpi && !have_mp)
        fail("no ACPI tables and no MP table");
    if (have_acpi && !acpi.madt)
        fail("ACPI without a MADT");
    if (have_acpi && acpi.madt && !acpi_has_cpu(self))
        fail("this CPU (APIC ID %u) is not an enabled MADT entry", self);
    if (have_mp && !mp.default_cfg) {
        if (!mp_has_cpu(self))
            fail("this CPU (APIC ID %u) is not an enabled MP table entry", self);
        for (unsigned i = 0; i < mp.ncpus; i++) {
            if ((mp.cpus[i].flags & MP_CPU_BSP) && mp.cpus[i].apic_id != self)
                fail("the MP table's BSP is APIC ID %u, this CPU is %u", mp.cpus[i].apic_id, self);
        }
    }
    if (have_acpi && acpi.madt && have_mp && !mp.default_cfg)
        check_agree();
    if (want_cpus && have_acpi && acpi.madt && acpi.ncpus_enabled != cpus)
        fail("the MADT has %u cpus, platform.cpus=%lu", acpi.ncpus_enabled, cpus);
    if (want_cpus && have_mp && !mp.default_cfg && mp.ncpus_enabled != cpus)
        fail("the MP table has %u cpus, platform.cpus=%lu", mp.ncpus_enabled, cpus);
}

static void print_rtc(void)
{
    struct rtc_time t;
    unsigned reg = acpi.century ? acpi.century : RTC_CENTURY_REG;

    if (rtc_read(&t, reg)) {
        fail("rtc: %s", t.error);
        return;
    }
    printf("rtc: %04u-%02u-%02u %02u:%02u:%02u %s %s", t.year, t.month, t.day, t.hour, t.min, t.sec,
           t.binary ? "binary" : "bcd", t.hour24 ? "24h" : "12h");
    if (t.century)
        printf(" century 0x%x\n", reg);
    else
        printf(" century none\n");
}

/* Reads a 0/1 option; -1 (and the message) when it is neither. */
static int flag_option(const char *name, unsigned long *v)
{
    *v = 0;
    if (kit_cmdline_uint(name, 10, v) == -2 || *v > 1) {
        printf("platform: bad %s (want 0 or 1)\n", name);
        return -1;
    }
    return 0;
}

int kit_main(void)
{
    unsigned long cpus = 0, poweroff, reset;

    int cpus_err = kit_cmdline_uint("platform.cpus", 10, &cpus);
    if (cpus_err == -2) {
        puts("platform: bad platform.cpus (want a number)");
        return 2;
    }
    if (flag_option("platform.poweroff", &poweroff) || flag_option("platform.reset", &reset))
        return 2;

    int ar = acpi_init(&acpi);
    if (!acpi.rsdp)
        puts("acpi: none");
    else
        print_acpi();
    if (ar == -2)
        fail("acpi: %s", acpi.error);
    int mr = mptable_init(&mp);
    if (mr == -1)
        puts("mp: none");
    else if (mp.mpf)
        print_mp();
    if (mr == -2)
        fail("mp: %s", mp.error);
    print_rtc();
    check_tables(acpi.rsdp != 0, mp.mpf != 0, cpus_err == 0, cpus);
    if (failures)
        return 1;
    puts("platform: ok");

    if (poweroff) {
        if (!acpi_can_poweroff(&acpi)) {
            fail("poweroff: no \\_S5, or neither PM1a_CNT nor a sleep control register");
            return 1;
        }
        puts("platform: poweroff");
        acpi_poweroff(&acpi);
        fail("poweroff: the machine is still on");
        return 1;
    }
    if (reset) {
        if (!acpi.reset_sup) {
            fail("reset: the FADT has no reset register");
            return 1;
        }
        puts("platform: reset");
        acpi_reset(&acpi);
        fail("reset: the machine is still running");
        return 1;
    }
    return 0;
}
