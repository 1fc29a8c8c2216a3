/*
 * virtio-blk driven as a driver drives it: the transport's registers through
 * a real PCI and MMIO bus, requests built in fake guest RAM, a temporary file
 * as the disk, the real worker pool (and the synchronous backend, and a gated
 * test backend for reset races). Completions are waited for with
 * virtio_blk_drain() (a condition variable), never by sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>

#include "petrel/virtio_blk.h"
#include "fake_state.h"
#include "fake_virtio_driver.h"

#define RAM_SIZE     (8 * MiB)
#define DESC_GPA     0x10000
#define AVAIL_GPA    0x11000
#define USED_GPA     0x12000
#define HDR_GPA      0x20000 /* slot i: + 32 i (header, then discard ranges) */
#define RANGES_GPA   0x28000 /* slot i: + 0x200 i */
#define STATUS_GPA   0x60000 /* slot i: + i */
#define IND_GPA      0x70000 /* slot i: an indirect table at + 256 i */
#define DATA_GPA     0x100000
#define DATA_SLOT    (64 * KiB) /* slot i's data at DATA_GPA + 64 KiB i, slots < 64 */
#define QSIZE        VIRTIO_BLK_QUEUE_SIZE
#define DISK_SECTORS 2048ULL /* 1 MiB */
#define SENTINEL     0xee    /* a status byte the device has not written */

struct rig {
    struct fake_virtio_host h;
    struct virtio_blk blk;
    char path[64];
    int fd; /* the test's own view of the disk file */
    uint16_t avail, next_desc;
    unsigned warnings;
    /*
     * The gated backend: requests held until the test lets them go. With
     * in_syscall, held requests count as inside their syscalls (a hung disk):
     * a quiesce must wait for them (quiescing until they are let go).
     */
    struct blk_req *held[QSIZE];
    unsigned nr_held;
    bool in_syscall, quiescing;
};

