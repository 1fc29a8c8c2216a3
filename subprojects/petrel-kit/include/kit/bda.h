/*
 * The two BIOS data area words firmware-table searches start from: the
 * EBDA's segment (0x40e) and the base memory size in KiB (0x413). A VMM
 * without a BIOS may leave them zero; callers range-check what they read.
 */
#ifndef KIT_BDA_H
#define KIT_BDA_H

#include <stdint.h>

#define BDA_EBDA_SEG    0x40e
#define BDA_BASE_MEM_KB 0x413
#define BDA_BASE_MEM    0xa0000 /* the end of base memory on a PC */

/* A BDA word. Through asm: gcc takes a dereference of a constant address
 * below 4 KiB for a null-pointer offset and refuses it (-Warray-bounds). */
static inline uint16_t bda_read16(uintptr_t addr)
{
    uint16_t v;

    __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

/* The EBDA's address, or 0 if the BDA names none inside base memory (as
 * Linux's acpi_find_root_pointer() checks: above the BDA, below 640 KiB). */
static inline uint32_t bda_ebda(void)
{
    uint32_t a = (uint32_t)bda_read16(BDA_EBDA_SEG) << 4;

    return a > 0x400 && a + 1024 <= BDA_BASE_MEM ? a : 0;
}

/* The end of base memory: the BDA's size if it is sane, else 640 KiB. */
static inline uint32_t bda_base_mem_end(void)
{
    uint32_t kb = bda_read16(BDA_BASE_MEM_KB);

    return kb >= 1 && kb <= 640 ? kb << 10 : BDA_BASE_MEM;
}

#endif
