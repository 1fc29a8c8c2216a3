/*
 * blkbench: a virtio-blk benchmark (virtio 1.2, 5.2) through the kit's
 * virtio driver, interrupt-driven by MSI-X. On the first virtio-blk
 * (1af4:1042) it runs, in order, the tests blkbench.tests names:
 *
 *   randread1    4 KiB reads at random 4 KiB-aligned offsets, 1 in flight
 *   randread32   the same with 32 in flight
 *   seqread      1 MiB reads from sector 0 on, blkbench.seqqd in flight (4)
 *   seqwrite     1 MiB writes from sector 0 on (the drive must be writable)
 *
 * Each keeps its requests in flight: as completions arrive (it sleeps in
 * kit_idle() until the used index moves, never polls), each finished slot is
 * refilled at once and the queue is kicked once for the refills of a batch.
 * A 1 MiB request is one header, the data as a chain of segments of
 * blkbench.seg bytes (64 KiB; made larger if 1 MiB would take more than the
 * device's seg_max, and none larger than its size_max), and the status byte.
 * With VIRTIO_F_EVENT_IDX (negotiated when offered, as Linux does;
 * blkbench.event_idx=0 not), the device interrupts for the next used element
 * only and a kick is skipped when the device's avail_event says it will look
 * anyway. A LAPIC tick every 100 ms is a watchdog: 10 s without a
 * completion is a FAIL that says what was in flight, not a hang. A test runs
 * for blkbench.ms milliseconds (2000) or, with blkbench.count=N, for N
 * requests; every request must end with status OK. Sequential tests wrap at
 * the end of the disk.
 *
 * The clock is the TSC, calibrated against the ACPI PM timer (3.579545 MHz,
 * an I/O port both petrel and QEMU serve from the host's monotonic clock)
 * over a 200 ms sleep before the first test: a rate the host's emulation does
 * not distort, read without a VM exit during the tests. Prints
 *
 *   pci: ...                                     every PCI function
 *   blkbench: blk <bdf> capacity <sectors> seg_max <n> size_max <n> queue <size> ro|rw[ event_idx]
 *   blkbench: clock tsc <hz> pm-ticks <n> tsc-ticks <n>
 *   blkbench: result test=<name> bs=<bytes> qd=<n> segs=<n> requests=<n> bytes=<n> ns=<n>
 *             iops=<n> kbps=<n> interrupts=<n> kicks=<n>        (one line)
 *   blkbench: done
 *   blkbench: poweroff
 *
 * (kbps: 1000 bytes a second; ns: first submission to last completion) and
 * powers off through ACPI. A failure prints "blkbench: FAIL <why>" and exits
 * 1; no virtio-blk: exit 3; a bad option "blkbench: bad <option>", exit 2.
 * blkbench.poweroff=0 exits 0 instead of powering off.
 */
#include "kit/acpi.h"
#include "kit/cmdline.h"
#include "kit/irq.h"
#include "kit/kit.h"
#include "kit/lapic.h"
#include "kit/pci.h"
#include "kit/printf.h"
#include "kit/string.h"
#include "kit/ticker.h"
#include "kit/virtio.h"

#include <stdarg.h>

#define SECTOR      512
#define SMALL       4096
#define LARGE       (1u << 20)
#define QD_MAX      32
#define SEQ_QD_MAX  8
#define SEGS_MAX    64 /* data segments of one request */
#define PM_TIMER_HZ 3579545u
#define CALIB_MS    200
#define TICK_MS     100 /* the watchdog's period */
#define STALL_TICKS 100 /* no completion for this many ticks: FAIL */

/* virtio-blk (5.2.3, 5.2.4, 5.2.6). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO       5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9
#define BLK_CFG_CAPACITY      0
#define BLK_CFG_SIZE_MAX      8
#define BLK_CFG_SEG_MAX       12
#define VIRTIO_BLK_T_IN       0
#define VIRTIO_BLK_T_OUT      1
#define VIRTIO_BLK_S_OK       0

struct blk_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct test {
    const char *name;
    uint32_t type;
    uint32_t bs;
    unsigned qd; /* 0: blkbench.seqqd */
    int random;
};

