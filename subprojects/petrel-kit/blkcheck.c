/*
 * blkcheck: drives every virtio-blk device (virtio 1.2, 5.2; 1af4:1042) on
 * PCI through the kit's virtio driver, interrupt-driven by MSI-X.
 *
 * For each drive i (in PCI order, at most BLK_MAX_DRIVES): negotiates RO,
 * BLK_SIZE and FLUSH when offered, reads the capacity, asks the serial
 * (GET_ID), then runs the operations the command line gives, on every drive:
 *
 *   blkcheck.write=S:P[:N][,S:P:N...]  writes N sectors (1-64, default 1) from
 *       sector S filled with pattern P (0-255) and reads them back; then one
 *       FLUSH for all the writes. Byte k of sector s of pattern P is
 *       (P + s + (s >> 8) + k + (k >> 8)) & 0xff.
 *   blkcheck.read=S[:N][,S:N...]       reads N sectors (1-64, default 1) and
 *       prints their CRC-32 (zlib's).
 *
 *   blkcheck.reset_busy=S  first, on drive 0, a reset while the device has a
 *       request inside a host syscall (the integration test keeps the disk
 *       file's write lock, so a write to sector S waits in the host until the
 *       test lets go). It prints "blkcheck: 0 waiting for the host" and reads
 *       sector S + 1 every millisecond until it starts with "GATE-SET" (the
 *       test writes that through a shared mapping once it holds the lock; the
 *       lock must wait until petrel has opened the drive, which fallocate()s
 *       it). Then a write to S and a read of sector 0 go in one kick: the
 *       device hands them to its workers in order, so once the read is used
 *       the write is in a worker. Then the status is written 0 and must keep
 *       reading non-zero (the reset waits for the host); a status write and a
 *       notify change nothing meanwhile; with a second CPU, that CPU rings the
 *       notify register every millisecond for as long as the reset is pending
 *       (what would stall petrel's loop if the reset waited holding the device
 *       lock). Waits for status 0 (virtio_reset_wait(), blkcheck.timeout) and
 *       starts the drive over; the write's request is not used.
 *
 * A read-only drive (VIRTIO_BLK_F_RO) must refuse each write with
 * VIRTIO_BLK_S_IOERR; the program goes on. Every drive must also refuse a
 * read of the sector at its capacity (IOERR). Every request must end with a
 * status the device wrote and with its own MSI-X interrupt. Prints
 *
 *   pci: ...                                     every PCI function (pci_print)
 *   blkcheck: <i> <bdf> capacity <sectors> blk_size <bytes> features 0x<accepted> ro|rw id
 * "<serial>" blkcheck: <i> write <S>+<N> pattern 0x<P> ok blkcheck: <i> write <S>+<N> refused
 * (read-only) blkcheck: <i> flush ok | flush unsupported (no VIRTIO_BLK_F_FLUSH) blkcheck: <i> read
 * <S>+<N> crc32 <8 hex> blkcheck: <i> read past the end refused blkcheck: PASS drives <n> requests
 * <r> interrupts <k> blkcheck: poweroff
 *
 * and for blkcheck.reset_busy: "blkcheck: 0 reset pending status 0x<st> cpus <n>",
 * then "blkcheck: 0 reset done kicks <k>" once the status reads 0.
 *
 *   blkcheck.exit_in_flight=S  instead of everything else, on drive 0: the same wait
 *       for "GATE-SET" in sector S + 1 as reset_busy, then one-sector writes to
 *       sectors S and S + 2 .. S + BLK_EXIT_WRITES, pattern 0x3c, in one kick, and
 *       "blkcheck: 0 exit with <n> writes in flight"; then the program exits (status 0)
 *       without waiting for them. With the host's writes held, more than petrel's
 *       disk workers: some are still queued in petrel when the guest is gone. Each
 *       must still reach the file (the VMM's exit finishes them).
 *
 * then powers off through ACPI. A failed check prints "blkcheck: FAIL <why>"
 * and exits 1; no virtio-blk: "blkcheck: no virtio-blk (1af4:1042)", exit 3;
 * a bad option "blkcheck: bad <option>", exit 2. blkcheck.timeout=<ms> limits
 * each wait (20000; 0: none), blkcheck.poweroff=0 exits 0 instead.
 */
