/*
 * Writing guest RAM to a memory file (the format: include/petrel/guest_mem.h,
 * docs/snapshot-format.md): only the pages that hold data, leaving holes.
 *
 * Which pages can hold data. A page of anonymous RAM the guest never wrote is
 * zero without being backed by anything, and reading it costs a page fault and
 * page tables for nothing: with gigabytes of untouched RAM that is most of the
 * work. mincore() cannot tell those pages apart, though: it calls a page that
 * was swapped out "not resident" (it reports the swap cache, not the swap
 * entry), yet that page holds data. /proc/self/pagemap can: it has one entry
 * per page with a "present" bit (63) and a "swapped" bit (62, set for swap and
 * migration entries alike; Documentation/admin-guide/mm/pagemap.rst). A page
 * with neither has never been written, or was discarded (MADV_DONTNEED), and
 * reads as zeros: it is skipped unread. Every other page is read, and skipped
 * when all zero (a page the guest only read is the shared zero page; one the
 * guest zeroed is zeros too).
 *
 * RAM mapped from a memory file (gm_init_file(): a restored VM snapshotted
 * again) is different: a page not present in the page tables is not zero but
 * the old file's bytes, not loaded yet. There, the pages inside the old file's
 * data (lseek SEEK_DATA/SEEK_HOLE on it) are read too, through the mapping,
 * which gives the copied page where the guest wrote and the file's otherwise.
 *
 * Without pagemap (no /proc, a kernel that hides it) every page is read: slower,
 * never wrong.
 */
#include "petrel/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_CHUNK   4096       /* pagemap entries read at a time */
#define SAVE_BATCH (16 * MiB) /* the most one pwrite() writes */
#define NO_DATA    UINT64_MAX /* the old file has no data from here on */

/* One gm_save() call's state. */
struct save {
    const struct guest_mem *gm;
    int fd;
    const char *path;
    struct errbuf *eb;
    struct gm_save_stats st;
    uint64_t page;
    int pagemap_fd; /* -1: read every page */
    uint64_t pm[PM_CHUNK];
    /* gm->fd's next data range [data_lo, data_hi), as file offsets (gm->fd >= 0 only). */
    uint64_t data_lo, data_hi;
};

/* Whether len bytes at p (8-byte aligned) are all zero. */
static bool save_is_zero(const uint8_t *p, uint64_t len)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t n = len / 8;

    for (uint64_t i = 0; i + 8 <= n; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
            return false;
    }
    for (uint64_t i = n & ~7ULL; i < n; i++) {
        if (w[i])
            return false;
    }
    for (uint64_t i = n * 8; i < len; i++) {
        if (p[i])
            return false;
    }
    return true;
}

/* Writes RAM bytes [host, host + len) at file offset off. 0 or -errno with a message. */
static int save_write(struct save *s, const uint8_t *host, uint64_t len, uint64_t off)
{
    char done[32], total[32];

    while (len) {
        ssize_t n = pwrite(s->fd, host, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            host += n;
            off += (uint64_t)n;
            len -= (uint64_t)n;
            s->st.written_bytes += (uint64_t)n;
            continue;
        }
        /* A regular file that takes 0 bytes is full. */
        int err = n < 0 ? -errno : -ENOSPC;
        fmt_size(s->st.written_bytes, done, sizeof(done));
        fmt_size(s->st.ram_bytes, total, sizeof(total));
        if (err == -ENOSPC || err == -EDQUOT)
            return err_set(s->eb, err,
                           "cannot write the memory file %s: %s (%s written, at offset %llu of %s)",
                           s->path, strerror(-err), done, (unsigned long long)off, total);
        return err_set(s->eb, err, "cannot write the memory file %s: %s (at offset %llu of %s)",
                       s->path, strerror(-err), (unsigned long long)off, total);
    }
    return 0;
}

/*
 * Loads the pagemap entries of pages [first, first + n) of region r into s->pm.
 * On any failure, falls back to reading every page from here on.
 */
