/*
 * Unit tests for a bzImage payload's decompression: every format against
 * payloads its own compressor made with Linux's options (gen_payloads.py, at
 * build time, in the directory given as argv[1]), bombs (a declared size over
 * the bound; more output than declared), wrong magic, truncation, a declared
 * size the stream does not reach, and the deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/kernel_payload.h"

static const char *fixtures;

static const char *const formats[] = {"gzip", "bzip2", "lzma", "xz", "lzo", "lz4", "zstd"};

struct blob {
    uint8_t *data;
    size_t len;
};

static struct blob load(const char *name)
{
    char path[512];
    struct blob b = {0};

    snprintf(path, sizeof(path), "%s/%s", fixtures, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    b.len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc(b.len + 1);
    assert_non_null(b.data);
    assert_int_equal(fread(b.data, 1, b.len, f), b.len);
    fclose(f);
    return b;
}

static struct blob load_fmt(const char *name, const char *fmt)
{
    char n[64];
    snprintf(n, sizeof(n), "%s.%s", name, fmt);
    return load(n);
}

static void set_declared(struct blob *b, uint32_t v)
{
    uint8_t *t = b->data + b->len - 4;
    t[0] = (uint8_t)v;
    t[1] = (uint8_t)(v >> 8);
    t[2] = (uint8_t)(v >> 16);
    t[3] = (uint8_t)(v >> 24);
}

/* Decompresses b with a bound and no deadline to speak of: the result, output freed. */
static int run(const struct blob *b, uint64_t max, struct errbuf *eb, struct blob *out)
{
    struct kpayload p;
    int ret = kpayload_identify(b->data, b->len, &p, eb);
    if (ret)
        return ret;
    struct blob o = {0};
    ret = kpayload_decompress(&p, max, now_ns() + 60 * 1000000000ULL, &o.data, &o.len, eb);
    if (out)
        *out = o;
    else
        free(o.data);
    return ret;
}

static void test_each_format_decompresses(void **state)
{
    (void)state;
    struct blob plain = load("plain");
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        struct blob b = load_fmt("plain", formats[i]), out;
        struct errbuf eb = {{0}};
        struct kpayload p;
        assert_int_equal(kpayload_identify(b.data, b.len, &p, &eb), 0);
        assert_string_equal(p.name, formats[i]);
        assert_int_equal(p.declared, plain.len);
        int ret = run(&b, KPAYLOAD_MAX_OUT, &eb, &out);
        if (ret)
            fail_msg("%s: %s", formats[i], eb.msg);
        assert_int_equal(out.len, plain.len);
        assert_memory_equal(out.data, plain.data, plain.len);
        free(out.data);
        free(b.data);
    }
    free(plain.data);
}

/* A declared size over the bound is refused before anything is decompressed. */
static void test_declared_over_bound(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        struct blob b = load_fmt("zeroes", formats[i]);
        struct errbuf eb = {{0}};
        assert_int_equal(run(&b, 1 * MiB, &eb, NULL), -EFBIG);
        assert_non_null(strstr(eb.msg, "declares 4194304 bytes"));
        free(b.data);
    }
}

/* 4 MiB of zeroes that claim to be 64 KiB: refused once the output passes 64 KiB. */
static void test_bomb(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        struct blob b = load_fmt("zeroes", formats[i]);
        struct errbuf eb = {{0}};
        if (strcmp(formats[i], "gzip") == 0) {
            /* gzip's ISIZE is checked by zlib itself: its bomb is a stream too long. */
            set_declared(&b, 64 * 1024);
            int ret = run(&b, 1 * MiB, &eb, NULL);
            assert_true(ret == -EFBIG || ret == -EBADMSG);
        } else {
            set_declared(&b, 64 * 1024);
            int ret = run(&b, 1 * MiB, &eb, NULL);
            if (ret != -EFBIG)
                fail_msg("%s: %d %s", formats[i], ret, eb.msg);
            assert_non_null(strstr(eb.msg, "more than"));
        }
        free(b.data);
    }
}

