/* Tracing: the spec parser, filters, line format, the rings (drops counted), and the counters. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "petrel/bus.h"
#include "petrel/trace.h"
#include "petrel/vm.h"

static void spec_ok(const char *spec, const char *canonical)
{
    struct trace_filter f;
    struct errbuf eb = {{0}};
    char out[TRACE_SPEC_MAX];

    assert_int_equal(trace_spec_parse(spec, &f, &eb), 0);
    trace_filter_format(&f, out, sizeof(out));
    assert_string_equal(out, canonical);
    /* The canonical form reads back as the same filter. */
    struct trace_filter g;
    assert_int_equal(trace_spec_parse(out, &g, &eb), 0);
    assert_memory_equal(&f, &g, sizeof(f));
}

static void spec_bad(const char *spec)
{
    struct trace_filter f = {.kinds = 0x5a};
    struct errbuf eb = {{0}};

    assert_int_equal(trace_spec_parse(spec, &f, &eb), -EINVAL);
    assert_true(eb.msg[0] != '\0');
    assert_int_equal(f.kinds, 0x5a); /* untouched on error */
}

static void test_spec_parse(void **state)
{
    (void)state;
    spec_ok("pio", "pio");
    spec_ok("pio,mmio,virtio,irq,control", "pio,mmio,virtio,irq,control");
    spec_ok("control,pio", "pio,control");
    spec_ok("all", "pio,mmio,virtio,irq,control");
    spec_ok("none", "none");
    spec_ok("pio=0x3f8-0x3ff", "pio=0x3f8-0x3ff");
    spec_ok("pio=0x3f8-0x3ff,pio=0xe9", "pio=0x3f8-0x3ff,pio=0xe9-0xe9");
    spec_ok("mmio=0xfe000000-0xfe000fff,virtio,dev=vda",
            "mmio=0xfe000000-0xfe000fff,virtio,dev=vda");
    spec_ok("pio,dev=com1,dev=com1", "pio,dev=com1");
    spec_ok("pio=1016-1023", "pio=0x3f8-0x3ff");

    spec_bad("");
    spec_bad("pio,");
    spec_bad(",pio");
    spec_bad("pio,,mmio");
    spec_bad("disk");
    spec_bad("PIO");
    spec_bad("virtio=0-1");
    spec_bad("pio=0x3ff-0x3f8");
    spec_bad("pio=0x10000");
    spec_bad("pio=-1");
    spec_bad("pio=0x3f8-");
    spec_bad("pio=zz");
    spec_bad("mmio=0x1-0x2-0x3");
    spec_bad("dev=");
    spec_bad("dev=a b");
    spec_bad("dev=0123456789012345678901234567890123");
    spec_bad("pio=1,pio=2,pio=3,pio=4,pio=5,pio=6,pio=7,pio=8,pio=9");
    char big[TRACE_SPEC_MAX + 8];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    spec_bad(big);
}

static void test_filter_change(void **state)
{
    struct trace_filter f;
    struct errbuf eb;
    char out[TRACE_SPEC_MAX];
    (void)state;

    assert_int_equal(trace_spec_parse("pio=0x3f8-0x3ff,mmio,control", &f, &eb), 0);
    assert_int_equal(trace_filter_change(&f, "virtio", "pio", &eb), 0);
    trace_filter_format(&f, out, sizeof(out));
    assert_string_equal(out, "mmio,virtio,control");
    assert_int_equal(trace_filter_change(&f, NULL, "mmio,virtio,control", &eb), 0);
    trace_filter_format(&f, out, sizeof(out));
    assert_string_equal(out, "none");
    /* --off takes kinds only; a failed change leaves the filter as it was. */
    assert_int_equal(trace_filter_change(&f, "irq", "pio=1-2", &eb), -EINVAL);
    trace_filter_format(&f, out, sizeof(out));
    assert_string_equal(out, "none");
    assert_int_equal(trace_filter_change(&f, "bogus", NULL, &eb), -EINVAL);
}

