/*
 * Unit tests for the x86 boot protocol: bzImage and ELF vmlinux validation on
 * synthetic images, the e820 map, initrd placement, and the zero page, command line and
 * kernel that x86_boot_load() writes into fake guest memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "petrel/guest_mem.h"
#include "petrel/x86_boot.h"

#define SETUP_SECTS   2
#define SETUP_SIZE    ((SETUP_SECTS + 1) * 512)
#define PM_SIZE       0x3000
#define HDR_END       0x268 /* protocol 2.15 up to handover_offset */
#define INIT_SIZE     0x10000
#define CMDLINE_SIZE  2047
#define INITRD_MAX    0x7fffffff
#define FAKE_MEM_SIZE (64 * MiB)

/* A synthetic bzImage: a valid minimal one unless a test breaks it. */
struct image {
    uint8_t *buf;
    size_t len;
};

/* The byte at offset i of the protected-mode part. */
static uint8_t pm_byte(size_t i)
{
    return (uint8_t)(i * 13 + 5);
}

static struct image make_image_sized(unsigned setup_sects, size_t pm_size)
{
    unsigned sects = setup_sects ? setup_sects : 4;
    size_t setup_size = ((size_t)sects + 1) * 512;
    struct image im = {.len = setup_size + pm_size};

    im.buf = malloc(im.len);
    assert_non_null(im.buf);
    /*
     * Everything outside the header is non-zero, so that copying more than
     * the header into the zero page shows.
     */
    memset(im.buf, 0xcd, BP_HDR);
    memset(im.buf + BP_HDR, 0, HDR_END - BP_HDR);
    memset(im.buf + HDR_END, 0xab, setup_size - HDR_END);
    for (size_t i = 0; i < pm_size; i++)
        im.buf[setup_size + i] = pm_byte(i);

    uint8_t *b = im.buf;
    b[BP_HDR] = (uint8_t)setup_sects;
    put_le16(b + 0x1f2, 1);                               /* root_flags */
    put_le32(b + 0x1f4, (uint32_t)((pm_size + 15) / 16)); /* syssize */
    put_le16(b + BP_VID_MODE, 0xfffd);                    /* "ask": petrel overrides it */
    put_le16(b + BP_BOOT_FLAG, BZ_BOOT_FLAG);
    b[BP_JUMP] = 0xeb;                               /* jmp short */
    b[BP_JUMP + 1] = (uint8_t)(HDR_END - BP_HEADER); /* over the header */
    put_le32(b + BP_HEADER, BZ_MAGIC);
    put_le16(b + BP_VERSION, 0x020f);
    put_le16(b + 0x20e, 0x3e00); /* kernel_version */
    b[BP_LOADFLAGS] = BZ_LOADED_HIGH;
    put_le32(b + BP_CODE32_START, 0x100000);
    put_le32(b + BP_INITRD_ADDR_MAX, INITRD_MAX);
    put_le32(b + BP_KERNEL_ALIGNMENT, 0x200000);
    b[BP_RELOCATABLE] = 1;
    b[BP_RELOCATABLE + 1] = 21;                           /* min_alignment */
    put_le16(b + BP_XLOADFLAGS, BZ_XLF_KERNEL_64 | 0x02); /* + XLF_CAN_BE_LOADED_ABOVE_4G */
    put_le32(b + BP_CMDLINE_SIZE, CMDLINE_SIZE);
    put_le32(b + 0x250, 0x1234); /* payload_offset */
    put_le64(b + BP_PREF_ADDRESS, 0x1000000);
    put_le32(b + BP_INIT_SIZE, INIT_SIZE);
    put_le32(b + 0x264, 0x190); /* handover_offset */
    return im;
}

static struct image make_image(void)
{
    return make_image_sized(SETUP_SECTS, PM_SIZE);
}

static void free_image(struct image *im)
{
    free(im->buf);
    im->buf = NULL;
}

static void test_parse_valid(void **state)
{
    (void)state;
    struct image im = make_image();
    struct bzimage bz;
    struct errbuf eb = {.msg = ""};

    assert_int_equal(bzimage_parse(im.buf, im.len, &bz, &eb), 0);
    assert_string_equal(eb.msg, "");
    assert_int_equal(bz.version, 0x020f);
    assert_int_equal(bz.setup_sects, SETUP_SECTS);
    assert_int_equal(bz.setup_size, SETUP_SIZE);
    assert_int_equal(bz.hdr_end, HDR_END);
    assert_ptr_equal(bz.pm, im.buf + SETUP_SIZE);
    assert_int_equal(bz.pm_size, PM_SIZE);
    assert_int_equal(bz.pm_mem, PM_SIZE);
    assert_int_equal(bz.init_size, INIT_SIZE);
    assert_int_equal(bz.cmdline_max, CMDLINE_SIZE);
    assert_int_equal(bz.initrd_addr_max, INITRD_MAX);
    assert_true(bz.relocatable);
    free_image(&im);
}

/* setup_sects 0 means 4; init_size below the image's size is raised to it. */
static void test_parse_defaults(void **state)
{
    (void)state;
    struct image im = make_image_sized(0, PM_SIZE);
    struct bzimage bz;

    put_le32(im.buf + BP_INIT_SIZE, 0x100);
    im.buf[BP_RELOCATABLE] = 0;
    assert_int_equal(bzimage_parse(im.buf, im.len, &bz, NULL), 0);
    assert_int_equal(bz.setup_sects, 4);
    assert_int_equal(bz.setup_size, 5 * 512);
    assert_ptr_equal(bz.pm, im.buf + 5 * 512);
    assert_int_equal(bz.pm_size, PM_SIZE);
    assert_int_equal(bz.init_size, PM_SIZE);
    assert_false(bz.relocatable);
    free_image(&im);
}

/* Limits that are exactly met are accepted. */
static void test_parse_boundaries(void **state)
{
    (void)state;
    struct bzimage bz;

    /* The shortest header that holds init_size (0x260..0x263). */
    struct image im = make_image();
    im.buf[BP_JUMP + 1] = (uint8_t)(BP_INIT_SIZE + 4 - BP_HEADER);
    assert_int_equal(bzimage_parse(im.buf, im.len, &bz, NULL), 0);
    assert_int_equal(bz.hdr_end, BP_INIT_SIZE + 4);
    free_image(&im);

    /* syssize covering exactly the protected-mode part. */
    im = make_image_sized(SETUP_SECTS, 0x1000);
    put_le32(im.buf + 0x1f4, 0x100);
    assert_int_equal(bzimage_parse(im.buf, im.len, &bz, NULL), 0);
    free_image(&im);

    /* The smallest protected-mode part that contains the 64-bit entry. */
    im = make_image_sized(SETUP_SECTS, BOOT_ENTRY64_OFFSET + 1);
    put_le32(im.buf + 0x1f4, 0);
    assert_int_equal(bzimage_parse(im.buf, im.len, &bz, NULL), 0);
    assert_int_equal(bz.pm_size, BOOT_ENTRY64_OFFSET + 1);
    free_image(&im);

    /* The oldest accepted protocol. */
    im = make_image();
    put_le16(im.buf + BP_VERSION, BZ_MIN_VERSION);
    assert_int_equal(bzimage_parse(im.buf, im.len, &bz, NULL), 0);
    free_image(&im);
}

