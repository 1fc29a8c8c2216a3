/* vCPU threads: the request/ack state machine and the SIGRTMIN kick. */
#include "petrel/vcpu.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "petrel/sandbox.h"

/*
 * The kvm_run page of the vCPU running on this thread, for the signal
 * handler: the one piece of thread-global state in petrel.
 */
static _Thread_local struct kvm_run *volatile vcpu_tls_run;

/* SIGRTMIN handler: make this thread's KVM_RUN return (or not start). Nothing else. */
static void vcpu_kick_handler(int sig)
{
    (void)sig;
    struct kvm_run *run = vcpu_tls_run;
    if (run)
        ((volatile struct kvm_run *)run)->immediate_exit = 1;
}

static pthread_once_t vcpu_signal_once = PTHREAD_ONCE_INIT;

static void vcpu_signal_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = vcpu_kick_handler;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: KVM_RUN must come back with -EINTR, not be restarted. */
    sigaction(SIGRTMIN, &sa, NULL);
}

void vcpu_signal_setup(void)
{
    pthread_once(&vcpu_signal_once, vcpu_signal_install);
}

void vcpu_init_common(struct vcpu *v, unsigned id, const struct vcpu_ops *ops, int notify_fd)
{
    v->id = id;
    v->ops = ops;
    v->notify_fd = notify_fd;
    atomic_init(&v->requests, 0);
    atomic_init(&v->state, VCPU_CREATED);
    atomic_init(&v->debug_stop, false);
    pthread_mutex_init(&v->park_lock, NULL);
    pthread_cond_init(&v->park_cond, NULL);
}

void vcpu_destroy_common(struct vcpu *v)
{
    pthread_mutex_destroy(&v->park_lock);
    pthread_cond_destroy(&v->park_cond);
}

/* CLOCK_MONOTONIC in nanoseconds, for the steps of a pause. */
static uint64_t vcpu_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Takes one ack off *pending; true when the loop must be woken: the count reached
 * zero, or it already was zero (an ack nobody counted: waking the loop is always safe,
 * it rescans every state).
 */
bool vcpu_ack_last(atomic_uint *pending)
{
    unsigned n = atomic_load(pending);

    while (n && !atomic_compare_exchange_weak(pending, &n, n - 1))
        ;
    return n <= 1;
}

/*
 * Tells the loop that this vCPU's state changed.
 *
 * One wake-up per transition, and never a lost one: before it asks for a transition,
 * the loop adds to *acks_pending one ack for each vCPU that will make it (a thread that
 * has not exited); each of those stores its new state and only then takes its ack off
 * the count. The ack that brings the count to zero is the last one taken off, after
 * every counted state was stored, and it writes the eventfd: the loop, woken, sees every
 * vCPU in its new state. A transition starts only once the previous one settled, but a
 * vCPU may still be between its store and its decrement then (the loop saw the state);
 * that decrement counts toward the next transition instead, whose count still reaches
 * zero only with the last ack outstanding. A vCPU that leaves its loop (the VM is
 * stopping then) never takes its ack off: its EXITED ack always writes, and so does
 * vm_request_exit().
 *
 * The loop counts one more ack, its own, and takes it off once it has asked every vCPU
 * (vm_start_transition()): if that brings the count to zero, every vCPU acked while it
 * was still asking (a woken vCPU often runs at once on the loop's CPU) and none wrote,
 * and the loop, which scans the states next, needs no wake-up; otherwise the last vCPU
 * wakes it as above. A spare wake-up costs the loop a turn (epoll_wait, the eventfd's
 * read, a scan) after its answer, before the client is back on a shared CPU.
 */
static void vcpu_ack(struct vcpu *v, enum vcpu_state state)
{
    uint64_t one = 1;

    atomic_store(&v->state, state);
    if (state != VCPU_EXITED && v->acks_pending && !vcpu_ack_last(v->acks_pending))
        return;
    /* An eventfd write only fails on counter overflow; the loop rescans every state anyway. */
    ssize_t n = write(v->notify_fd, &one, sizeof(one));
    (void)n;
}

/*
 * Parks the vCPU until the loop clears VCPU_REQ_PAUSE (or asks it to stop).
 * Only called with no port/MMIO exit pending (see vcpu_complete_exit()), so
 * the registers a snapshot reads are consistent.
 *
 * Nothing is done between the PAUSED ack and the wait: the loop answers the pause as
 * soon as every vCPU is out of the guest, and a vCPU that still had work to do would
 * keep a shared CPU from the loop and the client until it slept. The one piece of work
 * a pause needs, telling a kvmclock guest it was stopped (ops->resuming:
 * KVMCLOCK_CTRL, 40-70 us in a nested L1), is done when the vCPU leaves the park to run
 * again, after its RUNNING ack and before it enters the guest: the guest sees it at
 * that entry either way, and a vCPU woken to stop needs none.
 */
