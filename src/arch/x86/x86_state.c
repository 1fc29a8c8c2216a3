/*
 * The KVM state of x86 vCPUs and of the VM: read from KVM, written back into a
 * fresh VM, and checked against the CPU features of the host it comes back on.
 * The state nodes (put/take) are in x86_state_node.c.
 *
 * Ordering rules (Documentation/virt/kvm/api.rst; QEMU's kvm_arch_get_registers
 * and kvm_arch_put_registers in target/i386/kvm/kvm.c do the same):
 *
 * Reading (x86_vcpu_state_get):
 *   - KVM_GET_VCPU_EVENTS, then KVM_GET_MP_STATE, before the registers:
 *     KVM_GET_MP_STATE first lets the LAPIC accept a pending INIT or SIPI
 *     (kvm_apic_accept_events), which can change CS and RIP; the registers
 *     read after it are the ones that go with the MP state.
 *   - the CPUID is the table the VMM gave (KVM_GET_CPUID2 where it has none to
 *     pass: real KVM answers with that table and its runtime bits, kvm_pvm with
 *     the host's own CPUID, which its KVM_GET_SUPPORTED_CPUID then lacks).
 *   - the vCPU has no port/MMIO exit half done (the caller's promise): KVM
 *     finishes one only on the next KVM_RUN, so state read in between would
 *     lose the access (an IN's result, or RIP not yet past the instruction).
 *   - then regs, XSAVE (or FPU), XCRs, sregs, MSRs, LAPIC, debug registers,
 *     CPUID and the TSC frequency; none of these changes another.
 *
 * Writing (x86_vcpu_state_set), on a vCPU that has not run:
 *   1. KVM_SET_CPUID2 first: KVM checks much of what follows against the
 *      guest's CPUID (the XCR0 bits KVM_SET_XCRS and KVM_SET_XSAVE accept come
 *      from leaf 0xD; which MSRs exist and what they may hold; the physical
 *      address width for MTRR masks). After the first KVM_RUN KVM refuses a
 *      different CPUID (-EBUSY, since Linux 5.16): a restore needs a fresh vCPU.
 *   2. KVM_SET_TSC_KHZ, only if the saved rate differs, before the TSC MSR is
 *      written at that rate (KVM accepts a rate within 250 ppm of the host's
 *      without scaling; beyond that it needs TSC scaling, else it refuses and so
 *      does the restore: a guest that counts time with its TSC would drift).
 *   3. sregs (KVM_SET_SREGS2, or KVM_SET_SREGS on an older KVM) before the MSRs
 *      and the LAPIC: EFER, CR0 and CR4 decide the mode the MSR checks assume,
 *      and the APIC base (enable, x2APIC) decides how KVM_SET_LAPIC reads the
 *      APIC ID register (api.rst, KVM_GET_LAPIC: "depends on the APIC mode
 *      (reported by MSR_IA32_APICBASE)"). QEMU: "must be before
 *      kvm_put_nested_state so that EFER.SVME is set". EFER and the APIC base
 *      travel in the sregs, not in the MSR list.
 *   4. the MSRs, all but IA32_TSC_DEADLINE, in one KVM_SET_MSRS; KVM returns
 *      how many it took, so a refusal names the MSR. kvmclock, steal time and
 *      async PF point into guest memory, which must be in place. A young TSC
 *      needs a write before it: see x86_tsc_unmatch().
 *   5. regs, then XSAVE (or FPU), then XCRs (QEMU's order).
 *   6. KVM_SET_LAPIC.
 *   7. IA32_TSC_DEADLINE after the LAPIC: KVM drops a write to it unless the
 *      LVT timer is in TSC-deadline mode (kvm_set_lapic_tscdeadline_msr), which
 *      only the LAPIC state sets. QEMU writes it after everything else.
 *   8. KVM_SET_VCPU_EVENTS after the registers: the sregs carried no pending
 *      interrupt (sregs2 has no bitmap; with sregs it is zero) and the events
 *      bring back the injected interrupt, exception, NMI and the interrupt
 *      shadow, which apply to the restored RIP.
 *   9. KVM_SET_MP_STATE after the LAPIC and events (QEMU's order): INIT and
 *      SIPI-received states live in the LAPIC's pending events.
 *  10. KVM_SET_DEBUGREGS last (QEMU's order).
 *
 * The VM-wide state (x86_vm_state_set) goes in before any vCPU's: the clock
 * first (KVM writes the kvmclock wall clock into guest memory when the vCPU's
 * MSR is set, from the VM's clock), then the PICs, the IOAPIC and the PIT.
 */
