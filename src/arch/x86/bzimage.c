/* bzImage header parsing and validation (Linux boot protocol 2.12+), and the choice of format. */
#include "petrel/x86_boot.h"

#include <errno.h>
#include <string.h>

/* A guess at what a non-bzImage file is, for the error message. */
static const char *bzimage_guess(const uint8_t *img, size_t len)
{
    if (len >= 2 && img[0] == 0x1f && img[1] == 0x8b)
        return " (it is gzip-compressed: decompress it first)";
    if (len >= 6 && memcmp(img, "070701", 6) == 0)
        return " (it is a cpio archive: pass it with --initrd)";
    return "";
}

int bzimage_parse(const uint8_t *img, size_t len, struct bzimage *bz, struct errbuf *eb)
{
    memset(bz, 0, sizeof(*bz));
    if (len < 1024 || get_le16(img + BP_BOOT_FLAG) != BZ_BOOT_FLAG ||
        get_le32(img + BP_HEADER) != BZ_MAGIC)
        return err_set(
            eb, -ENOEXEC,
            "not a Linux kernel: neither a bzImage (no boot header) nor an ELF vmlinux%s",
            bzimage_guess(img, len));

    bz->version = get_le16(img + BP_VERSION);
    if (bz->version < BZ_MIN_VERSION)
        return err_set(eb, -ENOEXEC,
                       "boot protocol %u.%02u is too old: petrel needs 2.12 or later "
                       "(Linux 3.8+) for the 64-bit entry point",
                       bz->version >> 8, bz->version & 0xff);
    if (!(img[BP_LOADFLAGS] & BZ_LOADED_HIGH))
        return err_set(eb, -ENOEXEC, "a zImage that loads below 1 MiB is not supported");
    if (!(get_le16(img + BP_XLOADFLAGS) & BZ_XLF_KERNEL_64))
        return err_set(eb, -ENOEXEC,
                       "the kernel has no 64-bit entry point (a 32-bit kernel?): "
                       "petrel boots x86-64 kernels");

    bz->setup_sects = img[BP_HDR] ? img[BP_HDR] : 4;
    bz->setup_size = ((size_t)bz->setup_sects + 1) * 512;
    /* The setup header ends at 0x202 + the jump's 8-bit displacement. */
    bz->hdr_end = BP_HEADER + img[BP_JUMP + 1];
    if (bz->hdr_end < BP_INIT_SIZE + 4)
        return err_set(eb, -ENOEXEC, "the setup header is too short for protocol %u.%02u",
                       bz->version >> 8, bz->version & 0xff);
    if (bz->hdr_end > bz->setup_size || bz->setup_size >= len)
        return err_set(eb, -ENOEXEC,
                       "the kernel image is truncated (setup of %zu bytes in a "
                       "file of %zu)",
                       bz->setup_size, len);

    bz->pm = img + bz->setup_size;
    bz->pm_size = len - bz->setup_size;
    /*
     * syssize counts 16-byte paragraphs. Linux's build pads the file to a
     * whole one, but a tool that rounds syssize up without padding leaves the
     * last paragraph partial: like QEMU and kvmtool, load what the file holds
     * (the rest of the paragraph is zeroed). Short by a paragraph or more, the
     * file was cut.
     */
    uint64_t syssize = (uint64_t)get_le32(img + 0x1f4) * 16;
    if (syssize > bz->pm_size && syssize - bz->pm_size >= 16)
        return err_set(eb, -ENOEXEC, "the kernel image is truncated (%zu of %llu bytes)",
                       bz->pm_size, (unsigned long long)syssize);
    bz->pm_mem = syssize > bz->pm_size ? syssize : bz->pm_size;
    if (bz->pm_size <= BOOT_ENTRY64_OFFSET)
        return err_set(eb, -ENOEXEC, "the protected-mode kernel is too small (%zu bytes)",
                       bz->pm_size);

    bz->init_size = get_le32(img + BP_INIT_SIZE);
    if (bz->init_size < bz->pm_mem)
        bz->init_size = bz->pm_mem;
    /* The 64-bit entry runs on page tables that map the low 4 GiB only. */
    if (bz->init_size > 4 * GiB - BOOT_KERNEL_GPA)
        return err_set(eb, -ENOEXEC,
                       "the kernel needs %#llx bytes of memory from 1 MiB (its init_size or "
                       "its size), which reaches above 4 GiB",
                       (unsigned long long)bz->init_size);
    bz->cmdline_max = get_le32(img + BP_CMDLINE_SIZE);
    bz->initrd_addr_max = get_le32(img + BP_INITRD_ADDR_MAX);
    bz->relocatable = img[BP_RELOCATABLE] != 0;
    bz->hdr_init_size = get_le32(img + BP_INIT_SIZE);
    bz->pref_address = get_le64(img + BP_PREF_ADDRESS);
    return 0;
}

