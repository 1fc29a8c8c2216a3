/*
 * Unit tests for the cache of decompressed kernels: the key against SHA-256's
 * known vectors, write then verified read, a corrupt, truncated or misnamed
 * entry discarded (never returned), petrels storing and reading the same
 * entry at once, pruning by age and by size (least recently used first),
 * stale temporary files, and where the cache lives.
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
#include <sys/wait.h>
#include <unistd.h>

#include "petrel/kernel_cache.h"

struct fx {
    char dir[64];
    struct kcache c;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct errbuf eb;
    snprintf(f->dir, sizeof(f->dir), "/tmp/petrel-kcache.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/petrel/kernels", f->dir);
    assert_int_equal(kcache_open(&f->c, path, true, &eb), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    kcache_close(&f->c);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void key_of(const char *s, uint8_t key[KCACHE_KEY_LEN])
{
    kcache_key((const uint8_t *)s, strlen(s), key);
}

static void entry_path(struct fx *f, const uint8_t key[KCACHE_KEY_LEN], char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/", f->c.path);
    for (int i = 0; i < KCACHE_KEY_LEN; i++)
        n += snprintf(buf + n, len - (size_t)n, "%02x", key[i]);
    snprintf(buf + n, len - (size_t)n, ".vmlinux");
}

static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 31 + seed + (i >> 9));
    return p;
}

/* FIPS 180-2's vectors: the key is SHA-256. */
static void test_key_is_sha256(void **state)
{
    (void)state;
    uint8_t k[KCACHE_KEY_LEN];
    static const uint8_t abc[] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                  0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                  0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const uint8_t empty[] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
                                    0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
                                    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
                                    0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    static const uint8_t two_blocks[] = {0x24, 0x8d, 0x6a, 0x61, 0xd2, 0x06, 0x38, 0xb8,
                                         0xe5, 0xc0, 0x26, 0x93, 0x0c, 0x3e, 0x60, 0x39,
                                         0xa3, 0x3c, 0xe4, 0x59, 0x64, 0xff, 0x21, 0x67,
                                         0xf6, 0xec, 0xed, 0xd4, 0x19, 0xdb, 0x06, 0xc1};
    key_of("abc", k);
    assert_memory_equal(k, abc, sizeof(abc));
    key_of("", k);
    assert_memory_equal(k, empty, sizeof(empty));
    key_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", k);
    assert_memory_equal(k, two_blocks, sizeof(two_blocks));
}

/* A bzImage's key is remembered while the file is unchanged (not while it is racy, just
 * written), hashed again once it changes, and without hash left unknown, not hashed. */
static void test_key_of_file_remembered(void **state)
{
    struct fx *f = *state;
    char path[128];
    uint8_t want[KCACHE_KEY_LEN], k[KCACHE_KEY_LEN];
    const uint64_t hour = 3600 * 1000000000ULL;
    uint8_t *data = pattern(50001, 7);

    snprintf(path, sizeof(path), "%s/bzImage", f->dir);
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    assert_int_equal(write(fd, data, 50000), 50000);
    kcache_key(data, 50000, want);
    /* Just written: racy under a window of an hour, so hashed even without hash, never
     * remembered. */
    for (int i = 0; i < 2; i++) {
        memset(k, 0, sizeof(k));
        assert_int_equal(kcache_key_of_file(&f->c, fd, data, 50000, hour, false, k),
                         KCACHE_KEY_HASHED);
        assert_memory_equal(k, want, KCACHE_KEY_LEN);
    }
    /* Not racy (a window of 0): without hash, unknown; with it, hashed and remembered. */
    assert_int_equal(kcache_key_of_file(&f->c, fd, data, 50000, 0, false, k), KCACHE_KEY_UNKNOWN);
    memset(k, 0, sizeof(k));
    assert_int_equal(kcache_key_of_file(&f->c, fd, data, 50000, 0, true, k), KCACHE_KEY_HASHED);
    assert_memory_equal(k, want, KCACHE_KEY_LEN);
    memset(k, 0, sizeof(k));
    assert_int_equal(kcache_key_of_file(&f->c, fd, data, 50000, 0, false, k),
                     KCACHE_KEY_REMEMBERED);
    assert_memory_equal(k, want, KCACHE_KEY_LEN);
    /* Changed (a byte appended; mtime set back as it was): not remembered any more. */
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(pwrite(fd, data + 50000, 1, 50000), 1);
    struct timespec t[2] = {st.st_atim, st.st_mtim};
    assert_int_equal(futimens(fd, t), 0);
    assert_int_equal(kcache_key_of_file(&f->c, fd, data, 50001, 0, false, k), KCACHE_KEY_UNKNOWN);
    kcache_key(data, 50001, want);
    assert_int_equal(kcache_key_of_file(&f->c, fd, data, 50001, 0, true, k), KCACHE_KEY_HASHED);
    assert_memory_equal(k, want, KCACHE_KEY_LEN);
    /* clear forgets it. */
    unsigned removed;
    uint64_t freed;
    struct errbuf eb;
    assert_int_equal(kcache_prune(&f->c, 0, 0, NULL, &removed, &freed, &eb), 0);
    assert_int_equal(kcache_key_of_file(&f->c, fd, data, 50001, 0, false, k), KCACHE_KEY_UNKNOWN);
    close(fd);
    free(data);
}

