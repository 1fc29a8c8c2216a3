/*
 * virtio-blk (virtio 1.2, 5.2); virtio_blk.h describes the device.
 *
 * A request is a chain: a 16-byte header in the device-readable part, data
 * (readable for OUT, writable for IN), and a status byte, the last byte of the
 * writable part. Framing is not assumed (2.6.4): the header and the data may
 * share descriptors, and so may data and the status byte.
 *
 * A chain is checked whole on the loop before anything runs. One without a
 * writable byte has nowhere to put a status: it breaks the queue
 * (DEVICE_NEEDS_RESET). Anything else that is wrong gets VIRTIO_BLK_S_IOERR,
 * or VIRTIO_BLK_S_UNSUPP for what the device does not do, right away; the
 * first such request of a device is logged. Good requests go to the backend
 * (blk_io.h), which completes them into the device from its own threads.
 *
 * Reset with requests in flight. A worker may be inside preadv() writing into
 * guest RAM when the driver resets the device, and may then be waiting for the
 * device lock to push its chain. Two things keep the reset clean, and each is
 * needed: (1) the reset is not complete (device_status does not read 0) until
 * no request is in a syscall (quiesce; requests not started are dropped
 * unrun), so once the driver sees 0 nothing writes the buffers it may now
 * reuse (4.1.4.3.2: the driver waits for 0 before re-initializing); (2) a
 * generation count, bumped at reset, makes a completion that lost the race for
 * the lock drop its chain instead of pushing it into the new rings. (1) alone
 * cannot cover (2) without the workers holding the device lock across I/O,
 * which would stall the vCPUs on the disk; (2) alone would let a late read
 * scribble on memory the driver has handed to something else.
 *
 * Nobody waits for (1): the reset runs on a vCPU holding the device lock, and
 * the loop takes that lock for every kick, so a wait there would hold the
 * vCPU and the loop (API, console, signals) for as long as the host's
 * fdatasync or read takes, unbounded on a hung disk. With nothing in a
 * syscall (the usual case: Linux polls the status with a 1 ms sleep, so a
 * pending reset must stay rare) the reset is done before the status write
 * returns; otherwise it is pending (virtio.h) until the last worker leaves its
 * syscall and calls blk_quiesced(), which hands it to the loop. A running
 * request is cancelled at its next chunk (blk_io.h, BLK_IO_CHUNK), so a
 * guest's gigabyte request cannot stretch the wait; an fdatasync is the worst
 * case.
 *
 * The used length. A read's used element says how many bytes were written:
 * the data and the status byte. The field is 32 bits and a chain may hold
 * more (a disk over 4 GiB, descriptors of up to 4 GiB each), so it saturates at
 * UINT32_MAX. That is what 2.7.8.2 allows ("the device MAY write more than len
 * bytes"; a wrapped value would claim less than was written, and could be
 * tiny); the driver learns the outcome from the status byte, as Linux does.
 * Refusing such reads would fail requests a driver may legally make: petrel
 * offers no SIZE_MAX, so nothing tells the driver of a limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "petrel/virtio_blk.h"

#include "petrel/config.h"

static struct virtio_blk *to_blk(struct virtio_dev *vdev)
{
    return container_of(vdev, struct virtio_blk, vdev);
}

/* ---- --drive ---- */

static int spec_token(char *tok, struct virtio_blk_spec *spec, unsigned *seen, struct errbuf *eb)
{
    static const char *const usage = "(say path=FILE[,ro][,id=NAME])";
    char *eq = strchr(tok, '=');

    if (eq)
        *eq = '\0';
    const char *val = eq ? eq + 1 : NULL;
    unsigned bit;
    if (!strcmp(tok, "path"))
        bit = 1;
    else if (!strcmp(tok, "ro"))
        bit = 2;
    else if (!strcmp(tok, "id"))
        bit = 4;
    else if (!*tok)
        return err_set(eb, -EINVAL, "--drive has an empty option %s", usage);
    else
        return err_set(eb, -EINVAL, "--drive: unknown option '%s' %s", tok, usage);
    if (*seen & bit)
        return err_set(eb, -EINVAL, "--drive: '%s' is given twice", tok);
    *seen |= bit;

    if (bit == 2) {
        if (val)
            return err_set(eb, -EINVAL, "--drive: 'ro' takes no value");
        spec->ro = true;
        return 0;
    }
    if (!val || !*val)
        return err_set(eb, -EINVAL, "--drive: '%s' needs a value %s", tok, usage);
    if (bit == 1) {
        spec->path = val;
        return 0;
    }
    if (strlen(val) > VIRTIO_BLK_ID_BYTES)
        return err_set(eb, -EINVAL, "--drive: id '%s' is longer than %d bytes", val,
                       VIRTIO_BLK_ID_BYTES);
    spec->id = val;
    return 0;
}

