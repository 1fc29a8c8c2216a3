/*
 * Unit tests for guest_mem.c and guest_mem_save.c: the checked accessor, the
 * layout around the hole, and the memory file (gm_save(), gm_init_file()).
 *
 * The memory file tests make system calls fail or lie through link-time wraps
 * (tests/unit/meson.build: --wrap=pwrite64,...): a full disk, a failing
 * fdatasync, no /proc/self/pagemap, pages the kernel reports swapped out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "petrel/guest_mem.h"

#define FAKE_SIZE (64 * KiB)

struct fake {
    uint8_t *buf;
    struct guest_mem gm;
};

static int fake_setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->buf = calloc(1, FAKE_SIZE);
    if (!f->buf) {
        free(f);
        return -1;
    }
    gm_init_fake(&f->gm, f->buf, FAKE_SIZE);
    *state = f;
    return 0;
}

static int fake_teardown(void **state)
{
    struct fake *f = *state;
    gm_destroy(&f->gm);
    free(f->buf);
    free(f);
    return 0;
}

static void test_fake_layout(void **state)
{
    struct fake *f = *state;
    assert_int_equal(f->gm.nr, 1);
    assert_int_equal(f->gm.size, FAKE_SIZE);
    assert_false(f->gm.owned);
    assert_int_equal(gm_low_end(&f->gm), FAKE_SIZE);
}

static void test_in_range(void **state)
{
    struct fake *f = *state;
    const struct guest_mem *gm = &f->gm;

    assert_ptr_equal(gm_ptr(gm, 0, 1), f->buf);
    assert_ptr_equal(gm_ptr(gm, 0, FAKE_SIZE), f->buf);
    assert_ptr_equal(gm_ptr(gm, 0x1234, 16), f->buf + 0x1234);
    assert_ptr_equal(gm_ptr(gm, FAKE_SIZE - 1, 1), f->buf + FAKE_SIZE - 1);
    assert_ptr_equal(gm_ptr(gm, FAKE_SIZE - 8, 8), f->buf + FAKE_SIZE - 8);
    /* len 0 inside RAM is a valid (empty) range. */
    assert_ptr_equal(gm_ptr(gm, 0, 0), f->buf);
    assert_ptr_equal(gm_ptr(gm, FAKE_SIZE - 1, 0), f->buf + FAKE_SIZE - 1);
}

static void test_out_of_range(void **state)
{
    struct fake *f = *state;
    const struct guest_mem *gm = &f->gm;

    /* Straddling the end. */
    assert_null(gm_ptr(gm, FAKE_SIZE - 1, 2));
    assert_null(gm_ptr(gm, FAKE_SIZE - 8, 9));
    assert_null(gm_ptr(gm, 0, FAKE_SIZE + 1));
    /* len 0 at the end: the address is not in RAM. */
    assert_null(gm_ptr(gm, FAKE_SIZE, 0));
    /* Beyond the end. */
    assert_null(gm_ptr(gm, FAKE_SIZE, 1));
    assert_null(gm_ptr(gm, FAKE_SIZE + 4096, 1));
    assert_null(gm_ptr(gm, GM_HIGH_START, 1));
    assert_null(gm_ptr(gm, UINT64_MAX, 0));
    assert_null(gm_ptr(gm, UINT64_MAX, 1));
    /* Lengths for which gpa + len wraps around to a small value. */
    assert_null(gm_ptr(gm, 1, UINT64_MAX));
    assert_null(gm_ptr(gm, 0x100, UINT64_MAX - 0xff)); /* gpa + len == 0 */
    assert_null(gm_ptr(gm, 0x100, UINT64_MAX - 0x7f)); /* gpa + len == 0x80 */
    assert_null(gm_ptr(gm, UINT64_MAX, 2));
    assert_null(gm_ptr(gm, 0, UINT64_MAX));
}

