/*
 * The KVM state of a VM, saved and restored through petrel's x86_state code on a
 * real /dev/kvm, below petrel's own VM: a VM with the in-kernel irqchip and PIT
 * and one vCPU in long mode runs a loop that counts in memory, sums the counts
 * in r12 and reports each count on port 0xf4, while the LAPIC timer (periodic,
 * 10 ms) ticks a second counter through an IDT handler; kvmclock is on. Once it
 * has counted and ticked a while, its pending port exit is completed
 * (KVM_RUN with immediate_exit), its vCPU and VM state are read, written as
 * state nodes, read back, and restored into a second VM (new fds, memory
 * copied) - once with the clock caught up, once frozen. Each restored VM must go
 * on from exactly the next count, with r12 the sum of every count so far, the
 * timer still ticking, the registers and MSRs as saved, kvmclock never behind
 * where it was, and KVMCLOCK_CTRL accepted.
 *
 * Exit status 0: passed; 1: failed (a line says what); 77: no /dev/kvm here.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libfdt.h>

#include "petrel/guest_mem.h"
#include "petrel/state.h"
#include "petrel/x86_boot.h"
#include "petrel/x86_cpu.h"
#include "petrel/x86_state.h"

#define MEM_SIZE    (4 * MiB)
#define CODE_GPA    0x100000ULL
#define COUNTER_GPA 0x200000ULL /* u64: the loop's count */
#define TICKS_GPA   0x200008ULL /* u64: LAPIC timer interrupts */
#define IDT_GPA     0x201000ULL
#define IDTR_GPA    0x202000ULL
#define PVTI_GPA    0x203000ULL /* kvmclock's pvclock_vcpu_time_info */
#define TIMER_VEC   0x40
#define PORT        0xf4

/*
 * The guest. Absolute addresses stay below 2 GiB (a disp32 is sign-extended);
 * the LAPIC at 0xfee00000 is reached through rbx.
 */
extern const uint8_t kst_guest[], kst_handler[], kst_guest_end[];
__asm__(".pushsection .rodata\n"
        "kst_guest:\n"
        "    lidt 0x202000\n"
        "    movl $0xfee00000, %ebx\n"
        "    movl $0x1ff, 0xf0(%rbx)\n"     /* SVR: APIC on, spurious vector 0xff */
        "    movl $0xb, 0x3e0(%rbx)\n"      /* timer divide by 1 */
        "    movl $0x20040, 0x320(%rbx)\n"  /* LVT timer: periodic, vector 0x40 */
        "    movl $10000000, 0x380(%rbx)\n" /* 10 ms at KVM's 1 GHz APIC bus */
        "    sti\n"
        "1:  incq 0x200000\n"
        "    movq 0x200000, %rax\n"
        "    addq %rax, %r12\n"
        "    outb %al, $0xf4\n"
        "    jmp 1b\n"
        "kst_handler:\n"
        "    incq 0x200008\n"
        "    movl $0, 0xb0(%rbx)\n" /* EOI */
        "    iretq\n"
        "kst_guest_end:\n"
        ".popsection\n");

struct vm {
    int fd, vcpu;
    struct kvm_run *run;
    size_t run_size;
    struct guest_mem mem;
    struct kvm_cpuid2 *cpuid; /* what the vCPU was given (VM 1) */
    bool xcr0_set;            /* XCR0 was set to 0x3 (the CPUID allows it) */
};

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static uint64_t mem_u64(const struct vm *vm, uint64_t gpa)
{
    uint64_t v;
    memcpy(&v, gm_ptr(&vm->mem, gpa, 8), 8);
    return v;
}

/* A VM as petrel makes one: TSS, irqchip, PIT, RAM, one vCPU with its run page. */
static int vm_make(int kvm, struct vm *vm)
{
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

    memset(vm, 0, sizeof(*vm));
    vm->fd = ioctl(kvm, KVM_CREATE_VM, 0);
    CHECK(vm->fd >= 0, "KVM_CREATE_VM: %s", strerror(errno));
    CHECK(ioctl(vm->fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) == 0, "KVM_SET_TSS_ADDR");
    CHECK(ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) == 0, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
    CHECK(ioctl(vm->fd, KVM_CREATE_PIT2, &pit) == 0, "KVM_CREATE_PIT2: %s", strerror(errno));
    CHECK(gm_init(&vm->mem, MEM_SIZE) == 0, "gm_init");
    struct kvm_userspace_memory_region r = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = vm->mem.regions[0].size,
        .userspace_addr = (uintptr_t)vm->mem.regions[0].host,
    };
    CHECK(ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) == 0, "KVM_SET_USER_MEMORY_REGION");
    vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
    CHECK(vm->vcpu >= 0, "KVM_CREATE_VCPU: %s", strerror(errno));
    int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    CHECK(size > 0, "KVM_GET_VCPU_MMAP_SIZE");
    vm->run_size = (size_t)size;
    vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu, 0);
    CHECK(vm->run != MAP_FAILED, "mmap kvm_run");
    return 0;
}