static void test_filter_match(void **state)
{
    struct trace_filter f;
    struct errbuf eb;
    (void)state;

    assert_int_equal(trace_spec_parse("pio=0x3f8-0x3ff,virtio,control,dev=com1,dev=vda", &f, &eb),
                     0);
    struct trace_event e = {.kind = TRACE_PIO, .addr = 0x3f8, .dev = "com1"};
    assert_true(trace_filter_match(&f, &e));
    e.addr = 0x3f7;
    assert_false(trace_filter_match(&f, &e)); /* outside the range */
    e.addr = 0x3ff;
    e.dev = "debugcon";
    assert_false(trace_filter_match(&f, &e)); /* another device */
    e.dev = NULL;
    assert_false(trace_filter_match(&f, &e)); /* unclaimed: no device to match */
    e = (struct trace_event){.kind = TRACE_MMIO, .dev = "com1"};
    assert_false(trace_filter_match(&f, &e)); /* kind off */
    e = (struct trace_event){.kind = TRACE_VIRTIO, .dev = "vda"};
    assert_true(trace_filter_match(&f, &e));
    e = (struct trace_event){.kind = TRACE_CONTROL};
    assert_true(trace_filter_match(&f, &e)); /* control events have no device */
    e.kind = 200;
    assert_false(trace_filter_match(&f, &e));
}

