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

#include "petrel/bus.h"
#include "petrel/console.h"
#include "petrel/console_in.h"
#include "petrel/debugport.h"
#include "petrel/exit.h"
#include "petrel/guest_mem.h"
#include "petrel/i8042.h"
#include "petrel/irq.h"
#include "petrel/uart8250.h"
#include "petrel/util.h"
#include "petrel/vcpu.h"
#include "petrel/x86_boot.h"

#define VM_DEFAULT_MEMORY  (256 * MiB)
#define VM_MIN_MEMORY      (8 * MiB)
#define VM_DEFAULT_CMDLINE "console=ttyS0"
#define VM_MAX_KERNEL_SIZE (256 * MiB)
#define VM_CONSOLE_BUFFER  (64 * KiB)

struct vm_config {
    const char *kernel_path;
    const char *initrd_path; /* NULL: none */
    const char *cmdline;     /* NULL: VM_DEFAULT_CMDLINE */
    unsigned cpus;
    uint64_t memory;
    bool debug_exit;           /* port 0xf4 ends petrel with the value written */
    const char *debugcon_path; /* NULL: debugcon joins the console output */
    int console_fd;            /* where guest output goes (stdout) */
    int console_in_fd;         /* where console input comes from (stdin), or -1 */
};

enum vm_state {
    VM_RUNNING,
    VM_STOPPING, /* every vCPU has been asked to stop; waiting for acks */
};

struct vm {
    struct vm_config cfg;
    int kvm_fd;
    int vm_fd;
    struct guest_mem mem;
    struct bus pio;
    struct bus mmio;
    struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, patched per vCPU */

    /* Only while vm_create() runs: the kernel image and the initrd to load. */
    uint8_t *kernel_img;
    size_t kernel_len;
    struct bzimage bz;
    int initrd_fd;
    uint64_t initrd_size;

    struct vcpu *vcpus;
    unsigned nr_vcpus;
    int vcpu_notify_fd; /* eventfd: vCPUs ack state changes and exits here */

    struct event_base *base;
    struct event *ev_vcpu;
    struct event *ev_signals[3];
    enum vm_state state; /* loop only */

    struct console_out console;
    struct console_in console_in;
    struct console_out debugcon_file; /* --debugcon FILE */
    int debugcon_fd;

    struct kvm_irq_gsi com1_irq;
    struct kvm_irq_gsi kbd_irq;
    struct kvm_irq_gsi aux_irq;
    struct uart8250 com1;
    struct debugcon debugcon;
    struct debugexit debugexit;
    struct i8042 i8042;

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

/* Asks the VM to end (any thread). The first request wins. */
void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int status, int vcpu_id,
                     const char *detail);

/* The exit_hook devices use to call vm_request_exit(). */
struct exit_hook vm_exit_hook(struct vm *vm);

#endif