static const struct test tests[] = {
    {"randread1", VIRTIO_BLK_T_IN, SMALL, 1, 1},
    {"randread32", VIRTIO_BLK_T_IN, SMALL, 32, 1},
    {"seqread", VIRTIO_BLK_T_IN, LARGE, 0, 0},
    {"seqwrite", VIRTIO_BLK_T_OUT, LARGE, 0, 0},
};

static struct pci_func funcs[PCI_MAX_FUNCS];
static struct virtio_dev dev;
static struct acpi_info acpi;
static struct blk_hdr hdrs[QD_MAX];
static volatile uint8_t statuses[QD_MAX];
/* Request buffers: slot i of a test uses bytes [i * bs, (i + 1) * bs). */
static uint8_t bufs[SEQ_QD_MAX * LARGE] __attribute__((aligned(4096)));
static volatile int calib_done;
static uint64_t tsc_hz;
static uint64_t capacity;
static int event_idx;   /* VIRTIO_F_EVENT_IDX negotiated */
static uint16_t kicked; /* the available index at the last kick */
static uint32_t seg_max, size_max;

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static int fail(const char *fmt, ...) KIT_PRINTF(1, 2);
static int fail(const char *fmt, ...)
{
    va_list ap;
    char why[200];

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    printf("blkbench: FAIL %s\n", why);
    return -1;
}

static void calib_tick(unsigned vector)
{
    (void)vector;
    calib_done = 1;
}

static int pm_read(uint32_t *v)
{
    if (acpi_gas_read(&acpi.pm_tmr, 0, 4, v))
        return -1;
    if (!(acpi.fadt_flags & ACPI_FADT_TMR_VAL_EXT))
        *v &= 0xffffff;
    return 0;
}

/* The TSC's rate from the PM timer over a CALIB_MS sleep (LAPIC one-shot). 0 or -1. */
static int clock_calibrate(void)
{
    uint32_t p0, p1, mask = acpi.fadt_flags & ACPI_FADT_TMR_VAL_EXT ? 0xffffffffu : 0xffffffu;

    if (!acpi.pm_tmr.addr)
        return fail("no ACPI PM timer to calibrate the TSC against");
    irq_set_handler(IRQ_VECTOR_TIMER, calib_tick);
    calib_done = 0;
    if (pm_read(&p0))
        return fail("the PM timer is not readable");
    uint64_t t0 = rdtsc();
    lapic_timer_oneshot(IRQ_VECTOR_TIMER, CALIB_MS * LAPIC_TIMER_TICKS_PER_MS);
    while (!calib_done)
        kit_idle();
    lapic_timer_stop();
    pm_read(&p1);
    uint64_t t1 = rdtsc();
    uint64_t dp = (p1 - p0) & mask, dt = t1 - t0;
    if (dp < PM_TIMER_HZ / 100)
        return fail("the PM timer moved %llu ticks in ~%u ms", (unsigned long long)dp, CALIB_MS);
    tsc_hz = dt * PM_TIMER_HZ / dp;
    printf("blkbench: clock tsc %llu pm-ticks %llu tsc-ticks %llu\n", (unsigned long long)tsc_hz,
           (unsigned long long)dp, (unsigned long long)dt);
    return 0;
}

