/*
 * Unit tests for virtqueue.c: split rings on fake guest memory, with the test
 * playing the driver. The fake RAM sits between two PROT_NONE guard pages, so
 * any access outside it by the code under test crashes the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "petrel/virtqueue.h"

#define RAM_SIZE  (1 * MiB)
#define MAX_SIZE  256
#define QSIZE     16
#define DESC_GPA  0x0000ULL
#define AVAIL_GPA 0x1000ULL
#define USED_GPA  0x2000ULL
#define TABLE_GPA 0x8000ULL /* indirect tables */
#define DATA_GPA  0x10000ULL
#define SEG_CAP   64

#define F_V1       (1ULL << VIRTIO_F_VERSION_1)
#define F_INDIRECT (1ULL << VIRTIO_F_INDIRECT_DESC)
#define F_EVENT    (1ULL << VIRTIO_F_EVENT_IDX)
#define F_ALL      (F_V1 | F_INDIRECT | F_EVENT)

struct rig {
    uint8_t *map;
    size_t map_len;
    uint8_t *ram; /* RAM_SIZE bytes between guard pages */
    struct guest_mem gm;
    struct virtq vq;
    struct virtq_seg segs[SEG_CAP];
    struct virtq_chain ch;
    uint16_t drv_avail; /* the driver's next avail->idx */
};

static int rig_setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    r->map_len = RAM_SIZE + 2 * page;
    r->map = mmap(NULL, r->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->map == MAP_FAILED) {
        free(r);
        return -1;
    }
    r->ram = r->map + page;
    if (mprotect(r->ram, RAM_SIZE, PROT_READ | PROT_WRITE) < 0) {
        munmap(r->map, r->map_len);
        free(r);
        return -1;
    }
    gm_init_fake(&r->gm, r->ram, RAM_SIZE);
    virtq_init(&r->vq, &r->gm, MAX_SIZE);
    r->ch = (struct virtq_chain){.segs = r->segs, .cap = SEG_CAP};
    *state = r;
    return 0;
}

static int rig_teardown(void **state)
{
    struct rig *r = *state;
    munmap(r->map, r->map_len);
    free(r);
    return 0;
}

static struct virtq_avail *avail(struct rig *r)
{
    return (struct virtq_avail *)(r->ram + AVAIL_GPA);
}

static struct virtq_used *used(struct rig *r)
{
    return (struct virtq_used *)(r->ram + USED_GPA);
}

static uint16_t *used_event(struct rig *r)
{
    return &avail(r)->ring[r->vq.size];
}

static uint16_t *avail_event(struct rig *r)
{
    return (uint16_t *)&used(r)->ring[r->vq.size];
}

/* Configures the queue (size, rings at their usual places) with both ring indexes at start. */
static void configure(struct rig *r, uint16_t size, uint16_t start)
{
    virtq_reset(&r->vq);
    memset(r->ram, 0, DATA_GPA);
    r->vq.size = size;
    r->vq.desc_gpa = DESC_GPA;
    r->vq.avail_gpa = AVAIL_GPA;
    r->vq.used_gpa = USED_GPA;
    /* As after a snapshot restore: the device's indexes and the rings agree. */
    r->vq.last_avail_idx = start;
    r->vq.used_idx = start;
    avail(r)->idx = start;
    used(r)->idx = start;
    r->drv_avail = start;
    r->ch.cap = SEG_CAP;
}

static void setup_queue(struct rig *r, uint16_t size, uint16_t start, uint64_t features)
{
    configure(r, size, start);
    assert_int_equal(virtq_enable(&r->vq, features), 0);
    assert_true(r->vq.ready);
}

/* Writes descriptor i of the table at table_gpa. */
static void set_desc(struct rig *r, uint64_t table_gpa, unsigned i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    struct virtq_desc d = {.addr = addr, .len = len, .flags = flags, .next = next};
    memcpy(r->ram + table_gpa + 16 * (uint64_t)i, &d, sizeof(d));
}

/* The driver makes the chain at head available (entry, then idx). */
static void add_head(struct rig *r, uint16_t head)
{
    avail(r)->ring[r->drv_avail & (r->vq.size - 1)] = head;
    r->drv_avail++;
    avail(r)->idx = r->drv_avail;
}

static int pop(struct rig *r)
{
    return virtq_pop(&r->vq, &r->ch);
}

static void assert_seg(struct rig *r, unsigned i, uint64_t gpa, uint32_t len)
{
    assert_ptr_equal(r->segs[i].addr, r->ram + gpa);
    assert_int_equal(r->segs[i].len, len);
}

static void test_init_reset(void **state)
{
    struct rig *r = *state;
    assert_int_equal(r->vq.size, MAX_SIZE);
    assert_false(r->vq.ready);
    /* A queue that is not ready has no work and takes no buffers. */
    assert_int_equal(pop(r), 0);
    assert_int_equal(virtq_push(&r->vq, 0, 0), -EIO);
    assert_false(virtq_need_interrupt(&r->vq));
    assert_false(virtq_enable_notify(&r->vq));

    setup_queue(r, QSIZE, 7, F_ALL);
    virtq_reset(&r->vq);
    assert_false(r->vq.ready);
    assert_false(r->vq.broken);
    assert_int_equal(r->vq.size, MAX_SIZE);
    assert_int_equal(r->vq.desc_gpa, 0);
    assert_int_equal(r->vq.used_gpa, 0);
    assert_int_equal(r->vq.last_avail_idx, 0);
    assert_int_equal(r->vq.used_idx, 0);
    assert_int_equal(r->vq.features, 0);
    assert_ptr_equal(r->vq.gm, &r->gm);
}

struct enable_case {
    const char *name;
    uint16_t size;
    uint64_t desc, avail, used, features;
};

