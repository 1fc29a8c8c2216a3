/*
 * Guest RAM and the one checked way to reach it.
 *
 * RAM is split around the 32-bit PCI hole: [0, min(size, 3 GiB)) and, for the
 * rest, [4 GiB, 4 GiB + rest). Nothing else in petrel turns a guest physical
 * address into a host pointer: every address that comes from the guest goes
 * through gm_ptr(), which refuses ranges that leave RAM or overflow.
 */
#ifndef PETREL_GUEST_MEM_H
#define PETREL_GUEST_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "petrel/util.h"

#define GM_HOLE_START  0xC0000000ULL /* 3 GiB: start of the 32-bit PCI/MMIO hole */
#define GM_HIGH_START  0x100000000ULL
#define GM_MAX_REGIONS 2

struct gm_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *host;
};

struct guest_mem {
    struct gm_region regions[GM_MAX_REGIONS];
    unsigned nr;
    uint64_t size; /* total RAM */
    bool owned;    /* regions were mmap()ed by gm_init() */
};

/* Maps size bytes of anonymous RAM laid out around the hole. 0 or -errno. */
int gm_init(struct guest_mem *gm, uint64_t size) MUST_CHECK;

/* Uses caller-provided host buffers (unit tests): one region at gpa 0. */
void gm_init_fake(struct guest_mem *gm, void *host, uint64_t size);

void gm_destroy(struct guest_mem *gm);

/*
 * Returns the host address of guest range [gpa, gpa + len) if it lies wholly
 * inside one RAM region, else NULL. len may be 0 (gpa must still be in RAM).
 */
void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* Bytes of guest RAM the host has backed with pages so far (mincore). */
uint64_t gm_resident(const struct guest_mem *gm);

/* End of RAM below the hole (the first region's end). */
uint64_t gm_low_end(const struct guest_mem *gm);

#endif
