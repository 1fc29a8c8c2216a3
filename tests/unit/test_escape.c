/* Console escape keys: Ctrl-A x / h / Ctrl-A, across split reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "petrel/escape.h"

/* Feeds in as separate reads of the given sizes; collects output and actions. */
struct result {
    uint8_t out[256];
    size_t out_len;
    enum escape_action actions[8];
    size_t nr_actions;
};

static void feed_split(struct escape *e, const char *in, const size_t *sizes, size_t nr,
                       struct result *r)
{
    size_t pos = 0;

    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < nr; i++) {
        const uint8_t *p = (const uint8_t *)in + pos;
        size_t len = sizes[i], off = 0;
        while (off < len) {
            size_t n;
            enum escape_action a;
            off += escape_feed(e, p + off, len - off, r->out + r->out_len, &n, &a);
            r->out_len += n;
            if (a != ESCAPE_NONE)
                r->actions[r->nr_actions++] = a;
        }
        pos += len;
    }
}

static void plain_bytes_pass_through(void **state)
{
    struct escape e = {0};
    struct result r;
    size_t sizes[] = {5};
    (void)state;

    feed_split(&e, "ab\r\n\x03", sizes, 1, &r);
    assert_int_equal(r.out_len, 5);
    assert_memory_equal(r.out, "ab\r\n\x03", 5);
    assert_int_equal(r.nr_actions, 0);
}

static void ctrl_a_x_quits_and_stops_there(void **state)
{
    struct escape e = {0};
    uint8_t out[16];
    size_t n;
    enum escape_action a;
    (void)state;

    size_t used = escape_feed(&e, (const uint8_t *)"ab\x01xcd", 6, out, &n, &a);
    assert_int_equal(a, ESCAPE_QUIT);
    assert_int_equal(used, 4); /* "cd" is left for the caller */
    assert_int_equal(n, 2);
    assert_memory_equal(out, "ab", 2);
}

static void ctrl_a_at_the_end_of_a_read(void **state)
{
    struct escape e = {0};
    struct result r;
    size_t sizes[] = {3, 2};
    (void)state;

    /* "ab^A" then "xq": the escape spans two reads. */
    feed_split(&e, "ab\x01xq", sizes, 2, &r);
    assert_int_equal(r.nr_actions, 1);
    assert_int_equal(r.actions[0], ESCAPE_QUIT);
    assert_int_equal(r.out_len, 3);
    assert_memory_equal(r.out, "abq", 3);
}

static void ctrl_a_ctrl_a_sends_one(void **state)
{
    struct escape e = {0};
    struct result r;
    size_t one_by_one[] = {1, 1, 1, 1};
    (void)state;

    feed_split(&e, "\x01\x01z\x01", one_by_one, 4, &r);
    assert_int_equal(r.nr_actions, 0);
    assert_int_equal(r.out_len, 2);
    assert_memory_equal(r.out, "\x01z", 2);
    assert_true(e.armed); /* the trailing Ctrl-A waits for its key */
}

static void help_and_unknown_keys(void **state)
{
    struct escape e = {0};
    struct result r;
    size_t sizes[] = {6};
    (void)state;

    feed_split(&e, "\x01h1\x01q2", sizes, 1, &r);
    assert_int_equal(r.nr_actions, 1);
    assert_int_equal(r.actions[0], ESCAPE_HELP);
    /* Ctrl-A q is unknown: both bytes dropped. */
    assert_int_equal(r.out_len, 2);
    assert_memory_equal(r.out, "12", 2);
    assert_non_null(strstr(escape_help, "Ctrl-A x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_bytes_pass_through),
        cmocka_unit_test(ctrl_a_x_quits_and_stops_there),
        cmocka_unit_test(ctrl_a_at_the_end_of_a_read),
        cmocka_unit_test(ctrl_a_ctrl_a_sends_one),
        cmocka_unit_test(help_and_unknown_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