int virtio_blk_spec_parse(char *arg, struct virtio_blk_spec *spec, struct errbuf *eb)
{
    char *r = arg, *w = arg, *tok = arg;
    unsigned seen = 0;

    memset(spec, 0, sizeof(*spec));
    /* Unescapes ",," in place (w never passes r) and ends each token at a lone ','. */
    for (;;) {
        if (r[0] == ',' && r[1] == ',') {
            *w++ = ',';
            r += 2;
        } else if (*r == ',' || !*r) {
            bool last = !*r;
            *w++ = '\0';
            int ret = spec_token(tok, spec, &seen, eb);
            if (ret)
                return ret;
            if (last)
                break;
            tok = w;
            r++;
        } else {
            *w++ = *r++;
        }
    }
    if (!spec->path)
        return err_set(eb, -EINVAL, "--drive needs path=FILE");
    return 0;
}

/* ---- configuration space (5.2.4) ---- */

static void put_le(uint8_t *b, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t blk_config_read(struct virtio_dev *vdev, unsigned offset, unsigned size)
{
    struct virtio_blk *blk = to_blk(vdev);
    uint8_t c[VIRTIO_BLK_CONFIG_SIZE] = {0};
    uint64_t x = 0;

    put_le(c + VIRTIO_BLK_CFG_CAPACITY, blk->capacity, 8);
    put_le(c + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_SEG_MAX, 4);
    put_le(c + VIRTIO_BLK_CFG_BLK_SIZE, VIRTIO_BLK_SECTOR_SIZE, 4);
    if (blk->discard) {
        put_le(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEC, VIRTIO_BLK_DWZ_SECTORS, 4);
        put_le(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_DWZ_SEG_MAX, 4);
        put_le(c + VIRTIO_BLK_CFG_DISCARD_ALIGN, VIRTIO_BLK_DISCARD_ALIGN, 4);
    }
    if (!blk->ro) {
        put_le(c + VIRTIO_BLK_CFG_MAX_WZ_SEC, VIRTIO_BLK_DWZ_SECTORS, 4);
        put_le(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, VIRTIO_BLK_DWZ_SEG_MAX, 4);
        /* Holes only where discard works: it is what the unmap flag would do. */
        c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = blk->discard;
    }
    for (unsigned i = 0; i < size; i++) /* the transport checked offset + size */
        x |= (uint64_t)c[offset + i] << (8 * i);
    return x;
}

/* ---- requests ---- */

static uint64_t get_le(const uint8_t *b, unsigned n)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++)
        x |= (uint64_t)b[i] << (8 * i);
    return x;
}

/*
 * Fills iov[] with the bytes [skip, skip + len) of segs[0, nr); returns the
 * number of iovecs (at most nr).
 */
static unsigned segs_to_iov(const struct virtq_seg *segs, unsigned nr, uint64_t skip, uint64_t len,
                            struct iovec *iov)
{
    unsigned n = 0;
    for (unsigned i = 0; i < nr && len; i++) {
        if (skip >= segs[i].len) {
            skip -= segs[i].len;
            continue;
        }
        uint64_t take = segs[i].len - skip;
        if (take > len)
            take = len;
        iov[n].iov_base = (uint8_t *)segs[i].addr + skip;
        iov[n].iov_len = (size_t)take;
        n++;
        len -= take;
        skip = 0;
    }
    return n;
}

/* Whether sectors [sector, sector + n) lie on the disk, without overflow. */
static bool in_range(const struct virtio_blk *blk, uint64_t sector, uint64_t n)
{
    return sector <= blk->capacity && n <= blk->capacity - sector;
}