struct seg {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

static void count_warning(void *ctx, const char *msg)
{
    (void)msg;
    ((struct rig *)ctx)->warnings++;
}

/* ---- a gated test backend ---- */

static struct rig *io_rig(struct blk_io *io)
{
    struct virtio_blk *blk = container_of(io, struct virtio_blk, io);
    return container_of(blk, struct rig, blk);
}

static int gated_start(struct blk_io *io)
{
    (void)io;
    return 0;
}

static void gated_submit(struct blk_io *io, struct blk_req *req)
{
    struct rig *r = io_rig(io);
    r->held[r->nr_held++] = req;
}

/* Held requests are past their syscalls (quiesce has nothing to wait for), or inside them. */
static int gated_quiesce(struct blk_io *io)
{
    struct rig *r = io_rig(io);
    if (!r->in_syscall || !r->nr_held)
        return 0;
    r->quiescing = true;
    return -EINPROGRESS;
}

/*
 * Lets the held requests go: each runs and completes as a worker would (no
 * lock held); a pending quiesce ends when the last has left its syscall.
 */
static void gated_release(struct rig *r)
{
    uint8_t st[QSIZE];
    unsigned n = r->nr_held;

    for (unsigned i = 0; i < n; i++)
        st[i] = blk_io_execute(&r->blk.io, r->held[i]);
    if (r->quiescing) {
        r->quiescing = false;
        r->blk.io.quiesced(&r->blk.io);
    }
    r->nr_held = 0;
    for (unsigned i = 0; i < n; i++)
        r->blk.io.complete(&r->blk.io, r->held[i], st[i], false);
}

static void gated_stop(struct blk_io *io)
{
    gated_release(io_rig(io));
}

static const struct blk_io_ops gated_io = {
    .name = "gated",
    .start = gated_start,
    .submit = gated_submit,
    .quiesce = gated_quiesce,
    .stop = gated_stop,
};

/* ---- the rig ---- */

static uint64_t bar_rd(struct rig *r, uint64_t off, unsigned size)
{
    uint64_t x = 0;
    assert_int_equal(fake_virtio_bar(&r->h.mmio, &r->blk.vdev, off, &x, size, false), 0);
    return x;
}

static void bar_wr(struct rig *r, uint64_t off, uint64_t val, unsigned size)
{
    assert_int_equal(fake_virtio_bar(&r->h.mmio, &r->blk.vdev, off, &val, size, true), 0);
}

/* The driver's start: every offered feature, queue 0 on vector 0, MSI-X on, DRIVER_OK. */
static void driver_start(struct rig *r)
{
    struct virtio_dev *v = &r->blk.vdev;
    memset(r->h.ram + DESC_GPA, 0, 0x3000);
    r->avail = r->next_desc = 0;
    fake_virtio_negotiate(&r->h.mmio, v, fake_virtio_device_features(&r->h.mmio, v));
    assert_true(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    fake_virtio_setup_queue(&r->h.mmio, v, 0, QSIZE, 0, DESC_GPA, AVAIL_GPA, USED_GPA);
    fake_virtio_msix_enable(v);
    fake_virtio_msix_unmask(&r->h.mmio, v, 0);
    fake_virtio_driver_ok(&r->h.mmio, v);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
}

/*
 * A rig around a fresh (sparse) disk file of disk bytes and ram bytes of guest
 * RAM; spec_extra is appended to path=FILE.
 */
static struct rig *rig_new_sized(const char *spec_extra, const struct blk_io_ops *io, uint64_t disk,
                                 size_t ram)
{
    struct rig *r = calloc(1, sizeof(*r));
    char arg[128];
    struct virtio_blk_spec spec;
    struct errbuf eb = {{0}};

    assert_non_null(r);
    assert_int_equal(fake_virtio_host_init(&r->h, ram), 0);
    r->h.pci.warn = count_warning;
    r->h.pci.warn_ctx = r;
    snprintf(r->path, sizeof(r->path), "/tmp/petrel-blk-test-XXXXXX");
    r->fd = mkstemp(r->path);
    assert_true(r->fd >= 0);
    assert_int_equal(ftruncate(r->fd, (off_t)disk), 0);
    snprintf(arg, sizeof(arg), "path=%s%s", r->path, spec_extra);
    assert_int_equal(virtio_blk_spec_parse(arg, &spec, &eb), 0);
    assert_int_equal(virtio_blk_open(&r->blk, &spec, &eb), 0);
    assert_int_equal(virtio_blk_init(&r->blk, io, &r->h.sys, &eb), 0);
    assert_int_equal(virtio_pci_add(&r->blk.vdev, &r->h.pci), 0);
    driver_start(r);
    return r;
}

/* A rig around a fresh 1 MiB disk file and 8 MiB of RAM. */
static struct rig *rig_new(const char *spec_extra, const struct blk_io_ops *io)
{
    return rig_new_sized(spec_extra, io, DISK_SECTORS * 512, RAM_SIZE);
}

static void rig_free(struct rig *r)
{
    virtio_blk_destroy(&r->blk);
    fake_virtio_host_destroy(&r->h);
    close(r->fd);
    unlink(r->path);
    free(r);
}

static int setup(void **state)
{
    *state = rig_new("", NULL);
    return 0;
}

static int setup_ro(void **state)
{
    *state = rig_new(",ro,id=disk-ro", NULL);
    return 0;
}

static int setup_sync(void **state)
{
    *state = rig_new(",id=01234567890123456789", &blk_io_sync);
    return 0;
}

static int setup_gated(void **state)
{
    *state = rig_new("", &gated_io);
    return 0;
}

static int setup_gated_busy(void **state)
{
    struct rig *r = rig_new("", &gated_io);
    r->in_syscall = true;
    *state = r;
    return 0;
}

/* 4 GiB + 32 MiB of disk and 64 MiB of RAM: room for a read longer than 4 GiB. */
static int setup_big(void **state)
{
    *state = rig_new_sized("", &gated_io, 4 * GiB + 32 * MiB, 64 * MiB);
    return 0;
}

static int teardown(void **state)
{
    rig_free(*state);
    return 0;
}

/* ---- building requests ---- */

static uint8_t *ram(struct rig *r, uint64_t gpa)
{
    return r->h.ram + gpa;
}

static struct virtq_used *used(struct rig *r)
{
    return (struct virtq_used *)ram(r, USED_GPA);
}

static uint16_t used_idx(struct rig *r)
{
    return __atomic_load_n(&used(r)->idx, __ATOMIC_ACQUIRE);
}

static void put_desc(uint8_t *table, unsigned i, const struct seg *s, int next)
{
    struct virtq_desc d = {
        .addr = s->gpa,
        .len = s->len,
        .flags =
            (uint16_t)((s->write ? VIRTQ_DESC_F_WRITE : 0) | (next >= 0 ? VIRTQ_DESC_F_NEXT : 0)),
        .next = (uint16_t)(next >= 0 ? next : 0),
    };
    memcpy(table + 16 * i, &d, sizeof(d));
}

/*
 * Makes segs[0, n) a chain and publishes it (no kick); with indirect, through
 * slot's indirect table (one ring descriptor). Returns the head.
 */
static uint16_t add_chain(struct rig *r, unsigned slot, const struct seg *segs, unsigned n,
                          bool indirect)
{
    uint16_t head = r->next_desc;
    if (indirect) {
        for (unsigned i = 0; i < n; i++)
            put_desc(ram(r, IND_GPA + 256 * slot), i, &segs[i], i + 1 < n ? (int)i + 1 : -1);
        struct virtq_desc d = {
            .addr = IND_GPA + 256 * slot, .len = 16 * n, .flags = VIRTQ_DESC_F_INDIRECT};
        memcpy(ram(r, DESC_GPA + 16 * head), &d, sizeof(d));
        r->next_desc = (r->next_desc + 1) % QSIZE;
    } else {
        for (unsigned i = 0; i < n; i++) {
            uint16_t d = r->next_desc;
            r->next_desc = (r->next_desc + 1) % QSIZE;
            put_desc(ram(r, DESC_GPA), d, &segs[i], i + 1 < n ? r->next_desc : -1);
        }
    }
    struct virtq_avail *av = (struct virtq_avail *)ram(r, AVAIL_GPA);
    av->ring[r->avail % QSIZE] = head;
    r->avail++;
    __atomic_store_n(&av->idx, r->avail, __ATOMIC_RELEASE);
    return head;
}

static void put_hdr(struct rig *r, unsigned slot, uint32_t type, uint64_t sector)
{
    uint8_t *h = ram(r, HDR_GPA + 32 * slot);
    memset(h, 0, VIRTIO_BLK_HDR_SIZE);
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
}

static uint64_t data_gpa(unsigned slot)
{
    return DATA_GPA + DATA_SLOT * slot;
}

static uint8_t status_of(struct rig *r, unsigned slot)
{
    return *ram(r, STATUS_GPA + slot);
}

/*
 * The usual request: header, data of len bytes (device-writable if data_w;
 * none if len is 0), status. Returns the head.
 */
static uint16_t add_req(struct rig *r, unsigned slot, uint32_t type, uint64_t sector, uint32_t len,
                        bool data_w)
{
    struct seg s[3];
    unsigned n = 0;
    put_hdr(r, slot, type, sector);
    *ram(r, STATUS_GPA + slot) = SENTINEL;
    s[n++] = (struct seg){HDR_GPA + 32 * slot, VIRTIO_BLK_HDR_SIZE, false};
    if (len)
        s[n++] = (struct seg){data_gpa(slot), len, data_w};
    s[n++] = (struct seg){STATUS_GPA + slot, 1, true};
    return add_chain(r, slot, s, n, false);
}

/* A discard or write-zeroes request with nr ranges {sector, nsec, flags}. */
static uint16_t add_dwz(struct rig *r, unsigned slot, uint32_t type, const uint64_t (*rg)[3],
                        unsigned nr)
{
    uint8_t *p = ram(r, RANGES_GPA + 0x200 * slot);
    for (unsigned i = 0; i < nr; i++) {
        uint32_t nsec = (uint32_t)rg[i][1], flags = (uint32_t)rg[i][2];
        memcpy(p + 16 * i, &rg[i][0], 8);
        memcpy(p + 16 * i + 8, &nsec, 4);
        memcpy(p + 16 * i + 12, &flags, 4);
    }
    put_hdr(r, slot, type, 0);
    *ram(r, STATUS_GPA + slot) = SENTINEL;
    struct seg s[3] = {
        {HDR_GPA + 32 * slot, VIRTIO_BLK_HDR_SIZE, false},
        {RANGES_GPA + 0x200 * slot, 16 * nr, false},
        {STATUS_GPA + slot, 1, true},
    };
    return add_chain(r, slot, s, 3, false);
}

/* Kicks queue 0 and waits until the used index reaches want (loop turns + drains). */
static void kick_wait(struct rig *r, uint16_t want)
{
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    for (int i = 0; i < 1000 && used_idx(r) != want; i++) {
        event_base_loop(r->h.base, EVLOOP_NONBLOCK);
        virtio_blk_drain(&r->blk);
    }
    assert_int_equal(used_idx(r), want);
}

static void file_read(struct rig *r, uint64_t off, void *buf, size_t len)
{
    assert_int_equal(pread(r->fd, buf, len, (off_t)off), (ssize_t)len);
}

static void file_write(struct rig *r, uint64_t off, const void *buf, size_t len)
{
    assert_int_equal(pwrite(r->fd, buf, len, (off_t)off), (ssize_t)len);
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 7 + seed * 13 + 1);
}

static bool all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

static bool needs_reset(struct rig *r)
{
    return bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET;
}

/* ---- --drive and opening ---- */

static void test_spec_parse(void **state)
{
    struct virtio_blk_spec s;
    struct errbuf eb = {{0}};
    (void)state;

    char a1[] = "path=/a,,b.img,ro,id=serial1";
    assert_int_equal(virtio_blk_spec_parse(a1, &s, &eb), 0);
    assert_string_equal(s.path, "/a,b.img");
    assert_true(s.ro);
    assert_string_equal(s.id, "serial1");
    char a2[] = "id=x,path=disk";
    assert_int_equal(virtio_blk_spec_parse(a2, &s, &eb), 0);
    assert_string_equal(s.path, "disk");
    assert_false(s.ro);

    static const char *const bad[] = {
        "",
        "ro",
        "path=",
        "path=a,size=1",
        "path=a,ro=on",
        "path=a,path=b",
        "path",
        "path=a,,,id",
        ",path=a",
        "path=a,id=",
        "path=a,",
        "path=a,id=123456789012345678901",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", bad[i]);
        eb.msg[0] = 0;
        assert_int_equal(virtio_blk_spec_parse(buf, &s, &eb), -EINVAL);
        assert_true(strstr(eb.msg, "--drive") != NULL);
    }
    char a3[] = "path=a,id=12345678901234567890"; /* exactly 20 bytes */
    assert_int_equal(virtio_blk_spec_parse(a3, &s, &eb), 0);
    char a4[] = "path=a,bogus";
    assert_int_equal(virtio_blk_spec_parse(a4, &s, &eb), -EINVAL);
    assert_true(strstr(eb.msg, "unknown option 'bogus'") != NULL);
}

static void test_open_errors(void **state)
{
    struct virtio_blk b1, b2, b3;
    struct errbuf eb = {{0}};
    char path[] = "/tmp/petrel-blk-open-XXXXXX";
    (void)state;

    struct virtio_blk_spec s = {.path = "/nonexistent/petrel.img"};
    assert_int_equal(virtio_blk_open(&b1, &s, &eb), -ENOENT);
    assert_true(strstr(eb.msg, "/nonexistent/petrel.img") != NULL);
    s.path = "/tmp";
    assert_int_equal(virtio_blk_open(&b1, &s, &eb), -EISDIR);
    assert_true(strstr(eb.msg, "not a regular file or a block device") != NULL);
    s.path = "/dev/null";
    assert_int_equal(virtio_blk_open(&b1, &s, &eb), -EINVAL);
    assert_true(strstr(eb.msg, "not a regular file or a block device") != NULL);

    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1000), 0);
    s.path = path;
    assert_int_equal(virtio_blk_open(&b1, &s, &eb), -EINVAL);
    assert_true(strstr(eb.msg, "not a multiple of 512") != NULL);
    virtio_blk_destroy(&b1); /* never opened: nothing to do */

    /* One writer, or any number of readers. */
    assert_int_equal(ftruncate(fd, 4096), 0);
    assert_int_equal(virtio_blk_open(&b1, &s, &eb), 0);
    assert_int_equal(b1.capacity, 8);
    assert_int_equal(virtio_blk_open(&b2, &s, &eb), -EBUSY);
    assert_true(strstr(eb.msg, path) != NULL);
    assert_true(strstr(eb.msg, "in use") != NULL);
    s.ro = true;
    assert_int_equal(virtio_blk_open(&b2, &s, &eb), -EBUSY);
    virtio_blk_destroy(&b1);
    assert_int_equal(virtio_blk_open(&b2, &s, &eb), 0);
    assert_int_equal(virtio_blk_open(&b3, &s, &eb), 0);
    s.ro = false;
    assert_int_equal(virtio_blk_open(&b1, &s, &eb), -EBUSY);
    virtio_blk_destroy(&b2);
    virtio_blk_destroy(&b3);
    close(fd);
    unlink(path);
}

