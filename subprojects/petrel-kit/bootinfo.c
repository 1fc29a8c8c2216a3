/*
 * bootinfo: prints what the loader passed in the zero page (command line,
 * e820 map, initrd) so a test can compare it with what the VMM was told.
 * Exits 0, or 1 if the zero page looks wrong (no e820 RAM at all).
 */
#include "kit/boot_params.h"
#include "kit/kit.h"
#include "kit/printf.h"

int kit_main(void)
{
    unsigned n = boot_params_e820_count();
    uint64_t ram = 0;

    printf("bootinfo: zero page at %p\n", (const void *)boot_params_base());
    printf("bootinfo: cmdline \"%s\"\n", boot_params_cmdline());
    /* The setup header as the loader left it: a loader that boots this image another way
     * (its payload's vmlinux) must hand over the same header. */
    const uint8_t *bp = boot_params_base();
    uint32_t fnv = 2166136261u;
    for (unsigned i = BP_HDR; i < BP_HDR_END; i++)
        fnv = (fnv ^ bp[i]) * 16777619u;
    printf("bootinfo: setup header fnv %08x version %x init_size %x payload %x+%x\n", (unsigned)fnv,
           (unsigned)(bp[0x206] | bp[0x207] << 8),
           (unsigned)(bp[0x260] | bp[0x261] << 8 | bp[0x262] << 16 | (uint32_t)bp[0x263] << 24),
           (unsigned)(bp[0x248] | bp[0x249] << 8 | bp[0x24a] << 16 | (uint32_t)bp[0x24b] << 24),
           (unsigned)(bp[0x24c] | bp[0x24d] << 8 | bp[0x24e] << 16 | (uint32_t)bp[0x24f] << 24));
    printf("bootinfo: e820 %u entries\n", n);
    for (unsigned i = 0; i < n; i++) {
        struct e820_entry e;

        if (boot_params_e820_entry(i, &e))
            break;
        printf("bootinfo: e820 %016llx-%016llx type %u\n", (unsigned long long)e.addr,
               (unsigned long long)(e.addr + e.size - 1), e.type);
        if (e.type == E820_RAM)
            ram += e.size;
    }
    printf("bootinfo: ram %llu KiB\n", (unsigned long long)(ram >> 10));
    printf("bootinfo: initrd %llx size %llu\n", (unsigned long long)boot_params_initrd_addr(),
           (unsigned long long)boot_params_initrd_size());
    if (boot_params_initrd_size()) {
        /* Its first bytes, so a test can check the loader copied the right file. */
        const unsigned char *p = (const unsigned char *)(uintptr_t)boot_params_initrd_addr();
        uint64_t len = boot_params_initrd_size() < 16 ? boot_params_initrd_size() : 16;

        printf("bootinfo: initrd head");
        for (uint64_t i = 0; i < len; i++)
            printf(" %02x", p[i]);
        printf("\n");
    }
    return ram ? 0 : 1;
}
