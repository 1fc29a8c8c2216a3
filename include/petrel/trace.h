/*
 * Event tracing for device-model developers (`petrel run --trace`, PUT /trace).
 *
 * What is traced: port and MMIO accesses (claimed or not), virtqueue pops and
 * pushes, interrupts (an irqchip line, an MSI-X vector), device status changes
 * and resets, and the VM's pause/resume/stop transitions with their kick time.
 * Each kind is one bit of trace->flags; a hook is one TRACE_ON() test of that
 * word (a single predictable branch, not taken while tracing is off) and one
 * call. Built with -Dtrace=false, TRACE_ON() is a constant 0 and every hook is
 * compiled out.
 *
 * Threads: producers never block on the file. vCPU i writes ring i, a
 * single-producer ring it alone fills (no lock); every other thread (the
 * loop, the disk workers) writes the shared ring under shared_lock, which is
 * only ever held to copy one event. A full ring drops the event and counts it
 * (ring->dropped); the loop drains the rings (woken by an eventfd when a ring
 * is half full, and by a timer while tracing is on), merges them by time,
 * formats one line per event into its output buffer and writes it to the file
 * without blocking; every drop becomes a line in the trace and a counter in
 * GET /stats, so nothing is lost silently.
 *
 * The filter (kinds, address ranges, devices) is the loop's; producers read
 * only the flags word and the address ranges, which the loop publishes under
 * a sequence count (trace_set_filter()). The device filter is applied by the
 * loop when it formats (device names are constant strings).
 */
#ifndef PETREL_TRACE_H
#define PETREL_TRACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/util.h"

struct event_base;
struct event;

enum trace_kind {
    TRACE_PIO,
    TRACE_MMIO,
    TRACE_VIRTIO,
    TRACE_IRQ,
    TRACE_CONTROL,
    TRACE_NR_KINDS,
};

/* What happened, within a kind. */
enum trace_op {
    TRACE_OP_READ,    /* pio, mmio */
    TRACE_OP_WRITE,   /* pio, mmio */
    TRACE_OP_POP,     /* virtio: a chain taken (queue, head, chain length, bytes) */
    TRACE_OP_PUSH,    /* virtio: a chain given back (queue, head, bytes written) */
    TRACE_OP_STATUS,  /* virtio: the driver wrote the status (value: new, addr: old) */
    TRACE_OP_RESET,   /* virtio: the device was reset */
    TRACE_OP_BROKEN,  /* virtio: a queue broke (needs a reset) */
    TRACE_OP_LINE,    /* irq: an irqchip line's level (addr: GSI, value: level) */
    TRACE_OP_MSI,     /* irq: an MSI-X vector fired (addr: vector, value: result) */
    TRACE_OP_PAUSE,   /* control: every vCPU parked (value: kick time in ns) */
    TRACE_OP_RESUME,  /* control: every vCPU runs again (value: ns) */
    TRACE_OP_STOP,    /* control: the VM stops (every vCPU asked) */
    TRACE_OP_STOPPED, /* control: every vCPU has left (value: ns since the stop) */
    TRACE_OP_NR,
};

/* One event as a producer records it: 56 bytes, copied into a ring. */
struct trace_event {
    uint64_t ns;     /* CLOCK_MONOTONIC */
    uint64_t addr;   /* port, physical address, GSI, vector */
    uint64_t value;  /* data, level, bytes, status, kick time */
    const char *dev; /* the device's name (lives as long as the VM), or NULL */
    uint32_t queue, head, chain;
    int16_t vcpu; /* -1: not on a vCPU thread */
    uint8_t kind; /* enum trace_kind */
    uint8_t op;   /* enum trace_op */
    uint8_t size;
    int8_t result; /* 0, or the access was unclaimed (-1) */
};

#define TRACE_RING_SIZE   4096 /* events per ring (a power of 2) */
#define TRACE_MAX_RINGS   256  /* vCPUs (at most 254) and the shared ring */
#define TRACE_MAX_RANGES  8
#define TRACE_MAX_DEVICES 8
#define TRACE_DEV_NAME    32
#define TRACE_SPEC_MAX    512 /* a spec's length, as the API and the command line take it */

/* A single-producer, single-consumer ring of events. */
struct trace_ring {
    _Atomic uint32_t head;    /* the producer's: the next slot to fill */
    _Atomic uint32_t tail;    /* the loop's: the next slot to read */
    _Atomic uint64_t dropped; /* events the full ring could not take (producer adds) */
    uint64_t dropped_seen;    /* the loop's: drops already reported in the trace */
    struct trace_event *ev;   /* TRACE_RING_SIZE */
};

/* A filter: which kinds, and within pio/mmio which address ranges, and which devices. */
struct trace_filter {
    uint32_t kinds; /* bit per enum trace_kind */
    struct trace_range {
        uint8_t kind;    /* TRACE_PIO or TRACE_MMIO */
        uint64_t lo, hi; /* inclusive */
    } ranges[TRACE_MAX_RANGES];
    unsigned nr_ranges;
    char devices[TRACE_MAX_DEVICES][TRACE_DEV_NAME];
    unsigned nr_devices;
};

