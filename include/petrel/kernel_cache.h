/*
 * The cache of decompressed kernels: a bzImage's payload, decompressed once
 * (kernel_payload.h), kept as a file named by the SHA-256 of the bzImage's
 * bytes, so that later boots of the same bzImage go straight to its vmlinux.
 *
 * Where: $XDG_CACHE_HOME/petrel/kernels if XDG_CACHE_HOME is set, else
 * /var/cache/petrel/kernels for root, else ~/.cache/petrel/kernels; the
 * directory is the user's own (dir_open_private()).
 *
 * An entry, KEYHEX.vmlinux, is the decompressed bytes followed by a trailer
 * (magic, version, a 64-bit sum of the bytes, their length, the key): written under a
 * temporary name and renamed into place (two petrels filling the same entry
 * each rename a whole file), and verified on every use (a wrong size, trailer
 * or sum: the entry is deleted and reported as a miss, never used). A use
 * sets its mtime, so the size bound prunes the least recently used first.
 */
#ifndef PETREL_KERNEL_CACHE_H
#define PETREL_KERNEL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "petrel/util.h"

#define KCACHE_KEY_LEN     32          /* SHA-256 */
#define KCACHE_MAX_BYTES   (1 * GiB)   /* the size bound after a new entry */
#define KCACHE_TMP_STALE_S (24 * 3600) /* a temporary file this old was left by a crash */

struct kcache {
    char path[512];
    int dir_fd;
};

/* A verified entry, mapped: elf[0, len) are the decompressed bytes. */
struct kcache_entry {
    void *map;
    size_t map_len;
    const uint8_t *elf;
    size_t len;
};

/* One entry as kcache_list() shows it. */
struct kcache_info {
    char name[80];
    uint64_t size;
    time_t used; /* mtime: the last boot that used it, or its writing */
};

/* The default directory (above) in buf. 0, or -ENOENT with no HOME. */
int kcache_default_path(char *buf, size_t len, struct errbuf *eb) MUST_CHECK;

/* Opens (with create: makes, parents too) the cache at path. 0 or -errno with eb. */
int kcache_open(struct kcache *c, const char *path, bool create, struct errbuf *eb) MUST_CHECK;

void kcache_close(struct kcache *c);

/* The key of a bzImage: the SHA-256 of its bytes (libcrypto). */
void kcache_key(const uint8_t *data, size_t len, uint8_t key[KCACHE_KEY_LEN]);

/*
 * The key of the bzImage open as fd whose bytes are data[0, len): remembered
 * from the last time this file was hashed when its device, inode, size, mtime
 * and ctime are all as they were then (any write to the file changes its
 * ctime, which no one can set back), else computed and remembered. The
 * memory is a small file per bzImage (id-DEV-INO) in the cache; a failure to
 * read or write it only costs the hash. As git does for its index, a file
 * changed less than racy_ns ago is hashed but not remembered: a write within
 * the same clock tick as the last one would leave its times as they were.
 * Without hash, a file neither remembered nor racy is not hashed either
 * (KCACHE_KEY_UNKNOWN): the caller leaves that to its filler.
 */
enum kcache_keyed { KCACHE_KEY_UNKNOWN, KCACHE_KEY_REMEMBERED, KCACHE_KEY_HASHED };
enum kcache_keyed kcache_key_of_file(struct kcache *c, int fd, const uint8_t *data, size_t len,
                                     uint64_t racy_ns, bool hash, uint8_t key[KCACHE_KEY_LEN]);

#define KCACHE_RACY_NS (2 * 1000000000ULL) /* well above any file system's time granularity */

/*
 * Finds and verifies the entry for key. 0: *e holds it (kcache_put_entry() it);
 * -ENOENT: none; -EBADMSG: there was one, corrupt or truncated, now deleted
 * (eb says what was wrong); another -errno: the cache cannot be read.
 */
int kcache_get(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], struct kcache_entry *e,
               struct errbuf *eb) MUST_CHECK;

void kcache_put_entry(struct kcache_entry *e);

/*
 * Stores data[0, len) as key's entry (temporary file, then rename), then
 * prunes the least recently used entries until the cache holds at most
 * max_bytes (the new one stays). 0 or -errno with eb (nothing half-written
 * is left under the entry's name).
 */
int kcache_store(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], const uint8_t *data,
                 size_t len, uint64_t max_bytes, struct errbuf *eb) MUST_CHECK;

/*
 * Removes entries last used before now - older_than_s (older_than_s < 0: none
 * by age), then the least recently used until at most max_bytes remain
 * (UINT64_MAX: no bound), and temporary files older than KCACHE_TMP_STALE_S.
 * keep (or NULL) is never removed. *removed and *freed count what went.
 */
int kcache_prune(struct kcache *c, int64_t older_than_s, uint64_t max_bytes, const char *keep,
                 unsigned *removed, uint64_t *freed, struct errbuf *eb) MUST_CHECK;

/*
 * The lock of key's entry while one process fills it (KEYHEX.lock, flock): an
 * fd holding it, or -EWOULDBLOCK when another process holds it, or -errno.
 */
int kcache_lock(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN]) MUST_CHECK;

/* Releases and removes the lock kcache_lock() returned. */
void kcache_unlock(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], int fd);

/* The same, for any name in the cache: a filler that does not know its key yet locks
 * the bzImage's file (kcache_file_lock_name(): id-DEV-INO.lock). */
int kcache_lock_name(struct kcache *c, const char *name) MUST_CHECK;
void kcache_unlock_name(struct kcache *c, const char *name, int fd);
void kcache_file_lock_name(int fd, char *buf, size_t len);

/*
 * A bzImage whose payload cannot be used: why, kept as KEYHEX.bad so that
 * later boots say so without decompressing it again (petrel cache clear
 * forgets it). kcache_bad() returns true and the reason when there is one.
 */
void kcache_mark_bad(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], const char *why);
bool kcache_bad(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], char *why, size_t len);

/* Lists the entries, most recently used first, into a new array (*out, free() it). */
int kcache_list(struct kcache *c, struct kcache_info **out, size_t *n,
                struct errbuf *eb) MUST_CHECK;

#endif