#include "kit/acpi.h"
#include "kit/cmdline.h"
#include "kit/crc32.h"
#include "kit/io.h"
#include "kit/kit.h"
#include "kit/pci.h"
#include "kit/printf.h"
#include "kit/smp.h"
#include "kit/stdlib.h"
#include "kit/string.h"
#include "kit/virtio.h"

#include <stdarg.h>

#define BLK_MAX_DRIVES  4
#define BLK_MAX_OPS     8
#define BLK_MAX_SECTORS 64
#define BLK_SECTOR      512
#define BLK_QSIZE       16
#define BLK_EXIT_WRITES (BLK_QSIZE / 3) /* three descriptors each */

/* Feature bits and the configuration layout (5.2.3, 5.2.4). */
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO       5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9
#define BLK_CFG_CAPACITY      0
#define BLK_CFG_BLK_SIZE      20

/* Request types and statuses (5.2.6). */
#define VIRTIO_BLK_T_IN     0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2
#define BLK_ID_BYTES        20
#define BLK_STATUS_UNSET    0xee /* what the status byte holds until the device writes it */

struct blk_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct blk_op {
    uint64_t sector;
    unsigned count;
    unsigned pattern;
};

struct blk_drive {
    struct virtio_dev dev;
    uint64_t capacity;
    unsigned requests;
};

static struct pci_func funcs[PCI_MAX_FUNCS];
static struct blk_drive drives[BLK_MAX_DRIVES];
static struct blk_op writes[BLK_MAX_OPS], reads[BLK_MAX_OPS];
static unsigned nwrites, nreads;
static struct acpi_info acpi;
static struct blk_hdr hdr;
static volatile uint8_t status;
static uint8_t data[BLK_MAX_SECTORS * BLK_SECTOR];
/* blkcheck.reset_busy's second request, and the second CPU's notify writes. */
static struct blk_hdr hdr2;
static volatile uint8_t status2;
static uint8_t data2[BLK_SECTOR];
static volatile uint64_t kick_addr; /* BSP -> AP: ring this (0: not yet) */
static volatile int kick_stop;      /* BSP -> AP: stop ringing */
static volatile unsigned kicks;     /* AP: notifies written */
static uint64_t want_features = VIRTIO_BIT(VIRTIO_BLK_F_RO) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                                VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX);

static uint8_t pattern_byte(unsigned p, uint64_t s, unsigned k)
{
    return (uint8_t)(p + s + (s >> 8) + k + (k >> 8));
}

/*
 * Parses "S:P[:N],..." (with_pattern) or "S[:N],..." into ops. Returns the
 * count, 0 if the option is absent, -1 (and the message) if malformed.
 */
static int parse_ops(const char *name, int with_pattern, struct blk_op *ops)
{
    char buf[256];
    int len = kit_cmdline_get(name, buf, sizeof(buf));
    unsigned n = 0;

    if (len < 0)
        return 0;
    if ((size_t)len >= sizeof(buf))
        goto bad;
    for (char *p = buf; *p;) {
        char *end;
        struct blk_op op = {0, 1, 0};

        if (n == BLK_MAX_OPS)
            goto bad;
        op.sector = strtoul(p, &end, 0);
        if (end == p)
            goto bad;
        p = end;
        if (with_pattern) {
            if (*p++ != ':')
                goto bad;
            op.pattern = (unsigned)strtoul(p, &end, 0);
            if (end == p || op.pattern > 255)
                goto bad;
            p = end;
        }
        if (*p == ':') {
            p++;
            op.count = (unsigned)strtoul(p, &end, 0);
            if (end == p || !op.count || op.count > BLK_MAX_SECTORS)
                goto bad;
            p = end;
        }
        if (*p == ',')
            p++;
        else if (*p)
            goto bad;
        ops[n++] = op;
    }
    return (int)n;
bad:
    printf("blkcheck: bad %s (want %s[:N],... with N 1-%u, at most %u)\n", name,
           with_pattern ? "SECTOR:PATTERN" : "SECTOR", BLK_MAX_SECTORS, BLK_MAX_OPS);
    return -1;
}

static int fail(struct blk_drive *b, const char *fmt, ...) KIT_PRINTF(2, 3);
static int fail(struct blk_drive *b, const char *fmt, ...)
{
    va_list ap;
    char why[160];

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    printf("blkcheck: FAIL %u %s\n", (unsigned)(b - drives), why);
    return -1;
}

