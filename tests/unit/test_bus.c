/* Unit tests for bus.c: registration, overlap refusal, dispatch and unclaimed accesses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/bus.h"

/* A device that records its last access and answers reads with a pattern. */
struct fake_dev {
    struct device dev;
    unsigned id;
    unsigned reads, writes;
    uint64_t offset, value;
    unsigned size;
    bool lock_held; /* the device lock was held during the last callback */
    /* Optional: a range to register from inside the write callback. */
    struct bus *reg_bus;
    uint64_t reg_base;
    int reg_ret;
};

/* True when dev's lock is held (by the caller: the bus). */
static bool dev_locked(struct device *dev)
{
    int err = pthread_mutex_trylock(&dev->lock);
    if (err == 0)
        pthread_mutex_unlock(&dev->lock);
    return err == EBUSY;
}

/* The value a fake device returns: depends on the device, offset and size. */
static uint64_t fake_pattern(unsigned id, uint64_t offset)
{
    return 0x1122334455667700ULL ^ ((uint64_t)id << 32) ^ offset;
}

static uint64_t fake_read(struct device *dev, uint64_t offset, unsigned size)
{
    struct fake_dev *f = container_of(dev, struct fake_dev, dev);
    f->lock_held = dev_locked(dev);
    f->reads++;
    f->offset = offset;
    f->size = size;
    return fake_pattern(f->id, offset);
}

static void fake_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct fake_dev *f = container_of(dev, struct fake_dev, dev);
    f->lock_held = dev_locked(dev);
    f->writes++;
    f->offset = offset;
    f->value = value;
    f->size = size;
    if (f->reg_bus)
        f->reg_ret = bus_register(f->reg_bus, f->reg_base, 4, dev);
}

static const struct dev_ops fake_ops = {.read = fake_read, .write = fake_write};
static const struct dev_ops null_ops = {0};

static void fake_init(struct fake_dev *f, unsigned id)
{
    memset(f, 0, sizeof(*f));
    f->id = id;
    device_init(&f->dev, "fake", &fake_ops);
}

static void test_dispatch_write(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev d;

    bus_init(&bus, "test");
    fake_init(&d, 1);
    assert_int_equal(bus_register(&bus, 0x100, 8, &d.dev), 0);

    uint8_t b = 0xab;
    assert_int_equal(bus_dispatch(&bus, 0x103, &b, 1, true), 0);
    assert_int_equal(d.writes, 1);
    assert_int_equal(d.reads, 0);
    assert_int_equal(d.offset, 3);
    assert_int_equal(d.value, 0xab);
    assert_int_equal(d.size, 1);
    assert_true(d.lock_held);

    /* Multi-byte writes arrive as little-endian values. */
    uint8_t w[2] = {0x34, 0x12};
    assert_int_equal(bus_dispatch(&bus, 0x100, w, 2, true), 0);
    assert_int_equal(d.offset, 0);
    assert_int_equal(d.value, 0x1234);
    assert_int_equal(d.size, 2);

    uint8_t q[8] = {0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01};
    assert_int_equal(bus_dispatch(&bus, 0x100, q, 8, true), 0);
    assert_int_equal(d.value, 0x0123456789abcdefULL);
    assert_int_equal(d.size, 8);
    assert_int_equal(d.writes, 3);

    assert_int_equal(bus.unhandled_writes, 0);
    assert_int_equal(bus.unhandled_reads, 0);
    /* The lock is released after the callback. */
    assert_int_equal(pthread_mutex_trylock(&d.dev.lock), 0);
    pthread_mutex_unlock(&d.dev.lock);

    device_destroy(&d.dev);
    bus_destroy(&bus);
}

static void test_dispatch_read(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev d;

    bus_init(&bus, "test");
    fake_init(&d, 2);
    assert_int_equal(bus_register(&bus, 0x1000, 0x100, &d.dev), 0);

    uint8_t data[8];
    memset(data, 0, sizeof(data));
    assert_int_equal(bus_dispatch(&bus, 0x10ff, data, 1, false), 0);
    assert_int_equal(d.reads, 1);
    assert_int_equal(d.offset, 0xff);
    assert_int_equal(d.size, 1);
    assert_true(d.lock_held);
    assert_int_equal(data[0], (uint8_t)fake_pattern(2, 0xff));
    assert_int_equal(data[1], 0); /* only size bytes are written */

    memset(data, 0, sizeof(data));
    assert_int_equal(bus_dispatch(&bus, 0x1010, data, 4, false), 0);
    uint32_t v32;
    memcpy(&v32, data, 4);
    assert_int_equal(v32, (uint32_t)fake_pattern(2, 0x10));
    assert_int_equal(data[4], 0);
    assert_int_equal(d.size, 4);

    uint64_t v64;
    assert_int_equal(bus_dispatch(&bus, 0x1020, &v64, 8, false), 0);
    assert_int_equal(v64, fake_pattern(2, 0x20));

    device_destroy(&d.dev);
    bus_destroy(&bus);
}

