/*
 * Unit tests for vcpu.c: the request/ack state machine and the SIGRTMIN kick,
 * on fake vCPUs whose run step imitates KVM_RUN without KVM.
 *
 * The fakes:
 * - "block" is a halted guest. Like KVM_RUN, it returns at once when
 *   immediate_exit is set on entry, and otherwise sleeps until SIGRTMIN
 *   arrives. SIGRTMIN is blocked between the check and sigsuspend(), so a
 *   kick that lands in between stays pending and ends the sleep at once: a
 *   kick that the vCPU loop loses shows as a sleep that never ends.
 * - "spin" is a busy guest: it runs a bounded, pseudo-random number of
 *   iterations (leaving early when kicked) and returns VCPU_STEP_CONTINUE, so
 *   requests land at every point of the vCPU loop.
 * - "mixed" picks one of the two at random on each entry.
 * - "io" and "frags" begin with a port/MMIO exit that the test holds open
 *   until it has sent its request. "frags" models an access KVM completes in
 *   several exits (a 16-byte store, an access across a page, a
 *   read-modify-write, rep movs between MMIO addresses): like KVM's
 *   complete_userspace_io, which runs before KVM looks at immediate_exit,
 *   each KVM_RUN completes one fragment and returns the next one's exit,
 *   immediate_exit or not, until the last has been completed.
 *
 * Every wait of the test is a poll() with a timeout of several seconds that
 * fails the test when it expires: timeouts guard against hangs, they never
 * order events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "petrel/vcpu.h"

#define WAIT_MS 10000

enum fake_mode {
    FAKE_BLOCK,
    FAKE_SPIN,
    FAKE_MIXED,
    FAKE_IO,    /* first entry handles a port exit (io_pending), then like FAKE_BLOCK */
    FAKE_FRAGS, /* first entry is an MMIO access in frags exits, then like FAKE_BLOCK */
};

#define FRAGS_ENDLESS UINT_MAX /* a chain that never ends (KVM bounds it; the fake does not) */

struct fake_vcpu {
    struct vcpu v;
    enum fake_mode mode;
    uint64_t rng;     /* vCPU thread only */
    bool report_wait; /* write entered_fd before sleeping in "block" */
    int entered_fd;   /* eventfd: the fake is about to sleep until kicked */
    int io_fd;        /* FAKE_IO: eventfd, the fake is inside its port exit */
    int go_fd;        /* FAKE_IO: eventfd, the test lets the port exit finish */
    unsigned frags;   /* FAKE_FRAGS: exits of the access (FRAGS_ENDLESS: no end) */
    unsigned fail_at; /* FAKE_FRAGS: the completing run that fails (VCPU_STEP_EXIT); 0 none */
    int chain_fd;     /* FAKE_FRAGS: eventfd, written at the 1000th completion */
    int free_fd;      /* FAKE_FRAGS: eventfd, written at the 1000th without immediate_exit */
    unsigned pending; /* FAKE_FRAGS, vCPU thread: fragments not completed by a KVM_RUN yet */

    /* Written by the vCPU thread; the test reads them after an ack. */
    atomic_uint calls;            /* run steps */
    atomic_uint interrupted;      /* run steps that returned VCPU_STEP_INTERRUPTED */
    atomic_uint io_calls;         /* run steps entered with io_pending set */
    atomic_uint io_calls_ie;      /* ... and with immediate_exit set */
    atomic_uint sleeps;           /* times "block" actually slept */
    atomic_uint woken;            /* ... and woke with immediate_exit set: the kick's handler ran */
    atomic_uint completions;      /* FAKE_FRAGS: fragments completed */
    atomic_uint completions_free; /* ... by runs without immediate_exit (the guest may run) */
    atomic_uint resumed;          /* ops->resuming calls */
    atomic_uint io_errors;        /* FAKE_IO handshake failed */
    bool resume_blocks;           /* ops->resuming waits for resume_go_fd (a slow KVMCLOCK_CTRL) */
    int resume_go_fd;             /* eventfd: the test lets ops->resuming finish */
    int resume_in_fd;             /* eventfd: ops->resuming is holding (resume_blocks) */
    atomic_bool resume_holding;   /* ops->resuming has not returned yet */
    atomic_uint runs_in_resume;   /* run steps entered while ops->resuming had not returned */
};

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static void efd_signal(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof(one));
    (void)n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is readable and clears it; false after WAIT_MS. Retries on EINTR. */
static bool efd_wait(int fd)
{
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return false;
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno != EINTR)
            return false;
        if (n > 0) {
            uint64_t v;
            if (read(fd, &v, sizeof(v)) == sizeof(v))
                return true;
        }
    }
}

/* A halted guest: returns when kicked, exactly as KVM_RUN with immediate_exit. */
static enum vcpu_step fake_block(struct fake_vcpu *f)
{
    volatile struct kvm_run *run = f->v.run;
    sigset_t kick, old;

