/* x86 vCPU set-up: CPUID, MSRs, FPU, LAPIC, long-mode registers, boot tables. */
#include "petrel/x86_cpu.h"

#include <cpuid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "petrel/x86_boot.h"

#define CR0_PE   (1ULL << 0)
#define CR0_ET   (1ULL << 4)
#define CR0_NE   (1ULL << 5)
#define CR0_PG   (1ULL << 31)
#define CR4_PAE  (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define PTE_P  (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_PS (1ULL << 7)

int x86_cpuid_supported(int kvm_fd, struct kvm_cpuid2 **out)
{
    for (unsigned nent = CPUID_MAX_ENTRIES;; nent *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
        if (!c)
            return -ENOMEM;
        c->nent = nent;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            /*
             * KVM emulates the LAPIC's TSC-deadline mode but leaves the CPUID
             * bit to userspace (api.rst, KVM_GET_SUPPORTED_CPUID). Without it
             * Linux calibrates the LAPIC timer against another clock at boot.
             */
            struct kvm_cpuid_entry2 *leaf1 = x86_cpuid_find(c, 0x1, 0);
            if (leaf1 && ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
                leaf1->ecx |= X86_CPUID1_ECX_TSC_DEADLINE;
            if (x86_host_is_tcg())
                x86_cpuid_hide_xsave(c);
            *out = c;
            return 0;
        }
        int err = -errno;
        free(c);
        if (err != -E2BIG || nent >= 4096)
            return err;
    }
}

bool x86_host_is_tcg(void)
{
    unsigned a, b, c, d;
    char sig[13] = {0};

    __cpuid(1, a, b, c, d);
    if (!(c & (1U << 31)))
        return false; /* not under a hypervisor */
    __cpuid(0x40000000, a, b, c, d);
    memcpy(sig, &b, 4);
    memcpy(sig + 4, &c, 4);
    memcpy(sig + 8, &d, 4);
    return !strcmp(sig, "TCGTCGTCGTCG");
}

void x86_cpuid_hide_xsave(struct kvm_cpuid2 *cpuid)
{
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        switch (e->function) {
        case 0x1:
            /* FMA 12, XSAVE 26, OSXSAVE 27, AVX 28, F16C 29. */
            e->ecx &= ~(1U << 12 | 1U << 26 | 1U << 27 | 1U << 28 | 1U << 29);
            break;
        case 0x7:
            if (e->index == 0) {
                /* AVX2 5, MPX 14, AVX-512 F DQ IFMA PF ER CD BW VL. */
                e->ebx &= ~(1U << 5 | 1U << 14 | 1U << 16 | 1U << 17 | 1U << 21 | 1U << 26 |
                            1U << 27 | 1U << 28 | 1U << 30 | 1U << 31);
                /* AVX-512 VBMI 1, PKU 3, OSPKE 4, VBMI2 6, VAES 9, VPCLMULQDQ 10,
                 * AVX-512 VNNI 11, BITALG 12, VPOPCNTDQ 14. */
                e->ecx &= ~(1U << 1 | 1U << 3 | 1U << 4 | 1U << 6 | 1U << 9 | 1U << 10 | 1U << 11 |
                            1U << 12 | 1U << 14);
                /* AVX-512 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX 22 24 25, FP16 23. */
                e->edx &=
                    ~(1U << 2 | 1U << 3 | 1U << 8 | 1U << 22 | 1U << 23 | 1U << 24 | 1U << 25);
            } else if (e->index == 1) {
                e->eax &= ~(1U << 4 | 1U << 5); /* AVX-VNNI, AVX-512 BF16 */
            }
            break;
        case 0xd:
            e->eax = e->ebx = e->ecx = e->edx = 0; /* no XSAVE state components */
            break;
        case 0x80000001:
            e->ecx &= ~(1U << 11 | 1U << 16); /* XOP, FMA4 */
            break;
        }
    }
}

