/*
 * Unit tests for vm_control.c: the VM's run state (Running, Pausing, Paused,
 * Resuming, Stopping) and the answers its pause, resume, power-button and
 * stop requests get, in every state.
 *
 * The seam: a struct vm holding only what vm_control.c touches, whose vCPUs
 * have no thread (vcpu_request() then only publishes the bit). The test plays
 * every vCPU thread: it reads the vCPU's request word and writes its state as
 * vcpu_park() would, then calls vm_control_progress() as the loop does when
 * the notify eventfd fires. Nothing here runs concurrently, so each step and
 * each answer is checked exactly, in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "petrel/acpi_pm.h"
#include "petrel/platform.h"
#include "petrel/vm.h"
#include "fake_irq.h"

#define NR_VCPUS  2
#define MAX_REPLY 80

struct fixture;

/* One control request: how (and in which order) it was answered. */
struct reply {
    struct fixture *f;
    unsigned calls; /* the done callback must run exactly once */
    int err;
    char msg[160];
    unsigned seq;                  /* the fixture's answer counter when it came */
    void (*then)(struct reply *r); /* run inside the callback (a re-entrant request) */
    struct reply *next;            /* what `then` uses */
};

struct fixture {
    struct vm *vm;
    struct vcpu vcpus[NR_VCPUS];
    struct fake_irq sci;
    struct acpi_pm pm; /* the power-button role's device */
    unsigned answers;
    struct reply r[MAX_REPLY];
};

static void done(void *ctx, int err, const char *msg)
{
    struct reply *r = ctx;

    r->calls++;
    r->err = err;
    snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
    r->seq = ++r->f->answers;
    if (r->then)
        r->then(r);
}

static void on_exit_request(void *ctx, enum vm_exit_reason reason, int status)
{
    vm_request_exit(ctx, reason, status, -1, NULL);
}

static bool press_pm(void *dev)
{
    return acpi_pm_power_button(dev);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct vm *vm = calloc(1, sizeof(*vm));

    assert_non_null(f);
    assert_non_null(vm);
    f->vm = vm;
    vm->vcpu_notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(vm->vcpu_notify_fd >= 0);
    vm->base = event_base_new();
    assert_non_null(vm->base);
    pthread_mutex_init(&vm->exit_lock, NULL);
    vm->exit_vcpu = -1;
    vm->vcpus = f->vcpus;
    vm->nr_vcpus = NR_VCPUS;
    for (unsigned i = 0; i < NR_VCPUS; i++) {
        vcpu_init_common(&f->vcpus[i], i, NULL, vm->vcpu_notify_fd);
        atomic_store(&f->vcpus[i].state, VCPU_RUNNING); /* as vcpu_start() leaves it */
    }
    fake_irq_init(&f->sci);
    acpi_pm_init(&f->pm, (struct exit_hook){.fn = on_exit_request, .ctx = vm}, &f->sci.line);
    vm->roles.power_button = press_pm;
    vm->roles.power_button_dev = &f->pm;
    for (unsigned i = 0; i < MAX_REPLY; i++)
        f->r[i].f = f;
    vm->state = VM_RUNNING;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    for (unsigned i = 0; i < MAX_REPLY; i++)
        assert_true(f->r[i].calls <= 1);
    acpi_pm_destroy(&f->pm);
    for (unsigned i = 0; i < NR_VCPUS; i++)
        vcpu_destroy_common(&f->vcpus[i]);
    event_base_free(f->vm->base);
    close(f->vm->vcpu_notify_fd);
    pthread_mutex_destroy(&f->vm->exit_lock);
    free(f->vm);
    free(f);
    return 0;
}

static void pause_(struct fixture *f, unsigned i)
{
    vm_pause(f->vm, done, &f->r[i]);
}

static void resume(struct fixture *f, unsigned i)
{
    vm_resume(f->vm, done, &f->r[i]);
}

static unsigned requests(struct fixture *f, unsigned i)
{
    return atomic_load(&f->vcpus[i].requests);
}