/*
 * The backend's syscalls: requests larger than BLK_IO_CHUNK go in chunks (a
 * big iovec cut, small ones gathered) and land byte for byte; a quiesce's
 * cancel stops a request before its next chunk, leaving memory untouched.
 */
static void test_io_chunks_and_cancel(void **state)
{
    char path[] = "/tmp/petrel-blk-chunk-XXXXXX";
    const size_t total = 3 * BLK_IO_CHUNK + 4096;
    (void)state;

    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    uint8_t *file = malloc(total), *mem = malloc(total);
    assert_non_null(file);
    assert_non_null(mem);
    for (size_t i = 0; i < total; i++)
        file[i] = (uint8_t)(i * 7 + i / 4096);
    assert_int_equal(pwrite(fd, file, total, 0), (ssize_t)total);

    /*
     * One iovec of 2.5 chunks, then 64 of 8 KiB (half a chunk), then the rest
     * (built afresh for each request: the backend consumes its iovecs).
     */
    struct iovec iov[66];
    size_t big = 2 * BLK_IO_CHUNK + BLK_IO_CHUNK / 2;
#define FILL_IOV()                                                                                 \
    do {                                                                                           \
        size_t off = big;                                                                          \
        iov[0] = (struct iovec){mem, big};                                                         \
        for (unsigned i = 1; i <= 64; i++, off += 8192)                                            \
            iov[i] = (struct iovec){mem + off, 8192};                                              \
        iov[65] = (struct iovec){mem + off, total - off};                                          \
    } while (0)
    struct blk_io io = {.fd = fd};
    struct blk_req req = {.op = BLK_OP_READ, .iov = iov, .iovcnt = 66};

    memset(mem, 0xee, total);
    FILL_IOV();
    assert_int_equal(blk_io_execute(&io, &req), BLK_S_OK);
    assert_memory_equal(mem, file, total);

    /* Writes chunk the same way. */
    for (size_t i = 0; i < total; i++)
        mem[i] = (uint8_t)~file[i];
    req.op = BLK_OP_WRITE;
    FILL_IOV();
    assert_int_equal(blk_io_execute(&io, &req), BLK_S_OK);
    assert_int_equal(pread(fd, file, total, 0), (ssize_t)total);
    assert_memory_equal(mem, file, total);

    /* Cancelled: an I/O error, and nothing read into memory. */
    atomic_store(&io.cancel, true);
    memset(mem, 0xee, total);
    req.op = BLK_OP_READ;
    FILL_IOV();
#undef FILL_IOV
    assert_int_equal(blk_io_execute(&io, &req), BLK_S_IOERR);
    for (size_t i = 0; i < total; i += 4096)
        assert_int_equal(mem[i], 0xee);
    struct blk_range range = {.offset = 0, .len = 4096};
    struct blk_req wz = {.op = BLK_OP_WRITE_ZEROES, .ranges = &range, .nr_ranges = 1};
    assert_int_equal(blk_io_execute(&io, &wz), BLK_S_IOERR);
    assert_int_equal(pread(fd, file, 4096, 0), 4096);
    assert_int_not_equal(file[1], 0); /* not zeroed */

    free(file);
    free(mem);
    close(fd);
}

/* ---- the device ---- */

static void test_config_rw(void **state)
{
    struct rig *r = *state;
    struct virtio_dev *v = &r->blk.vdev;

    assert_int_equal(pci_config_read(&v->pci, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_BLOCK);
    assert_int_equal(pci_config_read(&v->pci, PCI_CLASS_REVISION, 4) >> 8, 0x010000);
    uint64_t f = fake_virtio_device_features(&r->h.mmio, v);
    assert_true(f & 1ULL << VIRTIO_BLK_F_SEG_MAX);
    assert_true(f & 1ULL << VIRTIO_BLK_F_FLUSH);
    assert_true(f & 1ULL << VIRTIO_BLK_F_BLK_SIZE);
    assert_true(f & 1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
    assert_false(f & 1ULL << VIRTIO_BLK_F_RO);
    assert_true(f & 1ULL << VIRTIO_F_VERSION_1);
    /* ext4, tmpfs, xfs and btrfs punch holes; the test's /tmp is one of them. */
    assert_true(f & 1ULL << VIRTIO_BLK_F_DISCARD);

    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY, 8), DISK_SECTORS);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY + 4, 4), 0);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_SEG_MAX, 4),
                     VIRTIO_BLK_SEG_MAX);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_BLK_SIZE, 4), 512);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_MAX_DISCARD_SEC, 4),
                     VIRTIO_BLK_DWZ_SECTORS);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4),
                     VIRTIO_BLK_DWZ_SEG_MAX);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_DISCARD_ALIGN, 4),
                     VIRTIO_BLK_DISCARD_ALIGN);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_MAX_WZ_SEC, 4),
                     VIRTIO_BLK_DWZ_SECTORS);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_MAX_WZ_SEG, 4),
                     VIRTIO_BLK_DWZ_SEG_MAX);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_WZ_MAY_UNMAP, 1), 1);
    /* Past the configuration: nothing. */
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CONFIG_SIZE, 4), 0);
    assert_true(bar_rd(r, VIRTIO_COMMON_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK);
}

static void test_config_ro(void **state)
{
    struct rig *r = *state;
    uint64_t f = fake_virtio_device_features(&r->h.mmio, &r->blk.vdev);

    assert_true(f & 1ULL << VIRTIO_BLK_F_RO);
    assert_true(f & 1ULL << VIRTIO_BLK_F_FLUSH);
    assert_false(f & 1ULL << VIRTIO_BLK_F_DISCARD);
    assert_false(f & 1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY, 8), DISK_SECTORS);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_MAX_WZ_SEC, 4), 0);
    assert_int_equal(bar_rd(r, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_MAX_DISCARD_SEC, 4), 0);
}