static void test_enable_checks(void **state)
{
    struct rig *r = *state;
    static const struct enable_case bad[] = {
        {"size 0", 0, DESC_GPA, AVAIL_GPA, USED_GPA, F_ALL},
        {"size 3", 3, DESC_GPA, AVAIL_GPA, USED_GPA, F_ALL},
        {"size 48", 48, DESC_GPA, AVAIL_GPA, USED_GPA, F_ALL},
        {"size > max", 2 * MAX_SIZE, DESC_GPA, AVAIL_GPA, USED_GPA, F_ALL},
        {"size 32768 > max", 32768, DESC_GPA, AVAIL_GPA, USED_GPA, F_ALL},
        {"legacy", QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, F_INDIRECT | F_EVENT},
        {"desc misaligned", QSIZE, DESC_GPA + 8, AVAIL_GPA, USED_GPA, F_ALL},
        {"avail misaligned", QSIZE, DESC_GPA, AVAIL_GPA + 1, USED_GPA, F_ALL},
        {"used misaligned", QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA + 2, F_ALL},
        {"desc past RAM", QSIZE, RAM_SIZE, AVAIL_GPA, USED_GPA, F_ALL},
        {"desc straddles end", QSIZE, RAM_SIZE - 16 * QSIZE + 16, AVAIL_GPA, USED_GPA, F_ALL},
        /* The trailing event fields count even without EVENT_IDX. */
        {"avail event straddles", QSIZE, DESC_GPA, RAM_SIZE - 4 - 2 * QSIZE, USED_GPA, F_V1},
        {"used event straddles", QSIZE, DESC_GPA, AVAIL_GPA, RAM_SIZE - 4 - 8 * QSIZE, F_V1},
        {"avail wraps", QSIZE, DESC_GPA, UINT64_MAX - 1, USED_GPA, F_ALL},
        {"used wraps", QSIZE, DESC_GPA, AVAIL_GPA, UINT64_MAX - 3, F_ALL},
        {"desc over avail", QSIZE, AVAIL_GPA - 16 * QSIZE + 16, AVAIL_GPA, USED_GPA, F_ALL},
        {"avail over desc", QSIZE, DESC_GPA, DESC_GPA + 16 * QSIZE - 2, USED_GPA, F_ALL},
        {"used over avail", QSIZE, DESC_GPA, AVAIL_GPA, AVAIL_GPA + 4, F_ALL},
        {"used's avail_event over avail", QSIZE, DESC_GPA, AVAIL_GPA, AVAIL_GPA - 8 * QSIZE - 4,
         F_ALL},
        {"used over desc", QSIZE, DESC_GPA, AVAIL_GPA, DESC_GPA + 128, F_ALL},
        {"all in one place", QSIZE, DESC_GPA, DESC_GPA, DESC_GPA, F_ALL},
    };

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        configure(r, bad[i].size, 0);
        r->vq.desc_gpa = bad[i].desc;
        r->vq.avail_gpa = bad[i].avail;
        r->vq.used_gpa = bad[i].used;
        int ret = virtq_enable(&r->vq, bad[i].features);
        if (ret != -EINVAL || !r->vq.broken || r->vq.ready || !r->vq.broken_reason[0])
            fail_msg("%s: enable = %d, broken %d, ready %d", bad[i].name, ret, r->vq.broken,
                     r->vq.ready);
        /* Sticky: enabling again does not mend it, reset does. */
        assert_int_equal(virtq_enable(&r->vq, bad[i].features), -EIO);
        assert_int_equal(pop(r), -EIO);
        virtq_reset(&r->vq);
        assert_false(r->vq.broken);
        assert_int_equal(r->vq.broken_reason[0], 0);
    }

    /* Rings that end exactly where RAM (or the next ring) begins are fine. */
    configure(r, QSIZE, 0);
    r->vq.desc_gpa = RAM_SIZE - 16 * QSIZE;
    r->vq.avail_gpa = RAM_SIZE - 16 * QSIZE - virtq_avail_bytes(QSIZE);
    r->vq.used_gpa = RAM_SIZE - 16 * QSIZE - 8 * 1024;
    assert_int_equal(virtq_enable(&r->vq, F_V1), 0);

    /* A good enable clears used->flags and, with EVENT_IDX, asks for the next entry. */
    configure(r, QSIZE, 40000);
    used(r)->flags = 0xffff;
    *avail_event(r) = 0x1234;
    assert_int_equal(virtq_enable(&r->vq, F_ALL), 0);
    assert_true(r->vq.ready);
    assert_true(r->vq.indirect);
    assert_true(r->vq.event_idx);
    assert_int_equal(r->vq.features, F_ALL);
    assert_int_equal(used(r)->flags, 0);
    assert_int_equal(*avail_event(r), 40000);
    assert_int_equal(r->vq.last_avail_idx, 40000);
    assert_int_equal(r->vq.used_idx, 40000);

    /* The largest queue the spec allows. */
    virtq_init(&r->vq, &r->gm, VIRTQ_MAX_SIZE);
    r->vq.desc_gpa = 0;
    r->vq.avail_gpa = 16 * VIRTQ_MAX_SIZE;
    r->vq.used_gpa = 16 * VIRTQ_MAX_SIZE + 2 * VIRTQ_MAX_SIZE + 8;
    assert_int_equal(r->vq.size, VIRTQ_MAX_SIZE);
    assert_int_equal(virtq_enable(&r->vq, F_V1), 0);
    virtq_init(&r->vq, &r->gm, MAX_SIZE);
}

/*
 * The alignment checks hold for the guest address and for the host address
 * alike: RAM seen through a host base 8 bytes off makes an aligned gpa
 * misaligned on the host and a misaligned one aligned.
 */
static void test_enable_alignment(void **state)
{
    struct rig *r = *state;
    struct guest_mem gm;
    static const struct {
        uint64_t desc, avail, used;
    } bad[] = {
        {0x0000, 0x1000, 0x2000}, /* desc aligned as a gpa only */
        {0x0008, 0x1000, 0x2000}, /* desc aligned on the host only */
        {0x0008, 0x1001, 0x2000},
        {0x0008, 0x1000, 0x2002},
    };

    gm_init_fake(&gm, r->ram + 8, RAM_SIZE - 8);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        virtq_init(&r->vq, &gm, QSIZE);
        r->vq.desc_gpa = bad[i].desc;
        r->vq.avail_gpa = bad[i].avail;
        r->vq.used_gpa = bad[i].used;
        if (virtq_enable(&r->vq, F_ALL) != -EINVAL)
            fail_msg("rings at 0x%llx/0x%llx/0x%llx on a host base 8 bytes off were accepted",
                     (unsigned long long)bad[i].desc, (unsigned long long)bad[i].avail,
                     (unsigned long long)bad[i].used);
    }
    virtq_init(&r->vq, &r->gm, MAX_SIZE);
}

/*
 * Rings at the very end of RAM, right before the guard page: indexes one past
 * the descriptor table or the rings must never be followed there.
 */
static void test_rings_at_ram_end(void **state)
{
    struct rig *r = *state;
    const uint64_t desc = RAM_SIZE - virtq_desc_bytes(QSIZE);
    const uint64_t avail = desc - virtq_avail_bytes(QSIZE) - 2; /* keep used 4-aligned */
    const uint64_t used = avail - virtq_used_bytes(QSIZE) - 2;
    const uint16_t heads[] = {QSIZE, QSIZE - 1, QSIZE - 1};
    const uint16_t nexts[] = {0, QSIZE, 0};

    for (size_t i = 0; i < ARRAY_SIZE(heads); i++) {
        virtq_reset(&r->vq);
        memset(r->ram + used, 0, RAM_SIZE - used);
        r->vq.size = QSIZE;
        r->vq.desc_gpa = desc;
        r->vq.avail_gpa = avail;
        r->vq.used_gpa = used;
        assert_int_equal(virtq_enable(&r->vq, F_ALL), 0);
        set_desc(r, desc, QSIZE - 1, DATA_GPA, 16, nexts[i] ? VIRTQ_DESC_F_NEXT : 0, nexts[i]);
        struct virtq_avail *av = (struct virtq_avail *)(r->ram + avail);
        av->ring[0] = heads[i];
        av->idx = 1;
        int ret = pop(r);
        if (i == 2) {
            /* The good chain: taken and given back through the used ring at the end. */
            assert_int_equal(ret, 1);
            assert_int_equal(virtq_push(&r->vq, QSIZE - 1, 16), 0);
            struct virtq_used *u = (struct virtq_used *)(r->ram + used);
            assert_int_equal(u->idx, 1);
            assert_int_equal(u->ring[0].id, QSIZE - 1);
            assert_true(virtq_need_interrupt(&r->vq));
        } else {
            assert_int_equal(ret, -EIO);
            assert_true(r->vq.broken);
        }
    }
}

/* Configuration written while the queue is ready changes nothing the queue uses. */
static void test_config_frozen_when_ready(void **state)
{
    struct rig *r = *state;
    setup_queue(r, 4, 0, F_V1);
    r->vq.size = MAX_SIZE;
    r->vq.used_gpa = DATA_GPA;
    set_desc(r, DESC_GPA, 3, USED_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 3);
    assert_int_equal(pop(r), -EIO); /* still over the used ring */

    setup_queue(r, 4, 0, F_V1);
    r->vq.size = MAX_SIZE;
    set_desc(r, DESC_GPA, 5, DATA_GPA, 16, 0, 0);
    avail(r)->ring[0] = 5;
    avail(r)->idx = 1;
    assert_int_equal(pop(r), -EIO); /* head 5 is beyond the enabled size */
    assert_non_null(strstr(r->vq.broken_reason, "beyond the size 4"));
}