/* Exhaustive over a small fake: gm_ptr agrees with the arithmetic definition. */
static void test_small_exhaustive(void **state)
{
    (void)state;
    uint8_t buf[32];
    struct guest_mem gm;

    gm_init_fake(&gm, buf, sizeof(buf));
    for (uint64_t gpa = 0; gpa < 40; gpa++) {
        for (uint64_t len = 0; len < 40; len++) {
            bool ok = gpa < sizeof(buf) && gpa + len <= sizeof(buf);
            void *p = gm_ptr(&gm, gpa, len);
            if (ok && p != buf + gpa)
                fail_msg("gm_ptr(%llu, %llu) = %p, want %p", (unsigned long long)gpa,
                         (unsigned long long)len, p, (void *)(buf + gpa));
            if (!ok && p)
                fail_msg("gm_ptr(%llu, %llu) = %p, want NULL", (unsigned long long)gpa,
                         (unsigned long long)len, p);
        }
    }
    gm_destroy(&gm);
}

/* Below the hole: one region, no high memory. */
static void test_init_low_only(void **state)
{
    (void)state;
    struct guest_mem gm;

    assert_int_equal(gm_init(&gm, 256 * MiB), 0);
    assert_int_equal(gm.nr, 1);
    assert_true(gm.owned);
    assert_int_equal(gm.size, 256 * MiB);
    assert_int_equal(gm.regions[0].gpa, 0);
    assert_int_equal(gm.regions[0].size, 256 * MiB);
    assert_int_equal(gm_low_end(&gm), 256 * MiB);
    uint8_t *p = gm_ptr(&gm, 256 * MiB - 1, 1);
    assert_ptr_equal(p, gm.regions[0].host + 256 * MiB - 1);
    *p = 0x5a; /* the mapping is writable */
    assert_int_equal(*(uint8_t *)gm_ptr(&gm, 256 * MiB - 1, 1), 0x5a);
    assert_null(gm_ptr(&gm, 256 * MiB, 1));
    gm_destroy(&gm);
    assert_int_equal(gm.nr, 0);
}

/* Exactly 3 GiB still fits below the hole in one region. */
static void test_init_exactly_hole(void **state)
{
    (void)state;
    struct guest_mem gm;

    assert_int_equal(gm_init(&gm, GM_HOLE_START), 0);
    assert_int_equal(gm.nr, 1);
    assert_int_equal(gm.regions[0].size, GM_HOLE_START);
    assert_int_equal(gm_low_end(&gm), GM_HOLE_START);
    assert_null(gm_ptr(&gm, GM_HIGH_START, 1));
    gm_destroy(&gm);
}

/*
 * 3 GiB + 2 MiB: RAM is split around the PCI hole, the rest starting at 4 GiB.
 * The mappings are anonymous and MAP_NORESERVE; only two pages are touched.
 */
static void test_init_split(void **state)
{
    (void)state;
    struct guest_mem gm;
    const uint64_t size = 3 * GiB + 2 * MiB;

    assert_int_equal(gm_init(&gm, size), 0);
    assert_int_equal(gm.nr, 2);
    assert_int_equal(gm.size, size);
    assert_int_equal(gm.regions[0].gpa, 0);
    assert_int_equal(gm.regions[0].size, GM_HOLE_START);
    assert_int_equal(gm.regions[1].gpa, GM_HIGH_START);
    assert_int_equal(gm.regions[1].size, 2 * MiB);
    assert_int_equal(gm_low_end(&gm), GM_HOLE_START);

    /* Last byte below the hole, first and last byte above it. */
    uint8_t *low_last = gm_ptr(&gm, GM_HOLE_START - 1, 1);
    assert_ptr_equal(low_last, gm.regions[0].host + GM_HOLE_START - 1);
    assert_ptr_equal(gm_ptr(&gm, GM_HIGH_START, 2 * MiB), gm.regions[1].host);
    uint8_t *high_last = gm_ptr(&gm, GM_HIGH_START + 2 * MiB - 1, 1);
    assert_ptr_equal(high_last, gm.regions[1].host + 2 * MiB - 1);
    *high_last = 0xa5;
    assert_int_equal(*(uint8_t *)gm_ptr(&gm, GM_HIGH_START + 2 * MiB - 1, 1), 0xa5);

    /* The hole itself and every range that crosses into or over it. */
    assert_null(gm_ptr(&gm, GM_HOLE_START, 1));
    assert_null(gm_ptr(&gm, GM_HOLE_START, 0));
    assert_null(gm_ptr(&gm, GM_HIGH_START - 1, 1));
    assert_null(gm_ptr(&gm, GM_HOLE_START - 1, 2));
    assert_null(gm_ptr(&gm, GM_HIGH_START - 1, 2));
    assert_null(gm_ptr(&gm, GM_HOLE_START - 4096, GM_HIGH_START - GM_HOLE_START + 8192));
    assert_null(gm_ptr(&gm, 0, size));
    /* And past the high region. */
    assert_null(gm_ptr(&gm, GM_HIGH_START + 2 * MiB - 1, 2));
    assert_null(gm_ptr(&gm, GM_HIGH_START + 2 * MiB, 0));
    assert_null(gm_ptr(&gm, GM_HIGH_START + 1, UINT64_MAX));

    gm_destroy(&gm);
    assert_int_equal(gm.nr, 0);
    assert_null(gm_ptr(&gm, 0, 1));
}

