/*
 * The cache of decompressed kernels (kernel_cache.h says what an entry is).
 *
 * Why SHA-256 from libcrypto for the key: the key must be strong (a bzImage
 * that collides with another would boot the other's kernel), and libcrypto's
 * SHA-256 uses the CPU's SHA extensions where there are some (~1.3 GB/s on
 * this host's CPU, measured with openssl speed), several times an in-tree
 * implementation; libcrypto is on every Debian system (libssl3). The entry's
 * own check is a 64-bit sum in xxHash64's style (four multiply-rotate lanes,
 * kc_sum()): it only has to catch a damaged or cut file (whoever can write the
 * cache can write any checksum in it), and it runs over the ~66 MiB of a
 * distribution's vmlinux on every warm boot, where zlib's CRC-32 took ~45 ms of
 * the entry's 59 ms read on this host and several times that under emulation.
 *
 * No fsync: an entry that a crash left empty or partial fails its check on
 * the next use and is rebuilt, which costs less than an fsync on every write.
 */
#include "petrel/kernel_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
/* SHA256_Init() and co.: deprecated in OpenSSL 3, but EVP (and SHA256(), which goes through
 * it) would link its providers in, 4 MiB and 17000 relocations for every start-up. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KC_MAGIC   "PETRELKC"
#define KC_VERSION 2
#define KC_SUFFIX  ".vmlinux"
#define KC_TMP     ".tmp-"

/* The trailer after an entry's bytes: all little-endian. */
struct kc_trailer {
    char magic[8];
    uint8_t version[4];
    uint8_t reserved[4];
    uint8_t sum[8];
    uint8_t len[8];
    uint8_t key[KCACHE_KEY_LEN];
};
_Static_assert(sizeof(struct kc_trailer) == 64, "the trailer is 64 bytes");

static void kc_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t kc_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#define KC_P1 0x9e3779b185ebca87ULL /* xxHash64's primes */
#define KC_P2 0xc2b2ae3d27d4eb4fULL
#define KC_P3 0x165667b19e3779f9ULL

static uint64_t kc_rotl(uint64_t v, int r)
{
    return v << r | v >> (64 - r);
}

static uint64_t kc_round(uint64_t acc, uint64_t in)
{
    return kc_rotl(acc + in * KC_P2, 31) * KC_P1;
}

/* The entry's check: four independent lanes over 32-byte stripes, then the tail and length. */
static uint64_t kc_sum(const uint8_t *p, size_t len)
{
    uint64_t v[4] = {KC_P1 + KC_P2, KC_P2, 0, -KC_P1}, w;
    size_t i = 0;

    for (; len - i >= 32; i += 32) {
        for (int l = 0; l < 4; l++) {
            memcpy(&w, p + i + 8 * l, 8);
            v[l] = kc_round(v[l], w);
        }
    }
    uint64_t h = kc_rotl(v[0], 1) + kc_rotl(v[1], 7) + kc_rotl(v[2], 12) + kc_rotl(v[3], 18);
    for (; i < len; i++)
        h = kc_round(h, p[i] + 1);
    h ^= (uint64_t)len;
    h ^= h >> 33;
    h *= KC_P2;
    h ^= h >> 29;
    h *= KC_P3;
    return h ^ (h >> 32);
}

static void kc_name_with(const uint8_t key[KCACHE_KEY_LEN], const char *suffix, char *buf,
                         size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < KCACHE_KEY_LEN && o + 2 < len; i++) {
        buf[o++] = hex[key[i] >> 4];
        buf[o++] = hex[key[i] & 15];
    }
    snprintf(buf + o, len - o, "%s", suffix);
}

static void kc_name(const uint8_t key[KCACHE_KEY_LEN], char *buf, size_t len)
{
    kc_name_with(key, KC_SUFFIX, buf, len);
}

int kcache_lock(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN])
{
    char name[80];
    kc_name_with(key, ".lock", name, sizeof(name));
    return kcache_lock_name(c, name);
}

int kcache_lock_name(struct kcache *c, const char *name)
{
    int fd = openat(c->dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        close(fd);
        return err == EWOULDBLOCK ? -EWOULDBLOCK : -err;
    }
    return fd;
}

void kcache_unlock(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], int fd)
{
    char name[80];
    kc_name_with(key, ".lock", name, sizeof(name));
    kcache_unlock_name(c, name, fd);
}

void kcache_unlock_name(struct kcache *c, const char *name, int fd)
{
    unlinkat(c->dir_fd, name, 0);
    close(fd);
}

