/*
 * The VM's run state on the loop: pause, resume and stop through the kick,
 * completing each request once every vCPU has acknowledged.
 *
 *   RUNNING --pause--> PAUSING --all parked--> PAUSED --resume--> RESUMING
 *      ^                                                             |
 *      +------------------------------all running--------------------+
 *   any state --exit request--> STOPPING --all exited--> the loop ends
 *
 * A request that comes during a transition never changes its course: it
 * joins it (same goal) or waits for it and the ones queued before it.
 *
 * Acks arrive as writes to vm->vcpu_notify_fd; vm_control_progress() rescans
 * every vCPU's state, so a lost or merged eventfd count cannot lose an ack.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "petrel/vm.h"

uint64_t vm_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

const char *vm_state_name(enum vm_state state)
{
    switch (state) {
    case VM_RUNNING:
        return "Running";
    case VM_PAUSING:
        return "Pausing";
    case VM_PAUSED:
        return "Paused";
    case VM_RESUMING:
        return "Resuming";
    case VM_STOPPING:
        return "Stopping";
    }
    return "Unknown";
}

const char *vm_event_name(enum vm_event ev)
{
    switch (ev) {
    case VM_EVENT_PAUSED:
        return "paused";
    case VM_EVENT_RESUMED:
        return "resumed";
    case VM_EVENT_STOPPING:
        return "stopping";
    case VM_EVENT_POWEROFF:
        return "guest_poweroff";
    case VM_EVENT_RESET:
        return "guest_reset";
    case VM_EVENT_CRASH:
        return "guest_crash";
    case VM_EVENT_CONSOLE_ATTACHED:
        return "console_attached";
    case VM_EVENT_CONSOLE_DETACHED:
        return "console_detached";
    case VM_EVENT_DEVICE_NEEDS_RESET:
        return "device_needs_reset";
    }
    return "unknown";
}

const char *vm_exit_reason_name(enum vm_exit_reason reason)
{
    switch (reason) {
    case VM_EXIT_NONE:
        return "none";
    case VM_EXIT_DEBUG:
        return "debug_exit";
    case VM_EXIT_RESET:
        return "reset";
    case VM_EXIT_POWEROFF:
        return "poweroff";
    case VM_EXIT_CRASH:
        return "crash";
    case VM_EXIT_SIGNAL:
        return "signal";
    case VM_EXIT_QUIT:
        return "quit";
    case VM_EXIT_STOP:
        return "stop";
    case VM_EXIT_ERROR:
        return "error";
    }
    return "unknown";
}

void vm_emit(struct vm *vm, enum vm_event ev, const char *detail)
{
    if (vm->on_event)
        vm->on_event(vm->on_event_ctx, ev, detail);
}

/* The events of a VM that starts to stop: what the guest did, if that is why, then stopping. */
static void vm_emit_stopping(struct vm *vm)
{
    char detail[sizeof(vm->exit_detail)];

    pthread_mutex_lock(&vm->exit_lock);
    enum vm_exit_reason reason = vm->exit_reason;
    memcpy(detail, vm->exit_detail, sizeof(detail));
    pthread_mutex_unlock(&vm->exit_lock);
    if (reason == VM_EXIT_POWEROFF)
        vm_emit(vm, VM_EVENT_POWEROFF, NULL);
    else if (reason == VM_EXIT_RESET)
        vm_emit(vm, VM_EVENT_RESET, NULL);
    else if (reason == VM_EXIT_CRASH)
        vm_emit(vm, VM_EVENT_CRASH, detail[0] ? detail : NULL);
    vm_emit(vm, VM_EVENT_STOPPING, vm_exit_reason_name(reason));
}

void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int status, int vcpu_id,
                     const char *detail)
{
    uint64_t one = 1;

    pthread_mutex_lock(&vm->exit_lock);
    if (vm->exit_reason == VM_EXIT_NONE) {
        vm->exit_reason = reason;
        vm->exit_status = status;
        vm->exit_vcpu = vcpu_id;
        snprintf(vm->exit_detail, sizeof(vm->exit_detail), "%s", detail ? detail : "");
    }
    pthread_mutex_unlock(&vm->exit_lock);
    atomic_store(&vm->exit_requested, true);
    ssize_t n = write(vm->vcpu_notify_fd, &one, sizeof(one));
    (void)n; /* fails only on counter overflow: the loop is awake anyway */
}