static void vm_free(struct vm *vm)
{
    munmap(vm->run, vm->run_size);
    close(vm->vcpu);
    close(vm->fd);
    gm_destroy(&vm->mem);
    free(vm->cpuid);
}

static int set_msr(int vcpu, uint32_t index, uint64_t value)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } m = {.hdr.nmsrs = 1, .e = {.index = index, .data = value}};
    CHECK(ioctl(vcpu, KVM_SET_MSRS, &m) == 1, "KVM_SET_MSRS %#x", index);
    return 0;
}

static uint64_t msr_of(const struct x86_vcpu_state *st, uint32_t index)
{
    for (uint32_t i = 0; i < st->msrs.hdr.nmsrs; i++) {
        if (st->msrs.hdr.entries[i].index == index)
            return st->msrs.hdr.entries[i].data;
    }
    return UINT64_MAX;
}

/* The first VM: the boot protocol's long mode, the guest, the IDT, and state to keep. */
static int vm1_setup(int kvm, struct vm *vm)
{
    struct kvm_cpuid2 *cpuid;
    struct errbuf eb = {{0}};

    if (vm_make(kvm, vm))
        return -1;
    CHECK(x86_cpuid_supported(kvm, &cpuid) == 0, "x86_cpuid_supported");
    x86_cpuid_patch(cpuid, 0, 1);
    CHECK(x86_boot_tables(&vm->mem) == 0, "x86_boot_tables");
    int ret = x86_vcpu_setup(vm->vcpu, cpuid, true, CODE_GPA, &eb);
    vm->cpuid = cpuid;
    CHECK(ret == 0, "x86_vcpu_setup: %s", eb.msg);
    memcpy(gm_ptr(&vm->mem, CODE_GPA, 4096), kst_guest, (size_t)(kst_guest_end - kst_guest));

    /* A 64-bit interrupt gate for the timer vector, and the IDTR lidt loads. */
    uint64_t handler = CODE_GPA + (uint64_t)(kst_handler - kst_guest);
    uint8_t *gate = gm_ptr(&vm->mem, IDT_GPA + 16 * TIMER_VEC, 16);
    put_le16(gate, (uint16_t)handler);
    put_le16(gate + 2, BOOT_CS_SEL);
    gate[4] = 0;
    gate[5] = 0x8e; /* present, DPL 0, interrupt gate */
    put_le16(gate + 6, (uint16_t)(handler >> 16));
    put_le32(gate + 8, (uint32_t)(handler >> 32));
    uint8_t *idtr = gm_ptr(&vm->mem, IDTR_GPA, 10);
    put_le16(idtr, 256 * 16 - 1);
    put_le64(idtr + 2, IDT_GPA);

    /* State the guest does not touch, so a lost one shows. */
    if (set_msr(vm->vcpu, 0xc0000082, 0xffffffff81000000ULL) || /* LSTAR */
        set_msr(vm->vcpu, 0xc0000102, 0x12345000) ||            /* KERNEL_GS_BASE */
        set_msr(vm->vcpu, 0x176, 0xffffffff81000100ULL) ||      /* SYSENTER_EIP */
        set_msr(vm->vcpu, 0x4b564d01, PVTI_GPA | 1))            /* kvmclock on */
        return -1;
    struct kvm_debugregs dr = {
        .db = {0x1000, 0x2000, 0x3000, 0x4000}, .dr6 = 0xffff0ff0, .dr7 = 0x400};
    CHECK(ioctl(vm->vcpu, KVM_SET_DEBUGREGS, &dr) == 0, "KVM_SET_DEBUGREGS");
    /* XCR0 where the guest's CPUID lets it hold x87 and SSE (leaf 0xD): not where petrel
     * hides XSAVE (QEMU's TCG, x86_cpu.h), and KVM refuses such an XCR0 there. */
    const struct kvm_cpuid_entry2 *xd = x86_cpuid_find(cpuid, 0xd, 0);
    vm->xcr0_set = xd && (xd->eax & 0x3) == 0x3;
    if (vm->xcr0_set) {
        struct kvm_xcrs xcrs = {.nr_xcrs = 1, .xcrs = {{.xcr = 0, .value = 0x3}}};
        CHECK(ioctl(vm->vcpu, KVM_SET_XCRS, &xcrs) == 0, "KVM_SET_XCRS: %s", strerror(errno));
    }
    return 0;
}