static uint64_t ns_of(uint64_t ticks)
{
    /* ticks * 1e9 / hz without overflow for runs of hours */
    return ticks / tsc_hz * 1000000000ull + ticks % tsc_hz * 1000000000ull / tsc_hz;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t xorshift(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/*
 * Notifies the device of what was published since the last kick, unless it
 * said (EVENT_IDX: avail_event) that it does not need to be told yet, as
 * Linux's virtqueue_kick_prepare() decides (2.7.10). Returns 1 if it kicked.
 */
static int kick(struct virtq *vq)
{
    uint16_t now = vq->avail_idx, old = kicked;

    kicked = now;
    if (event_idx) {
        __asm__ volatile("mfence" : : : "memory"); /* the index before avail_event's read */
        /* avail_event: the 16 bits after used->ring[size - 1] (2.7.8) */
        const volatile uint8_t *p = (const volatile uint8_t *)&vq->used->ring[vq->size];
        uint16_t ev = (uint16_t)(p[0] | p[1] << 8);
        if ((uint16_t)(now - ev - 1) >= (uint16_t)(now - old))
            return 0;
    }
    virtq_kick(vq);
    return 1;
}

/* Builds slot's request at sector (descriptors slot * per ..) and publishes it. */
static void submit(struct virtq *vq, const struct test *t, unsigned slot, unsigned per,
                   uint32_t seg, uint64_t sector)
{
    unsigned first = slot * per, nseg = (t->bs + seg - 1) / seg;
    uint16_t dflags = t->type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0;
    uint8_t *buf = bufs + (uint64_t)slot * t->bs;

    hdrs[slot].type = t->type;
    hdrs[slot].reserved = 0;
    hdrs[slot].sector = sector;
    statuses[slot] = 0xee;
    virtq_desc_set(vq, first, (uint64_t)(uintptr_t)&hdrs[slot], sizeof(hdrs[slot]),
                   VIRTQ_DESC_F_NEXT, (uint16_t)(first + 1));
    for (unsigned i = 0; i < nseg; i++) {
        uint32_t len = t->bs - i * seg < seg ? t->bs - i * seg : seg;
        virtq_desc_set(vq, first + 1 + i, (uint64_t)(uintptr_t)(buf + (uint64_t)i * seg), len,
                       dflags | VIRTQ_DESC_F_NEXT, (uint16_t)(first + 2 + i));
    }
    virtq_desc_set(vq, first + 1 + nseg, (uint64_t)(uintptr_t)&statuses[slot], 1,
                   VIRTQ_DESC_F_WRITE, 0);
    virtq_publish(vq, (uint16_t)first);
}

/*
 * Sleeps until the device has used a buffer the program has not taken yet
 * (asking for an interrupt for it: used_event), or STALL_TICKS watchdog ticks
 * pass with nothing used: then a lost interrupt or a stuck device is a FAIL
 * that says where things stand, not a hang. 0 or -1.
 */
static int wait_used(const struct test *t, struct virtq *vq, unsigned inflight)
{
    uint64_t t0 = ticker_count();

    for (;;) {
        *(volatile uint16_t *)&vq->avail->ring[vq->size] = vq->last_used;
        __asm__ volatile("mfence" : : : "memory");
        uint16_t used = *(volatile uint16_t *)&vq->used->idx;
        if (used != vq->last_used)
            return 0;
        if (ticker_count() - t0 >= STALL_TICKS)
            return fail("%s: nothing used for %u ms: %u in flight, used index %u, available "
                        "index %u, %u interrupts, status 0x%02x",
                        t->name, STALL_TICKS * TICK_MS, inflight, used, vq->avail_idx,
                        vq->interrupts, virtio_status(vq->dev));
        kit_idle();
    }
}

/* Runs one test; prints its result line. 0 or -1. */
static int run(const struct test *t, unsigned seqqd, uint32_t seg, unsigned long ms,
               unsigned long count)
{
    struct virtq *vq = &dev.vq[0];
    unsigned qd = t->qd ? t->qd : seqqd;
    unsigned nseg = (t->bs + seg - 1) / seg, per = nseg + 2;
    uint64_t blocks = capacity / (t->bs / SECTOR), next_seq = 0;
    uint64_t done = 0, issued = 0, kicks = 0;
    unsigned inflight = 0, irq0 = vq->interrupts;

    if (t->bs == SMALL)
        seg = SMALL, nseg = 1, per = 3;
    if (!blocks)
        return fail("%s: the disk holds no %u-byte block", t->name, t->bs);
    if ((uint64_t)qd * per > vq->size)
        return fail("%s: %u requests of %u descriptors do not fit the queue (%u)", t->name, qd, per,
                    vq->size);
    if (t->type == VIRTIO_BLK_T_OUT && (dev.accepted & VIRTIO_BIT(VIRTIO_BLK_F_RO)))
        return fail("%s: the drive is read-only", t->name);

    uint64_t limit = count ? 0 : (uint64_t)ms * (tsc_hz / 1000);
    uint64_t start = rdtsc(), end = start;
    for (unsigned s = 0; s < qd && (!count || issued < count); s++) {
        uint64_t b = t->random ? xorshift() % blocks : next_seq++ % blocks;
        submit(vq, t, s, per, seg, b * (t->bs / SECTOR));
        issued++;
        inflight++;
    }
    kicks += kick(vq);
    int stopping = 0, refilled = 0;
    while (inflight) {
        struct virtq_used_elem e;
        int r = wait_used(t, vq, inflight);

        if (r)
            return -1;
        r = virtq_wait(vq, &e); /* returns at once: an element is there */
        if (r)
            return fail("%s: %s", t->name, dev.error);
        unsigned slot = e.id / per;
        if (e.id % per || slot >= qd)
            return fail("%s: used id %u was not a head submitted", t->name, e.id);
        if (statuses[slot] != VIRTIO_BLK_S_OK)
            return fail("%s: request at sector %llu: status 0x%02x", t->name,
                        (unsigned long long)hdrs[slot].sector, statuses[slot]);
        inflight--;
        done++;
        end = rdtsc();
        if (!stopping)
            stopping = count ? issued >= count : end - start >= limit;
        if (!stopping) {
            uint64_t b = t->random ? xorshift() % blocks : next_seq++ % blocks;
            submit(vq, t, slot, per, seg, b * (t->bs / SECTOR));
            issued++;
            inflight++;
            refilled = 1;
        }
        /* One kick for everything refilled while the used ring had more to give. */
        if (refilled && *(volatile uint16_t *)&vq->used->idx == vq->last_used) {
            kicks += kick(vq);
            refilled = 0;
        }
    }
    uint64_t ns = ns_of(end - start);
    uint64_t bytes = done * t->bs;
    if (!ns)
        ns = 1;
    printf("blkbench: result test=%s bs=%u qd=%u segs=%u requests=%llu bytes=%llu ns=%llu "
           "iops=%llu kbps=%llu interrupts=%u kicks=%llu\n",
           t->name, t->bs, qd, nseg, (unsigned long long)done, (unsigned long long)bytes,
           (unsigned long long)ns, (unsigned long long)(done * 1000000000ull / ns),
           (unsigned long long)(bytes * 1000000ull / ns), vq->interrupts - irq0,
           (unsigned long long)kicks);
    return 0;
}

int kit_main(void)
{
    unsigned long ms = 2000, count = 0, seqqd = 4, seg = 65536, poweroff = 1, eidx = 1;
    char names[128] = "randread1,randread32,seqread,seqwrite";

    if (kit_cmdline_uint("blkbench.ms", 10, &ms) == -2 || !ms || ms > 600000) {
        puts("blkbench: bad blkbench.ms (want 1-600000)");
        return 2;
    }
    if (kit_cmdline_uint("blkbench.count", 10, &count) == -2) {
        puts("blkbench: bad blkbench.count");
        return 2;
    }
    if (kit_cmdline_uint("blkbench.seqqd", 10, &seqqd) == -2 || !seqqd || seqqd > SEQ_QD_MAX) {
        printf("blkbench: bad blkbench.seqqd (want 1-%u)\n", SEQ_QD_MAX);
        return 2;
    }
    if (kit_cmdline_uint("blkbench.seg", 0, &seg) == -2 || seg < SMALL || seg > LARGE ||
        seg % SMALL) {
        puts("blkbench: bad blkbench.seg (want a multiple of 4096 up to 1 MiB)");
        return 2;
    }
    if (kit_cmdline_uint("blkbench.event_idx", 10, &eidx) == -2 || eidx > 1) {
        puts("blkbench: bad blkbench.event_idx (want 0 or 1)");
        return 2;
    }
    if (kit_cmdline_uint("blkbench.poweroff", 10, &poweroff) == -2 || poweroff > 1) {
        puts("blkbench: bad blkbench.poweroff (want 0 or 1)");
        return 2;
    }
    if (kit_cmdline_get("blkbench.tests", names, sizeof(names)) >= (int)sizeof(names)) {
        puts("blkbench: bad blkbench.tests");
        return 2;
    }
    const struct test *todo[8];
    unsigned ntodo = 0;
    for (char *p = names; *p;) {
        char *end = p;
        while (*end && *end != ',')
            end++;
        unsigned i;
        for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
            if (strlen(tests[i].name) == (size_t)(end - p) && !memcmp(tests[i].name, p, end - p))
                break;
        if (i == sizeof(tests) / sizeof(tests[0]) || ntodo == 8) {
            puts("blkbench: bad blkbench.tests (want names from randread1, randread32, seqread, "
                 "seqwrite, comma-separated)");
            return 2;
        }
        todo[ntodo++] = &tests[i];
        p = *end ? end + 1 : end;
    }

    if (acpi_init(&acpi) < 0)
        return fail("ACPI: %s", acpi.error), 1;
    unsigned n = pci_scan(funcs, PCI_MAX_FUNCS);
    int found = pci_next(funcs, n, 0, VIRTIO_VENDOR, VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK));
    if (found < 0) {
        printf("blkbench: no virtio-blk (%04x:%04x)\n", VIRTIO_VENDOR,
               VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK));
        return 3;
    }
    const struct pci_func *f = &funcs[found];
    uint64_t want = VIRTIO_BIT(VIRTIO_BLK_F_RO) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                    VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
                    VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | (eidx ? VIRTIO_BIT(VIRTIO_F_EVENT_IDX) : 0);
    if (virtio_probe(&dev, f) || virtio_start(&dev, want) ||
        virtio_queue_setup(&dev, 0, KIT_VIRTQ_MAX) ||
        virtio_config_read(&dev, BLK_CFG_CAPACITY, &capacity, sizeof(capacity)) ||
        ((dev.accepted & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX)) &&
         virtio_config_read(&dev, BLK_CFG_SEG_MAX, &seg_max, sizeof(seg_max))) ||
        ((dev.accepted & VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX)) &&
         virtio_config_read(&dev, BLK_CFG_SIZE_MAX, &size_max, sizeof(size_max))) ||
        virtio_driver_ok(&dev))
        return fail("%s", dev.error), 1;
    event_idx = !!(dev.accepted & VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    printf("blkbench: blk %02x:%02x.%x capacity %llu seg_max %u size_max %u queue %u %s%s\n",
           PCI_BDF_BUS(f->bdf), PCI_BDF_DEV(f->bdf), PCI_BDF_FN(f->bdf),
           (unsigned long long)capacity, seg_max, size_max, dev.vq[0].size,
           dev.accepted & VIRTIO_BIT(VIRTIO_BLK_F_RO) ? "ro" : "rw", event_idx ? " event_idx" : "");

    /* Segments for 1 MiB: no more than seg_max (or SEGS_MAX), none above size_max. */
    unsigned limit_segs = seg_max && seg_max < SEGS_MAX ? seg_max : SEGS_MAX;
    while (LARGE / seg > limit_segs)
        seg *= 2;
    if (size_max && seg > size_max)
        return fail("1 MiB needs segments of %lu bytes: more than size_max %u or seg_max %u", seg,
                    size_max, seg_max),
               1;

    if (clock_calibrate())
        return 1;
    ticker_start(TICK_MS);
    for (unsigned i = 0; i < ntodo; i++)
        if (run(todo[i], (unsigned)seqqd, (uint32_t)seg, ms, count))
            return 1;
    virtio_reset(&dev);
    puts("blkbench: done");
    if (!poweroff)
        return 0;
    if (!acpi_can_poweroff(&acpi)) {
        puts("blkbench: FAIL no ACPI poweroff");
        return 1;
    }
    puts("blkbench: poweroff");
    acpi_poweroff(&acpi);
    puts("blkbench: FAIL poweroff: the machine is still on");
    return 1;
}