/* One filler at a time; a payload marked bad says why until the cache is cleared. */
static void test_lock_and_bad(void **state)
{
    struct fx *f = *state;
    uint8_t k[KCACHE_KEY_LEN];
    char why[64];
    unsigned removed;
    uint64_t freed;
    struct errbuf eb;

    key_of("bzImage locked", k);
    int a = kcache_lock(&f->c, k);
    assert_true(a >= 0);
    assert_int_equal(kcache_lock(&f->c, k), -EWOULDBLOCK);
    kcache_unlock(&f->c, k, a);
    a = kcache_lock(&f->c, k);
    assert_true(a >= 0);
    kcache_unlock(&f->c, k, a);

    assert_false(kcache_bad(&f->c, k, why, sizeof(why)));
    kcache_mark_bad(&f->c, k, "the xz payload is corrupt");
    assert_true(kcache_bad(&f->c, k, why, sizeof(why)));
    assert_string_equal(why, "the xz payload is corrupt");
    assert_int_equal(kcache_prune(&f->c, -1, UINT64_MAX, NULL, &removed, &freed, &eb), 0);
    assert_true(kcache_bad(&f->c, k, why, sizeof(why))); /* a plain prune keeps it */
    assert_int_equal(kcache_prune(&f->c, 0, 0, NULL, &removed, &freed, &eb), 0);
    assert_false(kcache_bad(&f->c, k, why, sizeof(why)));
}

static void test_store_then_get(void **state)
{
    struct fx *f = *state;
    struct errbuf eb = {{0}};
    struct kcache_entry e;
    uint8_t k[KCACHE_KEY_LEN];
    uint8_t *data = pattern(200000, 1);

    key_of("bzImage one", k);
    assert_int_equal(kcache_get(&f->c, k, &e, &eb), -ENOENT);
    assert_int_equal(kcache_store(&f->c, k, data, 200000, KCACHE_MAX_BYTES, &eb), 0);
    assert_int_equal(kcache_get(&f->c, k, &e, &eb), 0);
    assert_int_equal(e.len, 200000);
    assert_memory_equal(e.elf, data, 200000);
    kcache_put_entry(&e);
    assert_null(e.map);
    free(data);
}

/* Damages the entry of k with fn, then checks that get discards it and a store rebuilds it. */
static void damaged(struct fx *f, void (*fn)(const char *path, size_t len), const char *words)
{
    struct errbuf eb = {{0}};
    struct kcache_entry e;
    uint8_t k[KCACHE_KEY_LEN];
    char path[600];
    struct stat st;
    uint8_t *data = pattern(100000, 2);

    key_of("bzImage damaged", k);
    assert_int_equal(kcache_store(&f->c, k, data, 100000, KCACHE_MAX_BYTES, &eb), 0);
    entry_path(f, k, path, sizeof(path));
    fn(path, 100000);
    assert_int_equal(kcache_get(&f->c, k, &e, &eb), -EBADMSG);
    assert_null(e.map);
    if (!strstr(eb.msg, words))
        fail_msg("'%s' does not say '%s'", eb.msg, words);
    assert_int_equal(stat(path, &st), -1); /* discarded */
    assert_int_equal(kcache_get(&f->c, k, &e, &eb), -ENOENT);
    assert_int_equal(kcache_store(&f->c, k, data, 100000, KCACHE_MAX_BYTES, &eb), 0);
    assert_int_equal(kcache_get(&f->c, k, &e, &eb), 0);
    assert_memory_equal(e.elf, data, 100000);
    kcache_put_entry(&e);
    free(data);
}

