/* ACPI fixed hardware: PM1 status/enable and the SCI, sleep and reset, the PM timer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "petrel/acpi_pm.h"
#include "petrel/platform.h"
#include "fake_irq.h"
#include "fake_state.h"

struct fixture {
    struct acpi_pm pm;
    struct fake_irq sci;
    unsigned poweroffs, resets;
};

static uint64_t fake_ns;
static uint64_t fake_now(void)
{
    return fake_ns;
}

static void on_exit_request(void *ctx, enum vm_exit_reason reason, int status)
{
    struct fixture *f = ctx;
    assert_int_equal(status, 0);
    if (reason == VM_EXIT_POWEROFF)
        f->poweroffs++;
    else if (reason == VM_EXIT_RESET)
        f->resets++;
    else
        fail_msg("unexpected exit reason %d", reason);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->sci.line.set_level = fake_irq_set;
    acpi_pm_init(&f->pm, (struct exit_hook){.fn = on_exit_request, .ctx = f}, &f->sci.line);
    f->pm.now_ns = fake_now;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    acpi_pm_destroy(&f->pm);
    free(f);
    return 0;
}

static uint64_t rd(struct fixture *f, unsigned port, unsigned size)
{
    return f->pm.dev.ops->read(&f->pm.dev, port - PLAT_PM1A_EVT_PORT, size);
}

static void wr(struct fixture *f, unsigned port, uint64_t v, unsigned size)
{
    f->pm.dev.ops->write(&f->pm.dev, port - PLAT_PM1A_EVT_PORT, v, size);
}

#define STS PLAT_PM1A_EVT_PORT
#define EN  (PLAT_PM1A_EVT_PORT + 2)
#define CNT PLAT_PM1A_CNT_PORT

static void test_power_button_sci(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(rd(f, STS, 2), 0);
    assert_int_equal(rd(f, CNT, 2) & PM1_SCI_EN, PM1_SCI_EN); /* ACPI mode, always */

    /* Not enabled: refused, and nothing latched for later. */
    assert_false(acpi_pm_power_button(&f->pm));
    assert_int_equal(rd(f, STS, 2), 0);
    assert_false(f->sci.level);
    wr(f, EN, PM1_PWRBTN_EN, 2);
    assert_false(f->sci.level);
    assert_int_equal(f->sci.raises, 0);

    /* Enabled: a press raises the SCI; disabling lowers it, the status stays pending. */
    assert_true(acpi_pm_power_button(&f->pm));
    assert_true(f->sci.level);
    wr(f, EN, 0, 2);
    assert_false(f->sci.level);
    assert_int_equal(rd(f, STS, 2), PM1_PWRBTN_STS);

    /* Enabling it with the status pending raises the SCI; it stays up until cleared. */
    wr(f, EN, PM1_PWRBTN_EN, 2);
    assert_int_equal(rd(f, EN, 2), PM1_PWRBTN_EN);
    assert_true(f->sci.level);
    wr(f, STS, 0, 2); /* writing 0 clears nothing */
    assert_true(f->sci.level);
    wr(f, STS, PM1_PWRBTN_STS, 2);
    assert_int_equal(rd(f, STS, 2), 0);
    assert_false(f->sci.level);
    assert_int_equal(f->sci.raises, 2);

    /* Enabled: a press raises it at once. Byte accesses work too. */
    assert_true(acpi_pm_power_button(&f->pm));
    assert_true(f->sci.level);
    assert_int_equal(rd(f, STS + 1, 1), PM1_PWRBTN_STS >> 8);
    wr(f, STS + 1, PM1_PWRBTN_STS >> 8, 1);
    assert_false(f->sci.level);
    assert_int_equal(f->sci.raises, 3);

    /* Disabling the enable lowers a pending SCI. */
    acpi_pm_power_button(&f->pm);
    wr(f, EN, 0, 2);
    assert_false(f->sci.level);
    /* The defined enable bits read back (ACPICA checks GBL_EN so); reserved ones do not. */
    wr(f, EN, 0xffff, 2);
    assert_int_equal(rd(f, EN, 2),
                     PM1_TMR_EN | PM1_GBL_EN | PM1_PWRBTN_EN | PM1_SLPBTN_EN | PM1_RTC_EN);
    /* Enables without a pending event raise nothing. */
    wr(f, EN, PM1_GBL_EN | PM1_TMR_EN, 2);
    assert_false(f->sci.level);
}