static void test_dispatch_bad_size(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev d;
    uint8_t data[16];

    bus_init(&bus, "test");
    fake_init(&d, 1);
    assert_int_equal(bus_register(&bus, 0, 16, &d.dev), 0);
    assert_int_equal(bus_dispatch(&bus, 0, data, 0, false), -EINVAL);
    assert_int_equal(bus_dispatch(&bus, 0, data, 9, true), -EINVAL);
    assert_int_equal(d.reads + d.writes, 0);
    device_destroy(&d.dev);
    bus_destroy(&bus);
}

/* A device without callbacks: reads give all-ones, writes are dropped. */
static void test_dispatch_no_callbacks(void **state)
{
    (void)state;
    struct bus bus;
    struct device dev;

    bus_init(&bus, "test");
    device_init(&dev, "silent", &null_ops);
    assert_int_equal(bus_register(&bus, 0x80, 4, &dev), 0);
    uint32_t v = 0;
    assert_int_equal(bus_dispatch(&bus, 0x80, &v, 4, false), 0);
    assert_int_equal(v, 0xffffffff);
    assert_int_equal(bus_dispatch(&bus, 0x81, &v, 2, true), 0);
    /* Claimed: not counted as unhandled. */
    assert_int_equal(bus.unhandled_reads, 0);
    assert_int_equal(bus.unhandled_writes, 0);
    device_destroy(&dev);
    bus_destroy(&bus);
}

static void test_overlaps_refused(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a, b;

    bus_init(&bus, "test");
    fake_init(&a, 1);
    fake_init(&b, 2);
    assert_int_equal(bus_register(&bus, 0x100, 8, &a.dev), 0); /* [0x100, 0x108) */

    assert_int_equal(bus_register(&bus, 0x100, 8, &b.dev), -EEXIST);    /* exact */
    assert_int_equal(bus_register(&bus, 0xfc, 8, &b.dev), -EEXIST);     /* low side */
    assert_int_equal(bus_register(&bus, 0x104, 8, &b.dev), -EEXIST);    /* high side */
    assert_int_equal(bus_register(&bus, 0x102, 2, &b.dev), -EEXIST);    /* contained */
    assert_int_equal(bus_register(&bus, 0x0, 0x1000, &b.dev), -EEXIST); /* containing */
    assert_int_equal(bus_register(&bus, 0x107, 1, &b.dev), -EEXIST);    /* last byte */
    assert_int_equal(bus_register(&bus, 0xff, 2, &b.dev), -EEXIST);     /* first byte */
    assert_int_equal(bus.nr, 1);

    /* Adjacent on both sides is fine. */
    assert_int_equal(bus_register(&bus, 0xf8, 8, &b.dev), 0);
    assert_int_equal(bus_register(&bus, 0x108, 8, &b.dev), 0);
    assert_int_equal(bus.nr, 3);
    /* A range over the whole row, and one spanning two neighbours, now conflict. */
    assert_int_equal(bus_register(&bus, 0xf0, 0x40, &b.dev), -EEXIST);
    assert_int_equal(bus_register(&bus, 0xfe, 0x10, &b.dev), -EEXIST);

    /* The neighbours reach their own device with their own offsets. */
    uint8_t v = 1;
    assert_int_equal(bus_dispatch(&bus, 0xff, &v, 1, true), 0);
    assert_int_equal(b.writes, 1);
    assert_int_equal(b.offset, 7);
    assert_int_equal(bus_dispatch(&bus, 0x100, &v, 1, true), 0);
    assert_int_equal(a.writes, 1);
    assert_int_equal(a.offset, 0);
    assert_int_equal(bus_dispatch(&bus, 0x108, &v, 1, true), 0);
    assert_int_equal(b.writes, 2);
    assert_int_equal(b.offset, 0);

    device_destroy(&a.dev);
    device_destroy(&b.dev);
    bus_destroy(&bus);
}