/* gm_resident() counts the pages the guest has touched, in both regions. */
static void test_resident(void **state)
{
    (void)state;
    struct guest_mem gm;
    const uint64_t size = 3 * GiB + 4 * MiB;
    long page = sysconf(_SC_PAGESIZE);

    assert_int_equal(gm_init(&gm, size), 0);
    uint64_t before = gm_resident(&gm);
    static const uint64_t touch[] = {0, 16 * MiB + 4096, GM_HOLE_START - 1, GM_HIGH_START + MiB};
    for (size_t i = 0; i < ARRAY_SIZE(touch); i++) {
        uint8_t *p = gm_ptr(&gm, touch[i], 1);
        assert_non_null(p);
        *p = 1;
    }
    uint64_t after = gm_resident(&gm);
    assert_true(after >= before + ARRAY_SIZE(touch) * (uint64_t)page);
    assert_true(after <= size);
    gm_destroy(&gm);
}

/* ---- The memory file ---------------------------------------------------- */

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_PFN     ((1ULL << 55) - 1)

/* What the wrapped system calls do; reset by file_setup(). */
static struct {
    int enospc_fd; /* pwrite to it fails with ENOSPC once write_budget is spent */
    uint64_t write_budget;
    int eio_sync_fd;      /* fdatasync on it fails with EIO */
    bool no_pagemap;      /* opening /proc/self/pagemap fails */
    bool pagemap_swapped; /* pagemap reports every present page swapped out instead */
    int pagemap_fd;       /* the fd the code under test opened on pagemap */
} fx;

int __real_open64(const char *path, int flags, ...);
int __wrap_open64(const char *path, int flags, ...);
ssize_t __real_pread64(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off);
ssize_t __real_pwrite64(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off);
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

int __wrap_open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    bool pagemap = strcmp(path, "/proc/self/pagemap") == 0;
    if (pagemap && fx.no_pagemap) {
        errno = EACCES;
        return -1;
    }
    int fd = __real_open64(path, flags, mode);
    if (pagemap)
        fx.pagemap_fd = fd;
    return fd;
}

ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off)
{
    ssize_t got = __real_pread64(fd, buf, n, off);
    if (fd == fx.pagemap_fd && fx.pagemap_swapped && got > 0) {
        /* A swapped-out page: not present, no PFN, swap bit set (its offset left as is). */
        uint64_t *pm = buf;
        for (size_t i = 0; i < (size_t)got / sizeof(*pm); i++) {
            if (pm[i] & PM_PRESENT)
                pm[i] = (pm[i] & ~(PM_PRESENT | PM_PFN)) | PM_SWAPPED;
        }
    }
    return got;
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    if (fd == fx.enospc_fd) {
        if (fx.write_budget == 0) {
            errno = ENOSPC;
            return -1;
        }
        /* As a filling disk does: a short write, then ENOSPC. */
        if (n > fx.write_budget)
            n = fx.write_budget;
        fx.write_budget -= n;
    }
    return __real_pwrite64(fd, buf, n, off);
}

int __wrap_fdatasync(int fd)
{
    if (fd == fx.eio_sync_fd) {
        errno = EIO;
        return -1;
    }
    return __real_fdatasync(fd);
}