unsigned x86_core_bits(unsigned n)
{
    unsigned bits = 0;

    while ((1U << bits) < n)
        bits++;
    return bits;
}

struct kvm_cpuid_entry2 *x86_cpuid_find(struct kvm_cpuid2 *cpuid, uint32_t function, uint32_t index)
{
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        if (e->function == function && e->index == index)
            return e;
    }
    return NULL;
}

void x86_cpuid_patch(struct kvm_cpuid2 *cpuid, unsigned apic_id, unsigned nr_vcpus)
{
    unsigned bits = x86_core_bits(nr_vcpus);

    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        switch (e->function) {
        case 0x1:
            /* EBX: initial APIC ID [31:24], addressable logical IDs [23:16]. */
            e->ebx = (e->ebx & 0xffff) | (apic_id & 0xff) << 24 |
                     ((1U << bits) > 255 ? 255 : 1U << bits) << 16;
            if (nr_vcpus > 1)
                e->edx |= 1U << 28; /* HTT: the [23:16] field is valid */
            else
                e->edx &= ~(1U << 28);
            e->ecx |= 1U << 31; /* running under a hypervisor */
            break;
        case 0x4: {
            /* Cores per package [31:26]; the last-level cache is shared by all. */
            unsigned level = (e->eax >> 5) & 7;
            unsigned sharing = level >= 3 ? (1U << bits) - 1 : 0;
            if ((e->eax & 0x1f) == 0)
                break; /* no more caches */
            e->eax = (e->eax & 0x3fff) | (sharing & 0xfff) << 14 | ((1U << bits) - 1) << 26;
            break;
        }
        case 0xb:
        case 0x1f:
            /* Extended topology: level 0 = SMT (1 thread), level 1 = core (nr_vcpus). */
            e->edx = apic_id;
            if (e->index == 0) {
                e->eax = 0;
                e->ebx = 1;
                e->ecx = 1 << 8;
            } else if (e->index == 1) {
                e->eax = bits;
                e->ebx = nr_vcpus;
                e->ecx = 2 << 8 | 1;
            } else {
                e->eax = e->ebx = 0;
                e->ecx = e->index & 0xff;
            }
            break;
        case 0x80000008:
            /* AMD: ApicIdCoreIdSize [15:12], NC = cores - 1 [7:0]. */
            e->ecx = (e->ecx & ~0xf0ffU) | bits << 12 | ((nr_vcpus - 1) & 0xff);
            break;
        case 0x8000001e:
            /* AMD: extended APIC ID, core ID, one thread per core, node 0. */
            e->eax = apic_id;
            e->ebx = (e->ebx & ~0xffffU) | (apic_id & 0xff);
            e->ecx = 0;
            break;
        }
    }
}

/* A GDT descriptor: base 0, the given flags+access and 20-bit limit. */
static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
    return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
           ((uint64_t)(limit & 0xf0000) << 32) | ((uint64_t)(base & 0x00ffffff) << 16) |
           (limit & 0xffff);
}