static void test_register_invalid(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a;

    bus_init(&bus, "test");
    fake_init(&a, 1);
    assert_int_equal(bus_register(&bus, 0x10, 0, &a.dev), -EINVAL);
    assert_int_equal(bus_register(&bus, 0x10, 4, NULL), -EINVAL);
    assert_int_equal(bus_register(&bus, UINT64_MAX, 2, &a.dev), -EINVAL);
    assert_int_equal(bus_register(&bus, 2, UINT64_MAX, &a.dev), -EINVAL);
    assert_int_equal(bus.nr, 0);
    /* A range ending at the very top of the address space is valid. */
    assert_int_equal(bus_register(&bus, UINT64_MAX - 3, 4, &a.dev), 0);
    uint8_t v = 0;
    assert_int_equal(bus_dispatch(&bus, UINT64_MAX, &v, 1, false), 0);
    assert_int_equal(a.offset, 3);
    device_destroy(&a.dev);
    bus_destroy(&bus);
}

static void test_unregister(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a, b;

    bus_init(&bus, "test");
    fake_init(&a, 1);
    fake_init(&b, 2);
    assert_int_equal(bus_register(&bus, 0x100, 8, &a.dev), 0);
    assert_int_equal(bus_register(&bus, 0x200, 8, &b.dev), 0);

    /* Only a range's base names it. */
    assert_int_equal(bus_unregister(&bus, 0x101), -ENOENT);
    assert_int_equal(bus_unregister(&bus, 0x150), -ENOENT);
    assert_int_equal(bus.nr, 2);

    assert_int_equal(bus_unregister(&bus, 0x100), 0);
    assert_int_equal(bus.nr, 1);
    assert_int_equal(bus_unregister(&bus, 0x100), -ENOENT);

    uint8_t v = 0;
    assert_int_equal(bus_dispatch(&bus, 0x100, &v, 1, false), -ENOENT);
    assert_int_equal(v, 0xff);
    assert_int_equal(a.reads, 0);
    assert_int_equal(bus_dispatch(&bus, 0x204, &v, 1, false), 0);
    assert_int_equal(b.reads, 1);

    /* The freed range can be claimed again. */
    assert_int_equal(bus_register(&bus, 0x100, 4, &b.dev), 0);
    assert_int_equal(bus_dispatch(&bus, 0x103, &v, 1, true), 0);
    assert_int_equal(b.writes, 1);
    assert_int_equal(b.offset, 3);

    device_destroy(&a.dev);
    device_destroy(&b.dev);
    bus_destroy(&bus);
}

static void test_unclaimed(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a;

    bus_init(&bus, "test");
    fake_init(&a, 1);
    assert_int_equal(bus_register(&bus, 0x100, 8, &a.dev), 0);

    uint8_t data[8];
    memset(data, 0x11, sizeof(data));
    assert_int_equal(bus_dispatch(&bus, 0xff, data, 4, false), -ENOENT);
    static const uint8_t want[8] = {0xff, 0xff, 0xff, 0xff, 0x11, 0x11, 0x11, 0x11};
    assert_memory_equal(data, want, sizeof(want));
    assert_int_equal(bus.unhandled_reads, 1);
    assert_int_equal(bus.unhandled_writes, 0);

    assert_int_equal(bus_dispatch(&bus, 0x108, data, 1, false), -ENOENT);
    assert_int_equal(bus.unhandled_reads, 2);

    memset(data, 0x22, sizeof(data));
    assert_int_equal(bus_dispatch(&bus, 0x0, data, 2, true), -ENOENT);
    assert_int_equal(bus_dispatch(&bus, UINT64_MAX, data, 1, true), -ENOENT);
    assert_int_equal(bus.unhandled_writes, 2);
    assert_int_equal(bus.unhandled_reads, 2);
    assert_int_equal(data[0], 0x22); /* a write's buffer is not touched */
    assert_int_equal(a.reads + a.writes, 0);

    device_destroy(&a.dev);
    bus_destroy(&bus);
}

