/*
 * A stand-in for petrel's loader, so the kit's 64-bit entry can be proven
 * under QEMU TCG on hosts without /dev/kvm. QEMU boots this as a multiboot
 * kernel with the bzImage as its module:
 *
 *   qemu-system-x86_64 -kernel boot64-shim.elf -initrd hello.bzImage -append ...
 *
 * It hands over exactly as petrel does (include/petrel/x86_boot.h and the
 * 64-bit boot protocol in boot.rst): the protected-mode part at 1 MiB, a zero
 * page at 0x7000 (setup header copied from the image, e820 map, command line
 * at 0x20000), a GDT at 0x500 with 64-bit code at 0x10 and data at 0x18, page
 * tables at 0x9000 identity-mapping 4 GiB with 2 MiB pages, RSP 0x8ff0, and
 * the BSP started at 0x100200 in long mode with RSI = 0x7000. The kit's own
 * 16- and 32-bit entries are never run.
 *
 * 32-bit code (multiboot enters in protected mode), linked by boot64_shim.ld.
 */
#include "kit/boot_params.h"

#define MB_MAGIC        0x1badb002
#define MB_FLAGS        0x00000003 /* page-aligned modules, memory map */
#define MB_BOOT_MAGIC   0x2badb002
#define MBI_CMDLINE     16
#define MBI_MODS_COUNT  20
#define MBI_MODS_ADDR   24
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR   48

#define GDT_GPA       0x500
#define ZERO_PAGE_GPA 0x7000
#define STACK_GPA     0x8ff0
#define PML4_GPA      0x9000 /* then the PDPT, then 4 PDs */
#define CMDLINE_GPA   0x20000
#define CMDLINE_MAX   2047
#define KERNEL_GPA    0x100000

    .code32
    .section .text, "ax"
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .globl shim_start
shim_start:
    cli
    cld
    cmpl $MB_BOOT_MAGIC, %eax
    jne shim_fail
    movl %ebx, %ebp /* the multiboot info; QEMU puts it at 0x9000, so read it
                     * all before the page tables go there */

    /* The zero page: cleared, then the image's setup header. */
    movl $ZERO_PAGE_GPA, %edi
    movl $(BP_SIZE / 4), %ecx
    xorl %eax, %eax
    rep stosl
    cmpl $0, MBI_MODS_COUNT(%ebp)
    je shim_fail
    movl MBI_MODS_ADDR(%ebp), %eax
    movl 0(%eax), %esi /* mod_start: the bzImage */
    movl 4(%eax), %edx /* mod_end */
    subl %esi, %edx    /* its size */
    movzbl 0x201(%esi), %ecx
    addl $0x202 - BP_HDR, %ecx /* the header runs to 0x202 + the jump's offset */
    pushl %esi
    leal BP_HDR(%esi), %esi
    movl $(ZERO_PAGE_GPA + BP_HDR), %edi
    rep movsb
    popl %esi
    movb $0xff, ZERO_PAGE_GPA + 0x210 /* type_of_loader: undefined */

    /* The command line, copied where petrel puts it, without the first word:
     * QEMU's multiboot command line starts with the kernel's file name. */
    movl MBI_CMDLINE(%ebp), %ebx
0:
    movb (%ebx), %al
    testb %al, %al
    jz 0f
    incl %ebx
    cmpb $' ', %al
    jne 0b
0:
    movl $CMDLINE_GPA, %edi
    movl $CMDLINE_MAX, %ecx
1:
    movb (%ebx), %al
    testb %al, %al
    jz 2f
    movb %al, (%edi)
    incl %ebx
    incl %edi
    loop 1b
2:
    movb $0, (%edi)
    movl $CMDLINE_GPA, ZERO_PAGE_GPA + BP_CMD_LINE_PTR

    /* e820 from the multiboot map: each entry is a size word, then exactly
     * an e820 entry (base, length, type). */
    movl MBI_MMAP_ADDR(%ebp), %ebx
    movl MBI_MMAP_LENGTH(%ebp), %ecx
    addl %ebx, %ecx /* end of the map */
    movl $(ZERO_PAGE_GPA + BP_E820_TABLE), %edi
