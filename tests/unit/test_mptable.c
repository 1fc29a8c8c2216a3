/*
 * Unit tests for the MP table: the structures mptable_build() writes are read
 * back by a parser written here from the specification and Linux's
 * mpparse.c (sizes by entry type, checks as Linux makes them), not from the
 * builder, so that a layout mistake in the builder shows as a parse failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/mptable.h"
#include "petrel/platform.h"
#include "petrel/x86_boot.h"

#define GPA   PLAT_MPTABLE_GPA
#define GUARD 0xa5 /* the bytes past the table must keep this */

struct cpu_entry {
    uint8_t apic_id, version, flags;
    uint32_t signature, features;
};

struct irq_entry {
    uint8_t type, irq_type;
    uint16_t flags;
    uint8_t bus, bus_irq, dst_apic, dst_pin;
};

/* What the parser found. */
struct parsed {
    uint32_t mpc_addr;
    unsigned mpc_len;  /* the header's base table length */
    unsigned consumed; /* bytes the entry walk used, header included */
    unsigned entries;  /* entries walked */
    unsigned entry_count;
    uint32_t lapic_addr;
    char oem[9], product[13];
    unsigned nr_cpus;
    struct cpu_entry cpus[256];
    unsigned nr_buses;
    struct {
        uint8_t id;
        char type[7];
    } buses[4];
    unsigned nr_ioapics;
    struct {
        uint8_t id, version, flags;
        uint32_t addr;
    } ioapics[2];
    unsigned nr_irqs; /* I/O and local interrupt entries */
    struct irq_entry irqs[64];
};

static unsigned sum8(const uint8_t *p, size_t len)
{
    unsigned s = 0;

    for (size_t i = 0; i < len; i++)
        s += p[i];
    return s & 0xff;
}

/*
 * Parses the tables in buf (len bytes, at guest-physical gpa) as Linux does:
 * smp_scan_config()'s checks on the floating pointer, smp_check_mpc()'s on
 * the header, then smp_read_mpc()'s walk, which steps by each entry type's
 * size until it reaches the header's length. Returns 0 or -1.
 */
static int parse(const uint8_t *buf, size_t len, uint32_t gpa, struct parsed *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 16 || memcmp(buf, "_MP_", 4) != 0 || buf[8] != 1 || sum8(buf, 16) != 0 ||
        (buf[9] != 1 && buf[9] != 4) || buf[11] != 0)
        return -1;
    out->mpc_addr = get_le32(buf + 4);
    if (out->mpc_addr < gpa || out->mpc_addr - gpa > len - 44)
        return -1;
    const uint8_t *mpc = buf + (out->mpc_addr - gpa);
    size_t room = len - (out->mpc_addr - gpa);

    out->mpc_len = get_le16(mpc + 4);
    if (memcmp(mpc, "PCMP", 4) != 0 || out->mpc_len < 44 || out->mpc_len > room ||
        sum8(mpc, out->mpc_len) != 0 || (mpc[6] != 1 && mpc[6] != 4))
        return -1;
    memcpy(out->oem, mpc + 8, 8);
    memcpy(out->product, mpc + 16, 12);
    out->entry_count = get_le16(mpc + 34);
    out->lapic_addr = get_le32(mpc + 36);
    if (!out->lapic_addr || get_le32(mpc + 28) != 0 || get_le16(mpc + 32) != 0 ||
        get_le16(mpc + 40) != 0 || mpc[42] != 0)
        return -1;

    unsigned count = 44;
    uint8_t last_type = 0;
    while (count < out->mpc_len) {
        const uint8_t *e = mpc + count;
        unsigned size = e[0] == 0 ? 20 : 8;
        if (e[0] > 4 || count + size > out->mpc_len)
            return -1;
        switch (e[0]) {
        case 0: {
            assert_true(out->nr_cpus < ARRAY_SIZE(out->cpus));
            struct cpu_entry *c = &out->cpus[out->nr_cpus++];
            c->apic_id = e[1];
            c->version = e[2];
            c->flags = e[3];
            c->signature = get_le32(e + 4);
            c->features = get_le32(e + 8);
            if (get_le64(e + 12) != 0)
                return -1;
            break;
        }
        case 1:
            assert_true(out->nr_buses < ARRAY_SIZE(out->buses));
            out->buses[out->nr_buses].id = e[1];
            memcpy(out->buses[out->nr_buses].type, e + 2, 6);
            out->nr_buses++;
            break;
        case 2:
            assert_true(out->nr_ioapics < ARRAY_SIZE(out->ioapics));
            out->ioapics[out->nr_ioapics].id = e[1];
            out->ioapics[out->nr_ioapics].version = e[2];
            out->ioapics[out->nr_ioapics].flags = e[3];
            out->ioapics[out->nr_ioapics].addr = get_le32(e + 4);
            out->nr_ioapics++;
            break;
        default:
            assert_true(out->nr_irqs < ARRAY_SIZE(out->irqs));
            out->irqs[out->nr_irqs++] = (struct irq_entry){
                .type = e[0],
                .irq_type = e[1],
                .flags = get_le16(e + 2),
                .bus = e[4],
                .bus_irq = e[5],
                .dst_apic = e[6],
                .dst_pin = e[7],
            };
            break;
        }
        /* The specification wants entries sorted by type. */
        if (e[0] < last_type)
            return -1;
        last_type = e[0];
        count += size;
        out->entries++;
    }
    out->consumed = count;
    return 0;
}