int x86_boot_tables(const struct guest_mem *gm)
{
    uint64_t gdt[6] = {
        [BOOT_CS_SEL / 8] = gdt_entry(0xa09b, 0, 0xfffff), /* 64-bit code */
        [BOOT_DS_SEL / 8] = gdt_entry(0xc093, 0, 0xfffff), /* data */
        [BOOT_TSS_SEL / 8] = gdt_entry(0x008b, 0, 0x67),   /* busy TSS, for VM entry */
    };
    uint8_t *g = gm_ptr(gm, BOOT_GDT_GPA, sizeof(gdt));
    uint8_t *idt = gm_ptr(gm, BOOT_IDT_GPA, 8);
    uint8_t *pml4 = gm_ptr(gm, BOOT_PML4_GPA, 4096);
    uint8_t *pdpt = gm_ptr(gm, BOOT_PDPT_GPA, 4096);
    uint8_t *pd = gm_ptr(gm, BOOT_PD_GPA, 4096 * BOOT_PD_PAGES);

    if (!g || !idt || !pml4 || !pdpt || !pd)
        return -ENOSPC;
    for (unsigned i = 0; i < ARRAY_SIZE(gdt); i++)
        put_le64(g + 8 * i, gdt[i]);
    memset(idt, 0, 8);
    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    put_le64(pml4, BOOT_PDPT_GPA | PTE_P | PTE_RW);
    for (unsigned i = 0; i < BOOT_PD_PAGES; i++)
        put_le64(pdpt + 8 * i, (BOOT_PD_GPA + 4096ULL * i) | PTE_P | PTE_RW);
    /* 2048 2 MiB pages: an identity map of the low 4 GiB, the hole included. */
    for (uint64_t i = 0; i < 512ULL * BOOT_PD_PAGES; i++)
        put_le64(pd + 8 * i, (i << 21) | PTE_P | PTE_RW | PTE_PS);
    return 0;
}

static int x86_set_msrs(int fd, struct errbuf *eb)
{
    static const struct {
        uint32_t index;
        uint64_t value;
    } msrs[] = {
        {0x174, 0},          /* IA32_SYSENTER_CS */
        {0x175, 0},          /* IA32_SYSENTER_ESP */
        {0x176, 0},          /* IA32_SYSENTER_EIP */
        {0xc0000081, 0},     /* STAR */
        {0xc0000082, 0},     /* LSTAR */
        {0xc0000083, 0},     /* CSTAR */
        {0xc0000084, 0},     /* SYSCALL_MASK */
        {0xc0000102, 0},     /* KERNEL_GS_BASE */
        {0x1a0, 1},          /* IA32_MISC_ENABLE: fast strings */
        {0x2ff, 1 << 11 | 6} /* MTRRdefType: MTRRs on, write-back by default */
    };
    /* kvm_msrs ends in a flexible array: lay it out in a buffer (portable C, no GNU VLA-in-struct).
     */
    union {
        struct kvm_msrs hdr;
        uint8_t bytes[sizeof(struct kvm_msrs) + ARRAY_SIZE(msrs) * sizeof(struct kvm_msr_entry)];
    } m;

    memset(&m, 0, sizeof(m));
    m.hdr.nmsrs = ARRAY_SIZE(msrs);
    for (unsigned i = 0; i < ARRAY_SIZE(msrs); i++) {
        m.hdr.entries[i].index = msrs[i].index;
        m.hdr.entries[i].data = msrs[i].value;
    }
    int n = ioctl(fd, KVM_SET_MSRS, &m);
    if (n < 0)
        return err_set(eb, -errno, "KVM_SET_MSRS: %s", strerror(errno));
    if ((unsigned)n < ARRAY_SIZE(msrs))
        return err_set(eb, -EINVAL, "KVM refused to set MSR %#x", msrs[n].index);
    return 0;
}

static int x86_set_lapic_lints(int fd, struct errbuf *eb)
{
    struct kvm_lapic_state lapic;

    if (ioctl(fd, KVM_GET_LAPIC, &lapic) < 0)
        return err_set(eb, -errno, "KVM_GET_LAPIC: %s", strerror(errno));
    /* LINT0 delivers the 8259's ExtINT, LINT1 the NMI, as on a PC. */
    put_le32((uint8_t *)lapic.regs + 0x350, 7 << 8);
    put_le32((uint8_t *)lapic.regs + 0x360, 4 << 8);
    if (ioctl(fd, KVM_SET_LAPIC, &lapic) < 0)
        return err_set(eb, -errno, "KVM_SET_LAPIC: %s", strerror(errno));
    return 0;
}

