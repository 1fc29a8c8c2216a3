/*
 * Fuzz target: the kernel image parsers (bzImage and ELF vmlinux) and the boot
 * loader behind them.
 *
 * The input is a kernel image. When kernel_parse() accepts it, the image is
 * loaded with x86_boot_place_initrd() and x86_boot_load() into fake guest
 * memory whose size (1 to 64 MiB) comes from byte 0x1f0 (in a bzImage's boot
 * sector, in a vmlinux seed's padding), with an initrd size taken from the
 * image's last four bytes. The fake memory is the tail of one heap block, so
 * a write past guest RAM is a heap overflow that AddressSanitizer reports.
 * Beyond not crashing, the checks below hold for every input.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "petrel/guest_mem.h"
#include "petrel/x86_boot.h"

#define MEM_MAX (64 * MiB)
#define CMDLINE "console=ttyS0 earlyprintk=serial panic=-1 root=/dev/vda rw"

/* Byte 0x1f0 lies in the boot sector, before the setup header: free for the target's use. */
#define MEM_SIZE_BYTE 0x1f0

static uint8_t *mem_block;

/* What a parsed image promises, whatever its format. */
static void check_parsed(const struct kernel_image *k, const uint8_t *data, size_t size)
{
    FUZZ_CHECK(k->nr_seg >= 1 && k->nr_seg <= KERNEL_MAX_SEGMENTS);
    bool entry_in_code = false;
    for (unsigned i = 0; i < k->nr_seg; i++) {
        const struct kernel_segment *s = &k->seg[i];
        FUZZ_CHECK(s->gpa >= BOOT_KERNEL_GPA);
        FUZZ_CHECK(s->filesz <= s->memsz);
        FUZZ_CHECK(s->gpa + s->memsz <= k->end && k->end <= 4 * GiB);
        FUZZ_CHECK(s->data >= data && s->filesz <= size &&
                   (size_t)(s->data - data) <= size - s->filesz);
        for (unsigned j = 0; j < i; j++)
            FUZZ_CHECK(s->gpa >= k->seg[j].gpa + k->seg[j].memsz ||
                       k->seg[j].gpa >= s->gpa + s->memsz);
        if (k->entry >= s->gpa && k->entry - s->gpa < s->filesz)
            entry_in_code = true;
    }
    FUZZ_CHECK(entry_in_code);
    if (k->hdr_len) {
        FUZZ_CHECK(k->hdr == data + BP_HDR);
        FUZZ_CHECK(BP_HDR + k->hdr_len >= BP_INIT_SIZE + 4 && BP_HDR + k->hdr_len <= size);
        FUZZ_CHECK(k->entry == BOOT_KERNEL_GPA + BOOT_ENTRY64_OFFSET);
        /* A bzImage's file may end inside its last paragraph, no earlier. */
        FUZZ_CHECK(k->nr_seg == 1 && k->seg[0].memsz - k->seg[0].filesz < 16);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kernel_image k;
    struct errbuf eb;

    eb.msg[0] = '\0';
    int ret = kernel_parse(data, size, size, &k, &eb);
    if (ret) {
        FUZZ_CHECK(ret == -ENOEXEC);
        FUZZ_CHECK(eb.msg[0] != '\0');
        return 0;
    }
    check_parsed(&k, data, size);

    /* The same file with only its head read, as petrel reads a vmlinux. */
    if (size > 64) {
        struct kernel_image h;
        size_t head = 64 + data[size / 2] % (size - 64);
        ret = kernel_parse(data, head, size, &h, &eb);
        FUZZ_CHECK(ret == 0 || ret == -ENOEXEC);
        for (unsigned i = 0; ret == 0 && i < h.nr_seg; i++) {
            FUZZ_CHECK(h.seg[i].offset <= size && h.seg[i].filesz <= size - h.seg[i].offset);
            FUZZ_CHECK(!h.seg[i].data || (h.seg[i].data == data + h.seg[i].offset &&
                                          h.seg[i].offset + h.seg[i].filesz <= head));
        }
    }

    if (!mem_block) {
        mem_block = malloc(MEM_MAX);
        FUZZ_CHECK(mem_block != NULL);
    }
    uint64_t mem_size = (1 + (size > MEM_SIZE_BYTE ? data[MEM_SIZE_BYTE] : 0) % 64) * MiB;
    uint8_t *mem = mem_block + (MEM_MAX - mem_size);
    struct guest_mem gm;
    gm_init_fake(&gm, mem, mem_size);

    struct boot_load bl = {
        .cmdline = CMDLINE,
        .initrd_size = size >= 4 ? get_le32(data + size - 4) : 0,
    };
    ret = x86_boot_place_initrd(&gm, &k, &bl, &eb);
    if (ret) {
        FUZZ_CHECK(ret == -ENOSPC);
        FUZZ_CHECK(eb.msg[0] != '\0');
        bl.initrd_size = 0; /* boot without it, to exercise the loader anyway */
        bl.initrd_gpa = 0;
    } else if (bl.initrd_size) {
        uint64_t end = bl.initrd_gpa + bl.initrd_size;
        FUZZ_CHECK(bl.initrd_gpa % 4096 == 0);
        FUZZ_CHECK(bl.initrd_gpa >= k.end);
        FUZZ_CHECK(end <= mem_size);
        FUZZ_CHECK(end <= (uint64_t)k.initrd_addr_max + 1);
        FUZZ_CHECK(gm_ptr(&gm, bl.initrd_gpa, bl.initrd_size) != NULL);
    }

    eb.msg[0] = '\0';
    ret = x86_boot_load(&gm, &k, &bl, &eb);
    if (ret) {
        FUZZ_CHECK(ret == -ENOSPC || ret == -E2BIG);
        FUZZ_CHECK(eb.msg[0] != '\0');
        return 0;
    }

    /* A successful load: every segment is in RAM, bytes then zeroes, and the boot data is where the
     * kernel looks. */
    FUZZ_CHECK(k.end <= mem_size);
    for (unsigned i = 0; i < k.nr_seg; i++) {
        const struct kernel_segment *s = &k.seg[i];
        FUZZ_CHECK(memcmp(mem + s->gpa, s->data, s->filesz) == 0);
        for (uint64_t j = s->filesz; j < s->memsz; j += 4093)
            FUZZ_CHECK(mem[s->gpa + j] == 0);
    }
    FUZZ_CHECK(strcmp((const char *)mem + BOOT_CMDLINE_GPA, CMDLINE) == 0);
    FUZZ_CHECK(strlen(CMDLINE) <= k.cmdline_max);
    const uint8_t *zp = mem + BOOT_ZERO_PAGE_GPA;
    FUZZ_CHECK(zp[BP_TYPE_OF_LOADER] == 0xff);
    FUZZ_CHECK(zp[BP_LOADFLAGS] & BZ_LOADED_HIGH);
    FUZZ_CHECK(get_le32(zp + BP_CMD_LINE_PTR) == BOOT_CMDLINE_GPA);
    FUZZ_CHECK(get_le32(zp + BP_RAMDISK_IMAGE) == (uint32_t)bl.initrd_gpa);
    FUZZ_CHECK(get_le32(zp + BP_RAMDISK_SIZE) == (uint32_t)bl.initrd_size);
    FUZZ_CHECK(get_le32(zp + BP_HEADER) == BZ_MAGIC);
    unsigned n = zp[BP_E820_ENTRIES];
    FUZZ_CHECK(n >= 4 && n <= BP_E820_MAX);
    /* Every RAM entry of the e820 map is guest memory. */
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = zp + BP_E820_TABLE + 20 * i;
        if (get_le32(e + 16) == E820_RAM)
            FUZZ_CHECK(gm_ptr(&gm, get_le64(e), get_le64(e + 8)) != NULL);
    }
    return 0;
}