#include "petrel/x86_state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

/* MSRs saved even if KVM's list leaves them out: what a running kernel relies on. */
static const uint32_t x86_msrs_always[] = {
    X86_MSR_IA32_TSC,
    0x3b,  /* IA32_TSC_ADJUST */
    0x174, /* IA32_SYSENTER_CS */
    0x175, /* IA32_SYSENTER_ESP */
    0x176, /* IA32_SYSENTER_EIP */
    0x1a0, /* IA32_MISC_ENABLE */
    0x277, /* IA32_PAT */
    0x2ff, /* MTRRdefType */
    X86_MSR_IA32_TSC_DEADLINE,
    0xc0000081, /* STAR */
    0xc0000082, /* LSTAR */
    0xc0000083, /* CSTAR */
    0xc0000084, /* SFMASK */
    0xc0000102, /* KERNEL_GS_BASE */
    0xc0000103, /* TSC_AUX */
    0x11,       /* MSR_KVM_WALL_CLOCK (kvmclock, old numbers) */
    0x12,       /* MSR_KVM_SYSTEM_TIME */
    0x4b564d00, /* MSR_KVM_WALL_CLOCK_NEW */
    0x4b564d01, /* MSR_KVM_SYSTEM_TIME_NEW */
    0x4b564d02, /* MSR_KVM_ASYNC_PF_EN */
    0x4b564d03, /* MSR_KVM_STEAL_TIME */
    0x4b564d04, /* MSR_KVM_PV_EOI_EN */
};

/*
 * MSRs KVM lists that are not saved: EFER and the APIC base travel in the sregs
 * (writing the APIC base again after KVM_SET_LAPIC could reset the LAPIC), and
 * Hyper-V's MSRs belong to a Hyper-V CPUID petrel never gives (KVM lets the host
 * read some it then refuses to write back).
 */
static bool x86_msr_skipped(uint32_t index)
{
    return index == X86_MSR_EFER || index == X86_MSR_IA32_APICBASE ||
           (index >= 0x40000000 && index <= 0x400000ff);
}

static int ioctl_err(struct errbuf *eb, const char *what)
{
    int err = -errno;
    return err_set(eb, err, "%s: %s", what, strerror(-err));
}

/* KVM_GET_MSR_INDEX_LIST into a malloc()ed list. 0 or -errno. */
static int x86_msr_index_list(int kvm_fd, struct kvm_msr_list **out, struct errbuf *eb)
{
    struct kvm_msr_list probe = {.nmsrs = 0};

    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
        return ioctl_err(eb, "KVM_GET_MSR_INDEX_LIST");
    if (probe.nmsrs > X86_STATE_MAX_MSRS)
        return err_set(eb, -E2BIG, "KVM lists %u MSRs, more than the %u a snapshot holds",
                       probe.nmsrs, X86_STATE_MAX_MSRS);
    struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
    if (!l)
        return err_set(eb, -ENOMEM, "out of memory for the MSR list");
    l->nmsrs = probe.nmsrs;
    if (probe.nmsrs && ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
        int err = ioctl_err(eb, "KVM_GET_MSR_INDEX_LIST");
        free(l);
        return err;
    }
    *out = l;
    return 0;
}

/* Adds index to the table's entries unless skipped or already there. */
static int x86_msr_add(union x86_msr_table *t, uint32_t index, struct errbuf *eb)
{
    if (x86_msr_skipped(index))
        return 0;
    for (uint32_t i = 0; i < t->hdr.nmsrs; i++) {
        if (t->hdr.entries[i].index == index)
            return 0;
    }
    if (t->hdr.nmsrs >= X86_STATE_MAX_MSRS)
        return err_set(eb, -E2BIG, "more than %u MSRs to save", X86_STATE_MAX_MSRS);
    t->hdr.entries[t->hdr.nmsrs++] = (struct kvm_msr_entry){.index = index};
    return 0;
}

/*
 * Reads every MSR of the table; KVM_GET_MSRS stops at the first it cannot read
 * and returns how many it did, so that one is dropped and the read goes on from
 * the next (KVM lists MSRs a given vCPU does not have, e.g. for a feature its
 * CPUID lacks).
 */
