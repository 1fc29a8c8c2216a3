/*
 * virtio-blk (virtio 1.2, 5.2): a raw disk image or block device as the
 * guest's /dev/vdX, one request queue, on the virtio-pci transport.
 *
 * Requests are checked on the loop (queue_notify) and run by a block I/O
 * backend (blk_io.h) off the loop and off the vCPUs: a small worker pool that
 * reads and writes straight into guest RAM and completes into the device from
 * the worker's thread. Features: SEG_MAX, BLK_SIZE (512), FLUSH, RO for
 * read-only drives, WRITE_ZEROES for writable ones and DISCARD where the file
 * can punch holes.
 */
#ifndef PETREL_VIRTIO_BLK_H
#define PETREL_VIRTIO_BLK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "petrel/blk_io.h"
#include "petrel/util.h"
#include "petrel/virtio.h"

#define VIRTIO_BLK_SECTOR_SIZE   512
#define VIRTIO_BLK_ID_BYTES      20 /* GET_ID's answer: no NUL when it is this long */
#define VIRTIO_BLK_QUEUE_SIZE    128
#define VIRTIO_BLK_SEG_MAX       (VIRTIO_BLK_QUEUE_SIZE - 2) /* data segments: + header + status */
#define VIRTIO_BLK_DWZ_SEG_MAX   32                          /* discard/write-zeroes ranges */
#define VIRTIO_BLK_DWZ_SECTORS   0x3fffff /* sectors per range: just under 2 GiB */
#define VIRTIO_BLK_DISCARD_ALIGN 8        /* sectors: 4 KiB, the granularity Linux gets */
#define VIRTIO_BLK_MAX_DRIVES    16       /* --drive options per VM */

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* struct virtio_blk_config (5.2.4): the offsets petrel fills; 60 bytes, up to unused1. */
#define VIRTIO_BLK_CFG_CAPACITY        0  /* le64, in 512-byte sectors */
#define VIRTIO_BLK_CFG_SEG_MAX         12 /* le32 */
#define VIRTIO_BLK_CFG_BLK_SIZE        20 /* le32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEC 36 /* le32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40 /* le32 */
#define VIRTIO_BLK_CFG_DISCARD_ALIGN   44 /* le32 */
#define VIRTIO_BLK_CFG_MAX_WZ_SEC      48 /* le32 */
#define VIRTIO_BLK_CFG_MAX_WZ_SEG      52 /* le32 */
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP    56 /* u8 */
#define VIRTIO_BLK_CONFIG_SIZE         60

/* Request types (5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_HDR_SIZE       16 /* le32 type, le32 reserved, le64 sector */
#define VIRTIO_BLK_DWZ_SIZE       16 /* le64 sector, le32 num_sectors, le32 flags */
#define VIRTIO_BLK_DWZ_F_UNMAP    1

#define VIRTIO_BLK_S_OK     BLK_S_OK
#define VIRTIO_BLK_S_IOERR  BLK_S_IOERR
#define VIRTIO_BLK_S_UNSUPP BLK_S_UNSUPP

/* One --drive: path=FILE[,ro][,id=NAME]. The strings point into the parsed argument. */
struct virtio_blk_spec {
    const char *path;
    const char *id; /* NULL: the file's name, cut to VIRTIO_BLK_ID_BYTES */
    bool ro;
};

/*
 * Parses a --drive argument in place (",," stands for a comma in a value).
 * 0, or -EINVAL with a message in eb.
 */
int virtio_blk_spec_parse(char *arg, struct virtio_blk_spec *spec, struct errbuf *eb) MUST_CHECK;

/* A request slot: the request and its arrays. */
struct virtio_blk_slot {
    struct blk_req req;
    struct iovec iov[VIRTIO_BLK_QUEUE_SIZE]; /* a chain has at most this many segments */
    struct blk_range ranges[VIRTIO_BLK_DWZ_SEG_MAX];
};

