/*
 * How an AP gets from its start-up IPI to C (see include/kit/smp.h).
 *
 * smp_trampoline .. smp_trampoline_end is copied by the BSP to
 * KIT_SMP_TRAMPOLINE and assembled for that address; it sits in .rodata, as
 * data (check_insns.py reads .text as 64-bit code). The SIPI starts the AP
 * there in real mode with cs = KIT_SMP_TRAMPOLINE >> 4, ip = 0. The AP loads
 * the kit GDT (its limit and base patched in by the BSP from sgdt), enters
 * 32-bit protected mode on KIT_CS32, turns on PAE, loads the BSP's CR3
 * (patched in too; petrel's page tables and the 32-bit entry's are both below
 * 4 GiB), sets EFER.LME and CR0.PG, and far-jumps into the image at
 * smp_ap_entry64 on KIT_CS64. CR0 is written whole: the INIT state has
 * caching off (CD, NW), which a real CPU would keep.
 *
 * smp_ap_entry64 takes a slot with lock xadd on smp_next_slot (1, 2, ... in
 * arrival order; 0 is the BSP), switches to that slot's stack in .ap_stacks
 * and calls smp_ap_main(slot). An AP past KIT_SMP_MAX_CPUS counts itself in
 * smp_ignored and halts.
 *
 * ~35 instructions from SIPI to C. Nothing here may use SSE/x87 or int3: the
 * host's instruction emulator on kvm_pvm fails on them (PVM.md).
 */
#include "kit/segment.h"
#include "kit/smp.h"

#define CR0_PE   0x00000001
#define CR0_ET   0x00000010
#define CR0_NE   0x00000020
#define CR0_PG   0x80000000
#define CR4_PAE  0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100

/* The address a trampoline label has once copied. */
#define T(label) (KIT_SMP_TRAMPOLINE + (label - smp_trampoline))

    .section .rodata.smp_trampoline, "a"
    .code16
    .globl smp_trampoline
smp_trampoline:
    cli
    xorw %ax, %ax
    movw %ax, %ds /* the labels below are linear addresses under 64 KiB */
    lgdtl T(smp_tramp_gdt)
    movl $(CR0_PE + CR0_ET + CR0_NE), %eax
    movl %eax, %cr0
    ljmpl $KIT_CS32, $T(1f)

    .code32
1:
    movl $KIT_DS, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %fs
    movl %eax, %gs
    movl %eax, %ss
    movl $CR4_PAE, %eax
    movl %eax, %cr4
    movl T(smp_tramp_cr3), %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl $(CR0_PG + CR0_PE + CR0_ET + CR0_NE), %eax
    movl %eax, %cr0
    ljmp $KIT_CS64, $smp_ap_entry64

    /* Patched by the BSP after the copy (lib/smp.c). */
    .balign 8
    .globl smp_tramp_gdt
smp_tramp_gdt:
    .word 0 /* limit */
    .long 0 /* base */
    .balign 4
    .globl smp_tramp_cr3
smp_tramp_cr3:
    .long 0
    .globl smp_trampoline_end
smp_trampoline_end:

    .code64
    .section .text, "ax"
smp_ap_entry64:
    movl $1, %eax
    lock xaddl %eax, smp_next_slot(%rip)
    cmpl $KIT_SMP_MAX_CPUS, %eax
    jae 2f
    movl %eax, %edi
    /* Slot s (1 ..) owns [smp_stacks + (s - 1) * size, smp_stacks + s * size). */
    shll $12, %eax
    leaq smp_stacks(%rip), %rsp
    addq %rax, %rsp
    call smp_ap_main
2:
    lock incl smp_ignored(%rip)
3:
    cli
    hlt
    jmp 3b

#if KIT_SMP_STACK_SIZE != 1 << 12
#error "smp_ap_entry64 shifts by log2(KIT_SMP_STACK_SIZE)"
#endif

    /* Not cleared by the 64-bit entry (kit.ld keeps it out of .bss): a
     * stack needs no zeroing, and clearing costs ~0.1 us a byte on kvm_pvm. */
    .section .ap_stacks, "aw", @nobits
    .balign 4096
smp_stacks:
    .skip (KIT_SMP_MAX_CPUS - 1) * KIT_SMP_STACK_SIZE

    .section .note.GNU-stack, "", @progbits