static int x86_msrs_read(int vcpu_fd, union x86_msr_table *t, struct errbuf *eb)
{
    union x86_msr_table *rest = malloc(sizeof(*rest));
    uint32_t kept = 0, next = 0, n = t->hdr.nmsrs;

    if (!rest)
        return err_set(eb, -ENOMEM, "out of memory for the MSRs");
    while (next < n) {
        rest->hdr.nmsrs = n - next;
        rest->hdr.pad = 0;
        memcpy(rest->hdr.entries, &t->hdr.entries[next], (n - next) * sizeof(rest->hdr.entries[0]));
        int got = ioctl(vcpu_fd, KVM_GET_MSRS, rest);
        if (got < 0) {
            int err = ioctl_err(eb, "KVM_GET_MSRS");
            free(rest);
            return err;
        }
        memcpy(&t->hdr.entries[kept], rest->hdr.entries, (size_t)got * sizeof(t->hdr.entries[0]));
        kept += (uint32_t)got;
        next += (uint32_t)got + 1; /* skip the one KVM could not read */
    }
    free(rest);
    t->hdr.nmsrs = kept;
    return 0;
}

/* The MSRs to save: KVM's list and x86_msrs_always[], as this vCPU can read them. */
static int x86_msrs_get(int kvm_fd, int vcpu_fd, union x86_msr_table *t, struct errbuf *eb)
{
    struct kvm_msr_list *list = NULL;
    int ret = x86_msr_index_list(kvm_fd, &list, eb);

    if (ret)
        return ret;
    t->hdr.nmsrs = 0;
    for (uint32_t i = 0; i < list->nmsrs && !ret; i++)
        ret = x86_msr_add(t, list->indices[i], eb);
    for (size_t i = 0; i < ARRAY_SIZE(x86_msrs_always) && !ret; i++)
        ret = x86_msr_add(t, x86_msrs_always[i], eb);
    free(list);
    return ret ? ret : x86_msrs_read(vcpu_fd, t, eb);
}

/* KVM_GET_XSAVE2 at KVM's size where it has one, else KVM_GET_XSAVE, else the FPU. */
static int x86_fpu_get(int kvm_fd, int vcpu_fd, struct x86_vcpu_state *st, struct errbuf *eb)
{
    int size2 = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

    st->has_xsave = size2 > 0 || ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
    if (!st->has_xsave) {
        st->xsave_size = 0;
        return ioctl(vcpu_fd, KVM_GET_FPU, &st->fpu) < 0 ? ioctl_err(eb, "KVM_GET_FPU") : 0;
    }
    if (size2 > 0) {
        if ((size_t)size2 > sizeof(st->xsave))
            return err_set(eb, -E2BIG, "KVM's XSAVE area is %d bytes, more than the %zu kept",
                           size2, sizeof(st->xsave));
        st->xsave_size =
            (uint32_t)size2 < sizeof(struct kvm_xsave) ? sizeof(struct kvm_xsave) : (uint32_t)size2;
        if (ioctl(vcpu_fd, KVM_GET_XSAVE2, &st->xsave) < 0)
            return ioctl_err(eb, "KVM_GET_XSAVE2");
        return 0;
    }
    st->xsave_size = sizeof(struct kvm_xsave);
    return ioctl(vcpu_fd, KVM_GET_XSAVE, &st->xsave) < 0 ? ioctl_err(eb, "KVM_GET_XSAVE") : 0;
}

/* sregs2 where KVM has them, else the sregs in the same struct. */
static int x86_sregs_get(int kvm_fd, int vcpu_fd, struct kvm_sregs2 *s2, struct errbuf *eb)
{
    struct kvm_sregs s;

    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SREGS2) > 0)
        return ioctl(vcpu_fd, KVM_GET_SREGS2, s2) < 0 ? ioctl_err(eb, "KVM_GET_SREGS2") : 0;
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
        return ioctl_err(eb, "KVM_GET_SREGS");
    *s2 = (struct kvm_sregs2){
        .cs = s.cs,
        .ds = s.ds,
        .es = s.es,
        .fs = s.fs,
        .gs = s.gs,
        .ss = s.ss,
        .tr = s.tr,
        .ldt = s.ldt,
        .gdt = s.gdt,
        .idt = s.idt,
        .cr0 = s.cr0,
        .cr2 = s.cr2,
        .cr3 = s.cr3,
        .cr4 = s.cr4,
        .cr8 = s.cr8,
        .efer = s.efer,
        .apic_base = s.apic_base,
    };
    return 0;
}

