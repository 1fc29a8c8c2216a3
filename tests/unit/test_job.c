/*
 * Unit tests for job.c: a function on a worker thread, completed back on a real
 * libevent loop; the worker's signal mask; cancelling (waiting for) a job.
 * No sleeps: the loop runs until it has nothing left, the worker is waited for
 * with condition variables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "petrel/job.h"

struct work {
    struct job job;
    struct event_base *base;
    pthread_t main_thread;
    /* Written by run (worker), read by done or the test after the job is over. */
    pthread_t run_thread;
    bool run_blocked_rtmin, run_blocked_int, run_blocked_term;
    int value;
    /* Loop thread. */
    int runs_left; /* done restarts the job while this is positive */
    int done_calls;
    int *freed; /* done_free() counts here */
    bool done_on_main, done_saw_value;
    /* The worker's progress, for tests that must wait for it. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started, returned;
};

static void work_init(struct work *w, struct event_base *base)
{
    memset(w, 0, sizeof(*w));
    w->base = base;
    w->main_thread = pthread_self();
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static void work_destroy(struct work *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

static void work_set(struct work *w, bool *flag)
{
    pthread_mutex_lock(&w->lock);
    *flag = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void work_wait(struct work *w, bool *flag)
{
    pthread_mutex_lock(&w->lock);
    while (!*flag)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

/* Records where it ran and with which signals blocked. */
static void run_record(struct job *job)
{
    struct work *w = container_of(job, struct work, job);
    sigset_t mask;

    w->run_thread = pthread_self();
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    w->run_blocked_rtmin = sigismember(&mask, SIGRTMIN) == 1;
    w->run_blocked_int = sigismember(&mask, SIGINT) == 1;
    w->run_blocked_term = sigismember(&mask, SIGTERM) == 1;
    w->value++;
}

