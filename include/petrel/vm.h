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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <event2/event.h>
#include <linux/kvm.h>

#include "petrel/acpi_pm.h"
#include "petrel/bus.h"
#include "petrel/console.h"
#include "petrel/console_in.h"
#include "petrel/debugport.h"
#include "petrel/exit.h"
#include "petrel/guest_mem.h"
#include "petrel/i8042.h"
#include "petrel/irq.h"
#include "petrel/irq_routing.h"
#include "petrel/loader.h"
#include "petrel/pci.h"
#include "petrel/rtc_cmos.h"
#include "petrel/uart8250.h"
#include "petrel/util.h"
#include "petrel/vcpu.h"
#include "petrel/virtio_blk.h"
#include "petrel/virtio_console.h"
#include "petrel/virtio_rng.h"
#include "petrel/x86_boot.h"

#define VM_DEFAULT_MEMORY  (256 * MiB)
#define VM_MIN_MEMORY      (8 * MiB)
#define VM_DEFAULT_CMDLINE "console=ttyS0"
#define VM_CONSOLE_BUFFER  (16 * KiB) /* guest output not yet written; then THRE holds the guest */

/* The default command line with --console virtio. */
#define VM_DEFAULT_CMDLINE_VIRTIO "console=hvc0"

enum vm_console_mode {
    VM_CONSOLE_STDIO,  /* this terminal (raw, escape keys) or pipes */
    VM_CONSOLE_PTY,    /* a pseudo-terminal whose path petrel prints */
    VM_CONSOLE_SOCKET, /* a unix socket for `petrel console NAME` (see api.h) */
    VM_CONSOLE_FILE,   /* output only, to a file */
};

struct vm_config {
    const char *kernel_path;
    const char *initrd_path; /* NULL: none */
    const char *cmdline;     /* NULL: VM_DEFAULT_CMDLINE(_VIRTIO) */
    unsigned cpus;
    uint64_t memory;
    bool debug_exit;              /* port 0xf4 ends petrel with the value written */
    bool stats;                   /* print counters on stderr at exit */
    const char *debugcon_path;    /* NULL: debugcon joins the console output */
    enum vm_console_mode console; /* where the console goes */
    bool console_virtio;          /* the console is virtio-console (hvc0), not COM1 */
    const char *console_path;     /* VM_CONSOLE_FILE: the file */
    bool stdin_closed;            /* VM_CONSOLE_STDIO without input */
    bool rng;                     /* a virtio-rng device on PCI (--rng) */
    struct virtio_blk_spec drives[VIRTIO_BLK_MAX_DRIVES]; /* --drive, in order: vda, vdb, ... */
    unsigned nr_drives;
};

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

#define VM_MAX_WAITERS 64

/* What `petrel status` and the API report. */
struct vm_info {
    enum vm_state state;
    unsigned vcpus;
    uint64_t memory;
    double uptime_s;
    uint64_t pauses;         /* completed pauses */
    uint64_t last_kick_ns;   /* the last pause: request on the loop -> every vCPU parked */
    uint64_t last_resume_ns; /* the last resume: request -> every vCPU running */
    size_t console_buffered; /* guest output waiting for the console reader */
    size_t console_capacity;
    uint64_t console_dropped; /* output the console's reader did not take (a full pty) */
};

struct vm {
    struct vm_config cfg;
    int kvm_fd;
    int vm_fd;
    struct guest_mem mem;
    struct bus pio;
    struct bus mmio;
    struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, patched per vCPU */

    struct loader loader; /* only while vm_create() runs: the kernel and initrd */
    uint64_t entry;       /* where vCPU 0 starts (the loaded kernel's entry point) */

    struct vcpu *vcpus;
    unsigned nr_vcpus;
    int vcpu_notify_fd; /* eventfd: vCPUs ack state changes and exits here */

    struct event_base *base;
    struct event *ev_vcpu;
    struct event *ev_signals[3];
    enum vm_state state;                      /* loop only, like everything down to the console */
    struct vm_waiter waiters[VM_MAX_WAITERS]; /* in arrival order: the current transition's, */
    unsigned nr_waiters;                      /* then queued ones (vm_control.c) */
    uint64_t transition_start_ns;
    uint64_t start_ns;
    uint64_t pauses, last_kick_ns, last_resume_ns;

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
    struct kvm_irq_gsi com1_irq;
    struct kvm_irq_gsi kbd_irq;
    struct kvm_irq_gsi aux_irq;
    struct uart8250 com1;
    struct debugcon debugcon;
    struct debugexit debugexit;
    struct i8042 i8042;
    struct kvm_irq_gsi sci_irq;
    struct acpi_pm pm;
    struct pci_bus pci; /* bus 0: the host bridge, then PCI devices */
    bool pci_ready;
    struct virtio_rng rng; /* --rng; rng.vdev.ops set while it exists */
    /* --drive, in order; blk[i].path set while its file is open. */
    struct virtio_blk blk[VIRTIO_BLK_MAX_DRIVES];
    /* --console virtio; vcons.vdev.ops set while it exists */
    struct virtio_console vcons;
    struct kvm_irq_gsi rtc_irq;
    struct rtc_cmos rtc;
    bool rtc_ready;       /* rtc_cmos_init() succeeded */
    struct event *ev_rtc; /* the RTC's timerfd */

    pthread_mutex_t exit_lock; /* guards the exit_* fields (any thread writes them once) */
    enum vm_exit_reason exit_reason;
    int exit_status;
    int exit_vcpu; /* the vCPU that crashed or failed, or -1 */
    char exit_detail[160];
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

/* Fills info (loop only). */
void vm_get_info(struct vm *vm, struct vm_info *info);

/* "Running", "Paused", ... as the API spells states. */
const char *vm_state_name(enum vm_state state);

/* Asks the VM to end (any thread). The first request wins. */
void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int status, int vcpu_id,
                     const char *detail);

/* Rescans the vCPUs' states and finishes transitions (loop only; vm_control.c). */
void vm_control_progress(struct vm *vm);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t vm_now_ns(void);

/* The console's set-up and life (vm_console.c). */
int vm_console_setup(struct vm *vm, struct errbuf *eb) MUST_CHECK;
int vm_console_start(struct vm *vm, struct errbuf *eb) MUST_CHECK;
void vm_console_stop(struct vm *vm);
void vm_console_destroy(struct vm *vm);
/* Console input goes to virtio-console (once it exists) instead of the UART. */
void vm_console_use_virtio(struct vm *vm);

/*
 * Attaches a console client (VM_CONSOLE_SOCKET; the loop, taking fd): it gets
 * the recent output, then the live console. -EBUSY if one is attached.
 */
int vm_console_attach(struct vm *vm, int fd);

/*
 * The platform (vm_platform.c, docs/platform.md): the irqchip's routing and
 * IOAPIC ID, the firmware tables in guest memory, the --drive files (opened
 * before KVM is touched), the platform devices.
 */
int vm_platform_irqchip(struct vm *vm, struct errbuf *eb) MUST_CHECK;
int vm_platform_tables(struct vm *vm, struct errbuf *eb) MUST_CHECK;
int vm_platform_drives(struct vm *vm, struct errbuf *eb) MUST_CHECK;
int vm_platform_devices(struct vm *vm, struct errbuf *eb) MUST_CHECK;
void vm_platform_destroy(struct vm *vm);

/* The exit_hook devices use to call vm_request_exit(). */
struct exit_hook vm_exit_hook(struct vm *vm);

#endif
