/*
 * A virtual machine: the KVM VM, guest memory, the buses and devices, the
 * vCPUs, and the libevent loop that owns everything asynchronous.
 *
 * vm_create() builds it (nothing runs yet), vm_run() starts the vCPUs and runs
 * the loop on the calling thread until the VM ends, vm_destroy() frees it.
 * Anything may ask the VM to end with vm_request_exit(); the loop then stops
 * every vCPU through the kick (vcpu_request(VCPU_REQ_STOP)) and returns once
 * all have acknowledged.
 */
#ifndef PETREL_VM_H
#define PETREL_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <event2/event.h>
#include <linux/kvm.h>

#include "petrel/bus.h"
#include "petrel/config.h"
#include "petrel/console.h"
#include "petrel/console_in.h"
#include "petrel/exit.h"
#include "petrel/guest_mem.h"
#include "petrel/hwdev.h"
#include "petrel/irq.h"
#include "petrel/irq_routing.h"
#include "petrel/loader.h"
#include "petrel/pci.h"
#include "petrel/trace.h"
#include "petrel/util.h"
#include "petrel/vcpu.h"
#include "petrel/x86_boot.h"

enum vm_state {
    VM_RUNNING,
    VM_PAUSING,  /* every vCPU has been asked to park; waiting for acks */
    VM_PAUSED,   /* every vCPU is parked, out of the guest */
    VM_RESUMING, /* parked vCPUs were woken; waiting for acks */
    VM_STOPPING, /* every vCPU has been asked to stop; waiting for acks */
};

/*
 * How a control request (pause, resume) ends: err is 0, or -EALREADY when
 * there was nothing to do (msg says so), or another -errno with msg.
 */
typedef void vm_done_fn(void *ctx, int err, const char *msg);

struct vm_waiter {
    vm_done_fn *fn;
    void *ctx;
    enum vm_state goal; /* VM_PAUSED or VM_RUNNING */
};

#define VM_MAX_WAITERS  64
#define VM_KICK_BUCKETS 24

/* What happened to the VM, for clients that wait for it (GET /events): see vm_event_name(). */
enum vm_event {
    VM_EVENT_PAUSED,             /* every vCPU parked */
    VM_EVENT_RESUMED,            /* every vCPU running again */
    VM_EVENT_STOPPING,           /* the VM is ending (detail: why, as vm_exit_reason_name()) */
    VM_EVENT_POWEROFF,           /* the guest powered off */
    VM_EVENT_RESET,              /* the guest reset the machine (petrel ends) */
    VM_EVENT_CRASH,              /* the guest crashed (detail: what happened) */
    VM_EVENT_CONSOLE_ATTACHED,   /* a `petrel console` client attached */
    VM_EVENT_CONSOLE_DETACHED,   /* ... and left */
    VM_EVENT_DEVICE_NEEDS_RESET, /* a device asks its driver for a reset (detail: which, why) */
};

/* Called on the loop for each event; detail may be NULL. */
typedef void vm_event_fn(void *ctx, enum vm_event ev, const char *detail);

/* vCPUs whose steps a pause keeps (the first ones). */
#define VM_STEPS_VCPUS 8

/*
 * The steps of the last completed pause, CLOCK_MONOTONIC ns (0: not reached), for
 * GET /vm's pause.steps: where the time goes between the request and the reply.
 */
struct vm_steps {
    uint64_t request_ns;              /* vm_pause() called (the request parsed, on the loop) */
    uint64_t kick_ns[VM_STEPS_VCPUS]; /* the loop sent vCPU i its signal */
    uint64_t out_ns[VM_STEPS_VCPUS];  /* vCPU i saw the request, out of KVM_RUN */
    uint64_t ack_ns[VM_STEPS_VCPUS];  /* vCPU i acked */
    uint64_t woken_ns;                /* the loop woke for the ack that completed the pause */
    uint64_t settled_ns;              /* the loop saw every vCPU parked */
    uint64_t replied_ns; /* the request's answer (the HTTP reply) handed to its connection */
    unsigned wakes;      /* loop wake-ups by vCPU acks during the pause */
    unsigned nr_vcpus;   /* how many of the arrays are filled */
};