/* vCPU i does what its thread would (vcpu_park() or waking from it), then the loop rescans. */
static void ack(struct fixture *f, unsigned i, enum vcpu_state s)
{
    atomic_store(&f->vcpus[i].state, s);
    vm_control_progress(f->vm);
}

/* vCPU i parks: it only ever does so because the pause bit is set. */
static void park(struct fixture *f, unsigned i)
{
    assert_true(requests(f, i) & VCPU_REQ_PAUSE);
    assert_int_equal(vcpu_state(&f->vcpus[i]), VCPU_RUNNING);
    ack(f, i, VCPU_PAUSED);
}

/* vCPU i wakes from its park: only once the bit is cleared. */
static void wake(struct fixture *f, unsigned i)
{
    assert_false(requests(f, i) & VCPU_REQ_PAUSE);
    assert_int_equal(vcpu_state(&f->vcpus[i]), VCPU_PAUSED);
    ack(f, i, VCPU_RUNNING);
}

static void park_all(struct fixture *f)
{
    for (unsigned i = 0; i < NR_VCPUS; i++)
        park(f, i);
}

static void wake_all(struct fixture *f)
{
    for (unsigned i = 0; i < NR_VCPUS; i++)
        wake(f, i);
}

/* Every vCPU has (or has not) been asked to park. */
static void assert_pause_bits(struct fixture *f, bool set)
{
    for (unsigned i = 0; i < NR_VCPUS; i++)
        assert_int_equal(!!(requests(f, i) & VCPU_REQ_PAUSE), set);
}

static void assert_pending(struct fixture *f, unsigned i)
{
    assert_int_equal(f->r[i].calls, 0);
}

static void assert_answer(struct fixture *f, unsigned i, int err, const char *words, unsigned seq)
{
    struct reply *r = &f->r[i];

    assert_int_equal(r->calls, 1);
    assert_int_equal(r->err, err);
    if (words && !strstr(r->msg, words))
        fail_msg("request %u: message \"%s\" lacks \"%s\"", i, r->msg, words);
    if (seq)
        assert_int_equal(r->seq, seq);
}

static void to_paused(struct fixture *f, unsigned i)
{
    pause_(f, i);
    park_all(f);
    assert_int_equal(f->vm->state, VM_PAUSED);
}

/* --- Running --- */

static void test_running_pause_parks_every_vcpu(void **state)
{
    struct fixture *f = *state;

    pause_(f, 0);
    assert_int_equal(f->vm->state, VM_PAUSING);
    assert_pause_bits(f, true);
    assert_pending(f, 0);
    park(f, 0);
    assert_int_equal(f->vm->state, VM_PAUSING); /* one vCPU still runs the guest */
    assert_pending(f, 0);
    park(f, 1);
    assert_int_equal(f->vm->state, VM_PAUSED);
    assert_answer(f, 0, 0, NULL, 1);
    assert_int_equal(f->vm->pauses, 1);
    /* A rescan with nothing new changes nothing. */
    vm_control_progress(f->vm);
    assert_int_equal(f->vm->state, VM_PAUSED);
    assert_int_equal(f->answers, 1);
}

static void test_running_resume_says_not_paused(void **state)
{
    struct fixture *f = *state;

    resume(f, 0);
    assert_answer(f, 0, -EALREADY, "the VM was not paused", 1);
    assert_int_equal(f->vm->state, VM_RUNNING);
    assert_pause_bits(f, false);
}

/* --- Pausing --- */

static void test_pausing_pause_joins_the_pause(void **state)
{
    struct fixture *f = *state;

    pause_(f, 0);
    park(f, 0);
    pause_(f, 1);
    assert_pending(f, 1);
    park(f, 1);
    assert_int_equal(f->vm->state, VM_PAUSED);
    assert_answer(f, 0, 0, NULL, 1);
    assert_answer(f, 1, 0, NULL, 2);
    assert_int_equal(f->vm->pauses, 1); /* one transition served both */
}

/*
 * A resume while Pausing waits for the pause: the pause's caller learns that
 * every vCPU parked (it did), then the VM resumes for the resume's caller.
 * (It used to cancel the pause, answering its caller 409.)
 */