/* A fresh file for a test, already unlinked (a failed test leaves nothing behind). */
struct tmp {
    char path[64];
    int fd;
};

static void tmp_open(struct tmp *t)
{
    const char *dir = getenv("TMPDIR");
    snprintf(t->path, sizeof(t->path), "%s/petrel-mem-XXXXXX", dir && *dir ? dir : "/tmp");
    t->fd = mkstemp(t->path);
    assert_true(t->fd >= 0);
    assert_int_equal(unlink(t->path), 0);
}

static int file_setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    fx.enospc_fd = fx.eio_sync_fd = fx.pagemap_fd = -1;
    return 0;
}

static long page_size(void)
{
    return sysconf(_SC_PAGESIZE);
}

/* Pages of [p, p + len) mapped in this process's page tables right now (pagemap). */
static uint64_t present_pages(const uint8_t *p, uint64_t len)
{
    uint64_t page = (uint64_t)page_size(), count = 0;
    uint64_t buf[512];
    int fd = __real_open64("/proc/self/pagemap", O_RDONLY);
    assert_true(fd >= 0);
    uint64_t first = (uintptr_t)p / page, n = (len + page - 1) / page;
    for (uint64_t i = 0; i < n; i += ARRAY_SIZE(buf)) {
        uint64_t k = n - i < ARRAY_SIZE(buf) ? n - i : ARRAY_SIZE(buf);
        ssize_t got = __real_pread64(fd, buf, k * 8, (off_t)((first + i) * 8));
        assert_int_equal(got, (ssize_t)(k * 8));
        for (uint64_t j = 0; j < k; j++)
            count += (buf[j] & PM_PRESENT) ? 1 : 0;
    }
    close(fd);
    return count;
}

/* Fills the page at gpa with a pattern that depends on gpa and seed. */
static void fill_page(const struct guest_mem *gm, uint64_t gpa, uint8_t seed)
{
    long page = page_size();
    uint8_t *p = gm_ptr(gm, gpa, (uint64_t)page);
    assert_non_null(p);
    for (long i = 0; i < page; i++)
        p[i] = (uint8_t)(seed + i * 7 + (gpa >> 12));
}

/* Both RAMs have the same layout and the same bytes in every region. */
static void assert_ram_equal(const struct guest_mem *a, const struct guest_mem *b)
{
    assert_int_equal(a->nr, b->nr);
    assert_int_equal(a->size, b->size);
    for (unsigned i = 0; i < a->nr; i++) {
        assert_int_equal(a->regions[i].gpa, b->regions[i].gpa);
        assert_int_equal(a->regions[i].size, b->regions[i].size);
        assert_memory_equal(a->regions[i].host, b->regions[i].host, a->regions[i].size);
    }
}

static void assert_sparse(int fd, uint64_t size, uint64_t max_allocated)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, size);
    if ((uint64_t)st.st_blocks * 512 > max_allocated)
        fail_msg("the memory file has %llu bytes allocated, want at most %llu",
                 (unsigned long long)st.st_blocks * 512, (unsigned long long)max_allocated);
}

#define SMALL_RAM (64 * MiB)

/* Pages written in test_save_restore: (gpa, seed). Pages 100..102 are one run. */
static const uint64_t small_pages[] = {0,          100 * 4096,     101 * 4096,
                                       102 * 4096, 7 * MiB + 4096, SMALL_RAM - 4096};

static void write_small_pages(const struct guest_mem *gm)
{
    for (size_t i = 0; i < ARRAY_SIZE(small_pages); i++)
        fill_page(gm, small_pages[i], (uint8_t)(i + 1));
}

/*
 * gm_save() writes the data pages and nothing else (a page written with zeros
 * becomes a hole too); gm_init_file() maps it back: the same bytes everywhere,
 * no page loaded before it is touched, and a write to the restored RAM stays
 * in memory (MAP_PRIVATE): the file keeps the snapshot.
 */
