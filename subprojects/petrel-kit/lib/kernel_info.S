/*
 * kernel_info (boot protocol 2.15, boot.rst "The kernel_info"): read-only facts
 * about the image for loaders, found through the header's kernel_info_offset
 * (filled in by pack_bzimage.py from this symbol).
 */
    .section .rodata, "a"
    .balign 4
    .globl kernel_info
kernel_info:
    .ascii "LToP"
    .long kernel_info_var_len_data - kernel_info /* size */
    .long kernel_info_end - kernel_info          /* size_total */
    /* setup_type_max: the kit reads no setup_data, so it asks for none. */
    .long 0
kernel_info_var_len_data:
kernel_info_end:

    .section .note.GNU-stack, "", @progbits
