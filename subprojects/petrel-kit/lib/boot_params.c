/*
 * Reading the zero page. Fields are read by offset with memcpy: the layout
 * is packed and the loader's copy need not be aligned for us.
 */
#include "kit/boot_params.h"
#include "kit/string.h"

static const uint8_t *boot_params;

/* Reads a little-endian field of n bytes (the kit is x86-only). */
static uint64_t bp_read(unsigned off, unsigned n)
{
    uint64_t v = 0;

    memcpy(&v, boot_params + off, n);
    return v;
}

void boot_params_init(const void *bp)
{
    boot_params = bp;
}

const uint8_t *boot_params_base(void)
{
    return boot_params;
}

unsigned boot_params_e820_count(void)
{
    unsigned n = (unsigned)bp_read(BP_E820_ENTRIES, 1);

    return n < BP_E820_MAX ? n : BP_E820_MAX;
}

int boot_params_e820_entry(unsigned i, struct e820_entry *out)
{
    if (i >= boot_params_e820_count())
        return -1;
    unsigned off = BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;
    out->addr = bp_read(off, 8);
    out->size = bp_read(off + 8, 8);
    out->type = (uint32_t)bp_read(off + 16, 4);
    return 0;
}

const char *boot_params_cmdline(void)
{
    uint64_t p = bp_read(BP_CMD_LINE_PTR, 4) | bp_read(BP_EXT_CMD_LINE_PTR, 4) << 32;

    return p ? (const char *)(uintptr_t)p : "";
}

uint64_t boot_params_initrd_addr(void)
{
    return bp_read(BP_RAMDISK_IMAGE, 4) | bp_read(BP_EXT_RAMDISK_IMAGE, 4) << 32;
}

uint64_t boot_params_initrd_size(void)
{
    return bp_read(BP_RAMDISK_SIZE, 4) | bp_read(BP_EXT_RAMDISK_SIZE, 4) << 32;
}