/* Builds the table for nr_cpus into a buffer of exactly its size and parses it. */
static void build_and_parse(unsigned nr_cpus, struct parsed *p)
{
    size_t size = MPTABLE_SIZE(nr_cpus);
    uint8_t *buf = malloc(size + 64);

    assert_non_null(buf);
    memset(buf, GUARD, size + 64);
    int n = mptable_build(buf, size + 64, GPA, nr_cpus);
    assert_int_equal(n, size);
    for (size_t i = size; i < size + 64; i++)
        assert_int_equal(buf[i], GUARD);
    assert_int_equal(parse(buf, (size_t)n, GPA, p), 0);
    free(buf);
}

/* The I/O interrupt entry for ISA IRQ irq, or NULL. */
static const struct irq_entry *isa_entry(const struct parsed *p, unsigned irq)
{
    const struct irq_entry *found = NULL;

    for (unsigned i = 0; i < p->nr_irqs; i++) {
        const struct irq_entry *e = &p->irqs[i];
        if (e->type == 3 && e->bus == 1 && e->bus_irq == irq) {
            assert_null(found); /* at most one per IRQ */
            found = e;
        }
    }
    return found;
}

static void test_header(void **state)
{
    (void)state;
    struct parsed p;
    uint8_t buf[MPTABLE_SIZE(1)];

    int n = mptable_build(buf, sizeof(buf), GPA, 1);
    assert_int_equal(n, sizeof(buf));
    assert_memory_equal(buf, "_MP_", 4);
    assert_int_equal(get_le32(buf + 4), GPA + 16);
    assert_int_equal(buf[8], 1);
    assert_int_equal(buf[9], 4);
    assert_int_equal(sum8(buf, 16), 0);
    for (unsigned i = 11; i < 16; i++)
        assert_int_equal(buf[i], 0); /* feature bytes: a table follows, no IMCR */

    const uint8_t *mpc = buf + 16;
    assert_memory_equal(mpc, "PCMP", 4);
    assert_int_equal(get_le16(mpc + 4), n - 16);
    assert_int_equal(mpc[6], 4);
    assert_int_equal(sum8(mpc, (size_t)n - 16), 0);

    assert_int_equal(parse(buf, (size_t)n, GPA, &p), 0);
    assert_int_equal(p.mpc_addr, GPA + 16);
    assert_string_equal(p.oem, "PETREL  ");
    assert_string_equal(p.product, "PETREL      ");
    assert_int_equal(p.lapic_addr, PLAT_LAPIC_GPA);
    assert_int_equal(p.lapic_addr, 0xfee00000);
}