/* Ranges registered out of order end up sorted and each reaches its device. */
static void test_sorted_insertion(void **state)
{
    (void)state;
    static const uint64_t bases[] = {0x300, 0x100, 0x500, 0x0, 0x200, 0x400};
    struct bus bus;
    struct fake_dev d[ARRAY_SIZE(bases)];

    bus_init(&bus, "test");
    for (unsigned i = 0; i < ARRAY_SIZE(bases); i++) {
        fake_init(&d[i], i);
        assert_int_equal(bus_register(&bus, bases[i], 0x10, &d[i].dev), 0);
    }
    assert_int_equal(bus.nr, ARRAY_SIZE(bases));
    for (unsigned i = 0; i < bus.nr; i++)
        assert_int_equal(bus.ranges[i].base, 0x100 * i);
    for (unsigned i = 0; i < ARRAY_SIZE(bases); i++) {
        uint16_t v;
        assert_int_equal(bus_dispatch(&bus, bases[i] + 0xe, &v, 2, false), 0);
        assert_int_equal(v, (uint16_t)fake_pattern(i, 0xe));
        assert_int_equal(d[i].reads, 1);
        assert_int_equal(d[i].offset, 0xe);
    }
    for (unsigned i = 0; i < ARRAY_SIZE(bases); i++)
        device_destroy(&d[i].dev);
    bus_destroy(&bus);
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/*
 * Many ranges (past several reallocations) in a shuffled order: every byte of
 * every range and every gap dispatches correctly, before and after half of
 * them are unregistered.
 */
static void test_many_ranges(void **state)
{
    (void)state;
    enum { N = 1000, STRIDE = 16, LEN = 8 };
    struct bus bus;
    struct fake_dev *d = calloc(N, sizeof(*d));
    unsigned order[N];
    uint64_t rng = 0x9e3779b97f4a7c15ULL;

    assert_non_null(d);
    bus_init(&bus, "test");
    for (unsigned i = 0; i < N; i++)
        order[i] = i;
    for (unsigned i = N - 1; i > 0; i--) {
        unsigned j = (unsigned)(xorshift64(&rng) % (i + 1));
        unsigned t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (unsigned k = 0; k < N; k++) {
        unsigned i = order[k];
        fake_init(&d[i], i);
        assert_int_equal(bus_register(&bus, (uint64_t)i * STRIDE, LEN, &d[i].dev), 0);
        /* Every registration that overlaps an existing one fails. */
        assert_int_equal(bus_register(&bus, (uint64_t)i * STRIDE + LEN - 1, 2, &d[i].dev), -EEXIST);
    }
    assert_int_equal(bus.nr, N);
    for (unsigned i = 1; i < bus.nr; i++)
        assert_true(bus.ranges[i - 1].base + bus.ranges[i - 1].len <= bus.ranges[i].base);

    for (unsigned i = 0; i < N; i++) {
        for (unsigned off = 0; off < STRIDE; off++) {
            uint8_t v = 0;
            int ret = bus_dispatch(&bus, (uint64_t)i * STRIDE + off, &v, 1, false);
            if (off < LEN) {
                assert_int_equal(ret, 0);
                assert_int_equal(d[i].offset, off);
                assert_int_equal(v, (uint8_t)fake_pattern(i, off));
            } else {
                assert_int_equal(ret, -ENOENT);
                assert_int_equal(v, 0xff);
            }
        }
        assert_int_equal(d[i].reads, LEN);
    }
    assert_int_equal(bus.unhandled_reads, N * (STRIDE - LEN));

    /* Drop the even ones; the odd ones are untouched. */
    for (unsigned i = 0; i < N; i += 2)
        assert_int_equal(bus_unregister(&bus, (uint64_t)i * STRIDE), 0);
    assert_int_equal(bus.nr, N / 2);
    for (unsigned i = 0; i < N; i++) {
        uint8_t v = 0;
        int ret = bus_dispatch(&bus, (uint64_t)i * STRIDE + 1, &v, 1, true);
        assert_int_equal(ret, i % 2 ? 0 : -ENOENT);
        assert_int_equal(d[i].writes, i % 2 ? 1 : 0);
    }
    for (unsigned i = 0; i < N; i++)
        device_destroy(&d[i].dev);
    bus_destroy(&bus);
    free(d);
}

/* A callback may register a range on the bus it was dispatched from (PCI BARs). */
static void test_register_from_callback(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a;

    bus_init(&bus, "test");
    fake_init(&a, 1);
    assert_int_equal(bus_register(&bus, 0x10, 4, &a.dev), 0);
    a.reg_bus = &bus;
    a.reg_base = 0x40;
    a.reg_ret = 1;
    uint8_t v = 7;
    assert_int_equal(bus_dispatch(&bus, 0x10, &v, 1, true), 0);
    assert_int_equal(a.reg_ret, 0);
    assert_int_equal(bus.nr, 2);
    a.reg_bus = NULL;
    assert_int_equal(bus_dispatch(&bus, 0x42, &v, 1, true), 0);
    assert_int_equal(a.offset, 2);
    device_destroy(&a.dev);
    bus_destroy(&bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_write),
        cmocka_unit_test(test_dispatch_read),
        cmocka_unit_test(test_dispatch_bad_size),
        cmocka_unit_test(test_dispatch_no_callbacks),
        cmocka_unit_test(test_overlaps_refused),
        cmocka_unit_test(test_register_invalid),
        cmocka_unit_test(test_unregister),
        cmocka_unit_test(test_unclaimed),
        cmocka_unit_test(test_sorted_insertion),
        cmocka_unit_test(test_many_ranges),
        cmocka_unit_test(test_register_from_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