static void test_save_restore(void **state)
{
    (void)state;
    struct guest_mem gm, back;
    struct gm_save_stats st;
    struct errbuf eb = {{0}};
    struct tmp t;
    uint64_t page = (uint64_t)page_size();

    assert_int_equal(page, 4096);
    assert_int_equal(gm_init(&gm, SMALL_RAM), 0);
    write_small_pages(&gm);
    /* Touched, then zeroed: present, but all zeros. */
    memset(gm_ptr(&gm, 30 * MiB, page), 0xee, page);
    memset(gm_ptr(&gm, 30 * MiB, page), 0, page);

    tmp_open(&t);
    assert_int_equal(gm_save(&gm, t.fd, t.path, &st, &eb), 0);
    assert_int_equal(st.ram_bytes, SMALL_RAM);
    assert_int_equal(st.written_bytes, ARRAY_SIZE(small_pages) * page);
    /* Untouched RAM is not even read: at most the touched 2 MiB (huge) pages are. */
    assert_true(st.scanned_bytes >= st.written_bytes);
    assert_true(st.scanned_bytes <= 6 * 2 * MiB);
    assert_sparse(t.fd, SMALL_RAM, 1 * MiB);

    assert_int_equal(gm_init_file(&back, SMALL_RAM, t.fd, t.path, &eb), 0);
    assert_true(back.owned);
    assert_true(back.fd >= 0 && back.fd != t.fd);
    /* Nothing was loaded: restoring costs nothing per byte of RAM. */
    assert_int_equal(present_pages(back.regions[0].host, back.regions[0].size), 0);
    assert_ram_equal(&gm, &back);

    /* A write to the restored RAM does not reach the file. */
    uint8_t *p = gm_ptr(&back, 100 * 4096, page);
    uint8_t before[4096], now[4096];
    memcpy(before, p, page);
    memset(p, 0x77, page);
    assert_int_equal(pread(t.fd, now, page, 100 * 4096), (ssize_t)page);
    assert_memory_equal(now, before, page);
    assert_int_equal(*(uint8_t *)gm_ptr(&back, 100 * 4096, 1), 0x77);

    /* The caller's fd is the caller's: closing it leaves the RAM working. */
    close(t.fd);
    assert_int_equal(*(uint8_t *)gm_ptr(&back, SMALL_RAM - 1, 1),
                     *(uint8_t *)gm_ptr(&gm, SMALL_RAM - 1, 1));
    int kept = back.fd;
    gm_destroy(&back);
    assert_true(fcntl(kept, F_GETFD) < 0);
    gm_destroy(&gm);
}

/*
 * RAM past the hole (3 GiB + 4 MiB, only virtual memory): the file holds the
 * high region right after the low one, at offset 3 GiB, and is mapped back
 * region by region at the same guest addresses.
 */