/* The walk ends exactly at the header's length, and the count matches. */
static void test_walk(void **state)
{
    (void)state;
    static const unsigned counts[] = {1, 2, 3, 4, 16, 100, PLAT_MAX_CPUS};
    struct parsed p;

    for (unsigned i = 0; i < ARRAY_SIZE(counts); i++) {
        unsigned n = counts[i];
        build_and_parse(n, &p);
        assert_int_equal(p.consumed, p.mpc_len);
        assert_int_equal(16 + p.mpc_len, MPTABLE_SIZE(n));
        assert_int_equal(p.entries, p.entry_count);
        /* n processors, 2 buses, 1 IOAPIC, 15 ISA IRQs, 2 LINTs */
        assert_int_equal(p.entry_count, n + 20);
        assert_int_equal(p.mpc_len, 44 + 20 * n + 8 * 20);
        assert_int_equal(p.nr_cpus, n);
        assert_int_equal(p.nr_buses, 2);
        assert_int_equal(p.nr_ioapics, 1);
        assert_int_equal(p.nr_irqs, 17);
    }
}

static void check_cpus(unsigned n)
{
    struct parsed p;

    build_and_parse(n, &p);
    assert_int_equal(p.nr_cpus, n);
    for (unsigned i = 0; i < n; i++) {
        const struct cpu_entry *c = &p.cpus[i];
        assert_int_equal(c->apic_id, i);
        assert_int_equal(c->version, 0x14);
        assert_int_equal(c->flags & 1, 1);              /* enabled */
        assert_int_equal(!!(c->flags & 2), i == 0);     /* BSP only on vCPU 0 */
        assert_int_equal((c->signature >> 8) & 0xf, 6); /* family */
        assert_int_equal(c->features & 0x201, 0x201);   /* FPU, APIC */
    }
}

static void test_cpus(void **state)
{
    (void)state;
    check_cpus(1);
    check_cpus(2);
    check_cpus(4);
    check_cpus(PLAT_MAX_CPUS);
}

static void test_buses(void **state)
{
    (void)state;
    struct parsed p;

    build_and_parse(2, &p);
    assert_int_equal(p.buses[0].id, 0);
    assert_string_equal(p.buses[0].type, "PCI   ");
    assert_int_equal(p.buses[1].id, 1);
    assert_string_equal(p.buses[1].type, "ISA   ");
}

static void test_ioapic(void **state)
{
    (void)state;
    static const unsigned counts[] = {1, 4, PLAT_MAX_CPUS};
    struct parsed p;

    for (unsigned i = 0; i < ARRAY_SIZE(counts); i++) {
        build_and_parse(counts[i], &p);
        assert_int_equal(p.ioapics[0].id, counts[i]);
        assert_int_equal(p.ioapics[0].id, plat_ioapic_id(counts[i]));
        assert_int_equal(p.ioapics[0].version, 0x11);
        assert_int_equal(p.ioapics[0].flags, 1);
        assert_int_equal(p.ioapics[0].addr, PLAT_IOAPIC_GPA);
        assert_int_equal(p.ioapics[0].addr, 0xfec00000);
    }
}

static void test_isa_irqs(void **state)
{
    (void)state;
    struct parsed p;
    const unsigned n = 4;

    build_and_parse(n, &p);
    for (unsigned irq = 0; irq < 16; irq++) {
        const struct irq_entry *e = isa_entry(&p, irq);
        if (irq == 2) {
            assert_null(e); /* the cascade */
            continue;
        }
        assert_non_null(e);
        assert_int_equal(e->irq_type, 0); /* INT */
        assert_int_equal(e->dst_apic, n);
        assert_int_equal(e->dst_pin, irq == 0 ? 2 : irq);
        assert_int_equal(e->dst_pin, plat_isa_gsi(irq));
        if (irq == 9)
            assert_int_equal(e->flags, 0xf); /* level (3 << 2), active low (3) */
        else
            assert_int_equal(e->flags, 0); /* conforming: ISA edge, active high */
    }

    /* Nothing else is routed, in particular nothing on pin 0 or from bus 0. */
    unsigned io = 0;
    for (unsigned i = 0; i < p.nr_irqs; i++) {
        if (p.irqs[i].type != 3)
            continue;
        io++;
        assert_int_equal(p.irqs[i].bus, 1);
        assert_int_not_equal(p.irqs[i].dst_pin, 0);
    }
    assert_int_equal(io, 15);
    assert_int_equal(isa_entry(&p, 0)->dst_pin, 2);
    assert_int_equal(isa_entry(&p, PLAT_SCI_IRQ)->flags, 0xf);
}