/* Parses (im, len) expecting -ENOEXEC and a message containing what. */
static void expect_reject(const uint8_t *img, size_t len, const char *what)
{
    struct kernel_image k;
    struct errbuf eb = {.msg = ""};
    int ret = kernel_parse(img, len, len, &k, &eb);
    if (ret != -ENOEXEC)
        fail_msg("kernel_parse = %d, want -ENOEXEC (expected \"%s\")", ret, what);
    if (!strstr(eb.msg, what))
        fail_msg("message \"%s\" does not mention \"%s\"", eb.msg, what);
}

/* Parses the first len bytes of a file of file_size bytes, expecting -ENOEXEC and what. */
static void expect_reject_head(const uint8_t *img, size_t len, uint64_t file_size, const char *what)
{
    struct kernel_image k;
    struct errbuf eb = {.msg = ""};
    int ret = kernel_parse(img, len, file_size, &k, &eb);
    if (ret != -ENOEXEC)
        fail_msg("kernel_parse = %d, want -ENOEXEC (expected \"%s\")", ret, what);
    if (!strstr(eb.msg, what))
        fail_msg("message \"%s\" does not mention \"%s\"", eb.msg, what);
}

static void test_reject_short(void **state)
{
    (void)state;
    struct image im = make_image();
    expect_reject(im.buf, 1023, "not a Linux kernel");
    expect_reject(im.buf, 0, "not a Linux kernel");
    expect_reject(NULL, 0, "not a Linux kernel");
    free_image(&im);
}

static void test_reject_no_boot_flag(void **state)
{
    (void)state;
    struct image im = make_image();
    put_le16(im.buf + BP_BOOT_FLAG, 0x55aa);
    expect_reject(im.buf, im.len, "no boot header");
    free_image(&im);
}

static void test_reject_no_hdrs(void **state)
{
    (void)state;
    struct image im = make_image();
    memcpy(im.buf + BP_HEADER, "HdrT", 4);
    expect_reject(im.buf, im.len, "no boot header");
    free_image(&im);
}

/* Files that are clearly something else get a hint. */
static void test_reject_guess(void **state)
{
    (void)state;
    uint8_t buf[2048];
    memset(buf, 0, sizeof(buf));
    memcpy(buf,
           "\x7f"
           "ELF",
           4);
    expect_reject(buf, sizeof(buf), "ELF");
    memcpy(buf, "\x1f\x8b\x08\x00", 4);
    expect_reject(buf, sizeof(buf), "gzip");
    memcpy(buf, "070701", 6);
    expect_reject(buf, sizeof(buf), "cpio");
}

static void test_reject_old_version(void **state)
{
    (void)state;
    struct image im = make_image();
    put_le16(im.buf + BP_VERSION, 0x020b);
    expect_reject(im.buf, im.len, "2.11 is too old");
    free_image(&im);
}

static void test_reject_not_loaded_high(void **state)
{
    (void)state;
    struct image im = make_image();
    im.buf[BP_LOADFLAGS] = 0;
    expect_reject(im.buf, im.len, "zImage");
    free_image(&im);
}

static void test_reject_no_kernel_64(void **state)
{
    (void)state;
    struct image im = make_image();
    put_le16(im.buf + BP_XLOADFLAGS, 0x02);
    expect_reject(im.buf, im.len, "no 64-bit entry point");
    free_image(&im);
}

static void test_reject_setup_beyond_file(void **state)
{
    (void)state;
    struct image im = make_image();
    im.buf[BP_HDR] = 200; /* 201 sectors of setup in a file of 4.5 KiB */
    expect_reject(im.buf, im.len, "truncated (setup of");
    /* Setup that fills the whole file leaves no kernel. */
    im.buf[BP_HDR] = SETUP_SECTS;
    expect_reject(im.buf, SETUP_SIZE, "truncated (setup of");
    free_image(&im);
}

static void test_reject_truncated_syssize(void **state)
{
    (void)state;
    struct image im = make_image();
    put_le32(im.buf + 0x1f4, PM_SIZE / 16 + 1);
    expect_reject(im.buf, im.len, "truncated");
    free_image(&im);
    /* The whole file is there, but cut short by a copy. */
    im = make_image();
    expect_reject(im.buf, im.len - 16, "truncated");
    free_image(&im);
}

/*
 * syssize counts 16-byte paragraphs: a tool that rounds it up without padding
 * the file leaves the last paragraph partial. Like QEMU and kvmtool, petrel
 * loads what the file holds and zeroes the rest of that paragraph; a file
 * short by a whole paragraph or more is still truncated.
 */
static void test_parse_partial_paragraph(void **state)
{
    (void)state;
    for (size_t missing = 1; missing <= 15; missing++) {
        struct image im = make_image_sized(SETUP_SECTS, PM_SIZE - missing);
        struct kernel_image k;
        struct errbuf eb = {.msg = ""};
        assert_int_equal(get_le32(im.buf + 0x1f4), PM_SIZE / 16);
        if (kernel_parse(im.buf, im.len, im.len, &k, &eb) != 0)
            fail_msg("a file %zu bytes short of syssize: %s", missing, eb.msg);
        assert_int_equal(k.nr_seg, 1);
        assert_ptr_equal(k.seg[0].data, im.buf + SETUP_SIZE);
        assert_int_equal(k.seg[0].filesz, PM_SIZE - missing);
        assert_int_equal(k.seg[0].memsz, PM_SIZE);
        assert_int_equal(k.end, BOOT_KERNEL_GPA + INIT_SIZE);
        free_image(&im);
    }
    struct image im = make_image_sized(SETUP_SECTS, PM_SIZE - 16);
    put_le32(im.buf + 0x1f4, PM_SIZE / 16);
    expect_reject(im.buf, im.len, "truncated (12272 of 12288 bytes)");
    free_image(&im);

    /* init_size below syssize's memory is raised to cover it, as to cover the file. */
    im = make_image_sized(SETUP_SECTS, 0x301);
    put_le32(im.buf + BP_INIT_SIZE, 0x100);
    struct kernel_image k;
    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, NULL), 0);
    assert_int_equal(k.seg[0].filesz, 0x301);
    assert_int_equal(k.seg[0].memsz, 0x310);
    assert_int_equal(k.end, BOOT_KERNEL_GPA + 0x310);
    free_image(&im);
}

