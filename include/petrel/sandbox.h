/*
 * Per-thread seccomp filters: each of petrel's threads, once its set-up is done and
 * before it handles anything a guest or a client controls, narrows itself to the
 * system calls its role needs (src/base/sandbox_policy.c lists each with its reason):
 *
 *   vcpu  KVM_RUN and the few ioctls a device emulated on a vCPU thread makes
 *   blk   a block worker's preadv/pwritev/fdatasync/fallocate
 *   job   a worker the loop starts for a blocking job (a snapshot's files)
 *   loop  the main thread's event loop: the API, the console, the devices
 *
 * Filters are per thread (no TSYNC): a thread another sandboxed thread creates
 * (the loop's job workers) inherits its creator's filter and adds its own, so it
 * may only do what both allow.
 *
 * A call outside a thread's list ends petrel (mode on): a SIGSYS handler writes
 * one line naming the call and the thread, then exits with status 1. Mode log lets
 * the call through and has the kernel log it (SECCOMP_RET_LOG: dmesg / the audit
 * log), to find a missing call without a dead VM; off installs nothing.
 *
 * The filters are one policy for the process, chosen once by sandbox_init() on the
 * main thread before any other thread exists (the BPF programs themselves are made
 * at build time) and read-only afterwards: thread start
 * functions in base/ and virtio/ apply it without knowing the VM, and the SIGSYS
 * handler must reach the names of system calls. That is the only global state here.
 */
#ifndef PETREL_SANDBOX_H
#define PETREL_SANDBOX_H

#include "petrel/util.h"

enum sandbox_mode {
    SANDBOX_ON,  /* a forbidden call ends petrel with a message */
    SANDBOX_LOG, /* a forbidden call is logged by the kernel and allowed (petrel run's default
                    for now: the Linux suite's two_vcpus does not pass with on yet) */
    SANDBOX_OFF, /* no filter */
};

enum sandbox_role {
    SANDBOX_LOOP,
    SANDBOX_VCPU,
    SANDBOX_BLK,
    SANDBOX_JOB,
    SANDBOX_ROLES,
};

/* "on", "log" or "off"; -EINVAL otherwise. */
int sandbox_mode_parse(const char *s, enum sandbox_mode *mode);

/* What the loop needs besides, by the VM's configuration. */
#define SANDBOX_NET_USER (1u << 0) /* --net user: libslirp's host sockets */
#define SANDBOX_NET_TAP  (1u << 1) /* --net tap: the tap's offloads */
#define SANDBOX_VARIANTS 4         /* the loop's programs: one per combination of the flags */

/*
 * Chooses every role's filter for mode and flags (from the programs made at build
 * time) and installs the SIGSYS handler. Called once,
 * on the main thread, before any thread starts. 0, or -errno with a message.
 */
int sandbox_init(enum sandbox_mode mode, unsigned flags, struct errbuf *eb) MUST_CHECK;

/*
 * Narrows the calling thread to role's filter (unblocking SIGSYS, so that a
 * violation reaches the handler). A no-op before sandbox_init() or with mode off.
 * 0 or -errno.
 */
int sandbox_enter(enum sandbox_role role) MUST_CHECK;

/*
 * sandbox_enter() for a worker that has no way to report: a failure (which only
 * running out of kernel memory can cause) ends petrel with a message, rather than
 * leave the thread unfiltered or its work undone.
 */
void sandbox_enter_or_die(enum sandbox_role role);

/* The role's name, for messages ("vcpu"). */
const char *sandbox_role_name(enum sandbox_role role);

/* System call nr's name ("openat"), or NULL for a number petrel's table lacks. */
const char *sandbox_syscall_name(int nr);

#endif