/* What `petrel status` and the API report. */
struct vm_info {
    enum vm_state state;
    unsigned vcpus;
    uint64_t memory;
    double uptime_s;
    uint64_t pauses;         /* completed pauses */
    uint64_t last_kick_ns;   /* the last pause: request on the loop -> every vCPU parked */
    uint64_t last_resume_ns; /* the last resume: request -> every vCPU running */
    struct vm_steps steps;   /* the last pause's steps */
    size_t console_buffered; /* guest output waiting for the console reader */
    size_t console_capacity;
    uint64_t console_dropped; /* output the console's reader did not take (a full pty) */
};

struct vm_snap;

struct vm {
    struct vm_config cfg;
    int kvm_fd;
    int vm_fd;
    /* KVM_CREATE_VM's thread (vm.c, vm_creator()) while set-up goes on; its errno. */
    pthread_t creator;
    bool creator_started;
    int create_err;
    struct guest_mem mem;
    struct bus pio;
    struct bus mmio;
    struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, patched per vCPU */

    struct loader loader;   /* only while vm_create() runs: the kernel and initrd */
    uint64_t entry;         /* where vCPU 0 starts (the loaded kernel's entry point) */
    const char *kernel_via; /* how the kernel booted (a static string), for --stats */
    uint64_t kernel_ns[4];  /* its key, cache read, starting the filler; load into memory */

    struct vcpu *vcpus;
    unsigned nr_vcpus;
    int vcpu_notify_fd; /* eventfd: vCPUs ack state changes and exits here */
    /*
     * Devices that asked for a reset (host.device_needs_reset, any thread), for the
     * loop to tell GET /events' clients: notices[0, nr_notices) under notice_lock,
     * the loop woken through vcpu_notify_fd; what did not fit is counted.
     */
    pthread_mutex_t notice_lock;
    char notices[8][256];
    unsigned nr_notices, notices_lost;
    atomic_uint acks_pending; /* acks counted by the loop, taken off by vCPUs (vcpu_ack()) */

    struct event_base *base;
    struct event *ev_vcpu;
    struct event *ev_signals[3];
    enum vm_state state;                      /* loop only, like everything down to the console */
    struct vm_waiter waiters[VM_MAX_WAITERS]; /* in arrival order: the current transition's, */
    unsigned nr_waiters;                      /* then queued ones (vm_control.c) */
    uint64_t transition_start_ns;
    uint64_t start_ns;
    uint64_t pauses, last_kick_ns, last_resume_ns;
    /* Pause kick times: bucket 0 under 1 us, bucket b in [2^(b-1), 2^b) us, the last above. */
    uint64_t kick_hist[VM_KICK_BUCKETS];
    uint64_t stop_start_ns;
    bool stopped_traced;

    /* Event tracing (trace.h): every hook tests trace.flags. */
    struct trace trace;
    struct vm_steps steps;     /* the last completed pause's, from its request to its reply */
    uint64_t wake_ns;          /* the loop's last wake-up by a vCPU ack */
    unsigned wakes;            /* ... and how many during the current transition */
    uint64_t pause_request_ns; /* the current pause's vm_pause() */

    struct console_out console;
    struct console_in console_in;
    int pty_master, pty_slave; /* VM_CONSOLE_PTY; petrel keeps the slave open */
    char pty_path[64];
    int console_file_fd;              /* VM_CONSOLE_FILE */
    int client_fd;                    /* VM_CONSOLE_SOCKET: the attached client, or -1 */
    struct console_out debugcon_file; /* --debugcon FILE */
    int debugcon_fd;

    struct irq_routing routing; /* GSI routes: irqchip pins and MSI vectors */
    bool routing_ready;
    struct pci_bus pci; /* bus 0: the host bridge, then the PCI functions */
    bool pci_ready;

    /* The devices (machine.c, hwdev.h), what they may use of the VM, and their roles. */
    struct hwdev_list devices;
    struct hwdev_host host;
    struct hwdev_roles roles;
    /* The console's devices (vm_console.c): output room goes to each, input to one. */
    const struct console_port *console_ports[4];
    unsigned nr_console_ports;
    const struct console_port *console_input;