static void flip_a_byte(const char *path, size_t len)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)len / 2), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)len / 2), 1);
    close(fd);
}

static void cut_short(const char *path, size_t len)
{
    assert_int_equal(truncate(path, (off_t)len / 3), 0);
}

static void cut_the_trailer(const char *path, size_t len)
{
    assert_int_equal(truncate(path, (off_t)len + 10), 0);
}

static void emptied(const char *path, size_t len)
{
    (void)len;
    assert_int_equal(truncate(path, 0), 0);
}

static void test_corrupt_entry_discarded(void **state)
{
    damaged(*state, flip_a_byte, "checksum");
}

static void test_truncated_entry_discarded(void **state)
{
    damaged(*state, cut_short, "trailer");
    damaged(*state, cut_the_trailer, "trailer");
    damaged(*state, emptied, "empty");
}

/* An entry under another bzImage's name (copied, renamed) is not that bzImage's kernel. */
static void test_misnamed_entry_discarded(void **state)
{
    struct fx *f = *state;
    struct errbuf eb = {{0}};
    struct kcache_entry e;
    uint8_t a[KCACHE_KEY_LEN], b[KCACHE_KEY_LEN];
    char pa[600], pb[600];
    uint8_t *data = pattern(5000, 3);

    key_of("bzImage a", a);
    key_of("bzImage b", b);
    assert_int_equal(kcache_store(&f->c, a, data, 5000, KCACHE_MAX_BYTES, &eb), 0);
    entry_path(f, a, pa, sizeof(pa));
    entry_path(f, b, pb, sizeof(pb));
    assert_int_equal(rename(pa, pb), 0);
    assert_int_equal(kcache_get(&f->c, b, &e, &eb), -EBADMSG);
    assert_non_null(strstr(eb.msg, "another bzImage's key"));
    free(data);
}

/* Four processes store and read the same entry at once: every read is whole, none is left
 * half-written, no temporary file stays. */
static void test_concurrent_store_and_get(void **state)
{
    struct fx *f = *state;
    uint8_t k[KCACHE_KEY_LEN];
    const size_t len = 3 * 1000 * 1000;
    uint8_t *data = pattern(len, 4);
    pid_t kids[4];

    key_of("bzImage shared", k);
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            int bad = 0;
            for (int round = 0; round < 15; round++) {
                struct errbuf eb;
                struct kcache_entry e;
                if (kcache_store(&f->c, k, data, len, KCACHE_MAX_BYTES, &eb))
                    bad++;
                int r = kcache_get(&f->c, k, &e, &eb);
                if (r == 0) {
                    bad += e.len != len || memcmp(e.elf, data, len) != 0;
                    kcache_put_entry(&e);
                } else if (r != -ENOENT) {
                    bad++; /* never half-written: a reader sees a whole file or none */
                }
            }
            _exit(bad ? 1 : 0);
        }
    }
    for (int i = 0; i < 4; i++) {
        int st;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    struct kcache_info *v;
    size_t n;
    struct errbuf eb;
    assert_int_equal(kcache_list(&f->c, &v, &n, &eb), 0);
    assert_int_equal(n, 1);
    free(v);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s | grep -v '[.]vmlinux$')\"", f->c.path);
    assert_int_equal(system(cmd), 0);
    free(data);
}