    sigemptyset(&kick);
    sigaddset(&kick, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &kick, &old);
    if (!run->immediate_exit) {
        sigset_t wait = old;
        sigdelset(&wait, SIGRTMIN);
        atomic_fetch_add(&f->sleeps, 1);
        if (f->report_wait)
            efd_signal(f->entered_fd);
        /* Returns once a handler has run: only SIGRTMIN's can, all else is blocked. */
        sigsuspend(&wait);
        /* The loop cleared immediate_exit before this entry; only the kick sets it again. */
        if (run->immediate_exit)
            atomic_fetch_add(&f->woken, 1);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return VCPU_STEP_INTERRUPTED;
}

/* A busy guest: a bounded spin that a kick cuts short. */
static enum vcpu_step fake_spin(struct fake_vcpu *f)
{
    volatile struct kvm_run *run = f->v.run;
    unsigned n = (unsigned)(xorshift64(&f->rng) % 2048);

    for (unsigned i = 0; i <= n; i++) {
        if (run->immediate_exit)
            return VCPU_STEP_INTERRUPTED;
        cpu_relax();
    }
    return VCPU_STEP_CONTINUE;
}

/* FAKE_IO's first entry: a port exit the test holds open until it has sent a request. */
static enum vcpu_step fake_io_exit(struct fake_vcpu *f)
{
    f->v.io_pending = true;
    efd_signal(f->io_fd);
    if (!efd_wait(f->go_fd))
        atomic_fetch_add(&f->io_errors, 1);
    return VCPU_STEP_CONTINUE;
}

/*
 * FAKE_FRAGS after its first entry: each KVM_RUN completes one fragment and,
 * while more are left, returns the next fragment's exit whether or not
 * immediate_exit is set (KVM's complete_emulated_mmio() runs before the
 * immediate_exit check). After the last, like KVM_RUN: -EINTR at once if
 * immediate_exit is set, otherwise the guest runs (here: sleeps).
 */
static enum vcpu_step fake_frags(struct fake_vcpu *f)
{
    if (f->pending) {
        if (f->pending != FRAGS_ENDLESS)
            f->pending--;
        unsigned n = atomic_fetch_add(&f->completions, 1) + 1;
        if (n == 1000)
            efd_signal(f->chain_fd);
        if (!((volatile struct kvm_run *)f->v.run)->immediate_exit &&
            atomic_fetch_add(&f->completions_free, 1) + 1 == 1000)
            efd_signal(f->free_fd);
        if (n == f->fail_at)
            return VCPU_STEP_EXIT; /* KVM_RUN failed, or the next exit was malformed */
        if (f->pending) {
            f->v.io_pending = true; /* the next fragment's exit, handled */
            return VCPU_STEP_CONTINUE;
        }
    }
    return fake_block(f);
}

static enum vcpu_step fake_run(struct vcpu *v)
{
    struct fake_vcpu *f = container_of(v, struct fake_vcpu, v);
    unsigned call = atomic_fetch_add(&f->calls, 1);
    enum vcpu_step step;

    if (atomic_load(&f->resume_holding))
        atomic_fetch_add(&f->runs_in_resume, 1);

    if (v->io_pending) {
        atomic_fetch_add(&f->io_calls, 1);
        if (((volatile struct kvm_run *)v->run)->immediate_exit)
            atomic_fetch_add(&f->io_calls_ie, 1);
    }
    /* Any KVM_RUN completes a pending port/MMIO exit (vcpu_kvm_run does the same). */
    v->io_pending = false;

    switch (f->mode) {
    case FAKE_SPIN:
        step = fake_spin(f);
        break;
    case FAKE_MIXED:
        step = xorshift64(&f->rng) % 4 == 0 ? fake_block(f) : fake_spin(f);
        break;
    case FAKE_IO:
        step = call == 0 ? fake_io_exit(f) : fake_block(f);
        break;
    case FAKE_FRAGS:
        if (call == 0) {
            /* The first fragment's exit; each fragment completes in a later run. */
            f->pending = f->frags;
            step = fake_io_exit(f);
        } else {
            step = fake_frags(f);
        }
        break;
    case FAKE_BLOCK:
    default:
        step = fake_block(f);
        break;
    }
    if (step == VCPU_STEP_INTERRUPTED)
        atomic_fetch_add(&f->interrupted, 1);
    return step;
}

/* Called by vcpu_park() as the vCPU leaves a pause to run again, after its RUNNING ack. */
static void fake_resuming(struct vcpu *v)
{
    struct fake_vcpu *f = container_of(v, struct fake_vcpu, v);

    atomic_store(&f->resume_holding, true);
    atomic_fetch_add(&f->resumed, 1);
    if (f->resume_blocks) {
        efd_signal(f->resume_in_fd);
        if (!efd_wait(f->resume_go_fd))
            atomic_fetch_add(&f->io_errors, 1);
    }
    atomic_store(&f->resume_holding, false);
}

static const struct vcpu_ops fake_ops = {.run = fake_run, .resuming = fake_resuming};

/* A set of fake vCPUs acking through one eventfd, as a VM's do. */
struct group {
    struct fake_vcpu *f;
    unsigned n;
    int notify_fd;
};

static void group_init(struct group *g, unsigned n, enum fake_mode mode)
{
    g->n = n;
    g->f = calloc(n, sizeof(*g->f));
    assert_non_null(g->f);
    g->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(g->notify_fd >= 0);
    for (unsigned i = 0; i < n; i++) {
        struct fake_vcpu *f = &g->f[i];
        vcpu_init_common(&f->v, i, &fake_ops, g->notify_fd);
        f->v.fd = -1;
        f->v.run_size = sizeof(struct kvm_run);
        f->v.run = calloc(1, sizeof(struct kvm_run));
        assert_non_null(f->v.run);
        f->mode = mode;
        f->rng = 0x2545f4914f6cdd1dULL * (i + 1);
        f->entered_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        f->io_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        f->go_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        f->chain_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        f->free_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        f->resume_go_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        f->resume_in_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        assert_true(f->entered_fd >= 0 && f->io_fd >= 0 && f->go_fd >= 0 && f->chain_fd >= 0 &&
                    f->free_fd >= 0 && f->resume_go_fd >= 0 && f->resume_in_fd >= 0);
    }
}

/* Starts every thread with all signals blocked, as vm_run() does. */
static void group_start(struct group *g)
{
    sigset_t all, old;

    sigfillset(&all);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &all, &old), 0);
    for (unsigned i = 0; i < g->n; i++)
        assert_int_equal(vcpu_start(&g->f[i].v), 0);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

