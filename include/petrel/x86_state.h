/*
 * The KVM state of an x86 VM for snapshots: each vCPU's registers and the
 * VM-wide state (the in-kernel PICs and IOAPIC, the PIT, the KVM clock), read
 * from KVM and written back into a fresh VM, and stored as state nodes
 * (include/petrel/state.h) that `dtc -I dtb -O dts` shows register by register.
 *
 * Restoring a snapshot, in this order (x86_state.c says why):
 *   1. guest memory in place (the kvmclock, steal-time and async-PF MSRs point
 *      into it, and KVM writes there when they are set);
 *   2. x86_cpuid_check(saved CPUID, this host's x86_cpuid_supported()): refuse a
 *      guest that was given features this host lacks;
 *   3. x86_vm_state_set() (clock, irqchip, PIT), then
 *      x86_vm_clock_advanced() and, with that, x86_vcpu_state_advance_tsc() on
 *      each vCPU's state, so a guest that counts time with its TSC sees the same
 *      jump as one that uses kvmclock;
 *   4. x86_vcpu_state_set() on each vCPU, then x86_vcpu_kvmclock_ctrl() before
 *      its first KVM_RUN.
 *
 * The structs are plain (no pointers) and large (an x86_vcpu_state is ~45 KiB):
 * allocate them, do not put them on a thread's stack.
 */
#ifndef PETREL_X86_STATE_H
#define PETREL_X86_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "petrel/state.h"
#include "petrel/util.h"

#define X86_VCPU_STATE_COMPATIBLE "petrel,x86-vcpu-v1"
#define X86_VM_STATE_COMPATIBLE   "petrel,x86-vm-v1"

#define X86_STATE_MAX_MSRS  1024   /* MSRs one vCPU may carry (KVM lists ~100-400) */
#define X86_STATE_MAX_CPUID 256    /* KVM's own limit, KVM_MAX_CPUID_ENTRIES */
#define X86_STATE_XSAVE_MAX 0x4000 /* 16 KiB: AMX's 11 KiB XSAVE area with room */

#define X86_MSR_IA32_TSC          0x10
#define X86_MSR_IA32_APICBASE     0x1b
#define X86_MSR_IA32_TSC_DEADLINE 0x6e0
#define X86_MSR_EFER              0xc0000080

/* The MSRs of one vCPU, laid out as KVM_GET_MSRS/KVM_SET_MSRS take them. */
union x86_msr_table {
    struct kvm_msrs hdr;
    uint8_t bytes[sizeof(struct kvm_msrs) + X86_STATE_MAX_MSRS * sizeof(struct kvm_msr_entry)];
};

/* The CPUID a vCPU was given, laid out as KVM_SET_CPUID2 takes it. */
union x86_cpuid_table {
    struct kvm_cpuid2 hdr;
    uint8_t
        bytes[sizeof(struct kvm_cpuid2) + X86_STATE_MAX_CPUID * sizeof(struct kvm_cpuid_entry2)];
};

/* XSAVE area (KVM_GET_XSAVE2's size, at least struct kvm_xsave's 4 KiB). */
union x86_xsave_area {
    struct kvm_xsave hdr;
    uint8_t bytes[X86_STATE_XSAVE_MAX];
};

/* Everything KVM holds for one x86 vCPU. */
struct x86_vcpu_state {
    struct kvm_regs regs;
    /*
     * sregs2 rather than sregs: it carries the four PAE PDPTRs a 32-bit PAE
     * guest's CPU holds (loaded at its last CR3 write, and not necessarily what
     * memory holds now), and no interrupt bitmap (the injected interrupt travels
     * in events, as QEMU does it). On a KVM without KVM_CAP_SREGS2 the plain
     * sregs are used and flags has no KVM_SREGS2_FLAGS_PDPTRS_VALID: KVM then
     * reloads the PDPTRs from guest memory.
     */
    struct kvm_sregs2 sregs;
    bool has_xsave;      /* xsave (KVM_CAP_XSAVE), else fpu */
    uint32_t xsave_size; /* bytes of xsave in use, >= sizeof(struct kvm_xsave) */
    union x86_xsave_area xsave;
    struct kvm_fpu fpu;
    struct kvm_xcrs xcrs; /* nr_xcrs 0: KVM has no KVM_CAP_XCRS */
    union x86_msr_table msrs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp_state;
    struct kvm_debugregs debugregs;
    union x86_cpuid_table cpuid;
    uint32_t tsc_khz; /* 0: KVM cannot tell (no KVM_CAP_GET_TSC_KHZ) */
};