static void set_age(struct fx *f, const char *what, time_t age)
{
    uint8_t k[KCACHE_KEY_LEN];
    char path[600];
    key_of(what, k);
    entry_path(f, k, path, sizeof(path));
    struct timespec t[2] = {{.tv_sec = time(NULL) - age}, {.tv_sec = time(NULL) - age}};
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static bool present(struct fx *f, const char *what)
{
    uint8_t k[KCACHE_KEY_LEN];
    char path[600];
    struct stat st;
    key_of(what, k);
    entry_path(f, k, path, sizeof(path));
    return stat(path, &st) == 0;
}

static void store(struct fx *f, const char *what, size_t len)
{
    uint8_t k[KCACHE_KEY_LEN];
    struct errbuf eb;
    uint8_t *data = pattern(len, 5);
    key_of(what, k);
    assert_int_equal(kcache_store(&f->c, k, data, len, UINT64_MAX, &eb), 0);
    free(data);
}

static void test_prune_by_age(void **state)
{
    struct fx *f = *state;
    struct errbuf eb;
    unsigned removed;
    uint64_t freed;

    store(f, "old", 1000);
    store(f, "new", 1000);
    set_age(f, "old", 40 * 86400);
    set_age(f, "new", 86400);
    assert_int_equal(kcache_prune(&f->c, 30 * 86400, UINT64_MAX, NULL, &removed, &freed, &eb), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(freed, 1000 + 64);
    assert_false(present(f, "old"));
    assert_true(present(f, "new"));
}

/* Over the bound, the least recently used go first; a use makes an entry recent again. */
static void test_prune_lru(void **state)
{
    struct fx *f = *state;
    struct errbuf eb = {{0}};
    struct kcache_entry e;
    uint8_t k[KCACHE_KEY_LEN];
    unsigned removed;
    uint64_t freed;

    store(f, "a", 10000);
    store(f, "b", 10000);
    store(f, "c", 10000);
    set_age(f, "a", 300);
    set_age(f, "b", 200);
    set_age(f, "c", 100);
    key_of("a", k); /* a boot uses a: now the most recent */
    assert_int_equal(kcache_get(&f->c, k, &e, &eb), 0);
    kcache_put_entry(&e);
    /* A new entry over a bound of three: b, the least recently used, goes. */
    uint8_t *data = pattern(10000, 6);
    key_of("d", k);
    assert_int_equal(kcache_store(&f->c, k, data, 10000, 3 * (10000 + 64), &eb), 0);
    assert_true(present(f, "a"));
    assert_false(present(f, "b"));
    assert_true(present(f, "c"));
    assert_true(present(f, "d"));
    /* A bound below one entry keeps the one just written. */
    assert_int_equal(kcache_store(&f->c, k, data, 10000, 1, &eb), 0);
    assert_true(present(f, "d"));
    assert_false(present(f, "a") || present(f, "c"));
    assert_int_equal(kcache_prune(&f->c, -1, 0, NULL, &removed, &freed, &eb), 0);
    assert_int_equal(removed, 1);
    assert_false(present(f, "d"));
    free(data);
}

/* A temporary file a crash left is removed once stale, not while it may be being written. */
static void test_prune_stale_temporary(void **state)
{
    struct fx *f = *state;
    struct errbuf eb;
    unsigned removed;
    uint64_t freed;
    char fresh[600], stale[600];
    struct stat st;

    snprintf(fresh, sizeof(fresh), "%s/.tmp-1-2-0", f->c.path);
    snprintf(stale, sizeof(stale), "%s/.tmp-3-4-0", f->c.path);
    close(open(fresh, O_CREAT | O_WRONLY, 0600));
    close(open(stale, O_CREAT | O_WRONLY, 0600));
    struct timespec t[2] = {{.tv_sec = time(NULL) - KCACHE_TMP_STALE_S - 60},
                            {.tv_sec = time(NULL) - KCACHE_TMP_STALE_S - 60}};
    assert_int_equal(utimensat(AT_FDCWD, stale, t, 0), 0);
    assert_int_equal(kcache_prune(&f->c, -1, UINT64_MAX, NULL, &removed, &freed, &eb), 0);
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(stat(stale, &st), -1);
}

/* A cache directory someone else could write is refused (the boot then goes on without). */
static void test_open_refuses_shared_directory(void **state)
{
    struct fx *f = *state;
    struct errbuf eb;
    struct kcache c;
    char path[128];

    snprintf(path, sizeof(path), "%s/shared", f->dir);
    assert_int_equal(mkdir(path, 0777), 0);
    assert_int_equal(chmod(path, 0777), 0);
    assert_int_equal(kcache_open(&c, path, true, &eb), -EPERM);
    assert_int_equal(c.dir_fd, -1);
}

static void test_default_path(void **state)
{
    (void)state;
    char buf[256];
    struct errbuf eb;

    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    assert_int_equal(kcache_default_path(buf, sizeof(buf), &eb), 0);
    assert_string_equal(buf, "/x/cache/petrel/kernels");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    assert_int_equal(kcache_default_path(buf, sizeof(buf), &eb), 0);
    assert_string_equal(buf, geteuid() == 0 ? "/var/cache/petrel/kernels"
                                            : "/home/u/.cache/petrel/kernels");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_is_sha256),
        cmocka_unit_test_setup_teardown(test_key_of_file_remembered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_and_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_then_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_entry_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_entry_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misnamed_entry_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_store_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_stale_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_shared_directory, setup, teardown),
        cmocka_unit_test(test_default_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