static void test_save_restore_split(void **state)
{
    (void)state;
    const uint64_t size = 3 * GiB + 4 * MiB;
    const uint64_t page = 4096;
    static const uint64_t touched[] = {0, GM_HOLE_START - 4096, GM_HIGH_START,
                                       GM_HIGH_START + 4 * MiB - 4096};
    struct guest_mem gm, back;
    struct gm_save_stats st;
    struct errbuf eb = {{0}};
    struct tmp t;

    assert_int_equal(gm_init(&gm, size), 0);
    for (size_t i = 0; i < ARRAY_SIZE(touched); i++)
        fill_page(&gm, touched[i], (uint8_t)(0x40 + i));

    tmp_open(&t);
    assert_int_equal(gm_save(&gm, t.fd, t.path, &st, &eb), 0);
    assert_int_equal(st.ram_bytes, size);
    assert_int_equal(st.written_bytes, ARRAY_SIZE(touched) * page);
    assert_true(st.scanned_bytes <= ARRAY_SIZE(touched) * 2 * MiB);
    assert_sparse(t.fd, size, 1 * MiB);

    /* The format: region 1's first page sits at file offset regions[0].size (3 GiB). */
    uint8_t buf[4096];
    assert_int_equal(pread(t.fd, buf, page, (off_t)GM_HOLE_START), (ssize_t)page);
    assert_memory_equal(buf, gm_ptr(&gm, GM_HIGH_START, page), page);
    assert_int_equal(pread(t.fd, buf, page, (off_t)(size - page)), (ssize_t)page);
    assert_memory_equal(buf, gm_ptr(&gm, GM_HIGH_START + 4 * MiB - page, page), page);

    assert_int_equal(gm_init_file(&back, size, t.fd, t.path, &eb), 0);
    assert_int_equal(back.nr, 2);
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(back.regions[i].gpa, gm.regions[i].gpa);
        assert_int_equal(back.regions[i].size, gm.regions[i].size);
        /* Each region starts on a 2 MiB boundary, as gm_init()'s do. */
        assert_int_equal((uintptr_t)back.regions[i].host % (2 * MiB), 0);
        assert_int_equal(present_pages(back.regions[i].host, back.regions[i].size), 0);
    }
    /* The whole high region; the low region's first and last 2 MiB (the rest is holes). */
    assert_memory_equal(back.regions[1].host, gm.regions[1].host, 4 * MiB);
    assert_memory_equal(gm_ptr(&back, 0, 2 * MiB), gm_ptr(&gm, 0, 2 * MiB), 2 * MiB);
    assert_memory_equal(gm_ptr(&back, GM_HOLE_START - 2 * MiB, 2 * MiB),
                        gm_ptr(&gm, GM_HOLE_START - 2 * MiB, 2 * MiB), 2 * MiB);
    /* Only what was just compared got loaded. */
    assert_true(present_pages(back.regions[0].host, back.regions[0].size) <= 4 * MiB / page);
    assert_null(gm_ptr(&back, GM_HOLE_START, 1));

    gm_destroy(&back);
    gm_destroy(&gm);
    close(t.fd);
}

/*
 * A restored VM snapshotted again: its RAM maps the first file, and pages it
 * never touched are not in its page tables at all, yet hold the first file's
 * data. The second file must have them, and the guest's changes: a page
 * changed, a page zeroed, a page written where the first file had a hole.
 */
static void test_resave_restored(void **state)
{
    (void)state;
    struct guest_mem gm, back, again;
    struct gm_save_stats st;
    struct errbuf eb = {{0}};
    struct tmp t1, t2;
    const uint64_t page = 4096;

    assert_int_equal(gm_init(&gm, SMALL_RAM), 0);
    write_small_pages(&gm);
    tmp_open(&t1);
    assert_int_equal(gm_save(&gm, t1.fd, t1.path, NULL, &eb), 0);
    assert_int_equal(gm_init_file(&back, SMALL_RAM, t1.fd, t1.path, &eb), 0);

    /* The same changes on the original (the expected RAM) and the restored RAM. */
    struct guest_mem *both[] = {&gm, &back};
    for (size_t i = 0; i < ARRAY_SIZE(both); i++) {
        memset(gm_ptr(both[i], 0 + 100, 10), 0x99, 10);     /* changed */
        memset(gm_ptr(both[i], 101 * 4096, page), 0, page); /* zeroed */
        fill_page(both[i], 40 * MiB, 0x33);                 /* a hole before */
    }
    /* The untouched pages of the first file are not loaded. */
    assert_true(present_pages(back.regions[0].host, back.regions[0].size) <= 3);

    tmp_open(&t2);
    assert_int_equal(gm_save(&back, t2.fd, t2.path, &st, &eb), 0);
    /* 6 data pages - 1 zeroed + 1 new. */
    assert_int_equal(st.written_bytes, 6 * page);
    assert_sparse(t2.fd, SMALL_RAM, 1 * MiB);
    assert_int_equal(gm_init_file(&again, SMALL_RAM, t2.fd, t2.path, &eb), 0);
    assert_ram_equal(&gm, &again);

    /* Not into the file it was restored from: emptying it would pull the RAM away. */
    int same = dup(t1.fd);
    assert_true(same >= 0);
    assert_int_equal(gm_save(&back, same, "mem", NULL, &eb), -EINVAL);
    assert_string_equal(eb.msg, "the memory file mem is the one this VM's RAM was restored from");
    close(same);
    struct stat st1;
    assert_int_equal(fstat(t1.fd, &st1), 0);
    assert_int_equal(st1.st_size, SMALL_RAM);
    assert_int_equal(*(uint8_t *)gm_ptr(&back, SMALL_RAM - 1, 1),
                     *(uint8_t *)gm_ptr(&gm, SMALL_RAM - 1, 1));

    gm_destroy(&again);
    gm_destroy(&back);
    gm_destroy(&gm);
    close(t1.fd);
    close(t2.fd);
}