static void vcpu_park(struct vcpu *v)
{
    v->ack_ns = vcpu_now_ns();
    vcpu_ack(v, VCPU_PAUSED);
    pthread_mutex_lock(&v->park_lock);
    unsigned req;
    while (((req = atomic_load(&v->requests)) & (VCPU_REQ_PAUSE | VCPU_REQ_STOP)) == VCPU_REQ_PAUSE)
        pthread_cond_wait(&v->park_cond, &v->park_lock);
    pthread_mutex_unlock(&v->park_lock);
    /* Woken to stop: no RUNNING ack (the loop counted none), the EXITED one follows. */
    if (req & VCPU_REQ_STOP)
        return;
    vcpu_ack(v, VCPU_RUNNING);
    if (v->ops->resuming)
        v->ops->resuming(v);
}

/*
 * Completes a port/MMIO exit already handled, without entering the guest: one
 * KVM_RUN with immediate_exit set, KVM's documented way (Cloud Hypervisor does
 * the same before it saves a vCPU).
 *
 * KVM runs the completion (complete_userspace_io, in kvm_arch_vcpu_ioctl_run()
 * of arch/x86/kvm/x86.c) *before* it looks at immediate_exit, and the
 * completion may end in a new exit instead of -EINTR: the next 8 bytes of a
 * 16-byte SSE access, the part of an access on the next page, the write of a
 * read-modify-write (or, xchg) whose read just completed, the next element of
 * a rep string instruction (movs between two MMIO addresses). That exit has
 * been handled when this returns, and io_pending is set again: vcpu_loop()
 * completes again, and parks only once no exit is pending.
 *
 * How long that goes on is KVM's to bound, and it does: one instruction's
 * access is a few fragments (8 bytes per exit, at most two pages), and a rep
 * string instruction goes back through guest entry, where immediate_exit
 * stops it, at the latest every 1024 iterations (x86_emulate_insn() in
 * arch/x86/kvm/emulate.c), with RCX/RSI/RDI at an iteration boundary: an
 * architectural state, as when an interrupt is taken in the middle of a rep.
 * So petrel sets no bound of its own (one could only choose between parking
 * in the middle of an instruction and not parking at all). Each completion
 * goes back through the loop's request check, so a STOP ends a chain at any
 * fragment, and a resume lets the vCPU simply run on.
 */
static enum vcpu_step vcpu_complete_exit(struct vcpu *v)
{
    ((volatile struct kvm_run *)v->run)->immediate_exit = 1;
    enum vcpu_step step = v->ops->run(v);
    v->completing_runs++;
    if (step != VCPU_STEP_EXIT && v->io_pending)
        v->completing_runs_chained++;
    return step;
}

/*
 * The vCPU loop and the kick's ordering argument.
 *
 * The loop publishes a request (atomic OR into v->requests, seq_cst) *before*
 * it sends SIGRTMIN; the handler sets run->immediate_exit = 1. Here, each
 * iteration clears immediate_exit, issues a full fence, reads the requests and
 * only then enters KVM_RUN. Whenever the signal lands:
 *  - before the clear: its request was published before the signal, so the
 *    read after the fence sees it;
 *  - after the clear but before/inside KVM_RUN: immediate_exit is 1 (or the
 *    signal is pending), so KVM_RUN returns -EINTR at once and the next
 *    iteration reads the request.
 * The fence keeps the clear from being ordered after the read; without it a
 * request could be missed while the handler's store was also overwritten.
 * So no request is ever lost, with no polling, timeouts or resent signals.
 * A completing KVM_RUN (vcpu_complete_exit()) sets immediate_exit itself: it
 * never enters the guest, so it cannot sleep through a kick, and a request
 * that comes during it is read by the next iteration like any other.
 *
 * Any step that fails (VCPU_STEP_EXIT, the VM already told why) ends the
 * thread, a completing one included: a vCPU that could not complete its exit
 * does not park.
 */
