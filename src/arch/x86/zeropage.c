/* The zero page (boot_params), e820 map, command line and initrd placement. */
#include "petrel/x86_boot.h"

#include <errno.h>
#include <string.h>

unsigned e820_build(const struct guest_mem *gm, struct e820_entry *out, unsigned max)
{
    unsigned n = 0;
    uint64_t low_end = gm_low_end(gm);

#define E820_ADD(a, s, t)                                                                          \
    do {                                                                                           \
        if (n < max)                                                                               \
            out[n++] = (struct e820_entry){.addr = (a), .size = (s), .type = (t)};                 \
    } while (0)

    /* The PC layout Linux expects: base memory, the EBDA and BIOS area, then RAM from 1 MiB. */
    E820_ADD(0, BOOT_EBDA_GPA, E820_RAM);
    E820_ADD(BOOT_EBDA_GPA, 0xa0000 - BOOT_EBDA_GPA, E820_RESERVED);
    E820_ADD(BOOT_BIOS_GPA, BOOT_KERNEL_GPA - BOOT_BIOS_GPA, E820_RESERVED);
    if (low_end > BOOT_KERNEL_GPA)
        E820_ADD(BOOT_KERNEL_GPA, low_end - BOOT_KERNEL_GPA, E820_RAM);
    /* The 32-bit hole stays out of the map: it is PCI space, not reserved RAM. */
    for (unsigned i = 1; i < gm->nr; i++)
        E820_ADD(gm->regions[i].gpa, gm->regions[i].size, E820_RAM);
#undef E820_ADD
    return n;
}

int x86_boot_place_initrd(const struct guest_mem *gm, const struct kernel_image *k,
                          struct boot_load *bl, struct errbuf *eb)
{
    char a[32], b[32];
    uint64_t kernel_end = k->end;
    uint64_t limit = gm_low_end(gm);

    if (!bl->initrd_size)
        return 0;
    if ((uint64_t)k->initrd_addr_max + 1 < limit)
        limit = (uint64_t)k->initrd_addr_max + 1;
    limit &= ~4095ULL; /* the initrd starts on a page: align the end first */
    /* Compared before rounding up, so a size near 2^64 cannot wrap to "fits". */
    uint64_t size = bl->initrd_size > limit ? limit + 1 : (bl->initrd_size + 4095) & ~4095ULL;
    if (limit < kernel_end || limit - kernel_end < size)
        return err_set(eb, -ENOSPC,
                       "the initrd (%s) does not fit in memory below %s next to the kernel: "
                       "give more --memory",
                       fmt_size(bl->initrd_size, a, sizeof(a)), fmt_size(limit, b, sizeof(b)));
    bl->initrd_gpa = limit - size;
    return 0;
}

/* Copies the segments; each must lie in guest RAM. */
static int x86_boot_copy_kernel(const struct guest_mem *gm, const struct kernel_image *k,
                                struct errbuf *eb)
{
    char a[32], b[32];

    /* All or nothing: every segment lies in [1 MiB, end), checked before the first is copied. */
    if (k->end < BOOT_KERNEL_GPA || !gm_ptr(gm, BOOT_KERNEL_GPA, k->end - BOOT_KERNEL_GPA)) {
        uint64_t low_end = gm_low_end(gm);
        return err_set(
            eb, -ENOSPC,
            "the kernel needs %s of memory from 1 MiB, but there are only %s: "
            "give more --memory",
            fmt_size(k->end - BOOT_KERNEL_GPA, a, sizeof(a)),
            fmt_size(low_end > BOOT_KERNEL_GPA ? low_end - BOOT_KERNEL_GPA : 0, b, sizeof(b)));
    }
    for (unsigned i = 0; i < k->nr_seg; i++) {
        const struct kernel_segment *s = &k->seg[i];
        uint8_t *dst = gm_ptr(gm, s->gpa, s->memsz);
        if (s->data)
            memcpy(dst, s->data, s->filesz);
        memset(dst + s->filesz, 0, s->memsz - s->filesz);
    }
    return 0;
}

/* The setup header of a vmlinux, which has none of its own: what the kernel reads of it. */
static void x86_boot_vmlinux_header(uint8_t *zp, const struct kernel_image *k)
{
    put_le16(zp + BP_BOOT_FLAG, BZ_BOOT_FLAG);
    put_le32(zp + BP_HEADER, BZ_MAGIC);
    put_le16(zp + BP_VERSION, BOOT_HDR_VERSION);
    zp[BP_LOADFLAGS] = BZ_LOADED_HIGH;
    put_le32(zp + BP_INITRD_ADDR_MAX, k->initrd_addr_max);
    put_le32(zp + BP_CMDLINE_SIZE, k->cmdline_max);
    put_le16(zp + BP_XLOADFLAGS, BZ_XLF_KERNEL_64);
}

int x86_boot_load(const struct guest_mem *gm, const struct kernel_image *k,
                  const struct boot_load *bl, struct errbuf *eb)
{
    size_t cmdlen = strlen(bl->cmdline);
    uint32_t cmdmax = k->cmdline_max < BOOT_CMDLINE_MAX - 1 ? k->cmdline_max : BOOT_CMDLINE_MAX - 1;
    if (cmdlen > cmdmax)
        return err_set(eb, -E2BIG, "the command line is %zu bytes; this kernel takes at most %u",
                       cmdlen, cmdmax);

    uint8_t *cmdline = gm_ptr(gm, BOOT_CMDLINE_GPA, cmdlen + 1);
    uint8_t *zp = gm_ptr(gm, BOOT_ZERO_PAGE_GPA, BP_SIZE);
    if (!cmdline || !zp)
        return err_set(eb, -ENOSPC, "guest memory is too small for the boot layout");
    int ret = x86_boot_copy_kernel(gm, k, eb);
    if (ret)
        return ret;
    memcpy(cmdline, bl->cmdline, cmdlen + 1);

    memset(zp, 0, BP_SIZE);
    if (k->hdr_len)
        memcpy(zp + BP_HDR, k->hdr, k->hdr_len);
    else
        x86_boot_vmlinux_header(zp, k);
    put_le16(zp + BP_VID_MODE, 0xffff); /* "normal": no mode change */
    zp[BP_TYPE_OF_LOADER] = 0xff;       /* undefined loader id */
    zp[BP_LOADFLAGS] |= BZ_CAN_USE_HEAP;
    put_le16(zp + BP_HEAP_END_PTR, 0xfe00);
    put_le32(zp + BP_CODE32_START, (uint32_t)k->seg[0].gpa);
    put_le32(zp + BP_CMD_LINE_PTR, BOOT_CMDLINE_GPA);
    put_le32(zp + BP_EXT_CMD_LINE_PTR, 0);
    put_le32(zp + BP_RAMDISK_IMAGE, (uint32_t)bl->initrd_gpa);
    put_le32(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(bl->initrd_gpa >> 32));
    put_le32(zp + BP_RAMDISK_SIZE, (uint32_t)bl->initrd_size);
    put_le32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)(bl->initrd_size >> 32));

    struct e820_entry map[BP_E820_MAX];
    unsigned n = e820_build(gm, map, BP_E820_MAX);
    zp[BP_E820_ENTRIES] = (uint8_t)n;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = zp + BP_E820_TABLE + 20 * i;
        put_le64(e, map[i].addr);
        put_le64(e + 8, map[i].size);
        put_le32(e + 16, map[i].type);
    }
    return 0;
}