static void test_single_readable(void **state)
{
    struct rig *r = *state;
    setup_queue(r, QSIZE, 0, F_V1);

    set_desc(r, DESC_GPA, 0, DATA_GPA, 100, 0, 0);
    add_head(r, 0);
    assert_int_equal(pop(r), 1);
    assert_int_equal(r->ch.head, 0);
    assert_int_equal(r->ch.nr_out, 1);
    assert_int_equal(r->ch.nr_in, 0);
    assert_int_equal(r->ch.out_bytes, 100);
    assert_int_equal(r->ch.in_bytes, 0);
    assert_seg(r, 0, DATA_GPA, 100);
    assert_int_equal(pop(r), 0);
    assert_int_equal(r->vq.last_avail_idx, 1);

    assert_int_equal(virtq_push(&r->vq, 0, 0), 0);
    assert_int_equal(used(r)->idx, 1);
    assert_int_equal(used(r)->ring[0].id, 0);
    assert_int_equal(used(r)->ring[0].len, 0);
    assert_true(virtq_need_interrupt(&r->vq));
    assert_false(virtq_need_interrupt(&r->vq)); /* nothing new */
    assert_int_equal(pop(r), 0);
    assert_false(r->vq.broken);

    /* The device may be asked to read the rings themselves (harmless), right up to them. */
    set_desc(r, DESC_GPA, 1, AVAIL_GPA, 4096, VIRTQ_DESC_F_NEXT, 2);
    set_desc(r, DESC_GPA, 2, USED_GPA - 8, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
    set_desc(r, DESC_GPA, 3, USED_GPA + virtq_used_bytes(QSIZE), 8, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 1);
    assert_int_equal(pop(r), 1);
    assert_int_equal(r->ch.nr_out, 1);
    assert_int_equal(r->ch.nr_in, 2);
    assert_seg(r, 0, AVAIL_GPA, 4096);
}

/* A chain of four scattered descriptors: two readable, then two writable. */
static void test_chain_out_in(void **state)
{
    struct rig *r = *state;
    setup_queue(r, QSIZE, 0, F_V1);

    set_desc(r, DESC_GPA, 3, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 7);
    set_desc(r, DESC_GPA, 7, DATA_GPA + 0x1000, 200, VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, DESC_GPA, 1, DATA_GPA + 0x3000, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 12);
    set_desc(r, DESC_GPA, 12, RAM_SIZE - 1, 1, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 3);

    assert_int_equal(pop(r), 1);
    assert_int_equal(r->ch.head, 3);
    assert_int_equal(r->ch.nr_out, 2);
    assert_int_equal(r->ch.nr_in, 2);
    assert_int_equal(r->ch.out_bytes, 216);
    assert_int_equal(r->ch.in_bytes, 513);
    assert_seg(r, 0, DATA_GPA, 16);
    assert_seg(r, 1, DATA_GPA + 0x1000, 200);
    assert_seg(r, 2, DATA_GPA + 0x3000, 512);
    assert_seg(r, 3, RAM_SIZE - 1, 1);

    /* Reading the readable part across its segments. */
    for (unsigned i = 0; i < 16; i++)
        r->ram[DATA_GPA + i] = (uint8_t)i;
    for (unsigned i = 0; i < 200; i++)
        r->ram[DATA_GPA + 0x1000 + i] = (uint8_t)(16 + i);
    uint8_t buf[300];
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(virtq_chain_read(&r->ch, 10, buf, 20), 20);
    for (unsigned i = 0; i < 20; i++)
        assert_int_equal(buf[i], 10 + i);
    assert_int_equal(virtq_chain_read(&r->ch, 0, buf, sizeof(buf)), 216);
    assert_int_equal(buf[215], 215);
    assert_int_equal(virtq_chain_read(&r->ch, 216, buf, 1), 0);

    /* Writing the writable part: a status byte at its very end, in the last byte of RAM. */
    uint8_t status = 0x42;
    assert_int_equal(virtq_chain_write(&r->ch, r->ch.in_bytes - 1, &status, 1), 1);
    assert_int_equal(r->ram[RAM_SIZE - 1], 0x42);
    memset(buf, 0x77, sizeof(buf));
    assert_int_equal(virtq_chain_write(&r->ch, 500, buf, 20), 13);
    assert_int_equal(r->ram[DATA_GPA + 0x3000 + 499], 0);
    assert_int_equal(r->ram[DATA_GPA + 0x3000 + 500], 0x77);
    assert_int_equal(r->ram[RAM_SIZE - 1], 0x77);

    assert_int_equal(virtq_push(&r->vq, 3, 513), 0);
    assert_int_equal(used(r)->idx, 1);
    assert_int_equal(used(r)->ring[0].id, 3);
    assert_int_equal(used(r)->ring[0].len, 513);
}

/* Direct descriptors, then an indirect table (at an aligned and an unaligned address). */
static void test_indirect(void **state)
{
    struct rig *r = *state;
    static const uint64_t tables[] = {TABLE_GPA, TABLE_GPA + 0x104};

    for (size_t t = 0; t < ARRAY_SIZE(tables); t++) {
        setup_queue(r, QSIZE, 0, F_ALL);
        uint64_t tbl = tables[t];
        set_desc(r, DESC_GPA, 5, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 6);
        /* The pointer's WRITE flag is ignored (2.7.5.3.2). */
        set_desc(r, DESC_GPA, 6, tbl, 4 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
        set_desc(r, tbl, 0, DATA_GPA + 0x100, 32, VIRTQ_DESC_F_NEXT, 2);
        set_desc(r, tbl, 1, RAM_SIZE, 1, 0, 0); /* not in the chain: never looked at */
        set_desc(r, tbl, 2, DATA_GPA + 0x200, 4096, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
        set_desc(r, tbl, 3, DATA_GPA + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0);
        add_head(r, 5);

        assert_int_equal(pop(r), 1);
        assert_int_equal(r->ch.head, 5);
        assert_int_equal(r->ch.nr_out, 2);
        assert_int_equal(r->ch.nr_in, 2);
        assert_seg(r, 0, DATA_GPA, 16);
        assert_seg(r, 1, DATA_GPA + 0x100, 32);
        assert_seg(r, 2, DATA_GPA + 0x200, 4096);
        assert_seg(r, 3, DATA_GPA + 0x2000, 1);
        assert_int_equal(virtq_push(&r->vq, 5, 4097), 0);
        assert_false(r->vq.broken);
    }

    /* An indirect table alone, larger than the queue (Linux does this), fills segs. */
    setup_queue(r, 4, 0, F_ALL);
    set_desc(r, DESC_GPA, 2, TABLE_GPA, SEG_CAP * 16, VIRTQ_DESC_F_INDIRECT, 0);
    for (unsigned i = 0; i < SEG_CAP; i++)
        set_desc(r, TABLE_GPA, i, DATA_GPA + 64 * i, 64,
                 (i >= SEG_CAP / 2 ? VIRTQ_DESC_F_WRITE : 0) |
                     (i + 1 < SEG_CAP ? VIRTQ_DESC_F_NEXT : 0),
                 (uint16_t)(i + 1));
    add_head(r, 2);
    assert_int_equal(pop(r), 1);
    assert_int_equal(r->ch.nr_out, SEG_CAP / 2);
    assert_int_equal(r->ch.nr_in, SEG_CAP / 2);
    assert_seg(r, SEG_CAP - 1, DATA_GPA + 64 * (SEG_CAP - 1), 64);
}

/*
 * Indexes run past 65535 and ring positions wrap many times: a queue of 4
 * starting at 65530, with the driver adding 1 to 4 chains at a time and the
 * device completing them in order or in reverse.
 */
static void test_wrap(void **state)
{
    struct rig *r = *state;
    const uint16_t size = 4;
    setup_queue(r, size, 65530, F_V1);
    for (unsigned i = 0; i < size; i++)
        set_desc(r, DESC_GPA, i, DATA_GPA + 0x100 * i, 8 + i, VIRTQ_DESC_F_WRITE, 0);

    uint16_t next_head = 0;
    uint16_t used_idx = 65530;
    for (unsigned round = 0; round < 60; round++) {
        unsigned k = 1 + round % size;
        uint16_t heads[4];
        for (unsigned j = 0; j < k; j++) {
            heads[j] = next_head;
            add_head(r, next_head);
            next_head = (next_head + 1) % size;
        }
        for (unsigned j = 0; j < k; j++) {
            assert_int_equal(pop(r), 1);
            assert_int_equal(r->ch.head, heads[j]);
            assert_int_equal(r->ch.nr_in, 1);
            assert_seg(r, 0, DATA_GPA + 0x100 * heads[j], 8 + heads[j]);
        }
        assert_int_equal(pop(r), 0);
        for (unsigned j = 0; j < k; j++) {
            uint16_t h = round % 2 ? heads[k - 1 - j] : heads[j];
            assert_int_equal(virtq_push(&r->vq, h, 100 + h), 0);
            assert_int_equal(used(r)->ring[used_idx % size].id, h);
            assert_int_equal(used(r)->ring[used_idx % size].len, 100 + h);
            used_idx++;
            assert_int_equal(used(r)->idx, used_idx);
        }
    }
    assert_int_equal(r->vq.last_avail_idx, used_idx);
    assert_true(used_idx < 65530); /* it wrapped */
    assert_false(r->vq.broken);
}

/* A full ring: size chains at once, completed in reverse order. */
static void test_full_ring(void **state)
{
    struct rig *r = *state;
    setup_queue(r, QSIZE, 65535, F_V1);
    for (unsigned i = 0; i < QSIZE; i++) {
        set_desc(r, DESC_GPA, i, DATA_GPA + 16 * i, 16, 0, 0);
        add_head(r, (uint16_t)(QSIZE - 1 - i));
    }
    for (unsigned i = 0; i < QSIZE; i++) {
        assert_int_equal(pop(r), 1);
        assert_int_equal(r->ch.head, QSIZE - 1 - i);
    }
    assert_int_equal(pop(r), 0);
    for (unsigned i = 0; i < QSIZE; i++)
        assert_int_equal(virtq_push(&r->vq, (uint16_t)i, 0), 0);
    assert_int_equal(used(r)->idx, (uint16_t)(65535 + QSIZE));
    /* Pushing more than was popped is a device bug, not a broken queue. */
    assert_int_equal(virtq_push(&r->vq, 0, 0), -EINVAL);
    assert_int_equal(virtq_push(&r->vq, QSIZE, 0), -EINVAL);
    assert_false(r->vq.broken);
    assert_int_equal(used(r)->idx, (uint16_t)(65535 + QSIZE));
}

/* GET /stats' counters: chains kept (an unpop gives them back), every used length pushed. */
static void test_counters(void **state)
{
    struct rig *r = *state;
    setup_queue(r, QSIZE, 0, F_V1);
    for (unsigned i = 0; i < 4; i++) {
        set_desc(r, DESC_GPA, i, DATA_GPA + 16 * i, 16, 0, 0);
        add_head(r, (uint16_t)i);
    }
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(pop(r), 1);
    assert_int_equal(r->vq.bytes_out, 64); /* four readable 16-byte buffers */
    virtq_unpop(&r->vq, 2, 32);            /* no room for the frame: two chains given back */
    assert_int_equal(r->vq.chains, 2);
    assert_int_equal(r->vq.bytes_out, 32);
    struct virtq_used_elem e[2] = {{.id = 0, .len = 100}, {.id = 1, .len = 28}};
    assert_int_equal(virtq_push_many(&r->vq, e, 2), 0);
    assert_int_equal(r->vq.bytes_in, 128);
    assert_int_equal(pop(r), 1);
    assert_int_equal(virtq_push(&r->vq, 2, 7), 0);
    assert_int_equal(r->vq.chains, 3);
    assert_int_equal(r->vq.bytes_out, 48);
    assert_int_equal(r->vq.bytes_in, 135);
}

struct event_case {
    uint16_t event, new_idx, old;
    bool want;
};

/* The spec's vring_need_event() rule, including across the 16-bit wrap. */
static void test_need_event_rule(void **state)
{
    (void)state;
    static const struct event_case cases[] = {
        {0, 1, 0, true},
        {1, 1, 0, false},
        {0, 2, 0, true},
        {1, 2, 0, true},
        {2, 2, 0, false},
        {5, 10, 3, true},
        {3, 10, 3, true},
        {9, 10, 3, true},
        {2, 10, 3, false},
        {10, 10, 3, false},
        {5, 5, 5, false},
        {65535, 0, 65535, true},
        {65535, 1, 65534, true},
        {0, 1, 65534, true},
        {65533, 1, 65534, false},
        {1, 1, 65534, false},
        {65534, 1, 65534, true},
        {100, 99, 90, false},
        {32768, 32769, 0, true},
        {0, 32768, 0, true},
        {40000, 39999, 40000, true},
        {40000, 39999, 40001, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct event_case *c = &cases[i];
        if (virtq_need_event(c->event, c->new_idx, c->old) != c->want)
            fail_msg("need_event(%u, %u, %u) != %d", c->event, c->new_idx, c->old, c->want);
    }
}

struct irq_case {
    uint16_t start;      /* used idx when the decision before was taken */
    uint16_t used_event; /* what the driver asks for */
    unsigned pushes;
    bool want;
};

/* The device's decision with EVENT_IDX, on a ring of 16 entries. */
static void test_need_interrupt_event_idx(void **state)
{
    struct rig *r = *state;
    static const struct irq_case cases[] = {
        {0, 0, 1, true},          {0, 1, 1, false},     {0, 1, 2, true},
        {10, 12, 3, true},        {10, 13, 3, false},   {10, 9, 3, false},
        {65535, 65535, 1, true},  {65535, 0, 1, false}, {65535, 0, 2, true},
        {65530, 2, 9, true},      {65530, 3, 9, false}, {65530, 65529, 9, false},
        {65534, 65534, 0, false}, {100, 100, 16, true}, {100, 115, 16, true},
        {100, 116, 16, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct irq_case *c = &cases[i];
        /* One chain before, so that the decision for it is the first after enable. */
        setup_queue(r, QSIZE, (uint16_t)(c->start - 1), F_ALL);
        for (unsigned j = 0; j < QSIZE; j++)
            set_desc(r, DESC_GPA, j, DATA_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
        *used_event(r) = (uint16_t)(c->start + 1000); /* says no: the first decision is yes */
        add_head(r, 0);
        assert_int_equal(pop(r), 1);
        assert_int_equal(virtq_push(&r->vq, 0, 1), 0);
        assert_true(virtq_need_interrupt(&r->vq));

        *used_event(r) = c->used_event;
        avail(r)->flags = VIRTQ_AVAIL_F_NO_INTERRUPT; /* ignored with EVENT_IDX */
        for (unsigned j = 0; j < c->pushes; j++)
            add_head(r, (uint16_t)j);
        for (unsigned j = 0; j < c->pushes; j++) {
            assert_int_equal(pop(r), 1);
            assert_int_equal(virtq_push(&r->vq, r->ch.head, 1), 0);
        }
        bool got = virtq_need_interrupt(&r->vq);
        if (got != c->want)
            fail_msg("start %u, used_event %u, %u pushes: interrupt %d", c->start, c->used_event,
                     c->pushes, got);
        /* Nothing new: no interrupt, whatever used_event says. */
        *used_event(r) = (uint16_t)(c->start + c->pushes - 1);
        assert_false(virtq_need_interrupt(&r->vq));
    }
}

/* Without EVENT_IDX, VIRTQ_AVAIL_F_NO_INTERRUPT decides. */
static void test_no_interrupt_flag(void **state)
{
    struct rig *r = *state;
    setup_queue(r, QSIZE, 0, F_V1 | F_INDIRECT);
    set_desc(r, DESC_GPA, 0, DATA_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
    *used_event(r) = 5000; /* ignored without EVENT_IDX */

    static const struct {
        uint16_t flags;
        bool want;
    } steps[] = {{0, true},
                 {VIRTQ_AVAIL_F_NO_INTERRUPT, false},
                 {0, true},
                 {VIRTQ_AVAIL_F_NO_INTERRUPT, false},
                 {VIRTQ_AVAIL_F_NO_INTERRUPT, false}};
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        add_head(r, 0);
        assert_int_equal(pop(r), 1);
        assert_int_equal(virtq_push(&r->vq, 0, 1), 0);
        avail(r)->flags = steps[i].flags;
        assert_int_equal(virtq_need_interrupt(&r->vq), steps[i].want);
        avail(r)->flags = 0;
        assert_false(virtq_need_interrupt(&r->vq)); /* nothing pushed since */
    }
}

/* Kick suppression and the re-check that closes the lost-wakeup window. */
static void test_notify_suppression(void **state)
{
    struct rig *r = *state;

    /* Without EVENT_IDX: used->flags. */
    setup_queue(r, QSIZE, 0, F_V1);
    set_desc(r, DESC_GPA, 0, DATA_GPA, 1, 0, 0);
    virtq_disable_notify(&r->vq);
    assert_int_equal(used(r)->flags, VIRTQ_USED_F_NO_NOTIFY);
    assert_false(virtq_enable_notify(&r->vq));
    assert_int_equal(used(r)->flags, 0);
    virtq_disable_notify(&r->vq);
    add_head(r, 0); /* the driver adds while kicks are off: no kick comes */
    assert_true(virtq_enable_notify(&r->vq));
    assert_int_equal(used(r)->flags, 0);
    assert_int_equal(pop(r), 1);
    assert_false(virtq_enable_notify(&r->vq));

    /* With EVENT_IDX: avail_event, which disabling leaves behind. */
    setup_queue(r, QSIZE, 65534, F_ALL);
    assert_int_equal(*avail_event(r), 65534);
    set_desc(r, DESC_GPA, 0, DATA_GPA, 1, 0, 0);
    for (unsigned i = 0; i < 3; i++)
        add_head(r, 0);
    virtq_disable_notify(&r->vq);
    assert_int_equal(used(r)->flags, 0);
    assert_int_equal(*avail_event(r), 65534);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(pop(r), 1);
        assert_int_equal(virtq_push(&r->vq, 0, 0), 0);
    }
    /* The driver's check for its next entry, before and after the device re-enables. */
    assert_false(virtq_need_event(*avail_event(r), 2, 1));
    assert_false(virtq_enable_notify(&r->vq));
    assert_int_equal(*avail_event(r), 1);
    assert_true(virtq_need_event(*avail_event(r), 2, 1));
    add_head(r, 0);
    assert_true(virtq_enable_notify(&r->vq));
    assert_int_equal(pop(r), 1);
    assert_false(virtq_enable_notify(&r->vq));
    assert_int_equal(*avail_event(r), 2);
}

/*
 * Hostile rings. Each case sets up the rings as a driver could; the next pop
 * must fail, mark the queue broken with a reason and write nothing.
 */
struct hostile_case {
    const char *name;
    uint64_t features;
    void (*build)(struct rig *r);
};

static void h_desc_past_ram(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, RAM_SIZE, 16, 0, 0);
    add_head(r, 0);
}

static void h_desc_straddles_end(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, RAM_SIZE - 8, 16, 0, 0);
    add_head(r, 0);
}

static void h_desc_wraps(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, UINT64_MAX - 7, 16, 0, 0);
    add_head(r, 0);
}

static void h_desc_huge(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, UINT32_MAX, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 0);
}

static void h_second_desc_past_ram(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, DESC_GPA, 1, 1ULL << 40, 16, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 0);
}

