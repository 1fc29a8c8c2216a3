/*
 * Snapshot state files: the configuration round trips; truncated, corrupt,
 * foreign and hostile files are refused with one clear message; a write is
 * all or nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <libfdt.h>

#include "petrel/snapshot.h"

static char dir[] = "/tmp/petrel-test-snapshot-XXXXXX";

static const struct vm_config sample = {
    .kernel_path = "/boot/vmlinuz",
    .cpus = 2,
    .memory = 512 * MiB,
    .rng = true,
    .console_virtio = true,
    .drives = {{.path = "/srv/a.img"}, {.path = "/srv/b,c.img", .id = "serial-b", .ro = true}},
    .nr_drives = 2,
    .nets = {{.text = "user,mac=52:54:00:00:00:07"}, {.text = "user,hostfwd=tcp::2222-:22"}},
    .nr_nets = 2,
};

static void fill_config(struct state_out *out, void *ctx)
{
    snapshot_config_put(ctx, "/snaps/web1/mem", out);
}

/* Writes a state file of the sample configuration at path; returns its tree (malloc()ed). */
static void *write_sample(const char *path, size_t *len)
{
    struct errbuf eb = {0};
    void *buf;
    assert_int_equal(snapshot_build(fill_config, (void *)&sample, &buf, len, &eb), 0);
    assert_int_equal(snapshot_write_file(path, buf, *len, &eb), 0);
    return buf;
}

static void test_config_round_trip(void **unused)
{
    (void)unused;
    char path[256];
    size_t len;
    struct errbuf eb = {0};
    snprintf(path, sizeof(path), "%s/state", dir);
    free(write_sample(path, &len));

    void *fdt;
    assert_int_equal(snapshot_read(dir, &fdt, &eb), 0); /* a directory means DIR/state */
    struct state_in root = {.fdt = fdt, .eb = &eb};
    struct vm_config cfg = {0};
    const char *mem;
    assert_int_equal(snapshot_config_take(&root, &cfg, &mem), 0);
    assert_string_equal(mem, "/snaps/web1/mem");
    assert_int_equal(cfg.cpus, 2);
    assert_true(cfg.memory == 512 * MiB);
    assert_true(cfg.rng && cfg.console_virtio && !cfg.debug_exit);
    assert_string_equal(cfg.kernel_path, "/boot/vmlinuz");
    assert_int_equal(cfg.nr_drives, 2);
    assert_string_equal(cfg.drives[0].path, "/srv/a.img");
    assert_null(cfg.drives[0].id);
    assert_false(cfg.drives[0].ro);
    assert_string_equal(cfg.drives[1].path, "/srv/b,c.img");
    assert_string_equal(cfg.drives[1].id, "serial-b");
    assert_true(cfg.drives[1].ro);
    /* The NICs' --net, parsed again (after the drives' subnodes: properties come first). */
    assert_int_equal(cfg.nr_nets, 2);
    assert_string_equal(cfg.nets[0].text, "user,mac=52:54:00:00:00:07");
    assert_true(cfg.nets[0].mac_given && cfg.nets[0].mac[5] == 7);
    assert_int_equal(cfg.nets[1].nr_fwd, 1);
    assert_int_equal(cfg.nets[1].fwd[0].host_port, 2222);
    free(fdt);
    unlink(path);
}