/* The kernel's memory ends at or below 4 GiB: the boot page tables map no more. */
static void test_reject_end_above_4g(void **state)
{
    (void)state;
    struct image im = make_image();
    struct kernel_image k;

    put_le32(im.buf + BP_INIT_SIZE, (uint32_t)(4 * GiB - BOOT_KERNEL_GPA));
    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, NULL), 0);
    assert_int_equal(k.end, 4 * GiB);
    put_le32(im.buf + BP_INIT_SIZE, (uint32_t)(4 * GiB - BOOT_KERNEL_GPA + 1));
    expect_reject(im.buf, im.len, "above 4 GiB");
    /* What libFuzzer found: init_size 0xffffffff, so the end is at 0x1000fffff. */
    put_le32(im.buf + BP_INIT_SIZE, 0xffffffff);
    expect_reject(im.buf, im.len, "above 4 GiB");
    free_image(&im);

    /*
     * A file of more than 4 GiB with a small init_size: the file's own size
     * puts the end above 4 GiB. The parser reads only the header, so the
     * untouched pages of the mapping cost nothing.
     */
    size_t len = 4 * GiB + 2 * MiB;
    uint8_t *big =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(big != MAP_FAILED);
    im = make_image();
    memcpy(big, im.buf, SETUP_SIZE);
    put_le32(big + 0x1f4, 0);
    expect_reject(big, len, "above 4 GiB");
    /* The last paragraph rounded up ends exactly at 4 GiB; one more byte does not fit. */
    size_t pm = 4 * GiB - BOOT_KERNEL_GPA - 5;
    put_le32(big + 0x1f4, (uint32_t)((pm + 15) / 16));
    assert_int_equal(kernel_parse(big, SETUP_SIZE + pm, SETUP_SIZE + pm, &k, NULL), 0);
    assert_int_equal(k.seg[0].filesz, pm);
    assert_int_equal(k.seg[0].memsz, pm + 5);
    assert_int_equal(k.end, 4 * GiB);
    put_le32(big + 0x1f4, 0);
    pm = 4 * GiB - BOOT_KERNEL_GPA + 1;
    expect_reject(big, SETUP_SIZE + pm, "above 4 GiB");
    free_image(&im);
    munmap(big, len);
}

static void test_reject_short_header(void **state)
{
    (void)state;
    struct image im = make_image();
    im.buf[BP_JUMP + 1] = (uint8_t)(BP_INIT_SIZE + 3 - BP_HEADER);
    expect_reject(im.buf, im.len, "setup header is too short");
    im.buf[BP_JUMP + 1] = 0;
    expect_reject(im.buf, im.len, "setup header is too short");
    free_image(&im);
}

static void test_reject_tiny_kernel(void **state)
{
    (void)state;
    struct image im = make_image_sized(SETUP_SECTS, BOOT_ENTRY64_OFFSET);
    put_le32(im.buf + 0x1f4, 0);
    expect_reject(im.buf, im.len, "too small");
    free_image(&im);
}

/* Sanity of any e820 map: sorted, disjoint, RAM backed by guest memory, nothing in the hole. */
static void check_e820(const struct guest_mem *gm, const struct e820_entry *map, unsigned n)
{
    uint64_t ram = 0;
    for (unsigned i = 0; i < n; i++) {
        assert_true(map[i].size > 0);
        assert_true(map[i].type == E820_RAM || map[i].type == E820_RESERVED);
        if (i > 0)
            assert_true(map[i - 1].addr + map[i - 1].size <= map[i].addr);
        uint64_t end = map[i].addr + map[i].size;
        assert_false(map[i].addr < GM_HIGH_START && end > GM_HOLE_START);
        if (map[i].type == E820_RAM) {
            if (!gm_ptr(gm, map[i].addr, map[i].size))
                fail_msg("e820 RAM [%#llx, %#llx) is not guest memory",
                         (unsigned long long)map[i].addr, (unsigned long long)end);
            ram += map[i].size;
        }
    }
    /* All of RAM except the EBDA and the BIOS area, which are reserved. */
    uint64_t reserved_low = 0x100000 - BOOT_EBDA_GPA;
    assert_int_equal(ram, gm->size - reserved_low);
}

static void expect_entry(const struct e820_entry *e, uint64_t addr, uint64_t size, uint32_t type)
{
    if (e->addr != addr || e->size != size || e->type != type)
        fail_msg("e820 entry {%#llx, %#llx, %u}, want {%#llx, %#llx, %u}",
                 (unsigned long long)e->addr, (unsigned long long)e->size, e->type,
                 (unsigned long long)addr, (unsigned long long)size, type);
}

static void test_e820_small(void **state)
{
    (void)state;
    struct guest_mem gm;
    struct e820_entry map[BP_E820_MAX];

    assert_int_equal(gm_init(&gm, 256 * MiB), 0);
    unsigned n = e820_build(&gm, map, BP_E820_MAX);
    assert_int_equal(n, 4);
    expect_entry(&map[0], 0, BOOT_EBDA_GPA, E820_RAM);
    expect_entry(&map[1], BOOT_EBDA_GPA, 0xa0000 - BOOT_EBDA_GPA, E820_RESERVED);
    expect_entry(&map[2], BOOT_BIOS_GPA, 0x100000 - BOOT_BIOS_GPA, E820_RESERVED);
    expect_entry(&map[3], 0x100000, 255 * MiB, E820_RAM);
    check_e820(&gm, map, n);
    gm_destroy(&gm);
}

static void test_e820_high(void **state)
{
    (void)state;
    struct guest_mem gm;
    struct e820_entry map[BP_E820_MAX];
    const uint64_t size = 4 * GiB + 512 * MiB;

    assert_int_equal(gm_init(&gm, size), 0);
    unsigned n = e820_build(&gm, map, BP_E820_MAX);
    assert_int_equal(n, 5);
    expect_entry(&map[0], 0, BOOT_EBDA_GPA, E820_RAM);
    expect_entry(&map[3], 0x100000, GM_HOLE_START - 0x100000, E820_RAM);
    expect_entry(&map[4], GM_HIGH_START, size - GM_HOLE_START, E820_RAM);
    check_e820(&gm, map, n);
    gm_destroy(&gm);
}

/* The map never writes beyond max entries. */
static void test_e820_max(void **state)
{
    (void)state;
    struct guest_mem gm;
    struct e820_entry map[4];

    assert_int_equal(gm_init(&gm, 3 * GiB + 2 * MiB), 0);
    memset(map, 0x5a, sizeof(map));
    assert_int_equal(e820_build(&gm, map, 2), 2);
    expect_entry(&map[0], 0, BOOT_EBDA_GPA, E820_RAM);
    expect_entry(&map[1], BOOT_EBDA_GPA, 0xa0000 - BOOT_EBDA_GPA, E820_RESERVED);
    assert_int_equal(map[2].addr, 0x5a5a5a5a5a5a5a5aULL);
    assert_int_equal(map[3].type, 0x5a5a5a5a);
    assert_int_equal(e820_build(&gm, map, 0), 0);
    gm_destroy(&gm);
}

/* Fake guest memory, filled with a pattern so that anything not written shows. */
struct rig {
    uint8_t *mem;
    uint64_t size;
    struct guest_mem gm;
    struct image im;
    struct kernel_image k;
};

static int rig_setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->size = FAKE_MEM_SIZE;
    r->mem = malloc(r->size);
    if (!r->mem)
        return -1;
    memset(r->mem, 0xcc, r->size);
    gm_init_fake(&r->gm, r->mem, r->size);
    r->im = make_image();
    if (kernel_parse(r->im.buf, r->im.len, r->im.len, &r->k, NULL) != 0)
        return -1;
    *state = r;
    return 0;
}