/*
 * One request: the header, data (len bytes; device-writable for reads), the
 * status byte. Waits for the request and its interrupt. Returns the status the
 * device wrote, or -1 (reported).
 */
static int blk_request(struct blk_drive *b, uint32_t type, uint64_t sector, void *buf, uint32_t len,
                       int device_writes)
{
    struct virtq *vq = &b->dev.vq[0];
    struct virtq_buf bufs[3] = {{&hdr, sizeof(hdr)}, {buf, len}, {(void *)&status, 1}};
    uint32_t written;
    unsigned nout = 1, nin = 1;

    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    status = BLK_STATUS_UNSET;
    if (len) {
        nout += !device_writes;
        nin += device_writes;
    } else {
        bufs[1] = bufs[2];
    }
    b->requests++;
    if (virtq_xfer(vq, bufs, nout, nin, &written) || virtq_wait_interrupts(vq, b->requests))
        return fail(b, "request type %u sector %llu: %s", type, (unsigned long long)sector,
                    b->dev.error);
    if (!written)
        return fail(b, "request type %u sector %llu: used length 0 (no status written)", type,
                    (unsigned long long)sector);
    if (status > VIRTIO_BLK_S_UNSUPP)
        return fail(b, "request type %u sector %llu: status 0x%02x", type,
                    (unsigned long long)sector, status);
    return status;
}

/* Probes and starts drive b on function f, prints its line. 0 or -1. */
static int blk_start(struct blk_drive *b, const struct pci_func *f, unsigned timeout)
{
    struct virtio_dev *d = &b->dev;
    uint32_t blk_size = BLK_SECTOR;
    char id[BLK_ID_BYTES + 1];

    if (virtio_probe(d, f))
        return fail(b, "%s", d->error);
    d->timeout_ms = timeout;
    if (virtio_start(d, want_features) || virtio_queue_setup(d, 0, BLK_QSIZE) ||
        virtio_config_read(d, BLK_CFG_CAPACITY, &b->capacity, sizeof(b->capacity)) ||
        ((d->accepted & VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE)) &&
         virtio_config_read(d, BLK_CFG_BLK_SIZE, &blk_size, sizeof(blk_size))) ||
        virtio_driver_ok(d))
        return fail(b, "%s", d->error);

    memset(id, 0, sizeof(id));
    int st = blk_request(b, VIRTIO_BLK_T_GET_ID, 0, id, BLK_ID_BYTES, 1);
    if (st < 0)
        return -1;
    if (st != VIRTIO_BLK_S_OK) {
        const char *what = st == VIRTIO_BLK_S_UNSUPP ? "(unsupported)" : "(error)";
        memcpy(id, what, strlen(what) + 1);
    }
    for (unsigned i = 0; id[i]; i++)
        if (id[i] < 0x20 || id[i] > 0x7e || id[i] == '"')
            id[i] = '?';
    printf("blkcheck: %u %02x:%02x.%x capacity %llu blk_size %u features 0x%llx %s id \"%s\"\n",
           (unsigned)(b - drives), PCI_BDF_BUS(f->bdf), PCI_BDF_DEV(f->bdf), PCI_BDF_FN(f->bdf),
           (unsigned long long)b->capacity, blk_size, (unsigned long long)d->accepted,
           d->accepted & VIRTIO_BIT(VIRTIO_BLK_F_RO) ? "ro" : "rw", id);
    return 0;
}