static int x86_set_boot_regs(int fd, uint64_t entry, struct errbuf *eb)
{
    struct kvm_sregs sregs;
    struct kvm_regs regs;

    if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0)
        return err_set(eb, -errno, "KVM_GET_SREGS: %s", strerror(errno));
    struct kvm_segment code = {
        .base = 0,
        .limit = 0xffffffff,
        .selector = BOOT_CS_SEL,
        .type = 0xb,
        .present = 1,
        .dpl = 0,
        .db = 0,
        .s = 1,
        .l = 1,
        .g = 1,
    };
    struct kvm_segment data = {
        .base = 0,
        .limit = 0xffffffff,
        .selector = BOOT_DS_SEL,
        .type = 0x3,
        .present = 1,
        .dpl = 0,
        .db = 1,
        .s = 1,
        .l = 0,
        .g = 1,
    };
    struct kvm_segment tss = {
        .base = 0,
        .limit = 0x67,
        .selector = BOOT_TSS_SEL,
        .type = 0xb,
        .present = 1,
        .s = 0,
    };
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.tr = tss;
    sregs.gdt.base = BOOT_GDT_GPA;
    sregs.gdt.limit = 6 * 8 - 1;
    sregs.idt.base = BOOT_IDT_GPA;
    sregs.idt.limit = 7;
    sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
    sregs.cr3 = BOOT_PML4_GPA;
    sregs.cr4 = CR4_PAE;
    sregs.efer = EFER_LME | EFER_LMA;
    if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0)
        return err_set(eb, -errno, "KVM_SET_SREGS: %s", strerror(errno));

    memset(&regs, 0, sizeof(regs));
    regs.rflags = 0x2;
    regs.rip = entry;
    regs.rsp = BOOT_STACK_GPA;
    regs.rsi = BOOT_ZERO_PAGE_GPA;
    if (ioctl(fd, KVM_SET_REGS, &regs) < 0)
        return err_set(eb, -errno, "KVM_SET_REGS: %s", strerror(errno));
    return 0;
}

int x86_vcpu_setup(int fd, const struct kvm_cpuid2 *cpuid, bool bsp, uint64_t entry,
                   struct errbuf *eb)
{
    struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
    int ret;

    if (ioctl(fd, KVM_SET_CPUID2, cpuid) < 0)
        return err_set(eb, -errno, "KVM_SET_CPUID2: %s", strerror(errno));
    ret = x86_set_msrs(fd, eb);
    if (ret)
        return ret;
    if (ioctl(fd, KVM_SET_FPU, &fpu) < 0)
        return err_set(eb, -errno, "KVM_SET_FPU: %s", strerror(errno));
    ret = x86_set_lapic_lints(fd, eb);
    if (ret)
        return ret;
    /* APs keep their reset state and wait for INIT/SIPI in the in-kernel LAPIC. */
    return bsp ? x86_set_boot_regs(fd, entry, eb) : 0;
}

void x86_vcpu_dump(int fd, unsigned id, FILE *f)
{
    struct kvm_regs r;
    struct kvm_sregs s;

    if (ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &s) < 0) {
        fprintf(f, "vCPU %u: registers unavailable: %s\n", id, strerror(errno));
        return;
    }
    fprintf(f,
            "vCPU %u registers:\n"
            " rip %016llx rsp %016llx rflags %016llx\n"
            " rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
            " rsi %016llx rdi %016llx rbp %016llx\n"
            " r8  %016llx r9  %016llx r10 %016llx r11 %016llx\n"
            " r12 %016llx r13 %016llx r14 %016llx r15 %016llx\n"
            " cs %04x ss %04x ds %04x es %04x fs %04x gs %04x tr %04x\n"
            " cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx\n"
            " gdt %016llx/%04x idt %016llx/%04x\n",
            id, r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9,
            r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, s.cs.selector, s.ss.selector, s.ds.selector,
            s.es.selector, s.fs.selector, s.gs.selector, s.tr.selector, s.cr0, s.cr2, s.cr3, s.cr4,
            s.efer, s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
}