/* Logs the first malformed request of the device (lock held). */
static void PRINTF(2, 3) blk_warn(struct virtio_blk *blk, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    if (blk->warned)
        return;
    blk->warned = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    virtio_warn(&blk->vdev, "%s: %s (further bad requests are not logged)", blk->vdev.pci.dev.name,
                msg);
}

/* Answers a chain at once (lock held). */
static void finish(struct virtio_blk *blk, struct virtq *vq, uint16_t head, uint8_t *status,
                   uint8_t st, uint32_t written)
{
    *status = st;
    if (st != VIRTIO_BLK_S_OK)
        blk->errors++;
    (void)virtq_push(vq, head, written);
}

/* What a parser returns instead of a status: the request is filled in, for the backend. */
#define BLK_SUBMIT 0xff

/* A request's header (a copy) and its data sizes, the header and the status byte left out. */
struct blk_hdr {
    uint32_t type;
    uint64_t sector;
    uint64_t out_data; /* device-readable bytes after the header */
    uint64_t in_data;  /* device-writable bytes before the status byte */
};

/*
 * The parsers, one per request type: each checks its request and returns a
 * status to answer at once (req->written says the used length, 1 unless set),
 * or BLK_SUBMIT with req filled in for the backend.
 */

/* IN and OUT: whole sectors on the disk, the data the right way. */
static uint8_t blk_parse_rw(struct virtio_blk *blk, const struct virtq_chain *ch,
                            const struct blk_hdr *h, struct blk_req *req)
{
    bool in = h->type == VIRTIO_BLK_T_IN;
    uint64_t len = in ? h->in_data : h->out_data;

    /* Data the wrong way: an IN with readable data, an OUT with writable data. */
    if ((in ? h->out_data : h->in_data) || len % VIRTIO_BLK_SECTOR_SIZE ||
        !in_range(blk, h->sector, len / VIRTIO_BLK_SECTOR_SIZE)) {
        blk_warn(blk, "%s of %llu+%llu bytes at sector %llu (capacity %llu sectors)",
                 in ? "read" : "write", (unsigned long long)h->out_data,
                 (unsigned long long)h->in_data, (unsigned long long)h->sector,
                 (unsigned long long)blk->capacity);
        return VIRTIO_BLK_S_IOERR;
    }
    if (blk->ro && !in)
        return VIRTIO_BLK_S_IOERR;
    req->op = in ? BLK_OP_READ : BLK_OP_WRITE;
    req->offset = h->sector * VIRTIO_BLK_SECTOR_SIZE;
    if (in) {
        req->iovcnt = segs_to_iov(ch->segs + ch->nr_out, ch->nr_in, 0, len, req->iov);
        req->written = len < UINT32_MAX ? (uint32_t)(len + 1) : UINT32_MAX; /* see the top */
        blk->reads++;
    } else {
        req->iovcnt = segs_to_iov(ch->segs, ch->nr_out, VIRTIO_BLK_HDR_SIZE, len, req->iov);
        blk->writes++;
    }
    return BLK_SUBMIT;
}

/* FLUSH: no data either way. */
static uint8_t blk_parse_flush(struct virtio_blk *blk, const struct blk_hdr *h, struct blk_req *req)
{
    if (h->out_data || h->in_data) {
        blk_warn(blk, "flush with %llu+%llu bytes of data", (unsigned long long)h->out_data,
                 (unsigned long long)h->in_data);
        return VIRTIO_BLK_S_IOERR;
    }
    req->op = BLK_OP_FLUSH;
    blk->flushes++;
    return BLK_SUBMIT;
}

/* GET_ID, answered at once: the id cut to the buffer, the status byte after it. */
static uint8_t blk_get_id(struct virtio_blk *blk, const struct virtq_chain *ch,
                          const struct blk_hdr *h, struct blk_req *req)
{
    if (h->out_data)
        return VIRTIO_BLK_S_IOERR;
    uint64_t n = h->in_data < blk->id_len ? h->in_data : blk->id_len;
    (void)virtq_chain_write(ch, 0, blk->id, (size_t)n);
    req->written = (uint32_t)n + 1;
    return VIRTIO_BLK_S_OK;
}

/*
 * Reads and checks a discard or write-zeroes request's ranges (5.2.6) into
 * req; returns a status, or BLK_SUBMIT when they are good.
 */