static int rig_teardown(void **state)
{
    struct rig *r = *state;
    gm_destroy(&r->gm);
    free(r->mem);
    free_image(&r->im);
    free(r);
    return 0;
}

static void test_place_no_initrd(void **state)
{
    struct rig *r = *state;
    struct boot_load bl = {.cmdline = "", .initrd_size = 0, .initrd_gpa = 0x1234};
    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, NULL), 0);
    assert_int_equal(bl.initrd_gpa, 0x1234);
}

/* Checks the placement rules for an initrd of size bytes below limit. */
static void expect_placed(const struct kernel_image *k, const struct boot_load *bl, uint64_t limit)
{
    uint64_t kernel_end = k->end;
    uint64_t rounded = (bl->initrd_size + 4095) & ~4095ULL;
    assert_int_equal(bl->initrd_gpa % 4096, 0);
    assert_true(bl->initrd_gpa >= kernel_end);
    /* As high as possible: it ends, page-rounded, right at the limit. */
    assert_int_equal(bl->initrd_gpa + rounded, limit);
}

static void test_place_initrd(void **state)
{
    struct rig *r = *state;
    struct boot_load bl = {.cmdline = "", .initrd_size = MiB + 1};
    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, NULL), 0);
    expect_placed(&r->k, &bl, FAKE_MEM_SIZE);

    /* The kernel's initrd_addr_max is the limit when it is lower than RAM. */
    r->k.initrd_addr_max = 32 * MiB - 1;
    bl.initrd_size = 4096;
    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, NULL), 0);
    expect_placed(&r->k, &bl, 32 * MiB);

    /* Exactly the room between the kernel's memory and the end of RAM. */
    r->k.initrd_addr_max = INITRD_MAX;
    bl.initrd_size = FAKE_MEM_SIZE - (BOOT_KERNEL_GPA + INIT_SIZE);
    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, NULL), 0);
    assert_int_equal(bl.initrd_gpa, BOOT_KERNEL_GPA + INIT_SIZE);
}

static void test_place_initrd_too_big(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {.msg = ""};
    struct boot_load bl = {.cmdline = ""};

    bl.initrd_size = FAKE_MEM_SIZE - (BOOT_KERNEL_GPA + INIT_SIZE) + 1;
    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, &eb), -ENOSPC);
    assert_non_null(strstr(eb.msg, "initrd"));
    assert_non_null(strstr(eb.msg, "--memory"));

    eb.msg[0] = '\0';
    bl.initrd_size = FAKE_MEM_SIZE;
    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, &eb), -ENOSPC);
    assert_non_null(strstr(eb.msg, "initrd"));

    /* A kernel whose own memory already reaches the limit leaves no room at all. */
    r->k.initrd_addr_max = BOOT_KERNEL_GPA + INIT_SIZE - 4096 - 1;
    bl.initrd_size = 1;
    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, NULL), -ENOSPC);
}

/*
 * Sizes near 2^64 must not wrap when rounded up to a page: the initrd would
 * then "fit" in no space at all.
 */
static void test_place_initrd_huge(void **state)
{
    struct rig *r = *state;
    struct boot_load bl = {.cmdline = ""};

    bl.initrd_size = UINT64_MAX - 100;
    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, NULL), -ENOSPC);
    bl.initrd_size = UINT64_MAX;
    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, NULL), -ENOSPC);
}

/*
 * The initrd never overlaps the kernel's memory, even when the end of RAM is
 * not page-aligned (aligning the start down must not cross kernel_end).
 */
static void test_place_initrd_unaligned_end(void **state)
{
    (void)state;
    const uint64_t size = 32 * MiB + 0x950;
    struct guest_mem gm;
    struct image im = make_image();
    struct kernel_image k;

    /* Placement only looks at the layout, never at the bytes: no backing needed. */
    gm_init_fake(&gm, NULL, size);
    int ret = kernel_parse(im.buf, im.len, im.len, &k, NULL);
    free_image(&im);
    assert_int_equal(ret, 0);
    /* Room for the page-rounded initrd plus 0x50 bytes, from an unaligned kernel_end. */
    k.end = size - 0x1000 - 0x50;
    struct boot_load bl = {.cmdline = "", .initrd_size = 0x1000};
    ret = x86_boot_place_initrd(&gm, &k, &bl, NULL);
    if (ret == 0 && bl.initrd_gpa < k.end)
        fail_msg("initrd at %#llx overlaps the kernel's memory up to %#llx",
                 (unsigned long long)bl.initrd_gpa, (unsigned long long)k.end);
    if (ret == 0)
        assert_true(bl.initrd_gpa + bl.initrd_size <= size);
    else
        assert_int_equal(ret, -ENOSPC);
}

/* Offsets of the setup header fields the loader writes itself. */
static bool loader_field(size_t off)
{
    static const struct {
        size_t off, len;
    } fields[] = {
        {BP_VID_MODE, 2},      {BP_TYPE_OF_LOADER, 1}, {BP_LOADFLAGS, 1},    {BP_CODE32_START, 4},
        {BP_RAMDISK_IMAGE, 4}, {BP_RAMDISK_SIZE, 4},   {BP_HEAP_END_PTR, 2}, {BP_CMD_LINE_PTR, 4},
    };
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        if (off >= fields[i].off && off < fields[i].off + fields[i].len)
            return true;
    return false;
}