void kcache_file_lock_name(int fd, char *buf, size_t len)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        memset(&st, 0, sizeof(st));
    snprintf(buf, len, "id-%llx-%llx.lock", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
}

void kcache_mark_bad(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], const char *why)
{
    char name[80];
    kc_name_with(key, ".bad", name, sizeof(name));
    int fd = openat(c->dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (write_all(fd, why, strlen(why)) < 0)
        unlinkat(c->dir_fd, name, 0);
    close(fd);
}

bool kcache_bad(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], char *why, size_t len)
{
    char name[80];
    kc_name_with(key, ".bad", name, sizeof(name));
    int fd = openat(c->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, why, len - 1);
    close(fd);
    why[n > 0 ? n : 0] = 0;
    return true;
}

void kcache_key(const uint8_t *data, size_t len, uint8_t key[KCACHE_KEY_LEN])
{
    _Static_assert(KCACHE_KEY_LEN == SHA256_DIGEST_LENGTH, "the key is a SHA-256");
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(key, &ctx);
}

/* What kcache_key_of_file() remembers of a bzImage. */
struct kc_id {
    char magic[8];
    uint8_t size[8], mtime[8], ctime[8];
    uint8_t key[KCACHE_KEY_LEN];
};

static void kc_id_of(const struct stat *st, struct kc_id *id)
{
    memset(id, 0, sizeof(*id));
    memcpy(id->magic, "PETRELID", 8);
    kc_put64(id->size, (uint64_t)st->st_size);
    kc_put64(id->mtime,
             (uint64_t)st->st_mtim.tv_sec * 1000000000ULL + (uint64_t)st->st_mtim.tv_nsec);
    kc_put64(id->ctime,
             (uint64_t)st->st_ctim.tv_sec * 1000000000ULL + (uint64_t)st->st_ctim.tv_nsec);
}

enum kcache_keyed kcache_key_of_file(struct kcache *c, int fd, const uint8_t *data, size_t len,
                                     uint64_t racy_ns, bool hash, uint8_t key[KCACHE_KEY_LEN])
{
    struct stat st;
    struct kc_id want, have;
    char name[64], tmp[96];

    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != len) {
        kcache_key(data, len, key);
        return KCACHE_KEY_HASHED;
    }
    kc_id_of(&st, &want);
    snprintf(name, sizeof(name), "id-%llx-%llx", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    int idfd = openat(c->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (idfd >= 0) {
        ssize_t n = read(idfd, &have, sizeof(have));
        close(idfd);
        if (n == (ssize_t)sizeof(have) && !memcmp(&have, &want, offsetof(struct kc_id, key))) {
            memcpy(key, have.key, KCACHE_KEY_LEN);
            return KCACHE_KEY_REMEMBERED;
        }
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_rt = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
    /* Racy: changed too recently to be told apart from a change to come. */
    bool racy = kc_get64(want.mtime) + racy_ns > now_rt || kc_get64(want.ctime) + racy_ns > now_rt;
    if (!hash && !racy)
        return KCACHE_KEY_UNKNOWN;
    kcache_key(data, len, key);
    if (racy)
        return KCACHE_KEY_HASHED;
    memcpy(want.key, key, KCACHE_KEY_LEN);
    snprintf(tmp, sizeof(tmp), KC_TMP "%d-%llx-id", (int)getpid(), (unsigned long long)now_ns());
    idfd = openat(c->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (idfd < 0)
        return KCACHE_KEY_HASHED;
    bool ok = write_all(idfd, &want, sizeof(want)) == 0;
    ok = close(idfd) == 0 && ok;
    if (!ok || renameat(c->dir_fd, tmp, c->dir_fd, name) < 0)
        unlinkat(c->dir_fd, tmp, 0);
    return KCACHE_KEY_HASHED;
}

int kcache_default_path(char *buf, size_t len, struct errbuf *eb)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;

    if (xdg && xdg[0] == '/')
        n = snprintf(buf, len, "%s/petrel/kernels", xdg);
    else if (geteuid() == 0)
        n = snprintf(buf, len, "/var/cache/petrel/kernels");
    else if (home && home[0] == '/')
        n = snprintf(buf, len, "%s/.cache/petrel/kernels", home);
    else
        return err_set(eb, -ENOENT, "no cache directory: neither XDG_CACHE_HOME nor HOME is set");
    if (n < 0 || (size_t)n >= len)
        return err_set(eb, -ENAMETOOLONG, "the cache directory's path is too long");
    return 0;
}

int kcache_open(struct kcache *c, const char *path, bool create, struct errbuf *eb)
{
    c->dir_fd = -1;
    if (snprintf(c->path, sizeof(c->path), "%s", path) >= (int)sizeof(c->path))
        return err_set(eb, -ENAMETOOLONG, "the cache directory's path is too long");
    if (create) {
        /* The parents, as mkdir -p (0700 for those petrel makes); the last is checked below. */
        char p[sizeof(c->path)];
        memcpy(p, c->path, sizeof(p));
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
            *s = 0;
            if (mkdir(p, 0700) < 0 && errno != EEXIST)
                return err_set(eb, -errno, "cannot create %s: %s", p, strerror(errno));
            *s = '/';
        }
    }
    int fd = dir_open_private("the kernel cache", c->path, create, eb);
    if (fd < 0)
        return fd;
    c->dir_fd = fd;
    return 0;
}

void kcache_close(struct kcache *c)
{
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    c->dir_fd = -1;
}

void kcache_put_entry(struct kcache_entry *e)
{
    if (e->map)
        munmap(e->map, e->map_len);
    *e = (struct kcache_entry){0};
}

/* Checks a mapped entry against key; NULL if it is whole, else what is wrong. */
static const char *kc_check(const uint8_t *map, size_t size, const uint8_t key[KCACHE_KEY_LEN])
{
    struct kc_trailer t;

    if (size < sizeof(t))
        return "shorter than its trailer";
    memcpy(&t, map + size - sizeof(t), sizeof(t));
    if (memcmp(t.magic, KC_MAGIC, sizeof(t.magic)))
        return "no trailer (truncated?)";
    if (t.version[0] != KC_VERSION || t.version[1] || t.version[2] || t.version[3])
        return "a trailer of another version";
    if (kc_get64(t.len) != size - sizeof(t))
        return "the wrong length (truncated?)";
    if (memcmp(t.key, key, KCACHE_KEY_LEN))
        return "another bzImage's key";
    if (kc_sum(map, size - sizeof(t)) != kc_get64(t.sum))
        return "a wrong checksum (corrupt)";
    return NULL;
}

int kcache_get(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], struct kcache_entry *e,
               struct errbuf *eb)
{
    char name[80];
    struct stat st;

