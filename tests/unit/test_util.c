/* Unit tests for util.c: size and integer parsing, size formatting, errbuf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "petrel/util.h"

/* Parses s and checks it gives want. */
static void expect_size(const char *s, uint64_t want)
{
    uint64_t v = 0xdeadbeef;
    int ret = parse_size(s, &v);
    if (ret != 0)
        fail_msg("parse_size(\"%s\") = %d, want 0", s, ret);
    if (v != want)
        fail_msg("parse_size(\"%s\") gave %llu, want %llu", s, (unsigned long long)v,
                 (unsigned long long)want);
}

/* Parses s and checks it fails with err without touching the output. */
static void expect_size_error(const char *s, int err)
{
    uint64_t v = 0x1234;
    int ret = parse_size(s, &v);
    if (ret != err)
        fail_msg("parse_size(\"%s\") = %d, want %d", s ? s : "(null)", ret, err);
    assert_int_equal(v, 0x1234);
}

static void test_parse_size_units(void **state)
{
    (void)state;
    expect_size("512M", 512 * MiB);
    expect_size("512m", 512 * MiB);
    expect_size("512MB", 512 * MiB);
    expect_size("512MiB", 512 * MiB);
    expect_size("512mib", 512 * MiB);
    expect_size("64K", 64 * KiB);
    expect_size("64k", 64 * KiB);
    expect_size("64KB", 64 * KiB);
    expect_size("64KiB", 64 * KiB);
    expect_size("1G", GiB);
    expect_size("3g", 3 * GiB);
    expect_size("2GiB", 2 * GiB);
    expect_size("1T", 1024 * GiB);
    expect_size("2TiB", 2048 * GiB);
    expect_size("5tb", 5120 * GiB);
}

static void test_parse_size_bare_and_bytes(void **state)
{
    (void)state;
    /* A bare number is MiB. */
    expect_size("1536", 1536 * MiB);
    expect_size("1", MiB);
    expect_size("0", 0);
    expect_size("0G", 0);
    /* "b" means bytes, in either case. */
    expect_size("100b", 100);
    expect_size("4096B", 4096);
    expect_size("0b", 0);
    expect_size("18446744073709551615b", UINT64_MAX);
    /* Leading zeros are decimal, not octal. */
    expect_size("010M", 10 * MiB);
}

static void test_parse_size_overflow(void **state)
{
    (void)state;
    /* Largest values that still fit, then one more. */
    expect_size("17592186044415", (UINT64_MAX >> 20) << 20); /* 2^44 - 1 MiB */
    expect_size_error("17592186044416", -ERANGE);            /* 2^44 MiB = 2^64 */
    expect_size("16777215T", (UINT64_MAX >> 40) << 40);
    expect_size_error("16777216T", -ERANGE);
    expect_size_error("17179869184G", -ERANGE);
    expect_size_error("18014398509481984K", -ERANGE);
    /* Beyond what strtoull holds at all. */
    expect_size_error("18446744073709551616b", -ERANGE);
    expect_size_error("99999999999999999999999999", -ERANGE);
}

static void test_parse_size_junk(void **state)
{
    (void)state;
    expect_size_error(NULL, -EINVAL);
    expect_size_error("", -EINVAL);
    expect_size_error("M", -EINVAL);
    expect_size_error("abc", -EINVAL);
    expect_size_error("12X", -EINVAL);
    expect_size_error("1.5G", -EINVAL);
    expect_size_error("-1", -EINVAL);
    expect_size_error("+1", -EINVAL);
    expect_size_error(" 1", -EINVAL);
    expect_size_error("1 G", -EINVAL);
    expect_size_error("1G ", -EINVAL);
    expect_size_error("1GiBx", -EINVAL);
    expect_size_error("1GG", -EINVAL);
    expect_size_error("0x10", -EINVAL);
    expect_size_error("1e3", -EINVAL);
    expect_size_error("1P", -EINVAL);
}

/* Parses s within [min, max] and checks the result. */
static void expect_uint(const char *s, unsigned long min, unsigned long max, int err,
                        unsigned long want)
{
    unsigned long v = 777;
    int ret = parse_uint(s, min, max, &v);
    if (ret != err)
        fail_msg("parse_uint(\"%s\", %lu, %lu) = %d, want %d", s ? s : "(null)", min, max, ret,
                 err);
    assert_int_equal(v, err ? 777 : want);
}