static uint8_t parse_ranges(struct virtio_blk *blk, const struct virtq_chain *ch, uint32_t type,
                            uint64_t bytes, struct blk_req *req)
{
    uint64_t n = bytes / VIRTIO_BLK_DWZ_SIZE; /* 64-bit: a huge chain must not wrap to "few" */

    if (!bytes || bytes % VIRTIO_BLK_DWZ_SIZE || n > VIRTIO_BLK_DWZ_SEG_MAX) {
        blk_warn(blk, "%s request with %llu bytes of ranges (at most %u of %u bytes)",
                 type == VIRTIO_BLK_T_DISCARD ? "discard" : "write-zeroes",
                 (unsigned long long)bytes, VIRTIO_BLK_DWZ_SEG_MAX, VIRTIO_BLK_DWZ_SIZE);
        return VIRTIO_BLK_S_IOERR;
    }
    for (unsigned i = 0; i < n; i++) {
        uint8_t b[VIRTIO_BLK_DWZ_SIZE];
        (void)virtq_chain_read(ch, VIRTIO_BLK_HDR_SIZE + (uint64_t)i * VIRTIO_BLK_DWZ_SIZE, b,
                               sizeof(b));
        uint64_t sector = get_le(b, 8);
        uint32_t nsec = (uint32_t)get_le(b + 8, 4), flags = (uint32_t)get_le(b + 12, 4);
        /* 5.2.6.2: unknown flags, and unmap on a discard, are not supported. */
        if (flags & ~(uint32_t)VIRTIO_BLK_DWZ_F_UNMAP ||
            (type == VIRTIO_BLK_T_DISCARD && (flags & VIRTIO_BLK_DWZ_F_UNMAP)))
            return VIRTIO_BLK_S_UNSUPP;
        if (nsec > VIRTIO_BLK_DWZ_SECTORS || !in_range(blk, sector, nsec)) {
            blk_warn(blk, "range of %u sectors at sector %llu is beyond the limit or the disk",
                     nsec, (unsigned long long)sector);
            return VIRTIO_BLK_S_IOERR;
        }
        req->ranges[i] = (struct blk_range){
            .offset = sector * VIRTIO_BLK_SECTOR_SIZE,
            .len = (uint64_t)nsec * VIRTIO_BLK_SECTOR_SIZE,
            .unmap = flags & VIRTIO_BLK_DWZ_F_UNMAP,
        };
    }
    req->nr_ranges = n;
    return BLK_SUBMIT;
}

/* DISCARD and WRITE_ZEROES: a writable drive (that can discard), ranges and no data back. */
static uint8_t blk_parse_dwz(struct virtio_blk *blk, const struct virtq_chain *ch,
                             const struct blk_hdr *h, struct blk_req *req)
{
    bool discard = h->type == VIRTIO_BLK_T_DISCARD;

    if (blk->ro)
        return VIRTIO_BLK_S_IOERR;
    if (discard && !blk->discard)
        return VIRTIO_BLK_S_UNSUPP;
    if (h->in_data)
        return VIRTIO_BLK_S_IOERR;
    uint8_t st = parse_ranges(blk, ch, h->type, h->out_data, req);
    if (st != BLK_SUBMIT)
        return st;
    req->op = discard ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES;
    blk->writes++;
    return st;
}

/* The request in a chain with its status byte, parsed by its type's parser. */
static uint8_t blk_parse(struct virtio_blk *blk, const struct virtq_chain *ch, struct blk_req *req)
{
    uint8_t hdr[VIRTIO_BLK_HDR_SIZE];

    if (ch->out_bytes < VIRTIO_BLK_HDR_SIZE) {
        blk_warn(blk, "request with a %llu-byte header", (unsigned long long)ch->out_bytes);
        return VIRTIO_BLK_S_IOERR;
    }
    (void)virtq_chain_read(ch, 0, hdr, sizeof(hdr)); /* a copy: the guest may change it */
    struct blk_hdr h = {
        .type = (uint32_t)get_le(hdr, 4),
        .sector = get_le(hdr + 8, 8),
        .out_data = ch->out_bytes - VIRTIO_BLK_HDR_SIZE,
        .in_data = ch->in_bytes - 1,
    };
    switch (h.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        return blk_parse_rw(blk, ch, &h, req);
    case VIRTIO_BLK_T_FLUSH:
        return blk_parse_flush(blk, &h, req);
    case VIRTIO_BLK_T_GET_ID:
        return blk_get_id(blk, ch, &h, req);
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        return blk_parse_dwz(blk, ch, &h, req);
    default:
        return VIRTIO_BLK_S_UNSUPP; /* a type the device does not know */
    }
}