/* A stream cut in half (its size trailer kept) is refused. */
static void test_truncated(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        struct blob b = load_fmt("plain", formats[i]);
        struct errbuf eb = {{0}};
        size_t half = b.len / 2;
        memcpy(b.data + half, b.data + b.len - 4, 4);
        b.len = half + 4;
        int ret = run(&b, KPAYLOAD_MAX_OUT, &eb, NULL);
        if (ret != -EBADMSG)
            fail_msg("%s: %d %s", formats[i], ret, eb.msg);
        free(b.data);
    }
}

/* A declared size the stream does not reach is refused (lz4 and lzo have no checksum). */
static void test_declared_more_than_output(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        if (!strcmp(formats[i], "gzip"))
            continue; /* its trailer is inside the stream: see test_truncated */
        struct blob b = load_fmt("plain", formats[i]);
        struct errbuf eb = {{0}};
        set_declared(&b, 300 * 1024 + 100);
        int ret = run(&b, KPAYLOAD_MAX_OUT, &eb, NULL);
        if (ret != -EBADMSG)
            fail_msg("%s: %d %s", formats[i], ret, eb.msg);
        free(b.data);
    }
}

/* One format's magic on another's stream: refused as corrupt, never guessed around. */
static void test_wrong_magic(void **state)
{
    (void)state;
    struct blob gz = load_fmt("plain", "gzip");
    struct errbuf eb = {{0}};
    static const char *const magics[] = {"\xfd\x37\x7a\x58\x5a\x00",
                                         "\x28\xb5\x2f\xfd",
                                         "BZh",
                                         "\x02\x21\x4c\x18",
                                         "\x89\x4c\x5a\x4f\x00\x0d\x0a\x1a\x0a",
                                         "\x5d\x00\x00"};
    static const size_t lens[] = {6, 4, 3, 4, 9, 3};
    for (size_t i = 0; i < ARRAY_SIZE(magics); i++) {
        struct blob b = {.data = malloc(gz.len + 16), .len = gz.len + lens[i]};
        memcpy(b.data, magics[i], lens[i]);
        memcpy(b.data + lens[i], gz.data, gz.len);
        int ret = run(&b, KPAYLOAD_MAX_OUT, &eb, NULL);
        if (ret != -EBADMSG && ret != -EFBIG)
            fail_msg("magic %zu: %d %s", i, ret, eb.msg);
        free(b.data);
    }
    /* No known magic at all, and too short to hold one and a size. */
    struct blob junk = {.data = (uint8_t *)"MZ\x90\x00\x03\x00\x00\x00", .len = 8};
    assert_int_equal(run(&junk, KPAYLOAD_MAX_OUT, &eb, NULL), -ENOEXEC);
    assert_non_null(strstr(eb.msg, "no format petrel knows"));
    struct blob shrt = {.data = (uint8_t *)"\x28\xb5\x2f\xfd\x00", .len = 5};
    assert_int_equal(run(&shrt, KPAYLOAD_MAX_OUT, &eb, NULL), -ENOEXEC);
    free(gz.data);
}

static void test_deadline(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        struct blob b = load_fmt("plain", formats[i]), out = {0};
        struct errbuf eb = {{0}};
        struct kpayload p;
        assert_int_equal(kpayload_identify(b.data, b.len, &p, &eb), 0);
        assert_int_equal(kpayload_decompress(&p, KPAYLOAD_MAX_OUT, 0, &out.data, &out.len, &eb),
                         -ETIMEDOUT);
        assert_null(out.data);
        free(b.data);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES-DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_format_decompresses),
        cmocka_unit_test(test_declared_over_bound),
        cmocka_unit_test(test_bomb),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_declared_more_than_output),
        cmocka_unit_test(test_wrong_magic),
        cmocka_unit_test(test_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
