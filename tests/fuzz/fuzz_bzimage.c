/*
 * Fuzz target: the bzImage parser and the boot loader behind it.
 *
 * The input is a kernel image. When bzimage_parse() accepts it, the image is
 * loaded with x86_boot_place_initrd() and x86_boot_load() into fake guest
 * memory whose size (1 to 64 MiB) comes from a byte the parser ignores, with
 * an initrd size taken from the image's last four bytes. The fake memory is
 * the tail of one heap block, so a write past guest RAM is a heap overflow
 * that AddressSanitizer reports. Beyond not crashing, the checks below hold
 * for every input.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bzimage bz;
    struct errbuf eb;

    eb.msg[0] = '\0';
    int ret = bzimage_parse(data, size, &bz, &eb);
    if (ret) {
        FUZZ_CHECK(ret == -ENOEXEC);
        FUZZ_CHECK(eb.msg[0] != '\0');
        return 0;
    }

    /* What a parsed image promises. */
    FUZZ_CHECK(bz.version >= BZ_MIN_VERSION);
    FUZZ_CHECK(bz.setup_size == ((size_t)bz.setup_sects + 1) * 512);
    FUZZ_CHECK(bz.setup_size < size);
    FUZZ_CHECK(bz.hdr_end >= BP_INIT_SIZE + 4 && bz.hdr_end <= bz.setup_size);
    FUZZ_CHECK(bz.pm == data + bz.setup_size);
    FUZZ_CHECK(bz.pm_size == size - bz.setup_size);
    FUZZ_CHECK(bz.pm_size > BOOT_ENTRY64_OFFSET);
    FUZZ_CHECK(bz.init_size >= bz.pm_size);

    if (!mem_block) {
        mem_block = malloc(MEM_MAX);
        FUZZ_CHECK(mem_block != NULL);
    }
    uint64_t mem_size = (1 + data[MEM_SIZE_BYTE] % 64) * MiB;
    uint8_t *mem = mem_block + (MEM_MAX - mem_size);
    struct guest_mem gm;
    gm_init_fake(&gm, mem, mem_size);

    struct boot_load bl = {
        .cmdline = CMDLINE,
        .initrd_size = get_le32(data + size - 4),
    };
    ret = x86_boot_place_initrd(&gm, &bz, &bl, &eb);
    if (ret) {
        FUZZ_CHECK(ret == -ENOSPC);
        FUZZ_CHECK(eb.msg[0] != '\0');
        bl.initrd_size = 0; /* boot without it, to exercise the loader anyway */
        bl.initrd_gpa = 0;
    } else if (bl.initrd_size) {
        uint64_t end = bl.initrd_gpa + bl.initrd_size;
        FUZZ_CHECK(bl.initrd_gpa % 4096 == 0);
        FUZZ_CHECK(bl.initrd_gpa >= BOOT_KERNEL_GPA + bz.init_size);
        FUZZ_CHECK(end <= mem_size);
        FUZZ_CHECK(end <= (uint64_t)bz.initrd_addr_max + 1);
        FUZZ_CHECK(gm_ptr(&gm, bl.initrd_gpa, bl.initrd_size) != NULL);
    }

    eb.msg[0] = '\0';
    ret = x86_boot_load(&gm, &bz, data, &bl, &eb);
    if (ret) {
        FUZZ_CHECK(ret == -ENOSPC || ret == -E2BIG);
        FUZZ_CHECK(eb.msg[0] != '\0');
        return 0;
    }

    /* A successful load: the kernel fits, and the boot data is where the kernel looks. */
    FUZZ_CHECK(BOOT_KERNEL_GPA + bz.init_size <= mem_size);
    FUZZ_CHECK(memcmp(mem + BOOT_KERNEL_GPA, bz.pm, bz.pm_size) == 0);
    FUZZ_CHECK(strcmp((const char *)mem + BOOT_CMDLINE_GPA, CMDLINE) == 0);
    FUZZ_CHECK(strlen(CMDLINE) <= bz.cmdline_max);
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