static void test_read_write(void **state)
{
    struct rig *r = *state;
    uint8_t pat[4096], back[4096];

    /* A write of 2 sectors at sector 10 lands in the file. */
    fill(ram(r, data_gpa(0)), 1024, 1);
    uint16_t head = add_req(r, 0, VIRTIO_BLK_T_OUT, 10, 1024, false);
    kick_wait(r, 1);
    assert_int_equal(status_of(r, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(used(r)->ring[0].id, head);
    assert_int_equal(used(r)->ring[0].len, 1);
    file_read(r, 10 * 512, back, 1024);
    assert_memory_equal(back, ram(r, data_gpa(0)), 1024);
    assert_true(fake_virtio_irq_count(&r->blk.vdev, 0) >= 1); /* from the worker's thread */

    /* Read it back into another buffer. */
    head = add_req(r, 1, VIRTIO_BLK_T_IN, 10, 1024, true);
    kick_wait(r, 2);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_OK);
    assert_int_equal(used(r)->ring[1].id, head);
    assert_int_equal(used(r)->ring[1].len, 1024 + 1);
    assert_memory_equal(ram(r, data_gpa(1)), ram(r, data_gpa(0)), 1024);

    /* Any layout (2.6.4): header and data in one descriptor, data in pieces, status shared. */
    fill(pat, sizeof(pat), 2);
    put_hdr(r, 2, VIRTIO_BLK_T_OUT, 100);
    memcpy(ram(r, data_gpa(2)), ram(r, HDR_GPA + 64), VIRTIO_BLK_HDR_SIZE);
    memcpy(ram(r, data_gpa(2) + 16), pat, 1000);
    memcpy(ram(r, data_gpa(3)), pat + 1000, 3096);
    *ram(r, STATUS_GPA + 2) = SENTINEL;
    struct seg w[] = {
        {data_gpa(2), 16 + 1000, false},
        {data_gpa(3), 3096, false},
        {STATUS_GPA + 2, 1, true},
    };
    add_chain(r, 2, w, 3, true);
    kick_wait(r, 3);
    assert_int_equal(status_of(r, 2), VIRTIO_BLK_S_OK);
    file_read(r, 100 * 512, back, 4096);
    assert_memory_equal(back, pat, 4096);

    /* A read whose status byte is the last byte of its data descriptor. */
    put_hdr(r, 4, VIRTIO_BLK_T_IN, 100);
    struct seg rd[] = {
        {HDR_GPA + 32 * 4, 16, false},
        {data_gpa(4), 2048, true},
        {data_gpa(5), 2049, true},
    };
    add_chain(r, 4, rd, 3, false);
    kick_wait(r, 4);
    assert_int_equal(*ram(r, data_gpa(5) + 2048), VIRTIO_BLK_S_OK);
    assert_int_equal(used(r)->ring[3].len, 4097);
    assert_memory_equal(ram(r, data_gpa(4)), pat, 2048);
    assert_memory_equal(ram(r, data_gpa(5)), pat + 2048, 2048);

    /* The last sector, and a zero-length read, are fine. */
    add_req(r, 6, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 512, true);
    add_req(r, 7, VIRTIO_BLK_T_IN, DISK_SECTORS, 0, true);
    kick_wait(r, 6);
    assert_int_equal(status_of(r, 6), VIRTIO_BLK_S_OK);
    assert_int_equal(status_of(r, 7), VIRTIO_BLK_S_OK);
    assert_int_equal(r->blk.errors, 0);
    assert_int_equal(r->warnings, 0);
}

static void test_flush_and_id(void **state)
{
    struct rig *r = *state;

    fill(ram(r, data_gpa(0)), 512, 3);
    add_req(r, 0, VIRTIO_BLK_T_OUT, 0, 512, false);
    add_req(r, 1, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    kick_wait(r, 2);
    assert_int_equal(status_of(r, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_OK);
    assert_int_equal(r->blk.flushes, 1);

    /* GET_ID: the file's name, cut to 20 bytes, NUL-padded by the driver's zeroed buffer. */
    memset(ram(r, data_gpa(2)), 0, 64);
    add_req(r, 2, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true);
    kick_wait(r, 3);
    assert_int_equal(status_of(r, 2), VIRTIO_BLK_S_OK);
    const char *base = strrchr(r->path, '/') + 1;
    assert_memory_equal(ram(r, data_gpa(2)), base, VIRTIO_BLK_ID_BYTES);
    assert_int_equal(used(r)->ring[2].len, VIRTIO_BLK_ID_BYTES + 1);

    /* A short buffer gets what fits. */
    memset(ram(r, data_gpa(3)), 0, 64);
    add_req(r, 3, VIRTIO_BLK_T_GET_ID, 0, 8, true);
    kick_wait(r, 4);
    assert_memory_equal(ram(r, data_gpa(3)), base, 8);
    assert_int_equal(*ram(r, data_gpa(3) + 8), 0);
}

/* The synchronous backend, and an id= of exactly 20 bytes. */
static void test_sync_backend(void **state)
{
    struct rig *r = *state;

    fill(ram(r, data_gpa(0)), 4096, 4);
    add_req(r, 0, VIRTIO_BLK_T_OUT, 8, 4096, false);
    add_req(r, 1, VIRTIO_BLK_T_IN, 8, 4096, true);
    add_req(r, 2, VIRTIO_BLK_T_GET_ID, 0, 32, true);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK); /* one turn does everything */
    assert_int_equal(used_idx(r), 3);
    assert_int_equal(status_of(r, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_OK);
    assert_memory_equal(ram(r, data_gpa(1)), ram(r, data_gpa(0)), 4096);
    assert_memory_equal(ram(r, data_gpa(2)), "01234567890123456789", 20);
    assert_int_equal(used(r)->ring[2].len, 21);
    assert_int_equal(fake_virtio_irq_count(&r->blk.vdev, 0), 1); /* one per batch */
}

static void test_discard_write_zeroes(void **state)
{
    struct rig *r = *state;
    uint8_t pat[64 * 512], back[64 * 512];

    fill(pat, sizeof(pat), 5);
    file_write(r, 0, pat, sizeof(pat));

    /* Discard sectors [8, 16): reads as zeros (a hole); its neighbours stay. */
    static const uint64_t d1[][3] = {{8, 8, 0}};
    add_dwz(r, 0, VIRTIO_BLK_T_DISCARD, d1, 1);
    kick_wait(r, 1);
    assert_int_equal(status_of(r, 0), VIRTIO_BLK_S_OK);
    file_read(r, 0, back, sizeof(back));
    assert_memory_equal(back, pat, 8 * 512);
    assert_true(all_zero(back + 8 * 512, 8 * 512));
    assert_memory_equal(back + 16 * 512, pat + 16 * 512, sizeof(pat) - 16 * 512);

    /* Write zeroes, two ranges, one with unmap: [20, 22) and [30, 34). */
    static const uint64_t z[][3] = {{20, 2, 0}, {30, 4, VIRTIO_BLK_DWZ_F_UNMAP}};
    add_dwz(r, 1, VIRTIO_BLK_T_WRITE_ZEROES, z, 2);
    kick_wait(r, 2);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_OK);
    file_read(r, 0, back, sizeof(back));
    assert_memory_equal(back + 16 * 512, pat + 16 * 512, 4 * 512);
    assert_true(all_zero(back + 20 * 512, 2 * 512));
    assert_memory_equal(back + 22 * 512, pat + 22 * 512, 8 * 512);
    assert_true(all_zero(back + 30 * 512, 4 * 512));
    assert_memory_equal(back + 34 * 512, pat + 34 * 512, sizeof(pat) - 34 * 512);

    /* Without fallocate's help (EOPNOTSUPP remembered): written zeros. */
    atomic_store(&r->blk.io.zero_range_ok, false);
    static const uint64_t z2[][3] = {{40, 3, 0}};
    add_dwz(r, 2, VIRTIO_BLK_T_WRITE_ZEROES, z2, 1);
    kick_wait(r, 3);
    assert_int_equal(status_of(r, 2), VIRTIO_BLK_S_OK);
    file_read(r, 0, back, sizeof(back));
    assert_true(all_zero(back + 40 * 512, 3 * 512));
    assert_memory_equal(back + 43 * 512, pat + 43 * 512, sizeof(pat) - 43 * 512);

    /* 5.2.6.2: unmap on a discard, or an unknown flag, is UNSUPP; out of range is IOERR. */
    static const uint64_t bad_unmap[][3] = {{0, 1, VIRTIO_BLK_DWZ_F_UNMAP}};
    static const uint64_t bad_flag[][3] = {{0, 1, 2}};
    static const uint64_t bad_range[][3] = {{DISK_SECTORS - 1, 2, 0}};
    static const uint64_t bad_big[][3] = {{0, VIRTIO_BLK_DWZ_SECTORS + 1ULL, 0}};
    add_dwz(r, 3, VIRTIO_BLK_T_DISCARD, bad_unmap, 1);
    add_dwz(r, 4, VIRTIO_BLK_T_WRITE_ZEROES, bad_flag, 1);
    add_dwz(r, 5, VIRTIO_BLK_T_WRITE_ZEROES, bad_range, 1);
    add_dwz(r, 6, VIRTIO_BLK_T_DISCARD, bad_big, 1);
    add_dwz(r, 7, VIRTIO_BLK_T_DISCARD, d1,
            0); /* no ranges: a 0-byte descriptor breaks the queue */
    kick_wait(r, 7);
    assert_int_equal(status_of(r, 3), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(status_of(r, 4), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(status_of(r, 5), VIRTIO_BLK_S_IOERR);
    assert_int_equal(status_of(r, 6), VIRTIO_BLK_S_IOERR);
    assert_true(needs_reset(r));
    file_read(r, 0, back, 512);
    assert_memory_equal(back, pat, 512); /* none of them touched sector 0 */
}

static void test_too_many_ranges(void **state)
{
    struct rig *r = *state;
    uint64_t rg[VIRTIO_BLK_DWZ_SEG_MAX + 1][3];

    for (unsigned i = 0; i < ARRAY_SIZE(rg); i++) {
        rg[i][0] = i;
        rg[i][1] = 1;
        rg[i][2] = 0;
    }
    add_dwz(r, 0, VIRTIO_BLK_T_WRITE_ZEROES, (const uint64_t(*)[3])rg, ARRAY_SIZE(rg));
    add_dwz(r, 1, VIRTIO_BLK_T_WRITE_ZEROES, (const uint64_t(*)[3])rg, VIRTIO_BLK_DWZ_SEG_MAX);
    /* Ranges that are not whole 16-byte segments. */
    put_hdr(r, 2, VIRTIO_BLK_T_WRITE_ZEROES, 0);
    struct seg s[] = {
        {HDR_GPA + 64, 16, false}, {RANGES_GPA, 24, false}, {STATUS_GPA + 2, 1, true}};
    add_chain(r, 2, s, 3, false);
    kick_wait(r, 3);
    assert_int_equal(status_of(r, 0), VIRTIO_BLK_S_IOERR);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_OK);
    assert_int_equal(status_of(r, 2), VIRTIO_BLK_S_IOERR);
}

/* Every malformed request that has a status byte gets an error; the device goes on. */
static void test_malformed(void **state)
{
    struct rig *r = *state;
    uint8_t zeros[4096] = {0}, back[4096];
    unsigned n = 0;

    /* A header of 8 bytes. */
    put_hdr(r, 0, VIRTIO_BLK_T_IN, 0);
    *ram(r, STATUS_GPA) = SENTINEL;
    struct seg s0[] = {{HDR_GPA, 8, false}, {data_gpa(0), 512, true}, {STATUS_GPA, 1, true}};
    add_chain(r, 0, s0, 3, false);
    n++;
    /* An IN with a device-readable data buffer. */
    add_req(r, 1, VIRTIO_BLK_T_IN, 0, 512, false);
    n++;
    /* An OUT with a device-writable data buffer (the guest's memory would be the source). */
    add_req(r, 2, VIRTIO_BLK_T_OUT, 0, 512, true);
    n++;
    /* An OUT past the end, across the end, at a sector that overflows when scaled. */
    fill(ram(r, data_gpa(3)), 1024, 6);
    add_req(r, 3, VIRTIO_BLK_T_OUT, DISK_SECTORS, 512, false);
    add_req(r, 4, VIRTIO_BLK_T_OUT, DISK_SECTORS - 1, 1024, false);
    add_req(r, 5, VIRTIO_BLK_T_OUT, UINT64_MAX, 512, false);
    add_req(r, 6, VIRTIO_BLK_T_IN, 1ULL << 55, 512, true);
    n += 4;
    /* Lengths that are not whole sectors. */
    add_req(r, 7, VIRTIO_BLK_T_OUT, 0, 100, false);
    add_req(r, 8, VIRTIO_BLK_T_IN, 0, 513, true);
    n += 2;
    /* A flush with data; GET_ID with readable data. */
    add_req(r, 9, VIRTIO_BLK_T_FLUSH, 0, 512, false);
    add_req(r, 10, VIRTIO_BLK_T_GET_ID, 0, 20, false);
    n += 2;
    /* Unknown types: GET_LIFETIME, SECURE_ERASE, and junk. */
    add_req(r, 11, 10, 0, 0, false);
    add_req(r, 12, 14, 0, 0, false);
    add_req(r, 13, 0xdeadbeef, 0, 512, true);
    n += 3;
    kick_wait(r, (uint16_t)n);

    for (unsigned i = 0; i <= 10; i++)
        assert_int_equal(status_of(r, i), VIRTIO_BLK_S_IOERR);
    for (unsigned i = 11; i <= 13; i++)
        assert_int_equal(status_of(r, i), VIRTIO_BLK_S_UNSUPP);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(used(r)->ring[i].len, 1);
    file_read(r, 0, back, sizeof(back));
    assert_memory_equal(back, zeros, sizeof(back)); /* nothing was written */
    file_read(r, (DISK_SECTORS - 1) * 512, back, 512);
    assert_memory_equal(back, zeros, 512);
    struct stat st;
    assert_int_equal(fstat(r->fd, &st), 0);
    assert_int_equal(st.st_size, DISK_SECTORS * 512);
    assert_int_equal(r->warnings, 1); /* logged once */
    assert_false(needs_reset(r));

    /* The device still works. */
    add_req(r, 14, VIRTIO_BLK_T_IN, 0, 512, true);
    kick_wait(r, (uint16_t)(n + 1));
    assert_int_equal(status_of(r, 14), VIRTIO_BLK_S_OK);
}

/* No device-writable byte: nowhere to put a status, so the queue breaks. */
static void test_no_status_byte(void **state)
{
    struct rig *r = *state;

    put_hdr(r, 0, VIRTIO_BLK_T_FLUSH, 0);
    *ram(r, STATUS_GPA) = SENTINEL;
    /* The status in a device-readable descriptor. */
    struct seg s[] = {{HDR_GPA, 16, false}, {STATUS_GPA, 1, false}};
    add_chain(r, 0, s, 2, false);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    virtio_blk_drain(&r->blk);
    assert_true(needs_reset(r));
    assert_int_equal(used_idx(r), 0);
    assert_int_equal(status_of(r, 0), SENTINEL);
    assert_true(r->warnings >= 1);

    /* A reset mends it. */
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    driver_start(r);
    assert_false(needs_reset(r));
    add_req(r, 1, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    kick_wait(r, 1);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_OK);
}

static void test_read_only(void **state)
{
    struct rig *r = *state;
    uint8_t pat[512], back[512];
    static const uint64_t rg[][3] = {{0, 1, 0}};

    fill(pat, sizeof(pat), 7);
    file_write(r, 0, pat, sizeof(pat));
    fill(ram(r, data_gpa(0)), 512, 8);
    add_req(r, 0, VIRTIO_BLK_T_OUT, 0, 512, false);
    add_dwz(r, 1, VIRTIO_BLK_T_DISCARD, rg, 1);
    add_dwz(r, 2, VIRTIO_BLK_T_WRITE_ZEROES, rg, 1);
    add_req(r, 3, VIRTIO_BLK_T_IN, 0, 512, true);
    add_req(r, 4, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    add_req(r, 5, VIRTIO_BLK_T_GET_ID, 0, 20, true);
    kick_wait(r, 6);
    assert_int_equal(status_of(r, 0), VIRTIO_BLK_S_IOERR);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_IOERR);
    assert_int_equal(status_of(r, 2), VIRTIO_BLK_S_IOERR);
    assert_int_equal(status_of(r, 3), VIRTIO_BLK_S_OK);
    assert_int_equal(status_of(r, 4), VIRTIO_BLK_S_OK);
    assert_int_equal(status_of(r, 5), VIRTIO_BLK_S_OK);
    assert_memory_equal(ram(r, data_gpa(3)), pat, 512);
    assert_memory_equal(ram(r, data_gpa(5)), "disk-ro", 8);
    file_read(r, 0, back, sizeof(back));
    assert_memory_equal(back, pat, sizeof(back));
}

/* 40 requests in one kick, then 40 reads of what they wrote. */
static void test_queue_depth(void **state)
{
    struct rig *r = *state;
    enum { N = 40, LEN = 4096 };
    uint8_t back[LEN];

    for (unsigned i = 0; i < N; i++) {
        fill(ram(r, data_gpa(i)), LEN, 100 + i);
        add_req(r, i, VIRTIO_BLK_T_OUT, 8ULL * i, LEN, false);
    }
    kick_wait(r, N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(status_of(r, i), VIRTIO_BLK_S_OK);
        file_read(r, 8ULL * i * 512, back, LEN);
        assert_memory_equal(back, ram(r, data_gpa(i)), LEN);
    }
    for (unsigned i = 0; i < N; i++) {
        memset(ram(r, data_gpa(i)), 0, LEN);
        add_req(r, i, VIRTIO_BLK_T_IN, 8ULL * i, LEN, true);
    }
    kick_wait(r, 2 * N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(status_of(r, i), VIRTIO_BLK_S_OK);
        file_read(r, 8ULL * i * 512, back, LEN);
        assert_memory_equal(back, ram(r, data_gpa(i)), LEN);
    }
    /* Every used element names a head that was made available, each once. */
    uint8_t seen[QSIZE] = {0};
    for (unsigned i = N; i < 2 * N; i++) {
        uint32_t id = used(r)->ring[i % QSIZE].id;
        assert_true(id < QSIZE);
        assert_int_equal(seen[id]++, 0);
        assert_int_equal(used(r)->ring[i % QSIZE].len, LEN + 1);
    }
    assert_int_equal(r->blk.inflight, 0);
}

/*
 * A completion that loses the race with a reset (it finished its I/O, then
 * found the device reset) is dropped, not pushed into the new rings; the slots
 * it held come back, and a queue that ran out of slots meanwhile resumes.
 */
static void test_reset_stale_completions(void **state)
{
    struct rig *r = *state;

    for (unsigned i = 0; i < 3; i++)
        add_req(r, i, VIRTIO_BLK_T_IN, i, 512, true);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    assert_int_equal(r->nr_held, 3);
    assert_int_equal(r->blk.inflight, 3);
    assert_int_equal(used_idx(r), 0);

    /* 100 more held, through indirect tables so that the ring has room for them. */
    for (unsigned i = 3; i < 103; i++) {
        put_hdr(r, i, VIRTIO_BLK_T_FLUSH, 0);
        struct seg s[] = {{HDR_GPA + 32 * i, 16, false}, {STATUS_GPA + i, 1, true}};
        add_chain(r, i, s, 2, true);
    }
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    assert_int_equal(r->nr_held, 103);

    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1); /* the reset, requests still held */
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), 0);
    driver_start(r);
    memset(ram(r, STATUS_GPA), SENTINEL, 128);
    struct blk_req *stale[QSIZE];
    unsigned nr_stale = r->nr_held;
    memcpy(stale, r->held, sizeof(stale));
    r->nr_held = 0;

    /* The new queue: 40 flushes, but only 25 slots are free. */
    for (unsigned i = 0; i < 40; i++) {
        put_hdr(r, i, VIRTIO_BLK_T_FLUSH, 0);
        struct seg s[] = {{HDR_GPA + 32 * i, 16, false}, {STATUS_GPA + 64 + i, 1, true}};
        add_chain(r, i, s, 2, true);
    }
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    assert_int_equal(r->nr_held, 25);
    assert_true(r->blk.starved);

    /* The stale ones finish: dropped, and the starved queue goes on. */
    for (unsigned i = 0; i < nr_stale; i++)
        r->blk.io.complete(&r->blk.io, stale[i], VIRTIO_BLK_S_OK, false);
    assert_int_equal(used_idx(r), 0);
    for (unsigned i = 0; i < 64; i++)
        assert_int_equal(status_of(r, i), SENTINEL); /* the old requests' status bytes */
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    assert_int_equal(r->nr_held, 40);
    gated_release(r);
    assert_int_equal(used_idx(r), 40);
    for (unsigned i = 0; i < 40; i++)
        assert_int_equal(status_of(r, 64 + i), VIRTIO_BLK_S_OK);
    assert_int_equal(r->blk.inflight, 0);
}