/* flags: bit k: kind k is on; bit TRACE_RANGED + k: kind k is limited to ranges. */
#define TRACE_RANGED 8

struct trace {
    atomic_uint flags; /* read by every producer; written by the loop */
    /* The ranges the producers check, published under seq (odd while written). */
    atomic_uint seq;
    struct {
        _Atomic uint64_t lo, hi;
        atomic_uint kind;
    } pub[TRACE_MAX_RANGES];
    atomic_uint nr_pub;

    struct trace_filter filter; /* the loop's: the whole current filter */
    struct trace_ring *rings;   /* nr_vcpus for vCPUs, then the shared one */
    unsigned nr_rings;
    pthread_mutex_t shared_lock; /* guards the shared ring's producer side */
    int notify_fd;               /* eventfd: a ring is half full */

    /* The loop's: the output. */
    struct event_base *base;
    struct event *ev_notify, *ev_timer;
    char path[4096]; /* the trace file (opened when tracing first goes on) */
    int fd;
    char *out; /* formatted lines not yet written (TRACE_OUT_SIZE) */
    size_t out_len;
    uint64_t events, dropped, filtered; /* written, dropped (all rings), left out by the filter */
    int write_err;                      /* the file failed (-errno): tracing went off */
};

#ifndef PETREL_TRACE
#define PETREL_TRACE 1
#endif

#if PETREL_TRACE
/* The one test at every hook: is kind on? */
#define TRACE_ON(t, kind)                                                                          \
    __builtin_expect((atomic_load_explicit(&(t)->flags, memory_order_relaxed) >> (kind)) & 1, 0)
#else
#define TRACE_ON(t, kind) 0
#endif

/*
 * Sets t up for nr_vcpus vCPU rings plus the shared one; nothing is traced yet and no
 * file is open. path: where the trace goes once on. 0 or -errno.
 */
int trace_init(struct trace *t, unsigned nr_vcpus, const char *path) MUST_CHECK;

/* Watches the rings on base (the loop); from then on trace_set_filter() may open the file. */
int trace_start(struct trace *t, struct event_base *base) MUST_CHECK;

void trace_destroy(struct trace *t);

/*
 * Parses a spec: comma-separated items, each KIND (pio, mmio, virtio, irq,
 * control, all), KIND=LO-HI or KIND=ADDR (pio, mmio: only accesses in that
 * range; several ranges add up), dev=NAME (only that device's events; several
 * add up), or none. Into f from empty. 0 or -EINVAL with a message.
 */
int trace_spec_parse(const char *spec, struct trace_filter *f, struct errbuf *eb) MUST_CHECK;

/*
 * Changes f: turns on the kinds (and adds ranges/devices) of the spec on, then turns off
 * the kinds named in off (a list of kinds; their ranges go too). Either may be NULL.
 */
int trace_filter_change(struct trace_filter *f, const char *on, const char *off,
                        struct errbuf *eb) MUST_CHECK;

/* Writes f back as a spec ("pio=0x3f8-0x3ff,virtio,dev=vda"; "none"). */
void trace_filter_format(const struct trace_filter *f, char *buf, size_t len);

/* Does f let e through (kind, range, device)? */
bool trace_filter_match(const struct trace_filter *f, const struct trace_event *e);

/*
 * Makes f the filter (the loop). Opening the file when tracing first goes on
 * may fail: -errno with a message, and the filter is left as it was.
 */
int trace_set_filter(struct trace *t, const struct trace_filter *f, struct errbuf *eb) MUST_CHECK;

/* Formats one event as its trace line (with '\n'); returns the length (< len). */
size_t trace_format(const struct trace_event *e, char *buf, size_t len);

/*
 * Records an event (producers). vcpu >= 0 writes that vCPU's ring (only its own
 * thread may), -1 the shared one. Fills in ns. Never blocks on the file.
 */
void trace_emit(struct trace *t, int vcpu, struct trace_event *e);

/* A port or MMIO access, after the bus handled it (dev NULL: unclaimed). */
void trace_access(struct trace *t, int vcpu, enum trace_kind kind, uint64_t addr, const void *data,
                  unsigned size, bool is_write, const char *dev);

/* A control transition (the loop): pause/resume/stop, with its time in ns. */
void trace_control(struct trace *t, enum trace_op op, uint64_t ns);

/*
 * Drains every ring into the output and writes what the file takes (the loop,
 * or at exit with every producer gone). Returns the events written.
 */
uint64_t trace_drain(struct trace *t);

/* At exit: drains, then writes the rest, waiting for the file up to deadline_ns. */
void trace_flush(struct trace *t, uint64_t deadline_ns);

/* Events dropped so far (any thread; the rings' counters). */
uint64_t trace_dropped(struct trace *t);

const char *trace_kind_name(enum trace_kind k);

#endif