/* Waits, by the ack eventfd, until every vCPU of g is in state want. */
static void group_wait(struct group *g, enum vcpu_state want, const char *what)
{
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        unsigned i;
        for (i = 0; i < g->n; i++)
            if (vcpu_state(&g->f[i].v) != want)
                break;
        if (i == g->n)
            return;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            fail_msg("%s: vCPU %u of %u still in state %d, want %d after %d ms", what, i, g->n,
                     vcpu_state(&g->f[i].v), want, WAIT_MS);
        struct pollfd pfd = {.fd = g->notify_fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        if (n > 0) {
            uint64_t v;
            ssize_t r = read(g->notify_fd, &v, sizeof(v));
            (void)r;
        }
    }
}

static void group_request(struct group *g, unsigned req)
{
    for (unsigned i = 0; i < g->n; i++)
        assert_int_equal(vcpu_request(&g->f[i].v, req), 0);
}

static void group_clear(struct group *g, unsigned req)
{
    for (unsigned i = 0; i < g->n; i++)
        vcpu_clear_request(&g->f[i].v, req);
}

static void group_stop(struct group *g)
{
    group_request(g, VCPU_REQ_STOP);
    group_wait(g, VCPU_EXITED, "stop");
    for (unsigned i = 0; i < g->n; i++) {
        /* A request to a thread that already left is fine, joined or not. */
        assert_int_equal(vcpu_request(&g->f[i].v, VCPU_REQ_PAUSE), 0);
        vcpu_join(&g->f[i].v);
        assert_false(g->f[i].v.thread_started);
        assert_int_equal(vcpu_request(&g->f[i].v, VCPU_REQ_STOP), 0);
        assert_int_equal(vcpu_state(&g->f[i].v), VCPU_EXITED);
    }
}

static void group_destroy(struct group *g)
{
    for (unsigned i = 0; i < g->n; i++) {
        struct fake_vcpu *f = &g->f[i];
        assert_int_equal(atomic_load(&f->io_errors), 0);
        vcpu_destroy_common(&f->v);
        free(f->v.run);
        close(f->entered_fd);
        close(f->io_fd);
        close(f->go_fd);
        close(f->chain_fd);
        close(f->free_fd);
        close(f->resume_go_fd);
        close(f->resume_in_fd);
    }
    close(g->notify_fd);
    free(g->f);
}

/* Waits until every vCPU of g is asleep in "block" (so the next kick must wake it). */
static void group_wait_asleep(struct group *g)
{
    for (unsigned i = 0; i < g->n; i++)
        if (!efd_wait(g->f[i].entered_fd))
            fail_msg("vCPU %u never entered its run step", i);
}

/* A request made before the thread starts is seen before the first run step. */
static void test_stop_before_start(void **state)
{
    (void)state;
    struct group g;
    group_init(&g, 2, FAKE_BLOCK);
    assert_int_equal(vcpu_state(&g.f[0].v), VCPU_CREATED);
    group_request(&g, VCPU_REQ_STOP);
    group_start(&g);
    group_wait(&g, VCPU_EXITED, "stop before start");
    for (unsigned i = 0; i < g.n; i++)
        assert_int_equal(atomic_load(&g.f[i].calls), 0);
    group_stop(&g);
    group_destroy(&g);
}

/* STOP takes n sleeping vCPUs out of their run step and out of their threads. */
static void stop_sleeping(unsigned n)
{
    struct group g;
    group_init(&g, n, FAKE_BLOCK);
    for (unsigned i = 0; i < n; i++)
        g.f[i].report_wait = true;
    group_start(&g);
    group_wait_asleep(&g);
    group_stop(&g);
    for (unsigned i = 0; i < n; i++) {
        struct fake_vcpu *f = &g.f[i];
        /* One run step: the sleep the kick ended. */
        assert_int_equal(atomic_load(&f->calls), 1);
        assert_int_equal(atomic_load(&f->sleeps), 1);
        assert_int_equal(f->v.kicks_seen, 1);
    }
    group_destroy(&g);
}