static void test_load(void **state)
{
    struct rig *r = *state;
    const char *cmdline = "console=ttyS0 root=/dev/vda rw";
    struct boot_load bl = {.cmdline = cmdline, .initrd_size = 3 * MiB + 7};
    struct errbuf eb = {.msg = ""};

    assert_int_equal(x86_boot_place_initrd(&r->gm, &r->k, &bl, &eb), 0);
    assert_int_equal(x86_boot_load(&r->gm, &r->k, &bl, &eb), 0);
    assert_string_equal(eb.msg, "");

    /* The protected-mode kernel at 1 MiB, and nothing after it. */
    const uint8_t *k = r->mem + BOOT_KERNEL_GPA;
    for (size_t i = 0; i < PM_SIZE; i++)
        if (k[i] != pm_byte(i))
            fail_msg("kernel byte %#zx is %#x, want %#x", i, k[i], pm_byte(i));
    assert_int_equal(k[PM_SIZE], 0xcc);

    /* The command line, NUL-terminated, at 0x20000. */
    assert_string_equal((const char *)r->mem + BOOT_CMDLINE_GPA, cmdline);

    const uint8_t *zp = r->mem + BOOT_ZERO_PAGE_GPA;
    /* Loader fields. */
    assert_int_equal(get_le16(zp + BP_VID_MODE), 0xffff);
    assert_int_equal(zp[BP_TYPE_OF_LOADER], 0xff);
    assert_int_equal(zp[BP_LOADFLAGS], BZ_LOADED_HIGH | BZ_CAN_USE_HEAP);
    assert_int_equal(get_le32(zp + BP_CODE32_START), BOOT_KERNEL_GPA);
    assert_int_equal(get_le32(zp + BP_CMD_LINE_PTR), BOOT_CMDLINE_GPA);
    assert_int_equal(get_le32(zp + BP_EXT_CMD_LINE_PTR), 0);
    assert_int_equal(get_le32(zp + BP_RAMDISK_IMAGE), bl.initrd_gpa);
    assert_int_equal(get_le32(zp + BP_RAMDISK_SIZE), 3 * MiB + 7);
    assert_int_equal(get_le32(zp + BP_EXT_RAMDISK_IMAGE), 0);
    assert_int_equal(get_le32(zp + BP_EXT_RAMDISK_SIZE), 0);
    assert_int_equal(get_le16(zp + BP_HEAP_END_PTR), 0xfe00);

    /* The rest of the setup header is the image's, byte for byte. */
    for (size_t off = BP_HDR; off < HDR_END; off++)
        if (!loader_field(off) && zp[off] != r->im.buf[off])
            fail_msg("zero page byte %#zx is %#x, the image's is %#x", off, zp[off],
                     r->im.buf[off]);

    /* The e820 map, as e820_build() makes it. */
    struct e820_entry map[BP_E820_MAX];
    unsigned n = e820_build(&r->gm, map, BP_E820_MAX);
    assert_int_equal(zp[BP_E820_ENTRIES], n);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *e = zp + BP_E820_TABLE + 20 * i;
        assert_int_equal(get_le64(e), map[i].addr);
        assert_int_equal(get_le64(e + 8), map[i].size);
        assert_int_equal(get_le32(e + 16), map[i].type);
    }

    /* Everything else in the page is zero: no stale memory, no setup code. */
    for (size_t off = 0; off < BP_SIZE; off++) {
        bool written = (off >= BP_HDR && off < HDR_END) || off == BP_E820_ENTRIES ||
                       (off >= BP_EXT_RAMDISK_IMAGE && off < BP_EXT_CMD_LINE_PTR + 4) ||
                       (off >= BP_E820_TABLE && off < BP_E820_TABLE + 20 * n);
        if (!written && zp[off] != 0)
            fail_msg("zero page byte %#zx is %#x, want 0", off, zp[off]);
    }
    /* And nothing was written just outside it. */
    assert_int_equal(r->mem[BOOT_ZERO_PAGE_GPA - 1], 0xcc);
    assert_int_equal(r->mem[BOOT_ZERO_PAGE_GPA + BP_SIZE], 0xcc);
}

/* A partial last paragraph: the file's bytes, zeroes to the paragraph's end, nothing after. */
static void test_load_partial_paragraph(void **state)
{
    struct rig *r = *state;
    struct image im = make_image_sized(SETUP_SECTS, PM_SIZE - 15);
    struct kernel_image k;
    struct boot_load bl = {.cmdline = ""};

    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, NULL), 0);
    assert_int_equal(x86_boot_load(&r->gm, &k, &bl, NULL), 0);
    const uint8_t *dst = r->mem + BOOT_KERNEL_GPA;
    for (size_t i = 0; i < PM_SIZE - 15; i++)
        if (dst[i] != pm_byte(i))
            fail_msg("kernel byte %#zx is %#x, want %#x", i, dst[i], pm_byte(i));
    for (size_t i = PM_SIZE - 15; i < PM_SIZE; i++)
        if (dst[i] != 0)
            fail_msg("kernel byte %#zx past the file is %#x, want 0", i, dst[i]);
    assert_int_equal(dst[PM_SIZE], 0xcc);
    free_image(&im);
}

/* Above 4 GiB: the initrd stays below initrd_addr_max and the e820 map lists both regions. */
static void test_load_high_memory(void **state)
{
    (void)state;
    struct guest_mem gm;
    struct image im = make_image();
    struct kernel_image k;
    struct boot_load bl = {.cmdline = "quiet", .initrd_size = 16 * MiB};

    assert_int_equal(gm_init(&gm, 4 * GiB + 512 * MiB), 0);
    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, NULL), 0);
    assert_int_equal(x86_boot_place_initrd(&gm, &k, &bl, NULL), 0);
    expect_placed(&k, &bl, (uint64_t)INITRD_MAX + 1);

    /* A kernel that takes initrds anywhere below 4 GiB still gets one below the hole. */
    k.initrd_addr_max = 0xffffffff;
    assert_int_equal(x86_boot_place_initrd(&gm, &k, &bl, NULL), 0);
    expect_placed(&k, &bl, GM_HOLE_START);

    assert_int_equal(x86_boot_load(&gm, &k, &bl, NULL), 0);
    const uint8_t *zp = gm_ptr(&gm, BOOT_ZERO_PAGE_GPA, BP_SIZE);
    assert_non_null(zp);
    assert_int_equal(zp[BP_E820_ENTRIES], 5);
    const uint8_t *last = zp + BP_E820_TABLE + 20 * 4;
    assert_int_equal(get_le64(last), GM_HIGH_START);
    assert_int_equal(get_le64(last + 8), 4 * GiB + 512 * MiB - GM_HOLE_START);
    assert_int_equal(get_le32(last + 16), E820_RAM);
    assert_int_equal(get_le32(zp + BP_RAMDISK_IMAGE), GM_HOLE_START - 16 * MiB);
    assert_string_equal((const char *)gm_ptr(&gm, BOOT_CMDLINE_GPA, 6), "quiet");
    free_image(&im);
    gm_destroy(&gm);
}

static void test_load_cmdline_too_long(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {.msg = ""};
    struct boot_load bl = {.cmdline = "0123456789abcdef"}; /* 16 bytes */

    r->k.cmdline_max = 16;
    assert_int_equal(x86_boot_load(&r->gm, &r->k, &bl, &eb), 0);
    assert_string_equal((const char *)r->mem + BOOT_CMDLINE_GPA, bl.cmdline);

    bl.cmdline = "0123456789abcdefg";
    assert_int_equal(x86_boot_load(&r->gm, &r->k, &bl, &eb), -E2BIG);
    assert_non_null(strstr(eb.msg, "17 bytes"));
    assert_non_null(strstr(eb.msg, "at most 16"));

    /* Beyond the room petrel gives the command line, whatever the kernel takes. */
    r->k.cmdline_max = 0x100000;
    char *big = malloc(BOOT_CMDLINE_MAX + 1);
    assert_non_null(big);
    memset(big, 'a', BOOT_CMDLINE_MAX);
    big[BOOT_CMDLINE_MAX] = '\0';
    bl.cmdline = big;
    assert_int_equal(x86_boot_load(&r->gm, &r->k, &bl, NULL), -E2BIG);
    big[BOOT_CMDLINE_MAX - 1] = '\0';
    assert_int_equal(x86_boot_load(&r->gm, &r->k, &bl, NULL), 0);
    assert_int_equal(strlen((const char *)r->mem + BOOT_CMDLINE_GPA), BOOT_CMDLINE_MAX - 1);
    free(big);
}