/* Before each pop: a free slot, or the queue waits for a completion to requeue it. */
static bool blk_ready(struct virtio_dev *vdev, struct virtq *vq)
{
    struct virtio_blk *blk = to_blk(vdev);
    (void)vq;

    if (blk->free)
        return true;
    /* Slots held by completions dropped after a reset: the last one requeues us. */
    blk->starved = true;
    return false;
}

/*
 * A chain (lock held; blk_ready() saw a free slot): answered at once, or
 * handed to the backend in that slot. Without a writable byte for the status
 * it breaks the queue.
 */
static enum virtio_chain_ret blk_chain(struct virtio_dev *vdev, struct virtq *vq,
                                       struct virtq_chain *ch)
{
    struct virtio_blk *blk = to_blk(vdev);
    struct blk_req *req = blk->free;

    if (!ch->nr_in) {
        virtq_break(vq, "request at head %u has no device-writable status byte", ch->head);
        return VIRTIO_CHAIN_BROKEN;
    }
    const struct virtq_seg *last = &ch->segs[ch->nr_out + ch->nr_in - 1];
    uint8_t *status = (uint8_t *)last->addr + last->len - 1;

    req->written = 1;
    uint8_t st = blk_parse(blk, ch, req);
    if (st != BLK_SUBMIT) {
        finish(blk, vq, ch->head, status, st, req->written);
        return VIRTIO_CHAIN_DONE;
    }
    blk->free = req->next;
    req->head = ch->head;
    req->gen = blk->gen;
    req->status = status;
    blk->inflight++;
    blk->io.ops->submit(&blk->io, req);
    return VIRTIO_CHAIN_DONE;
}

static const struct virtio_queue_handler blk_handler = {.ready = blk_ready, .chain = blk_chain};

/* On the loop, with the device lock held (virtio.h). */
static void blk_queue_notify(struct virtio_dev *vdev, unsigned q)
{
    struct virtio_blk *blk = to_blk(vdev);
    struct virtq_chain ch = {.segs = blk->segs, .cap = VIRTIO_BLK_QUEUE_SIZE};

    /* A queue's worth of chains per call: the loop has other work. */
    virtio_serve_queue_locked(vdev, q, &ch, VIRTIO_BLK_QUEUE_SIZE, &blk_handler);
}

/* blk_io's completion: from a worker (locked false) or inside submit/quiesce (locked true). */
static void blk_complete(struct blk_io *io, struct blk_req *req, uint8_t status, bool locked)
{
    struct virtio_blk *blk = container_of(io, struct virtio_blk, io);
    struct virtio_dev *vdev = &blk->vdev;

    if (!locked)
        virtio_lock(vdev);
    if (req->gen == blk->gen) {
        /* The status byte, then the used element that publishes it (virtq_push orders them). */
        *req->status = status;
        if (status != VIRTIO_BLK_S_OK)
            blk->errors++;
        (void)virtq_push(virtio_vq(vdev, 0), req->head, req->written);
        /* Inside queue_notify (sync), the interrupt decision waits for the batch. */
        if (!locked)
            virtio_notify_queue_locked(vdev, 0);
    } else {
        blk->dropped++;
    }
    req->next = blk->free;
    blk->free = req;
    if (!--blk->inflight)
        pthread_cond_broadcast(&blk->idle);
    if (blk->starved) {
        blk->starved = false;
        virtio_requeue_locked(vdev, 0);
    }
    if (!locked)
        virtio_unlock(vdev);
}

/*
 * The driver reset the device (vCPU thread, lock held): see the comment at the
 * top. 0, or -EINPROGRESS until blk_quiesced().
 */