static void test_pausing_resume_waits_for_the_pause(void **state)
{
    struct fixture *f = *state;

    pause_(f, 0);
    park(f, 0);
    resume(f, 1);
    assert_pending(f, 0);
    assert_pending(f, 1);
    assert_int_equal(f->vm->state, VM_PAUSING);
    assert_pause_bits(f, true); /* the pause goes on: vCPU 1 still parks */
    park(f, 1);
    assert_answer(f, 0, 0, NULL, 1);
    assert_int_equal(f->vm->pauses, 1);
    assert_int_equal(f->vm->state, VM_RESUMING);
    assert_pause_bits(f, false);
    assert_pending(f, 1);
    wake(f, 0);
    assert_pending(f, 1);
    wake(f, 1);
    assert_int_equal(f->vm->state, VM_RUNNING);
    assert_answer(f, 1, 0, NULL, 2);
}

/* --- Paused --- */

static void test_paused_pause_says_already_paused(void **state)
{
    struct fixture *f = *state;

    to_paused(f, 0);
    pause_(f, 1);
    assert_answer(f, 1, -EALREADY, "the VM was already paused", 2);
    assert_int_equal(f->vm->state, VM_PAUSED);
    assert_int_equal(f->vm->pauses, 1);
}

static void test_paused_resume_wakes_every_vcpu(void **state)
{
    struct fixture *f = *state;

    to_paused(f, 0);
    resume(f, 1);
    assert_int_equal(f->vm->state, VM_RESUMING);
    assert_pause_bits(f, false);
    wake(f, 1);
    assert_int_equal(f->vm->state, VM_RESUMING); /* vCPU 0 is still parked */
    assert_pending(f, 1);
    wake(f, 0);
    assert_int_equal(f->vm->state, VM_RUNNING);
    assert_answer(f, 1, 0, NULL, 2);
}

/* A device's pause hook runs once every vCPU is parked; its resume hook before any runs. */
struct hook_dev {
    struct hwdev hw;
    struct fixture *f;
    unsigned pauses, resumes;
    enum vm_state seen_at_pause, seen_at_resume;
};

static void hook_pause(struct hwdev *hw)
{
    struct hook_dev *d = container_of(hw, struct hook_dev, hw);
    d->pauses++;
    d->seen_at_pause = d->f->vm->state;
    assert_int_equal(atomic_load(&d->f->vcpus[0].state), VCPU_PAUSED);
    assert_int_equal(atomic_load(&d->f->vcpus[1].state), VCPU_PAUSED);
}

static void hook_resume(struct hwdev *hw)
{
    struct hook_dev *d = container_of(hw, struct hook_dev, hw);
    d->resumes++;
    d->seen_at_resume = d->f->vm->state;
    /* No vCPU has been let go yet: the pause request is still up on both. */
    assert_pause_bits(d->f, true);
}

static void hook_destroy(struct hwdev *hw)
{
    (void)hw;
}

static const struct hwdev_ops hook_ops = {
    .type = "hooks", .pause = hook_pause, .resume = hook_resume, .destroy = hook_destroy};

static void test_device_hooks_follow_the_vcpus(void **state)
{
    struct fixture *f = *state;
    struct hook_dev d = {.f = f};

    hwdev_list_init(&f->vm->devices);
    hwdev_init(&d.hw, &hook_ops, NULL, "hooks");
    hwdev_list_add(&f->vm->devices, &d.hw);
    pause_(f, 0);
    park(f, 0);
    assert_int_equal(d.pauses, 0); /* vCPU 1 still runs */
    park(f, 1);
    assert_int_equal(d.pauses, 1);
    assert_int_equal(d.seen_at_pause, VM_PAUSED);
    resume(f, 1);
    assert_int_equal(d.resumes, 1);
    assert_int_equal(d.seen_at_resume, VM_RESUMING);
    wake(f, 0);
    wake(f, 1);
    assert_int_equal(f->vm->state, VM_RUNNING);
    assert_int_equal(d.pauses, 1);
    assert_int_equal(d.resumes, 1);
    hwdev_list_init(&f->vm->devices);
}