/* The CPUID the vCPU was given: the VMM's table, or KVM_GET_CPUID2's answer. */
static int x86_cpuid_get(int vcpu_fd, const struct kvm_cpuid2 *given, union x86_cpuid_table *c,
                         struct errbuf *eb)
{
    if (given) {
        if (given->nent > X86_STATE_MAX_CPUID)
            return err_set(eb, -E2BIG, "the vCPU's CPUID has %u entries, more than %u", given->nent,
                           X86_STATE_MAX_CPUID);
        c->hdr.nent = given->nent;
        c->hdr.padding = 0;
        memcpy(c->hdr.entries, given->entries, given->nent * sizeof(given->entries[0]));
        return 0;
    }
    c->hdr.nent = X86_STATE_MAX_CPUID;
    c->hdr.padding = 0;
    if (ioctl(vcpu_fd, KVM_GET_CPUID2, c) < 0)
        return ioctl_err(eb, "KVM_GET_CPUID2");
    return 0;
}

/* What KVM keeps of a vCPU beyond its registers: events, MP state, LAPIC, DRs. */
static int x86_vcpu_misc_get(int vcpu_fd, const struct kvm_cpuid2 *cpuid, struct x86_vcpu_state *st,
                             struct errbuf *eb)
{
    if (ioctl(vcpu_fd, KVM_GET_LAPIC, &st->lapic) < 0)
        return ioctl_err(eb, "KVM_GET_LAPIC");
    if (ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &st->debugregs) < 0)
        return ioctl_err(eb, "KVM_GET_DEBUGREGS");
    return x86_cpuid_get(vcpu_fd, cpuid, &st->cpuid, eb);
}

int x86_vcpu_state_get(int kvm_fd, int vcpu_fd, const struct kvm_cpuid2 *cpuid,
                       struct x86_vcpu_state *st, struct errbuf *eb)
{
    int ret;

    memset(st, 0, sizeof(*st));
    /* Events and MP state before the registers: see the top of the file. */
    if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &st->events) < 0)
        return ioctl_err(eb, "KVM_GET_VCPU_EVENTS");
    if (ioctl(vcpu_fd, KVM_GET_MP_STATE, &st->mp_state) < 0)
        return ioctl_err(eb, "KVM_GET_MP_STATE");
    if (ioctl(vcpu_fd, KVM_GET_REGS, &st->regs) < 0)
        return ioctl_err(eb, "KVM_GET_REGS");
    ret = x86_fpu_get(kvm_fd, vcpu_fd, st, eb);
    if (ret)
        return ret;
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
        if (ioctl(vcpu_fd, KVM_GET_XCRS, &st->xcrs) < 0)
            return ioctl_err(eb, "KVM_GET_XCRS");
        if (st->xcrs.nr_xcrs > KVM_MAX_XCRS)
            return err_set(eb, -EIO, "KVM_GET_XCRS returned %u XCRs", st->xcrs.nr_xcrs);
    }
    ret = x86_sregs_get(kvm_fd, vcpu_fd, &st->sregs, eb);
    if (!ret)
        ret = x86_msrs_get(kvm_fd, vcpu_fd, &st->msrs, eb);
    if (!ret)
        ret = x86_vcpu_misc_get(vcpu_fd, cpuid, st, eb);
    if (ret)
        return ret;
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GET_TSC_KHZ) > 0) {
        int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
        if (khz < 0)
            return ioctl_err(eb, "KVM_GET_TSC_KHZ");
        st->tsc_khz = (uint32_t)khz;
    }
    return 0;
}

/* KVM_SET_CPUID2 with the saved table. */
static int x86_cpuid_set(int vcpu_fd, const union x86_cpuid_table *c, struct errbuf *eb)
{
    if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0) {
        int err = -errno;
        return err_set(eb, err, "KVM_SET_CPUID2: %s%s", strerror(-err),
                       err == -EBUSY ? " (the vCPU has run: restore into a fresh one)" : "");
    }
    return 0;
}

/* The saved TSC rate, if this vCPU's differs and KVM can give it. */
static int x86_tsc_khz_set(int vcpu_fd, uint32_t khz, struct errbuf *eb)
{
    int now = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);

    if (khz == 0 || (now > 0 && (uint32_t)now == khz))
        return 0;
    if (ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0) {
        int err = -errno;
        return err_set(eb, err,
                       "the snapshot's TSC ran at %u kHz, this host's at %d kHz, and KVM cannot "
                       "scale it (KVM_SET_TSC_KHZ: %s)",
                       khz, now, strerror(-err));
    }
    return 0;
}