static void test_load_kernel_too_big(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {.msg = ""};
    struct boot_load bl = {.cmdline = "x"};

    r->k.end = FAKE_MEM_SIZE;
    assert_int_equal(x86_boot_load(&r->gm, &r->k, &bl, &eb), 0);
    r->k.end = FAKE_MEM_SIZE + 1;
    memset(r->mem + BOOT_KERNEL_GPA, 0, PM_SIZE);
    assert_int_equal(x86_boot_load(&r->gm, &r->k, &bl, &eb), -ENOSPC);
    assert_non_null(strstr(eb.msg, "--memory"));
    /* Nothing was loaded. */
    assert_int_equal(r->mem[BOOT_KERNEL_GPA], 0);
    r->k.end = UINT64_MAX;
    assert_int_equal(x86_boot_load(&r->gm, &r->k, &bl, NULL), -ENOSPC);
}

/* Memory that ends below 1 MiB cannot hold a kernel. */
static void test_load_tiny_memory(void **state)
{
    (void)state;
    uint8_t *mem = calloc(1, 512 * KiB);
    struct guest_mem gm;
    struct image im = make_image();
    struct kernel_image k;
    struct boot_load bl = {.cmdline = ""};

    assert_non_null(mem);
    gm_init_fake(&gm, mem, 512 * KiB);
    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, NULL), 0);
    assert_int_equal(x86_boot_load(&gm, &k, &bl, NULL), -ENOSPC);
    free_image(&im);
    free(mem);
}

/* ---- ELF vmlinux ---- */

#define ELF_TEXT_GPA  0x1000000 /* where Debian's vmlinux starts */
#define ELF_TEXT_SIZE 0x3000
#define ELF_DATA_GPA  0x1400000
#define ELF_DATA_FILE 0x800
#define ELF_DATA_MEM  0x5000 /* with bss */
#define ELF_ENTRY     (ELF_TEXT_GPA + 0x40)
#define ELF_DATA_OFF  0x1000 /* file offset of the first segment's bytes */

struct elf_ph {
    uint32_t type, flags;
    uint64_t paddr, filesz, memsz;
};

/* A synthetic vmlinux: a header, n program headers, the segments' bytes in order. */
static struct image make_elf(const struct elf_ph *ph, unsigned n, uint64_t entry)
{
    size_t len = ELF_DATA_OFF;
    for (unsigned i = 0; i < n; i++)
        len += ph[i].filesz;
    struct image im = {.buf = calloc(1, len), .len = len};
    assert_non_null(im.buf);
    uint8_t *b = im.buf;
    memcpy(b,
           "\x7f"
           "ELF",
           4);
    b[4] = 2; /* 64-bit */
    b[5] = 1; /* little endian */
    b[6] = 1;
    put_le16(b + 16, 2);  /* ET_EXEC */
    put_le16(b + 18, 62); /* EM_X86_64 */
    put_le32(b + 20, 1);
    put_le64(b + 24, entry);
    put_le64(b + 32, 64); /* e_phoff */
    put_le16(b + 52, 64);
    put_le16(b + 54, 56);
    put_le16(b + 56, (uint16_t)n);
    size_t off = ELF_DATA_OFF;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *p = b + 64 + 56 * i;
        put_le32(p, ph[i].type);
        put_le32(p + 4, ph[i].flags);
        put_le64(p + 8, off);
        put_le64(p + 16, 0xffffffff80000000ULL + ph[i].paddr); /* virtual: unused */
        put_le64(p + 24, ph[i].paddr);
        put_le64(p + 32, ph[i].filesz);
        put_le64(p + 40, ph[i].memsz);
        for (uint64_t j = 0; j < ph[i].filesz; j++)
            b[off + j] = (uint8_t)(j * 7 + i + 1);
        off += ph[i].filesz;
    }
    return im;
}

/* text (R+X), a note, an empty PT_LOAD, data + bss (R+W): a vmlinux's shape. */
static const struct elf_ph good_ph[] = {
    {1, 5, ELF_TEXT_GPA, ELF_TEXT_SIZE, ELF_TEXT_SIZE},
    {4, 4, ELF_TEXT_GPA + 0x100, 0x20, 0x20},
    {1, 4, 0x2000000, 0, 0},
    {1, 6, ELF_DATA_GPA, ELF_DATA_FILE, ELF_DATA_MEM},
};

static struct image make_good_elf(void)
{
    return make_elf(good_ph, ARRAY_SIZE(good_ph), ELF_ENTRY);
}

static void test_elf_parse(void **state)
{
    (void)state;
    struct image im = make_good_elf();
    struct kernel_image k;
    struct errbuf eb = {.msg = ""};

    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, &eb), 0);
    assert_string_equal(eb.msg, "");
    assert_string_equal(k.format, "ELF vmlinux");
    assert_int_equal(k.nr_seg, 2); /* the note and the empty segment are not loaded */
    assert_int_equal(k.seg[0].gpa, ELF_TEXT_GPA);
    assert_ptr_equal(k.seg[0].data, im.buf + ELF_DATA_OFF);
    assert_int_equal(k.seg[0].filesz, ELF_TEXT_SIZE);
    assert_int_equal(k.seg[0].memsz, ELF_TEXT_SIZE);
    assert_int_equal(k.seg[1].gpa, ELF_DATA_GPA);
    assert_ptr_equal(k.seg[1].data, im.buf + ELF_DATA_OFF + ELF_TEXT_SIZE + 0x20);
    assert_int_equal(k.seg[1].filesz, ELF_DATA_FILE);
    assert_int_equal(k.seg[1].memsz, ELF_DATA_MEM);
    assert_int_equal(k.entry, ELF_ENTRY);
    assert_int_equal(k.end, ELF_DATA_GPA + ELF_DATA_MEM);
    assert_int_equal(k.cmdline_max, ELF_CMDLINE_MAX);
    assert_int_equal(k.initrd_addr_max, ELF_INITRD_ADDR_MAX);
    assert_int_equal(k.hdr_len, 0);
    free_image(&im);

    /* A bzImage keeps its own entry and header. */
    im = make_image();
    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, NULL), 0);
    assert_string_equal(k.format, "bzImage");
    assert_int_equal(k.entry, BOOT_KERNEL_GPA + BOOT_ENTRY64_OFFSET);
    assert_int_equal(k.end, BOOT_KERNEL_GPA + INIT_SIZE);
    assert_ptr_equal(k.hdr, im.buf + BP_HDR);
    assert_int_equal(k.hdr_len, HDR_END - BP_HDR);
    free_image(&im);
}

/* Builds good_ph with one header changed by edit, and expects the parser to refuse it. */
static void expect_elf_reject(void (*edit)(struct elf_ph *ph, uint64_t *entry), const char *what)
{
    struct elf_ph ph[ARRAY_SIZE(good_ph)];
    uint64_t entry = ELF_ENTRY;
    memcpy(ph, good_ph, sizeof(ph));
    edit(ph, &entry);
    struct image im = make_elf(ph, ARRAY_SIZE(ph), entry);
    expect_reject(im.buf, im.len, what);
    free_image(&im);
}

static void edit_below_1m(struct elf_ph *ph, uint64_t *entry)
{
    ph[3].paddr = 0x9f000;
    (void)entry;
}