/* --- Resuming --- */

static void test_resuming_resume_joins_the_resume(void **state)
{
    struct fixture *f = *state;

    to_paused(f, 0);
    resume(f, 1);
    wake(f, 0);
    resume(f, 2);
    assert_pending(f, 2);
    wake(f, 1);
    assert_answer(f, 1, 0, NULL, 2);
    assert_answer(f, 2, 0, NULL, 3);
    assert_int_equal(f->vm->state, VM_RUNNING);
}

/*
 * A pause while Resuming waits for the resume: the resume's callers are
 * answered only once every vCPU runs again (they used to be told at once,
 * although no vCPU had run), then the VM pauses again for the pause.
 */
static void test_resuming_pause_waits_for_the_resume(void **state)
{
    struct fixture *f = *state;

    to_paused(f, 0);
    resume(f, 1);
    wake(f, 0);
    pause_(f, 2);
    assert_pending(f, 1);
    assert_pending(f, 2);
    assert_int_equal(f->vm->state, VM_RESUMING);
    assert_false(requests(f, 1) & VCPU_REQ_PAUSE); /* vCPU 1 may still wake */
    wake(f, 1);
    assert_answer(f, 1, 0, NULL, 2);
    assert_int_equal(f->vm->state, VM_PAUSING);
    assert_pause_bits(f, true);
    assert_pending(f, 2);
    park_all(f);
    assert_answer(f, 2, 0, NULL, 3);
    assert_int_equal(f->vm->state, VM_PAUSED);
    assert_int_equal(f->vm->pauses, 2);
}

/*
 * Requests are served in the order they came, one transition at a time;
 * each joins the one before it when it asks for the same state.
 */
static void test_requests_are_served_in_order(void **state)
{
    struct fixture *f = *state;

    pause_(f, 0); /* Running -> Pausing */
    resume(f, 1); /* queued behind the pause */
    resume(f, 2); /* joins 1 */
    pause_(f, 3); /* queued behind the resume */
    pause_(f, 4); /* joins 3 */
    resume(f, 5); /* queued behind the pause */
    assert_int_equal(f->answers, 0);
    park_all(f);
    assert_answer(f, 0, 0, NULL, 1);
    assert_int_equal(f->vm->state, VM_RESUMING);
    wake_all(f);
    assert_answer(f, 1, 0, NULL, 2);
    assert_answer(f, 2, 0, NULL, 3);
    assert_int_equal(f->vm->state, VM_PAUSING);
    park_all(f);
    assert_answer(f, 3, 0, NULL, 4);
    assert_answer(f, 4, 0, NULL, 5);
    assert_int_equal(f->vm->state, VM_RESUMING);
    assert_pending(f, 5);
    wake_all(f);
    assert_answer(f, 5, 0, NULL, 6);
    assert_int_equal(f->vm->state, VM_RUNNING);
    assert_int_equal(f->vm->pauses, 2);
}

/* --- Stopping --- */

static void stop(struct fixture *f)
{
    vm_request_exit(f->vm, VM_EXIT_STOP, 0, -1, NULL);
    vm_control_progress(f->vm);
    assert_int_equal(f->vm->state, VM_STOPPING);
    for (unsigned i = 0; i < NR_VCPUS; i++)
        assert_true(requests(f, i) & VCPU_REQ_STOP);
}

/* The loop ends only once every vCPU has left its thread. */
static void assert_stops(struct fixture *f)
{
    assert_false(event_base_got_break(f->vm->base));
    ack(f, 0, VCPU_EXITED);
    assert_false(event_base_got_break(f->vm->base));
    ack(f, 1, VCPU_EXITED);
    assert_true(event_base_got_break(f->vm->base));
    assert_int_equal(f->vm->state, VM_STOPPING);
}

static void test_stop_from_running(void **state)
{
    struct fixture *f = *state;

    stop(f);
    assert_int_equal(f->answers, 0);
    assert_stops(f);
}