/* KVM_SET_SREGS2, or KVM_SET_SREGS on a KVM that does not know it. */
static int x86_sregs_set(int vcpu_fd, const struct kvm_sregs2 *s2, struct errbuf *eb)
{
    if (ioctl(vcpu_fd, KVM_SET_SREGS2, s2) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOTTY)
        return ioctl_err(eb, "KVM_SET_SREGS2");
    /* No sregs2 (or refused): the plain sregs, with no pending interrupt (events has it). */
    struct kvm_sregs s = {
        .cs = s2->cs,
        .ds = s2->ds,
        .es = s2->es,
        .fs = s2->fs,
        .gs = s2->gs,
        .ss = s2->ss,
        .tr = s2->tr,
        .ldt = s2->ldt,
        .gdt = s2->gdt,
        .idt = s2->idt,
        .cr0 = s2->cr0,
        .cr2 = s2->cr2,
        .cr3 = s2->cr3,
        .cr4 = s2->cr4,
        .cr8 = s2->cr8,
        .efer = s2->efer,
        .apic_base = s2->apic_base,
    };
    return ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0 ? ioctl_err(eb, "KVM_SET_SREGS") : 0;
}

/*
 * KVM_SET_MSRS with the saved MSRs whose index is (deadline) or is not
 * (!deadline) IA32_TSC_DEADLINE. KVM returns how many it set: the next one is
 * the one it refused.
 */
static int x86_msrs_set(int vcpu_fd, const union x86_msr_table *t, bool deadline, struct errbuf *eb)
{
    union x86_msr_table *m = calloc(1, sizeof(*m));
    int ret = 0;

    if (!m)
        return err_set(eb, -ENOMEM, "out of memory for the MSRs");
    for (uint32_t i = 0; i < t->hdr.nmsrs && i < X86_STATE_MAX_MSRS; i++) {
        if ((t->hdr.entries[i].index == X86_MSR_IA32_TSC_DEADLINE) == deadline)
            m->hdr.entries[m->hdr.nmsrs++] = t->hdr.entries[i];
    }
    int n = m->hdr.nmsrs ? ioctl(vcpu_fd, KVM_SET_MSRS, m) : 0;
    if (n < 0) {
        ret = ioctl_err(eb, "KVM_SET_MSRS");
    } else if ((uint32_t)n < m->hdr.nmsrs) {
        const struct kvm_msr_entry *e = &m->hdr.entries[n];
        ret = err_set(eb, -EINVAL, "KVM refused MSR %#x = %#llx", e->index,
                      (unsigned long long)e->data);
    }
    free(m);
    return ret;
}

/*
 * KVM takes a host write to IA32_TSC that lands within a second (at the TSC's
 * rate) of the VM's last TSC write as an attempt to synchronize the vCPUs, and
 * gives the vCPU that last write's offset instead of the value written
 * (kvm_synchronize_tsc() in arch/x86/kvm/x86.c). Creating a vCPU writes 0, so
 * before Linux 6.8 (which stopped matching user writes against it) a guest
 * saved within about a second of its start came back with its TSC reset, going
 * backwards (seen under Debian 6.1's kvm-amd). A write first of a value far
 * from any TSC breaks the match, and the saved value that follows is taken as
 * it is. Only for a TSC that young: vCPUs saved later still match each other
 * on a restore, which keeps their offsets equal as KVM intends.
 */
static int x86_tsc_unmatch(int vcpu_fd, const union x86_msr_table *t, struct errbuf *eb)
{
    int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);

    for (uint32_t i = 0; i < t->hdr.nmsrs && i < X86_STATE_MAX_MSRS; i++) {
        const struct kvm_msr_entry *e = &t->hdr.entries[i];
        if (e->index != X86_MSR_IA32_TSC)
            continue;
        if (khz > 0 && e->data >= 2000ULL * (uint64_t)khz) /* 2 s of ticks */
            return 0;
        struct {
            struct kvm_msrs hdr;
            struct kvm_msr_entry e;
        } far = {.hdr.nmsrs = 1, .e = {.index = X86_MSR_IA32_TSC, .data = e->data + (1ULL << 62)}};
        if (ioctl(vcpu_fd, KVM_SET_MSRS, &far) != 1)
            return err_set(eb, -EINVAL, "KVM refused a write to IA32_TSC");
    }
    return 0;
}