static int blk_reset(struct virtio_dev *vdev)
{
    struct virtio_blk *blk = to_blk(vdev);

    blk->gen++;
    blk->starved = false;
    return blk->io.ops->quiesce(&blk->io);
}

/* The backend's last request of a pending reset left its syscall (a worker, no lock). */
static void blk_quiesced(struct blk_io *io)
{
    virtio_reset_done(&container_of(io, struct virtio_blk, io)->vdev);
}

static const struct virtio_dev_ops virtio_blk_ops = {
    .device_type = VIRTIO_ID_BLOCK,
    .class_code = 0x010000, /* mass storage, SCSI: as QEMU's virtio-blk-pci */
    .num_queues = 1,
    .queue_max_size = VIRTIO_BLK_QUEUE_SIZE,
    .config_size = VIRTIO_BLK_CONFIG_SIZE,
    .config_read = blk_config_read,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
};

/* ---- set-up ---- */

/* The drive's size in bytes, a whole number of sectors. 0 or -errno with a message. */
static int drive_size(int fd, const struct stat *st, const char *path, uint64_t *bytes,
                      struct errbuf *eb)
{
    if (S_ISBLK(st->st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, bytes) < 0)
            return err_set(eb, -errno, "cannot size drive %s: %s", path, strerror(errno));
    } else {
        *bytes = (uint64_t)st->st_size;
    }
    if (*bytes % VIRTIO_BLK_SECTOR_SIZE)
        return err_set(eb, -EINVAL,
                       "drive %s is %llu bytes, not a multiple of %d: round it up "
                       "(truncate -s %%%d FILE) or down",
                       path, (unsigned long long)*bytes, VIRTIO_BLK_SECTOR_SIZE,
                       VIRTIO_BLK_SECTOR_SIZE);
    return 0;
}