/* Every request waiting, the current transition's and the queued ones, learns it will not happen.
 */
static void test_stop_while_pausing_answers_every_waiter(void **state)
{
    struct fixture *f = *state;

    pause_(f, 0);
    park(f, 0);
    resume(f, 1);
    pause_(f, 2);
    stop(f);
    assert_answer(f, 0, -ESHUTDOWN, "stopping", 0);
    assert_answer(f, 1, -ESHUTDOWN, "stopping", 0);
    assert_answer(f, 2, -ESHUTDOWN, "stopping", 0);
    assert_int_equal(f->r[0].seq, 1); /* in the order they came */
    assert_int_equal(f->r[2].seq, 3);
    assert_stops(f);
}

static void test_stop_while_paused(void **state)
{
    struct fixture *f = *state;

    to_paused(f, 0);
    stop(f);
    assert_int_equal(f->answers, 1);
    /* The parked vCPUs see the stop bit with the pause bit still set. */
    assert_stops(f);
}

static void test_stop_while_resuming(void **state)
{
    struct fixture *f = *state;

    to_paused(f, 0);
    resume(f, 1);
    wake(f, 0);
    stop(f);
    assert_answer(f, 1, -ESHUTDOWN, "stopping", 2);
    assert_stops(f);
}

static void test_stopping_refuses_pause_and_resume(void **state)
{
    struct fixture *f = *state;

    stop(f);
    pause_(f, 0);
    resume(f, 1);
    assert_answer(f, 0, -ESHUTDOWN, "stopping", 1);
    assert_answer(f, 1, -ESHUTDOWN, "stopping", 2);
    /* A second exit request changes nothing: the first reason stays. */
    vm_request_exit(f->vm, VM_EXIT_POWEROFF, 3, -1, NULL);
    assert_int_equal(f->vm->exit_reason, VM_EXIT_STOP);
    assert_int_equal(f->vm->exit_status, 0);
    assert_stops(f);
}

/* --- what the VM will settle in --- */

static void test_goal_in_every_state(void **state)
{
    struct fixture *f = *state;
    struct vm *vm = f->vm;

    assert_int_equal(vm_control_goal(vm), VM_RUNNING);
    pause_(f, 0);
    assert_int_equal(vm_control_goal(vm), VM_PAUSED); /* Pausing */
    resume(f, 1);
    assert_int_equal(vm_control_goal(vm), VM_RUNNING); /* Pausing, a resume queued */
    pause_(f, 2);
    assert_int_equal(vm_control_goal(vm), VM_PAUSED);
    park_all(f);
    assert_int_equal(vm->state, VM_RESUMING);
    assert_int_equal(vm_control_goal(vm), VM_PAUSED); /* Resuming, a pause queued */
    wake_all(f);
    park_all(f);
    assert_int_equal(vm->state, VM_PAUSED);
    assert_int_equal(vm_control_goal(vm), VM_PAUSED);
    resume(f, 3);
    assert_int_equal(vm_control_goal(vm), VM_RUNNING); /* Resuming */
    stop(f);
    assert_int_equal(vm_control_goal(vm), VM_STOPPING);
}

/* --- the power button --- */

static void press(struct fixture *f, int err, const char *words)
{
    const char *msg = "unset";

    assert_int_equal(vm_power_button(f->vm, &msg), err);
    if (!words)
        return;
    if (!msg || !strstr(msg, words))
        fail_msg("power button: message \"%s\" lacks \"%s\"", msg ? msg : "(null)", words);
}

/* The guest's PM1_EN write, as its ACPI driver makes it. */
static void guest_enables_power_button(struct fixture *f)
{
    f->pm.dev.ops->write(&f->pm.dev, 2, PM1_PWRBTN_EN, 2);
}

static uint64_t pm1_sts(struct fixture *f)
{
    return f->pm.dev.ops->read(&f->pm.dev, 0, 2);
}