/* XSAVE (or FPU), then XCRs. */
static int x86_fpu_set(int vcpu_fd, const struct x86_vcpu_state *st, struct errbuf *eb)
{
    if (!st->has_xsave) {
        if (ioctl(vcpu_fd, KVM_SET_FPU, &st->fpu) < 0)
            return ioctl_err(eb, "KVM_SET_FPU");
    } else if (ioctl(vcpu_fd, KVM_SET_XSAVE, &st->xsave) < 0) {
        /* KVM reads its own XSAVE size (4 KiB unless AMX was granted): the area has room. */
        return ioctl_err(eb, "KVM_SET_XSAVE");
    }
    if (st->xcrs.nr_xcrs && ioctl(vcpu_fd, KVM_SET_XCRS, &st->xcrs) < 0)
        return ioctl_err(eb, "KVM_SET_XCRS");
    return 0;
}

/* Steps 6 to 10 of the order at the top of the file. */
static int x86_vcpu_apic_events_set(int vcpu_fd, const struct x86_vcpu_state *st, struct errbuf *eb)
{
    if (ioctl(vcpu_fd, KVM_SET_LAPIC, &st->lapic) < 0)
        return ioctl_err(eb, "KVM_SET_LAPIC");
    int ret = x86_msrs_set(vcpu_fd, &st->msrs, true, eb);
    if (ret)
        return ret;
    if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &st->events) < 0)
        return ioctl_err(eb, "KVM_SET_VCPU_EVENTS");
    if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &st->mp_state) < 0)
        return ioctl_err(eb, "KVM_SET_MP_STATE");
    if (ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &st->debugregs) < 0)
        return ioctl_err(eb, "KVM_SET_DEBUGREGS");
    return 0;
}

int x86_vcpu_state_set(int vcpu_fd, const struct x86_vcpu_state *st, struct errbuf *eb)
{
    int ret = x86_cpuid_set(vcpu_fd, &st->cpuid, eb);

    if (!ret)
        ret = x86_tsc_khz_set(vcpu_fd, st->tsc_khz, eb);
    if (!ret)
        ret = x86_sregs_set(vcpu_fd, &st->sregs, eb);
    if (!ret)
        ret = x86_tsc_unmatch(vcpu_fd, &st->msrs, eb);
    if (!ret)
        ret = x86_msrs_set(vcpu_fd, &st->msrs, false, eb);
    if (ret)
        return ret;
    if (ioctl(vcpu_fd, KVM_SET_REGS, &st->regs) < 0)
        return ioctl_err(eb, "KVM_SET_REGS");
    ret = x86_fpu_set(vcpu_fd, st, eb);
    return ret ? ret : x86_vcpu_apic_events_set(vcpu_fd, st, eb);
}

void x86_vcpu_state_advance_tsc(struct x86_vcpu_state *st, uint64_t ns)
{
    /* kHz ticks per ms: ns * khz / 10^6, in 128 bits (years of ns at GHz rates overflow 64). */
    unsigned __int128 ticks = (unsigned __int128)ns * st->tsc_khz / 1000000;

    for (uint32_t i = 0; i < st->msrs.hdr.nmsrs && i < X86_STATE_MAX_MSRS; i++) {
        if (st->msrs.hdr.entries[i].index == X86_MSR_IA32_TSC)
            st->msrs.hdr.entries[i].data += (uint64_t)ticks;
    }
}

