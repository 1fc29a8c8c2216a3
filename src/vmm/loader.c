/* The kernel and initrd: read and checked before KVM is touched, then put in guest memory. */
#include "petrel/loader.h"

#include "petrel/kernel_payload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reads len bytes at off of fd into buf: 0, or -errno with a message (what: "kernel", ...). */
static int loader_pread(int fd, void *buf, uint64_t len, uint64_t off, const char *what,
                        const char *path, struct errbuf *eb)
{
    uint64_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
        if (n <= 0)
            return err_set(eb, n < 0 ? -errno : -EIO, "cannot read %s %s: %s", what, path,
                           n < 0 ? strerror(errno) : "file shrank while reading");
        got += (uint64_t)n;
    }
    return 0;
}

/*
 * Opens the kernel and reads what parsing it needs: a vmlinux's head (its
 * segments are read straight into guest memory later, see loader_load()), or
 * a whole bzImage of at most LOADER_MAX_KERNEL_SIZE.
 */
static int loader_read_kernel(struct loader *ld, uint64_t *file_size, struct errbuf *eb)
{
    const char *path = ld->kernel_path;
    char a[32];
    struct stat st;

    ld->kernel_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ld->kernel_fd < 0)
        return err_set(eb, -errno, "cannot open kernel %s: %s", path, strerror(errno));
    if (fstat(ld->kernel_fd, &st) < 0 || !S_ISREG(st.st_mode))
        return err_set(eb, -EINVAL, "kernel %s is not a regular file", path);
    *file_size = (uint64_t)st.st_size;
    size_t len = *file_size < LOADER_KERNEL_HEAD ? (size_t)*file_size : LOADER_KERNEL_HEAD;
    ld->img = malloc(len ? len : 1);
    if (!ld->img)
        return err_set(eb, -ENOMEM, "out of memory reading %s", path);
    int ret = loader_pread(ld->kernel_fd, ld->img, len, 0, "kernel", path, eb);
    if (ret)
        return ret;
    ld->len = len;
    if (len >= 4 && memcmp(ld->img, ELF_MAGIC, 4) == 0)
        return 0;
    if (*file_size > LOADER_MAX_KERNEL_SIZE)
        return err_set(eb, -EFBIG, "kernel %s is too large (more than %s)", path,
                       fmt_size(LOADER_MAX_KERNEL_SIZE, a, sizeof(a)));
    uint8_t *whole = realloc(ld->img, *file_size ? (size_t)*file_size : 1);
    if (!whole)
        return err_set(eb, -ENOMEM, "out of memory reading %s", path);
    ld->img = whole;
    ret = loader_pread(ld->kernel_fd, whole + len, *file_size - len, len, "kernel", path, eb);
    if (ret)
        return ret;
    ld->len = (size_t)*file_size;
    return 0;
}

/* Boots k, the vmlinux of bz's payload in elf[0, len), as the bzImage: 0 or -ENOEXEC. */
static int loader_adopt(struct loader *ld, const struct bzimage *bz, const uint8_t *elf, size_t len,
                        struct errbuf *eb)
{
    struct kernel_image k;
    char inner[sizeof(eb->msg)];

    int ret = vmlinux_parse(elf, len, len, &k, eb);
    if (!ret)
        ret = bzimage_adopt_vmlinux(bz, ld->img, &k, eb);
    if (ret) {
        snprintf(inner, sizeof(inner), "%s", eb->msg);
        return err_set(eb, ret, "its payload is not a vmlinux for it: %s", inner);
    }
    ld->kernel = k;
    return 0;
}

/*
 * The filler: a process of its own, at idle priority, that decompresses the
 * payload, checks it and stores it in the cache while (and after) this boot
 * runs the bzImage's own decompressor. It holds the entry's lock (kcache_lock)
 * from before its parent goes on until the entry is written, so a second
 * petrel does not fill it again and a test can wait for it; ready gets one
 * byte once it holds the lock (or gave up). A payload it cannot use is marked
 * bad with the reason, which the next boot says. It never returns.
 */