/* A press the guest never enabled is refused, and nothing is latched for later. */
static void test_power_button_not_enabled_is_refused(void **state)
{
    struct fixture *f = *state;

    press(f, -EOPNOTSUPP, "has not enabled the ACPI power button");
    assert_int_equal(pm1_sts(f), 0);
    guest_enables_power_button(f);
    assert_false(f->sci.level); /* no stale press shows up once it is enabled */
    press(f, 0, NULL);
    assert_true(f->sci.level);
    assert_int_equal(pm1_sts(f), PM1_PWRBTN_STS);
}

/* Refused in every state but Running, saying which state it is; nothing pressed. */
static void test_power_button_names_the_state(void **state)
{
    struct fixture *f = *state;

    guest_enables_power_button(f);
    pause_(f, 0);
    press(f, -EBUSY, "the VM is Pausing");
    park_all(f);
    press(f, -EBUSY, "the VM is Paused");
    resume(f, 1);
    press(f, -EBUSY, "the VM is Resuming");
    wake_all(f);
    assert_int_equal(pm1_sts(f), 0);
    assert_false(f->sci.level);
    press(f, 0, NULL);
    assert_true(f->sci.level);
    stop(f);
    press(f, -ESHUTDOWN, "the VM is stopping");
}

/* --- limits and corners --- */

static void test_too_many_waiting_requests(void **state)
{
    struct fixture *f = *state;

    assert_true(VM_MAX_WAITERS + 1 < MAX_REPLY);
    for (unsigned i = 0; i < VM_MAX_WAITERS; i++)
        pause_(f, i);
    pause_(f, VM_MAX_WAITERS);
    assert_answer(f, VM_MAX_WAITERS, -EBUSY, "the VM is Pausing and 64 control requests", 1);
    park_all(f);
    for (unsigned i = 0; i < VM_MAX_WAITERS; i++)
        assert_answer(f, i, 0, NULL, i + 2);
}

/* A callback that asks again (as Ctrl-A p's could) queues behind what already waits. */
static void resume_again(struct reply *r)
{
    vm_resume(r->f->vm, done, r->next);
}

static void test_a_callback_may_request_again(void **state)
{
    struct fixture *f = *state;

    f->r[0].then = resume_again;
    f->r[0].next = &f->r[2];
    pause_(f, 0);
    pause_(f, 1);
    park_all(f);
    /* 0's callback ran between 0 and 1's: its resume started, 1 still got its answer. */
    assert_answer(f, 0, 0, NULL, 1);
    assert_answer(f, 1, 0, NULL, 2);
    assert_int_equal(f->vm->state, VM_RESUMING);
    assert_pending(f, 2);
    wake_all(f);
    assert_answer(f, 2, 0, NULL, 3);
    assert_int_equal(f->vm->state, VM_RUNNING);
}

/* A vCPU without a thread (never started, or gone) holds no transition up. */
static void test_vcpus_without_a_thread_do_not_hold_it_up(void **state)
{
    struct fixture *f = *state;

    atomic_store(&f->vcpus[1].state, VCPU_CREATED);
    pause_(f, 0);
    park(f, 0);
    assert_answer(f, 0, 0, NULL, 1);
    atomic_store(&f->vcpus[0].state, VCPU_EXITED);
    resume(f, 1); /* no vCPU has to ack: done before vm_resume() returns */
    assert_answer(f, 1, 0, NULL, 2);
    assert_int_equal(f->vm->state, VM_RUNNING);
}

/* GET /vm's counters: completed pauses, and the kick's and the resume's times. */
static void test_info_counts_transitions(void **state)
{
    struct fixture *f = *state;
    struct vm_info info;

    uint64_t t0 = vm_now_ns();
    to_paused(f, 0);
    uint64_t t1 = vm_now_ns();
    resume(f, 1);
    wake_all(f);
    uint64_t t2 = vm_now_ns();
    vm_get_info(f->vm, &info);
    assert_int_equal(info.state, VM_RUNNING);
    assert_int_equal(info.vcpus, NR_VCPUS);
    assert_int_equal(info.pauses, 1);
    /* Each time runs from its request to its last ack, both inside the bracket. */
    assert_true(info.last_kick_ns <= t1 - t0);
    assert_true(info.last_resume_ns <= t2 - t1);
}