3:
    cmpl %ecx, %ebx
    jae 4f
    cmpb $BP_E820_MAX, ZERO_PAGE_GPA + BP_E820_ENTRIES
    jae 4f
    movl 4(%ebx), %eax
    movl %eax, 0(%edi)
    movl 8(%ebx), %eax
    movl %eax, 4(%edi)
    movl 12(%ebx), %eax
    movl %eax, 8(%edi)
    movl 16(%ebx), %eax
    movl %eax, 12(%edi)
    movl 20(%ebx), %eax
    movl %eax, 16(%edi)
    incb ZERO_PAGE_GPA + BP_E820_ENTRIES
    addl $BP_E820_ENTRY_SIZE, %edi
    movl (%ebx), %eax
    leal 4(%ebx, %eax), %ebx
    jmp 3b
4:

    /* The protected-mode part, to 1 MiB (the module sits above the shim). */
    movzbl BP_HDR(%esi), %eax /* setup_sects */
    incl %eax
    shll $9, %eax
    movl %edx, %ecx
    subl %eax, %ecx
    addl %eax, %esi
    movl $KERNEL_GPA, %edi
    rep movsb

    /* GDT at 0x500: 0x08 32-bit code (the shim's own), 0x10 64-bit code,
     * 0x18 data. */
    movl $GDT_GPA, %edi
    movl $0, 0(%edi)
    movl $0, 4(%edi)
    movl $0x0000ffff, 8(%edi)
    movl $0x00cf9b00, 12(%edi)
    movl $0x0000ffff, 16(%edi)
    movl $0x00af9b00, 20(%edi)
    movl $0x0000ffff, 24(%edi)
    movl $0x00cf9300, 28(%edi)
    lgdt shim_gdt_desc
    ljmp $0x08, $5f
5:
    movl $0x18, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs

    /* Page tables: PML4 -> PDPT -> 4 PDs of 2 MiB pages, the low 4 GiB. */
    movl $PML4_GPA, %edi
    movl $(6 * 4096 / 4), %ecx
    xorl %eax, %eax
    rep stosl
    movl $(PML4_GPA + 0x1000 + 3), PML4_GPA
    movl $(PML4_GPA + 0x1000), %edi
    movl $(PML4_GPA + 0x2000 + 3), %eax
    movl $4, %ecx
6:
    movl %eax, (%edi)
    addl $0x1000, %eax
    addl $8, %edi
    loop 6b
    movl $(PML4_GPA + 0x2000), %edi
    movl $0x83, %eax
    movl $2048, %ecx
7:
    movl %eax, (%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 7b

    movl %cr4, %eax
    orl $0x20, %eax /* PAE */
    movl %eax, %cr4
    movl $PML4_GPA, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx /* EFER */
    rdmsr
    orl $0x100, %eax /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax /* PG, PE */
    movl %eax, %cr0
    ljmp $0x10, $shim_long

    .code64
shim_long:
    /* Set every register the protocol names in full: the upper halves are
     * undefined after the switch from 32-bit mode. */
    movl $ZERO_PAGE_GPA, %esi
    movl $STACK_GPA, %esp
    xorl %eax, %eax
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %edi, %edi
    xorl %ebp, %ebp
    movl $(KERNEL_GPA + 0x200), %r8d
    jmp *%r8

    .code32
shim_fail:
    /* Not booted by a multiboot loader, or no module: exit status 0x7f. */
    movb $0x7f, %al
    outb %al, $0xf4
8:
    hlt
    jmp 8b

    .balign 8
shim_gdt_desc:
    .word 4 * 8 - 1
    .long GDT_GPA

    .section .note.GNU-stack, "", @progbits