static void save_load_pagemap(struct save *s, const struct gm_region *r, uint64_t first, uint64_t n)
{
    if (s->pagemap_fd < 0)
        return;
    uint64_t index = (uint64_t)(uintptr_t)r->host / s->page + first;
    size_t want = n * sizeof(s->pm[0]), got = 0;
    while (got < want) {
        ssize_t k = pread(s->pagemap_fd, (uint8_t *)s->pm + got, want - got,
                          (off_t)(index * sizeof(s->pm[0]) + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            close(s->pagemap_fd);
            s->pagemap_fd = -1;
            return;
        }
        got += (size_t)k;
    }
}

/* Moves s->data_lo/hi to the old file's first data range that ends after off. */
static void save_seek_data(struct save *s, uint64_t off)
{
    off_t lo = lseek(s->gm->fd, (off_t)off, SEEK_DATA);
    if (lo < 0) {
        /* ENXIO: no data past off. Anything else (no SEEK_DATA here): all data. */
        s->data_lo = errno == ENXIO ? NO_DATA : off;
        s->data_hi = errno == ENXIO ? NO_DATA : UINT64_MAX;
        return;
    }
    off_t hi = lseek(s->gm->fd, lo, SEEK_HOLE);
    s->data_lo = (uint64_t)lo;
    s->data_hi = hi < 0 ? UINT64_MAX : (uint64_t)hi;
}

/* Whether the old file has data in [off, off + len) (RAM mapped from a file only). */
static bool save_file_has_data(struct save *s, uint64_t off, uint64_t len)
{
    if (s->gm->fd < 0)
        return false;
    if (s->data_hi <= off)
        save_seek_data(s, off);
    return s->data_lo != NO_DATA && s->data_lo < off + len;
}

/* Writes region r, which sits at file offset base. 0 or -errno with a message. */
static int save_region(struct save *s, const struct gm_region *r, uint64_t base)
{
    uint64_t npages = (r->size + s->page - 1) / s->page;
    uint64_t run = 0, run_len = 0; /* pending data: region bytes [run, run + run_len) */
    int ret;

    s->data_lo = s->data_hi = 0;
    for (uint64_t first = 0; first < npages; first += PM_CHUNK) {
        uint64_t n = npages - first < PM_CHUNK ? npages - first : PM_CHUNK;
        save_load_pagemap(s, r, first, n);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t off = (first + i) * s->page;
            uint64_t len = r->size - off < s->page ? r->size - off : s->page;
            bool maybe = s->pagemap_fd < 0 || (s->pm[i] & (PM_PRESENT | PM_SWAPPED)) ||
                         save_file_has_data(s, base + off, len);
            bool data = false;
            if (maybe) {
                s->st.scanned_bytes += len;
                data = !save_is_zero(r->host + off, len);
            }
            if (data && run_len && run_len < SAVE_BATCH) {
                run_len += len;
                continue;
            }
            if (run_len) {
                ret = save_write(s, r->host + run, run_len, base + run);
                if (ret)
                    return ret;
                run_len = 0;
            }
            if (data) {
                run = off;
                run_len = len;
            }
        }
    }
    if (run_len)
        return save_write(s, r->host + run, run_len, base + run);
    return 0;
}

int gm_save(const struct guest_mem *gm, int fd, const char *path, struct gm_save_stats *stats,
            struct errbuf *eb)
{
    struct save *s;
    struct stat st;
    char total[32];
    int ret = 0;

    if (fstat(fd, &st) < 0)
        return err_set(eb, -errno, "cannot stat the memory file %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_set(eb, -EINVAL, "the memory file %s is not a regular file", path);
    /* Emptying the file RAM is mapped from would pull the pages from under it (SIGBUS). */
    struct stat mapped;
    if (gm->fd >= 0 && fstat(gm->fd, &mapped) == 0 && mapped.st_dev == st.st_dev &&
        mapped.st_ino == st.st_ino)
        return err_set(eb, -EINVAL, "the memory file %s is the one this VM's RAM was restored from",
                       path);

    /* s->pm is 32 KiB: off the (worker's) stack. */
    s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(eb, -ENOMEM, "out of memory writing the memory file %s", path);
    s->gm = gm;
    s->fd = fd;
    s->path = path;
    s->eb = eb;
    s->st.ram_bytes = gm->size;
    s->page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t start = now_ns();

    /* Emptied first: a file that had data must not keep it where this leaves holes. */
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)gm->size) < 0) {
        ret = err_set(eb, -errno, "cannot size the memory file %s to %s: %s", path,
                      fmt_size(gm->size, total, sizeof(total)), strerror(errno));
        goto out;
    }
    s->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    uint64_t base = 0;
    for (unsigned i = 0; i < gm->nr && !ret; i++) {
        ret = save_region(s, &gm->regions[i], base);
        base += gm->regions[i].size;
    }
    if (s->pagemap_fd >= 0)
        close(s->pagemap_fd);
    if (ret)
        goto out;
    /* Done means on disk: a write error that only shows now (EIO, ENOSPC on NFS) fails it. */
    while ((ret = fdatasync(fd)) < 0 && errno == EINTR)
        ;
    if (ret < 0) {
        ret = err_set(eb, -errno, "cannot write the memory file %s to disk: %s", path,
                      strerror(errno));
        goto out;
    }
    s->st.ns = now_ns() - start;
    if (stats)
        *stats = s->st;
out:
    free(s);
    return ret;
}