/*
 * Runs until the count reaches count and the ticks ticks (at most max_exits
 * port exits), checking each reported count is the one after the last. *last is
 * the count the VM starts from.
 */
static int run_until(struct vm *vm, uint64_t *last, uint64_t count, uint64_t ticks,
                     unsigned long max_exits)
{
    for (unsigned long exits = 0;; exits++) {
        CHECK(exits < max_exits,
              "no progress after %lu exits (count %" PRIu64 ", ticks %" PRIu64 ")", exits,
              mem_u64(vm, COUNTER_GPA), mem_u64(vm, TICKS_GPA));
        CHECK(ioctl(vm->vcpu, KVM_RUN, 0) == 0, "KVM_RUN: %s", strerror(errno));
        struct kvm_run *r = vm->run;
        CHECK(r->exit_reason == KVM_EXIT_IO && r->io.port == PORT &&
                  r->io.direction == KVM_EXIT_IO_OUT,
              "unexpected exit %u (port %#x)", r->exit_reason, r->io.port);
        uint64_t now = mem_u64(vm, COUNTER_GPA);
        uint8_t reported = *((uint8_t *)r + r->io.data_offset);
        CHECK(now == *last + 1 && reported == (uint8_t)now,
              "count %" PRIu64 " (reported %u) after %" PRIu64, now, reported, *last);
        *last = now;
        if (now >= count && mem_u64(vm, TICKS_GPA) >= ticks)
            return 0;
    }
}

/* Completes the pending port exit without entering the guest, as a pause does. */
static int park(struct vm *vm)
{
    vm->run->immediate_exit = 1;
    int ret = ioctl(vm->vcpu, KVM_RUN, 0);
    int err = errno;
    vm->run->immediate_exit = 0;
    CHECK(ret < 0 && err == EINTR, "KVM_RUN with immediate_exit: %d %s", ret, strerror(err));
    return 0;
}

/* The state through the snapshot format: put into a tree, taken back out. */
static int through_tree(struct x86_vcpu_state *cpu, struct x86_vm_state *vmst)
{
    size_t size = 512 * 1024;
    void *fdt = malloc(size);
    struct state_out out = {.fdt = fdt};
    struct errbuf eb = {{0}};

    CHECK(fdt && fdt_create(fdt, (int)size) == 0 && fdt_finish_reservemap(fdt) == 0 &&
              fdt_begin_node(fdt, "") == 0,
          "fdt_create");
    state_begin(&out, "cpu0", X86_VCPU_STATE_COMPATIBLE);
    x86_vcpu_state_put(cpu, &out);
    state_end(&out);
    state_begin(&out, "kvm", X86_VM_STATE_COMPATIBLE);
    x86_vm_state_put(vmst, &out);
    state_end(&out);
    CHECK(out.err == 0 && fdt_end_node(fdt) == 0 && fdt_finish(fdt) == 0, "put: %d", out.err);
    CHECK(fdt_check_full(fdt, size) == 0, "fdt_check_full");
    printf("state tree: %d bytes, %u MSRs, %u CPUID entries, XSAVE %u bytes\n", fdt_totalsize(fdt),
           cpu->msrs.hdr.nmsrs, cpu->cpuid.hdr.nent, cpu->xsave_size);

    struct state_in root = {.fdt = fdt, .node = 0, .eb = &eb}, in;
    CHECK(state_open(&root, "cpu0", X86_VCPU_STATE_COMPATIBLE, &in) == 0, "%s", eb.msg);
    CHECK(x86_vcpu_state_take(cpu, &in) == 0, "vCPU take: %s", eb.msg);
    CHECK(state_open(&root, "kvm", X86_VM_STATE_COMPATIBLE, &in) == 0, "%s", eb.msg);
    CHECK(x86_vm_state_take(vmst, &in) == 0, "VM take: %s", eb.msg);
    free(fdt);
    return 0;
}

/* The restore path of a snapshot (x86_state.h's order), into the fresh VM vm. */
static int restore(int kvm, struct vm *vm, const struct vm *from,
                   const struct x86_vcpu_state *saved, const struct x86_vm_state *vmst,
                   enum x86_clock_restore mode)
{
    struct errbuf eb = {{0}};
    struct kvm_cpuid2 *supported;
    uint64_t advanced;