static void format_is(const struct trace_event *e, const char *want)
{
    char buf[256];
    size_t n = trace_format(e, buf, sizeof(buf));
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_format(void **state)
{
    (void)state;
    format_is(&(struct trace_event){.ns = 12345678901ULL,
                                    .vcpu = 0,
                                    .kind = TRACE_PIO,
                                    .op = TRACE_OP_WRITE,
                                    .addr = 0x3f8,
                                    .size = 1,
                                    .value = 0x41,
                                    .dev = "com1"},
              "12.345678901 vcpu=0 pio write addr=0x3f8 size=1 value=0x41 dev=com1 ok\n");
    format_is(&(struct trace_event){.ns = 5,
                                    .vcpu = 3,
                                    .kind = TRACE_MMIO,
                                    .op = TRACE_OP_READ,
                                    .addr = 0xfebff000,
                                    .size = 4,
                                    .value = 0xffffffff,
                                    .result = -1},
              "0.000000005 vcpu=3 mmio read addr=0xfebff000 size=4 value=0xffffffff dev=- "
              "unclaimed\n");
    format_is(&(struct trace_event){.ns = 1000000000,
                                    .vcpu = -1,
                                    .kind = TRACE_VIRTIO,
                                    .op = TRACE_OP_POP,
                                    .dev = "vda",
                                    .queue = 0,
                                    .head = 7,
                                    .chain = 3,
                                    .value = 4113},
              "1.000000000 vcpu=- virtio pop dev=vda queue=0 head=7 chain=3 bytes=4113\n");
    format_is(&(struct trace_event){.vcpu = -1,
                                    .kind = TRACE_VIRTIO,
                                    .op = TRACE_OP_PUSH,
                                    .dev = "vda",
                                    .queue = 1,
                                    .head = 7,
                                    .value = 513},
              "0.000000000 vcpu=- virtio push dev=vda queue=1 head=7 bytes=513\n");
    format_is(&(struct trace_event){.vcpu = 0,
                                    .kind = TRACE_VIRTIO,
                                    .op = TRACE_OP_STATUS,
                                    .dev = "rng",
                                    .addr = 0x3,
                                    .value = 0xb},
              "0.000000000 vcpu=0 virtio status dev=rng old=0x3 value=0xb\n");
    format_is(
        &(struct trace_event){.vcpu = 0, .kind = TRACE_VIRTIO, .op = TRACE_OP_RESET, .dev = "rng"},
        "0.000000000 vcpu=0 virtio reset dev=rng\n");
    format_is(
        &(struct trace_event){
            .vcpu = -1, .kind = TRACE_IRQ, .op = TRACE_OP_MSI, .dev = "vda", .addr = 2, .value = 1},
        "0.000000000 vcpu=- irq msi dev=vda vector=2 pending\n");
    format_is(&(struct trace_event){.vcpu = -1,
                                    .kind = TRACE_IRQ,
                                    .op = TRACE_OP_LINE,
                                    .dev = "com1",
                                    .addr = 4,
                                    .value = 1},
              "0.000000000 vcpu=- irq line dev=com1 gsi=4 level=1\n");
    format_is(
        &(struct trace_event){
            .vcpu = -1, .kind = TRACE_CONTROL, .op = TRACE_OP_PAUSE, .value = 52000},
        "0.000000000 vcpu=- control pause kick_ns=52000\n");
    /* A short buffer still gets one whole line, cut. */
    char small[24];
    struct trace_event e = {.kind = TRACE_PIO, .op = TRACE_OP_WRITE, .dev = "com1"};
    size_t n = trace_format(&e, small, sizeof(small));
    assert_true(n < sizeof(small));
    assert_int_equal(small[n - 1], '\n');
}

/* A trace writing to a temporary file, with nr vCPU rings. */
static void trace_open(struct trace *t, unsigned nr, const char *spec, char *path)
{
    struct trace_filter f;
    struct errbuf eb;

    strcpy(path, "/tmp/petrel-test-trace.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(trace_init(t, nr, path), 0);
    assert_int_equal(trace_spec_parse(spec, &f, &eb), 0);
    assert_int_equal(trace_set_filter(t, &f, &eb), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 4 << 20);
    size_t n = fread(buf, 1, (4 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static unsigned count_lines(const char *s, const char *needle)
{
    unsigned n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_ring_overflow_counts_drops(void **state)
{
    struct trace t;
    char path[64];
    uint8_t v = 0x41;
    (void)state;

    trace_open(&t, 1, "pio", path);
    assert_true(TRACE_ON(&t, TRACE_PIO));
    assert_false(TRACE_ON(&t, TRACE_MMIO));
    for (unsigned i = 0; i < TRACE_RING_SIZE + 10; i++)
        trace_access(&t, 0, TRACE_PIO, 0x3f8, &v, 1, true, "com1");
    assert_int_equal(trace_dropped(&t), 10);
    trace_flush(&t, now_ns() + 1000000000ULL);
    assert_int_equal(t.events, TRACE_RING_SIZE);
    assert_int_equal(t.dropped, 10);
    char *s = slurp(path);
    assert_int_equal(count_lines(s, " pio write addr=0x3f8 size=1 value=0x41 dev=com1 ok\n"),
                     TRACE_RING_SIZE);
    /* The drops are a line of the trace, not silent. */
    assert_int_equal(count_lines(s, "vcpu=0 trace dropped=10 total=10"), 1);
    free(s);
    /* Room again: events flow, no new drops. */
    trace_access(&t, 0, TRACE_PIO, 0x3f9, &v, 1, false, NULL);
    trace_flush(&t, now_ns() + 1000000000ULL);
    assert_int_equal(trace_dropped(&t), 10);
    s = slurp(path);
    assert_int_equal(count_lines(s, "pio read addr=0x3f9 size=1 value=0x41 dev=- unclaimed\n"), 1);
    free(s);
    trace_destroy(&t);
    unlink(path);
}

static void test_producer_range_filter(void **state)
{
    struct trace t;
    char path[64];
    uint16_t v = 0x1234;
    (void)state;

    trace_open(&t, 2, "pio=0x3f8-0x3ff,mmio", path);
    trace_access(&t, 1, TRACE_PIO, 0x80, &v, 2, true, "port80");
    trace_access(&t, 1, TRACE_PIO, 0x3ff, &v, 2, true, "com1");
    trace_access(&t, 1, TRACE_MMIO, 0xd0000000, &v, 2, false, "bar");
    /* Only what is in range was put in the ring: nothing to filter later. */
    assert_int_equal(atomic_load(&t.rings[1].head), 2);
    trace_flush(&t, now_ns() + 1000000000ULL);
    assert_int_equal(t.events, 2);
    assert_int_equal(t.filtered, 0);
    char *s = slurp(path);
    assert_null(strstr(s, "addr=0x80 "));
    assert_non_null(strstr(s, "vcpu=1 pio write addr=0x3ff size=2 value=0x1234 dev=com1 ok\n"));
    free(s);
    trace_destroy(&t);
    unlink(path);
}

static void test_merge_in_time_order(void **state)
{
    struct trace t;
    char path[64];
    uint8_t v = 0;
    (void)state;

    trace_open(&t, 2, "pio,control", path);
    for (unsigned i = 0; i < 30; i++) {
        v = (uint8_t)i;
        if (i % 3 == 2)
            trace_control(&t, TRACE_OP_PAUSE, i);
        else
            trace_access(&t, (int)(i % 3), TRACE_PIO, 0x10, &v, 1, true, "x");
    }
    trace_flush(&t, now_ns() + 1000000000ULL);
    char *s = slurp(path);
    /* Lines come out in the order they happened, across the three rings. */
    unsigned i = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"), i++) {
        char want[64];
        if (i % 3 == 2)
            snprintf(want, sizeof(want), "control pause kick_ns=%u", i);
        else
            snprintf(want, sizeof(want), "vcpu=%u pio write addr=0x10 size=1 value=%#x", i % 3, i);
        if (i == 0)
            snprintf(want, sizeof(want), "vcpu=0 pio write addr=0x10 size=1 value=0 ");
        assert_non_null(strstr(line, want));
    }
    assert_int_equal(i, 30);
    free(s);
    trace_destroy(&t);
    unlink(path);
}

static void test_off_records_nothing(void **state)
{
    struct trace t;
    char path[64];
    struct trace_filter none = {0};
    struct errbuf eb;
    (void)state;

    trace_open(&t, 1, "pio", path);
    assert_int_equal(trace_set_filter(&t, &none, &eb), 0);
    assert_false(TRACE_ON(&t, TRACE_PIO));
    trace_control(&t, TRACE_OP_STOP, 0); /* its own test inside: off */
    assert_int_equal(atomic_load(&t.rings[1].head), 0);
    trace_destroy(&t);
    unlink(path);
}

static void test_bad_file_is_an_error(void **state)
{
    struct trace t;
    struct trace_filter f;
    struct errbuf eb;
    (void)state;

    assert_int_equal(trace_init(&t, 1, "/nonexistent-dir/x.trace"), 0);
    assert_int_equal(trace_spec_parse("pio", &f, &eb), 0);
    assert_int_equal(trace_set_filter(&t, &f, &eb), -ENOENT);
    assert_non_null(strstr(eb.msg, "/nonexistent-dir/x.trace"));
    assert_false(TRACE_ON(&t, TRACE_PIO));
    trace_destroy(&t);
}

/* ---- counters ---- */

static uint64_t dummy_read(struct device *d, uint64_t off, unsigned size)
{
    (void)d, (void)off, (void)size;
    return 0;
}

static const struct dev_ops dummy_ops = {.read = dummy_read};

static void test_bus_counts_accesses(void **state)
{
    struct bus bus;
    struct device a, b, *got;
    uint8_t data[4];
    (void)state;

    bus_init(&bus, "pio");
    device_init(&a, "a", &dummy_ops);
    device_init(&b, "b", &dummy_ops);
    assert_int_equal(bus_register(&bus, 0x10, 4, &a), 0);
    assert_int_equal(bus_register(&bus, 0x20, 4, &b), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(bus_access(&bus, 0x11, data, 1, false, &got), 0);
    assert_ptr_equal(got, &a);
    assert_int_equal(bus_dispatch(&bus, 0x23, data, 1, true), 0);
    assert_int_equal(bus_access(&bus, 0x30, data, 1, false, &got), -ENOENT);
    assert_null(got);
    assert_int_equal(bus_dispatch(&bus, 0x30, data, 1, true), -ENOENT);
    assert_int_equal(atomic_load(&a.accesses), 5);
    assert_int_equal(atomic_load(&b.accesses), 1);
    assert_int_equal(atomic_load(&bus.unhandled_reads), 1);
    assert_int_equal(atomic_load(&bus.unhandled_writes), 1);
    bus_destroy(&bus);
    device_destroy(&a);
    device_destroy(&b);
}

static void test_kick_histogram(void **state)
{
    static struct vm vm;
    (void)state;

    vm_kick_histogram_add(&vm, 500);        /* < 1 us */
    vm_kick_histogram_add(&vm, 1000);       /* [1, 2) us */
    vm_kick_histogram_add(&vm, 1999);       /* [1, 2) us */
    vm_kick_histogram_add(&vm, 40000);      /* 40 us: [32, 64) */
    vm_kick_histogram_add(&vm, 1ULL << 62); /* the last bucket */
    assert_int_equal(vm.kick_hist[0], 1);
    assert_int_equal(vm.kick_hist[1], 2);
    assert_int_equal(vm.kick_hist[6], 1);
    assert_int_equal(vm.kick_hist[VM_KICK_BUCKETS - 1], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_filter_change),
        cmocka_unit_test(test_filter_match),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_ring_overflow_counts_drops),
        cmocka_unit_test(test_producer_range_filter),
        cmocka_unit_test(test_merge_in_time_order),
        cmocka_unit_test(test_off_records_nothing),
        cmocka_unit_test(test_bad_file_is_an_error),
        cmocka_unit_test(test_bus_counts_accesses),
        cmocka_unit_test(test_kick_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
