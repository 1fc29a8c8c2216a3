/*
 * The 32-bit entry, at the load address (code32_start, 0x100000): what the
 * kit's own setup code and 32-bit boot protocol loaders jump to, with
 * ESI = zero page, flat segments and paging off.
 *
 * It identity-maps the low 4 GiB with 2 MiB pages (room for the LAPIC and
 * IOAPIC near the top), enters long mode and continues at the 64-bit entry.
 * The page tables live in .boot_pgtable, which the 64-bit entry does not
 * clear. Loaders that start the 64-bit entry directly (petrel) skip all this.
 */
#include "kit/segment.h"

#define PTE_P   0x001
#define PTE_RW  0x002
#define PTE_PS  0x080 /* in a page directory entry: a 2 MiB page */
#define CR0_PE  0x00000001
#define CR0_PG  0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100
#define PD_PAGES 4 /* 4 x 512 x 2 MiB = 4 GiB */

    .code32
    .section .head32, "ax"
    .globl startup_32
startup_32:
    cli
    cld
    /* Only cs is sure to be set up (boot.rst, "code32_start"): use it. */
    lgdt %cs:kit_gdt_desc
    ljmp $KIT_CS32, $1f
1:
    movl $KIT_DS, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %fs
    movl %eax, %gs
    movl %eax, %ss

    /* PML4 and PDPT start empty; every PD entry is written below. */
    movl $boot_pml4, %edi
    movl $(2 * 4096 / 4), %ecx
    xorl %eax, %eax
    rep stosl
    movl $(boot_pdpt + PTE_P + PTE_RW), boot_pml4

    movl $boot_pdpt, %edi
    movl $(boot_pd + PTE_P + PTE_RW), %eax
    movl $PD_PAGES, %ecx
2:
    movl %eax, (%edi)
    addl $4096, %eax
    addl $8, %edi
    loop 2b

    movl $boot_pd, %edi
    movl $(PTE_P + PTE_RW + PTE_PS), %eax
    movl $(PD_PAGES * 512), %ecx
3:
    movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 3b

    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    orl $(CR0_PG + CR0_PE), %eax
    movl %eax, %cr0
    /* ESI (the zero page) is still intact. */
    ljmp $KIT_CS64, $startup_64

    .section .boot_pgtable, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip PD_PAGES * 4096

    .section .note.GNU-stack, "", @progbits
