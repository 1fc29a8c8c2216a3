/* The GSI routing table: the PC's irqchip routes and MSI routes, as sent to KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/irq_routing.h"

/* The last table "sent to KVM". */
static struct kvm_irq_routing_entry sent[IRQ_ROUTING_MAX];
static unsigned nr_sent;
static int fail_with;

static int fake_commit(struct irq_routing *rt, const struct kvm_irq_routing *t)
{
    (void)rt;
    if (fail_with)
        return fail_with;
    assert_true(t->nr <= IRQ_ROUTING_MAX);
    memcpy(sent, t->entries, t->nr * sizeof(t->entries[0]));
    nr_sent = t->nr;
    return 0;
}

static const struct kvm_irq_routing_entry *find(uint32_t gsi, uint32_t type, uint32_t chip)
{
    const struct kvm_irq_routing_entry *hit = NULL;
    for (unsigned i = 0; i < nr_sent; i++) {
        if (sent[i].gsi != gsi || sent[i].type != type)
            continue;
        if (type == KVM_IRQ_ROUTING_IRQCHIP && sent[i].u.irqchip.irqchip != chip)
            continue;
        assert_null(hit); /* at most one route per (gsi, chip) */
        hit = &sent[i];
    }
    return hit;
}

static int setup(void **state)
{
    struct irq_routing *rt = calloc(1, sizeof(*rt));
    fail_with = 0;
    nr_sent = 0;
    assert_int_equal(irq_routing_init(rt, -1, fake_commit), 0);
    *state = rt;
    return 0;
}

static int teardown(void **state)
{
    irq_routing_destroy(*state);
    free(*state);
    return 0;
}

static void test_pc_irqchip_routes(void **state)
{
    (void)state;
    assert_int_equal(nr_sent, IRQ_ROUTING_CHIP_ROUTES);
    /* The PIT's GSI 0: PIC pin 0 and IOAPIC pin 2, as the tables' override says. */
    const struct kvm_irq_routing_entry *e = find(0, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_IOAPIC);
    assert_non_null(e);
    assert_int_equal(e->u.irqchip.pin, 2);
    e = find(0, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_PIC_MASTER);
    assert_non_null(e);
    assert_int_equal(e->u.irqchip.pin, 0);
    /* GSI 2, the cascade, goes nowhere. */
    for (unsigned i = 0; i < nr_sent; i++)
        assert_int_not_equal(sent[i].gsi, 2);
    /* The rest: their own pins; 8-15 on the slave PIC; 16-23 IOAPIC only. */
    for (uint32_t gsi = 1; gsi < PLAT_IOAPIC_PINS; gsi++) {
        if (gsi == 2)
            continue;
        e = find(gsi, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_IOAPIC);
        assert_non_null(e);
        assert_int_equal(e->u.irqchip.pin, gsi);
        uint32_t pic = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
        e = find(gsi, KVM_IRQ_ROUTING_IRQCHIP, pic);
        if (gsi < 16) {
            assert_non_null(e);
            assert_int_equal(e->u.irqchip.pin, gsi % 8);
        } else {
            assert_null(e);
        }
    }
}

static void test_msi_routes(void **state)
{
    struct irq_routing *rt = *state;
    uint32_t a, b;

    assert_int_equal(irq_routing_msi_alloc(rt, &a), 0);
    assert_int_equal(irq_routing_msi_alloc(rt, &b), 0);
    assert_int_equal(a, IRQ_ROUTING_FIRST_MSI);
    assert_int_equal(b, IRQ_ROUTING_FIRST_MSI + 1);
    assert_int_equal(nr_sent, IRQ_ROUTING_CHIP_ROUTES); /* allocation alone routes nothing */

    assert_int_equal(irq_routing_msi_set(rt, b, 0xfee01000, 0x4031), 0);
    const struct kvm_irq_routing_entry *e = find(b, KVM_IRQ_ROUTING_MSI, 0);
    assert_non_null(e);
    assert_int_equal(e->u.msi.address_lo, 0xfee01000);
    assert_int_equal(e->u.msi.address_hi, 0);
    assert_int_equal(e->u.msi.data, 0x4031);
    assert_null(find(a, KVM_IRQ_ROUTING_MSI, 0));
    /* Every commit carries the irqchip routes too. */
    assert_int_equal(nr_sent, IRQ_ROUTING_CHIP_ROUTES + 1);
    assert_non_null(find(0, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_IOAPIC));

    /* Setting the same message again sends nothing. */
    uint64_t commits = rt->commits;
    assert_int_equal(irq_routing_msi_set(rt, b, 0xfee01000, 0x4031), 0);
    assert_int_equal(rt->commits, commits);
    /* A 64-bit address keeps its high half. */
    assert_int_equal(irq_routing_msi_set(rt, a, 0x1fee00000ull, 7), 0);
    assert_int_equal(find(a, KVM_IRQ_ROUTING_MSI, 0)->u.msi.address_hi, 1);

    assert_int_equal(irq_routing_msi_clear(rt, b), 0);
    assert_null(find(b, KVM_IRQ_ROUTING_MSI, 0));
    assert_non_null(find(a, KVM_IRQ_ROUTING_MSI, 0));
    irq_routing_msi_free(rt, a);
    assert_null(find(a, KVM_IRQ_ROUTING_MSI, 0));
    /* A freed GSI is handed out again. */
    uint32_t c;
    assert_int_equal(irq_routing_msi_alloc(rt, &c), 0);
    assert_int_equal(c, a);
}

static void test_bad_gsis_and_exhaustion(void **state)
{
    struct irq_routing *rt = *state;
    uint32_t g;

    assert_int_equal(irq_routing_msi_set(rt, 4, 0xfee00000, 1), -EINVAL); /* an irqchip GSI */
    assert_int_equal(irq_routing_msi_set(rt, IRQ_ROUTING_FIRST_MSI, 0xfee00000, 1), -EINVAL);
    assert_int_equal(irq_routing_msi_clear(rt, 100000), -EINVAL);
    irq_routing_msi_free(rt, 3); /* ignored */
    for (unsigned i = 0; i < IRQ_ROUTING_MAX_MSI; i++)
        assert_int_equal(irq_routing_msi_alloc(rt, &g), 0);
    assert_int_equal(irq_routing_msi_alloc(rt, &g), -ENOSPC);
    /* A full table still fits what KVM is sent. */
    for (unsigned i = 0; i < IRQ_ROUTING_MAX_MSI; i++)
        assert_int_equal(irq_routing_msi_set(rt, IRQ_ROUTING_FIRST_MSI + i, 0xfee00000, i), 0);
    assert_int_equal(nr_sent, IRQ_ROUTING_MAX);
    /* A failed commit is reported. */
    fail_with = -EINVAL;
    assert_int_equal(irq_routing_msi_set(rt, IRQ_ROUTING_FIRST_MSI, 0xfee00000, 12345), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pc_irqchip_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msi_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_gsis_and_exhaustion, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
