/*
 * GET /events without a VM: an event's JSON line, the per-client queue's bound (what
 * a slow client gets: drops, then a notice), and the CLI's chunked decoder fed in every
 * split a socket could make, and with broken input.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "petrel/api.h"

/* An event is one line of JSON with its name, time and detail. */
static void test_format_line(void **state)
{
    char buf[256];
    (void)state;

    int n = api_event_format(buf, sizeof(buf), "paused", 1500000000ULL, NULL, NULL);
    assert_true(n > 0);
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', (size_t)n - 1));
    json_t *j = json_loadb(buf, (size_t)n, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "event")), "paused");
    assert_true(json_real_value(json_object_get(j, "time")) == 1.5);
    assert_null(json_object_get(j, "detail"));
    json_decref(j);

    n = api_event_format(buf, sizeof(buf), "stopping", 0, "detail", "poweroff");
    assert_true(n > 0);
    j = json_loadb(buf, (size_t)n, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "poweroff");
    json_decref(j);
}

/* A detail with quotes, newlines and control bytes stays one line of valid JSON. */
static void test_format_escapes_detail(void **state)
{
    char buf[256];
    const char *hostile = "a\"b\nc\r\x01}{\"event\":\"resumed\"}";
    (void)state;

    int n = api_event_format(buf, sizeof(buf), "guest_crash", 0, "detail", hostile);
    assert_true(n > 0);
    assert_null(memchr(buf, '\n', (size_t)n - 1));
    json_t *j = json_loadb(buf, (size_t)n, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "event")), "guest_crash");
    assert_string_equal(json_string_value(json_object_get(j, "detail")), hostile);
    json_decref(j);
}

/* A line that does not fit the buffer is refused, never cut. */
static void test_format_too_long(void **state)
{
    char buf[32];
    (void)state;

    assert_int_equal(api_event_format(buf, sizeof(buf), "paused", 0, "detail",
                                      "a detail far longer than the buffer"),
                     -ENOSPC);
    /* Exactly full: the newline needs its byte too. */
    char big[256];
    int n = api_event_format(big, sizeof(big), "paused", 0, NULL, NULL);
    assert_true(n > 0);
    assert_int_equal(api_event_format(buf, (size_t)n - 1, "paused", 0, NULL, NULL), -ENOSPC);
    char exact[256];
    assert_int_equal(api_event_format(exact, (size_t)n, "paused", 0, NULL, NULL), n);
}

/* The queue's bound: a line goes only if it fits; after drops, only with its notice. */
static void test_plan_bounds_the_queue(void **state)
{
    (void)state;

    assert_int_equal(api_events_plan(0, 0, 50, 40, 100), API_EVENTS_SEND);
    assert_int_equal(api_events_plan(0, 50, 50, 40, 100), API_EVENTS_SEND);
    assert_int_equal(api_events_plan(0, 51, 50, 40, 100), API_EVENTS_DROP);
    /* Dropped before: the notice and the line both fit, or nothing goes. */
    assert_int_equal(api_events_plan(3, 10, 50, 40, 100), API_EVENTS_SEND_NOTICE);
    assert_int_equal(api_events_plan(3, 11, 50, 40, 100), API_EVENTS_DROP);
    /* A queue already past the bound (libevent's own bytes) takes nothing. */
    assert_int_equal(api_events_plan(0, 200, 1, 40, 100), API_EVENTS_DROP);
    assert_int_equal(api_events_plan(0, SIZE_MAX, SIZE_MAX, 40, 100), API_EVENTS_DROP);
}

/*
 * A dead client (nothing is ever written out): its queue stops at the bound whatever
 * the number of events, and every one beyond is counted.
 */
static void test_plan_dead_client_stays_bounded(void **state)
{
    size_t queued = 0, limit = 4096, line = 60, notice = 50;
    uint64_t dropped = 0, sent = 0;
    (void)state;

    for (int i = 0; i < 100000; i++) {
        switch (api_events_plan(dropped, queued, line, notice, limit)) {
        case API_EVENTS_DROP:
            dropped++;
            break;
        case API_EVENTS_SEND_NOTICE:
            queued += notice;
            dropped = 0;
            /* fall through */
        case API_EVENTS_SEND:
            queued += line;
            sent++;
            break;
        }
        assert_true(queued <= limit);
    }
    assert_int_equal(sent, limit / line);
    assert_int_equal(dropped, 100000 - sent);
}

/* Decodes all of in, split into pieces of step bytes; returns the payload's length. */
static ssize_t decode_split(const char *in, size_t len, size_t step, char *out, bool *done)
{
    struct api_chunked c = {0};
    char piece[1024];
    size_t total = 0;

    for (size_t i = 0; i < len; i += step) {
        size_t n = len - i < step ? len - i : step;
        memcpy(piece, in + i, n);
        ssize_t r = api_chunked_decode(&c, piece, n);
        if (r < 0)
            return r;
        memcpy(out + total, piece, (size_t)r);
        total += (size_t)r;
    }
    *done = api_chunked_done(&c);
    return (ssize_t)total;
}

/* Chunks, an extension, upper-case hex and a trailer, however the bytes arrive. */
static void test_chunked_any_split(void **state)
{
    static const char in[] = "5\r\nhello\r\n"
                             "19;name=value\r\n{\"event\":\"paused\",\"t\":1}\n\r\n"
                             "3\nabc\n"
                             "0\r\nX-Trailer: 1\r\n\r\n";
    static const char want[] = "hello{\"event\":\"paused\",\"t\":1}\nabc";
    char out[256];
    (void)state;

    for (size_t step = 1; step <= sizeof(in); step++) {
        bool done = false;
        ssize_t n = decode_split(in, sizeof(in) - 1, step, out, &done);
        assert_int_equal(n, (ssize_t)strlen(want));
        assert_memory_equal(out, want, strlen(want));
        assert_true(done);
    }
}

/* An open stream is not done, and gives what it has so far. */
static void test_chunked_open_stream(void **state)
{
    static const char in[] = "5\r\nab\ncd";
    char out[64];
    bool done = true;
    (void)state;

    assert_int_equal(decode_split(in, sizeof(in) - 1, 3, out, &done), 5);
    assert_memory_equal(out, "ab\ncd", 5);
    assert_false(done);
}

/* Broken chunked input is refused, never overrun. */
static void test_chunked_refuses(void **state)
{
    static const char *const bad[] = {
        "x\r\n",                          /* no hex size */
        "\r\n",                           /* an empty size */
        "5\rX",                           /* CR without LF */
        "3\r\nabcX",                      /* no CRLF after the data */
        "3\r\nabc\rX",                    /* CR then not LF */
        "1000000000000000\r\n",           /* 16 digits: over 2^60 */
        "0\r\n\r\nmore",                  /* bytes after the last chunk */
        "5 garbage\r\nhello\r\n0\r\n\rZ", /* a bad last line */
        "5!\r\n",                         /* a bad character in the size */
    };
    char out[64];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bool done;
        for (size_t step = 1; step <= strlen(bad[i]); step++)
            assert_int_equal(decode_split(bad[i], strlen(bad[i]), step, out, &done), -EPROTO);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_line),
        cmocka_unit_test(test_format_escapes_detail),
        cmocka_unit_test(test_format_too_long),
        cmocka_unit_test(test_plan_bounds_the_queue),
        cmocka_unit_test(test_plan_dead_client_stays_bounded),
        cmocka_unit_test(test_chunked_any_split),
        cmocka_unit_test(test_chunked_open_stream),
        cmocka_unit_test(test_chunked_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
