/* Unit tests for guest_mem.c: the checked accessor and the layout around the hole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "petrel/guest_mem.h"

#define FAKE_SIZE (64 * KiB)

struct fake {
    uint8_t *buf;
    struct guest_mem gm;
};

static int fake_setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->buf = calloc(1, FAKE_SIZE);
    if (!f->buf) {
        free(f);
        return -1;
    }
    gm_init_fake(&f->gm, f->buf, FAKE_SIZE);
    *state = f;
    return 0;
}

static int fake_teardown(void **state)
{
    struct fake *f = *state;
    gm_destroy(&f->gm);
    free(f->buf);
    free(f);
    return 0;
}

static void test_fake_layout(void **state)
{
    struct fake *f = *state;
    assert_int_equal(f->gm.nr, 1);
    assert_int_equal(f->gm.size, FAKE_SIZE);
    assert_false(f->gm.owned);
    assert_int_equal(gm_low_end(&f->gm), FAKE_SIZE);
}

static void test_in_range(void **state)
{
    struct fake *f = *state;
    const struct guest_mem *gm = &f->gm;

    assert_ptr_equal(gm_ptr(gm, 0, 1), f->buf);
    assert_ptr_equal(gm_ptr(gm, 0, FAKE_SIZE), f->buf);
    assert_ptr_equal(gm_ptr(gm, 0x1234, 16), f->buf + 0x1234);
    assert_ptr_equal(gm_ptr(gm, FAKE_SIZE - 1, 1), f->buf + FAKE_SIZE - 1);
    assert_ptr_equal(gm_ptr(gm, FAKE_SIZE - 8, 8), f->buf + FAKE_SIZE - 8);
    /* len 0 inside RAM is a valid (empty) range. */
    assert_ptr_equal(gm_ptr(gm, 0, 0), f->buf);
    assert_ptr_equal(gm_ptr(gm, FAKE_SIZE - 1, 0), f->buf + FAKE_SIZE - 1);
}

static void test_out_of_range(void **state)
{
    struct fake *f = *state;
    const struct guest_mem *gm = &f->gm;

    /* Straddling the end. */
    assert_null(gm_ptr(gm, FAKE_SIZE - 1, 2));
    assert_null(gm_ptr(gm, FAKE_SIZE - 8, 9));
    assert_null(gm_ptr(gm, 0, FAKE_SIZE + 1));
    /* len 0 at the end: the address is not in RAM. */
    assert_null(gm_ptr(gm, FAKE_SIZE, 0));
    /* Beyond the end. */
    assert_null(gm_ptr(gm, FAKE_SIZE, 1));
    assert_null(gm_ptr(gm, FAKE_SIZE + 4096, 1));
    assert_null(gm_ptr(gm, GM_HIGH_START, 1));
    assert_null(gm_ptr(gm, UINT64_MAX, 0));
    assert_null(gm_ptr(gm, UINT64_MAX, 1));
    /* Lengths for which gpa + len wraps around to a small value. */
    assert_null(gm_ptr(gm, 1, UINT64_MAX));
    assert_null(gm_ptr(gm, 0x100, UINT64_MAX - 0xff)); /* gpa + len == 0 */
    assert_null(gm_ptr(gm, 0x100, UINT64_MAX - 0x7f)); /* gpa + len == 0x80 */
    assert_null(gm_ptr(gm, UINT64_MAX, 2));
    assert_null(gm_ptr(gm, 0, UINT64_MAX));
}

/* Exhaustive over a small fake: gm_ptr agrees with the arithmetic definition. */
static void test_small_exhaustive(void **state)
{
    (void)state;
    uint8_t buf[32];
    struct guest_mem gm;

    gm_init_fake(&gm, buf, sizeof(buf));
    for (uint64_t gpa = 0; gpa < 40; gpa++) {
        for (uint64_t len = 0; len < 40; len++) {
            bool ok = gpa < sizeof(buf) && gpa + len <= sizeof(buf);
            void *p = gm_ptr(&gm, gpa, len);
            if (ok && p != buf + gpa)
                fail_msg("gm_ptr(%llu, %llu) = %p, want %p", (unsigned long long)gpa,
                         (unsigned long long)len, p, (void *)(buf + gpa));
            if (!ok && p)
                fail_msg("gm_ptr(%llu, %llu) = %p, want NULL", (unsigned long long)gpa,
                         (unsigned long long)len, p);
        }
    }
    gm_destroy(&gm);
}

/* Below the hole: one region, no high memory. */
static void test_init_low_only(void **state)
{
    (void)state;
    struct guest_mem gm;

    assert_int_equal(gm_init(&gm, 256 * MiB), 0);
    assert_int_equal(gm.nr, 1);
    assert_true(gm.owned);
    assert_int_equal(gm.size, 256 * MiB);
    assert_int_equal(gm.regions[0].gpa, 0);
    assert_int_equal(gm.regions[0].size, 256 * MiB);
    assert_int_equal(gm_low_end(&gm), 256 * MiB);
    uint8_t *p = gm_ptr(&gm, 256 * MiB - 1, 1);
    assert_ptr_equal(p, gm.regions[0].host + 256 * MiB - 1);
    *p = 0x5a; /* the mapping is writable */
    assert_int_equal(*(uint8_t *)gm_ptr(&gm, 256 * MiB - 1, 1), 0x5a);
    assert_null(gm_ptr(&gm, 256 * MiB, 1));
    gm_destroy(&gm);
    assert_int_equal(gm.nr, 0);
}