static void test_stop_sleeping_1(void **state)
{
    (void)state;
    stop_sleeping(1);
}

static void test_stop_sleeping_2(void **state)
{
    (void)state;
    stop_sleeping(2);
}

static void test_stop_sleeping_4(void **state)
{
    (void)state;
    stop_sleeping(4);
}

/* STOP takes n busy vCPUs out of their loop. */
static void stop_spinning(unsigned n)
{
    struct group g;
    group_init(&g, n, FAKE_SPIN);
    group_start(&g);
    group_stop(&g);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(g.f[i].v.kicks_seen, atomic_load(&g.f[i].interrupted));
    group_destroy(&g);
}

static void test_stop_spinning_1(void **state)
{
    (void)state;
    stop_spinning(1);
}

static void test_stop_spinning_2(void **state)
{
    (void)state;
    stop_spinning(2);
}

static void test_stop_spinning_4(void **state)
{
    (void)state;
    stop_spinning(4);
}

/*
 * PAUSE parks every vCPU (PAUSED acked), clearing it resumes them (RUNNING
 * acked, and they enter the guest again), a second PAUSE parks them again,
 * and STOP ends parked vCPUs without entering the guest.
 */
static void pause_resume_stop(unsigned n)
{
    struct group g;
    unsigned calls[4];

    group_init(&g, n, FAKE_BLOCK);
    for (unsigned i = 0; i < n; i++)
        g.f[i].report_wait = true;
    group_start(&g);
    group_wait_asleep(&g);

    group_request(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_PAUSED, "first pause");
    /* Pausing a parked vCPU again changes nothing. */
    group_request(&g, VCPU_REQ_PAUSE);

    group_clear(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_RUNNING, "resume");
    /* Resumed vCPUs run again: each goes back to sleep in its run step. */
    group_wait_asleep(&g);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(atomic_load(&g.f[i].calls), 2);

    group_request(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_PAUSED, "second pause");
    for (unsigned i = 0; i < n; i++)
        calls[i] = atomic_load(&g.f[i].calls);

    group_stop(&g);
    for (unsigned i = 0; i < n; i++) {
        struct fake_vcpu *f = &g.f[i];
        assert_int_equal(atomic_load(&f->calls), calls[i]);
        assert_int_equal(atomic_load(&f->calls), 2);
        assert_int_equal(atomic_load(&f->io_calls), 0);
        assert_int_equal(f->v.kicks_seen, 2);
    }
    group_destroy(&g);
}

static void test_pause_resume_stop_1(void **state)
{
    (void)state;
    pause_resume_stop(1);
}

static void test_pause_resume_stop_2(void **state)
{
    (void)state;
    pause_resume_stop(2);
}

static void test_pause_resume_stop_4(void **state)
{
    (void)state;
    pause_resume_stop(4);
}

/* The same cycle on busy vCPUs. */
static void test_pause_spinning(void **state)
{
    (void)state;
    struct group g;
    unsigned calls[4];

    group_init(&g, 4, FAKE_SPIN);
    group_start(&g);
    group_request(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_PAUSED, "pause");
    for (unsigned i = 0; i < g.n; i++)
        calls[i] = atomic_load(&g.f[i].calls);
    group_clear(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_RUNNING, "resume");
    group_request(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_PAUSED, "pause again");
    for (unsigned i = 0; i < g.n; i++)
        calls[i] = atomic_load(&g.f[i].calls);
    group_stop(&g);
    for (unsigned i = 0; i < g.n; i++) {
        assert_int_equal(atomic_load(&g.f[i].calls), calls[i]);
        assert_int_equal(g.f[i].v.kicks_seen, atomic_load(&g.f[i].interrupted));
    }
    group_destroy(&g);
}

/*
 * A vCPU paused right after a port exit re-enters its run step exactly once,
 * with immediate_exit set, to complete the exit before it parks; a later
 * pause with no exit pending parks without it.
 */
static void test_pause_completes_io(void **state)
{
    (void)state;
    struct group g;
    struct fake_vcpu *f;

    group_init(&g, 1, FAKE_IO);
    f = &g.f[0];
    f->report_wait = true;
    group_start(&g);

    /* The vCPU is inside its port exit; the pause (and its kick) arrive now. */
    if (!efd_wait(f->io_fd))
        fail_msg("the vCPU never reached its port exit");
    assert_int_equal(vcpu_request(&f->v, VCPU_REQ_PAUSE), 0);
    efd_signal(f->go_fd);
    group_wait(&g, VCPU_PAUSED, "pause after a port exit");

    assert_int_equal(atomic_load(&f->calls), 2);
    assert_int_equal(atomic_load(&f->io_calls), 1);
    assert_int_equal(atomic_load(&f->io_calls_ie), 1);
    assert_false(f->v.io_pending);
    assert_int_equal(atomic_load(&f->sleeps), 0);
    /* The completing step is not a kick seen by the loop. */
    assert_int_equal(f->v.kicks_seen, 0);
    assert_int_equal(f->v.completing_runs, 1);
    assert_int_equal(f->v.completing_runs_chained, 0);

    group_clear(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_RUNNING, "resume");
    group_wait_asleep(&g);
    group_request(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_PAUSED, "second pause");
    assert_int_equal(atomic_load(&f->calls), 3);
    assert_int_equal(atomic_load(&f->io_calls), 1);
    group_stop(&g);
    assert_int_equal(atomic_load(&f->io_errors), 0);
    group_destroy(&g);
}

