/*
 * Why a VM ends, and the hook through which a device asks for it. Devices
 * (debug-exit, i8042 reset, ACPI) call the hook on a vCPU thread; the VM turns
 * the first request into a stop of every vCPU on the loop.
 */
#ifndef PETREL_EXIT_H
#define PETREL_EXIT_H

enum vm_exit_reason {
    VM_EXIT_NONE = 0,
    VM_EXIT_DEBUG,    /* the guest wrote to the debug-exit port */
    VM_EXIT_RESET,    /* the guest reset the machine (i8042, ACPI, KVM system event) */
    VM_EXIT_POWEROFF, /* the guest powered off */
    VM_EXIT_CRASH,    /* triple fault, failed entry, emulation failure */
    VM_EXIT_SIGNAL,   /* petrel got SIGINT, SIGTERM or SIGHUP */
    VM_EXIT_QUIT,     /* the user pressed Ctrl-A x */
    VM_EXIT_STOP,     /* a client asked petrel to stop (API, petrel stop) */
    VM_EXIT_ERROR,    /* petrel itself failed (KVM_RUN error, an unexpected exit) */
};

/* petrel's exit statuses (documented in `petrel run --help` and docs/). */
#define PETREL_STATUS_OK      0
#define PETREL_STATUS_ERROR   1   /* petrel failed: bad input, set-up or KVM error */
#define PETREL_STATUS_USAGE   2   /* bad command line */
#define PETREL_STATUS_CRASHED 3   /* the guest crashed (triple fault, emulation failure) */
#define PETREL_STATUS_SIGNAL  128 /* + the signal's number */

struct exit_hook {
    void (*fn)(void *ctx, enum vm_exit_reason reason, int status);
    void *ctx;
};

static inline void exit_hook_call(const struct exit_hook *h, enum vm_exit_reason reason, int status)
{
    if (h && h->fn)
        h->fn(h->ctx, reason, status);
}

#endif