    if (vm_make(kvm, vm))
        return -1;
    memcpy(vm->mem.regions[0].host, from->mem.regions[0].host, from->mem.regions[0].size);
    vm->xcr0_set = from->xcr0_set;
    CHECK(x86_cpuid_supported(kvm, &supported) == 0, "x86_cpuid_supported");
    int ret = x86_cpuid_check(&saved->cpuid.hdr, supported, &eb);
    free(supported);
    CHECK(ret == 0, "x86_cpuid_check on the same host: %s", eb.msg);
    CHECK(x86_vm_state_set(vm->fd, vmst, mode, &eb) == 0, "x86_vm_state_set: %s", eb.msg);
    CHECK(x86_vm_clock_advanced(vm->fd, vmst, &advanced, &eb) == 0, "%s", eb.msg);
    struct x86_vcpu_state *st = malloc(sizeof(*st));
    CHECK(st, "malloc");
    memcpy(st, saved, sizeof(*st));
    x86_vcpu_state_advance_tsc(st, advanced);
    ret = x86_vcpu_state_set(vm->vcpu, st, &eb);
    free(st);
    CHECK(ret == 0, "x86_vcpu_state_set: %s", eb.msg);
    /* kvmclock was on in the saved MSRs: KVMCLOCK_CTRL must find it on (no EINVAL). */
    CHECK(ioctl(vm->vcpu, KVM_KVMCLOCK_CTRL, 0) == 0, "KVM_KVMCLOCK_CTRL: %s", strerror(errno));
    CHECK(x86_vcpu_kvmclock_ctrl(vm->vcpu) == 0, "x86_vcpu_kvmclock_ctrl");
    return 0;
}

/* What KVM holds now, against what was saved. */
static int compare(int kvm, const struct vm *vm, const struct x86_vcpu_state *saved,
                   const struct x86_vm_state *vmst)
{
    struct x86_vcpu_state *now = malloc(sizeof(*now));
    struct errbuf eb = {{0}};
    struct kvm_clock_data clock;

    CHECK(now && x86_vcpu_state_get(kvm, vm->vcpu, &saved->cpuid.hdr, now, &eb) == 0, "get: %s",
          eb.msg);
    CHECK(memcmp(&now->regs, &saved->regs, sizeof(now->regs)) == 0, "regs differ");
    CHECK(now->sregs.cr0 == saved->sregs.cr0 && now->sregs.cr3 == saved->sregs.cr3 &&
              now->sregs.cr4 == saved->sregs.cr4 && now->sregs.efer == saved->sregs.efer &&
              now->sregs.apic_base == saved->sregs.apic_base &&
              memcmp(&now->sregs.cs, &saved->sregs.cs, sizeof(now->sregs.cs)) == 0 &&
              now->sregs.idt.base == saved->sregs.idt.base,
          "sregs differ");
    CHECK(now->xcrs.nr_xcrs == saved->xcrs.nr_xcrs &&
              now->xcrs.xcrs[0].value == saved->xcrs.xcrs[0].value &&
              (!vm->xcr0_set || now->xcrs.xcrs[0].value == 0x3),
          "XCR0 %#llx", (unsigned long long)now->xcrs.xcrs[0].value);
    CHECK(memcmp(now->debugregs.db, saved->debugregs.db, sizeof(now->debugregs.db)) == 0,
          "debug registers differ");
    CHECK(now->mp_state.mp_state == saved->mp_state.mp_state, "MP state");
    CHECK(now->xsave_size == saved->xsave_size &&
              memcmp(now->xsave.bytes, saved->xsave.bytes, 512) == 0,
          "the XSAVE legacy area differs");
    static const uint32_t same[] = {0xc0000082, 0xc0000102, 0x176, 0x4b564d01};
    for (size_t i = 0; i < ARRAY_SIZE(same); i++)
        CHECK(msr_of(now, same[i]) == msr_of(saved, same[i]), "MSR %#x: %#" PRIx64 " not %#" PRIx64,
              same[i], msr_of(now, same[i]), msr_of(saved, same[i]));
    CHECK(msr_of(now, X86_MSR_IA32_TSC) >= msr_of(saved, X86_MSR_IA32_TSC),
          "the TSC went back: %" PRIu64 " < %" PRIu64, msr_of(now, X86_MSR_IA32_TSC),
          msr_of(saved, X86_MSR_IA32_TSC));
    /* The LAPIC's timer registers: LVT timer, initial count (the current count moves). */
    CHECK(memcmp(now->lapic.regs + 0x320, saved->lapic.regs + 0x320, 4) == 0 &&
              memcmp(now->lapic.regs + 0x380, saved->lapic.regs + 0x380, 4) == 0 &&
              memcmp(now->lapic.regs + 0xf0, saved->lapic.regs + 0xf0, 4) == 0,
          "the LAPIC's timer differs");
    free(now);
    CHECK(ioctl(vm->fd, KVM_GET_CLOCK, &clock) == 0, "KVM_GET_CLOCK");
    CHECK(clock.clock >= vmst->clock.clock, "the clock went back: %llu < %llu",
          (unsigned long long)clock.clock, (unsigned long long)vmst->clock.clock);
    return 0;
}