/* --- Events (GET /events hears them through vm->on_event) --- */

struct heard {
    char text[512]; /* "name[:detail] " for each event, in order */
};

static void hear(void *ctx, enum vm_event ev, const char *detail)
{
    struct heard *h = ctx;
    size_t n = strlen(h->text);

    snprintf(h->text + n, sizeof(h->text) - n, "%s%s%s ", vm_event_name(ev), detail ? ":" : "",
             detail ? detail : "");
}

/* paused and resumed once per transition (a joined request adds none), stopping at the end. */
static void test_events_follow_the_transitions(void **state)
{
    struct fixture *f = *state;
    struct heard h = {""};

    f->vm->on_event = hear;
    f->vm->on_event_ctx = &h;
    pause_(f, 0);
    park(f, 0);
    assert_string_equal(h.text, ""); /* not before every vCPU is parked */
    pause_(f, 1);
    park(f, 1);
    assert_string_equal(h.text, "paused ");
    assert_answer(f, 0, 0, NULL, 1);
    resume(f, 2);
    wake(f, 0);
    assert_string_equal(h.text, "paused ");
    wake(f, 1);
    assert_string_equal(h.text, "paused resumed ");
    /* Nothing to do: no event. */
    resume(f, 3);
    assert_string_equal(h.text, "paused resumed ");
    stop(f);
    assert_string_equal(h.text, "paused resumed stopping:stop ");
    assert_stops(f);
    assert_string_equal(h.text, "paused resumed stopping:stop ");
}

/* What the guest did comes first, then stopping with the reason. */
static void test_events_say_what_the_guest_did(void **state)
{
    struct fixture *f = *state;
    struct heard h = {""};

    f->vm->on_event = hear;
    f->vm->on_event_ctx = &h;
    vm_request_exit(f->vm, VM_EXIT_POWEROFF, 0, -1, NULL);
    vm_request_exit(f->vm, VM_EXIT_CRASH, 3, 0, "too late: the first request wins");
    vm_control_progress(f->vm);
    vm_control_progress(f->vm);
    assert_string_equal(h.text, "guest_poweroff stopping:poweroff ");
}

static void test_events_crash_carries_its_detail(void **state)
{
    struct fixture *f = *state;
    struct heard h = {""};

    f->vm->on_event = hear;
    f->vm->on_event_ctx = &h;
    pause_(f, 0);
    vm_request_exit(f->vm, VM_EXIT_CRASH, 3, 1, "triple fault (KVM_EXIT_SHUTDOWN)");
    vm_control_progress(f->vm);
    assert_string_equal(h.text, "guest_crash:triple fault (KVM_EXIT_SHUTDOWN) stopping:crash ");
    assert_answer(f, 0, -ESHUTDOWN, "stopping", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_running_pause_parks_every_vcpu),
        T(test_running_resume_says_not_paused),
        T(test_pausing_pause_joins_the_pause),
        T(test_pausing_resume_waits_for_the_pause),
        T(test_paused_pause_says_already_paused),
        T(test_paused_resume_wakes_every_vcpu),
        T(test_resuming_resume_joins_the_resume),
        T(test_resuming_pause_waits_for_the_resume),
        T(test_requests_are_served_in_order),
        T(test_stop_from_running),
        T(test_stop_while_pausing_answers_every_waiter),
        T(test_stop_while_paused),
        T(test_stop_while_resuming),
        T(test_stopping_refuses_pause_and_resume),
        T(test_goal_in_every_state),
        T(test_power_button_not_enabled_is_refused),
        T(test_power_button_names_the_state),
        T(test_too_many_waiting_requests),
        T(test_a_callback_may_request_again),
        T(test_vcpus_without_a_thread_do_not_hold_it_up),
        T(test_info_counts_transitions),
        T(test_device_hooks_follow_the_vcpus),
        T(test_events_follow_the_transitions),
        T(test_events_say_what_the_guest_did),
        T(test_events_crash_carries_its_detail),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
