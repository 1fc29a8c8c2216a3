/*
 * ELF vmlinux validation: the uncompressed kernel a bzImage carries as its
 * payload, loaded segment by segment at the physical addresses it was linked
 * for and entered at startup_64, so the guest skips the decompressor.
 *
 * Everything is read by offset from the file's bytes (the ELF64 layout of the
 * System V ABI), never by casting the image to a header structure: the
 * image is hostile input and need not be aligned.
 */
#include "petrel/x86_boot.h"

#include <errno.h>
#include <string.h>

/* ELF64 header fields. */
#define EH_CLASS     4 /* e_ident[EI_CLASS]: 2 = 64-bit */
#define EH_DATA      5 /* e_ident[EI_DATA]: 1 = little endian */
#define EH_TYPE      16
#define EH_MACHINE   18
#define EH_ENTRY     24
#define EH_PHOFF     32
#define EH_PHENTSIZE 54
#define EH_PHNUM     56
#define EH_SIZE      64

/* ELF64 program header fields. */
#define PH_TYPE   0
#define PH_FLAGS  4
#define PH_OFFSET 8
#define PH_PADDR  24
#define PH_FILESZ 32
#define PH_MEMSZ  40
#define PH_SIZE   56

#define ET_EXEC       2
#define EM_X86_64     62
#define PT_LOAD       1
#define PF_X          1
#define ELF_MAX_PHNUM 256
#define LOW_4G        (4ULL << 30)

/* Adds one PT_LOAD segment (memsz > 0) to k after checking it. */
static int vmlinux_segment(const uint8_t *img, size_t len, uint64_t file_size, const uint8_t *ph,
                           struct kernel_image *k, bool *exec_has_entry, uint64_t entry,
                           struct errbuf *eb)
{
    uint64_t off = get_le64(ph + PH_OFFSET);
    uint64_t gpa = get_le64(ph + PH_PADDR);
    uint64_t filesz = get_le64(ph + PH_FILESZ);
    uint64_t memsz = get_le64(ph + PH_MEMSZ);

    if (filesz > memsz)
        return err_set(eb, -ENOEXEC,
                       "a segment has more bytes in the file (%llu) than in memory (%llu)",
                       (unsigned long long)filesz, (unsigned long long)memsz);
    if (off > file_size || filesz > file_size - off)
        return err_set(eb, -ENOEXEC,
                       "the ELF file is truncated (a segment ends at byte %llu of %llu)",
                       (unsigned long long)(off + filesz), (unsigned long long)file_size);
    if (gpa < BOOT_KERNEL_GPA)
        return err_set(eb, -ENOEXEC,
                       "a segment loads at %#llx, below 1 MiB where petrel keeps the boot data",
                       (unsigned long long)gpa);
    if (gpa >= LOW_4G || memsz > LOW_4G - gpa)
        return err_set(eb, -ENOEXEC, "a segment at %#llx (%llu bytes) reaches above 4 GiB",
                       (unsigned long long)gpa, (unsigned long long)memsz);
    for (unsigned i = 0; i < k->nr_seg; i++) {
        const struct kernel_segment *s = &k->seg[i];
        if (gpa < s->gpa + s->memsz && s->gpa < gpa + memsz)
            return err_set(eb, -ENOEXEC, "segments at %#llx and %#llx overlap",
                           (unsigned long long)s->gpa, (unsigned long long)gpa);
    }
    if (k->nr_seg == KERNEL_MAX_SEGMENTS)
        return err_set(eb, -ENOEXEC, "more than %u loadable segments", KERNEL_MAX_SEGMENTS);

    k->seg[k->nr_seg++] = (struct kernel_segment){
        .gpa = gpa,
        .offset = off,
        .data = off <= len && filesz <= len - off ? img + off : NULL,
        .filesz = (size_t)filesz,
        .memsz = memsz,
    };
    if (gpa + memsz > k->end)
        k->end = gpa + memsz;
    /* The entry must be code the file provides, not zeroed memory. */
    if ((get_le32(ph + PH_FLAGS) & PF_X) && entry >= gpa && entry - gpa < filesz)
        *exec_has_entry = true;
    return 0;
}

int vmlinux_parse(const uint8_t *img, size_t len, uint64_t file_size, struct kernel_image *k,
                  struct errbuf *eb)
{
    memset(k, 0, sizeof(*k));
    if (len < 4 || memcmp(img, ELF_MAGIC, 4) != 0)
        return err_set(eb, -ENOEXEC, "not an ELF file");
    if (len > file_size)
        return err_set(eb, -EINVAL, "%zu bytes read of a file of %llu", len,
                       (unsigned long long)file_size);
    if (len < EH_SIZE)
        return err_set(eb, -ENOEXEC, "the ELF file is truncated (%zu bytes)", len);
    if (img[EH_CLASS] == 1)
        return err_set(eb, -ENOEXEC, "a 32-bit ELF file: petrel boots x86-64 kernels");
    if (img[EH_CLASS] != 2)
        return err_set(eb, -ENOEXEC, "a malformed ELF file (class %u)", img[EH_CLASS]);
    if (img[EH_DATA] != 1 || get_le16(img + EH_MACHINE) != EM_X86_64)
        return err_set(eb, -ENOEXEC, "not an x86-64 ELF file (machine %u)",
                       get_le16(img + EH_MACHINE));
    if (get_le16(img + EH_TYPE) != ET_EXEC)
        return err_set(eb, -ENOEXEC,
                       "an ELF file of type %u, not an executable: petrel boots a vmlinux",
                       get_le16(img + EH_TYPE));

    uint64_t phoff = get_le64(img + EH_PHOFF);
    unsigned phnum = get_le16(img + EH_PHNUM);
    if (get_le16(img + EH_PHENTSIZE) != PH_SIZE || phnum == 0 || phnum > ELF_MAX_PHNUM)
        return err_set(eb, -ENOEXEC,
                       "the ELF program header table is malformed (%u entries of %u bytes)", phnum,
                       get_le16(img + EH_PHENTSIZE));
    if (phoff > len || (uint64_t)phnum * PH_SIZE > len - phoff)
        return err_set(eb, -ENOEXEC,
                       len < file_size ? "the ELF program headers are not within the file's "
                                         "first %zu bytes"
                                       : "the ELF file is truncated (program headers past its "
                                         "end at %zu)",
                       len);

    uint64_t entry = get_le64(img + EH_ENTRY);
    bool entry_ok = false;
    for (unsigned i = 0; i < phnum; i++) {
        const uint8_t *ph = img + phoff + (uint64_t)i * PH_SIZE;
        if (get_le32(ph + PH_TYPE) != PT_LOAD || get_le64(ph + PH_MEMSZ) == 0)
            continue;
        int ret = vmlinux_segment(img, len, file_size, ph, k, &entry_ok, entry, eb);
        if (ret)
            return ret;
    }
    if (!k->nr_seg)
        return err_set(eb, -ENOEXEC, "the ELF file has nothing to load");
    if (!entry_ok)
        return err_set(eb, -ENOEXEC,
                       "the entry point %#llx is not in an executable segment (a vmlinux's is "
                       "startup_64's physical address)",
                       (unsigned long long)entry);

    k->format = "ELF vmlinux";
    k->entry = entry;
    k->cmdline_max = ELF_CMDLINE_MAX;
    k->initrd_addr_max = ELF_INITRD_ADDR_MAX;
    return 0;
}