int x86_vcpu_kvmclock_ctrl(int vcpu_fd)
{
    /* -EINVAL: the guest has not enabled kvmclock (no PV time page to flag). */
    if (ioctl(vcpu_fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
        return -errno;
    return 0;
}

/* The CPUID registers that carry feature bits, and the bits not compared. */
enum { R_EAX, R_EBX, R_ECX, R_EDX };
static const struct {
    uint32_t function, index;
    uint8_t reg;
    uint32_t ignore;
} x86_feature_regs[] = {
    /*
     * OSXSAVE (27) follows CR4, MONITOR (3) IA32_MISC_ENABLE (KVM's runtime
     * CPUID update); the hypervisor bit (31) is petrel's own.
     */
    {0x1, 0, R_ECX, 1U << 3 | 1U << 27 | 1U << 31},
    /* APIC (9) follows the APIC base's enable; HTT (28) is petrel's topology. */
    {0x1, 0, R_EDX, 1U << 9 | 1U << 28},
    {0x7, 0, R_EBX, 0},
    {0x7, 0, R_ECX, 1U << 4}, /* OSPKE follows CR4 */
    {0x7, 0, R_EDX, 0},
    {0x7, 1, R_EAX, 0},
    {0xd, 0, R_EAX, 0}, /* the XCR0 components the guest may enable */
    {0xd, 0, R_EDX, 0},
    {0xd, 1, R_EAX, 0},
    {0x40000001, 0, R_EAX, 0}, /* KVM's paravirtual features */
    {0x80000001, 0, R_ECX, 0},
    {0x80000001, 0, R_EDX, 0},
    {0x80000007, 0, R_EDX, 0},
    {0x80000008, 0, R_EBX, 0},
};

static uint32_t x86_cpuid_reg(const struct kvm_cpuid2 *c, uint32_t function, uint32_t index,
                              uint8_t reg)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == function && e->index == index) {
            const uint32_t regs[] = {e->eax, e->ebx, e->ecx, e->edx};
            return regs[reg];
        }
    }
    return 0; /* a leaf the table lacks offers nothing */
}

/* Appends to the string in msg (of size bytes), cutting what does not fit. */
static void append(char *msg, size_t size, const char *fmt, ...) PRINTF(3, 4);
static void append(char *msg, size_t size, const char *fmt, ...)
{
    size_t len = strlen(msg);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg + len, size - len, fmt, ap);
    va_end(ap);
}

/* Appends "CPUID 0x7.0 EBX bits 5,8" to msg. */
static void x86_cpuid_describe(char *msg, size_t size, uint32_t function, uint32_t index,
                               uint8_t reg, uint32_t bits)
{
    static const char *const names[] = {"EAX", "EBX", "ECX", "EDX"};

    append(msg, size, "%sCPUID %#x.%u %s bit%s ", msg[0] ? "; " : "", function, index, names[reg],
           (bits & (bits - 1)) ? "s" : "");
    for (unsigned b = 0; b < 32; b++) {
        if (bits & (1U << b))
            append(msg, size, "%s%u", (bits & ((1U << b) - 1)) ? "," : "", b);
    }
}

/* Leaf 0's vendor string ("GenuineIntel"), "" if the table lacks it. */
static void x86_cpuid_vendor(const struct kvm_cpuid2 *c, char out[13])
{
    uint32_t v[3] = {x86_cpuid_reg(c, 0, 0, R_EBX), x86_cpuid_reg(c, 0, 0, R_EDX),
                     x86_cpuid_reg(c, 0, 0, R_ECX)};
    memcpy(out, v, 12);
    out[12] = '\0';
    for (int i = 0; i < 12; i++) {
        if (out[i] < 0x20 || out[i] > 0x7e)
            out[i] = '?';
    }
}

int x86_cpuid_check(const struct kvm_cpuid2 *saved, const struct kvm_cpuid2 *supported,
                    struct errbuf *eb)
{
    char have[13], want[13], msg[400] = "";

    x86_cpuid_vendor(saved, want);
    x86_cpuid_vendor(supported, have);
    if (strcmp(want, have) != 0)
        return err_set(eb, -ENOTSUP, "the snapshot's guest ran on a %s CPU, this host is %s", want,
                       have);
    for (size_t i = 0; i < ARRAY_SIZE(x86_feature_regs); i++) {
        uint32_t f = x86_feature_regs[i].function, idx = x86_feature_regs[i].index;
        uint8_t reg = x86_feature_regs[i].reg;
        uint32_t missing = x86_cpuid_reg(saved, f, idx, reg) &
                           ~x86_cpuid_reg(supported, f, idx, reg) & ~x86_feature_regs[i].ignore;
        if (missing)
            x86_cpuid_describe(msg, sizeof(msg), f, idx, reg, missing);
    }
    if (msg[0])
        return err_set(eb, -ENOTSUP,
                       "this host's KVM lacks CPU features the snapshot's guest was given: %s",
                       msg);
    return 0;
}

/* Reads one of the in-kernel irqchip's chips. */
static int x86_irqchip_get(int vm_fd, uint32_t id, void *chip, size_t size, struct errbuf *eb)
{
    struct kvm_irqchip c = {.chip_id = id};

    if (ioctl(vm_fd, KVM_GET_IRQCHIP, &c) < 0)
        return ioctl_err(eb, "KVM_GET_IRQCHIP");
    memcpy(chip, &c.chip, size);
    return 0;
}