/*
 * The real pool, reset while its workers are busy: once the status reads 0
 * (what a driver waits for), nothing the old requests owned (data buffers,
 * status bytes, the used ring) changes any more. The wait turns the loop until
 * the workers' signal arrives (EVLOOP_ONCE blocks on its eventfd, no sleep).
 */
static void test_reset_in_flight(void **state)
{
    struct rig *r = *state;
    enum { N = 32, LEN = 32 * 1024 };
    unsigned clean = 0, pending = 0;

    for (int iter = 0; iter < 30; iter++) {
        for (unsigned i = 0; i < N; i++) {
            if (i % 2)
                add_req(r, i, VIRTIO_BLK_T_IN, 64ULL * i, LEN, true);
            else
                add_req(r, i, VIRTIO_BLK_T_OUT, 64ULL * i, LEN, false);
        }
        bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
        event_base_loop(r->h.base, EVLOOP_NONBLOCK); /* submitted to the workers */
        bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);       /* and reset at once */
        pending += bar_rd(r, VIRTIO_COMMON_STATUS, 1) != 0;
        while (bar_rd(r, VIRTIO_COMMON_STATUS, 1))
            event_base_loop(r->h.base, EVLOOP_ONCE);

        /* Poison what the old requests could still write. */
        memset(ram(r, USED_GPA), 0xab, virtq_used_bytes(QSIZE));
        memset(ram(r, STATUS_GPA), 0xcd, N);
        for (unsigned i = 1; i < N; i += 2)
            memset(ram(r, data_gpa(i)), 0x5a, LEN);
        virtio_blk_drain(&r->blk); /* every old request is finished or dropped */

        virtio_lock(&r->blk.vdev);
        unsigned nfree = 0;
        for (struct blk_req *q = r->blk.free; q; q = q->next)
            nfree++;
        clean += r->blk.inflight == 0 && nfree == QSIZE;
        virtio_unlock(&r->blk.vdev);
        for (unsigned i = 0; i < virtq_used_bytes(QSIZE); i++)
            assert_int_equal(*ram(r, USED_GPA + i), 0xab);
        for (unsigned i = 0; i < N; i++)
            assert_int_equal(status_of(r, i), 0xcd);
        for (unsigned i = 1; i < N; i += 2)
            for (unsigned j = 0; j < LEN; j += 512)
                assert_int_equal(*ram(r, data_gpa(i) + j), 0x5a);
        driver_start(r);
    }
    assert_int_equal(clean, 30);     /* every slot came back every time */
    assert_true(r->blk.dropped > 0); /* and the resets did catch requests in flight */
    assert_int_equal(r->blk.vdev.resets_pending, pending);

    /* And the device works after all that. */
    add_req(r, 0, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    kick_wait(r, 1);
    assert_int_equal(status_of(r, 0), VIRTIO_BLK_S_OK);
}

