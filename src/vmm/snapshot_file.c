/* Snapshot state files: the configuration node, building, atomic writing and checked reading. */
#include "petrel/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfdt.h>

void snapshot_config_put(const struct vm_config *cfg, const char *mem_path, struct state_out *out)
{
    state_begin(out, "config", "petrel,config-v1");
    state_put_string(out, "mem-file", mem_path);
    state_put_u32(out, "cpus", cfg->cpus);
    state_put_u64(out, "memory", cfg->memory);
    /* What it booted, for the reader: a restore does not load a kernel again. */
    state_put_string(out, "kernel", cfg->kernel_path ? cfg->kernel_path : "");
    state_put_bool(out, "console-virtio", cfg->console_virtio);
    state_put_bool(out, "rng", cfg->rng);
    if (cfg->testdev) /* absent in snapshots without it, as before it existed */
        state_put_bool(out, "testdev", true);
    state_put_bool(out, "debug-exit", cfg->debug_exit);
    state_put_u32(out, "drives", cfg->nr_drives);
    /* Properties before subnodes (the flattened tree's order): a reader stops at the first. */
    if (cfg->nr_nets)
        state_put_u32(out, "nets", cfg->nr_nets);
    for (unsigned i = 0; i < cfg->nr_drives; i++) {
        char name[16];
        snprintf(name, sizeof(name), "drive%u", i);
        /* Absolute: a restore may run from another directory. */
        char abs[PATH_MAX];
        const char *path = realpath(cfg->drives[i].path, abs) ? abs : cfg->drives[i].path;
        state_begin(out, name, "petrel,drive-v1");
        state_put_string(out, "path", path);
        state_put_bool(out, "ro", cfg->drives[i].ro);
        if (cfg->drives[i].id)
            state_put_string(out, "id", cfg->drives[i].id);
        state_end(out);
    }
    if (cfg->nr_nets) {
        for (unsigned i = 0; i < cfg->nr_nets; i++) {
            char name[16];
            snprintf(name, sizeof(name), "net%u", i);
            state_begin(out, name, "petrel,net-v1");
            state_put_string(out, "spec", cfg->nets[i].text);
            state_end(out);
        }
    }
    state_end(out);
}

/* A NUL-terminated string property, or NULL with the failure recorded (optional: no failure). */
static const char *get_string(struct state_in *in, const char *name, bool optional)
{
    if (in->err)
        return NULL;
    int len;
    const char *s = fdt_getprop(in->fdt, in->node, name, &len);
    if (!s && optional)
        return NULL;
    if (!s || len < 1 || s[len - 1] != '\0' || strlen(s) + 1 != (size_t)len) {
        state_invalid(in, "property '%s' is not a string", name);
        return NULL;
    }
    return s;
}

int snapshot_config_take(struct state_in *root, struct vm_config *cfg, const char **mem_path)
{
    struct state_in in;
    if (state_open(root, "config", "petrel,config-v1", &in))
        return in.err;
    uint32_t cpus, drives;
    *mem_path = get_string(&in, "mem-file", false);
    state_get_u32(&in, "cpus", &cpus);
    state_get_u64(&in, "memory", &cfg->memory);
    cfg->kernel_path = get_string(&in, "kernel", false);
    state_get_bool(&in, "console-virtio", &cfg->console_virtio);
    state_get_bool(&in, "rng", &cfg->rng);
    cfg->testdev = fdt_getprop(in.fdt, in.node, "testdev", NULL) != NULL;
    if (cfg->testdev)
        state_get_bool(&in, "testdev", &cfg->testdev);
    state_get_bool(&in, "debug-exit", &cfg->debug_exit);
    state_get_u32(&in, "drives", &drives);
    if (in.err)
        return in.err;
    if (cpus < 1 || cpus > 1024)
        return state_invalid(&in, "cpus %u is out of range", cpus);
    if (cfg->memory < VM_MIN_MEMORY || cfg->memory % (4 * KiB))
        return state_invalid(&in, "memory %llu is not a size petrel gives a guest",
                             (unsigned long long)cfg->memory);
    if (drives > VIRTIO_BLK_MAX_DRIVES)
        return state_invalid(&in, "%u drives, more than %u", drives, VIRTIO_BLK_MAX_DRIVES);
    cfg->cpus = cpus;
    cfg->nr_drives = drives;
    for (unsigned i = 0; i < drives; i++) {
        char name[16];
        struct state_in d;
        snprintf(name, sizeof(name), "drive%u", i);
        if (state_open(&in, name, "petrel,drive-v1", &d))
            return d.err;
        cfg->drives[i].path = get_string(&d, "path", false);
        cfg->drives[i].id = get_string(&d, "id", true);
        state_get_bool(&d, "ro", &cfg->drives[i].ro);
        if (d.err)
            return d.err;
    }
    /* Optional: a state from before --net has none. The backend starts afresh from the spec. */
    uint32_t nets = 0;
    if (fdt_getprop(in.fdt, in.node, "nets", NULL))
        state_get_u32(&in, "nets", &nets);
    if (in.err)
        return in.err;
    if (nets > NET_MAX_NICS)
        return state_invalid(&in, "%u NICs, more than %u", nets, NET_MAX_NICS);
    cfg->nr_nets = nets;
    for (unsigned i = 0; i < nets; i++) {
        char name[16];
        struct state_in d;
        struct errbuf why = {{0}};
        snprintf(name, sizeof(name), "net%u", i);
        if (state_open(&in, name, "petrel,net-v1", &d))
            return d.err;
        const char *spec = get_string(&d, "spec", false);
        if (d.err)
            return d.err;
        if (net_spec_parse(spec, &cfg->nets[i], &why))
            return state_invalid(&d, "property 'spec': %s", why.msg);
    }
    return 0;
}