/*
 * Reads a vCPU's state. The vCPU must be parked with no exit half done (a port
 * or MMIO exit completed by one KVM_RUN with immediate_exit set): the caller
 * guarantees it. kvm_fd (/dev/kvm) answers the capability checks and lists the
 * MSRs. cpuid is the table the VMM gave this vCPU with KVM_SET_CPUID2, kept as
 * the vCPU's CPUID; NULL asks KVM (KVM_GET_CPUID2), which real KVM answers with
 * that table, but kvm_pvm with the host's own CPUID. 0 or -errno with a message.
 */
int x86_vcpu_state_get(int kvm_fd, int vcpu_fd, const struct kvm_cpuid2 *cpuid,
                       struct x86_vcpu_state *st, struct errbuf *eb) MUST_CHECK;

/*
 * Writes a vCPU's state into a vCPU that has not run yet, in KVM's order (CPUID
 * first). 0 or -errno with a message in eb naming what KVM refused.
 */
int x86_vcpu_state_set(int vcpu_fd, const struct x86_vcpu_state *st, struct errbuf *eb) MUST_CHECK;

/* Moves the saved TSC on by ns at the vCPU's TSC rate (a catch-up restore). */
void x86_vcpu_state_advance_tsc(struct x86_vcpu_state *st, uint64_t ns);

/*
 * Writes the state as properties (and segment subnodes) of the node the caller
 * opened with state_begin(out, name, X86_VCPU_STATE_COMPATIBLE). Returns out->err.
 */
int x86_vcpu_state_put(const struct x86_vcpu_state *st, struct state_out *out);

/*
 * Reads and checks what x86_vcpu_state_put() wrote, from a node the caller
 * opened with state_open(). Counts and sizes are bounded before anything is
 * copied; on failure in->err and eb say which property. Returns in->err.
 */
int x86_vcpu_state_take(struct x86_vcpu_state *st, struct state_in *in);

/*
 * Refuses a restore whose guest was given CPU features this host's KVM does not
 * offer: a feature bit (leaves 0x1, 0x7, 0xD, 0x80000001, 0x80000007,
 * 0x80000008, KVM's 0x40000001) set in saved and clear in supported, or another
 * CPU vendor. The message names each leaf, register and bit. 0 or -ENOTSUP.
 */
int x86_cpuid_check(const struct kvm_cpuid2 *saved, const struct kvm_cpuid2 *supported,
                    struct errbuf *eb) MUST_CHECK;

/* The VM-wide state: in-kernel irqchip, PIT, clock. */
struct x86_vm_state {
    struct kvm_pic_state pic[2]; /* master, slave */
    struct kvm_ioapic_state ioapic;
    bool has_pit;
    struct kvm_pit_state2 pit; /* channels' count_load_time is not kept: see .c */
    struct kvm_clock_data clock;
    uint64_t realtime_ns; /* CLOCK_REALTIME when the clock was read */
};

enum x86_clock_restore {
    /*
     * The guest's clock catches up with the time the snapshot was away:
     * KVM_SET_CLOCK with KVM_CLOCK_REALTIME where KVM can (it adds the time
     * since the saved realtime itself), else the saved clock plus the
     * CLOCK_REALTIME elapsed since realtime_ns.
     */
    X86_CLOCK_CATCH_UP = 0,
    /* The clock goes on from where it stopped (for guests that run NTP). */
    X86_CLOCK_FROZEN,
};

/* Reads the VM-wide state (every vCPU parked). 0 or -errno with a message. */
int x86_vm_state_get(int vm_fd, struct x86_vm_state *st, struct errbuf *eb) MUST_CHECK;

/*
 * Writes the VM-wide state into a fresh VM (its irqchip and PIT created, no
 * vCPU run yet). The clock never goes back from the saved one.
 */
int x86_vm_state_set(int vm_fd, const struct x86_vm_state *st, enum x86_clock_restore mode,
                     struct errbuf *eb) MUST_CHECK;

/*
 * After x86_vm_state_set(): how far (ns) the VM's clock now is past the saved
 * one (0 if it is not), for x86_vcpu_state_advance_tsc(). Frozen: about 0.
 */
int x86_vm_clock_advanced(int vm_fd, const struct x86_vm_state *st, uint64_t *ns,
                          struct errbuf *eb) MUST_CHECK;

int x86_vm_state_put(const struct x86_vm_state *st, struct state_out *out);
int x86_vm_state_take(struct x86_vm_state *st, struct state_in *in);

/*
 * Tells KVM the vCPU was stopped (KVMCLOCK_CTRL), so the guest's soft-lockup
 * watchdog does not take the pause for a hang. Call on each vCPU before its
 * first run after a restore. A guest that does not use kvmclock: 0.
 */
int x86_vcpu_kvmclock_ctrl(int vcpu_fd) MUST_CHECK;

#endif