static void test_parse_uint_ranges(void **state)
{
    (void)state;
    expect_uint("0", 0, 10, 0, 0);
    expect_uint("10", 1, 10, 0, 10);
    expect_uint("1", 1, 10, 0, 1);
    expect_uint("11", 1, 10, -ERANGE, 0);
    expect_uint("0", 1, 10, -ERANGE, 0);
    expect_uint("4096", 1, 4096, 0, 4096);
    expect_uint("4097", 1, 4096, -ERANGE, 0);
    expect_uint("007", 1, 10, 0, 7);

    char max[32];
    snprintf(max, sizeof(max), "%lu", ULONG_MAX);
    expect_uint(max, 0, ULONG_MAX, 0, ULONG_MAX);
    expect_uint("99999999999999999999999", 0, ULONG_MAX, -ERANGE, 0);
}

static void test_parse_uint_junk(void **state)
{
    (void)state;
    expect_uint(NULL, 0, 10, -EINVAL, 0);
    expect_uint("", 0, 10, -EINVAL, 0);
    expect_uint("5x", 0, 10, -EINVAL, 0);
    expect_uint("-1", 0, 10, -EINVAL, 0);
    expect_uint("+1", 0, 10, -EINVAL, 0);
    expect_uint(" 5", 0, 10, -EINVAL, 0);
    expect_uint("5 ", 0, 10, -EINVAL, 0);
    expect_uint("0x5", 0, 10, -EINVAL, 0);
}

/* Formats bytes and compares with want. */
static void expect_fmt(uint64_t bytes, const char *want)
{
    char buf[64];
    memset(buf, 'z', sizeof(buf));
    const char *got = fmt_size(bytes, buf, sizeof(buf));
    assert_ptr_equal(got, buf);
    if (strcmp(got, want) != 0)
        fail_msg("fmt_size(%llu) = \"%s\", want \"%s\"", (unsigned long long)bytes, got, want);
}

static void test_fmt_size(void **state)
{
    (void)state;
    expect_fmt(0, "0 bytes");
    expect_fmt(1023, "1023 bytes");
    expect_fmt(1536, "1536 bytes");
    expect_fmt(KiB, "1 KiB");
    expect_fmt(4096, "4 KiB");
    expect_fmt(MiB - KiB, "1023 KiB");
    expect_fmt(MiB, "1 MiB");
    expect_fmt(MiB + 512 * KiB, "1.5 MiB");
    expect_fmt(MiB + KiB, "1025 KiB");
    expect_fmt(256 * MiB, "256 MiB");
    expect_fmt(GiB, "1 GiB");
    expect_fmt(GiB + GiB / 2, "1.5 GiB");
    expect_fmt(3 * GiB + GiB / 4, "3.25 GiB");
    expect_fmt(GiB + MiB, "1025 MiB");
    expect_fmt(1024 * GiB, "1024 GiB");
}

/*
 * Values that need more than four significant digits must still be printed
 * exactly: they appear in messages that compare two sizes ("needs X, only
 * Y"), where a rounded or exponent form is wrong or unreadable.
 */
static void test_fmt_size_exact(void **state)
{
    (void)state;
    expect_fmt(GiB + 256 * KiB, "1024.25 MiB");
    expect_fmt(2 * GiB - 256 * KiB, "2047.75 MiB");
    expect_fmt(10 * GiB + MiB, "10241 MiB");
}

static void test_fmt_size_truncates(void **state)
{
    (void)state;
    char buf[5];
    memset(buf, 'z', sizeof(buf));
    fmt_size(256 * MiB, buf, sizeof(buf));
    assert_string_equal(buf, "256 ");
}

static void test_err_set(void **state)
{
    (void)state;
    struct errbuf eb;
    memset(&eb, 0, sizeof(eb));
    assert_int_equal(err_set(&eb, -ENOENT, "no %s at %d", "thing", 42), -ENOENT);
    assert_string_equal(eb.msg, "no thing at 42");
    /* A NULL errbuf is allowed: only the error comes back. */
    assert_int_equal(err_set(NULL, -EIO, "ignored %d", 1), -EIO);

    /* Long messages are cut, always terminated. */
    char big[1024];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(err_set(&eb, -E2BIG, "%s", big), -E2BIG);
    assert_int_equal(strlen(eb.msg), sizeof(eb.msg) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size_units),
        cmocka_unit_test(test_parse_size_bare_and_bytes),
        cmocka_unit_test(test_parse_size_overflow),
        cmocka_unit_test(test_parse_size_junk),
        cmocka_unit_test(test_parse_uint_ranges),
        cmocka_unit_test(test_parse_uint_junk),
        cmocka_unit_test(test_fmt_size),
        cmocka_unit_test(test_fmt_size_exact),
        cmocka_unit_test(test_fmt_size_truncates),
        cmocka_unit_test(test_err_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