/*
 * Requests wait in vm->waiters in the order they came, each with the state it
 * asks for. The VM makes one transition at a time, toward the first waiter's
 * goal; when it settles there, every waiter at the head with that goal is
 * answered (they joined the same transition), and the next waiter's goal, if
 * any, starts the next transition. So no request overtakes or cancels
 * another, and a success means the transition the caller asked for happened
 * after the request came.
 */

/* Answers a batch of requests taken off the queue, in order. */
static void vm_answer(struct vm_waiter *w, unsigned n, int err, const char *msg)
{
    for (unsigned i = 0; i < n; i++)
        w[i].fn(w[i].ctx, err, msg);
}

/* True when every vCPU with a thread is in the given state (or gone). */
static bool vm_all_vcpus(struct vm *vm, enum vcpu_state want)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        enum vcpu_state s = vcpu_state(&vm->vcpus[i]);
        if (s != want && s != VCPU_EXITED && s != VCPU_CREATED)
            return false;
    }
    return true;
}

static void vm_request_all(struct vm *vm, unsigned req)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        int err = vcpu_request(&vm->vcpus[i], req);
        if (err)
            fprintf(stderr, "petrel: cannot kick vCPU %u: %s\n", i, strerror(-err));
    }
}

static void vm_clear_all(struct vm *vm, unsigned req)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vcpu_clear_request(&vm->vcpus[i], req);
}

/*
 * Counts the acks a transition waits for (every vCPU thread not gone), before any vCPU
 * is asked, plus the loop's own, taken off once every vCPU is asked: the last of them
 * wakes the loop, unless it is the loop's own (vcpu_ack() in vcpu.c has the argument).
 */
static void vm_count_acks(struct vm *vm)
{
    unsigned n = 0;

    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        enum vcpu_state s = vcpu_state(&vm->vcpus[i]);
        if (vm->vcpus[i].thread_started && s != VCPU_EXITED && s != VCPU_CREATED)
            n++;
    }
    atomic_fetch_add(&vm->acks_pending, n + 1);
}

/* Starts the transition from a settled state toward goal (VM_PAUSED or VM_RUNNING). */
static void vm_start_transition(struct vm *vm, enum vm_state goal)
{
    vm->transition_start_ns = vm_now_ns();
    vm->wakes = 0;
    vm_count_acks(vm);
    if (goal == VM_PAUSED) {
        vm->state = VM_PAUSING;
        vm_request_all(vm, VCPU_REQ_PAUSE);
    } else {
        vm->state = VM_RESUMING;
        hwdev_list_resume(&vm->devices); /* before a vCPU can touch them */
        vm_clear_all(vm, VCPU_REQ_PAUSE);
    }
    /* The loop's own ack: every caller scans the vCPUs' states next (vm_control_progress()). */
    (void)vcpu_ack_last(&vm->acks_pending);
}

/*
 * The VM has settled in vm->state: takes the waiters that asked for it off
 * the head of the queue, starts the next transition if one is queued, then
 * answers them (a callback may queue a new request: it goes to the tail).
 */
static void vm_settle(struct vm *vm)
{
    struct vm_waiter w[VM_MAX_WAITERS];
    unsigned n = 0;
    bool paused = vm->state == VM_PAUSED;

    while (n < vm->nr_waiters && vm->waiters[n].goal == vm->state)
        n++;
    memcpy(w, vm->waiters, n * sizeof(w[0]));
    vm->nr_waiters -= n;
    memmove(vm->waiters, vm->waiters + n, vm->nr_waiters * sizeof(w[0]));
    if (vm->nr_waiters)
        vm_start_transition(vm, vm->waiters[0].goal);
    vm_answer(w, n, 0, NULL);
    if (paused)
        vm->steps.replied_ns = vm_now_ns();
}