/* Reads path and expects -err with words in the message. */
static void expect_refused(const char *path, int err, const char *words)
{
    struct errbuf eb = {0};
    void *fdt = NULL;
    assert_int_equal(snapshot_read(path, &fdt, &eb), err);
    assert_null(fdt);
    if (!strstr(eb.msg, words))
        fail_msg("message \"%s\" lacks \"%s\"", eb.msg, words);
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static void test_bad_files_refused(void **unused)
{
    (void)unused;
    char path[256], bad[256];
    size_t len;
    snprintf(path, sizeof(path), "%s/good", dir);
    snprintf(bad, sizeof(bad), "%s/bad", dir);
    uint8_t *good = write_sample(path, &len);

    expect_refused("/nonexistent/state", -ENOENT, "cannot open the state file");
    write_bytes(bad, "hello", 5);
    expect_refused(bad, -EINVAL, "is not a petrel state file (5 bytes)");
    /* Truncated anywhere: the header's size no longer matches. */
    for (size_t cut = sizeof(struct fdt_header); cut < len; cut += 37) {
        write_bytes(bad, good, cut);
        expect_refused(bad, -EINVAL, "truncated or corrupt");
    }
    /* Bytes after the tree: a file that is more than the tree it claims is not one. */
    uint8_t *copy = malloc(len + 64);
    assert_non_null(copy);
    memcpy(copy, good, len);
    memset(copy + len, 0x5a, 64);
    write_bytes(bad, copy, len + 64);
    expect_refused(bad, -EINVAL, "64 bytes after its tree");
    /* A corrupt structure block. */
    memcpy(copy, good, len);
    memset(copy + fdt_off_dt_struct(copy) + 8, 0xee, 16);
    write_bytes(bad, copy, len);
    expect_refused(bad, -EINVAL, "truncated or corrupt");
    /* Another format's tree. */
    memcpy(copy, good, len);
    assert_int_equal(fdt_setprop_inplace(copy, 0, "compatible", "petrel,snapshot-v9",
                                         sizeof("petrel,snapshot-v9")),
                     0);
    write_bytes(bad, copy, len);
    expect_refused(bad, -EPROTO, "another format (petrel,snapshot-v9)");
    free(copy);
    free(good);
    unlink(bad);
    unlink(path);
}

/* Rewrites one u32 of the sample's config node and expects the take to refuse it. */
static void expect_config_refused(const char *node, const char *prop, uint32_t value,
                                  const char *words)
{
    struct errbuf eb = {0};
    void *buf;
    size_t len;
    assert_int_equal(snapshot_build(fill_config, (void *)&sample, &buf, &len, &eb), 0);
    int off = fdt_path_offset(buf, node);
    assert_true(off >= 0);
    assert_int_equal(fdt_setprop_inplace_u32(buf, off, prop, value), 0);
    struct state_in root = {.fdt = buf, .eb = &eb};
    struct vm_config cfg = {0};
    const char *mem;
    assert_int_not_equal(snapshot_config_take(&root, &cfg, &mem), 0);
    if (!strstr(eb.msg, words))
        fail_msg("message \"%s\" lacks \"%s\"", eb.msg, words);
    free(buf);
}

static void test_hostile_config_refused(void **unused)
{
    (void)unused;
    expect_config_refused("/config", "cpus", 0, "cpus 0 is out of range");
    expect_config_refused("/config", "drives", 17, "17 drives, more than 16");
    expect_config_refused("/config", "drives", 3, "no subnode 'drive2'");
    expect_config_refused("/config", "rng", 2, "'rng' is 0x2, more than 0x1");
    /* A string property that is not NUL-terminated. */
    struct errbuf eb = {0};
    void *buf;
    size_t len;
    assert_int_equal(snapshot_build(fill_config, (void *)&sample, &buf, &len, &eb), 0);
    int off = fdt_path_offset(buf, "/config/drive0");
    assert_int_equal(fdt_setprop_inplace(buf, off, "path", "/srv/a.imgX", 11), 0);
    struct state_in root = {.fdt = buf, .eb = &eb};
    struct vm_config cfg = {0};
    const char *mem;
    assert_int_equal(snapshot_config_take(&root, &cfg, &mem), -EINVAL);
    assert_non_null(strstr(eb.msg, "property 'path' is not a string"));
    free(buf);
}

/* A write that fails says so and leaves no file; one that succeeds replaces the old one. */
static void test_write_file(void **unused)
{
    (void)unused;
    char path[256];
    struct errbuf eb = {0};
    snprintf(path, sizeof(path), "%s/no-such-dir/state", dir);
    assert_int_equal(snapshot_write_file(path, "x", 1, &eb), -ENOENT);
    assert_non_null(strstr(eb.msg, "cannot create"));

    snprintf(path, sizeof(path), "%s/state", dir);
    write_bytes(path, "old content", 11);
    assert_int_equal(snapshot_write_file(path, "newer", 5, &eb), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 5);
    unlink(path);
}

/* A device that cannot be saved now, as virtio-blk with a request in flight. */
static void fill_refused(struct state_out *out, void *ctx)
{
    (void)ctx;
    state_begin(out, "devices", "petrel,devices-v1");
    state_begin(out, "vda", "petrel,virtio-blk-v1");
    state_refuse(out, -EBUSY, "virtio-blk /srv/a.img: 1 requests are in flight");
    state_end(out);
    state_end(out);
}

/* A device's refusal reaches the caller in its own words, not as a bare errno. */
static void test_build_refused(void **unused)
{
    (void)unused;
    struct errbuf eb = {0};
    void *buf = NULL;
    size_t len;
    assert_int_equal(snapshot_build(fill_refused, NULL, &buf, &len, &eb), -EBUSY);
    assert_null(buf);
    assert_string_equal(eb.msg, "virtio-blk /srv/a.img: 1 requests are in flight");
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_round_trip),      cmocka_unit_test(test_bad_files_refused),
        cmocka_unit_test(test_hostile_config_refused), cmocka_unit_test(test_write_file),
        cmocka_unit_test(test_build_refused),
    };
    int ret = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return ret;
}