/* Exactly 3 GiB still fits below the hole in one region. */
static void test_init_exactly_hole(void **state)
{
    (void)state;
    struct guest_mem gm;

    assert_int_equal(gm_init(&gm, GM_HOLE_START), 0);
    assert_int_equal(gm.nr, 1);
    assert_int_equal(gm.regions[0].size, GM_HOLE_START);
    assert_int_equal(gm_low_end(&gm), GM_HOLE_START);
    assert_null(gm_ptr(&gm, GM_HIGH_START, 1));
    gm_destroy(&gm);
}

/*
 * 3 GiB + 2 MiB: RAM is split around the PCI hole, the rest starting at 4 GiB.
 * The mappings are anonymous and MAP_NORESERVE; only two pages are touched.
 */
static void test_init_split(void **state)
{
    (void)state;
    struct guest_mem gm;
    const uint64_t size = 3 * GiB + 2 * MiB;

    assert_int_equal(gm_init(&gm, size), 0);
    assert_int_equal(gm.nr, 2);
    assert_int_equal(gm.size, size);
    assert_int_equal(gm.regions[0].gpa, 0);
    assert_int_equal(gm.regions[0].size, GM_HOLE_START);
    assert_int_equal(gm.regions[1].gpa, GM_HIGH_START);
    assert_int_equal(gm.regions[1].size, 2 * MiB);
    assert_int_equal(gm_low_end(&gm), GM_HOLE_START);

    /* Last byte below the hole, first and last byte above it. */
    uint8_t *low_last = gm_ptr(&gm, GM_HOLE_START - 1, 1);
    assert_ptr_equal(low_last, gm.regions[0].host + GM_HOLE_START - 1);
    assert_ptr_equal(gm_ptr(&gm, GM_HIGH_START, 2 * MiB), gm.regions[1].host);
    uint8_t *high_last = gm_ptr(&gm, GM_HIGH_START + 2 * MiB - 1, 1);
    assert_ptr_equal(high_last, gm.regions[1].host + 2 * MiB - 1);
    *high_last = 0xa5;
    assert_int_equal(*(uint8_t *)gm_ptr(&gm, GM_HIGH_START + 2 * MiB - 1, 1), 0xa5);

    /* The hole itself and every range that crosses into or over it. */
    assert_null(gm_ptr(&gm, GM_HOLE_START, 1));
    assert_null(gm_ptr(&gm, GM_HOLE_START, 0));
    assert_null(gm_ptr(&gm, GM_HIGH_START - 1, 1));
    assert_null(gm_ptr(&gm, GM_HOLE_START - 1, 2));
    assert_null(gm_ptr(&gm, GM_HIGH_START - 1, 2));
    assert_null(gm_ptr(&gm, GM_HOLE_START - 4096, GM_HIGH_START - GM_HOLE_START + 8192));
    assert_null(gm_ptr(&gm, 0, size));
    /* And past the high region. */
    assert_null(gm_ptr(&gm, GM_HIGH_START + 2 * MiB - 1, 2));
    assert_null(gm_ptr(&gm, GM_HIGH_START + 2 * MiB, 0));
    assert_null(gm_ptr(&gm, GM_HIGH_START + 1, UINT64_MAX));

    gm_destroy(&gm);
    assert_int_equal(gm.nr, 0);
    assert_null(gm_ptr(&gm, 0, 1));
}

/* gm_resident() counts the pages the guest has touched, in both regions. */
static void test_resident(void **state)
{
    (void)state;
    struct guest_mem gm;
    const uint64_t size = 3 * GiB + 4 * MiB;
    long page = sysconf(_SC_PAGESIZE);

    assert_int_equal(gm_init(&gm, size), 0);
    uint64_t before = gm_resident(&gm);
    static const uint64_t touch[] = {0, 16 * MiB + 4096, GM_HOLE_START - 1, GM_HIGH_START + MiB};
    for (size_t i = 0; i < ARRAY_SIZE(touch); i++) {
        uint8_t *p = gm_ptr(&gm, touch[i], 1);
        assert_non_null(p);
        *p = 1;
    }
    uint64_t after = gm_resident(&gm);
    assert_true(after >= before + ARRAY_SIZE(touch) * (uint64_t)page);
    assert_true(after <= size);
    gm_destroy(&gm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fake_layout, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_in_range, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, fake_setup, fake_teardown),
        cmocka_unit_test(test_small_exhaustive),
        cmocka_unit_test(test_init_low_only),
        cmocka_unit_test(test_init_exactly_hole),
        cmocka_unit_test(test_init_split),
        cmocka_unit_test(test_resident),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