/* Waits until vCPU f has left RUNNING (parked or exited) and returns its state. */
static enum vcpu_state wait_settled(struct group *g, struct fake_vcpu *f)
{
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        enum vcpu_state s = vcpu_state(&f->v);
        if (s == VCPU_PAUSED || s == VCPU_EXITED)
            return s;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            fail_msg("vCPU %u still in state %d after %d ms", f->v.id, s, WAIT_MS);
        struct pollfd pfd = {.fd = g->notify_fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)left);
        if (n > 0) {
            uint64_t v;
            ssize_t r = read(g->notify_fd, &v, sizeof(v));
            (void)r;
        }
    }
}

/* A FAKE_FRAGS vCPU inside the first exit of a frags-exit access, with a pause sent. */
static struct fake_vcpu *pause_in_first_fragment(struct group *g, unsigned frags, unsigned fail_at)
{
    struct fake_vcpu *f;

    group_init(g, 1, FAKE_FRAGS);
    f = &g->f[0];
    f->frags = frags;
    f->fail_at = fail_at;
    f->report_wait = true;
    group_start(g);
    if (!efd_wait(f->io_fd))
        fail_msg("the vCPU never reached its first MMIO exit");
    assert_int_equal(vcpu_request(&f->v, VCPU_REQ_PAUSE), 0);
    efd_signal(f->go_fd);
    return f;
}

/*
 * A pause that lands in the first exit of an access KVM completes in frags
 * exits parks only after the last fragment: one KVM_RUN with immediate_exit
 * per fragment, each (but the last) returning the next fragment's exit.
 */
static void pause_completes_fragments(unsigned frags)
{
    struct group g;
    struct fake_vcpu *f = pause_in_first_fragment(&g, frags, 0);

    assert_int_equal(wait_settled(&g, f), VCPU_PAUSED);
    assert_int_equal(atomic_load(&f->resumed), 0); /* a pause's work comes at its resume */
    assert_int_equal(atomic_load(&f->completions), frags);
    assert_false(f->v.io_pending);
    /* Every completing run had immediate_exit set; none entered the guest. */
    assert_int_equal(atomic_load(&f->calls), 1 + frags);
    assert_int_equal(atomic_load(&f->io_calls), frags);
    assert_int_equal(atomic_load(&f->io_calls_ie), frags);
    assert_int_equal(atomic_load(&f->sleeps), 0);
    assert_int_equal(f->v.kicks_seen, 0);
    assert_int_equal(f->v.completing_runs, frags);
    assert_int_equal(f->v.completing_runs_chained, frags - 1);

    /* Resumed, it runs the guest again; a second pause has nothing to complete. */
    group_clear(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_RUNNING, "resume");
    group_wait_asleep(&g);
    group_request(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_PAUSED, "second pause");
    assert_int_equal(atomic_load(&f->calls), 2 + frags);
    assert_int_equal(atomic_load(&f->io_calls), frags);
    assert_int_equal(atomic_load(&f->resumed), 1);
    assert_int_equal(atomic_load(&f->runs_in_resume), 0);
    assert_int_equal(f->v.completing_runs, frags);
    group_stop(&g);
    group_destroy(&g);
}

/* Two exits: a 16-byte store, or an 8-byte access across a page. */
static void test_pause_completes_2_fragments(void **state)
{
    (void)state;
    pause_completes_fragments(2);
}

/* Three: a 16-byte access 4 bytes before a page boundary (4 + 8 + 4 bytes). */
static void test_pause_completes_3_fragments(void **state)
{
    (void)state;
    pause_completes_fragments(3);
}

/* Many: rep movs between two MMIO addresses, a read and a write per element. */
static void test_pause_completes_64_fragments(void **state)
{
    (void)state;
    pause_completes_fragments(64);
}

/*
 * A completing run that fails (KVM_RUN fails, or the next exit is one the
 * vCPU cannot go on from) ends the thread like any other failed step: the
 * vCPU never parks and never acks PAUSED.
 */
static void pause_failed_completion(unsigned frags, unsigned fail_at)
{
    struct group g;
    struct fake_vcpu *f = pause_in_first_fragment(&g, frags, fail_at);

    assert_int_equal(wait_settled(&g, f), VCPU_EXITED);
    assert_int_equal(f->v.ack_ns, 0); /* never acked PAUSED (its thread has ended) */
    assert_int_equal(atomic_load(&f->resumed), 0);
    assert_int_equal(atomic_load(&f->completions), fail_at);
    assert_int_equal(atomic_load(&f->calls), 1 + fail_at);
    group_stop(&g);
    group_destroy(&g);
}