/* Writes op, reads it back and compares; on a read-only drive, checks the refusal. */
static int blk_write(struct blk_drive *b, const struct blk_op *op)
{
    unsigned i = (unsigned)(b - drives), len = op->count * BLK_SECTOR;
    int ro = !!(b->dev.accepted & VIRTIO_BIT(VIRTIO_BLK_F_RO));

    for (unsigned s = 0; s < op->count; s++)
        for (unsigned k = 0; k < BLK_SECTOR; k++)
            data[s * BLK_SECTOR + k] = pattern_byte(op->pattern, op->sector + s, k);
    int st = blk_request(b, VIRTIO_BLK_T_OUT, op->sector, data, len, 0);
    if (st < 0)
        return -1;
    if (ro) {
        if (st != VIRTIO_BLK_S_IOERR)
            return fail(b, "write %llu+%u on a read-only drive: status %d, not IOERR",
                        (unsigned long long)op->sector, op->count, st);
        printf("blkcheck: %u write %llu+%u refused (read-only)\n", i,
               (unsigned long long)op->sector, op->count);
        return 0;
    }
    if (st != VIRTIO_BLK_S_OK)
        return fail(b, "write %llu+%u: status %d", (unsigned long long)op->sector, op->count, st);
    memset(data, 0xee, len);
    st = blk_request(b, VIRTIO_BLK_T_IN, op->sector, data, len, 1);
    if (st < 0)
        return -1;
    if (st != VIRTIO_BLK_S_OK)
        return fail(b, "read back %llu+%u: status %d", (unsigned long long)op->sector, op->count,
                    st);
    for (unsigned s = 0; s < op->count; s++) {
        for (unsigned k = 0; k < BLK_SECTOR; k++) {
            uint8_t want = pattern_byte(op->pattern, op->sector + s, k);
            uint8_t have = data[s * BLK_SECTOR + k];
            if (have != want)
                return fail(b, "read back sector %llu byte %u: 0x%02x, wrote 0x%02x",
                            (unsigned long long)(op->sector + s), k, have, want);
        }
    }
    printf("blkcheck: %u write %llu+%u pattern 0x%02x ok\n", i, (unsigned long long)op->sector,
           op->count, op->pattern);
    return 0;
}

static int blk_read(struct blk_drive *b, const struct blk_op *op)
{
    unsigned len = op->count * BLK_SECTOR;

    memset(data, 0xee, len);
    int st = blk_request(b, VIRTIO_BLK_T_IN, op->sector, data, len, 1);
    if (st < 0)
        return -1;
    if (st != VIRTIO_BLK_S_OK)
        return fail(b, "read %llu+%u: status %d", (unsigned long long)op->sector, op->count, st);
    printf("blkcheck: %u read %llu+%u crc32 %08x\n", (unsigned)(b - drives),
           (unsigned long long)op->sector, op->count, crc32(0, data, len));
    return 0;
}

/* The second CPU: rings drive 0's notify register every millisecond until told to stop. */
static void kicker(unsigned cpu)
{
    (void)cpu;
    while (!kick_stop) {
        if (kick_addr) {
            mmio_write16(kick_addr, 0);
            kicks++;
        }
        acpi_delay_ms(&acpi, 1);
    }
}

/* Descriptors first .. first + 2: header, one sector of data, status. */
static void chain3(struct virtq *vq, unsigned first, struct blk_hdr *h, void *buf,
                   int device_writes, volatile uint8_t *st)
{
    virtq_desc_set(vq, first, (uint64_t)(uintptr_t)h, sizeof(*h), VIRTQ_DESC_F_NEXT, first + 1);
    virtq_desc_set(vq, first + 1, (uint64_t)(uintptr_t)buf, BLK_SECTOR,
                   VIRTQ_DESC_F_NEXT | (device_writes ? VIRTQ_DESC_F_WRITE : 0), first + 2);
    virtq_desc_set(vq, first + 2, (uint64_t)(uintptr_t)st, 1, VIRTQ_DESC_F_WRITE, 0);
}

/* Says it waits, then reads sector + 1 every millisecond until it says GATE-SET. 0 or -1. */
static int blk_wait_gate(struct blk_drive *b, uint64_t sector, const char *what)
{
    struct virtio_dev *d = &b->dev;

    if (d->accepted & VIRTIO_BIT(VIRTIO_BLK_F_RO))
        return fail(b, "%s needs a read-write drive", what);
    puts("blkcheck: 0 waiting for the host");
    for (unsigned ms = 0;; ms++) {
        int st = blk_request(b, VIRTIO_BLK_T_IN, sector + 1, data2, BLK_SECTOR, 1);
        if (st < 0)
            return -1;
        if (st == VIRTIO_BLK_S_OK && !memcmp(data2, "GATE-SET", 8))
            return 0;
        if (ms == d->timeout_ms)
            return fail(b, "%s: sector %llu did not say GATE-SET within %u ms", what,
                        (unsigned long long)sector + 1, d->timeout_ms);
        acpi_delay_ms(&acpi, 1);
    }
}