static void edit_above_4g(struct elf_ph *ph, uint64_t *entry)
{
    ph[3].paddr = 0xfffff000;
    (void)entry;
}

static void edit_wraps(struct elf_ph *ph, uint64_t *entry)
{
    ph[3].memsz = UINT64_MAX - 0x1000;
    (void)entry;
}

static void edit_overlap(struct elf_ph *ph, uint64_t *entry)
{
    ph[3].paddr = ELF_TEXT_GPA + ELF_TEXT_SIZE - 1;
    (void)entry;
}

static void edit_filesz(struct elf_ph *ph, uint64_t *entry)
{
    ph[3].memsz = ph[3].filesz - 1;
    (void)entry;
}

static void edit_entry_bss(struct elf_ph *ph, uint64_t *entry)
{
    ph[0].memsz = ph[0].filesz + 0x1000;
    *entry = ELF_TEXT_GPA + ELF_TEXT_SIZE; /* in the segment's memory, not its bytes */
}

static void edit_entry_data(struct elf_ph *ph, uint64_t *entry)
{
    (void)ph;
    *entry = ELF_DATA_GPA; /* not executable */
}

static void edit_entry_nowhere(struct elf_ph *ph, uint64_t *entry)
{
    (void)ph;
    *entry = 0xffffffff81000000ULL; /* the virtual address: a classic mistake */
}

static void edit_nothing_loaded(struct elf_ph *ph, uint64_t *entry)
{
    ph[0].type = 4;
    ph[3].type = 6;
    (void)entry;
}

static void test_elf_reject_segments(void **state)
{
    (void)state;
    expect_elf_reject(edit_below_1m, "below 1 MiB");
    expect_elf_reject(edit_above_4g, "above 4 GiB");
    expect_elf_reject(edit_wraps, "above 4 GiB");
    expect_elf_reject(edit_overlap, "overlap");
    expect_elf_reject(edit_filesz, "more bytes in the file");
    expect_elf_reject(edit_entry_bss, "entry point");
    expect_elf_reject(edit_entry_data, "entry point");
    expect_elf_reject(edit_entry_nowhere, "entry point");
    expect_elf_reject(edit_nothing_loaded, "nothing to load");
}

static void test_elf_reject_headers(void **state)
{
    (void)state;
    struct image im = make_good_elf();
    uint8_t *b = im.buf;

    expect_reject(b, 63, "truncated"); /* too short for an ELF header */
    b[4] = 1;
    expect_reject(b, im.len, "32-bit");
    b[4] = 7;
    expect_reject(b, im.len, "class 7");
    b[4] = 2;
    put_le16(b + 18, 183); /* aarch64 */
    expect_reject(b, im.len, "not an x86-64 ELF");
    put_le16(b + 18, 62);
    b[5] = 2; /* big endian */
    expect_reject(b, im.len, "not an x86-64 ELF");
    b[5] = 1;
    put_le16(b + 16, 3); /* ET_DYN */
    expect_reject(b, im.len, "not an executable");
    put_le16(b + 16, 2);
    put_le16(b + 54, 32);
    expect_reject(b, im.len, "program header table");
    put_le16(b + 54, 56);
    put_le16(b + 56, 0);
    expect_reject(b, im.len, "program header table");
    put_le16(b + 56, 0xffff);
    expect_reject(b, im.len, "program header table");
    put_le16(b + 56, ARRAY_SIZE(good_ph));
    put_le64(b + 32, im.len - 100); /* the table runs off the end */
    expect_reject(b, im.len, "truncated");
    put_le64(b + 32, UINT64_MAX - 10);
    expect_reject(b, im.len, "truncated");
    put_le64(b + 32, 64);
    /* The file cut inside the last segment's bytes. */
    expect_reject(b, im.len - 1, "truncated");
    /* A segment whose offset is past the end, or wraps with its size. */
    put_le64(b + 64 + 56 * 3 + 8, UINT64_MAX - 4);
    expect_reject(b, im.len, "truncated");
    put_le64(b + 64 + 56 * 3 + 8, ELF_DATA_OFF + ELF_TEXT_SIZE + 0x20);
    assert_int_equal(kernel_parse(b, im.len, im.len, &(struct kernel_image){0}, NULL), 0);
    free_image(&im);
}

static void test_elf_too_many_segments(void **state)
{
    (void)state;
    struct elf_ph ph[KERNEL_MAX_SEGMENTS + 1];
    for (unsigned i = 0; i < ARRAY_SIZE(ph); i++)
        ph[i] = (struct elf_ph){1, 5, ELF_TEXT_GPA + i * 0x1000, 0x10, 0x10};

    struct image im = make_elf(ph, KERNEL_MAX_SEGMENTS, ELF_TEXT_GPA);
    struct kernel_image k;
    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, NULL), 0);
    assert_int_equal(k.nr_seg, KERNEL_MAX_SEGMENTS);
    free_image(&im);
    im = make_elf(ph, ARRAY_SIZE(ph), ELF_TEXT_GPA);
    expect_reject(im.buf, im.len, "more than");
    free_image(&im);
}

static void test_elf_load(void **state)
{
    struct rig *r = *state;
    struct image im = make_good_elf();
    struct kernel_image k;
    struct boot_load bl = {.cmdline = "console=ttyS0", .initrd_size = 5000};
    struct errbuf eb = {.msg = ""};

    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, NULL), 0);
    assert_int_equal(x86_boot_place_initrd(&r->gm, &k, &bl, &eb), 0);
    expect_placed(&k, &bl, FAKE_MEM_SIZE);
    assert_int_equal(x86_boot_load(&r->gm, &k, &bl, &eb), 0);
    assert_string_equal(eb.msg, "");

    /* Each segment's bytes at its physical address, then zeroes up to memsz, then untouched. */
    assert_memory_equal(r->mem + ELF_TEXT_GPA, k.seg[0].data, ELF_TEXT_SIZE);
    assert_int_equal(r->mem[ELF_TEXT_GPA + ELF_TEXT_SIZE], 0xcc);
    assert_int_equal(r->mem[ELF_TEXT_GPA - 1], 0xcc);
    assert_memory_equal(r->mem + ELF_DATA_GPA, k.seg[1].data, ELF_DATA_FILE);
    for (size_t i = ELF_DATA_FILE; i < ELF_DATA_MEM; i++)
        if (r->mem[ELF_DATA_GPA + i] != 0)
            fail_msg("bss byte %#zx is %#x, want 0", i, r->mem[ELF_DATA_GPA + i]);
    assert_int_equal(r->mem[ELF_DATA_GPA + ELF_DATA_MEM], 0xcc);
    /* The empty segment and the note were not written. */
    assert_int_equal(r->mem[0x2000000], 0xcc);

    /* The setup header petrel writes for a kernel that has none. */
    const uint8_t *zp = r->mem + BOOT_ZERO_PAGE_GPA;
    assert_int_equal(get_le16(zp + BP_BOOT_FLAG), BZ_BOOT_FLAG);
    assert_int_equal(get_le32(zp + BP_HEADER), BZ_MAGIC);
    assert_int_equal(get_le16(zp + BP_VERSION), BOOT_HDR_VERSION);
    assert_int_equal(zp[BP_LOADFLAGS], BZ_LOADED_HIGH | BZ_CAN_USE_HEAP);
    assert_int_equal(zp[BP_TYPE_OF_LOADER], 0xff);
    assert_int_equal(get_le32(zp + BP_CODE32_START), ELF_TEXT_GPA);
    assert_int_equal(get_le32(zp + BP_CMDLINE_SIZE), ELF_CMDLINE_MAX);
    assert_int_equal(get_le32(zp + BP_INITRD_ADDR_MAX), ELF_INITRD_ADDR_MAX);
    assert_int_equal(get_le16(zp + BP_XLOADFLAGS), BZ_XLF_KERNEL_64);
    assert_int_equal(get_le32(zp + BP_CMD_LINE_PTR), BOOT_CMDLINE_GPA);
    assert_int_equal(get_le32(zp + BP_RAMDISK_IMAGE), bl.initrd_gpa);
    assert_int_equal(get_le32(zp + BP_RAMDISK_SIZE), 5000);
    assert_true(zp[BP_E820_ENTRIES] >= 4);
    assert_string_equal((const char *)r->mem + BOOT_CMDLINE_GPA, "console=ttyS0");
    /* No bzImage setup code or stale bytes: before the header the page is zero. */
    for (size_t off = 0; off < BP_E820_ENTRIES; off++)
        if (off < BP_EXT_RAMDISK_IMAGE || off >= BP_EXT_CMD_LINE_PTR + 4)
            assert_int_equal(zp[off], 0);
    free_image(&im);
}

