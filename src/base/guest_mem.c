/*
 * Guest RAM: anonymous mappings around the PCI hole (or a memory file mapped
 * privately, for a restore) and the checked accessor.
 */
#include "petrel/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Guest RAM starts on a 2 MiB boundary of the host's address space, so that every
 * 2 MiB-aligned guest range can be one transparent huge page and KVM can map it
 * with one large EPT/NPT entry. mmap() alone only promises 4 KiB alignment (Linux
 * before 6.7 does not align large anonymous mappings): map 2 MiB more and trim.
 */
#define GM_ALIGN (2 * MiB)

/*
 * Maps region [gpa, gpa + size): anonymous RAM when fd < 0, else the memory
 * file's bytes [off, off + size) privately. Either way the region starts on a
 * 2 MiB boundary: an anonymous reservation of 2 MiB more is trimmed, and a
 * file mapping replaces the aligned part of it (MAP_FIXED).
 */
static int gm_map(struct guest_mem *gm, uint64_t gpa, uint64_t size, int fd, uint64_t off)
{
    size_t span = size + GM_ALIGN;
    int prot = fd < 0 ? PROT_READ | PROT_WRITE : PROT_NONE;
    uint8_t *raw = mmap(NULL, span, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return -errno;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + GM_ALIGN - 1) & ~(uintptr_t)(GM_ALIGN - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    uint8_t *end = p + ((size + 4095) & ~4095ULL);
    if (raw + span > end)
        munmap(end, (size_t)(raw + span - end));
    if (fd >= 0) {
        /*
         * Copy-on-write and lazy: no MAP_POPULATE, so restoring does not read
         * the file. MAP_NORESERVE as for anonymous RAM: a writable private
         * mapping would otherwise be charged in full against overcommit.
         */
        void *m = mmap(p, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
                       (off_t)off);
        if (m == MAP_FAILED) {
            int err = -errno;
            munmap(p, (size_t)(end - p));
            return err;
        }
    }
    /*
     * Guest RAM is never worth a core dump of gigabytes; and let THP back it
     * (anonymous RAM only: a private file mapping's copied pages are small).
     */
    madvise(p, size, MADV_DONTDUMP);
    if (fd < 0)
        madvise(p, size, MADV_HUGEPAGE);
    gm->regions[gm->nr++] = (struct gm_region){.gpa = gpa, .size = size, .host = p};
    return 0;
}

/* Maps size bytes of RAM around the hole, from fd (the memory file format) or anonymous. */
static int gm_map_all(struct guest_mem *gm, uint64_t size, int fd)
{
    int ret;

    uint64_t low = size < GM_HOLE_START ? size : GM_HOLE_START;
    ret = gm_map(gm, 0, low, fd, 0);
    if (ret)
        return ret;
    if (size > low) {
        /* The memory file holds the high region right after the low one. */
        ret = gm_map(gm, GM_HIGH_START, size - low, fd, low);
        if (ret)
            return ret;
    }
    return 0;
}

int gm_init(struct guest_mem *gm, uint64_t size)
{
    memset(gm, 0, sizeof(*gm));
    gm->owned = true;
    gm->fd = -1;
    gm->size = size;
    int ret = gm_map_all(gm, size, -1);
    if (ret)
        gm_destroy(gm);
    return ret;
}

int gm_init_file(struct guest_mem *gm, uint64_t size, int fd, const char *path, struct errbuf *eb)
{
    struct stat st;
    char have[32], want[32];
    int ret;

    memset(gm, 0, sizeof(*gm));
    gm->fd = -1;
    if (fstat(fd, &st) < 0)
        return err_set(eb, -errno, "cannot stat the memory file %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_set(eb, -EINVAL, "the memory file %s is not a regular file", path);
    if ((uint64_t)st.st_size != size)
        return err_set(
            eb, -EINVAL, "the memory file %s has %llu bytes (%s), the state says %llu (%s)", path,
            (unsigned long long)st.st_size, fmt_size((uint64_t)st.st_size, have, sizeof(have)),
            (unsigned long long)size, fmt_size(size, want, sizeof(want)));
    if (size == 0)
        return err_set(eb, -EINVAL, "the memory file %s is empty", path);
    gm->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (gm->fd < 0)
        return err_set(eb, -errno, "cannot keep the memory file %s open: %s", path,
                       strerror(errno));
    gm->owned = true;
    gm->size = size;
    ret = gm_map_all(gm, size, gm->fd);
    if (ret) {
        err_set(eb, ret, "cannot map the memory file %s: %s", path, strerror(-ret));
        gm_destroy(gm);
    }
    return ret;
}

void gm_init_fake(struct guest_mem *gm, void *host, uint64_t size)
{
    memset(gm, 0, sizeof(*gm));
    gm->regions[0] = (struct gm_region){.gpa = 0, .size = size, .host = host};
    gm->nr = 1;
    gm->size = size;
    gm->fd = -1;
}

void gm_destroy(struct guest_mem *gm)
{
    if (gm->owned) {
        for (unsigned i = 0; i < gm->nr; i++)
            munmap(gm->regions[i].host, gm->regions[i].size);
        if (gm->fd >= 0)
            close(gm->fd);
    }
    memset(gm, 0, sizeof(*gm));
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < gm->nr; i++) {
        const struct gm_region *r = &gm->regions[i];
        if (gpa < r->gpa)
            continue;
        uint64_t off = gpa - r->gpa;
        /* Written so that no sum can overflow: off <= size, then len <= size - off. */
        if (off > r->size || len > r->size - off)
            continue;
        if (len == 0 && off == r->size)
            continue;
        return r->host + off;
    }
    return NULL;
}

uint64_t gm_resident(const struct guest_mem *gm)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec[4096];
    uint64_t resident = 0;

    for (unsigned i = 0; i < gm->nr; i++) {
        const struct gm_region *r = &gm->regions[i];
        uint64_t chunk = sizeof(vec) * (uint64_t)page;
        for (uint64_t off = 0; off < r->size; off += chunk) {
            uint64_t len = r->size - off < chunk ? r->size - off : chunk;
            if (mincore(r->host + off, len, vec) < 0)
                return 0;
            for (uint64_t p = 0; p < (len + page - 1) / page; p++)
                resident += vec[p] & 1 ? (uint64_t)page : 0;
        }
    }
    return resident;
}

uint64_t gm_low_end(const struct guest_mem *gm)
{
    return gm->nr ? gm->regions[0].gpa + gm->regions[0].size : 0;
}