int bzimage_payload(const struct bzimage *bz, const uint8_t *img, const uint8_t **payload,
                    size_t *len, struct errbuf *eb)
{
    if (bz->version < BZ_PREF_VERSION)
        return err_set(eb, -ENOENT, "boot protocol %u.%02u has no payload fields", bz->version >> 8,
                       bz->version & 0xff);
    uint32_t off = get_le32(img + BP_PAYLOAD_OFFSET);
    uint32_t plen = get_le32(img + BP_PAYLOAD_LENGTH);
    if (!plen)
        return err_set(eb, -ENOENT, "the setup header names no payload");
    if (off > bz->pm_size || plen > bz->pm_size - off)
        return err_set(eb, -ENOENT,
                       "the payload (%u bytes at %u) lies outside the kernel's %zu bytes", plen,
                       off, bz->pm_size);
    *payload = bz->pm + off;
    *len = plen;
    return 0;
}

int bzimage_adopt_vmlinux(const struct bzimage *bz, const uint8_t *img, struct kernel_image *k,
                          struct errbuf *eb)
{
    uint64_t low = UINT64_MAX;

    for (unsigned i = 0; i < k->nr_seg; i++)
        low = k->seg[i].gpa < low ? k->seg[i].gpa : low;
    /* The decompressor puts the kernel at pref_address (LOAD_PHYSICAL_ADDR) when it is free. */
    if (low != bz->pref_address)
        return err_set(eb, -ENOEXEC,
                       "its payload's vmlinux loads at %#llx, not at the header's pref_address "
                       "%#llx",
                       (unsigned long long)low, (unsigned long long)bz->pref_address);
    if (k->end - low > bz->hdr_init_size)
        return err_set(eb, -ENOEXEC,
                       "its payload's vmlinux needs %#llx bytes of memory, more than the "
                       "header's init_size %#x",
                       (unsigned long long)(k->end - low), bz->hdr_init_size);
    k->format = "bzImage's payload (ELF vmlinux)";
    k->hdr = img + BP_HDR;
    k->hdr_len = bz->hdr_end - BP_HDR;
    k->cmdline_max = bz->cmdline_max;
    k->initrd_addr_max = bz->initrd_addr_max;
    return 0;
}

int kernel_parse(const uint8_t *img, size_t len, uint64_t file_size, struct kernel_image *k,
                 struct errbuf *eb)
{
    struct bzimage bz;

    if (len >= 4 && memcmp(img, ELF_MAGIC, 4) == 0)
        return vmlinux_parse(img, len, file_size, k, eb);
    if (len != file_size)
        return err_set(eb, -ENOEXEC, "only %zu of the bzImage's %llu bytes were read", len,
                       (unsigned long long)file_size);
    int ret = bzimage_parse(img, len, &bz, eb);
    if (ret)
        return ret;
    *k = (struct kernel_image){
        .format = "bzImage",
        /* The memory up to init_size is the decompressor's to use: not zeroed, only checked. */
        .seg[0] = {.gpa = BOOT_KERNEL_GPA,
                   .offset = bz.setup_size,
                   .data = bz.pm,
                   .filesz = bz.pm_size,
                   .memsz = bz.pm_mem},
        .nr_seg = 1,
        .entry = BOOT_KERNEL_GPA + BOOT_ENTRY64_OFFSET,
        .end = BOOT_KERNEL_GPA + bz.init_size,
        .cmdline_max = bz.cmdline_max,
        .initrd_addr_max = bz.initrd_addr_max,
        .hdr = img + BP_HDR,
        .hdr_len = bz.hdr_end - BP_HDR,
    };
    return 0;
}
