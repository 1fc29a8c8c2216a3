/*
 * Guest RAM and the one checked way to reach it.
 *
 * RAM is split around the 32-bit PCI hole: [0, min(size, 3 GiB)) and, for the
 * rest, [4 GiB, 4 GiB + rest). Nothing else in petrel turns a guest physical
 * address into a host pointer: every address that comes from the guest goes
 * through gm_ptr(), which refuses ranges that leave RAM or overflow.
 *
 * The memory file (a snapshot's guest RAM, docs/snapshot-format.md "Memory
 * file") is the regions back to back in guest-physical order: region 0 at file
 * offset 0, region 1 at offset regions[0].size (3 GiB when RAM reaches past the
 * hole), and nothing else, so the file's length is exactly the RAM size and
 * each region can be mapped from the file at its offset. Pages that read as
 * zeros may be holes. gm_save() writes one; gm_init_file() maps one.
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
    bool owned;    /* regions were mmap()ed by gm_init() or gm_init_file() */
    int fd;        /* gm_init_file(): the memory file the regions map (ours), else -1 */
};

/* What gm_save() did. */
struct gm_save_stats {
    uint64_t ram_bytes;     /* the RAM size: the file's length */
    uint64_t scanned_bytes; /* pages that might hold data, read and checked for zeros */
    uint64_t written_bytes; /* pages that held data, written to the file */
    uint64_t ns;            /* from start to the end of fdatasync() */
};

/* Maps size bytes of anonymous RAM laid out around the hole. 0 or -errno. */
int gm_init(struct guest_mem *gm, uint64_t size) MUST_CHECK;

/* Uses caller-provided host buffers (unit tests): one region at gpa 0. */
void gm_init_fake(struct guest_mem *gm, void *host, uint64_t size);

/*
 * Maps a memory file as RAM of size bytes: each region of gm_init()'s layout
 * MAP_PRIVATE from the file at its offset. Nothing is read now: pages come in
 * from the file when first touched, and a write copies the page, so the file
 * never changes and restoring costs the same whatever the RAM size. The file
 * must not be changed or truncated while mapped (a truncated file's pages
 * fault with SIGBUS). fd is duplicated (the caller keeps its own); path only
 * names it in messages. 0 or -errno with a message: -EINVAL when the file's
 * length is not size ("the memory file X has N bytes, the state says M") or
 * it is not a regular file.
 */
int gm_init_file(struct guest_mem *gm, uint64_t size, int fd, const char *path,
                 struct errbuf *eb) MUST_CHECK;

/*
 * Writes RAM to fd as a memory file (the format above), blocking: it runs on a
 * worker, with the vCPUs parked (nothing may write RAM meanwhile). The file
 * is emptied and sized to the RAM, then only pages that hold data are
 * written, in large batches, leaving holes for the rest; it is on disk
 * (fdatasync) when this returns 0. Works on gm_init_file() RAM too (a restored
 * VM snapshotted again) into another file. path names the file in messages.
 * stats may be NULL. 0 or -errno with a message: -EINVAL not a regular file
 * or the file the RAM is mapped from, -ENOSPC, -EIO, ...
 */
int gm_save(const struct guest_mem *gm, int fd, const char *path, struct gm_save_stats *stats,
            struct errbuf *eb) MUST_CHECK;

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
