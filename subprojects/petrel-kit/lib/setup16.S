/*
 * The real-mode part of a kit bzImage: boot sector, setup header and the
 * 16-bit entry that loaders using the 16-bit boot protocol (QEMU -kernel,
 * through its linuxboot option ROM or qboot) jump to at segment + 0x20 : 0.
 *
 * Like Linux's setup code (arch/x86/boot), it builds a zero page from the
 * setup header the loader filled in and the BIOS e820 map, then enters 32-bit
 * protected mode and jumps to code32_start with ESI = that zero page. petrel
 * never runs this: it starts the protected-mode part at its 64-bit entry.
 *
 * Linked at 0: offsets are relative to the segment the loader put us in. The
 * header fields (0x1f1-0x26b, except the jump) are written by pack_bzimage.py.
 */
#include "kit/boot_params.h"

#define SMAP 0x534d4150 /* "SMAP": the e820 call's signature */

    .code16
    .section .setup, "ax"

    /* Boot sector: nothing boots from it; the header starts at 0x1f1. */
    .org BP_HDR
    .org 0x200
    /* The jump field: a short jump past the header; its target also tells
     * loaders where the header ends (0x202 + this byte). */
    .byte 0xeb
    .byte setup_start16 - setup_jump_end
setup_jump_end:
    .org BP_HDR_END

setup_start16:
    cli
    cld
    /* Entered with cs = ds + 0x20: make cs = ds so link offsets work for code. */
    pushw %ds
    pushw $1f
    lretw
1:
    movw %ds, %ax
    movw %ax, %es

    /* A zero page of our own: cleared, then the header as the loader left it
     * (cmd_line_ptr, ramdisk_*), as Linux's copy_boot_params() does. */
    movw $setup_zero_page, %di
    movw $(BP_SIZE / 2), %cx
    xorw %ax, %ax
    rep stosw
    movw $BP_HDR, %si
    movw $(setup_zero_page + BP_HDR), %di
    movw $(BP_HDR_END - BP_HDR), %cx
    rep movsb

    /* The memory map from the BIOS (int 0x15, eax 0xe820), as Linux's
     * detect_memory_e820() reads it; a BIOS without it leaves the map empty. */
    xorl %ebx, %ebx
    movw $(setup_zero_page + BP_E820_TABLE), %di
2:
    movl $0xe820, %eax
    movl $BP_E820_ENTRY_SIZE, %ecx
    movl $SMAP, %edx
    pushw %di
    int $0x15
    popw %di
    jc 3f
    cmpl $SMAP, %eax
    jne 3f
    /* Keep only entries with a size: qboot ends its map with an empty one. */
    movl 8(%di), %eax
    orl 12(%di), %eax
    jz 4f
    incb setup_zero_page + BP_E820_ENTRIES
    cmpb $BP_E820_MAX, setup_zero_page + BP_E820_ENTRIES
    jae 3f
    addw $BP_E820_ENTRY_SIZE, %di
4:
    testl %ebx, %ebx
    jnz 2b
3:
    cli

    /* Mask the 8259s, as Linux's setup does: the BIOS leaves the timer
     * unmasked on vectors the kit's IDT (if any) uses for exceptions. */
    movb $0xff, %al
    outb %al, $0xa1
    movb $0xfb, %al
    outb %al, $0x21

    /* Open A20 through the fast gate (port 0x92 bit 1); bit 0 would reset. */
    inb $0x92, %al
    orb $0x02, %al
    andb $0xfe, %al
    outb %al, $0x92

    /* Linear addresses depend on where the loader put us: patch them in. */
    xorl %ebx, %ebx
    movw %ds, %bx
    shll $4, %ebx
    leal setup_zero_page(%ebx), %esi
    leal setup_gdt(%ebx), %eax
    movl %eax, setup_gdt_desc + 2
    leal setup_pm32(%ebx), %eax
    movl %eax, setup_pm32_ptr
    /* code32_start as the loader left it (it may hook it). */
    movl BP_CODE32_START, %edx

    lgdtl setup_gdt_desc
    movl %cr0, %eax
    orb $0x01, %al
    movl %eax, %cr0
    ljmpl *setup_pm32_ptr

    .code32
setup_pm32:
    /* The 32-bit boot protocol: flat __BOOT_DS in ds/es/ss, ebx/ebp/edi 0. */
    movl $0x18, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %fs
    movl %eax, %gs
    movl %eax, %ss
    xorl %ebx, %ebx
    xorl %ebp, %ebp
    xorl %edi, %edi
    jmpl *%edx

    .balign 8
setup_gdt:
    .quad 0
    .quad 0
    .quad 0x00cf9b000000ffff /* 0x10 __BOOT_CS: 32-bit code, flat */
    .quad 0x00cf93000000ffff /* 0x18 __BOOT_DS: data, flat */
setup_gdt_desc:
    .word setup_gdt_desc - setup_gdt - 1
    .long 0 /* linear base, patched */
setup_pm32_ptr:
    .long 0 /* linear address of setup_pm32, patched */
    .word 0x10

    .section .setup_bss, "aw", @nobits
    .balign 16
setup_zero_page:
    .skip BP_SIZE

    .section .note.GNU-stack, "", @progbits
