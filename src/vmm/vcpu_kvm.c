/* One KVM_RUN and the handling of its exit, on the vCPU's own thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "petrel/trace.h"
#include "petrel/vcpu.h"
#include "petrel/vm.h"

/* The trace hook of a port or MMIO access: one test of the VM's trace flags when off. */
#define VCPU_TRACE_ACCESS(v, kind, addr, data, size, is_write, dev)                                \
    do {                                                                                           \
        if (TRACE_ON(&(v)->vm->trace, kind))                                                       \
            trace_access(&(v)->vm->trace, (int)(v)->id, kind, addr, data, size, is_write,          \
                         (dev) ? device_label(dev) : NULL);                                        \
    } while (0)

static enum vcpu_step vcpu_crash(struct vcpu *v, const char *fmt, ...) PRINTF(2, 3);

/* Ends the VM as crashed, naming what happened on this vCPU. */
static enum vcpu_step vcpu_crash(struct vcpu *v, const char *fmt, ...)
{
    char detail[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    vm_request_exit(v->vm, VM_EXIT_CRASH, PETREL_STATUS_CRASHED, (int)v->id, detail);
    return VCPU_STEP_EXIT;
}

static enum vcpu_step vcpu_handle_io(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    uint64_t size = run->io.size, count = run->io.count;

    /* The data area is KVM's, but check it stays inside the mapping anyway. */
    if ((size != 1 && size != 2 && size != 4) || count == 0 || run->io.data_offset > v->run_size ||
        size * count > v->run_size - run->io.data_offset)
        return vcpu_crash(v, "malformed port I/O exit (port %#x, size %llu, count %llu)",
                          run->io.port, (unsigned long long)size, (unsigned long long)count);
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    bool out = run->io.direction == KVM_EXIT_IO_OUT;
    for (uint64_t i = 0; i < count; i++) {
        struct device *dev;
        bus_access(&v->vm->pio, run->io.port, data + i * size, (unsigned)size, out, &dev);
        VCPU_TRACE_ACCESS(v, TRACE_PIO, run->io.port, data + i * size, (unsigned)size, out, dev);
    }
    v->io_pending = true;
    return VCPU_STEP_CONTINUE;
}

static enum vcpu_step vcpu_handle_mmio(struct vcpu *v)
{
    struct kvm_run *run = v->run;

    if (run->mmio.len == 0 || run->mmio.len > sizeof(run->mmio.data))
        return vcpu_crash(v, "malformed MMIO exit (length %u)", run->mmio.len);
    struct device *dev;
    bus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len, run->mmio.is_write,
               &dev);
    VCPU_TRACE_ACCESS(v, TRACE_MMIO, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
                      run->mmio.is_write, dev);
    v->io_pending = true;
    return VCPU_STEP_CONTINUE;
}

static enum vcpu_step vcpu_handle_system_event(struct vcpu *v)
{
    switch (v->run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
        vm_request_exit(v->vm, VM_EXIT_POWEROFF, PETREL_STATUS_OK, (int)v->id, NULL);
        return VCPU_STEP_EXIT;
    case KVM_SYSTEM_EVENT_RESET:
        vm_request_exit(v->vm, VM_EXIT_RESET, PETREL_STATUS_OK, (int)v->id, NULL);
        return VCPU_STEP_EXIT;
    default:
        return vcpu_crash(v, "system event %u", v->run->system_event.type);
    }
}

/*
 * A breakpoint, watchpoint or single step (KVM_SET_GUEST_DEBUG, set by the
 * gdb stub): record it, tell the loop, and wait for the pause that stops
 * every vCPU (the stub asks for it); the vCPU then parks with its registers
 * at the stop. Without a stub no vCPU has guest debugging on.
 */
static enum vcpu_step vcpu_handle_debug(struct vcpu *v)
{
    uint64_t one = 1;

