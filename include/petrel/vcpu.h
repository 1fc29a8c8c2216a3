/*
 * vCPU threads and the kick.
 *
 * Each vCPU thread is the only caller of KVM_RUN on its vCPU. The loop talks to
 * it through an atomic request word and SIGRTMIN (vcpu_request()); the vCPU
 * answers by changing its state and writing the VM's notify eventfd. The
 * ordering argument that makes a lost kick impossible is next to vcpu_loop()
 * in vcpu.c.
 */
#ifndef PETREL_VCPU_H
#define PETREL_VCPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/kvm.h>

#include "petrel/util.h"

struct vm;
struct vcpu;

/* Requests, set by the loop with vcpu_request(), cleared by the loop too. */
#define VCPU_REQ_STOP  (1U << 0) /* leave the thread for good */
#define VCPU_REQ_PAUSE (1U << 1) /* park until the bit is cleared */

/* States, written only by the vCPU thread and read by the loop. */
enum vcpu_state {
    VCPU_CREATED = 0, /* no thread yet */
    VCPU_RUNNING,     /* in or around KVM_RUN */
    VCPU_PAUSED,      /* parked: out of the guest, state consistent */
    VCPU_EXITED,      /* the thread has left its loop; join it */
};

/* What one KVM_RUN (or a unit test's stand-in) tells the vCPU loop. */
enum vcpu_step {
    VCPU_STEP_CONTINUE,    /* handled an exit; enter again */
    VCPU_STEP_INTERRUPTED, /* -EINTR: kicked, or immediate_exit was set */
    VCPU_STEP_EXIT,        /* the vCPU cannot go on (the VM is told why) */
};

struct vcpu_ops {
    enum vcpu_step (*run)(struct vcpu *v);
    /*
     * Optional: called on the vCPU thread when it leaves a pause to run the guest again,
     * after its RUNNING ack and before it enters the guest (not when it leaves to stop):
     * the work a pause needs, kept off the pause's path (see vcpu_park()).
     */
    void (*resuming)(struct vcpu *v);
};

/*
 * Counters for GET /stats: written by the vCPU thread alone (a relaxed load and
 * store, vcpu_stat_add()), read by the loop at any time.
 */
#define VCPU_STAT_REASONS 64 /* KVM_EXIT_* below this are counted one by one */
struct vcpu_stats {
    _Atomic uint64_t exits[VCPU_STAT_REASONS]; /* by run->exit_reason (the last: any above) */
    _Atomic uint64_t interrupted;              /* KVM_RUN returned -EINTR: a kick, a signal */
    _Atomic uint64_t guest_ns;                 /* time inside KVM_RUN */
};

static inline void vcpu_stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

struct vcpu {
    struct vm *vm; /* NULL in unit tests */
    const struct vcpu_ops *ops;
    unsigned id;
    int fd;
    struct kvm_run *run; /* mmap()ed; run->immediate_exit is the kick's target */
    size_t run_size;
    int notify_fd; /* eventfd the vCPU acks through (the VM's) */
    /*
     * The VM's count of acks not yet in (see vcpu_ack()): only the ack that brings it
     * to zero writes notify_fd, so a transition wakes the loop once. NULL: every ack
     * writes (unit tests of a single vCPU).
     */
    atomic_uint *acks_pending;

    pthread_t thread;     /* loop only */
    bool thread_started;  /* loop only */
    pid_t pid;            /* getpid() at vcpu_start(), for the kick's tgkill; loop only */
    atomic_int tid;       /* the thread's id while it runs its loop, else 0; see vcpu_request() */
    atomic_uint requests; /* VCPU_REQ_*; see vcpu_loop() for the protocol */
    atomic_int state;     /* enum vcpu_state; written by the vCPU thread */

    pthread_mutex_t park_lock; /* with park_cond: a parked vCPU sleeps here */
    pthread_cond_t park_cond;

    /*
     * vCPU thread only: a port/MMIO exit was handled and completes on the next
     * KVM_RUN (which may return the next fragment's exit and set it again).
     * A pause parks only while it is false.
     */
    bool io_pending;
    /*
     * A KVM_EXIT_DEBUG (a breakpoint, watchpoint or single step; only with
     * --gdb): the vCPU thread writes debug, then sets debug_stop (seq_cst) and
     * waits in vcpu_wait_request() until the loop pauses (or stops) the VM; the
     * loop reads debug after seeing debug_stop, and clears debug_stop while
     * the vCPU is parked.
     */
    struct kvm_debug_exit_arch debug;
    atomic_bool debug_stop;
    struct vcpu_stats stats;
    /*
     * The steps of the last pause (CLOCK_MONOTONIC ns), for GET /vm's pause.steps:
     * kick_ns is the loop's (its signal sent); out_ns (the request seen out of
     * KVM_RUN) and ack_ns (the PAUSED ack sent) the vCPU thread's, written before its
     * PAUSED state store, which publishes them to the loop (read there once it has
     * seen the state, until the next transition). A parked vCPU sleeps right after its ack.
     */
    uint64_t kick_ns, out_ns, ack_ns;
    /* Statistics, vCPU thread only (read once the thread is joined): */
    unsigned long long kicks_seen;              /* KVM_RUNs cut short */
    unsigned long long completing_runs;         /* KVM_RUNs that completed an exit before a park */
    unsigned long long completing_runs_chained; /* ... and returned the next exit instead */
};

/* Installs the SIGRTMIN handler (idempotent, process-wide). */
void vcpu_signal_setup(void);

/* Prepares the common fields; fd/run are the caller's (KVM or a test). */
void vcpu_init_common(struct vcpu *v, unsigned id, const struct vcpu_ops *ops, int notify_fd);
void vcpu_destroy_common(struct vcpu *v);

/* Starts the thread. Call with every signal blocked so the thread inherits that. */
int vcpu_start(struct vcpu *v) MUST_CHECK;

/*
 * Publishes req and kicks the thread out of KVM_RUN (loop only). Returns 0 or
 * the negative errno of pthread_kill(); a thread that already exited is fine.
 */
int vcpu_request(struct vcpu *v, unsigned req);

/*
 * Takes one ack off *pending (the VM's count, see vcpu_ack() in vcpu.c); true when it was
 * the last (the count reached zero) or none was counted: then whoever took it wakes or
 * scans. vCPU threads, and the loop for its own count.
 */
bool vcpu_ack_last(atomic_uint *pending);

/* Clears request bits (resume) and wakes a parked vCPU. Loop only. */
void vcpu_clear_request(struct vcpu *v, unsigned req);

static inline enum vcpu_state vcpu_state(struct vcpu *v)
{
    return (enum vcpu_state)atomic_load(&v->state);
}

/*
 * vCPU thread only: blocks until the loop sets VCPU_REQ_PAUSE or
 * VCPU_REQ_STOP (a debug stop waits here for the pause that stops every vCPU).
 */
void vcpu_wait_request(struct vcpu *v);

/* Waits for an exited thread. */
void vcpu_join(struct vcpu *v);

/* KVM's run step: KVM_RUN and exit handling (used by struct vm's vCPUs). */
extern const struct vcpu_ops vcpu_kvm_ops;

#endif
