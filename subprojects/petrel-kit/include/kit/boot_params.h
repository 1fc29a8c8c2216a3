/*
 * The zero page (struct boot_params) a Linux boot loader hands the kernel:
 * offsets from Documentation/arch/x86/zero-page.rst and boot.rst, and the
 * accessors kit programs read it through. The offsets are usable from
 * assembly too (the real-mode setup code builds a zero page).
 */
#ifndef KIT_BOOT_PARAMS_H
#define KIT_BOOT_PARAMS_H

#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES      0x1e8
#define BP_HDR               0x1f1 /* the setup header, as in the bzImage file */
#define BP_CODE32_START      0x214
#define BP_RAMDISK_IMAGE     0x218
#define BP_RAMDISK_SIZE      0x21c
#define BP_CMD_LINE_PTR      0x228
#define BP_CMDLINE_SIZE      0x238
#define BP_HDR_END           0x26c /* end of the 2.15 setup header */
#define BP_E820_TABLE        0x2d0
#define BP_E820_ENTRY_SIZE   20
#define BP_E820_MAX          128
#define BP_SIZE              4096

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3
#define E820_NVS      4
#define E820_UNUSABLE 5

#ifndef __ASSEMBLER__

#include <stdint.h>

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

/* Remembers the zero page the loader passed; called once by kit_start(). */
void boot_params_init(const void *bp);

/* The zero page itself, for fields without an accessor. */
const uint8_t *boot_params_base(void);

/* Number of e820 entries (at most BP_E820_MAX). */
unsigned boot_params_e820_count(void);

/* Copies entry i to *out; 0, or -1 if there is no such entry. */
int boot_params_e820_entry(unsigned i, struct e820_entry *out);

/* The kernel command line; "" when the loader gave none. */
const char *boot_params_cmdline(void);

/* The initrd's address and size; both 0 when there is none. */
uint64_t boot_params_initrd_addr(void);
uint64_t boot_params_initrd_size(void);

#endif

#endif
