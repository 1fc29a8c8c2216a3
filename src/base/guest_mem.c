/* Guest RAM: anonymous mappings around the PCI hole and the checked accessor. */
#include "petrel/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Guest RAM starts on a 2 MiB boundary of the host's address space, so that every
 * 2 MiB-aligned guest range can be one transparent huge page and KVM can map it
 * with one large EPT/NPT entry. mmap() alone only promises 4 KiB alignment (Linux
 * before 6.7 does not align large anonymous mappings): map 2 MiB more and trim.
 */
#define GM_ALIGN (2 * MiB)

static int gm_map(struct guest_mem *gm, uint64_t gpa, uint64_t size)
{
    size_t span = size + GM_ALIGN;
    uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return -errno;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + GM_ALIGN - 1) & ~(uintptr_t)(GM_ALIGN - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    uint8_t *end = p + ((size + 4095) & ~4095ULL);
    if (raw + span > end)
        munmap(end, (size_t)(raw + span - end));
    /* Guest RAM is never worth a core dump of gigabytes; and let THP back it. */
    madvise(p, size, MADV_DONTDUMP);
    madvise(p, size, MADV_HUGEPAGE);
    gm->regions[gm->nr++] = (struct gm_region){.gpa = gpa, .size = size, .host = p};
    return 0;
}

int gm_init(struct guest_mem *gm, uint64_t size)
{
    int ret;

    memset(gm, 0, sizeof(*gm));
    gm->owned = true;
    gm->size = size;
    uint64_t low = size < GM_HOLE_START ? size : GM_HOLE_START;
    ret = gm_map(gm, 0, low);
    if (ret)
        return ret;
    if (size > low) {
        ret = gm_map(gm, GM_HIGH_START, size - low);
        if (ret) {
            gm_destroy(gm);
            return ret;
        }
    }
    return 0;
}

void gm_init_fake(struct guest_mem *gm, void *host, uint64_t size)
{
    memset(gm, 0, sizeof(*gm));
    gm->regions[0] = (struct gm_region){.gpa = 0, .size = size, .host = host};
    gm->nr = 1;
    gm->size = size;
}

void gm_destroy(struct guest_mem *gm)
{
    if (gm->owned) {
        for (unsigned i = 0; i < gm->nr; i++)
            munmap(gm->regions[i].host, gm->regions[i].size);
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
