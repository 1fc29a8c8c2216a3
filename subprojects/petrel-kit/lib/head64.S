/*
 * The 64-bit entry, at load address + 0x200 (0x100200), as the 64-bit boot
 * protocol requires (boot.rst, "64-bit Boot Protocol"): long mode, RSI = zero
 * page, interrupts off, identity page tables covering at least the image
 * (init_size), the zero page and the command line. petrel starts the BSP here;
 * the kit's own 32-bit entry ends here too.
 *
 * It keeps the loader's page tables (building new ones costs ~1 us an
 * instruction on kvm_pvm; see PVM.md), loads the kit GDT, takes the stack,
 * clears bss and calls kit_start(zero page). Nothing here may use SSE/x87 or
 * int3: the host's instruction emulator fails on them.
 */
#include "kit/segment.h"

    .code64
    .section .head64, "ax"
    .globl startup_64
startup_64:
    cli
    cld
    lgdt kit_gdt_desc(%rip)
    movl $KIT_DS, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %fs
    movl %eax, %gs
    movl %eax, %ss
    leaq kit_stack_top(%rip), %rsp
    /* Reload cs from our table: the loader's GDT may not outlive the boot. */
    pushq $KIT_CS64
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
1:
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    shrq $3, %rcx
    xorl %eax, %eax
    rep stosq
    movq %rsi, %rdi
    call kit_start
2:
    cli
    hlt
    jmp 2b

    .section .data, "aw"
    .balign 16
    .globl kit_gdt
kit_gdt:
    .quad 0
    .quad 0x00cf9b000000ffff /* KIT_CS32: 32-bit code, flat */
    .quad 0x00af9b000000ffff /* KIT_CS64: 64-bit code */
    .quad 0x00cf93000000ffff /* KIT_DS: data, flat */
kit_gdt_end:
    /* The accessed bits are preset so loading a selector never writes here. */

    .balign 8
    .globl kit_gdt_desc
kit_gdt_desc:
    .word kit_gdt_end - kit_gdt - 1
    .quad kit_gdt

    .section .note.GNU-stack, "", @progbits