int snapshot_build(void (*fill)(struct state_out *out, void *ctx), void *ctx, void **buf,
                   size_t *len, struct errbuf *eb)
{
    for (size_t size = 64 * KiB; size <= SNAPSHOT_MAX_STATE; size *= 2) {
        void *fdt = malloc(size);
        if (!fdt)
            return err_set(eb, -ENOMEM, "out of memory for the state file");
        struct errbuf why = {{0}}; /* a device's refusal (state_refuse()), in its words */
        struct state_out out = {.fdt = fdt, .eb = &why};
        if (fdt_create(fdt, (int)size) < 0 || fdt_finish_reservemap(fdt) < 0 ||
            fdt_begin_node(fdt, "") < 0)
            out.err = -ENOSPC;
        state_put_string(&out, "compatible", SNAPSHOT_COMPATIBLE);
        fill(&out, ctx);
        if (!out.err && (fdt_end_node(fdt) < 0 || fdt_finish(fdt) < 0))
            out.err = -ENOSPC;
        if (!out.err) {
            *buf = fdt;
            *len = fdt_totalsize(fdt);
            return 0;
        }
        free(fdt);
        if (out.err != -ENOSPC && why.msg[0]) {
            if (eb)
                *eb = why;
            return out.err;
        }
        if (out.err != -ENOSPC)
            return err_set(eb, out.err, "cannot write the state: %s", strerror(-out.err));
    }
    return err_set(eb, -EFBIG, "the state is larger than %llu bytes",
                   (unsigned long long)SNAPSHOT_MAX_STATE);
}

/* fsyncs the directory path is in, so a rename into it is durable. */
static int sync_parent(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int ret = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return ret;
}

int snapshot_write_file(const char *path, const void *buf, size_t len, struct errbuf *eb)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(eb, -errno, "cannot create %s: %s", path, strerror(errno));
    int ret = write_all(fd, buf, len);
    if (!ret && fsync(fd) < 0)
        ret = -errno;
    if (close(fd) < 0 && !ret)
        ret = -errno;
    if (ret) {
        unlink(path);
        return err_set(eb, ret, "cannot write %s: %s", path, strerror(-ret));
    }
    return 0;
}

int snapshot_sync_dir(const char *path, struct errbuf *eb)
{
    int ret = sync_parent(path);
    if (ret)
        return err_set(eb, ret, "cannot sync the directory of %s: %s", path, strerror(-ret));
    return 0;
}

int snapshot_check(const void *buf, size_t len, const char *name, struct errbuf *eb)
{
    if (len < sizeof(struct fdt_header) || len > SNAPSHOT_MAX_STATE)
        return err_set(eb, -EINVAL, "%s is not a petrel state file (%zu bytes)", name, len);
    if (fdt_magic(buf) != FDT_MAGIC || fdt_check_full(buf, len) != 0)
        return err_set(eb, -EINVAL, "%s is not a petrel state file, or it is truncated or corrupt",
                       name);
    if (fdt_totalsize(buf) != len)
        return err_set(eb, -EINVAL, "%s is not a petrel state file: %zu bytes after its tree", name,
                       len - fdt_totalsize(buf));
    if (fdt_node_check_compatible(buf, 0, SNAPSHOT_COMPATIBLE) != 0) {
        const char *have = fdt_getprop(buf, 0, "compatible", NULL);
        return err_set(eb, -EPROTO, "%s is a state file of another format (%s), not %s", name,
                       have ? have : "none", SNAPSHOT_COMPATIBLE);
    }
    return 0;
}

int snapshot_read(const char *path, void **buf, struct errbuf *eb)
{
    char file[PATH_MAX];
    struct stat st;

    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(file, sizeof(file), "%s/state", path);
    else
        snprintf(file, sizeof(file), "%s", path);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(eb, -errno, "cannot open the state file %s: %s", file, strerror(errno));
    int ret = 0;
    uint8_t *fdt = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ret = err_set(eb, -EINVAL, "the state file %s is not a regular file", file);
        goto out;
    }
    if (st.st_size < (off_t)sizeof(struct fdt_header) || st.st_size > (off_t)SNAPSHOT_MAX_STATE) {
        ret = err_set(eb, -EINVAL, "%s is not a petrel state file (%lld bytes)", file,
                      (long long)st.st_size);
        goto out;
    }
    fdt = malloc((size_t)st.st_size);
    if (!fdt) {
        ret = err_set(eb, -ENOMEM, "out of memory reading %s", file);
        goto out;
    }
    ssize_t n = pread(fd, fdt, (size_t)st.st_size, 0);
    if (n != st.st_size) {
        ret = err_set(eb, n < 0 ? -errno : -EIO, "cannot read %s: %s", file,
                      n < 0 ? strerror(errno) : "it shrank while reading");
        goto out;
    }
    ret = snapshot_check(fdt, (size_t)st.st_size, file, eb);
    if (ret)
        goto out;
    *buf = fdt;
    fdt = NULL;
out:
    free(fdt);
    close(fd);
    return ret;
}
