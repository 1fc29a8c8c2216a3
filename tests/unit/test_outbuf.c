/* Unit tests for outbuf.c: the ring, partial puts, the eventfd wake-up and on_space. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "petrel/outbuf.h"

/* True when fd is readable right now (no waiting: the writes under test are synchronous). */
static bool readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, 0);
    assert_true(n >= 0);
    return n == 1 && (pfd.revents & POLLIN);
}

/* Peeks everything queued and compares it with want. */
static void expect_contents(struct outbuf *ob, const char *want)
{
    char buf[256];
    size_t n = outbuf_peek(ob, buf, sizeof(buf));
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_int_equal(outbuf_len(ob), n);
    assert_int_equal(outbuf_space(ob), ob->cap - n);
}

static void test_init(void **state)
{
    (void)state;
    struct outbuf ob;
    assert_int_equal(outbuf_init(&ob, 8), 0);
    assert_int_equal(outbuf_len(&ob), 0);
    assert_int_equal(outbuf_space(&ob), 8);
    assert_true(ob.notify_fd >= 0);
    assert_false(readable(ob.notify_fd));
    char c;
    assert_int_equal(outbuf_peek(&ob, &c, 1), 0);
    outbuf_destroy(&ob);
    /* Destroying twice is harmless (the VM's error paths rely on it). */
    outbuf_destroy(&ob);
}

/*
 * A zero-capacity buffer cannot work (every put computes an index modulo
 * cap): init must refuse it rather than hand out a buffer that divides by zero.
 */
static void test_init_zero_capacity(void **state)
{
    (void)state;
    struct outbuf ob;
    int ret = outbuf_init(&ob, 0);
    if (ret == 0)
        outbuf_destroy(&ob);
    assert_int_equal(ret, -EINVAL);
}

static void test_put_peek_consume_wrap(void **state)
{
    (void)state;
    struct outbuf ob;
    assert_int_equal(outbuf_init(&ob, 8), 0);

    assert_int_equal(outbuf_put(&ob, "abcde", 5), 5);
    expect_contents(&ob, "abcde");
    /* A short peek gives the front only, and removes nothing. */
    char two[2];
    assert_int_equal(outbuf_peek(&ob, two, 2), 2);
    assert_memory_equal(two, "ab", 2);
    expect_contents(&ob, "abcde");

    outbuf_consume(&ob, 3);
    expect_contents(&ob, "de");
    /* This put wraps around the end of the storage. */
    assert_int_equal(outbuf_put(&ob, "fghijk", 6), 6);
    expect_contents(&ob, "defghijk");
    /* Full: nothing more is taken. */
    assert_int_equal(outbuf_put(&ob, "x", 1), 0);
    expect_contents(&ob, "defghijk");

    outbuf_consume(&ob, 7);
    expect_contents(&ob, "k");
    assert_int_equal(outbuf_put(&ob, "lmnopqr", 7), 7);
    expect_contents(&ob, "klmnopqr");
    outbuf_consume(&ob, 8);
    expect_contents(&ob, "");

    /* Many rounds of odd-sized puts and consumes keep the byte order. */
    unsigned next_in = 0, next_out = 0;
    for (unsigned round = 0; round < 1000; round++) {
        uint8_t in[8], out[8];
        size_t want = 1 + round % 7;
        for (size_t i = 0; i < want; i++)
            in[i] = (uint8_t)(next_in + i);
        size_t space = outbuf_space(&ob);
        size_t took = outbuf_put(&ob, in, want);
        assert_int_equal(took, want < space ? want : space);
        next_in += (unsigned)took;
        size_t got = outbuf_peek(&ob, out, 1 + round % 5);
        for (size_t i = 0; i < got; i++)
            assert_int_equal(out[i], (uint8_t)(next_out + i));
        outbuf_consume(&ob, got);
        next_out += (unsigned)got;
    }
    assert_int_equal(outbuf_len(&ob), next_in - next_out);
    outbuf_destroy(&ob);
}

static void test_partial_put(void **state)
{
    (void)state;
    struct outbuf ob;
    assert_int_equal(outbuf_init(&ob, 4), 0);
    assert_int_equal(outbuf_put(&ob, "abcdef", 6), 4);
    expect_contents(&ob, "abcd");
    outbuf_consume(&ob, 1);
    assert_int_equal(outbuf_put(&ob, "XYZ", 3), 1);
    expect_contents(&ob, "bcdX");
    /* Consuming more than is queued empties the buffer, no more. */
    outbuf_consume(&ob, 100);
    expect_contents(&ob, "");
    assert_int_equal(outbuf_put(&ob, "12", 2), 2);
    expect_contents(&ob, "12");
    outbuf_destroy(&ob);
}