static void test_pause_failed_first_completion(void **state)
{
    (void)state;
    pause_failed_completion(2, 1);
}

static void test_pause_failed_later_completion(void **state)
{
    (void)state;
    pause_failed_completion(4, 3);
}

/*
 * A chain of exits that does not end (the fake does not bound it as KVM
 * does) keeps the vCPU from parking, but not from stopping: each completing
 * run goes back through the request check.
 */
static void test_stop_during_endless_chain(void **state)
{
    (void)state;
    struct group g;
    struct fake_vcpu *f = pause_in_first_fragment(&g, FRAGS_ENDLESS, 0);

    if (!efd_wait(f->chain_fd))
        fail_msg("the vCPU stopped completing fragments");
    assert_int_equal(vcpu_state(&f->v), VCPU_RUNNING);
    group_stop(&g);
    assert_int_equal(f->v.ack_ns, 0); /* never acked PAUSED (its thread has ended) */
    assert_int_equal(atomic_load(&f->resumed), 0);
    assert_true(atomic_load(&f->completions) >= 1000);
    assert_int_equal(atomic_load(&f->io_calls_ie), atomic_load(&f->completions));
    group_destroy(&g);
}

/*
 * A resume that comes while the vCPU is still completing a chain for the
 * pause lets it go on without parking: the runs after it have no
 * immediate_exit, as for a guest that was never paused.
 */
static void test_resume_during_endless_chain(void **state)
{
    (void)state;
    struct group g;
    struct fake_vcpu *f = pause_in_first_fragment(&g, FRAGS_ENDLESS, 0);

    if (!efd_wait(f->chain_fd))
        fail_msg("the vCPU stopped completing fragments");
    assert_int_equal(atomic_load(&f->completions_free), 0);
    group_clear(&g, VCPU_REQ_PAUSE);
    if (!efd_wait(f->free_fd))
        fail_msg("the vCPU never ran on after the resume");
    assert_int_equal(vcpu_state(&f->v), VCPU_RUNNING);
    group_stop(&g);
    assert_int_equal(f->v.ack_ns, 0); /* never acked PAUSED (its thread has ended) */
    assert_int_equal(atomic_load(&f->resumed), 0);
    group_destroy(&g);
}

/* A pseudo-random delay (0 to a few tens of microseconds), so that requests land at varied points.
 */
static void jitter(uint64_t *rng)
{
    unsigned n = (unsigned)(xorshift64(rng) % 2048);
    for (unsigned i = 0; i < n; i++)
        cpu_relax();
}

/*
 * The race test: many pause/resume cycles against n vCPUs. Every pause must
 * be acknowledged (no lost kick, no lost wake-up of a parked vCPU); each wait
 * fails the test after WAIT_MS.
 *
 * Half of the cycles wait for every vCPU to acknowledge the resume before
 * pausing again. The other half pause again after only a random delay, so the
 * request and its kick race with the vCPU leaving the park, acknowledging,
 * reading its requests and entering its run step: that is where a lost kick
 * hides, and a "block" vCPU that loses one sleeps until the wait fails.
 */
static void kick_race(unsigned n, enum fake_mode mode, unsigned cycles)
{
    struct group g;
    uint64_t rng = 0x853c49e6748fea9bULL;

    group_init(&g, n, mode);
    group_start(&g);
    for (unsigned c = 0; c < cycles; c++) {
        jitter(&rng);
        group_request(&g, VCPU_REQ_PAUSE);
        group_wait(&g, VCPU_PAUSED, "race: pause");
        group_clear(&g, VCPU_REQ_PAUSE);
        if (c % 2)
            group_wait(&g, VCPU_RUNNING, "race: resume");
    }
    /* And a stop racing with a pause. */
    group_request(&g, VCPU_REQ_PAUSE);
    group_stop(&g);

    unsigned long long kicks = 0, sleeps = 0;
    for (unsigned i = 0; i < n; i++) {
        struct fake_vcpu *f = &g.f[i];
        assert_int_equal(f->v.kicks_seen, atomic_load(&f->interrupted));
        assert_int_equal(atomic_load(&f->io_calls), 0);
        /*
         * Every sleep was ended by a kick: the handler ran on this vCPU's
         * thread and set this vCPU's immediate_exit (a sleep ended by
         * anything else, or a handler that stored elsewhere, counts in sleeps
         * only). And a kick ends at most one sleep, so there are at most as
         * many as requests sent while the thread ran: the cycles' pauses, the
         * last pause and the stop.
         */
        assert_int_equal(atomic_load(&f->woken), atomic_load(&f->sleeps));
        assert_true(atomic_load(&f->sleeps) <= cycles + 2);
        kicks += f->v.kicks_seen;
        sleeps += atomic_load(&f->sleeps);
    }
    if (mode != FAKE_SPIN)
        assert_true(sleeps > 0);
    print_message("%u cycles, %u vCPU(s): %llu kicks seen, %llu sleeps\n", cycles, n, kicks,
                  sleeps);
    group_destroy(&g);
}

