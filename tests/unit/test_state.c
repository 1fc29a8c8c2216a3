/* State nodes: every property type round trips; hostile nodes fail with a message. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fake_state.h"

static uint8_t tree[STATE_TEST_TREE];

/* A node "dev" with one property of each type. */
static void fill_all(struct state_out *out, void *ctx)
{
    (void)ctx;
    static const uint8_t bytes[5] = {1, 2, 3, 4, 5};
    state_begin(out, "dev", "petrel,test-v1");
    state_put_u32(out, "a", 0xdeadbeef);
    state_put_u64(out, "b", 0x0123456789abcdefULL);
    state_put_bool(out, "c", true);
    state_put_bytes(out, "d", bytes, sizeof(bytes));
    state_put_u32(out, "small", 0xff);
    state_put_u32(out, "big", 0x10000);
    state_put_u32_array(out, "cells", (const uint32_t[]){0xfee00000, 0, 0x4021}, 3);
    state_end(out);
}

static void test_round_trip(void **unused)
{
    (void)unused;
    struct errbuf eb = {0};
    assert_int_equal(state_test_write(tree, sizeof(tree), fill_all, NULL), 0);
    struct state_in root = state_test_root(tree, &eb), in;
    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    uint32_t a;
    uint64_t b;
    bool c;
    uint8_t d[5], small;
    uint16_t small16;
    state_get_u32(&in, "a", &a);
    state_get_u64(&in, "b", &b);
    state_get_bool(&in, "c", &c);
    state_get_bytes(&in, "d", d, sizeof(d));
    state_get_u8(&in, "small", &small);
    state_get_u16(&in, "small", &small16);
    assert_int_equal(in.err, 0);
    assert_int_equal(a, 0xdeadbeef);
    assert_true(b == 0x0123456789abcdefULL);
    assert_true(c);
    assert_memory_equal(d, ((uint8_t[]){1, 2, 3, 4, 5}), 5);
    assert_int_equal(small, 0xff);
    assert_int_equal(small16, 0xff);

    uint32_t cells[3];
    state_get_u32_array(&in, "cells", cells, 3);
    assert_int_equal(in.err, 0);
    assert_int_equal(cells[0], 0xfee00000);
    assert_int_equal(cells[1], 0);
    assert_int_equal(cells[2], 0x4021);
    /* Stored as big-endian cells, as dtc shows them. */
    int len;
    const uint8_t *raw = fdt_getprop(tree, in.node, "cells", &len);
    assert_int_equal(len, 12);
    assert_memory_equal(raw, ((uint8_t[]){0xfe, 0xe0, 0, 0}), 4);
    state_get_u32_array(&in, "cells", cells, 2);
    assert_int_equal(in.err, -EINVAL);
    assert_int_equal(cells[0], 0);
    assert_non_null(strstr(eb.msg, "property 'cells' has 12 bytes, not 8"));
}

static void test_missing_and_wrong_size(void **unused)
{
    (void)unused;
    struct errbuf eb = {0};
    assert_int_equal(state_test_write(tree, sizeof(tree), fill_all, NULL), 0);
    struct state_in root = state_test_root(tree, &eb), in;
    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    uint64_t v = 1;
    state_get_u64(&in, "a", &v); /* a is 4 bytes */
    assert_int_equal(in.err, -EINVAL);
    assert_true(v == 0);
    assert_non_null(strstr(eb.msg, "state node 'dev': property 'a' has 4 bytes, not 8"));

    /* Sticky: the first failure is what is reported. */
    uint32_t w = 1;
    state_get_u32(&in, "nope", &w);
    assert_int_equal(w, 0);
    assert_non_null(strstr(eb.msg, "'a'"));

    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    state_get_u32(&in, "nope", &w);
    assert_int_equal(in.err, -EINVAL);
    assert_non_null(strstr(eb.msg, "no property 'nope'"));
}

static void test_bounds(void **unused)
{
    (void)unused;
    struct errbuf eb = {0};
    assert_int_equal(state_test_write(tree, sizeof(tree), fill_all, NULL), 0);
    struct state_in root = state_test_root(tree, &eb), in;
    uint8_t v8 = 7;
    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    state_get_u8(&in, "big", &v8);
    assert_int_equal(in.err, -EINVAL);
    assert_int_equal(v8, 0);
    assert_non_null(strstr(eb.msg, "'big' is 0x10000, more than 0xff"));

    bool b = true;
    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    state_get_bool(&in, "small", &b);
    assert_int_equal(in.err, -EINVAL);
    assert_false(b);

    uint32_t bits = 7;
    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    state_get_bits(&in, "small", 0xff, &bits);
    assert_int_equal(in.err, 0);
    assert_int_equal(bits, 0xff);
    state_get_bits(&in, "small", 0x0f, &bits);
    assert_int_equal(in.err, -EINVAL);
    assert_int_equal(bits, 0);
    assert_non_null(strstr(eb.msg, "'small' is 0xff, with bits 0xf0 the register does not hold"));

    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    assert_int_equal(state_invalid(&in, "index %u out of range", 9u), -EINVAL);
    assert_non_null(strstr(eb.msg, "state node 'dev': index 9 out of range"));
}