/* A file that had data is emptied first: where the RAM is zero, no stale bytes remain. */
static void test_save_reused_file(void **state)
{
    (void)state;
    struct guest_mem gm, back;
    struct errbuf eb = {{0}};
    struct tmp t;
    static uint8_t junk[1 * MiB];

    memset(junk, 0xab, sizeof(junk));
    tmp_open(&t);
    for (uint64_t off = 0; off < SMALL_RAM + 2 * MiB; off += sizeof(junk))
        assert_int_equal(pwrite(t.fd, junk, sizeof(junk), (off_t)off), (ssize_t)sizeof(junk));
    assert_int_equal(gm_init(&gm, SMALL_RAM), 0);
    write_small_pages(&gm);
    assert_int_equal(gm_save(&gm, t.fd, t.path, NULL, &eb), 0);
    assert_sparse(t.fd, SMALL_RAM, 1 * MiB);
    assert_int_equal(gm_init_file(&back, SMALL_RAM, t.fd, t.path, &eb), 0);
    assert_ram_equal(&gm, &back);
    gm_destroy(&back);
    gm_destroy(&gm);
    close(t.fd);
}

/*
 * A page swapped out is not present, yet holds data (mincore() would call it
 * not resident): pagemap's swap bit keeps it. Every present page is reported
 * swapped here; the file must still have all of them.
 */
static void test_save_swapped_pages(void **state)
{
    (void)state;
    struct guest_mem gm, back;
    struct gm_save_stats st;
    struct errbuf eb = {{0}};
    struct tmp t;

    assert_int_equal(gm_init(&gm, SMALL_RAM), 0);
    write_small_pages(&gm);
    fx.pagemap_swapped = true;
    tmp_open(&t);
    assert_int_equal(gm_save(&gm, t.fd, t.path, &st, &eb), 0);
    assert_true(fx.pagemap_fd >= 0); /* the lie was told */
    assert_int_equal(st.written_bytes, ARRAY_SIZE(small_pages) * 4096);
    assert_true(st.scanned_bytes <= 6 * 2 * MiB);
    assert_int_equal(gm_init_file(&back, SMALL_RAM, t.fd, t.path, &eb), 0);
    assert_ram_equal(&gm, &back);
    gm_destroy(&back);
    gm_destroy(&gm);
    close(t.fd);
}

/* Without /proc/self/pagemap every page is read: the same file, more work. */
static void test_save_without_pagemap(void **state)
{
    (void)state;
    struct guest_mem gm, back;
    struct gm_save_stats st;
    struct errbuf eb = {{0}};
    struct tmp t;

    assert_int_equal(gm_init(&gm, SMALL_RAM), 0);
    write_small_pages(&gm);
    fx.no_pagemap = true;
    tmp_open(&t);
    assert_int_equal(gm_save(&gm, t.fd, t.path, &st, &eb), 0);
    assert_int_equal(st.scanned_bytes, SMALL_RAM);
    assert_int_equal(st.written_bytes, ARRAY_SIZE(small_pages) * 4096);
    assert_sparse(t.fd, SMALL_RAM, 1 * MiB);
    assert_int_equal(gm_init_file(&back, SMALL_RAM, t.fd, t.path, &eb), 0);
    assert_ram_equal(&gm, &back);
    gm_destroy(&back);
    gm_destroy(&gm);
    close(t.fd);
}