/* blkcheck.exit_in_flight (see the top): writes published, and the guest gone. */
static struct blk_hdr exit_hdrs[BLK_EXIT_WRITES];
static volatile uint8_t exit_status[BLK_EXIT_WRITES];
static uint8_t exit_data[BLK_EXIT_WRITES][BLK_SECTOR];

static int blk_exit_in_flight(struct blk_drive *b, uint64_t sector)
{
    struct virtq *vq = &b->dev.vq[0];

    if (blk_wait_gate(b, sector, "exit_in_flight"))
        return 1;
    for (unsigned i = 0; i < BLK_EXIT_WRITES; i++) {
        uint64_t s = i ? sector + 1 + i : sector;
        for (unsigned k = 0; k < BLK_SECTOR; k++)
            exit_data[i][k] = pattern_byte(0x3c, s, k);
        exit_hdrs[i] = (struct blk_hdr){VIRTIO_BLK_T_OUT, 0, s};
        exit_status[i] = BLK_STATUS_UNSET;
        chain3(vq, 3 * i, &exit_hdrs[i], exit_data[i], 0, &exit_status[i]);
        virtq_publish(vq, 3 * i);
    }
    virtq_kick(vq);
    printf("blkcheck: 0 exit with %u writes in flight\n", BLK_EXIT_WRITES);
    return 0;
}

/* blkcheck.reset_busy (see the top): a reset while a write waits in the host. 0 or -1. */
static int blk_reset_busy(struct blk_drive *b, uint64_t sector, unsigned cpus)
{
    struct virtio_dev *d = &b->dev;
    struct virtq *vq = &d->vq[0];
    struct virtq_used_elem e;

    if (blk_wait_gate(b, sector, "reset_busy"))
        return -1;
    for (unsigned k = 0; k < BLK_SECTOR; k++)
        data[k] = pattern_byte(0x5c, sector, k);
    hdr = (struct blk_hdr){VIRTIO_BLK_T_OUT, 0, sector};
    hdr2 = (struct blk_hdr){VIRTIO_BLK_T_IN, 0, 0};
    status = status2 = BLK_STATUS_UNSET;
    chain3(vq, 0, &hdr, data, 0, &status);
    chain3(vq, 3, &hdr2, data2, 1, &status2);
    virtq_publish(vq, 0);
    virtq_publish(vq, 3);
    virtq_kick(vq);
    if (virtq_wait(vq, &e))
        return fail(b, "reset_busy: %s", d->error);
    if (e.id != 3)
        return fail(b,
                    "reset_busy: the write to sector %llu was not held in the host (used "
                    "head %u, status 0x%02x)",
                    (unsigned long long)sector, e.id, status);

    kick_addr = vq->notify;
    virtio_reset(d);
    uint8_t st = virtio_status(d);
    if (!st)
        return fail(b, "reset_busy: the status read 0 with the write still in the host");
    virtio_reset(d); /* again: ignored while the reset is pending, as a notify is */
    uint8_t again = virtio_status(d);
    virtq_kick(vq);
    if (virtio_status(d) != st || again != st)
        return fail(b, "reset_busy: the status went 0x%02x -> 0x%02x while the reset was pending",
                    st, virtio_status(d));
    printf("blkcheck: 0 reset pending status 0x%02x cpus %u\n", st, cpus);
    if (virtio_reset_wait(d))
        return fail(b, "reset_busy: %s", d->error);
    kick_stop = 1;
    if (status != BLK_STATUS_UNSET)
        return fail(b, "reset_busy: the dropped write's status byte changed to 0x%02x", status);
    printf("blkcheck: 0 reset done kicks %u\n", kicks);
    b->requests = 0; /* the queue's interrupt count starts over with it */
    if (virtio_start(d, want_features) || virtio_queue_setup(d, 0, BLK_QSIZE) ||
        virtio_driver_ok(d))
        return fail(b, "reset_busy: starting over: %s", d->error);
    return 0;
}