static void test_notify(void **state)
{
    (void)state;
    struct outbuf ob;
    assert_int_equal(outbuf_init(&ob, 8), 0);

    /* A put of nothing into an empty buffer wakes nobody. */
    assert_int_equal(outbuf_put(&ob, "", 0), 0);
    assert_false(readable(ob.notify_fd));

    /* The first byte into an empty buffer wakes the loop. */
    assert_int_equal(outbuf_put(&ob, "a", 1), 1);
    assert_true(readable(ob.notify_fd));
    outbuf_ack_notify(&ob);
    assert_false(readable(ob.notify_fd));
    /* Acking twice is harmless. */
    outbuf_ack_notify(&ob);
    assert_false(readable(ob.notify_fd));

    /* More bytes into a non-empty buffer: no new wake-up. */
    assert_int_equal(outbuf_put(&ob, "bcdefgh", 7), 7);
    assert_false(readable(ob.notify_fd));
    /* A put into a full buffer takes nothing and wakes nobody. */
    assert_int_equal(outbuf_put(&ob, "i", 1), 0);
    assert_false(readable(ob.notify_fd));
    /* Partly drained is still not empty. */
    outbuf_consume(&ob, 5);
    assert_int_equal(outbuf_put(&ob, "i", 1), 1);
    assert_false(readable(ob.notify_fd));

    /* Drained empty, then refilled: a new wake-up. */
    outbuf_consume(&ob, outbuf_len(&ob));
    assert_false(readable(ob.notify_fd));
    assert_int_equal(outbuf_put(&ob, "j", 1), 1);
    assert_true(readable(ob.notify_fd));
    outbuf_ack_notify(&ob);
    assert_false(readable(ob.notify_fd));
    outbuf_destroy(&ob);
}

struct space_rec {
    unsigned calls;
    size_t len_seen; /* outbuf_len() inside the callback */
    struct outbuf *ob;
};

static void on_space(void *ctx)
{
    struct space_rec *r = ctx;
    r->calls++;
    /* The buffer's lock is not held here: the callback may use the outbuf. */
    r->len_seen = outbuf_len(r->ob);
}

static void test_on_space(void **state)
{
    (void)state;
    struct outbuf ob;
    struct space_rec rec = {.ob = &ob};

    assert_int_equal(outbuf_init(&ob, 4), 0);
    ob.on_space = on_space;
    ob.on_space_ctx = &rec;

    /* Nothing consumed: no call. */
    outbuf_consume(&ob, 0);
    outbuf_consume(&ob, 3);
    assert_int_equal(rec.calls, 0);

    assert_int_equal(outbuf_put(&ob, "abcd", 4), 4);
    assert_int_equal(rec.calls, 0); /* put never calls it */
    outbuf_consume(&ob, 1);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.len_seen, 3); /* called after the bytes were dropped */
    outbuf_consume(&ob, 10);
    assert_int_equal(rec.calls, 2);
    assert_int_equal(rec.len_seen, 0);
    outbuf_destroy(&ob);
}

/*
 * A producer thread and this consumer thread move 1 MiB through a small buffer.
 * The producer waits for room on an eventfd written by on_space; the consumer
 * waits for data on the notify eventfd. Every wait has a timeout that fails the
 * test, so a lost wake-up shows as a failure, not a hang.
 */
#define STRESS_BYTES (1u << 20)
#define WAIT_MS      10000

struct stress {
    struct outbuf ob;
    int space_fd;
    int producer_err;
};

static void stress_on_space(void *ctx)
{
    struct stress *s = ctx;
    uint64_t one = 1;
    ssize_t n = write(s->space_fd, &one, sizeof(one));
    (void)n;
}

static int wait_readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n;
    do {
        n = poll(&pfd, 1, WAIT_MS);
    } while (n < 0 && errno == EINTR);
    return n;
}

static void *stress_producer(void *arg)
{
    struct stress *s = arg;
    uint8_t chunk[61];
    unsigned sent = 0;

    while (sent < STRESS_BYTES) {
        size_t want = sizeof(chunk);
        if (want > STRESS_BYTES - sent)
            want = STRESS_BYTES - sent;
        for (size_t i = 0; i < want; i++)
            chunk[i] = (uint8_t)((sent + i) * 7 + ((sent + i) >> 8));
        size_t took = outbuf_put(&s->ob, chunk, want);
        sent += (unsigned)took;
        if (took < want) {
            /* Full: wait for the consumer to make room (checking again first). */
            uint64_t v;
            ssize_t n = read(s->space_fd, &v, sizeof(v));
            (void)n;
            if (outbuf_space(&s->ob) == 0 && wait_readable(s->space_fd) != 1) {
                s->producer_err = ETIMEDOUT;
                return NULL;
            }
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct stress s = {.producer_err = 0};
    pthread_t t;
    unsigned got = 0;

    assert_int_equal(outbuf_init(&s.ob, 100), 0);
    s.space_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(s.space_fd >= 0);
    s.ob.on_space = stress_on_space;
    s.ob.on_space_ctx = &s;
    assert_int_equal(pthread_create(&t, NULL, stress_producer, &s), 0);

    while (got < STRESS_BYTES) {
        uint8_t buf[37];
        /* As the loop does: ack the wake-up, then drain until empty. */
        outbuf_ack_notify(&s.ob);
        size_t n;
        while ((n = outbuf_peek(&s.ob, buf, sizeof(buf))) > 0) {
            for (size_t i = 0; i < n; i++) {
                uint8_t want = (uint8_t)((got + i) * 7 + ((got + i) >> 8));
                if (buf[i] != want)
                    fail_msg("byte %u is %#x, want %#x", got + (unsigned)i, buf[i], want);
            }
            outbuf_consume(&s.ob, n);
            got += (unsigned)n;
        }
        if (got < STRESS_BYTES && wait_readable(s.ob.notify_fd) != 1)
            fail_msg("no wake-up after %u bytes (lost notification)", got);
    }
    pthread_join(t, NULL);
    assert_int_equal(s.producer_err, 0);
    assert_int_equal(got, STRESS_BYTES);
    assert_int_equal(outbuf_len(&s.ob), 0);
    close(s.space_fd);
    outbuf_destroy(&s.ob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_init_zero_capacity),
        cmocka_unit_test(test_put_peek_consume_wrap),
        cmocka_unit_test(test_partial_put),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_on_space),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