struct virtio_blk {
    struct virtio_dev vdev;

    /* Set by virtio_blk_open(), constant afterwards. */
    char *path; /* absolute (realpath() at open); NULL: not open */
    bool ro;
    uint64_t capacity; /* 512-byte sectors */
    uint8_t id[VIRTIO_BLK_ID_BYTES];
    unsigned id_len;
    bool discard;   /* VIRTIO_BLK_F_DISCARD offered */
    char name[128]; /* "virtio-blk PATH", what its log lines start with */
    struct blk_io io;

    /* The device lock (vdev.pci.dev.lock) guards everything below. */
    struct virtio_blk_slot *slots; /* VIRTIO_BLK_QUEUE_SIZE of them */
    struct blk_req *free;          /* slots not in flight */
    unsigned inflight;             /* requests handed to the backend, not yet completed */
    pthread_cond_t idle;           /* inflight reached 0 (waits on the device lock) */
    uint32_t gen;                  /* driver resets so far: older completions are dropped */
    bool starved;                  /* queue_notify stopped for want of a slot */
    bool warned;                   /* a malformed request was logged */
    struct virtq_seg segs[VIRTIO_BLK_QUEUE_SIZE]; /* the chain being checked */
    uint64_t reads, writes, flushes, errors;      /* counters */
    uint64_t dropped; /* completions dropped because the driver reset the device meanwhile */
};

/*
 * Opens the drive (O_CLOEXEC; read-write, or read-only with spec->ro), locks
 * it (flock: exclusive for read-write, shared for read-only, never waiting)
 * and sizes it; a file whose size is not a multiple of 512 is refused. 0, or
 * -errno with a message in eb (blk is then left as if never opened).
 */
int virtio_blk_open(struct virtio_blk *blk, const struct virtio_blk_spec *spec,
                    struct errbuf *eb) MUST_CHECK;

/*
 * Sets up the opened drive as a device on the transport and starts its I/O
 * backend (NULL: blk_io_pool); virtio_pci_add() plugs it in. 0, or -errno
 * with a message in eb (virtio_blk_destroy() undoes what was done).
 */
int virtio_blk_init(struct virtio_blk *blk, const struct blk_io_ops *io,
                    const struct virtio_sys *sys, struct errbuf *eb) MUST_CHECK;

/*
 * Waits (without the device lock) until every request handed to the backend
 * has completed: what the guest was told is done is done. Any thread but the
 * device's own workers.
 */
void virtio_blk_drain(struct virtio_blk *blk);

/*
 * Snapshots: the drive's identity ('path', 'capacity' in sectors,
 * 'read-only'), so that a restore onto another disk, or one whose size
 * changed, is refused, and the transport's state. The configuration follows
 * from the drive. Requests in flight cannot be saved: the snapshot waits for
 * them first (virtio_blk_drain()), so that the queue's indexes in the
 * snapshot agree with guest memory and the guest never waits for a request
 * the old process took.
 */
#define VIRTIO_BLK_STATE_COMPATIBLE "petrel,virtio-blk-v1"

/* Writes the state into a node the caller began (VM paused); -EBUSY with requests in flight. */
int virtio_blk_save(const struct virtio_blk *blk, struct state_out *out) MUST_CHECK;

/* Loads it into a device set up and plugged in the same way, on the same drive; refused: unchanged.
 */
int virtio_blk_restore(struct virtio_blk *blk, struct state_in *in) MUST_CHECK;

/*
 * Finishes every queued request, stops the backend, then frees the transport
 * and closes the file (on the loop's thread, the vCPUs gone). Does nothing to
 * a drive never opened; undoes a failed virtio_blk_init().
 */
void virtio_blk_destroy(struct virtio_blk *blk);

/* One virtio-blk function per --drive in the machine table (machine.c). */
extern const struct hwdev_ops virtio_blk_pci;

#endif