static int x86_irqchip_set(int vm_fd, uint32_t id, const void *chip, size_t size, struct errbuf *eb)
{
    struct kvm_irqchip c = {.chip_id = id};

    memcpy(&c.chip, chip, size);
    return ioctl(vm_fd, KVM_SET_IRQCHIP, &c) < 0 ? ioctl_err(eb, "KVM_SET_IRQCHIP") : 0;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int x86_vm_state_get(int vm_fd, struct x86_vm_state *st, struct errbuf *eb)
{
    int ret;

    memset(st, 0, sizeof(*st));
    ret = x86_irqchip_get(vm_fd, KVM_IRQCHIP_PIC_MASTER, &st->pic[0], sizeof(st->pic[0]), eb);
    if (!ret)
        ret = x86_irqchip_get(vm_fd, KVM_IRQCHIP_PIC_SLAVE, &st->pic[1], sizeof(st->pic[1]), eb);
    if (!ret)
        ret = x86_irqchip_get(vm_fd, KVM_IRQCHIP_IOAPIC, &st->ioapic, sizeof(st->ioapic), eb);
    if (ret)
        return ret;
    if (ioctl(vm_fd, KVM_GET_PIT2, &st->pit) == 0)
        st->has_pit = true;
    else if (errno != ENXIO) /* ENXIO: the VM has no PIT */
        return ioctl_err(eb, "KVM_GET_PIT2");
    /* The host times KVM's PIT channels in its own ktime: meaningless elsewhere. */
    for (unsigned i = 0; i < ARRAY_SIZE(st->pit.channels); i++)
        st->pit.channels[i].count_load_time = 0;
    if (ioctl(vm_fd, KVM_GET_CLOCK, &st->clock) < 0)
        return ioctl_err(eb, "KVM_GET_CLOCK");
    st->realtime_ns = realtime_ns();
    return 0;
}

/* The clock as mode wants it; never behind the saved clock. */
static int x86_clock_set(int vm_fd, const struct x86_vm_state *st, enum x86_clock_restore mode,
                         struct errbuf *eb)
{
    struct kvm_clock_data c = {.clock = st->clock.clock};

    if (mode == X86_CLOCK_CATCH_UP) {
        int can = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK);
        if ((st->clock.flags & KVM_CLOCK_REALTIME) && can > 0 && (can & KVM_CLOCK_REALTIME)) {
            /* KVM adds the realtime elapsed since then, and never steps back. */
            c.flags = KVM_CLOCK_REALTIME;
            c.realtime = st->clock.realtime;
        } else {
            uint64_t now = realtime_ns();
            if (now > st->realtime_ns)
                c.clock += now - st->realtime_ns; /* a host clock set back adds nothing */
        }
    }
    return ioctl(vm_fd, KVM_SET_CLOCK, &c) < 0 ? ioctl_err(eb, "KVM_SET_CLOCK") : 0;
}

int x86_vm_state_set(int vm_fd, const struct x86_vm_state *st, enum x86_clock_restore mode,
                     struct errbuf *eb)
{
    int ret = x86_clock_set(vm_fd, st, mode, eb);

    if (!ret)
        ret = x86_irqchip_set(vm_fd, KVM_IRQCHIP_PIC_MASTER, &st->pic[0], sizeof(st->pic[0]), eb);
    if (!ret)
        ret = x86_irqchip_set(vm_fd, KVM_IRQCHIP_PIC_SLAVE, &st->pic[1], sizeof(st->pic[1]), eb);
    if (!ret)
        ret = x86_irqchip_set(vm_fd, KVM_IRQCHIP_IOAPIC, &st->ioapic, sizeof(st->ioapic), eb);
    if (ret || !st->has_pit)
        return ret;
    /* KVM restarts each channel's count from now (count_load_time is its own). */
    return ioctl(vm_fd, KVM_SET_PIT2, &st->pit) < 0 ? ioctl_err(eb, "KVM_SET_PIT2") : 0;
}

int x86_vm_clock_advanced(int vm_fd, const struct x86_vm_state *st, uint64_t *ns, struct errbuf *eb)
{
    struct kvm_clock_data now;

    if (ioctl(vm_fd, KVM_GET_CLOCK, &now) < 0)
        return ioctl_err(eb, "KVM_GET_CLOCK");
    *ns = now.clock > st->clock.clock ? now.clock - st->clock.clock : 0;
    return 0;
}