static void test_kick_race_spin(void **state)
{
    (void)state;
    kick_race(1, FAKE_SPIN, 20000);
}

static void test_kick_race_block(void **state)
{
    (void)state;
    kick_race(1, FAKE_BLOCK, 20000);
}

static void test_kick_race_mixed(void **state)
{
    (void)state;
    kick_race(2, FAKE_MIXED, 10000);
}

/*
 * Waits for the one wake-up a transition's acks give the loop when they are counted
 * (vcpu_ack()): the eventfd's count is exactly 1, every vCPU is already in want when
 * it fires, and no ack is left outstanding.
 */
static void group_wait_once(struct group *g, atomic_uint *pending, enum vcpu_state want,
                            const char *what)
{
    struct pollfd pfd = {.fd = g->notify_fd, .events = POLLIN};
    uint64_t v = 0;
    int n;

    do
        n = poll(&pfd, 1, WAIT_MS);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        fail_msg("%s: the loop was not woken within %d ms", what, WAIT_MS);
    assert_int_equal(read(g->notify_fd, &v, sizeof(v)), sizeof(v));
    if (v != 1)
        fail_msg("%s: %llu wake-ups for one transition, want 1", what, (unsigned long long)v);
    for (unsigned i = 0; i < g->n; i++)
        if (vcpu_state(&g->f[i].v) != want)
            fail_msg("%s: woken while vCPU %u is in state %d, want %d", what, i,
                     vcpu_state(&g->f[i].v), want);
    assert_int_equal(atomic_load(pending), 0);
}

/*
 * With the acks counted, each pause and each resume wakes the loop once, by the last
 * ack, after every vCPU's new state is visible; many cycles on busy and sleeping vCPUs,
 * then a stop (whose EXITED acks always wake it).
 */
static void last_ack_wakes_once(unsigned n, unsigned cycles)
{
    struct group g;
    atomic_uint pending;

    atomic_init(&pending, 0);
    group_init(&g, n, FAKE_MIXED);
    for (unsigned i = 0; i < n; i++)
        g.f[i].v.acks_pending = &pending;
    group_start(&g);
    for (unsigned c = 0; c < cycles; c++) {
        atomic_fetch_add(&pending, n);
        group_request(&g, VCPU_REQ_PAUSE);
        group_wait_once(&g, &pending, VCPU_PAUSED, "pause");
        atomic_fetch_add(&pending, n);
        group_clear(&g, VCPU_REQ_PAUSE);
        group_wait_once(&g, &pending, VCPU_RUNNING, "resume");
    }
    /* A stop while parked: the parked vCPUs leave without a RUNNING ack. */
    atomic_fetch_add(&pending, n);
    group_request(&g, VCPU_REQ_PAUSE);
    group_wait_once(&g, &pending, VCPU_PAUSED, "last pause");
    group_stop(&g);
    assert_int_equal(atomic_load(&pending), 0);
    group_destroy(&g);
}

static void test_last_ack_wakes_once_1(void **state)
{
    (void)state;
    last_ack_wakes_once(1, 2000);
}

static void test_last_ack_wakes_once_2(void **state)
{
    (void)state;
    last_ack_wakes_once(2, 2000);
}

static void test_last_ack_wakes_once_4(void **state)
{
    (void)state;
    last_ack_wakes_once(4, 1000);
}

/*
 * The loop's own ack (vm_start_transition()): counted with the vCPUs' and taken off once
 * every vCPU is asked. Either the loop's was the last (every vCPU acked first, every
 * state is visible, and nothing woke the loop: no spare turn) or the last vCPU wakes it
 * exactly once; never both, never neither. The loop takes its ack at once, or only once
 * every vCPU shows the new state (the case of a vCPU that ran on the loop's CPU).
 */
static void transition_with_own_ack(struct group *g, atomic_uint *pending, enum vcpu_state want,
                                    bool late, unsigned *own_last, const char *what)
{
    if (late) {
        int64_t deadline = now_ms() + WAIT_MS;
        for (unsigned i = 0; i < g->n; i++)
            while (vcpu_state(&g->f[i].v) != want) {
                if (now_ms() > deadline)
                    fail_msg("%s: vCPU %u never reached state %d", what, i, want);
                sched_yield();
            }
    }
    if (vcpu_ack_last(pending)) {
        (*own_last)++;
        for (unsigned i = 0; i < g->n; i++)
            if (vcpu_state(&g->f[i].v) != want)
                fail_msg("%s: the loop's ack was the last, but vCPU %u is in state %d", what, i,
                         vcpu_state(&g->f[i].v));
        struct pollfd pfd = {.fd = g->notify_fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) != 0)
            fail_msg("%s: a vCPU woke the loop although the loop's ack was the last", what);
        assert_int_equal(atomic_load(pending), 0);
    } else {
        group_wait_once(g, pending, want, what);
    }
}