static void loader_filler(struct loader *ld, struct kcache *c, const struct bzimage *bz,
                          const struct kpayload *p, uint8_t key[KCACHE_KEY_LEN], bool have_key,
                          int ready)
{
    struct errbuf e = {{0}};
    struct sched_param sp = {0};
    struct kcache_entry entry;
    char file_lock_name[80];
    uint8_t *elf;
    size_t len;
    int file_lock = -1, lock = -1, ret = 0;

    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3 && null >= 0; fd++)
        dup2(null, fd);
    /* Nothing of the VM's (a console pipe a reader waits on to end) may stay open here. */
    for (int fd = 3; fd < 1024; fd++) {
        if (fd != c->dir_fd && fd != ready && fd != ld->kernel_fd)
            close(fd);
    }
    /* Without its key yet, the filler holds the bzImage file's lock until it is done. */
    if (!have_key) {
        kcache_file_lock_name(ld->kernel_fd, file_lock_name, sizeof(file_lock_name));
        file_lock = kcache_lock_name(c, file_lock_name);
    } else {
        lock = kcache_lock(c, key);
    }
    ssize_t n = write(ready, "x", 1);
    (void)n;
    close(ready);
    if (have_key ? lock < 0 : file_lock < 0)
        _exit(0);                           /* another petrel is filling it */
    sched_setscheduler(0, SCHED_IDLE, &sp); /* after the parent goes on: it waits for ready */
    if (!have_key) {
        kcache_key_of_file(c, ld->kernel_fd, ld->img, ld->len, KCACHE_RACY_NS, true, key);
        if (kcache_bad(c, key, e.msg, sizeof(e.msg)) || kcache_get(c, key, &entry, &e) == 0)
            goto out; /* known already: the key is remembered now */
        lock = kcache_lock(c, key);
        if (lock < 0)
            goto out;
    }
    ret = kpayload_decompress(p, KPAYLOAD_MAX_OUT, now_ns() + LOADER_DECOMPRESS_S * 1000000000ULL,
                              &elf, &len, &e);
    if (!ret)
        ret = loader_adopt(ld, bz, elf, len, &e);
    if (!ret)
        ret = kcache_store(c, key, elf, len, KCACHE_MAX_BYTES, &e);
    else if (ret != -ETIMEDOUT && ret != -ENOMEM) /* at idle priority: tried again next time */
        kcache_mark_bad(c, key, e.msg);
    kcache_unlock(c, key, lock);
out:
    if (file_lock >= 0)
        kcache_unlock_name(c, file_lock_name, file_lock);
    _exit(ret ? 1 : 0);
}

/*
 * Starts the filler (double-forked: nobody's child to reap) and waits until
 * it holds the entry's lock. Here petrel is still one thread, before KVM, the
 * loop or any device exists. 0, or -errno (the cache stays empty this time).
 */
static int loader_fill_later(struct loader *ld, struct kcache *c, const struct bzimage *bz,
                             const struct kpayload *p, uint8_t key[KCACHE_KEY_LEN], bool have_key)
{
    int pfd[2];
    char b;

    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int err = -errno;
        close(pfd[0]);
        close(pfd[1]);
        return err;
    }
    if (pid == 0) {
        close(pfd[0]);
        if (fork() == 0)
            loader_filler(ld, c, bz, p, key, have_key, pfd[1]);
        _exit(0);
    }
    close(pfd[1]);
    waitpid(pid, NULL, 0);
    ssize_t n = read(pfd[0], &b, 1); /* EOF: the filler did not start */
    close(pfd[0]);
    return n == 1 ? 0 : -ECHILD;
}

/*
 * A bzImage's payload instead of its decompressor (LOADER_ENTRY_AUTO): the
 * cache's entry when there is one. On a miss this boot runs the bzImage's own
 * decompressor as before, and a filler process decompresses the payload into
 * the cache at idle priority for the boots to come: docs/architecture.md has
 * the measurements that chose this over decompressing first. Never fails:
 * what cannot be done leaves the bzImage as it is, with a note.
 */
static void loader_payload(struct loader *ld, const struct loader_opts *opts)
{
    struct errbuf e = {{0}};
    struct bzimage bz;
    struct kpayload p;
    struct kcache c = {.dir_fd = -1};
    char path[sizeof(c.path)], why[400];
    const uint8_t *payload;
    size_t plen;
    uint8_t key[KCACHE_KEY_LEN];
    const char *fallback = "booting the bzImage's own decompressor";

    /* A bzImage without a payload (a guest-kit program) has nothing to decompress. */
    if (bzimage_parse(ld->img, ld->len, &bz, &e) ||
        bzimage_payload(&bz, ld->img, &payload, &plen, &e))
        return;
    if (kpayload_identify(payload, plen, &p, &e))
        goto note;
    if (opts->cache_path)
        snprintf(path, sizeof(path), "%s", opts->cache_path);
    else if (kcache_default_path(path, sizeof(path), &e))
        goto note;
    if (kcache_open(&c, path, true, &e)) {
        fallback = "booting the bzImage's own decompressor (the kernel cache cannot be used)";
        goto note;
    }
    /* The key when it is remembered (or the file is too new to be): hashing is the filler's. */
    uint64_t t = now_ns();
    enum kcache_keyed keyed =
        kcache_key_of_file(&c, ld->kernel_fd, ld->img, ld->len, KCACHE_RACY_NS, false, key);
    ld->ns_key = now_ns() - t;
    int ret = -ENOENT;
    if (keyed == KCACHE_KEY_UNKNOWN)
        goto fill;
    if (kcache_bad(&c, key, why, sizeof(why))) {
        err_set(&e, -ENOEXEC, "%s", why);
        goto note;
    }
    t = now_ns();
    ret = kcache_get(&c, key, &ld->cached, &e);
    ld->ns_cache = now_ns() - t;
    if (!ret) {
        if (!loader_adopt(ld, &bz, ld->cached.elf, ld->cached.len, &e)) {
            ld->via = "the bzImage's payload, from the kernel cache";
            goto out;
        }
        kcache_put_entry(&ld->cached); /* verified, yet no vmlinux: the parse rules changed */
        goto note;
    }
    if (ret != -ENOENT && ret != -EBADMSG)
        goto note;
    if (ret == -EBADMSG)
        snprintf(ld->note, sizeof(ld->note), "%.400s; decompressing it again in the background",
                 e.msg);
fill:
    t = now_ns();
    ret = loader_fill_later(ld, &c, &bz, &p, key, keyed != KCACHE_KEY_UNKNOWN);
    ld->ns_filler = now_ns() - t;
    if (ret)
        snprintf(ld->note, sizeof(ld->note),
                 "cannot start decompressing its payload into the kernel cache: %s",
                 strerror(-ret));
    else
        ld->via = "bzImage; its payload is being decompressed into the kernel cache in the "
                  "background";
    goto out;
note:
    snprintf(ld->note, sizeof(ld->note), "%.400s: %s", e.msg, fallback);
out:
    kcache_close(&c);
}