static void test_lints(void **state)
{
    (void)state;
    struct parsed p;

    build_and_parse(2, &p);
    const struct irq_entry *a = &p.irqs[p.nr_irqs - 2], *b = &p.irqs[p.nr_irqs - 1];
    assert_int_equal(a->type, 4);
    assert_int_equal(a->irq_type, 3); /* ExtINT */
    assert_int_equal(a->flags, 0);
    assert_int_equal(a->bus, 1);
    assert_int_equal(a->bus_irq, 0);
    assert_int_equal(a->dst_apic, 0xff);
    assert_int_equal(a->dst_pin, 0); /* LINT0 */
    assert_int_equal(b->type, 4);
    assert_int_equal(b->irq_type, 1); /* NMI */
    assert_int_equal(b->flags, 0);
    assert_int_equal(b->bus, 1);
    assert_int_equal(b->bus_irq, 0);
    assert_int_equal(b->dst_apic, 0xff);
    assert_int_equal(b->dst_pin, 1); /* LINT1 */
}

/* The floating pointer's address is where the caller says the buffer goes. */
static void test_other_gpa(void **state)
{
    (void)state;
    struct parsed p;
    uint8_t buf[MPTABLE_SIZE(3)];

    assert_int_equal(mptable_build(buf, sizeof(buf), 0x9fc00, 3), sizeof(buf));
    assert_int_equal(get_le32(buf + 4), 0x9fc10);
    assert_int_equal(parse(buf, sizeof(buf), 0x9fc00, &p), 0);
}

static void test_fits(void **state)
{
    (void)state;
    assert_true(MPTABLE_SIZE(PLAT_MAX_CPUS) <= PLAT_MPTABLE_SIZE);
    assert_int_equal(MPTABLE_SIZE(PLAT_MAX_CPUS), 16 + 44 + 20 * 254 + 8 * 20);
}

static void test_too_small(void **state)
{
    (void)state;
    uint8_t buf[MPTABLE_SIZE(4)];

    memset(buf, GUARD, sizeof(buf));
    assert_int_equal(mptable_build(buf, sizeof(buf) - 1, GPA, 4), -ENOSPC);
    assert_int_equal(mptable_build(buf, 0, GPA, 4), -ENOSPC);
    assert_int_equal(mptable_build(buf, MPTABLE_SIZE(3), GPA, 4), -ENOSPC);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], GUARD); /* nothing written */
    assert_int_equal(mptable_build(buf, sizeof(buf), GPA, 4), sizeof(buf));
}

static void test_invalid(void **state)
{
    (void)state;
    static uint8_t buf[MPTABLE_SIZE(PLAT_MAX_CPUS + 1)];

    assert_int_equal(mptable_build(buf, sizeof(buf), GPA, 0), -EINVAL);
    assert_int_equal(mptable_build(buf, sizeof(buf), GPA, 255), -EINVAL);
    assert_int_equal(mptable_build(buf, sizeof(buf), GPA, PLAT_MAX_CPUS + 1), -EINVAL);
    assert_int_equal(mptable_build(buf, sizeof(buf), GPA + 8, 1), -EINVAL);    /* unaligned */
    assert_int_equal(mptable_build(buf, sizeof(buf), 0xfffffff0, 1), -EINVAL); /* past 4 GiB */
    assert_int_equal(mptable_build(buf, sizeof(buf), GPA, PLAT_MAX_CPUS), MPTABLE_SIZE(254));
}

/* The parser itself rejects what Linux would: a flipped byte anywhere. */
static void test_parser_rejects_corruption(void **state)
{
    (void)state;
    uint8_t buf[MPTABLE_SIZE(2)];
    struct parsed p;

    assert_int_equal(mptable_build(buf, sizeof(buf), GPA, 2), sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] ^= 0x40;
        assert_int_equal(parse(buf, sizeof(buf), GPA, &p), -1);
        buf[i] ^= 0x40;
    }
    assert_int_equal(parse(buf, sizeof(buf), GPA, &p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),  cmocka_unit_test(test_walk),
        cmocka_unit_test(test_cpus),    cmocka_unit_test(test_buses),
        cmocka_unit_test(test_ioapic),  cmocka_unit_test(test_isa_irqs),
        cmocka_unit_test(test_lints),   cmocka_unit_test(test_other_gpa),
        cmocka_unit_test(test_fits),    cmocka_unit_test(test_too_small),
        cmocka_unit_test(test_invalid), cmocka_unit_test(test_parser_rejects_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