/* Everything the command line asks, and the past-the-end read, on one drive. */
static int blk_check(struct blk_drive *b)
{
    unsigned i = (unsigned)(b - drives);

    for (unsigned w = 0; w < nwrites; w++)
        if (blk_write(b, &writes[w]))
            return -1;
    if (nwrites) {
        if (!(b->dev.accepted & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH))) {
            printf("blkcheck: %u flush unsupported (no VIRTIO_BLK_F_FLUSH)\n", i);
        } else {
            int st = blk_request(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0);
            if (st < 0)
                return -1;
            if (st != VIRTIO_BLK_S_OK)
                return fail(b, "flush: status %d", st);
            printf("blkcheck: %u flush ok\n", i);
        }
    }
    for (unsigned r = 0; r < nreads; r++)
        if (blk_read(b, &reads[r]))
            return -1;
    int st = blk_request(b, VIRTIO_BLK_T_IN, b->capacity, data, BLK_SECTOR, 1);
    if (st < 0)
        return -1;
    if (st != VIRTIO_BLK_S_IOERR)
        return fail(b, "read of sector %llu (the capacity): status %d, not IOERR",
                    (unsigned long long)b->capacity, st);
    printf("blkcheck: %u read past the end refused\n", i);
    return 0;
}

int kit_main(void)
{
    unsigned long timeout = 20000, poweroff = 1, reset_busy = 0, exit_sector = 0;
    int busy = kit_cmdline_uint("blkcheck.reset_busy", 10, &reset_busy);
    int exit_in_flight = kit_cmdline_uint("blkcheck.exit_in_flight", 10, &exit_sector);
    unsigned cpus = 1;

    int w = parse_ops("blkcheck.write", 1, writes), r = parse_ops("blkcheck.read", 0, reads);
    if (w < 0 || r < 0)
        return 2;
    nwrites = (unsigned)w;
    nreads = (unsigned)r;
    if (kit_cmdline_uint("blkcheck.timeout", 10, &timeout) == -2 || timeout > 60000) {
        puts("blkcheck: bad blkcheck.timeout (want 0-60000)");
        return 2;
    }
    if (kit_cmdline_uint("blkcheck.poweroff", 10, &poweroff) == -2 || poweroff > 1) {
        puts("blkcheck: bad blkcheck.poweroff (want 0 or 1)");
        return 2;
    }
    if (busy == -2) {
        puts("blkcheck: bad blkcheck.reset_busy (want a sector)");
        return 2;
    }
    if (exit_in_flight == -2) {
        puts("blkcheck: bad blkcheck.exit_in_flight (want a sector)");
        return 2;
    }
    if (busy == 0 || exit_in_flight == 0) {
        if (acpi_init(&acpi) < 0) {
            puts("blkcheck: FAIL no ACPI tables (reset_busy times its notifies with the PM timer)");
            return 1;
        }
    }
    if (busy == 0)
        cpus = kit_smp_start(kicker);

    unsigned n = pci_scan(funcs, PCI_MAX_FUNCS), ndrives = 0;
    for (int i = pci_next(funcs, n, 0, VIRTIO_VENDOR, VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK));
         i >= 0 && ndrives < BLK_MAX_DRIVES; i = pci_next(funcs, n, (unsigned)i + 1, VIRTIO_VENDOR,
                                                          VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK))) {
        if (blk_start(&drives[ndrives], &funcs[i], (unsigned)timeout))
            return 1;
        ndrives++;
    }
    if (!ndrives) {
        printf("blkcheck: no virtio-blk (%04x:%04x)\n", VIRTIO_VENDOR,
               VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK));
        return 3;
    }
    if (exit_in_flight == 0)
        return blk_exit_in_flight(&drives[0], exit_sector);
    if (busy == 0 && blk_reset_busy(&drives[0], reset_busy, cpus))
        return 1;
    unsigned requests = 0, interrupts = 0;
    for (unsigned i = 0; i < ndrives; i++) {
        if (blk_check(&drives[i]))
            return 1;
        requests += drives[i].requests;
        interrupts += drives[i].dev.vq[0].interrupts;
        virtio_reset(&drives[i].dev);
    }
    printf("blkcheck: PASS drives %u requests %u interrupts %u\n", ndrives, requests, interrupts);

    if (!poweroff)
        return 0;
    if (acpi_init(&acpi) < 0 || !acpi_can_poweroff(&acpi)) {
        puts("blkcheck: FAIL no ACPI poweroff");
        return 1;
    }
    puts("blkcheck: poweroff");
    acpi_poweroff(&acpi);
    puts("blkcheck: FAIL poweroff: the machine is still on");
    return 1;
}