static void test_sleep(void **state)
{
    struct fixture *f = *state;

    /* SLP_TYP alone does nothing; other sleep types are ignored. */
    wr(f, CNT, PLAT_SLP_TYP_S5 << PM1_SLP_TYP_SHIFT, 2);
    assert_int_equal(f->poweroffs, 0);
    assert_int_equal(rd(f, CNT, 2) & PM1_SLP_TYP_MASK, PLAT_SLP_TYP_S5 << PM1_SLP_TYP_SHIFT);
    for (unsigned typ = 0; typ < 8; typ++) {
        if (typ != PLAT_SLP_TYP_S5)
            wr(f, CNT, typ << PM1_SLP_TYP_SHIFT | PM1_SLP_EN, 2);
    }
    assert_int_equal(f->poweroffs, 0);
    assert_int_equal(f->pm.ignored_sleeps, 7);
    assert_int_equal(rd(f, CNT, 2) & PM1_SLP_EN, 0); /* write-only */

    /* S5: what Linux writes, 16 bits at once. */
    wr(f, CNT, PLAT_SLP_TYP_S5 << PM1_SLP_TYP_SHIFT | PM1_SLP_EN, 2);
    assert_int_equal(f->poweroffs, 1);
    /* And as two bytes, high byte last. */
    wr(f, CNT, 0, 1);
    wr(f, CNT + 1, (PLAT_SLP_TYP_S5 << PM1_SLP_TYP_SHIFT | PM1_SLP_EN) >> 8, 1);
    assert_int_equal(f->poweroffs, 2);
}

static void test_reset_register(void **state)
{
    struct fixture *f = *state;
    wr(f, PLAT_RESET_PORT, 0x02, 1);
    wr(f, PLAT_RESET_PORT, 0x00, 1);
    assert_int_equal(f->resets, 0);
    wr(f, PLAT_RESET_PORT, PLAT_RESET_VALUE, 1);
    assert_int_equal(f->resets, 1);
    assert_int_equal(rd(f, PLAT_RESET_PORT, 1), 0);
}

static void test_pm_timer(void **state)
{
    struct fixture *f = *state;

    fake_ns = 0;
    assert_int_equal(rd(f, PLAT_PM_TMR_PORT, 4), 0);
    fake_ns = 1000000000ull; /* one second */
    assert_int_equal(rd(f, PLAT_PM_TMR_PORT, 4), ACPI_PM_TMR_HZ);
    fake_ns = 1000ull; /* 1 us = 3.58 ticks */
    assert_int_equal(rd(f, PLAT_PM_TMR_PORT, 4), 3);
    /* 32 bits wrap after ~1200 s; a day of uptime does not overflow the arithmetic. */
    fake_ns = 86400ull * 1000000000ull;
    assert_int_equal(rd(f, PLAT_PM_TMR_PORT, 4), (uint32_t)(86400ull * ACPI_PM_TMR_HZ));
    fake_ns = UINT64_MAX;
    (void)rd(f, PLAT_PM_TMR_PORT, 4);
    /* Byte reads see the same counter; the timer is read-only. */
    fake_ns = 1000000000ull;
    wr(f, PLAT_PM_TMR_PORT, 0, 4);
    assert_int_equal(rd(f, PLAT_PM_TMR_PORT + 1, 1), (ACPI_PM_TMR_HZ >> 8) & 0xff);
}

/* Any access pattern: no crash, no exit other than the documented ones. */
static void test_random_access(void **state)
{
    struct fixture *f = *state;
    uint32_t x = 12345;
    for (int i = 0; i < 200000; i++) {
        x = x * 1103515245 + 12345;
        unsigned off = (x >> 8) % PLAT_PM_PORTS;
        unsigned size = 1u << ((x >> 4) % 3);
        if (off + size > PLAT_PM_PORTS)
            continue;
        if (x & 1)
            wr(f, PLAT_PM1A_EVT_PORT + off, x >> 3, size);
        else
            (void)rd(f, PLAT_PM1A_EVT_PORT + off, size);
        /* The SCI always matches the registers. */
        bool pending = (rd(f, STS, 2) & rd(f, EN, 2) & PM1_PWRBTN_EN) != 0;
        assert_int_equal(f->sci.level, pending);
        if (i % 1000 == 0)
            acpi_pm_power_button(&f->pm);
    }
    f->pm.dev.ops->reset(&f->pm.dev);
    assert_int_equal(rd(f, STS, 2), 0);
    assert_false(f->sci.level);
}

/* ---- save and restore ---- */

static uint8_t tree[STATE_TEST_TREE];

static void save_pm(struct state_out *out, void *ctx)
{
    state_begin(out, "acpi-pm", ACPI_PM_STATE_COMPATIBLE);
    assert_int_equal(acpi_pm_save(ctx, out), 0);
    state_end(out);
}