/* The disk fills up part way: -ENOSPC and a message naming the file. */
static void test_save_enospc(void **state)
{
    (void)state;
    struct guest_mem gm;
    struct errbuf eb = {{0}};
    struct tmp t;

    assert_int_equal(gm_init(&gm, SMALL_RAM), 0);
    write_small_pages(&gm);
    tmp_open(&t);
    fx.enospc_fd = t.fd;
    fx.write_budget = 4096 + 100; /* the first page, and a short write into the run */
    assert_int_equal(gm_save(&gm, t.fd, t.path, NULL, &eb), -ENOSPC);
    if (!strstr(eb.msg, t.path) || !strstr(eb.msg, "No space left on device") ||
        !strstr(eb.msg, "4196 bytes written"))
        fail_msg("unexpected message: %s", eb.msg);
    gm_destroy(&gm);
    close(t.fd);
}

/* The data written, but fdatasync() fails: not done, -EIO and a message. */
static void test_save_sync_fails(void **state)
{
    (void)state;
    struct guest_mem gm;
    struct errbuf eb = {{0}};
    struct tmp t;

    assert_int_equal(gm_init(&gm, SMALL_RAM), 0);
    write_small_pages(&gm);
    tmp_open(&t);
    fx.eio_sync_fd = t.fd;
    assert_int_equal(gm_save(&gm, t.fd, t.path, NULL, &eb), -EIO);
    if (!strstr(eb.msg, t.path) || !strstr(eb.msg, "to disk") ||
        !strstr(eb.msg, "Input/output error"))
        fail_msg("unexpected message: %s", eb.msg);
    gm_destroy(&gm);
    close(t.fd);
}

/* Only a regular file can have holes and be mapped: a device is refused by both. */
static void test_not_regular(void **state)
{
    (void)state;
    struct guest_mem gm, back;
    struct errbuf eb = {{0}};

    int fd = open("/dev/full", O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(gm_init(&gm, SMALL_RAM), 0);
    assert_int_equal(gm_save(&gm, fd, "/dev/full", NULL, &eb), -EINVAL);
    assert_string_equal(eb.msg, "the memory file /dev/full is not a regular file");
    memset(&eb, 0, sizeof(eb));
    assert_int_equal(gm_init_file(&back, SMALL_RAM, fd, "/dev/full", &eb), -EINVAL);
    assert_string_equal(eb.msg, "the memory file /dev/full is not a regular file");
    gm_destroy(&back);
    gm_destroy(&gm);
    close(fd);
}

/* A memory file of another length than the state's RAM is refused, with both sizes. */
static void test_restore_wrong_length(void **state)
{
    (void)state;
    struct guest_mem back;
    struct errbuf eb = {{0}};
    struct tmp t;
    char want[256];

    tmp_open(&t);
    assert_int_equal(ftruncate(t.fd, SMALL_RAM - 4096), 0);
    assert_int_equal(gm_init_file(&back, SMALL_RAM, t.fd, t.path, &eb), -EINVAL);
    snprintf(want, sizeof(want),
             "the memory file %s has 67104768 bytes (65532 KiB), the state says 67108864 "
             "(64 MiB)",
             t.path);
    assert_string_equal(eb.msg, want);
    assert_int_equal(back.nr, 0);
    gm_destroy(&back);

    assert_int_equal(ftruncate(t.fd, 0), 0);
    assert_int_equal(gm_init_file(&back, 0, t.fd, t.path, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "is empty"));
    gm_destroy(&back);
    close(t.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fake_layout, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_in_range, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, fake_setup, fake_teardown),
        cmocka_unit_test(test_small_exhaustive),
        cmocka_unit_test(test_init_low_only),
        cmocka_unit_test(test_init_exactly_hole),
        cmocka_unit_test(test_init_split),
        cmocka_unit_test(test_resident),
        cmocka_unit_test_setup(test_save_restore, file_setup),
        cmocka_unit_test_setup(test_save_restore_split, file_setup),
        cmocka_unit_test_setup(test_resave_restored, file_setup),
        cmocka_unit_test_setup(test_save_reused_file, file_setup),
        cmocka_unit_test_setup(test_save_swapped_pages, file_setup),
        cmocka_unit_test_setup(test_save_without_pagemap, file_setup),
        cmocka_unit_test_setup(test_save_enospc, file_setup),
        cmocka_unit_test_setup(test_save_sync_fails, file_setup),
        cmocka_unit_test_setup(test_not_regular, file_setup),
        cmocka_unit_test_setup(test_restore_wrong_length, file_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