static void test_open_refuses(void **unused)
{
    (void)unused;
    struct errbuf eb = {0};
    assert_int_equal(state_test_write(tree, sizeof(tree), fill_all, NULL), 0);
    struct state_in root = state_test_root(tree, &eb), in;
    assert_int_equal(state_open(&root, "other", "petrel,test-v1", &in), -ENOENT);
    assert_non_null(strstr(eb.msg, "no subnode 'other'"));
    /* Reads after a failed open fail too (one check at the end suffices). */
    uint32_t v = 5;
    state_get_u32(&in, "a", &v);
    assert_int_equal(v, 0);
    assert_int_equal(in.err, -ENOENT);

    assert_int_equal(state_open(&root, "dev", "petrel,test-v2", &in), -EPROTO);
    assert_non_null(strstr(eb.msg, "is not 'petrel,test-v2' (compatible: petrel,test-v1)"));
}

/* u64s at either 4-byte alignment: a tree's cells are not 8-byte aligned (UBSan checks). */
static void fill_u64s(struct state_out *out, void *ctx)
{
    (void)ctx;
    state_begin(out, "dev", "petrel,test-v1");
    state_put_u64(out, "x", 0x1122334455667788ULL);
    state_put_u32(out, "pad", 0);
    state_put_u64(out, "y", 0x8877665544332211ULL);
    state_end(out);
}

static void test_u64_alignment(void **unused)
{
    (void)unused;
    struct errbuf eb = {0};
    assert_int_equal(state_test_write(tree, sizeof(tree), fill_u64s, NULL), 0);
    struct state_in root = state_test_root(tree, &eb), in;
    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    uint64_t x, y;
    state_get_u64(&in, "x", &x);
    state_get_u64(&in, "y", &y);
    assert_int_equal(in.err, 0);
    assert_true(x == 0x1122334455667788ULL);
    assert_true(y == 0x8877665544332211ULL);
}

/* Strings, and a device refusing to be saved. */
static void fill_strings(struct state_out *out, void *ctx)
{
    state_begin(out, "dev", "petrel,test-v1");
    state_put_string(out, "path", "/var/disk.img");
    state_put_bytes(out, "unterminated", "abc", 3);
    state_put_bytes(out, "two", "a\0b", 4);
    state_end(out);
    if (ctx) {
        out->eb = ctx;
        state_refuse(out, -EBUSY, "dev: %u requests in flight", 2u);
        state_refuse(out, -EIO, "not this one");
    }
}

static void test_strings_and_refusal(void **unused)
{
    (void)unused;
    struct errbuf eb = {0};
    char s[14];
    assert_int_equal(state_test_write(tree, sizeof(tree), fill_strings, NULL), 0);
    struct state_in root = state_test_root(tree, &eb), in;
    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    state_get_string(&in, "path", s, sizeof(s));
    assert_int_equal(in.err, 0);
    assert_string_equal(s, "/var/disk.img");
    state_get_string(&in, "path", s, 13);
    assert_int_equal(in.err, -EINVAL);
    assert_string_equal(s, "");
    assert_non_null(strstr(eb.msg, "property 'path' has 14 bytes, more than 13"));
    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    state_get_string(&in, "unterminated", s, sizeof(s));
    assert_non_null(strstr(eb.msg, "property 'unterminated' is not a string"));
    assert_int_equal(state_open(&root, "dev", "petrel,test-v1", &in), 0);
    state_get_string(&in, "two", s, sizeof(s));
    assert_non_null(strstr(eb.msg, "property 'two' is not a string"));

    memset(&eb, 0, sizeof(eb));
    assert_int_equal(state_test_write(tree, sizeof(tree), fill_strings, &eb), -EBUSY);
    assert_string_equal(eb.msg, "dev: 2 requests in flight");
}

static void test_full_buffer(void **unused)
{
    (void)unused;
    uint8_t small[128];
    assert_int_equal(state_test_write(small, sizeof(small), fill_all, NULL), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_missing_and_wrong_size),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_open_refuses),
        cmocka_unit_test(test_u64_alignment),
        cmocka_unit_test(test_full_buffer),
        cmocka_unit_test(test_strings_and_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