/* Keeps the steps of the pause that just completed (every vCPU has acked). */
static void vm_note_steps(struct vm *vm)
{
    struct vm_steps *st = &vm->steps;

    memset(st, 0, sizeof(*st));
    st->request_ns = vm->pause_request_ns;
    st->nr_vcpus = vm->nr_vcpus < VM_STEPS_VCPUS ? vm->nr_vcpus : VM_STEPS_VCPUS;
    for (unsigned i = 0; i < st->nr_vcpus; i++) {
        const struct vcpu *v = &vm->vcpus[i];
        st->kick_ns[i] = v->kick_ns;
        st->out_ns[i] = v->out_ns;
        st->ack_ns[i] = v->ack_ns;
    }
    st->woken_ns = vm->wake_ns;
    st->wakes = vm->wakes;
    st->settled_ns = vm_now_ns();
}

void vm_kick_histogram_add(struct vm *vm, uint64_t ns)
{
    unsigned b = 0;
    for (uint64_t us = ns / 1000; us && b < VM_KICK_BUCKETS - 1; us >>= 1)
        b++;
    vm->kick_hist[b]++;
}

void vm_control_progress(struct vm *vm)
{
    pthread_mutex_lock(&vm->exit_lock);
    bool exiting = vm->exit_reason != VM_EXIT_NONE;
    pthread_mutex_unlock(&vm->exit_lock);

    if (exiting && vm->state != VM_STOPPING) {
        struct vm_waiter w[VM_MAX_WAITERS];
        unsigned n = vm->nr_waiters;

        vm->state = VM_STOPPING;
        vm->stop_start_ns = vm_now_ns();
        trace_control(&vm->trace, TRACE_OP_STOP, 0);
        memcpy(w, vm->waiters, n * sizeof(w[0]));
        vm->nr_waiters = 0;
        /* A parked vCPU wakes for STOP too (vcpu_request broadcasts its condition). */
        vm_request_all(vm, VCPU_REQ_STOP);
        vm_emit_stopping(vm);
        vm_answer(w, n, -ESHUTDOWN, "the VM is stopping");
    }
    /* A settled transition may start the next one, which may be done at once. */
    for (;;) {
        switch (vm->state) {
        case VM_PAUSING:
            if (!vm_all_vcpus(vm, VCPU_PAUSED))
                return;
            vm->state = VM_PAUSED;
            vm->last_kick_ns = vm_now_ns() - vm->transition_start_ns;
            vm_note_steps(vm);
            vm->pauses++;
            vm_kick_histogram_add(vm, vm->last_kick_ns);
            trace_control(&vm->trace, TRACE_OP_PAUSE, vm->last_kick_ns);
            hwdev_list_pause(&vm->devices); /* hooks return at once: nothing waits for I/O */
            vm_emit(vm, VM_EVENT_PAUSED, NULL);
            vm_settle(vm);
            break;
        case VM_RESUMING:
            if (!vm_all_vcpus(vm, VCPU_RUNNING))
                return;
            vm->state = VM_RUNNING;
            vm->last_resume_ns = vm_now_ns() - vm->transition_start_ns;
            trace_control(&vm->trace, TRACE_OP_RESUME, vm->last_resume_ns);
            vm_emit(vm, VM_EVENT_RESUMED, NULL);
            vm_settle(vm);
            break;
        case VM_STOPPING:
            if (vm_all_vcpus(vm, VCPU_EXITED)) {
                if (!vm->stopped_traced)
                    trace_control(&vm->trace, TRACE_OP_STOPPED, vm_now_ns() - vm->stop_start_ns);
                vm->stopped_traced = true;
                event_base_loopbreak(vm->base);
            }
            return;
        default:
            return;
        }
    }
}