/* Restores into a fresh VM and checks it goes on exactly. */
static int restore_and_run(int kvm, const struct vm *vm1, const struct x86_vcpu_state *saved,
                           const struct x86_vm_state *vmst, enum x86_clock_restore mode,
                           uint64_t count, uint64_t ticks, uint64_t pv_time)
{
    struct vm vm2;
    uint64_t last = count;

    if (restore(kvm, &vm2, vm1, saved, vmst, mode) || compare(kvm, &vm2, saved, vmst))
        return -1;
    if (run_until(&vm2, &last, count + 50, ticks + 3, 2000000))
        return -1;
    struct kvm_regs regs;
    CHECK(ioctl(vm2.vcpu, KVM_GET_REGS, &regs) == 0, "KVM_GET_REGS");
    CHECK(regs.r12 == last * (last + 1) / 2, "r12 %llu, not the sum of 1..%" PRIu64,
          (unsigned long long)regs.r12, last);
    uint64_t pv_now = mem_u64(&vm2, PVTI_GPA + 16);
    uint8_t pv_flags = *(uint8_t *)gm_ptr(&vm2.mem, PVTI_GPA + 29, 1);
    CHECK(pv_now >= pv_time, "kvmclock's system_time went back: %" PRIu64 " < %" PRIu64, pv_now,
          pv_time);
    CHECK(pv_flags & 2, "kvmclock's PVCLOCK_GUEST_STOPPED not set (flags %#x)", pv_flags);
    printf("%s: went on from %" PRIu64 " to %" PRIu64 ", ticks %" PRIu64 " -> %" PRIu64
           ", kvmclock +%" PRIu64 " ns\n",
           mode == X86_CLOCK_FROZEN ? "frozen" : "catch-up", count, last, ticks,
           mem_u64(&vm2, TICKS_GPA), pv_now - pv_time);
    vm_free(&vm2);
    return 0;
}

int main(void)
{
    struct errbuf eb = {{0}};
    struct vm vm1;
    uint64_t last = 0;

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        printf("SKIP: /dev/kvm: %s\n", strerror(errno));
        return 77;
    }
    if (vm1_setup(kvm, &vm1) || run_until(&vm1, &last, 100, 3, 2000000) || park(&vm1))
        return 1;
    uint64_t count = mem_u64(&vm1, COUNTER_GPA), ticks = mem_u64(&vm1, TICKS_GPA);
    uint64_t pv_time = mem_u64(&vm1, PVTI_GPA + 16);
    struct x86_vcpu_state *saved = malloc(sizeof(*saved));
    struct x86_vm_state vmst;
    if (!saved || x86_vcpu_state_get(kvm, vm1.vcpu, vm1.cpuid, saved, &eb) ||
        x86_vm_state_get(vm1.fd, &vmst, &eb)) {
        fprintf(stderr, "FAIL: get: %s\n", eb.msg);
        return 1;
    }
    printf("VM 1 stopped at count %" PRIu64 ", %" PRIu64 " ticks, rip %#llx\n", count, ticks,
           (unsigned long long)saved->regs.rip);
    if (through_tree(saved, &vmst))
        return 1;
    if (restore_and_run(kvm, &vm1, saved, &vmst, X86_CLOCK_CATCH_UP, count, ticks, pv_time) ||
        restore_and_run(kvm, &vm1, saved, &vmst, X86_CLOCK_FROZEN, count, ticks, pv_time))
        return 1;
    vm_free(&vm1);
    free(saved);
    close(kvm);
    printf("%s\n", failures ? "FAILED" : "PASS");
    return failures ? 1 : 0;
}