/*
 * A reset while a request is inside a syscall that does not return (a hung
 * disk: the gate stays shut until the test opens it). The status write
 * returns at once, without waiting for the disk: the status reads its old
 * value, other writes and notifies are ignored, and the loop runs freely;
 * when the request leaves its syscall the loop completes the reset, the
 * request is dropped (not pushed into the driver's new rings), and the device
 * works again.
 */
static void test_reset_pending(void **state)
{
    struct rig *r = *state;
    uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                 VIRTIO_STATUS_DRIVER_OK;
    uint8_t back[512];

    fill(ram(r, data_gpa(0)), 512, 9);
    add_req(r, 0, VIRTIO_BLK_T_OUT, 3, 512, false);
    add_req(r, 1, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    assert_int_equal(r->nr_held, 2);

    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1); /* returns: this test has no other thread */
    assert_true(r->quiescing);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), st);
    /* A driver that does not wait for 0: its writes and notifies are ignored. */
    bar_wr(r, VIRTIO_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
    bar_wr(r, VIRTIO_COMMON_Q_SELECT, 0, 2);
    bar_wr(r, VIRTIO_COMMON_Q_ENABLE, 0, 2);
    add_req(r, 2, VIRTIO_BLK_T_IN, 0, 512, true);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    for (int i = 0; i < 3; i++)
        event_base_loop(r->h.base, EVLOOP_NONBLOCK); /* the loop is not blocked */
    assert_int_equal(r->nr_held, 2);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), st);
    assert_int_equal(used_idx(r), 0);

    /* The disk answers: the write lands, its completion is dropped, the reset completes. */
    gated_release(r);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), st); /* the loop finishes it */
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), 0);
    assert_int_equal(used_idx(r), 0);
    assert_int_equal(status_of(r, 0), SENTINEL);
    assert_int_equal(status_of(r, 1), SENTINEL);
    assert_int_equal(r->blk.dropped, 2);
    assert_int_equal(r->blk.inflight, 0);
    assert_int_equal(r->blk.vdev.resets_pending, 1);
    file_read(r, 3 * 512, back, sizeof(back));
    assert_memory_equal(back, ram(r, data_gpa(0)), sizeof(back));

    /* The device works again; a reset with nothing in a syscall is done at once. */
    driver_start(r);
    memset(ram(r, data_gpa(1)), 0, 512);
    add_req(r, 1, VIRTIO_BLK_T_IN, 3, 512, true);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    assert_int_equal(r->nr_held, 1);
    gated_release(r);
    assert_int_equal(used_idx(r), 1);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_OK);
    assert_memory_equal(ram(r, data_gpa(1)), back, sizeof(back));
    bar_wr(r, VIRTIO_COMMON_STATUS, 0, 1);
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), 0);
    assert_int_equal(r->blk.vdev.resets_pending, 1);
}