/*
 * Only the file's head in memory, as petrel reads a vmlinux: the segments carry
 * their file offsets and no data, the loader zeroes their bss and leaves their
 * bytes to the caller.
 */
static void test_elf_head_only(void **state)
{
    struct rig *r = *state;
    struct image im = make_good_elf();
    struct kernel_image k;
    struct errbuf eb = {.msg = ""};
    struct boot_load bl = {.cmdline = ""};

    assert_int_equal(kernel_parse(im.buf, ELF_DATA_OFF, im.len, &k, &eb), 0);
    assert_int_equal(k.nr_seg, 2);
    assert_null(k.seg[0].data);
    assert_int_equal(k.seg[0].offset, ELF_DATA_OFF);
    assert_null(k.seg[1].data);
    assert_int_equal(k.seg[1].offset, ELF_DATA_OFF + ELF_TEXT_SIZE + 0x20);
    assert_int_equal(k.entry, ELF_ENTRY);

    /* A head that holds the first segment's bytes but not the second's. */
    assert_int_equal(kernel_parse(im.buf, ELF_DATA_OFF + ELF_TEXT_SIZE, im.len, &k, NULL), 0);
    assert_ptr_equal(k.seg[0].data, im.buf + ELF_DATA_OFF);
    assert_null(k.seg[1].data);

    assert_int_equal(x86_boot_load(&r->gm, &k, &bl, &eb), 0);
    assert_memory_equal(r->mem + ELF_TEXT_GPA, im.buf + ELF_DATA_OFF, ELF_TEXT_SIZE);
    for (size_t i = 0; i < ELF_DATA_FILE; i++)
        assert_int_equal(r->mem[ELF_DATA_GPA + i], 0xcc); /* the caller's to read */
    for (size_t i = ELF_DATA_FILE; i < ELF_DATA_MEM; i++)
        assert_int_equal(r->mem[ELF_DATA_GPA + i], 0);

    /* The program headers must be in the head; segments only in the file. */
    expect_reject_head(im.buf, 100, im.len, "not within the file's first 100 bytes");
    expect_reject_head(im.buf, ELF_DATA_OFF, im.len - 1, "truncated");
    /* A bzImage is parsed whole or not at all. */
    free_image(&im);
    im = make_image();
    expect_reject_head(im.buf, im.len - 1, im.len, "only");
    free_image(&im);
}

/* A vmlinux larger than RAM is refused before anything is copied. */
static void test_elf_load_too_big(void **state)
{
    struct rig *r = *state;
    struct elf_ph ph[] = {
        {1, 5, ELF_TEXT_GPA, ELF_TEXT_SIZE, ELF_TEXT_SIZE},
        {1, 6, ELF_DATA_GPA, 0x10, FAKE_MEM_SIZE - ELF_DATA_GPA + 1},
    };
    struct image im = make_elf(ph, ARRAY_SIZE(ph), ELF_ENTRY);
    struct kernel_image k;
    struct boot_load bl = {.cmdline = ""};
    struct errbuf eb = {.msg = ""};

    assert_int_equal(kernel_parse(im.buf, im.len, im.len, &k, NULL), 0);
    assert_int_equal(x86_boot_load(&r->gm, &k, &bl, &eb), -ENOSPC);
    assert_non_null(strstr(eb.msg, "--memory"));
    assert_int_equal(r->mem[ELF_TEXT_GPA], 0xcc);
    free_image(&im);
}

#define RIG_TEST(fn) cmocka_unit_test_setup_teardown(fn, rig_setup, rig_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_boundaries),
        cmocka_unit_test(test_reject_short),
        cmocka_unit_test(test_reject_no_boot_flag),
        cmocka_unit_test(test_reject_no_hdrs),
        cmocka_unit_test(test_reject_guess),
        cmocka_unit_test(test_reject_old_version),
        cmocka_unit_test(test_reject_not_loaded_high),
        cmocka_unit_test(test_reject_no_kernel_64),
        cmocka_unit_test(test_reject_setup_beyond_file),
        cmocka_unit_test(test_reject_truncated_syssize),
        cmocka_unit_test(test_parse_partial_paragraph),
        cmocka_unit_test(test_reject_end_above_4g),
        cmocka_unit_test(test_reject_short_header),
        cmocka_unit_test(test_reject_tiny_kernel),
        cmocka_unit_test(test_e820_small),
        cmocka_unit_test(test_e820_high),
        cmocka_unit_test(test_e820_max),
        RIG_TEST(test_place_no_initrd),
        RIG_TEST(test_place_initrd),
        RIG_TEST(test_place_initrd_too_big),
        RIG_TEST(test_place_initrd_huge),
        cmocka_unit_test(test_place_initrd_unaligned_end),
        RIG_TEST(test_load),
        RIG_TEST(test_load_partial_paragraph),
        cmocka_unit_test(test_load_high_memory),
        RIG_TEST(test_load_cmdline_too_long),
        RIG_TEST(test_load_kernel_too_big),
        cmocka_unit_test(test_load_tiny_memory),
        cmocka_unit_test(test_elf_parse),
        cmocka_unit_test(test_elf_reject_segments),
        cmocka_unit_test(test_elf_reject_headers),
        cmocka_unit_test(test_elf_too_many_segments),
        RIG_TEST(test_elf_load),
        RIG_TEST(test_elf_load_too_big),
        RIG_TEST(test_elf_head_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