static void vcpu_loop(struct vcpu *v)
{
    bool pausing = false; /* this pause's request was seen (its out_ns is set) */

    for (;;) {
        ((volatile struct kvm_run *)v->run)->immediate_exit = 0;
        atomic_thread_fence(memory_order_seq_cst);
        unsigned req = atomic_load(&v->requests);
        if (req & VCPU_REQ_STOP)
            return;
        if ((req & VCPU_REQ_PAUSE) && !pausing)
            v->out_ns = vcpu_now_ns();
        pausing = req & VCPU_REQ_PAUSE;
        enum vcpu_step step;
        if (!(req & VCPU_REQ_PAUSE)) {
            step = v->ops->run(v);
            if (step == VCPU_STEP_INTERRUPTED)
                v->kicks_seen++;
        } else if (v->io_pending) {
            step = vcpu_complete_exit(v);
        } else {
            vcpu_park(v);
            pausing = false; /* resumed: the next pause is a new one, even if already asked */
            continue;
        }
        if (step == VCPU_STEP_EXIT)
            return;
    }
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    sigset_t kick;

    sigemptyset(&kick);
    sigaddset(&kick, SIGRTMIN);
    vcpu_tls_run = v->run;
    /* Every other signal stays blocked (inherited): they are the main thread's. */
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    /* Named by itself: prctl(), where naming it from the loop opens /proc/self/task/ID/comm. */
    char name[16];
    snprintf(name, sizeof(name), "petrel-vcpu%u", v->id);
    pthread_setname_np(pthread_self(), name);

    sandbox_enter_or_die(SANDBOX_VCPU);
    atomic_store(&v->tid, (int)gettid());
    vcpu_loop(v);
    atomic_store(&v->tid, 0); /* before the thread can end: see vcpu_request() */

    pthread_sigmask(SIG_BLOCK, &kick, NULL);
    vcpu_tls_run = NULL;
    vcpu_ack(v, VCPU_EXITED);
    return NULL;
}

int vcpu_start(struct vcpu *v)
{
    atomic_store(&v->state, VCPU_RUNNING);
    v->pid = getpid();
    int err = pthread_create(&v->thread, NULL, vcpu_thread, v);
    if (err) {
        atomic_store(&v->state, VCPU_CREATED);
        return -err;
    }
    v->thread_started = true;
    return 0;
}

int vcpu_request(struct vcpu *v, unsigned req)
{
    atomic_fetch_or(&v->requests, req);
    if (!v->thread_started)
        return 0;
    /*
     * Wake a parked vCPU for STOP; the lock pairs with the check in vcpu_park(). PAUSE
     * needs no wake-up: a parked vCPU's PAUSE bit is already set, and setting it again
     * changes nothing its wait looks at. A vCPU held at a debug stop, though, waits in
     * vcpu_wait_request() for PAUSE too: its debug_stop store (seq_cst) and the
     * fetch_or above order it, so either this load sees it and wakes the wait, or
     * the vCPU's own check under the lock sees the request and does not wait.
     */
    if ((req & VCPU_REQ_STOP) || atomic_load(&v->debug_stop)) {
        pthread_mutex_lock(&v->park_lock);
        pthread_cond_broadcast(&v->park_cond);
        pthread_mutex_unlock(&v->park_lock);
    }
    v->kick_ns = vcpu_now_ns();
    /*
     * The kick is a raw tgkill() to the thread's id: pthread_kill() costs three more
     * system calls (it blocks every signal around its own tgkill and asks getpid()),
     * each a trip through two layers of emulation in a nested guest. The id is read
     * while the thread runs its loop (it clears it before it can end), and only the
     * loop starts threads (vCPUs, disk and snapshot workers): so between this load and
     * the tgkill no new thread of petrel can have been given the same id. A thread not
     * yet running its loop (0) gets pthread_kill(), which is safe whatever its state.
     */
    int tid = atomic_load(&v->tid);
    if (tid > 0) {
        if (syscall(SYS_tgkill, v->pid, tid, SIGRTMIN) == 0 || errno == ESRCH)
            return 0;
        return -errno;
    }
    int err = pthread_kill(v->thread, SIGRTMIN);
    if (err == ESRCH)
        return 0; /* the thread already left; its EXITED ack is on the way */
    return -err;
}

void vcpu_wait_request(struct vcpu *v)
{
    pthread_mutex_lock(&v->park_lock);
    while (!(atomic_load(&v->requests) & (VCPU_REQ_PAUSE | VCPU_REQ_STOP)))
        pthread_cond_wait(&v->park_cond, &v->park_lock);
    pthread_mutex_unlock(&v->park_lock);
}

void vcpu_clear_request(struct vcpu *v, unsigned req)
{
    atomic_fetch_and(&v->requests, ~req);
    pthread_mutex_lock(&v->park_lock);
    pthread_cond_broadcast(&v->park_cond);
    pthread_mutex_unlock(&v->park_lock);
}

void vcpu_join(struct vcpu *v)
{
    if (v->thread_started) {
        pthread_join(v->thread, NULL);
        v->thread_started = false;
    }
}