int loader_open(struct loader *ld, const char *kernel_path, const char *initrd_path,
                const struct loader_opts *opts, struct errbuf *eb)
{
    struct stat st;

    *ld = (struct loader){
        .kernel_path = kernel_path, .initrd_path = initrd_path, .kernel_fd = -1, .initrd_fd = -1};
    uint64_t file_size = 0;
    int ret = loader_read_kernel(ld, &file_size, eb);
    if (ret)
        return ret;
    ret = kernel_parse(ld->img, ld->len, file_size, &ld->kernel, eb);
    if (ret) {
        char inner[sizeof(eb->msg)];
        snprintf(inner, sizeof(inner), "%s", eb->msg);
        return err_set(eb, ret, "kernel %s: %s", kernel_path, inner);
    }
    ld->via = ld->kernel.format;
    if (ld->kernel.hdr_len && opts->entry == LOADER_ENTRY_AUTO)
        loader_payload(ld, opts);
    if (!initrd_path)
        return 0;
    ld->initrd_fd = open(initrd_path, O_RDONLY | O_CLOEXEC);
    if (ld->initrd_fd < 0)
        return err_set(eb, -errno, "cannot open initrd %s: %s", initrd_path, strerror(errno));
    if (fstat(ld->initrd_fd, &st) < 0 || !S_ISREG(st.st_mode))
        return err_set(eb, -EINVAL, "initrd %s is not a regular file", initrd_path);
    ld->initrd_size = (uint64_t)st.st_size;
    return 0;
}

void loader_close(struct loader *ld)
{
    kcache_put_entry(&ld->cached);
    free(ld->img);
    ld->img = NULL;
    if (ld->kernel_fd >= 0)
        close(ld->kernel_fd);
    ld->kernel_fd = -1;
    if (ld->initrd_fd >= 0)
        close(ld->initrd_fd);
    ld->initrd_fd = -1;
}

int loader_load(struct loader *ld, struct guest_mem *mem, const char *cmdline, struct errbuf *eb)
{
    struct boot_load bl = {.cmdline = cmdline, .initrd_size = ld->initrd_size};

    int ret = x86_boot_place_initrd(mem, &ld->kernel, &bl, eb);
    if (ret)
        return ret;
    ret = x86_boot_load(mem, &ld->kernel, &bl, eb);
    if (ret)
        return ret;
    /* A vmlinux's segments, from the file straight into guest memory (the parser checked them). */
    for (unsigned i = 0; i < ld->kernel.nr_seg; i++) {
        const struct kernel_segment *s = &ld->kernel.seg[i];
        if (s->data)
            continue;
        ret = loader_pread(ld->kernel_fd, gm_ptr(mem, s->gpa, s->filesz), s->filesz, s->offset,
                           "kernel", ld->kernel_path, eb);
        if (ret)
            return ret;
    }
    if (ld->initrd_fd >= 0) {
        uint8_t *dst = gm_ptr(mem, bl.initrd_gpa, bl.initrd_size);
        if (!dst)
            return err_set(eb, -ENOSPC, "the initrd does not fit in guest memory");
        ret = loader_pread(ld->initrd_fd, dst, bl.initrd_size, 0, "initrd", ld->initrd_path, eb);
        if (ret)
            return ret;
    }
    return 0;
}