    /*
     * The gdb stub (gdb.c), when there is one: called on the loop after every
     * vCPU report has moved the run state on (a debug stop, an ack, an exit).
     */
    void (*debug_hook)(void *ctx);
    void *debug_ctx;
    vm_event_fn *on_event; /* loop only: who hears vm_emit(), or NULL */
    void *on_event_ctx;

    struct vm_snap *snapshot;    /* a snapshot being written (snapshot.c), or NULL */
    uint64_t restore_advance_ns; /* a restore: how far the clock moved on (vm_restore_kvm) */

    pthread_mutex_t exit_lock; /* guards the exit_* fields (any thread writes them once) */
    enum vm_exit_reason exit_reason;
    int exit_status;
    int exit_vcpu; /* the vCPU that crashed or failed, or -1 */
    char exit_detail[160];
    /* Set (seq_cst) once an exit is requested: a vCPU whose own exit made the request (a
     * debug-exit, reset or power-off write) stops there instead of entering the guest
     * again, where the loop would have to kick it out. */
    atomic_bool exit_requested;
    /* vm_destroy_at_exit(): a holder keeps guest RAM and the KVM objects (not unmapped here). */
    bool teardown_held;
};

/*
 * Builds a VM from cfg: opens KVM, checks what it needs, maps memory, loads the
 * kernel, creates vCPUs and devices. On error returns -errno with a message in eb.
 */
int vm_create(const struct vm_config *cfg, struct vm **out, struct errbuf *eb) MUST_CHECK;

/* Runs the VM on this thread until it ends; returns petrel's exit status. */
int vm_run(struct vm *vm, struct errbuf *eb);

/* Prints why the VM ended when that needs saying (a crash: registers). */
void vm_report_exit(struct vm *vm, FILE *f);

void vm_destroy(struct vm *vm);

/*
 * vm_destroy() for a process about to exit: the kernel's part of the teardown
 * (guest RAM, the VM's and vCPUs' KVM objects) is left to a holder process that
 * petrel's exit ends, so it happens after petrel's parent has seen it exit
 * (docs/architecture.md, "Start-up and teardown"). Call it from the thread whose
 * exit ends petrel (the main thread), after vm_run(), and exit soon after: the
 * holder lives until that thread ends.
 *
 * It finishes what petrel's exit would cut short (a snapshot's worker, every drive's
 * requests onto their files; vm_run() has joined the vCPUs and written out the
 * consoles and the trace) and frees nothing else: the memory, fds and threads left
 * are the exit's to free. Everything is freed as by vm_destroy() in a build with
 * AddressSanitizer (its leak check) or with PETREL_EXIT_FREE=1 in the environment.
 */
void vm_destroy_at_exit(struct vm *vm);

/*
 * Pauses every vCPU (loop only). done runs with 0 once every vCPU has parked,
 * possibly before this returns. Requests are served in the order they come,
 * one transition at a time: during a transition, a request for the same state
 * joins it, one for the other state waits for it (and for any queued before
 * it), so none cancels another. Settled in the state asked for with nothing
 * queued: -EALREADY at once. Stopping: -ESHUTDOWN (also for every request
 * still waiting when a stop comes). -EBUSY when VM_MAX_WAITERS are waiting.
 */
void vm_pause(struct vm *vm, vm_done_fn *done, void *ctx);

/* Resumes a paused VM (loop only); done runs with 0 once every vCPU runs again. As vm_pause(). */
void vm_resume(struct vm *vm, vm_done_fn *done, void *ctx);

/*
 * The state the VM settles in once every waiting request is served:
 * VM_RUNNING, VM_PAUSED or VM_STOPPING (loop only).
 */
enum vm_state vm_control_goal(struct vm *vm);

/*
 * Presses the ACPI power button for a client (loop only): 0, or with msg set
 * (and nothing pressed) -EBUSY while the VM is not Running (Pausing, Paused,
 * Resuming: msg names the state), -ESHUTDOWN while stopping, -EOPNOTSUPP if
 * the guest has not enabled the button (it would not see the press).
 */
int vm_power_button(struct vm *vm, const char **msg);