/*
 * A read of more than 4 GiB (86 descriptors of 48 MiB over the same RAM): the
 * used length, a 32-bit field, saturates at UINT32_MAX instead of wrapping to
 * a small number (virtio_blk.c, "The used length").
 */
static void test_read_over_4g(void **state)
{
    struct rig *r = *state;
    enum { NDATA = 86 };
    const uint32_t seg = 48 * MiB;
    struct seg s[NDATA + 2];

    put_hdr(r, 0, VIRTIO_BLK_T_IN, 0);
    *ram(r, STATUS_GPA) = SENTINEL;
    s[0] = (struct seg){HDR_GPA, VIRTIO_BLK_HDR_SIZE, false};
    for (unsigned i = 1; i <= NDATA; i++)
        s[i] = (struct seg){16 * MiB, seg, true};
    s[NDATA + 1] = (struct seg){STATUS_GPA, 1, true};
    assert_true((uint64_t)NDATA * seg > 4 * GiB);
    add_chain(r, 0, s, NDATA + 2, false);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    assert_false(needs_reset(r));
    assert_int_equal(r->nr_held, 1); /* accepted */
    assert_int_equal(r->held[0]->written, UINT32_MAX);

    /* Completed as a worker would after the I/O (not run: 4 GiB of copying proves nothing). */
    struct blk_req *req = r->held[0];
    r->nr_held = 0;
    r->blk.io.complete(&r->blk.io, req, VIRTIO_BLK_S_OK, false);
    assert_int_equal(used_idx(r), 1);
    assert_int_equal(used(r)->ring[0].len, UINT32_MAX);
    assert_int_equal(status_of(r, 0), VIRTIO_BLK_S_OK);
}

