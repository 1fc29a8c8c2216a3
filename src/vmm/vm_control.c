/*
 * The VM's run state on the loop: pause, resume and stop through the kick,
 * completing each request once every vCPU has acknowledged.
 *
 *   RUNNING --pause--> PAUSING --all parked--> PAUSED --resume--> RESUMING
 *      ^                  |                                          |
 *      +------------------+--resume (cancels the pause)              |
 *      +------------------------------all running--------------------+
 *   any state --exit request--> STOPPING --all exited--> the loop ends
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
    ssize_t n = write(vm->vcpu_notify_fd, &one, sizeof(one));
    (void)n; /* fails only on counter overflow: the loop is awake anyway */
}

/* Ends every waiting request with err (the transition finished or was overtaken). */
static void vm_complete_waiters(struct vm *vm, int err, const char *msg)
{
    /* A callback may start a new transition and wait again: work on a copy. */
    struct vm_waiter w[VM_MAX_WAITERS];
    unsigned n = vm->nr_waiters;

    memcpy(w, vm->waiters, n * sizeof(w[0]));
    vm->nr_waiters = 0;
    for (unsigned i = 0; i < n; i++)
        w[i].fn(w[i].ctx, err, msg);
}

static void vm_add_waiter(struct vm *vm, vm_done_fn *done, void *ctx)
{
    if (vm->nr_waiters == VM_MAX_WAITERS) {
        done(ctx, -EBUSY, "too many control requests are waiting");
        return;
    }
    vm->waiters[vm->nr_waiters++] = (struct vm_waiter){.fn = done, .ctx = ctx};
}

/* True when every vCPU with a thread is in one of the given states (or gone). */
static bool vm_all_vcpus(struct vm *vm, enum vcpu_state a, enum vcpu_state b)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        enum vcpu_state s = vcpu_state(&vm->vcpus[i]);
        if (s != a && s != b && s != VCPU_EXITED && s != VCPU_CREATED)
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

void vm_control_progress(struct vm *vm)
{
    pthread_mutex_lock(&vm->exit_lock);
    bool exiting = vm->exit_reason != VM_EXIT_NONE;
    pthread_mutex_unlock(&vm->exit_lock);

    if (exiting && vm->state != VM_STOPPING) {
        vm->state = VM_STOPPING;
        vm_complete_waiters(vm, -ESHUTDOWN, "the VM is stopping");
        /* A parked vCPU wakes for STOP too (vcpu_request broadcasts its condition). */
        vm_request_all(vm, VCPU_REQ_STOP);
    }
    switch (vm->state) {
    case VM_PAUSING:
        if (vm_all_vcpus(vm, VCPU_PAUSED, VCPU_PAUSED)) {
            vm->state = VM_PAUSED;
            vm->last_kick_ns = vm_now_ns() - vm->transition_start_ns;
            vm->pauses++;
            vm_complete_waiters(vm, 0, NULL);
        }
        break;
    case VM_RESUMING:
        if (vm_all_vcpus(vm, VCPU_RUNNING, VCPU_RUNNING)) {
            vm->state = VM_RUNNING;
            vm->last_resume_ns = vm_now_ns() - vm->transition_start_ns;
            vm_complete_waiters(vm, 0, NULL);
        }
        break;
    case VM_STOPPING:
        if (vm_all_vcpus(vm, VCPU_EXITED, VCPU_EXITED))
            event_base_loopbreak(vm->base);
        break;
    default:
        break;
    }
}

void vm_pause(struct vm *vm, vm_done_fn *done, void *ctx)
{
    switch (vm->state) {
    case VM_STOPPING:
        done(ctx, -ESHUTDOWN, "the VM is stopping");
        return;
    case VM_PAUSED:
        done(ctx, -EALREADY, "the VM was already paused");
        return;
    case VM_PAUSING:
        vm_add_waiter(vm, done, ctx);
        return;
    case VM_RESUMING:
        /* The resume is overtaken: its callers see it done, this pause takes over. */
        vm_complete_waiters(vm, 0, NULL);
        /* fall through */
    case VM_RUNNING:
        vm->state = VM_PAUSING;
        vm->transition_start_ns = vm_now_ns();
        vm_add_waiter(vm, done, ctx);
        vm_request_all(vm, VCPU_REQ_PAUSE);
        vm_control_progress(vm); /* no vCPU thread at all: done at once */
        return;
    }
}

void vm_resume(struct vm *vm, vm_done_fn *done, void *ctx)
{
    switch (vm->state) {
    case VM_STOPPING:
        done(ctx, -ESHUTDOWN, "the VM is stopping");
        return;
    case VM_RUNNING:
        done(ctx, -EALREADY, "the VM was not paused");
        return;
    case VM_RESUMING:
        vm_add_waiter(vm, done, ctx);
        return;
    case VM_PAUSING:
        vm_complete_waiters(vm, -ECANCELED, "a resume came before every vCPU had parked");
        /* fall through */
    case VM_PAUSED:
        vm->state = VM_RESUMING;
        vm->transition_start_ns = vm_now_ns();
        vm_add_waiter(vm, done, ctx);
        vm_clear_all(vm, VCPU_REQ_PAUSE);
        vm_control_progress(vm);
        return;
    }
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
    info->console_buffered = outbuf_len(&vm->console.buf);
    info->console_capacity = vm->console.buf.cap;
    info->console_dropped = vm->console.dropped;
}