/*
 * Queues keyboard scancodes (the loop): 0, -ENOSPC when the keyboard's buffer
 * is full, -ESHUTDOWN while stopping, -ENODEV without a keyboard.
 */
int vm_send_keys(struct vm *vm, const uint8_t *scancodes, size_t len);

/* Fills info (loop only). */
void vm_get_info(struct vm *vm, struct vm_info *info);

/* "Running", "Paused", ... as the API spells states. */
const char *vm_state_name(enum vm_state state);

/* Asks the VM to end (any thread). The first request wins. */
void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int status, int vcpu_id,
                     const char *detail);

/* Rescans the vCPUs' states and finishes transitions (loop only; vm_control.c). */
void vm_control_progress(struct vm *vm);

/* Counts a pause's kick time in vm->kick_hist (loop only). */
void vm_kick_histogram_add(struct vm *vm, uint64_t ns);

/* GET /stats's answer (loop only; vm_stats.c): a new JSON object, or NULL (out of memory). */
struct json_t;
struct json_t *vm_stats_json(struct vm *vm);
/* GET /trace's answer: the filter, the file, events written and dropped (loop only). */
struct json_t *vm_trace_json(struct vm *vm);

/*
 * Changes what is traced (loop only; PUT and PATCH /trace): with spec, the filter
 * becomes spec; else on's items are added and off's kinds removed. 0, or -errno
 * with a message (a bad spec: -EINVAL; tracing not built in: -EOPNOTSUPP).
 */
int vm_trace_set(struct vm *vm, const char *spec, const char *on, const char *off,
                 struct errbuf *eb) MUST_CHECK;

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t vm_now_ns(void);

/* Tells vm->on_event about ev (loop only). */
void vm_emit(struct vm *vm, enum vm_event ev, const char *detail);

/* "paused", "guest_poweroff", ... as GET /events spells them. */
const char *vm_event_name(enum vm_event ev);

/* "poweroff", "stop", ... : why a VM ended, as the stopping event says. */
const char *vm_exit_reason_name(enum vm_exit_reason reason);

/* The console's set-up and life (vm_console.c). */
int vm_console_setup(struct vm *vm, struct errbuf *eb) MUST_CHECK;
int vm_console_start(struct vm *vm, struct errbuf *eb) MUST_CHECK;
void vm_console_stop(struct vm *vm);
void vm_console_destroy(struct vm *vm);
/* A console device connects (hwdev_host.console_connect) and disconnects. */
void vm_console_connect(void *vm, const struct console_port *port, bool input);
void vm_console_disconnect(void *vm, const struct console_port *port);

/*
 * Attaches a console client (VM_CONSOLE_SOCKET; the loop, taking fd): it gets
 * the recent output, then the live console. -EBUSY if one is attached.
 */
int vm_console_attach(struct vm *vm, int fd);

/*
 * Writes a snapshot of a Paused VM (the loop; snapshot.c): the state file and the memory file,
 * each under a temporary name until both are on disk. done runs on the loop when it is written
 * (err 0) or failed (the VM stays paused either way); at once if the VM is not Paused (-EBUSY).
 */
void vm_snapshot(struct vm *vm, const char *state_path, const char *mem_path, vm_done_fn *done,
                 void *ctx);
/* Teardown: waits for a snapshot being written, drops it unanswered. */
void vm_snapshot_cancel(struct vm *vm);

/* A restore's steps (snapshot.c), called by vm_create() in this order. */
int vm_restore_memory(struct vm *vm, struct errbuf *eb) MUST_CHECK;
int vm_restore_kvm(struct vm *vm, struct errbuf *eb) MUST_CHECK;
int vm_restore_vcpu(struct vm *vm, unsigned i, struct errbuf *eb) MUST_CHECK;
int vm_restore_devices(struct vm *vm, struct errbuf *eb) MUST_CHECK;

/* The ACPI and MP tables and the BIOS data area in guest memory (firmware.c). */
int vm_firmware_tables(struct vm *vm, struct errbuf *eb) MUST_CHECK;

/* The exit_hook devices use to call vm_request_exit(). */
struct exit_hook vm_exit_hook(struct vm *vm);

#endif