static int restore_pm(struct fixture *f, struct errbuf *eb)
{
    struct state_in root = state_test_root(tree, eb), in;
    if (state_open(&root, "acpi-pm", ACPI_PM_STATE_COMPATIBLE, &in))
        return in.err;
    return acpi_pm_restore(&f->pm, &in);
}

static struct fixture *fixture_new(void)
{
    void *p = NULL;
    assert_int_equal(setup(&p), 0);
    return p;
}

static void fixture_free(struct fixture *f)
{
    void *p = f;
    assert_int_equal(teardown(&p), 0);
}

/*
 * A pending power button with its SCI, enables and a sleep type written: the
 * restored registers read the same, the SCI is up, and the next accesses act
 * the same. The PM timer goes on from the saved count in the new process,
 * whose monotonic clock is elsewhere.
 */
static void test_save_restore_round_trip(void **state)
{
    struct fixture *f = *state;

    wr(f, EN, PM1_PWRBTN_EN | PM1_GBL_EN | PM1_RTC_EN, 2);
    wr(f, CNT, 1u << PM1_SLP_TYP_SHIFT | 0x6, 2);
    assert_true(acpi_pm_power_button(&f->pm));
    assert_true(f->sci.level);
    fake_ns = 5000000000ull;
    uint32_t saved_timer = (uint32_t)rd(f, PLAT_PM_TMR_PORT, 4);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_pm, &f->pm), 0);

    fake_ns = 1000000000ull; /* the new host's clock is behind */
    struct fixture *n = fixture_new();
    struct errbuf eb = {0};
    assert_int_equal(restore_pm(n, &eb), 0);
    assert_true(n->sci.level);
    assert_int_equal(n->sci.raises, 1);
    assert_int_equal(rd(n, PLAT_PM_TMR_PORT, 4), saved_timer);
    fake_ns += 1000000000ull;
    assert_int_equal(rd(n, PLAT_PM_TMR_PORT, 4), saved_timer + ACPI_PM_TMR_HZ);
    for (unsigned port = STS; port < STS + 6; port += 2)
        assert_int_equal(rd(n, port, 2), rd(f, port, 2));

    /* Acknowledge the button on both, press it again, then power off. */
    wr(f, STS, PM1_PWRBTN_STS, 2);
    wr(n, STS, PM1_PWRBTN_STS, 2);
    assert_false(n->sci.level);
    assert_int_equal(rd(n, STS, 2), rd(f, STS, 2));
    assert_int_equal(acpi_pm_power_button(&n->pm), acpi_pm_power_button(&f->pm));
    assert_true(n->sci.level);
    wr(f, CNT, PLAT_SLP_TYP_S5 << PM1_SLP_TYP_SHIFT | PM1_SLP_EN, 2);
    wr(n, CNT, PLAT_SLP_TYP_S5 << PM1_SLP_TYP_SHIFT | PM1_SLP_EN, 2);
    assert_int_equal(n->poweroffs, 1);
    assert_int_equal(f->poweroffs, 1);
    fixture_free(n);
}

/* Saves f, applies one hostile edit, and checks the refusal names want. */
static void expect_refused(struct fixture *f, const char *prop, uint32_t v, const char *want)
{
    assert_int_equal(state_test_write(tree, sizeof(tree), save_pm, &f->pm), 0);
    assert_int_equal(state_test_set_u32(tree, "/acpi-pm", prop, v), 0);
    struct fixture *n = fixture_new();
    struct errbuf eb = {0};
    assert_int_equal(restore_pm(n, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, want));
    /* Unchanged, and it works. */
    assert_false(n->sci.level);
    assert_int_equal(rd(n, STS, 2), 0);
    assert_int_equal(rd(n, EN, 2), 0);
    fake_ns = 1000000000ull;
    assert_int_equal(rd(n, PLAT_PM_TMR_PORT, 4), ACPI_PM_TMR_HZ);
    wr(n, EN, PM1_PWRBTN_EN, 2);
    assert_true(acpi_pm_power_button(&n->pm));
    assert_true(n->sci.level);
    fixture_free(n);
}

static void test_restore_refuses_hostile(void **state)
{
    struct fixture *f = *state;
    wr(f, EN, PM1_PWRBTN_EN, 2);
    expect_refused(f, "pm1-status", PM1_TMR_STS, "'pm1-status' is 0x1");
    expect_refused(f, "pm1-enable", 0x8000, "'pm1-enable'");
    expect_refused(f, "pm1-control", PM1_SLP_EN, "'pm1-control' is 0x2000");
    expect_refused(f, "pm1-control", 0x10000, "'pm1-control'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_button_sci, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sleep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pm_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_restore_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refuses_hostile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
