/* The boot protocol's facts as the `info` lines; see include/kit/sysinfo.h. */
#include "kit/sysinfo.h"
#include "kit/boot_params.h"
#include "kit/crc32.h"
#include "kit/lapic.h"
#include "kit/printf.h"

/* RAM in the e820 map, in bytes. */
static uint64_t sysinfo_ram(void)
{
    unsigned n = boot_params_e820_count();
    uint64_t ram = 0;

    for (unsigned i = 0; i < n; i++) {
        struct e820_entry e;

        if (boot_params_e820_entry(i, &e) == 0 && e.type == E820_RAM)
            ram += e.size;
    }
    return ram;
}

unsigned long long sysinfo_print(const char *prefix)
{
    unsigned long long kib = sysinfo_ram() >> 10;
    uint64_t size = boot_params_initrd_size();

    printf("%s: memory %llu KiB\n", prefix, kib);
    printf("%s: cmdline \"%s\"\n", prefix, boot_params_cmdline());
    if (size) {
        const void *p = (const void *)(uintptr_t)boot_params_initrd_addr();

        printf("%s: initrd %llu bytes crc32 %08x\n", prefix, (unsigned long long)size,
               crc32(0, p, size));
    } else {
        printf("%s: initrd none\n", prefix);
    }
    printf("%s: lapic id %u\n", prefix, lapic_id());
    return kib;
}