/* vm teardown: what was queued is finished before the file closes. */
static void test_destroy_drains(void **state)
{
    struct rig *r = *state;
    enum { N = 32, LEN = 16 * 1024 };
    uint8_t back[LEN];

    for (unsigned i = 0; i < N; i++) {
        fill(ram(r, data_gpa(i)), LEN, 200 + i);
        add_req(r, i, VIRTIO_BLK_T_OUT, 32ULL * i, LEN, false);
    }
    add_req(r, N, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    virtio_blk_destroy(&r->blk);
    assert_int_equal(used_idx(r), N + 1);
    for (unsigned i = 0; i < N; i++) {
        file_read(r, 32ULL * i * 512, back, LEN);
        assert_memory_equal(back, ram(r, data_gpa(i)), LEN);
    }
}

/* ---- save and restore ---- */

static uint8_t tree[STATE_TEST_TREE], edited[STATE_TEST_TREE];

struct save_ctx {
    struct virtio_blk *blk;
    struct errbuf *eb;
};

static void save_vda(struct state_out *out, void *ctx)
{
    struct save_ctx *c = ctx;
    out->eb = c->eb;
    state_begin(out, "vda", VIRTIO_BLK_STATE_COMPATIBLE);
    if (virtio_blk_save(c->blk, out) == 0)
        state_end(out);
}

static int restore_vda(const void *t, struct virtio_blk *blk, struct errbuf *eb)
{
    struct state_in root = state_test_root(t, eb), in;
    if (state_open(&root, "vda", VIRTIO_BLK_STATE_COMPATIBLE, &in))
        return in.err;
    return virtio_blk_restore(blk, &in);
}

/*
 * A new process on the same disk: a fresh device on the same file (spec_extra
 * as the old one's), in a host with a copy of old's RAM, not started by any
 * driver. old's device is gone first, and its lock on the file with it.
 */
static struct rig *rig_reopen_as(struct rig *old, const char *path, const char *spec_extra)
{
    struct rig *r = calloc(1, sizeof(*r));
    struct virtio_blk_spec spec;
    struct errbuf eb = {{0}};
    char arg[128];

    assert_non_null(r);
    /* Before old goes: path may point into it. NULL: old's path. */
    snprintf(arg, sizeof(arg), "path=%s%s", path ? path : old->path, spec_extra);
    assert_int_equal(fake_virtio_host_init(&r->h, old->h.ram_size), 0);
    memcpy(r->h.ram, old->h.ram, old->h.ram_size);
    r->h.pci.warn = count_warning;
    r->h.pci.warn_ctx = r;
    memcpy(r->path, old->path, sizeof(r->path));
    r->fd = old->fd;
    r->avail = old->avail;
    r->next_desc = old->next_desc;
    virtio_blk_destroy(&old->blk);
    fake_virtio_host_destroy(&old->h);
    free(old);
    assert_int_equal(virtio_blk_spec_parse(arg, &spec, &eb), 0);
    assert_int_equal(virtio_blk_open(&r->blk, &spec, &eb), 0);
    assert_int_equal(virtio_blk_init(&r->blk, NULL, &r->h.sys, &eb), 0);
    assert_int_equal(virtio_pci_add(&r->blk.vdev, &r->h.pci), 0);
    return r;
}

static struct rig *rig_reopen(struct rig *old, const char *spec_extra)
{
    return rig_reopen_as(old, NULL, spec_extra);
}

/*
 * Writes, a read and a flush done; saved; the old device gone; a fresh one on
 * the same disk restored: every register reads as before, and the next request
 * completes (the queue's indexes agree with the rings in guest memory), with
 * its interrupt.
 */
static void test_save_restore(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    static uint32_t before[FAKE_VIRTIO_REGS], after[FAKE_VIRTIO_REGS];

    fill(ram(r, data_gpa(0)), 1024, 5);
    add_req(r, 0, VIRTIO_BLK_T_OUT, 20, 1024, false);
    add_req(r, 1, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    kick_wait(r, 2);
    add_req(r, 2, VIRTIO_BLK_T_IN, 20, 512, true);
    kick_wait(r, 3);
    assert_int_equal(status_of(r, 2), VIRTIO_BLK_S_OK);
    struct save_ctx c = {&r->blk, &eb};
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vda, &c), 0);
    unsigned n = fake_virtio_read_regs(&r->h.mmio, &r->blk.vdev, before);

    r = *state = rig_reopen(r, "");
    int ret = restore_vda(tree, &r->blk, &eb);
    if (ret)
        fail_msg("%s", eb.msg);
    assert_int_equal(fake_virtio_read_regs(&r->h.mmio, &r->blk.vdev, after), n);
    assert_memory_equal(before, after, n * sizeof(before[0]));

    /* The next request: the second sector written before the snapshot, read back. */
    event_base_loop(r->h.base, EVLOOP_NONBLOCK); /* the restore's look at the queue: nothing */
    assert_int_equal(used_idx(r), 3);
    (void)fake_virtio_irq_count(&r->blk.vdev, 0);
    add_req(r, 3, VIRTIO_BLK_T_IN, 21, 512, true);
    kick_wait(r, 4);
    assert_int_equal(status_of(r, 3), VIRTIO_BLK_S_OK);
    assert_int_equal(used(r)->ring[3].len, 513);
    assert_memory_equal(ram(r, data_gpa(3)), ram(r, data_gpa(0)) + 512, 512);
    /* EVENT_IDX as before the snapshot: used_event is still 0, so no interrupt... */
    assert_int_equal(fake_virtio_irq_count(&r->blk.vdev, 0), 0);
    /* ...until the driver asks for one at entry 4. */
    uint16_t used_event = 4;
    memcpy(ram(r, AVAIL_GPA + 4 + 2 * QSIZE), &used_event, 2);
    add_req(r, 4, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    kick_wait(r, 5);
    assert_int_equal(fake_virtio_irq_count(&r->blk.vdev, 0), 1);
}

/*
 * A drive given by a relative path is saved under its absolute path: the one
 * the snapshot's configuration names (snapshot_config_put()), which a restore
 * opens, from whatever directory it runs in.
 */
static void test_save_names_the_drive_absolutely(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    char cwd[PATH_MAX];
    int len;

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir("/tmp"), 0);
    r = *state = rig_reopen_as(r, r->path + strlen("/tmp/"), "");
    struct save_ctx c = {&r->blk, &eb};
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vda, &c), 0);
    assert_int_equal(chdir(cwd), 0);
    const char *saved = state_test_prop(tree, "/vda", "path", &len);
    assert_non_null(saved);
    assert_string_equal(saved, r->path);

    r = *state = rig_reopen(r, "");
    int ret = restore_vda(tree, &r->blk, &eb);
    if (ret)
        fail_msg("%s", eb.msg);
}

/* Requests in flight cannot be saved; once they completed, the device can. */
static void test_save_refuses_in_flight(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    struct save_ctx c = {&r->blk, &eb};

    add_req(r, 0, VIRTIO_BLK_T_IN, 0, 512, true);
    bar_wr(r, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
    assert_int_equal(r->nr_held, 1);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vda, &c), -EBUSY);
    assert_non_null(strstr(eb.msg, ": 1 requests are in flight; a snapshot waits for them"));
    gated_release(r);
    assert_int_equal(used_idx(r), 1);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vda, &c), 0);
}

/* Restores onto a drive that is not the one saved, or a changed one, are refused. */
static void test_restore_refuses_another_disk(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    struct save_ctx c = {&r->blk, &eb};
    int len;

    add_req(r, 0, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    kick_wait(r, 1);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vda, &c), 0);
    r = *state = rig_reopen(r, "");

    memcpy(edited, tree, sizeof(tree));
    assert_int_equal(state_test_set_u64(edited, "/vda", "capacity", DISK_SECTORS + 8), 0);
    assert_int_equal(restore_vda(edited, &r->blk, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "property 'capacity' is 2056 sectors, but"));
    assert_non_null(strstr(eb.msg, "has 2048 now: the disk changed size"));

    memcpy(edited, tree, sizeof(tree));
    char *path = state_test_prop(edited, "/vda", "path", &len);
    path[len - 2] ^= 1;
    assert_int_equal(restore_vda(edited, &r->blk, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "property 'path' is /tmp/petrel-blk-test-"));

    memcpy(edited, tree, sizeof(tree));
    assert_int_equal(state_test_set_u32(edited, "/vda", "read-only", 1), 0);
    assert_int_equal(restore_vda(edited, &r->blk, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "property 'read-only' is set, but"));

    /* A request in flight in the saved queue: none is, for virtio-blk. */
    memcpy(edited, tree, sizeof(tree));
    assert_int_equal(state_test_set_u32(edited, "/vda/virtio/queue0", "last-avail-idx", 2), 0);
    assert_int_equal(restore_vda(edited, &r->blk, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "have 1 chains in flight; the device holds 0"));

    /* Nothing was applied: the device is as made; the real state restores and works. */
    assert_int_equal(bar_rd(r, VIRTIO_COMMON_STATUS, 1), 0);
    assert_int_equal(restore_vda(tree, &r->blk, &eb), 0);
    add_req(r, 1, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    kick_wait(r, 2);
    assert_int_equal(status_of(r, 1), VIRTIO_BLK_S_OK);
}

/*
 * A drive opened by a relative path (as typed in another directory) saves its
 * absolute path, which the configuration node names too: the restore opens the
 * drive by that path and must find the saved device's drive in it.
 */
static void test_save_relative_path(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    char cwd[PATH_MAX], rel[PATH_MAX];
    int len;

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir("/tmp/"), 0);
    snprintf(rel, sizeof(rel), "./%s", r->path + strlen("/tmp/"));
    r = *state = rig_reopen_as(r, rel, "");
    assert_int_equal(chdir(cwd), 0);
    driver_start(r);
    struct save_ctx c = {&r->blk, &eb};
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vda, &c), 0);
    const char *saved = state_test_prop(tree, "/vda", "path", &len);
    assert_string_equal(saved, r->path);

    r = *state = rig_reopen(r, ""); /* by the absolute path, as a restore opens it */
    int ret = restore_vda(tree, &r->blk, &eb);
    if (ret)
        fail_msg("%s", eb.msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_io_chunks_and_cancel),
        cmocka_unit_test_setup_teardown(test_config_rw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_ro, setup_ro, teardown),
        cmocka_unit_test_setup_teardown(test_read_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_and_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_backend, setup_sync, teardown),
        cmocka_unit_test_setup_teardown(test_discard_write_zeroes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_status_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
        cmocka_unit_test_setup_teardown(test_queue_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_stale_completions, setup_gated, teardown),
        cmocka_unit_test_setup_teardown(test_reset_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_pending, setup_gated_busy, teardown),
        cmocka_unit_test_setup_teardown(test_read_over_4g, setup_big, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_names_the_drive_absolutely, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_in_flight, setup_gated, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refuses_another_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_relative_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
