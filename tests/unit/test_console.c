/*
 * Unit tests for the console's exit flush (console.c) and write_until()
 * (util.c) on pipes: a reader that stopped reading costs at most the deadline,
 * what it did not take is dropped and counted, a reader that reads gets
 * everything; and direct output (the producer writes the fd while nothing is
 * queued), which keeps the bytes' order and leaves failures to the loop. No KVM; meson's test
 * timeout turns a hang into a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "petrel/console.h"

#define PIPE_BYTES 4096 /* each test pipe is shrunk to one page */
#define MS         1000000ULL

static void test_pipe(int fds[2])
{
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    assert_int_equal(fcntl(fds[0], F_SETPIPE_SZ, PIPE_BYTES), PIPE_BYTES);
    assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
}

static void pattern(uint8_t *p, size_t n, size_t from)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((from + i) * 7 + ((from + i) >> 8));
}

/* Everything in the pipe right now (the write end must be closed). */
static size_t read_all(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
        got += (size_t)n;
    return got;
}

static void test_write_until_all(void **state)
{
    (void)state;
    int fds[2];
    uint8_t out[100], in[100];
    size_t done = 1234;

    test_pipe(fds);
    pattern(out, sizeof(out), 0);
    /* A deadline already past does not stop a write the fd takes at once. */
    assert_int_equal(write_until(fds[1], out, sizeof(out), now_ns(), &done), 0);
    assert_int_equal(done, sizeof(out));
    close(fds[1]);
    assert_int_equal(read_all(fds[0], in, sizeof(in)), sizeof(in));
    assert_memory_equal(in, out, sizeof(out));
    close(fds[0]);
}

/* Nobody reads: what fits is written, then the deadline ends the wait. */
static void test_write_until_stalled(void **state)
{
    (void)state;
    int fds[2];
    static uint8_t out[3 * PIPE_BYTES];
    size_t done = 0;

    test_pipe(fds);
    pattern(out, sizeof(out), 0);
    assert_int_equal(write_until(fds[1], out, sizeof(out), now_ns() + 50 * MS, &done), -ETIMEDOUT);
    assert_int_equal(done, PIPE_BYTES);
    /* Already full and the deadline past: no wait at all, nothing written. */
    assert_int_equal(write_until(fds[1], out, 1, now_ns(), &done), -ETIMEDOUT);
    assert_int_equal(done, 0);
    close(fds[0]);
    close(fds[1]);
}

static void test_write_until_error(void **state)
{
    (void)state;
    int fds[2];
    size_t done = 1;

    test_pipe(fds);
    close(fds[0]);
    assert_int_equal(write_until(fds[1], "x", 1, WRITE_NO_DEADLINE, &done), -EPIPE);
    assert_int_equal(done, 0);
    assert_int_equal(write_all(fds[1], "x", 1), -EPIPE);
    close(fds[1]);
}