static void done_record(struct job *job)
{
    struct work *w = container_of(job, struct work, job);

    w->done_calls++;
    w->done_on_main = pthread_equal(pthread_self(), w->main_thread);
    w->done_saw_value = w->value == w->done_calls;
    assert_false(job_active(job));
    if (w->runs_left > 0) {
        w->runs_left--;
        assert_int_equal(job_start(job, w->base, run_record, done_record), 0);
    }
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* The main thread lets SIGRTMIN, SIGINT and SIGTERM through, so the worker's mask is job_start's.
 */
static void unblock_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* run on another thread with every signal blocked, then done on the loop, once. */
static void test_run_then_done(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct work w;
    sigset_t before, after;

    assert_non_null(base);
    work_init(&w, base);
    unblock_signals();
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    assert_int_equal(job_start(&w.job, base, run_record, done_record), 0);
    assert_true(job_active(&w.job));
    int fd = w.job.notify_fd;
    /* The caller's mask is back as it was. */
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    assert_int_equal(sigismember(&after, SIGRTMIN), sigismember(&before, SIGRTMIN));
    assert_int_equal(sigismember(&after, SIGRTMIN), 0);

    /* Returns once the job's event is gone: after done. */
    assert_int_equal(event_base_dispatch(base), 1);
    assert_int_equal(w.done_calls, 1);
    assert_true(w.done_on_main);
    assert_true(w.done_saw_value);
    assert_false(pthread_equal(w.run_thread, w.main_thread));
    assert_true(w.run_blocked_rtmin);
    assert_true(w.run_blocked_int);
    assert_true(w.run_blocked_term);
    assert_false(job_active(&w.job));
    assert_false(fd_open(fd));

    work_destroy(&w);
    event_base_free(base);
}

/* done may start the same job again; the loop runs each completion in turn. */
static void test_done_restarts(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct work w;

    assert_non_null(base);
    work_init(&w, base);
    w.runs_left = 4;
    assert_int_equal(job_start(&w.job, base, run_record, done_record), 0);
    assert_int_equal(event_base_dispatch(base), 1);
    assert_int_equal(w.done_calls, 5);
    assert_int_equal(w.value, 5);
    assert_true(w.done_saw_value);
    assert_false(job_active(&w.job));
    work_destroy(&w);
    event_base_free(base);
}

/* Two jobs at once on one loop, each completing to its own done. */
static void test_two_jobs(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct work a, b;

    assert_non_null(base);
    work_init(&a, base);
    work_init(&b, base);
    assert_int_equal(job_start(&a.job, base, run_record, done_record), 0);
    assert_int_equal(job_start(&b.job, base, run_record, done_record), 0);
    assert_int_equal(event_base_dispatch(base), 1);
    assert_int_equal(a.done_calls, 1);
    assert_int_equal(b.done_calls, 1);
    assert_false(pthread_equal(a.run_thread, b.run_thread));
    work_destroy(&a);
    work_destroy(&b);
    event_base_free(base);
}

/* done may free the struct the job lives in (ASan: no use after it). */
static void done_free(struct job *job)
{
    struct work *w = container_of(job, struct work, job);
    (*w->freed)++;
    work_destroy(w);
    free(w);
}

static void run_nothing(struct job *job)
{
    (void)job;
}

static void test_done_frees(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int calls = 0;

    assert_non_null(base);
    struct work *w = malloc(sizeof(*w));
    assert_non_null(w);
    work_init(w, base);
    w->freed = &calls;
    assert_int_equal(job_start(&w->job, base, run_nothing, done_free), 0);
    assert_int_equal(event_base_dispatch(base), 1);
    assert_int_equal(calls, 1);
    event_base_free(base);
}

/* A NULL done is allowed: the job just ends. */
static void test_no_done(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct work w;

    assert_non_null(base);
    work_init(&w, base);
    assert_int_equal(job_start(&w.job, base, run_record, NULL), 0);
    assert_int_equal(event_base_dispatch(base), 1);
    assert_int_equal(w.value, 1);
    assert_false(job_active(&w.job));
    work_destroy(&w);
    event_base_free(base);
}

/* Runs until cancelled: it says it started, then waits for job_cancel(). */
static void run_until_cancelled(struct job *job)
{
    struct work *w = container_of(job, struct work, job);

    work_set(w, &w->started);
    while (!job_cancelled(job))
        sched_yield();
    w->value = 42;
    work_set(w, &w->returned);
}

/*
 * A teardown while the job runs: job_cancel() waits for run to return, calls
 * no done, and leaves nothing behind (the eventfd closed, the event freed:
 * LeakSanitizer would see it), so the loop has nothing left to run.
 */
static void test_cancel_waits_for_run(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct work w;

    assert_non_null(base);
    work_init(&w, base);
    assert_int_equal(job_start(&w.job, base, run_until_cancelled, done_record), 0);
    int fd = w.job.notify_fd;
    work_wait(&w, &w.started);
    assert_int_equal(job_start(&w.job, base, run_record, done_record), -EBUSY);
    job_cancel(&w.job);
    /* run has returned: its last write is visible, as after a join. */
    assert_true(w.returned);
    assert_int_equal(w.value, 42);
    assert_false(job_active(&w.job));
    assert_false(fd_open(fd));
    assert_int_equal(event_base_dispatch(base), 1);
    assert_int_equal(w.done_calls, 0);
    /* Cancelling again, or an idle job, does nothing. */
    job_cancel(&w.job);
    work_destroy(&w);
    event_base_free(base);
}

static void run_signal_return(struct job *job)
{
    struct work *w = container_of(job, struct work, job);
    work_set(w, &w->returned);
}

/* Cancelled after run returned but before the loop saw it: done never comes. */
static void test_cancel_after_run(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct work w;

    assert_non_null(base);
    work_init(&w, base);
    assert_int_equal(job_start(&w.job, base, run_signal_return, done_record), 0);
    work_wait(&w, &w.returned);
    job_cancel(&w.job);
    assert_false(job_active(&w.job));
    assert_int_equal(event_base_dispatch(base), 1);
    assert_int_equal(w.done_calls, 0);
    /* The job can be started again afterwards. */
    assert_int_equal(job_start(&w.job, base, run_record, done_record), 0);
    assert_int_equal(event_base_dispatch(base), 1);
    assert_int_equal(w.done_calls, 1);
    work_destroy(&w);
    event_base_free(base);
}

/* A zeroed job is idle: cancel is a no-op. */
static void test_idle(void **state)
{
    (void)state;
    struct job job;

    memset(&job, 0, sizeof(job));
    assert_false(job_active(&job));
    job_cancel(&job);
    job_cancel(&job);
    assert_false(job_active(&job));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_then_done),    cmocka_unit_test(test_done_restarts),
        cmocka_unit_test(test_two_jobs),         cmocka_unit_test(test_done_frees),
        cmocka_unit_test(test_no_done),          cmocka_unit_test(test_cancel_waits_for_run),
        cmocka_unit_test(test_cancel_after_run), cmocka_unit_test(test_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
