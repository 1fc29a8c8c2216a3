/*
 * x86 vCPU set-up: CPUID per vCPU, MSRs, FPU, LAPIC LINTs, and the long-mode
 * register state and boot tables (GDT, identity page tables) of the 64-bit
 * boot protocol.
 */
#ifndef PETREL_X86_CPU_H
#define PETREL_X86_CPU_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>
#include <stdio.h>

#include "petrel/guest_mem.h"
#include "petrel/util.h"

#define CPUID_MAX_ENTRIES 256

/*
 * KVM_GET_SUPPORTED_CPUID into a malloc()ed table, with the TSC-deadline bit KVM
 * leaves to userspace set when KVM_CAP_TSC_DEADLINE_TIMER says it works, and
 * without XSAVE where the host is QEMU's TCG (x86_cpuid_hide_xsave()). 0 or -errno.
 */
int x86_cpuid_supported(int kvm_fd, struct kvm_cpuid2 **out) MUST_CHECK;

/*
 * True when petrel's own CPU is QEMU's TCG emulation (its hypervisor leaf says
 * "TCGTCGTCGTCG"): the nested harness's L1, whose emulated SVM has known gaps.
 */
bool x86_host_is_tcg(void);

/*
 * Takes XSAVE and everything that needs its state (AVX and its successors,
 * FMA, F16C, XOP, FMA4, MPX, PKU, AMX) out of a CPUID table, leaf 0xD with them:
 * the guest saves its FPU and SSE state with FXSAVE. For TCG hosts, where QEMU
 * does not pass a guest's XSETBV to KVM as an SVM intercept, so that KVM puts its
 * stale XCR0 (x87 only) back at every entry: a guest's XSAVE then leaves SSE
 * registers out and processes see each other's (docs/architecture.md).
 */
void x86_cpuid_hide_xsave(struct kvm_cpuid2 *cpuid);

#define X86_CPUID1_ECX_TSC_DEADLINE (1U << 24)

/* Bits needed to number n cores (the APIC ID's core field width). */
unsigned x86_core_bits(unsigned n);

/*
 * Rewrites a copy of the supported CPUID (in place in cpuid) for vCPU
 * apic_id of nr_vcpus: one package of nr_vcpus cores, one thread each, the
 * APIC ID in leaves 0x1, 0xB, 0x1F and 0x8000001E, the hypervisor bit set.
 */
void x86_cpuid_patch(struct kvm_cpuid2 *cpuid, unsigned apic_id, unsigned nr_vcpus);

/* Finds the entry for function/index, or NULL. */
struct kvm_cpuid_entry2 *x86_cpuid_find(struct kvm_cpuid2 *cpuid, uint32_t function,
                                        uint32_t index);

/* Writes the boot GDT, IDT and the identity page tables for the low 4 GiB. */
int x86_boot_tables(const struct guest_mem *gm) MUST_CHECK;

/*
 * Sets CPUID, MSRs, FPU and LAPIC LINT0/LINT1 on a vCPU; on the BSP also the
 * long-mode registers that enter the kernel's 64-bit entry (entry, guest
 * physical) with RSI = zero page.
 */
int x86_vcpu_setup(int vcpu_fd, const struct kvm_cpuid2 *cpuid, bool bsp, uint64_t entry,
                   struct errbuf *eb) MUST_CHECK;

/* Prints the vCPU's registers for a crash report (to f). */
void x86_vcpu_dump(int vcpu_fd, unsigned id, FILE *f);

#endif