enum vm_state vm_control_goal(struct vm *vm)
{
    if (vm->state == VM_STOPPING)
        return VM_STOPPING;
    if (vm->nr_waiters)
        return vm->waiters[vm->nr_waiters - 1].goal;
    /* Not reached: a transition always has a waiter. */
    if (vm->state == VM_PAUSING)
        return VM_PAUSED;
    if (vm->state == VM_RESUMING)
        return VM_RUNNING;
    return vm->state;
}

/* Queues a request for goal (VM_PAUSED or VM_RUNNING); see the comment above vm_answer(). */
static void vm_control_request(struct vm *vm, enum vm_state goal, vm_done_fn *done, void *ctx)
{
    char msg[96];

    if (vm->state == VM_STOPPING) {
        done(ctx, -ESHUTDOWN, "the VM is stopping");
        return;
    }
    if (goal == VM_RUNNING && vm->snapshot) {
        done(ctx, -EBUSY, "a snapshot is being written: resume once it is done");
        return;
    }
    if (!vm->nr_waiters && vm->state == goal) {
        done(ctx, -EALREADY,
             goal == VM_PAUSED ? "the VM was already paused" : "the VM was not paused");
        return;
    }
    if (vm->nr_waiters == VM_MAX_WAITERS) {
        snprintf(msg, sizeof(msg), "the VM is %s and %u control requests are already waiting",
                 vm_state_name(vm->state), VM_MAX_WAITERS);
        done(ctx, -EBUSY, msg);
        return;
    }
    vm->waiters[vm->nr_waiters++] = (struct vm_waiter){.fn = done, .ctx = ctx, .goal = goal};
    if (vm->nr_waiters == 1) {
        vm_start_transition(vm, goal);
        vm_control_progress(vm); /* no vCPU thread at all: done at once */
    }
}

void vm_pause(struct vm *vm, vm_done_fn *done, void *ctx)
{
    if (!vm->nr_waiters)
        vm->pause_request_ns = vm_now_ns();
    vm_control_request(vm, VM_PAUSED, done, ctx);
}

void vm_resume(struct vm *vm, vm_done_fn *done, void *ctx)
{
    vm_control_request(vm, VM_RUNNING, done, ctx);
}

int vm_power_button(struct vm *vm, const char **msg)
{
    switch (vm->state) {
    case VM_RUNNING:
        break;
    case VM_PAUSING:
        *msg = "the VM is Pausing: a paused guest cannot answer the power button; resume it first";
        return -EBUSY;
    case VM_PAUSED:
        *msg = "the VM is Paused: a paused guest cannot answer the power button; resume it first";
        return -EBUSY;
    case VM_RESUMING:
        *msg = "the VM is Resuming: press the power button once it is Running";
        return -EBUSY;
    case VM_STOPPING:
        *msg = "the VM is stopping";
        return -ESHUTDOWN;
    }
    if (!vm->roles.power_button || !vm->roles.power_button(vm->roles.power_button_dev)) {
        *msg = "the guest has not enabled the ACPI power button (no ACPI, or not that far in "
               "its boot): it would not see a press, so none was made";
        return -EOPNOTSUPP;
    }
    *msg = NULL;
    return 0;
}

int vm_send_keys(struct vm *vm, const uint8_t *scancodes, size_t len)
{
    if (vm->state == VM_STOPPING)
        return -ESHUTDOWN;
    if (!vm->roles.keys)
        return -ENODEV;
    return vm->roles.keys(vm->roles.keys_dev, scancodes, len);
}

void vm_get_info(struct vm *vm, struct vm_info *info)
{
    memset(info, 0, sizeof(*info));
    info->state = vm->state;
    info->vcpus = vm->nr_vcpus;
    info->memory = vm->cfg.memory;
    info->uptime_s = vm->start_ns ? (double)(vm_now_ns() - vm->start_ns) / 1e9 : 0;
    info->pauses = vm->pauses;
    info->last_kick_ns = vm->last_kick_ns;
    info->last_resume_ns = vm->last_resume_ns;
    info->steps = vm->steps;
    info->console_buffered = outbuf_len(&vm->console.buf);
    info->console_capacity = vm->console.buf.cap;
    info->console_dropped = vm->console.dropped;
}