static void own_ack_wakes_at_most_once(unsigned n, unsigned cycles)
{
    struct group g;
    atomic_uint pending;
    unsigned own_last = 0;

    atomic_init(&pending, 0);
    group_init(&g, n, FAKE_MIXED);
    for (unsigned i = 0; i < n; i++)
        g.f[i].v.acks_pending = &pending;
    group_start(&g);
    for (unsigned c = 0; c < cycles; c++) {
        atomic_fetch_add(&pending, n + 1);
        group_request(&g, VCPU_REQ_PAUSE);
        transition_with_own_ack(&g, &pending, VCPU_PAUSED, c % 2, &own_last, "pause");
        atomic_fetch_add(&pending, n + 1);
        group_clear(&g, VCPU_REQ_PAUSE);
        transition_with_own_ack(&g, &pending, VCPU_RUNNING, c % 3 == 0, &own_last, "resume");
    }
    group_stop(&g);
    group_destroy(&g);
    /* Waiting for the states first, then taking the ack, must find it last at times. */
    assert_true(own_last > 0);
}

static void test_own_ack_wakes_at_most_once_1(void **state)
{
    (void)state;
    own_ack_wakes_at_most_once(1, 1000);
}

static void test_own_ack_wakes_at_most_once_2(void **state)
{
    (void)state;
    own_ack_wakes_at_most_once(2, 1000);
}

/*
 * The one piece of work a pause needs (ops->resuming: KVMCLOCK_CTRL) is off the pause's
 * path: nothing at the pause, and at the resume it comes after the RUNNING ack and
 * before the guest is entered again. The work here blocks until the test lets it go:
 * the resume must still be acked meanwhile, no run step may start before it returns,
 * and a vCPU that leaves its park to stop does none.
 */
static void test_resume_work_after_ack_before_guest(void **state)
{
    (void)state;
    struct group g;

    group_init(&g, 1, FAKE_BLOCK);
    struct fake_vcpu *f = &g.f[0];
    f->resume_blocks = true;
    f->report_wait = true;
    group_start(&g);
    group_wait_asleep(&g);
    group_request(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_PAUSED, "pause");
    assert_int_equal(atomic_load(&f->resumed), 0);
    unsigned calls = atomic_load(&f->calls);

    group_clear(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_RUNNING, "resume with its work held");
    if (!efd_wait(f->resume_in_fd))
        fail_msg("the resume's work never started before the guest was entered");
    assert_int_equal(atomic_load(&f->calls), calls);
    efd_signal(f->resume_go_fd);
    group_wait_asleep(&g); /* in the guest again, after the work */
    assert_int_equal(atomic_load(&f->calls), calls + 1);
    assert_int_equal(atomic_load(&f->runs_in_resume), 0);
    assert_int_equal(atomic_load(&f->resumed), 1);
    assert_int_equal(atomic_load(&f->io_errors), 0);

    /* Paused again, then stopped: it leaves the park without the resume's work. */
    f->resume_blocks = false; /* read by the vCPU thread after the request below */
    group_request(&g, VCPU_REQ_PAUSE);
    group_wait(&g, VCPU_PAUSED, "second pause");
    group_stop(&g);
    assert_int_equal(atomic_load(&f->resumed), 1);
    group_destroy(&g);
}

int main(void)
{
    sigset_t kick;

    /* As in petrel: only vCPU threads take SIGRTMIN; this thread keeps it blocked. */
    sigemptyset(&kick);
    sigaddset(&kick, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &kick, NULL);
    vcpu_signal_setup();
    vcpu_signal_setup(); /* idempotent */

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_before_start),
        cmocka_unit_test(test_stop_sleeping_1),
        cmocka_unit_test(test_stop_sleeping_2),
        cmocka_unit_test(test_stop_sleeping_4),
        cmocka_unit_test(test_stop_spinning_1),
        cmocka_unit_test(test_stop_spinning_2),
        cmocka_unit_test(test_stop_spinning_4),
        cmocka_unit_test(test_pause_resume_stop_1),
        cmocka_unit_test(test_pause_resume_stop_2),
        cmocka_unit_test(test_pause_resume_stop_4),
        cmocka_unit_test(test_pause_spinning),
        cmocka_unit_test(test_pause_completes_io),
        cmocka_unit_test(test_pause_completes_2_fragments),
        cmocka_unit_test(test_pause_completes_3_fragments),
        cmocka_unit_test(test_pause_completes_64_fragments),
        cmocka_unit_test(test_pause_failed_first_completion),
        cmocka_unit_test(test_pause_failed_later_completion),
        cmocka_unit_test(test_stop_during_endless_chain),
        cmocka_unit_test(test_resume_during_endless_chain),
        cmocka_unit_test(test_kick_race_spin),
        cmocka_unit_test(test_kick_race_block),
        cmocka_unit_test(test_kick_race_mixed),
        cmocka_unit_test(test_last_ack_wakes_once_1),
        cmocka_unit_test(test_last_ack_wakes_once_2),
        cmocka_unit_test(test_last_ack_wakes_once_4),
        cmocka_unit_test(test_own_ack_wakes_at_most_once_1),
        cmocka_unit_test(test_own_ack_wakes_at_most_once_2),
        cmocka_unit_test(test_resume_work_after_ack_before_guest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