struct fixture {
    struct event_base *base;
    struct console_out c;
    int fds[2];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->base = event_base_new();
    assert_non_null(f->base);
    assert_int_equal(console_out_init(&f->c, f->base, 4 * PIPE_BYTES), 0);
    test_pipe(f->fds);
    /* Blocking again: console_out_attach() must make it non-blocking itself. */
    assert_int_equal(fcntl(f->fds[1], F_SETFL, 0), 0);
    assert_int_equal(console_out_attach(&f->c, f->fds[1], "the test pipe", false, false), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    console_out_destroy(&f->c);
    if (f->fds[0] >= 0)
        close(f->fds[0]);
    close(f->fds[1]);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Queues n pattern bytes (from byte number from) as a device would. */
static void put(struct fixture *f, size_t n, size_t from)
{
    uint8_t buf[4 * PIPE_BYTES];

    assert_true(n <= sizeof(buf));
    pattern(buf, n, from);
    assert_int_equal(outbuf_put(&f->c.buf, buf, n), n);
}

/* The loop drains the queue into the pipe until it is full (the notify event). */
static void run_loop(struct fixture *f)
{
    assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
}

/* The case: a full pipe nobody reads. The flush returns and counts the rest. */
static void test_flush_stalled_reader(void **state)
{
    struct fixture *f = *state;
    uint8_t in[PIPE_BYTES + 1];

    put(f, 4 * PIPE_BYTES, 0);
    run_loop(f);
    assert_int_equal(outbuf_len(&f->c.buf), 3 * PIPE_BYTES); /* back-pressure, not lossy */
    assert_int_equal(f->c.dropped, 0);

    assert_int_equal(console_out_flush(&f->c, now_ns() + 50 * MS), 3 * PIPE_BYTES);
    assert_int_equal(outbuf_len(&f->c.buf), 0);
    assert_int_equal(f->c.dropped, 3 * PIPE_BYTES);
    assert_int_equal(f->c.dropped_at_exit, 3 * PIPE_BYTES);
    /* Still attached (nothing failed), and the pipe holds the first page, in order. */
    assert_int_equal(f->c.fd, f->fds[1]);
    console_out_detach(&f->c);
    close(f->fds[1]);
    f->fds[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
    uint8_t want[PIPE_BYTES];
    pattern(want, sizeof(want), 0);
    assert_int_equal(read_all(f->fds[0], in, sizeof(in)), PIPE_BYTES);
    assert_memory_equal(in, want, PIPE_BYTES);
}

/* A flush with nothing queued returns at once, whatever the pipe's state. */
static void test_flush_empty(void **state)
{
    struct fixture *f = *state;

    put(f, PIPE_BYTES, 0);
    run_loop(f); /* the pipe is now full, the queue empty */
    assert_int_equal(console_out_flush(&f->c, WRITE_NO_DEADLINE), 0);
    assert_int_equal(f->c.dropped, 0);
}

struct reader {
    int fd;
    size_t got;
    bool in_order;
};

/* Reads the pipe to its end, one small read at a time, checking the pattern. */
static void *reader_thread(void *arg)
{
    struct reader *r = arg;
    uint8_t buf[512], want[512];
    ssize_t n;

    r->in_order = true;
    while ((n = read(r->fd, buf, sizeof(buf))) > 0) {
        pattern(want, (size_t)n, r->got);
        if (memcmp(buf, want, (size_t)n))
            r->in_order = false;
        r->got += (size_t)n;
    }
    return NULL;
}

/* A reader that reads gets every byte: the limit only ends waiting for one that does not. */
static void test_flush_reader_takes_all(void **state)
{
    struct fixture *f = *state;
    struct reader r = {.fd = f->fds[0]};
    pthread_t t;

    put(f, 4 * PIPE_BYTES, 0);
    run_loop(f);
    assert_int_equal(pthread_create(&t, NULL, reader_thread, &r), 0);
    /* The deadline is a guard here (a hang would fail), not a measure. */
    assert_int_equal(console_out_flush(&f->c, now_ns() + 60000 * MS), 0);
    assert_int_equal(f->c.dropped, 0);
    console_out_detach(&f->c);
    close(f->fds[1]);
    f->fds[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pthread_join(t, NULL);
    assert_int_equal(r.got, 4 * PIPE_BYTES);
    assert_true(r.in_order);
}

/* Lossy (a pty): what the fd cannot take while running is dropped and counted too. */
static void test_lossy_counts_drops(void **state)
{
    struct fixture *f = *state;

    f->c.lossy = true;
    put(f, 3 * PIPE_BYTES, 0);
    run_loop(f);
    assert_int_equal(outbuf_len(&f->c.buf), 0);
    assert_int_equal(f->c.dropped, 2 * PIPE_BYTES);
    put(f, 10, 0);
    assert_int_equal(console_out_flush(&f->c, now_ns()), 10);
    assert_int_equal(f->c.dropped, 2 * PIPE_BYTES + 10);
    assert_int_equal(f->c.dropped_at_exit, 10);
}

/* A reader that went away: the fd fails, is detached, and that is not "dropped". */
static void test_flush_failed_fd(void **state)
{
    struct fixture *f = *state;

    put(f, 100, 0);
    close(f->fds[0]);
    f->fds[0] = -1;
    assert_int_equal(console_out_flush(&f->c, WRITE_NO_DEADLINE), 0);
    assert_int_equal(f->c.fd, -1);
    assert_int_equal(outbuf_len(&f->c.buf), 0);
    assert_int_equal(f->c.dropped, 0);
}

/* Whether the loop was asked to drain (the outbuf's eventfd is set); clears it. */
static bool notified(struct fixture *f)
{
    uint64_t v;
    return read(f->c.buf.notify_fd, &v, sizeof(v)) == sizeof(v);
}

/*
 * Direct output (stdio, a file): the producer's own outbuf_put() writes the fd, so
 * the loop is not woken at all (one write() per byte the UART gets, not a wake-up).
 */
static void test_direct_writes_at_once(void **state)
{
    struct fixture *f = *state;
    uint8_t in[200], want[100];

    console_out_direct(&f->c);
    put(f, 60, 0);
    put(f, 40, 60);
    assert_int_equal(outbuf_len(&f->c.buf), 0);
    assert_false(notified(f));
    pattern(want, sizeof(want), 0);
    console_out_detach(&f->c);
    close(f->fds[1]);
    f->fds[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_int_equal(read_all(f->fds[0], in, sizeof(in)), 100);
    assert_memory_equal(in, want, 100);
}

/*
 * A full fd: what it refuses is queued and the loop woken; while anything is queued,
 * later bytes queue behind it (never written ahead), and the loop delivers all in order.
 */
static void test_direct_full_fd_queues_in_order(void **state)
{
    struct fixture *f = *state;
    struct reader r = {.fd = f->fds[0]};
    pthread_t t;

    console_out_direct(&f->c);
    put(f, 2 * PIPE_BYTES, 0);
    assert_int_equal(outbuf_len(&f->c.buf), PIPE_BYTES); /* the pipe took one page */
    assert_true(notified(f));
    put(f, 10, 2 * PIPE_BYTES);
    assert_int_equal(outbuf_len(&f->c.buf), PIPE_BYTES + 10);
    assert_int_equal(pthread_create(&t, NULL, reader_thread, &r), 0);
    assert_int_equal(console_out_flush(&f->c, now_ns() + 60000 * MS), 0);
    put(f, 5, 2 * PIPE_BYTES + 10); /* empty again: straight to the fd */
    assert_int_equal(outbuf_len(&f->c.buf), 0);
    console_out_detach(&f->c);
    close(f->fds[1]);
    f->fds[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pthread_join(t, NULL);
    assert_int_equal(r.got, 2 * PIPE_BYTES + 15);
    assert_true(r.in_order);
}

/* Detached, the fd is never written by a producer again (it may be closed, or blocking). */
static void test_direct_ends_at_detach(void **state)
{
    struct fixture *f = *state;
    uint8_t in[16];

    console_out_direct(&f->c);
    console_out_detach(&f->c);
    put(f, 10, 0);
    assert_int_equal(outbuf_len(&f->c.buf), 10);
    assert_true(notified(f));
    assert_int_equal(fcntl(f->fds[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(read(f->fds[0], in, sizeof(in)), -1);
    assert_int_equal(errno, EAGAIN);
}

/* A reader gone: the producer queues, the loop's drain meets EPIPE and detaches the fd. */
static void test_direct_failed_fd_detached_by_loop(void **state)
{
    struct fixture *f = *state;

    console_out_direct(&f->c);
    close(f->fds[0]);
    f->fds[0] = -1;
    put(f, 10, 0);
    assert_int_equal(outbuf_len(&f->c.buf), 10);
    run_loop(f);
    assert_int_equal(f->c.fd, -1);
    assert_int_equal(outbuf_len(&f->c.buf), 0);
    put(f, 10, 10); /* nothing attached: consumed by the loop, not written */
    run_loop(f);
    assert_int_equal(outbuf_len(&f->c.buf), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_until_all),
        cmocka_unit_test(test_write_until_stalled),
        cmocka_unit_test(test_write_until_error),
        cmocka_unit_test_setup_teardown(test_flush_stalled_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_reader_takes_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lossy_counts_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_failed_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_writes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_full_fd_queues_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_ends_at_detach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_failed_fd_detached_by_loop, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN); /* a closed reader is EPIPE, as in petrel */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