static void h_zero_len(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, DESC_GPA, 1, DATA_GPA, 0, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 0);
}

static void h_write_then_read(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, DESC_GPA, 1, DATA_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    set_desc(r, DESC_GPA, 2, DATA_GPA, 16, 0, 0);
    add_head(r, 0);
}

static void h_self_loop(struct rig *r)
{
    set_desc(r, DESC_GPA, 4, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 4);
    add_head(r, 4);
}

static void h_loop_two(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, DESC_GPA, 1, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
    add_head(r, 0);
}

/* Through every descriptor of the table, then back to the start. */
static void h_loop_whole_table(struct rig *r)
{
    for (unsigned i = 0; i < QSIZE; i++)
        set_desc(r, DESC_GPA, i, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, (uint16_t)((i + 1) % QSIZE));
    add_head(r, 0);
}

/* Just past the table lies what looks like a good descriptor: it must not be read. */
static void h_next_beyond(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, QSIZE);
    set_desc(r, DESC_GPA, QSIZE, DATA_GPA, 16, 0, 0);
    add_head(r, 0);
}

static void h_head_beyond(struct rig *r)
{
    set_desc(r, DESC_GPA, QSIZE, DATA_GPA, 16, 0, 0);
    add_head(r, QSIZE);
}

static void h_head_ffff(struct rig *r)
{
    add_head(r, 0xffff);
}

