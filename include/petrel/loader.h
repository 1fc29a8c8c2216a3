/*
 * The kernel and initrd a VM boots: opened and checked before KVM is touched (so a
 * wrong path or a bad image is reported as that even on a host without KVM), then
 * put into guest memory with the command line and zero page.
 */
#ifndef PETREL_LOADER_H
#define PETREL_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "petrel/guest_mem.h"
#include "petrel/kernel_cache.h"
#include "petrel/util.h"
#include "petrel/x86_boot.h"

#define LOADER_MAX_KERNEL_SIZE (256 * MiB) /* a bzImage: read whole */
#define LOADER_KERNEL_HEAD     (64 * KiB)  /* what is read first: a vmlinux's headers are in it */
#define LOADER_DECOMPRESS_S                                                                        \
    3600 /* the filler's decompression, at idle priority, may take this long */

/*
 * How a bzImage boots. AUTO: its payload's vmlinux, from the cache of
 * decompressed kernels (kernel_cache.h); on a miss the bzImage's own
 * decompressor, while a filler process decompresses the payload into the
 * cache for later boots; the bzImage's own decompressor too when the payload
 * cannot be used or the cache cannot be, which the loader's note says.
 * SETUP: always the bzImage's own path.
 */
enum loader_entry {
    LOADER_ENTRY_AUTO,
    LOADER_ENTRY_SETUP,
};

struct loader_opts {
    enum loader_entry entry;
    const char *cache_path; /* NULL: kcache_default_path() */
};

struct loader {
    const char *kernel_path;
    const char *initrd_path; /* NULL: none */
    int kernel_fd;
    uint8_t *img; /* a whole bzImage, or a vmlinux's first LOADER_KERNEL_HEAD bytes */
    size_t len;
    struct kernel_image kernel; /* its pointers point into img */
    int initrd_fd;
    uint64_t initrd_size;
    struct kcache_entry cached;           /* the payload's vmlinux from the cache, or none */
    const char *via;                      /* how the kernel boots, for --stats */
    uint64_t ns_key, ns_cache, ns_filler; /* the payload path's steps, for --stats */
    char note[sizeof(struct errbuf)];     /* "" or why a bzImage boots its own decompressor */
};

/* Opens, reads and checks the kernel and opens the initrd. 0 or -errno with eb. */
int loader_open(struct loader *ld, const char *kernel_path, const char *initrd_path,
                const struct loader_opts *opts, struct errbuf *eb) MUST_CHECK;

/* Loads the kernel, command line, zero page and initrd into mem. */
int loader_load(struct loader *ld, struct guest_mem *mem, const char *cmdline,
                struct errbuf *eb) MUST_CHECK;

/* Closes the files and frees the image (safe on a loader never opened: fds -1). */
void loader_close(struct loader *ld);

#endif