/* Opens, checks, locks and sizes the drive; fills blk's constant fields. */
static int blk_open(struct virtio_blk *blk, const struct virtio_blk_spec *spec, struct errbuf *eb)
{
    const char *path = spec->path;
    struct stat st;
    uint64_t bytes;
    int ret;

    /* O_NONBLOCK: a FIFO must not hang the open; it is refused below. */
    int fd = open(path, (spec->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (errno == EISDIR)
            return err_set(eb, -EISDIR, "drive %s is not a regular file or a block device", path);
        bool perm = errno == EACCES || errno == EROFS || errno == EPERM;
        return err_set(eb, -errno, "cannot open drive %s: %s%s", path, strerror(errno),
                       perm && !spec->ro ? " (add ,ro to open it read-only)" : "");
    }
    if (fstat(fd, &st) < 0) {
        ret = err_set(eb, -errno, "cannot stat drive %s: %s", path, strerror(errno));
        goto err_close;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        ret = err_set(eb, -EINVAL, "drive %s is not a regular file or a block device", path);
        goto err_close;
    }
    if (fcntl(fd, F_SETFL, 0) < 0) {
        ret = err_set(eb, -errno, "cannot set up drive %s: %s", path, strerror(errno));
        goto err_close;
    }
    if (flock(fd, (spec->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            ret = err_set(eb, -EBUSY,
                          "drive %s is in use: another petrel (or another --drive) holds it%s",
                          path, spec->ro ? " read-write" : "");
        else
            ret = err_set(eb, -errno, "cannot lock drive %s: %s", path, strerror(errno));
        goto err_close;
    }
    ret = drive_size(fd, &st, path, &bytes, eb);
    if (ret)
        goto err_close;

    /* Absolute, resolved now: a snapshot names the drive by the file opened here, and a
     * restore (from any directory) opens it again by that path (snapshot_config_put()). */
    char abs[PATH_MAX];
    blk->path = strdup(realpath(path, abs) ? abs : path);
    if (!blk->path) {
        ret = err_set(eb, -ENOMEM, "out of memory");
        goto err_close;
    }
    blk->ro = spec->ro;
    blk->capacity = bytes / VIRTIO_BLK_SECTOR_SIZE;
    blk->io.fd = fd;
    blk->io.is_bdev = S_ISBLK(st.st_mode);
    /* Block devices punch (discard) through fallocate too; a regular file is probed. */
    blk->discard = !spec->ro && (blk->io.is_bdev || blk_io_probe_punch(fd, bytes));
    atomic_init(&blk->io.punch_ok, blk->discard);
    atomic_init(&blk->io.zero_range_ok, !spec->ro);

    const char *id = spec->id;
    if (!id) {
        const char *slash = strrchr(path, '/');
        id = slash ? slash + 1 : path;
    }
    blk->id_len = (unsigned)strnlen(id, VIRTIO_BLK_ID_BYTES);
    memcpy(blk->id, id, blk->id_len);
    return 0;

err_close:
    close(fd);
    return ret;
}

int virtio_blk_open(struct virtio_blk *blk, const struct virtio_blk_spec *spec, struct errbuf *eb)
{
    memset(blk, 0, sizeof(*blk));
    blk->io.fd = -1;
    int ret = blk_open(blk, spec, eb);
    if (ret)
        memset(blk, 0, sizeof(*blk));
    return ret;
}

int virtio_blk_init(struct virtio_blk *blk, const struct blk_io_ops *io,
                    const struct virtio_sys *sys, struct errbuf *eb)
{
    int ret;

    blk->slots = calloc(VIRTIO_BLK_QUEUE_SIZE, sizeof(*blk->slots));
    if (!blk->slots)
        return err_set(eb, -ENOMEM, "out of memory");
    for (unsigned i = 0; i < VIRTIO_BLK_QUEUE_SIZE; i++) {
        struct blk_req *req = &blk->slots[i].req;
        req->iov = blk->slots[i].iov;
        req->ranges = blk->slots[i].ranges;
        req->next = blk->free;
        blk->free = req;
    }
    pthread_cond_init(&blk->idle, NULL);

    uint64_t features =
        1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_FLUSH;
    if (blk->ro)
        features |= 1ULL << VIRTIO_BLK_F_RO;
    else
        features |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
    if (blk->discard)
        features |= 1ULL << VIRTIO_BLK_F_DISCARD;
    /* Its log lines say which drive (with two, "virtio-blk" alone would not). */
    snprintf(blk->name, sizeof(blk->name), "virtio-blk %s", blk->path);
    ret = virtio_pci_init(&blk->vdev, blk->name, &virtio_blk_ops, features, sys);
    if (ret)
        return err_set(eb, ret, "cannot set up virtio-blk for %s: %s", blk->path, strerror(-ret));

    blk->io.complete = blk_complete;
    blk->io.quiesced = blk_quiesced;
    ret = (io ? io : &blk_io_pool)->start(&blk->io);
    if (ret)
        return err_set(eb, ret, "cannot start the %s I/O backend for %s: %s",
                       (io ? io : &blk_io_pool)->name, blk->path, strerror(-ret));
    blk->io.ops = io ? io : &blk_io_pool; /* set once started: destroy stops it */
    return 0;
}

void virtio_blk_drain(struct virtio_blk *blk)
{
    virtio_lock(&blk->vdev);
    while (blk->inflight)
        pthread_cond_wait(&blk->idle, &blk->vdev.pci.dev.lock);
    virtio_unlock(&blk->vdev);
}

int virtio_blk_save(const struct virtio_blk *blk, struct state_out *out)
{
    /* The lock for the count only: a worker may still be finishing (the object is not const). */
    struct virtio_dev *vdev = (struct virtio_dev *)&blk->vdev;
    virtio_lock(vdev);
    unsigned inflight = blk->inflight;
    virtio_unlock(vdev);

    if (inflight)
        return state_refuse(out, -EBUSY,
                            "%s: %u requests are in flight; a snapshot waits for them to "
                            "complete first",
                            blk->name, inflight);
    state_put_string(out, "path", blk->path);
    state_put_u64(out, "capacity", blk->capacity);
    state_put_bool(out, "read-only", blk->ro);
    return virtio_pci_save(&blk->vdev, out);
}

int virtio_blk_restore(struct virtio_blk *blk, struct state_in *in)
{
    char path[PATH_MAX];
    uint64_t capacity;
    bool ro;

    state_get_string(in, "path", path, sizeof(path));
    if (!in->err && strcmp(path, blk->path))
        state_invalid(in, "property 'path' is %s, but this drive is %s", path, blk->path);
    state_get_u64(in, "capacity", &capacity);
    if (!in->err && capacity != blk->capacity)
        state_invalid(in,
                      "property 'capacity' is %llu sectors, but %s has %llu now: the disk "
                      "changed size",
                      (unsigned long long)capacity, blk->path, (unsigned long long)blk->capacity);
    state_get_bool(in, "read-only", &ro);
    if (!in->err && ro != blk->ro)
        state_invalid(in, "property 'read-only' is %s, but %s is opened %s", ro ? "set" : "clear",
                      blk->path, blk->ro ? "read-only" : "read-write");
    if (in->err)
        return in->err;
    return virtio_pci_restore(&blk->vdev, in, NULL);
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
    if (!blk->path)
        return; /* never opened */
    /* Queued requests run and complete (the loop is not running: nothing new arrives). */
    if (blk->io.ops)
        blk->io.ops->stop(&blk->io);
    if (blk->vdev.ops)
        virtio_pci_destroy(&blk->vdev);
    if (blk->slots) {
        pthread_cond_destroy(&blk->idle);
        free(blk->slots);
    }
    close(blk->io.fd);
    free(blk->path);
    memset(blk, 0, sizeof(*blk));
}

/* The machine's drives (hwdev.h): one virtio-blk function per --drive, in order. */
struct virtio_blk_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct virtio_blk blk;
};

/* Opens the drive's file here, before KVM is touched: a wrong path is reported as that. */
static int blk_hw_create(struct hwdev *hw, unsigned index, struct errbuf *eb)
{
    snprintf(hw->name, sizeof(hw->name), "vd%c", index < 26 ? 'a' + index : '?');
    return virtio_blk_open(&container_of(hw, struct virtio_blk_hw, hw)->blk,
                           &hw->host->cfg->drives[index], eb);
}

static int blk_hw_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct virtio_blk *blk = &container_of(hw, struct virtio_blk_hw, hw)->blk;
    struct virtio_sys sys = virtio_sys_of(hw->host);
    sys.name = hw->name;
    int ret = virtio_blk_init(blk, NULL, &sys, eb);
    if (ret)
        return ret;
    return virtio_pci_plug(&blk->vdev, hw->host, blk->name, eb);
}

static struct virtio_blk *blk_of(struct hwdev *hw)
{
    return &container_of(hw, struct virtio_blk_hw, hw)->blk;
}

static void blk_hw_pause(struct hwdev *hw)
{
    virtio_pci_pause(&blk_of(hw)->vdev);
}

static void blk_hw_resume(struct hwdev *hw)
{
    virtio_pci_resume(&blk_of(hw)->vdev);
}

static void blk_hw_drain(struct hwdev *hw)
{
    virtio_blk_drain(blk_of(hw));
}

static int blk_hw_save(struct hwdev *hw, struct state_out *out)
{
    return virtio_blk_save(blk_of(hw), out);
}

static int blk_hw_restore(struct hwdev *hw, struct state_in *in)
{
    return virtio_blk_restore(blk_of(hw), in);
}

/* The transport's counters and the drive's own (reads, writes, flushes, errors). */
static void blk_hw_stats(struct hwdev *hw, struct hwdev_stats *st)
{
    struct virtio_blk *blk = blk_of(hw);

    virtio_stats(&blk->vdev, st);
    virtio_lock(&blk->vdev);
    st->reads += blk->reads;
    st->writes += blk->writes;
    st->flushes += blk->flushes;
    st->errors += blk->errors;
    virtio_unlock(&blk->vdev);
}

/* Each drive finishes what its workers hold, then closes: flushed data is on the file. */
static void blk_hw_destroy(struct hwdev *hw)
{
    virtio_blk_destroy(&container_of(hw, struct virtio_blk_hw, hw)->blk);
}

const struct hwdev_ops virtio_blk_pci = {
    .type = "virtio-blk",
    .compatible = VIRTIO_BLK_STATE_COMPATIBLE,
    .size = sizeof(struct virtio_blk_hw),
    .name = "vda",
    .create = blk_hw_create,
    .realize = blk_hw_realize,
    .pause = blk_hw_pause,
    .resume = blk_hw_resume,
    .drain = blk_hw_drain,
    .save = blk_hw_save,
    .restore = blk_hw_restore,
    .stats = blk_hw_stats,
    .destroy = blk_hw_destroy,
};