static void h_avail_jump(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, 0, 0);
    avail(r)->idx = (uint16_t)(r->drv_avail + QSIZE + 1);
}

static void h_avail_backwards(struct rig *r)
{
    avail(r)->idx = (uint16_t)(r->drv_avail - 1);
}

/* size chains in flight, then one more. */
static void h_too_many_in_flight(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, 0, 0);
    for (unsigned i = 0; i < QSIZE; i++)
        add_head(r, 0);
    for (unsigned i = 0; i < QSIZE; i++)
        assert_int_equal(pop(r), 1);
    add_head(r, 0);
}

/* Five buffers for a device that takes four. */
static void h_over_cap(struct rig *r)
{
    for (unsigned i = 0; i < 5; i++)
        set_desc(r, DESC_GPA, i, DATA_GPA, 16, i < 4 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    add_head(r, 0);
    r->ch.cap = 4;
}

static void h_indirect_common(struct rig *r, uint64_t table, uint32_t len, uint16_t flags)
{
    set_desc(r, DESC_GPA, 0, table, len, VIRTQ_DESC_F_INDIRECT | flags, 1);
    set_desc(r, DESC_GPA, 1, DATA_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
    set_desc(r, TABLE_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, TABLE_GPA, 1, DATA_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 0);
}

static void h_indirect_unnegotiated(struct rig *r)
{
    h_indirect_common(r, TABLE_GPA, 32, 0);
}

static void h_indirect_with_next(struct rig *r)
{
    h_indirect_common(r, TABLE_GPA, 32, VIRTQ_DESC_F_NEXT);
}

static void h_indirect_zero_len(struct rig *r)
{
    h_indirect_common(r, TABLE_GPA, 0, 0);
}

/* One good entry and half of another. */
static void h_indirect_len_24(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, TABLE_GPA, 24, VIRTQ_DESC_F_INDIRECT, 0);
    set_desc(r, TABLE_GPA, 0, DATA_GPA, 16, 0, 0);
    add_head(r, 0);
}

static void h_indirect_past_ram(struct rig *r)
{
    h_indirect_common(r, RAM_SIZE - 16, 32, 0);
}

static void h_indirect_wraps(struct rig *r)
{
    h_indirect_common(r, UINT64_MAX - 15, 32, 0);
}

static void h_indirect_nested(struct rig *r)
{
    h_indirect_common(r, TABLE_GPA, 32, 0);
    set_desc(r, TABLE_GPA, 1, TABLE_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
    set_desc(r, TABLE_GPA + 0x100, 0, DATA_GPA, 16, 0, 0);
}

static void h_indirect_loop(struct rig *r)
{
    h_indirect_common(r, TABLE_GPA, 32, 0);
    set_desc(r, TABLE_GPA, 1, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
}

/* The table's own next points past the table (though inside the queue's size). */
static void h_indirect_next_beyond(struct rig *r)
{
    h_indirect_common(r, TABLE_GPA, 32, 0);
    set_desc(r, TABLE_GPA, 1, DATA_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    set_desc(r, TABLE_GPA, 2, DATA_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
}

static void h_indirect_write_then_read(struct rig *r)
{
    h_indirect_common(r, TABLE_GPA, 32, 0);
    set_desc(r, TABLE_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, TABLE_GPA, 1, DATA_GPA, 16, 0, 0);
}

/* A writable direct descriptor, then a table that starts readable. */
static void h_direct_write_indirect_read(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, DESC_GPA, 1, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    set_desc(r, TABLE_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, TABLE_GPA, 1, DATA_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 0);
}

static void h_indirect_entry_past_ram(struct rig *r)
{
    h_indirect_common(r, TABLE_GPA, 32, 0);
    set_desc(r, TABLE_GPA, 1, RAM_SIZE - 4, 8, VIRTQ_DESC_F_WRITE, 0);
}

static void h_indirect_entry_zero_len(struct rig *r)
{
    h_indirect_common(r, TABLE_GPA, 32, 0);
    set_desc(r, TABLE_GPA, 1, DATA_GPA, 0, VIRTQ_DESC_F_WRITE, 0);
}

/* A table of SEG_CAP + 1 buffers. */
static void h_indirect_over_cap(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, TABLE_GPA, (SEG_CAP + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
    for (unsigned i = 0; i <= SEG_CAP; i++)
        set_desc(r, TABLE_GPA, i, DATA_GPA, 16, i < SEG_CAP ? VIRTQ_DESC_F_NEXT : 0,
                 (uint16_t)(i + 1));
    add_head(r, 0);
}

/* A table of 2^28 entries, all chained into one loop but for the first. */
static void h_indirect_huge_table(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, TABLE_GPA, UINT32_MAX & ~15u, VIRTQ_DESC_F_INDIRECT, 0);
    add_head(r, 0);
}

/* Writable buffers over the rings: the device would write its own work. */
static void h_write_over_avail(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(r, DESC_GPA, 1, AVAIL_GPA + 2, 2, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 0);
}

static void h_write_over_used_event(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, AVAIL_GPA + 4 + 2 * QSIZE, 2, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 0);
}

static void h_write_over_desc(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, DESC_GPA + 16 * QSIZE - 1, 4096, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 0);
}

static void h_write_over_used(struct rig *r)
{
    set_desc(r, DESC_GPA, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
    set_desc(r, TABLE_GPA, 0, USED_GPA - 0x100, 0x101, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 0);
}

/* A good chain first, so that the bad one is found at a later ring position. */
static void h_good_then_bad(struct rig *r)
{
    set_desc(r, DESC_GPA, 2, DATA_GPA, 16, 0, 0);
    add_head(r, 2);
    assert_int_equal(pop(r), 1);
    assert_int_equal(virtq_push(&r->vq, 2, 0), 0);
    set_desc(r, DESC_GPA, 3, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 3);
    add_head(r, 3);
}

static const struct hostile_case hostile[] = {
    {"descriptor past RAM", F_ALL, h_desc_past_ram},
    {"descriptor straddles the end of RAM", F_ALL, h_desc_straddles_end},
    {"descriptor address + len wraps", F_ALL, h_desc_wraps},
    {"descriptor of 4 GiB", F_ALL, h_desc_huge},
    {"second descriptor past RAM", F_ALL, h_second_desc_past_ram},
    {"zero-length descriptor", F_ALL, h_zero_len},
    {"readable after writable", F_ALL, h_write_then_read},
    {"descriptor chained to itself", F_ALL, h_self_loop},
    {"two descriptors in a loop", F_ALL, h_loop_two},
    {"loop through the whole table", F_ALL, h_loop_whole_table},
    {"next beyond the queue", F_ALL, h_next_beyond},
    {"head = size", F_ALL, h_head_beyond},
    {"head = 0xffff", F_ALL, h_head_ffff},
    {"avail idx moved by size + 1", F_ALL, h_avail_jump},
    {"avail idx moved backwards", F_ALL, h_avail_backwards},
    {"more than size chains in flight", F_ALL, h_too_many_in_flight},
    {"more buffers than the device's cap", F_ALL, h_over_cap},
    {"indirect without the feature", F_V1 | F_EVENT, h_indirect_unnegotiated},
    {"indirect with NEXT", F_ALL, h_indirect_with_next},
    {"indirect table of 0 bytes", F_ALL, h_indirect_zero_len},
    {"indirect table of 24 bytes", F_ALL, h_indirect_len_24},
    {"indirect table past RAM", F_ALL, h_indirect_past_ram},
    {"indirect table address wraps", F_ALL, h_indirect_wraps},
    {"indirect inside indirect", F_ALL, h_indirect_nested},
    {"loop in an indirect table", F_ALL, h_indirect_loop},
    {"next beyond the indirect table", F_ALL, h_indirect_next_beyond},
    {"readable after writable in a table", F_ALL, h_indirect_write_then_read},
    {"writable direct, readable indirect", F_ALL, h_direct_write_indirect_read},
    {"indirect entry past RAM", F_ALL, h_indirect_entry_past_ram},
    {"zero-length indirect entry", F_ALL, h_indirect_entry_zero_len},
    {"indirect table beyond the cap", F_ALL, h_indirect_over_cap},
    {"indirect table of 4 GiB", F_ALL, h_indirect_huge_table},
    {"a loop after a good chain", F_ALL, h_good_then_bad},
    {"writable buffer over avail->idx", F_ALL, h_write_over_avail},
    {"writable buffer over used_event", F_ALL, h_write_over_used_event},
    {"writable buffer over the descriptors", F_ALL, h_write_over_desc},
    {"writable indirect buffer over the used ring", F_ALL, h_write_over_used},
};

static void test_hostile(void **state)
{
    struct rig *r = *state;
    uint8_t *before = malloc(RAM_SIZE);
    assert_non_null(before);

    for (size_t i = 0; i < ARRAY_SIZE(hostile); i++) {
        const struct hostile_case *c = &hostile[i];
        setup_queue(r, QSIZE, (uint16_t)(i * 4099), c->features);
        c->build(r);
        uint16_t used_before = used(r)->idx;
        uint16_t last_avail = r->vq.last_avail_idx;
        memcpy(before, r->ram, RAM_SIZE);

        int ret = pop(r);
        if (ret != -EIO || !r->vq.broken || !r->vq.broken_reason[0])
            fail_msg("%s: pop = %d, broken %d", c->name, ret, r->vq.broken);
        assert_int_equal(r->ch.nr_out + r->ch.nr_in, 0);
        assert_int_equal(r->vq.last_avail_idx, last_avail);
        /* Sticky, and nothing more reaches the rings. */
        assert_int_equal(pop(r), -EIO);
        assert_int_equal(virtq_push(&r->vq, 0, 0), -EIO);
        assert_false(virtq_need_interrupt(&r->vq));
        assert_false(virtq_enable_notify(&r->vq));
        virtq_disable_notify(&r->vq);
        assert_int_equal(virtq_enable(&r->vq, c->features), -EIO);
        assert_true(r->vq.broken);
        if (memcmp(before, r->ram, RAM_SIZE) != 0)
            fail_msg("%s: guest memory changed", c->name);
        assert_int_equal(used(r)->idx, used_before);

        /* Reset mends it: the same memory, set up afresh, works again. */
        virtq_reset(&r->vq);
        assert_false(r->vq.broken);
        assert_false(r->vq.ready);
        assert_int_equal(pop(r), 0);
        setup_queue(r, QSIZE, 0, F_ALL);
        set_desc(r, DESC_GPA, 9, DATA_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
        add_head(r, 9);
        assert_int_equal(pop(r), 1);
        assert_int_equal(r->ch.head, 9);
        assert_int_equal(virtq_push(&r->vq, 9, 16), 0);
    }
    free(before);
}

/* The smallest queue: a loop of one, and a second chain while the first is in flight. */
static void test_hostile_size_1(void **state)
{
    struct rig *r = *state;
    setup_queue(r, 1, 0, F_ALL);
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
    add_head(r, 0);
    assert_int_equal(pop(r), -EIO);

    setup_queue(r, 1, 0xffff, F_ALL);
    set_desc(r, DESC_GPA, 0, DATA_GPA, 16, 0, 0);
    add_head(r, 0);
    assert_int_equal(pop(r), 1);
    add_head(r, 0); /* a second one while the first is in flight */
    assert_int_equal(pop(r), -EIO);
    assert_true(r->vq.broken);
}

/*
 * Across the 32-bit PCI hole: RAM split at 3 GiB (anonymous, MAP_NORESERVE,
 * barely touched). A buffer that runs from low RAM into the hole, or from the
 * hole into high RAM, is refused; one wholly above 4 GiB is fine.
 */
static void test_across_hole(void **state)
{
    (void)state;
    struct guest_mem gm;
    struct virtq vq;
    struct virtq_seg segs[4];
    struct virtq_chain ch = {.segs = segs, .cap = 4};
    static const struct {
        uint64_t addr;
        uint32_t len;
        bool ok;
    } cases[] = {
        {GM_HOLE_START - 16, 16, true},
        {GM_HOLE_START - 8, 16, false},
        {GM_HOLE_START, 1, false},
        {GM_HIGH_START - 8, 16, false},
        {GM_HIGH_START, 4096, true},
        {GM_HOLE_START - 4096, 0x40002000, false},
        {GM_HIGH_START + 60 * KiB, 8 * KiB, false},
    };

    assert_int_equal(gm_init(&gm, GM_HOLE_START + 64 * KiB), 0);
    assert_int_equal(gm.nr, 2);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        virtq_init(&vq, &gm, 8);
        vq.desc_gpa = 0x1000;
        vq.avail_gpa = 0x2000;
        vq.used_gpa = 0x3000;
        assert_int_equal(virtq_enable(&vq, F_ALL), 0);
        struct virtq_desc d = {.addr = cases[i].addr, .len = cases[i].len};
        memcpy(gm_ptr(&gm, 0x1000, 16), &d, sizeof(d));
        struct virtq_avail *av = gm_ptr(&gm, 0x2000, virtq_avail_bytes(8));
        av->ring[0] = 0;
        av->idx = 1;
        int ret = virtq_pop(&vq, &ch);
        if (cases[i].ok) {
            assert_int_equal(ret, 1);
            assert_ptr_equal(segs[0].addr, gm_ptr(&gm, cases[i].addr, cases[i].len));
        } else {
            if (ret != -EIO || !vq.broken)
                fail_msg("[0x%llx, +0x%x): pop = %d", (unsigned long long)cases[i].addr,
                         cases[i].len, ret);
        }
        av->idx = 0;
    }
    gm_destroy(&gm);
}

/*
 * No lost wake-ups, with a real driver thread against the device thread: the
 * driver kicks only when the device asked (avail_event or used->flags) and
 * sleeps for an interrupt only after asking for one (used_event or
 * NO_INTERRUPT) and looking again, as Linux does; the device sleeps for a kick
 * only when virtq_enable_notify() says so and interrupts only when
 * virtq_need_interrupt() says so. A lost wake-up leaves both asleep: the
 * waits time out and the test fails. Indexes start near 65535 and wrap.
 */
struct race {
    struct rig *r;
    bool event_idx;
    unsigned n;
    sem_t kick, irq;
    atomic_bool failed;
    unsigned done;
};

/* Waits for sem up to 10 s; false on timeout. */
static bool race_wait(sem_t *sem)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    while (sem_timedwait(sem, &ts) < 0)
        if (errno != EINTR)
            return false;
    return true;
}

static void *race_device(void *arg)
{
    struct race *x = arg;
    struct virtq *vq = &x->r->vq;
    struct virtq_seg segs[4];
    struct virtq_chain ch = {.segs = segs, .cap = 4};

    while (x->done < x->n && !atomic_load(&x->failed)) {
        virtq_disable_notify(vq);
        int ret;
        while ((ret = virtq_pop(vq, &ch)) > 0) {
            if (virtq_push(vq, ch.head, 1) != 0)
                atomic_store(&x->failed, true);
            x->done++;
        }
        if (ret < 0)
            atomic_store(&x->failed, true);
        if (virtq_need_interrupt(vq))
            sem_post(&x->irq);
        if (x->done >= x->n || virtq_enable_notify(vq))
            continue;
        if (!race_wait(&x->kick))
            atomic_store(&x->failed, true);
    }
    return NULL;
}

static void race_run(struct rig *r, bool event_idx)
{
    const uint16_t size = 8, start = 60000;
    struct race x = {.r = r, .event_idx = event_idx, .n = 60000};
    uint16_t *avail_idx = &avail(r)->idx, *used_idx = &used(r)->idx;
    uint16_t next = start, last_used = start;
    pthread_t dev;

    setup_queue(r, size, start, F_V1 | (event_idx ? F_EVENT : 0));
    for (unsigned i = 0; i < size; i++)
        set_desc(r, DESC_GPA, i, DATA_GPA + 16 * i, 16, VIRTQ_DESC_F_WRITE, 0);
    if (!event_idx)
        avail(r)->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    assert_int_equal(sem_init(&x.kick, 0, 0), 0);
    assert_int_equal(sem_init(&x.irq, 0, 0), 0);
    assert_int_equal(pthread_create(&dev, NULL, race_device, &x), 0);

    for (unsigned i = 0; i < x.n && !atomic_load(&x.failed); i++) {
        /* A full ring: reclaim, or ask for an interrupt, look again, and sleep. */
        while ((uint16_t)(next - last_used) == size && !atomic_load(&x.failed)) {
            uint16_t u = __atomic_load_n(used_idx, __ATOMIC_ACQUIRE);
            if (u != last_used) {
                for (; last_used != u; last_used++)
                    if (used(r)->ring[last_used % size].id != last_used % size)
                        atomic_store(&x.failed, true);
                continue;
            }
            if (event_idx)
                __atomic_store_n(used_event(r), last_used, __ATOMIC_RELAXED);
            else
                __atomic_store_n(&avail(r)->flags, 0, __ATOMIC_RELAXED);
            atomic_thread_fence(memory_order_seq_cst);
            if (__atomic_load_n(used_idx, __ATOMIC_ACQUIRE) == last_used && !race_wait(&x.irq))
                atomic_store(&x.failed, true);
            if (!event_idx)
                __atomic_store_n(&avail(r)->flags, VIRTQ_AVAIL_F_NO_INTERRUPT, __ATOMIC_RELAXED);
        }
        /* Add the next buffer, publish, and kick if the device asked. */
        uint16_t old = next;
        __atomic_store_n(&avail(r)->ring[next % size], next % size, __ATOMIC_RELAXED);
        __atomic_store_n(avail_idx, ++next, __ATOMIC_RELEASE);
        atomic_thread_fence(memory_order_seq_cst);
        bool kick =
            event_idx
                ? virtq_need_event(__atomic_load_n(avail_event(r), __ATOMIC_RELAXED), next, old)
                : !(__atomic_load_n(&used(r)->flags, __ATOMIC_RELAXED) & VIRTQ_USED_F_NO_NOTIFY);
        if (kick)
            sem_post(&x.kick);
    }
    pthread_join(dev, NULL);
    sem_destroy(&x.kick);
    sem_destroy(&x.irq);
    if (atomic_load(&x.failed))
        fail_msg("%s: a wake-up was lost or the ring went wrong after %u of %u buffers",
                 event_idx ? "EVENT_IDX" : "flags", x.done, x.n);
    assert_int_equal(x.done, x.n);
    assert_int_equal(used(r)->idx, (uint16_t)(start + x.n));
    assert_false(r->vq.broken);
}

static void test_no_lost_wakeup(void **state)
{
    race_run(*state, false);
    race_run(*state, true);
}

/*
 * Save and restore: a queue with two chains done and one in flight, saved,
 * restored into a reset queue with the same rings: the same position and
 * interrupt state, nothing written to the rings, the held chain walked again
 * and the next one popped after it. A broken queue comes back broken; bad
 * states are refused with the queue untouched.
 */
static void test_save_restore(void **state)
{
    struct rig *r = *state;
    struct virtq_state st;
    char why[256];

    setup_queue(r, QSIZE, 0, F_ALL);
    for (uint16_t h = 0; h < 3; h++) {
        set_desc(r, DESC_GPA, h, DATA_GPA + 0x100 * h, 64, VIRTQ_DESC_F_WRITE, 0);
        add_head(r, h);
        assert_int_equal(pop(r), 1);
    }
    assert_int_equal(virtq_push(&r->vq, 0, 1), 0);
    assert_int_equal(virtq_push(&r->vq, 1, 1), 0);
    assert_true(virtq_need_interrupt(&r->vq));
    set_desc(r, DESC_GPA, 3, DATA_GPA + 0x300, 64, VIRTQ_DESC_F_WRITE, 0);
    add_head(r, 3);
    virtq_save(&r->vq, &st);
    assert_int_equal(st.last_avail_idx, 3);
    assert_int_equal(st.used_idx, 2);
    assert_int_equal(st.signalled_used, 2);
    assert_true(st.signalled_used_valid && st.ready && !st.broken);

    uint8_t before[0x3000];
    memcpy(before, r->ram + DESC_GPA, sizeof(before));
    struct virtq q;
    virtq_init(&q, &r->gm, MAX_SIZE);
    assert_int_equal(virtq_restore(&q, &st, F_ALL, why, sizeof(why)), 0);
    assert_memory_equal(r->ram + DESC_GPA, before, sizeof(before)); /* nothing written */
    assert_true(q.ready && q.event_idx && q.indirect);
    assert_int_equal(q.last_avail_idx, 3);
    assert_int_equal(q.used_idx, 2);
    /* The chain in flight, walked again; then the next available one. */
    assert_int_equal(virtq_get_chain(&q, 2, &r->ch), 0);
    assert_int_equal(r->ch.head, 2);
    assert_seg(r, 0, DATA_GPA + 0x200, 64);
    assert_int_equal(virtq_get_chain(&q, QSIZE, &r->ch), -EINVAL);
    assert_int_equal(virtq_pop(&q, &r->ch), 1);
    assert_int_equal(r->ch.head, 3);
    assert_int_equal(virtq_push(&q, 2, 1), 0);
    /* EVENT_IDX as before: used_event 0 was passed at the last interrupt. */
    assert_false(virtq_need_interrupt(&q));

    /* Refused, the queue untouched. */
    struct virtq_state bad = st;
    struct virtq fresh;
    virtq_init(&fresh, &r->gm, MAX_SIZE);
    virtq_init(&q, &r->gm, MAX_SIZE);
    bad.size = 3;
    assert_int_equal(virtq_restore(&q, &bad, F_ALL, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "property 'size' is 3"));
    bad = st;
    bad.used_idx = (uint16_t)(st.last_avail_idx - QSIZE - 1);
    assert_int_equal(virtq_restore(&q, &bad, F_ALL, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "chains past 'used-idx'"));
    bad = st;
    bad.used_gpa = RAM_SIZE - 8;
    assert_int_equal(virtq_restore(&q, &bad, F_ALL, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "used ring"));
    bad = st;
    bad.ready = false;
    assert_int_equal(virtq_restore(&q, &bad, F_ALL, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "not 0 in a queue that is not enabled"));
    assert_memory_equal(&q, &fresh, sizeof(q));

    /* A broken queue stays broken, whatever its indexes. */
    bad = st;
    bad.broken = true;
    bad.last_avail_idx = 1000;
    assert_int_equal(virtq_restore(&q, &bad, F_ALL, why, sizeof(why)), 0);
    assert_true(q.broken);
    assert_int_equal(virtq_pop(&q, &r->ch), -EIO);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)
    const struct CMUnitTest tests[] = {
        T(test_init_reset),
        T(test_enable_checks),
        T(test_enable_alignment),
        T(test_rings_at_ram_end),
        T(test_config_frozen_when_ready),
        T(test_single_readable),
        T(test_chain_out_in),
        T(test_indirect),
        T(test_wrap),
        T(test_full_ring),
        T(test_counters),
        cmocka_unit_test(test_need_event_rule),
        T(test_need_interrupt_event_idx),
        T(test_no_interrupt_flag),
        T(test_notify_suppression),
        T(test_hostile),
        T(test_hostile_size_1),
        cmocka_unit_test(test_across_hole),
        T(test_no_lost_wakeup),
        T(test_save_restore),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