    *e = (struct kcache_entry){0};
    kc_name(key, name, sizeof(name));
    int fd = openat(c->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT
                   ? -ENOENT
                   : err_set(eb, -errno, "cannot open %s/%s: %s", c->path, name, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
        close(fd);
        unlinkat(c->dir_fd, name, 0);
        return err_set(eb, -EBADMSG, "the cache entry %s/%s was empty or not a file: removed",
                       c->path, name);
    }
    size_t size = (size_t)st.st_size;
    /* Populated at once: the whole entry is read (checked, then copied) right away. */
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) {
        int err = errno;
        close(fd);
        return err_set(eb, -err, "cannot map %s/%s: %s", c->path, name, strerror(err));
    }
    const char *bad = kc_check(map, size, key);
    if (bad) {
        munmap(map, size);
        close(fd);
        unlinkat(c->dir_fd, name, 0);
        return err_set(eb, -EBADMSG, "the cache entry %s/%s had %s: removed", c->path, name, bad);
    }
    /* Used now: the size bound prunes the least recently used first. */
    futimens(fd, NULL);
    close(fd);
    *e = (struct kcache_entry){
        .map = map, .map_len = size, .elf = map, .len = size - sizeof(struct kc_trailer)};
    return 0;
}

int kcache_store(struct kcache *c, const uint8_t key[KCACHE_KEY_LEN], const uint8_t *data,
                 size_t len, uint64_t max_bytes, struct errbuf *eb)
{
    char name[80], tmp[96];
    struct kc_trailer t = {.magic = KC_MAGIC};

    kc_name(key, name, sizeof(name));
    t.version[0] = KC_VERSION;
    kc_put64(t.sum, kc_sum(data, len));
    kc_put64(t.len, len);
    memcpy(t.key, key, KCACHE_KEY_LEN);

    /* A unique temporary name: petrels filling the same entry never share one. */
    int fd = -1;
    for (unsigned tries = 0; fd < 0 && tries < 16; tries++) {
        snprintf(tmp, sizeof(tmp), KC_TMP "%d-%llx-%u", (int)getpid(), (unsigned long long)now_ns(),
                 tries);
        fd = openat(c->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return err_set(eb, -errno, "cannot write in %s: %s", c->path, strerror(errno));
    }
    if (fd < 0)
        return err_set(eb, -EEXIST, "cannot make a temporary file in %s", c->path);
    int ret = write_all(fd, data, len);
    if (!ret)
        ret = write_all(fd, &t, sizeof(t));
    if (close(fd) < 0 && !ret)
        ret = -errno;
    if (!ret && renameat(c->dir_fd, tmp, c->dir_fd, name) < 0)
        ret = -errno;
    if (ret) {
        unlinkat(c->dir_fd, tmp, 0);
        return err_set(eb, ret, "cannot write %s/%s: %s", c->path, name, strerror(-ret));
    }
    unsigned removed;
    uint64_t freed;
    return kcache_prune(c, -1, max_bytes, name, &removed, &freed, eb);
}

/* Reads the directory: entries into *out (sorted, most recently used first). */
static int kc_scan(struct kcache *c, struct kcache_info **out, size_t *n, int64_t stale_before,
                   int64_t ids_before, struct errbuf *eb)
{
    size_t cap = 0;
    struct kcache_info *v = NULL;
    struct dirent *d;
    struct stat st;

    *out = NULL;
    *n = 0;
    int fd = dup(c->dir_fd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return err_set(eb, -errno, "cannot read %s: %s", c->path, strerror(errno));
    }
    rewinddir(dir);
    while ((d = readdir(dir)) != NULL) {
        size_t l = strlen(d->d_name);
        if (fstatat(c->dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (!strncmp(d->d_name, KC_TMP, strlen(KC_TMP))) {
            if (stale_before >= 0 && st.st_mtime < stale_before)
                unlinkat(c->dir_fd, d->d_name, 0);
            continue;
        }
        if (!strncmp(d->d_name, "id-", 3) || (l > 4 && !strcmp(d->d_name + l - 4, ".bad"))) {
            if (ids_before != INT64_MIN && st.st_mtime < ids_before)
                unlinkat(c->dir_fd, d->d_name, 0);
            continue;
        }
        if (l < strlen(KC_SUFFIX) || strcmp(d->d_name + l - strlen(KC_SUFFIX), KC_SUFFIX) ||
            l >= sizeof(v->name))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            struct kcache_info *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                free(v);
                closedir(dir);
                return err_set(eb, -ENOMEM, "out of memory");
            }
            v = nv;
        }
        struct kcache_info *i = &v[(*n)++];
        snprintf(i->name, sizeof(i->name), "%s", d->d_name);
        i->size = (uint64_t)st.st_size;
        i->used = st.st_mtime;
    }
    closedir(dir);
    /* Most recently used first (insertion sort: a cache holds a few dozen at most). */
    for (size_t a = 1; a < *n; a++) {
        struct kcache_info x = v[a];
        size_t b = a;
        while (b > 0 && v[b - 1].used < x.used) {
            v[b] = v[b - 1];
            b--;
        }
        v[b] = x;
    }
    *out = v;
    return 0;
}

int kcache_list(struct kcache *c, struct kcache_info **out, size_t *n, struct errbuf *eb)
{
    return kc_scan(c, out, n, -1, INT64_MIN, eb);
}

int kcache_prune(struct kcache *c, int64_t older_than_s, uint64_t max_bytes, const char *keep,
                 unsigned *removed, uint64_t *freed, struct errbuf *eb)
{
    struct kcache_info *v;
    size_t n;
    time_t now = time(NULL);

    *removed = 0;
    *freed = 0;
    /* A bzImage's remembered key goes with clear (no bound) and with an age. */
    int64_t ids_before = max_bytes == 0      ? INT64_MAX
                         : older_than_s >= 0 ? now - older_than_s
                                             : INT64_MIN;
    int ret = kc_scan(c, &v, &n, now - KCACHE_TMP_STALE_S, ids_before, eb);
    if (ret)
        return ret;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += v[i].size;
    /* Oldest first: the list is most recent first. */
    for (size_t i = n; i-- > 0;) {
        bool old = older_than_s >= 0 && v[i].used < now - older_than_s;
        if ((keep && !strcmp(v[i].name, keep)) || (!old && total <= max_bytes))
            continue;
        /* Another petrel may have removed it first: it is gone either way. */
        if (unlinkat(c->dir_fd, v[i].name, 0) < 0 && errno != ENOENT) {
            ret =
                err_set(eb, -errno, "cannot remove %s/%s: %s", c->path, v[i].name, strerror(errno));
            break;
        }
        total -= v[i].size;
        (*removed)++;
        *freed += v[i].size;
    }
    free(v);
    return ret;
}