    if (!v->vm->debug_hook)
        return vcpu_crash(v, "unexpected debug exit (exception %u)", v->run->debug.arch.exception);
    v->debug = v->run->debug.arch;
    atomic_store(&v->debug_stop, true);
    ssize_t n = write(v->notify_fd, &one, sizeof(one));
    (void)n; /* fails only on counter overflow: the loop is awake anyway */
    vcpu_wait_request(v);
    return VCPU_STEP_CONTINUE;
}

static enum vcpu_step vcpu_kvm_run(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    enum vcpu_step step;

    uint64_t t0 = now_ns();
    int ret = ioctl(v->fd, KVM_RUN, 0);
    vcpu_stat_add(&v->stats.guest_ns, now_ns() - t0);
    /*
     * Any KVM_RUN, even one with immediate_exit set, completes a pending I/O
     * exit; it may return the exit of the access's next fragment, which sets
     * io_pending again below (see vcpu_complete_exit() in vcpu.c).
     */
    v->io_pending = false;
    if (ret < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            vcpu_stat_add(&v->stats.interrupted, 1);
            return VCPU_STEP_INTERRUPTED;
        }
        char detail[96];
        snprintf(detail, sizeof(detail), "KVM_RUN failed: %s", strerror(errno));
        vm_request_exit(v->vm, VM_EXIT_ERROR, PETREL_STATUS_ERROR, (int)v->id, detail);
        return VCPU_STEP_EXIT;
    }

    vcpu_stat_add(&v->stats.exits[run->exit_reason < VCPU_STAT_REASONS ? run->exit_reason
                                                                       : VCPU_STAT_REASONS - 1],
                  1);
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        step = vcpu_handle_io(v);
        break;
    case KVM_EXIT_MMIO:
        step = vcpu_handle_mmio(v);
        break;
    case KVM_EXIT_INTR:
        return VCPU_STEP_INTERRUPTED;
    case KVM_EXIT_DEBUG:
        return vcpu_handle_debug(v);
    case KVM_EXIT_HLT:
        return VCPU_STEP_CONTINUE; /* only without an in-kernel LAPIC; enter again */
    case KVM_EXIT_SHUTDOWN:
        return vcpu_crash(v, "triple fault (KVM_EXIT_SHUTDOWN)");
    case KVM_EXIT_SYSTEM_EVENT:
        return vcpu_handle_system_event(v);
    case KVM_EXIT_FAIL_ENTRY:
        return vcpu_crash(v, "VM entry failed (hardware reason %#llx)",
                          (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
    case KVM_EXIT_INTERNAL_ERROR:
        return vcpu_crash(v, "KVM internal error %u%s", run->internal.suberror,
                          run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                              ? " (instruction emulation failed)"
                              : "");
    default:
        return vcpu_crash(v, "unexpected KVM exit reason %u", run->exit_reason);
    }
    /* The access asked the VM to end (debug-exit, a reset or power-off register): this
     * vCPU ends here rather than enter the guest again and wait for the loop's kick. */
    if (step == VCPU_STEP_CONTINUE && atomic_load(&v->vm->exit_requested))
        return VCPU_STEP_EXIT;
    return step;
}

/*
 * Tells a kvmclock-aware guest that this vCPU was stopped by the host, so its
 * soft-lockup watchdog does not take the pause for a hang. KVM allows it "any time
 * after pausing the vcpu, but before it is resumed" (the API documentation), and the
 * guest sees the flag at its next entry; so it is done as the vCPU leaves the pause
 * (QEMU too makes it as the VM starts running again), on the vCPU's own thread (from
 * the loop it would wait for KVM_RUN to return). EINVAL means the guest never enabled
 * kvmclock (kit guests): nothing to tell.
 */
static void vcpu_kvm_resuming(struct vcpu *v)
{
    ioctl(v->fd, KVM_KVMCLOCK_CTRL, 0);
}

const struct vcpu_ops vcpu_kvm_ops = {
    .run = vcpu_kvm_run,
    .resuming = vcpu_kvm_resuming,
};
