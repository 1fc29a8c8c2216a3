/*
 * Block I/O backends: how a validated virtio-blk request reaches the file.
 *
 * The device (virtio_blk.c) turns a guest's chain into a struct blk_req whose
 * data buffers are host iovecs straight into guest RAM, and hands it to a
 * backend with submit(). The backend runs it (blk_io_execute() does the
 * syscalls) and gives it back through io->complete(), from whatever thread
 * finished it. Two backends exist:
 *
 * - blk_io_pool: a few worker threads and a FIFO of requests. submit() only
 *   queues, so neither the loop nor a vCPU ever waits for the disk; a worker
 *   calls complete() without the device lock (the device takes it).
 * - blk_io_sync: runs the request inside submit() and completes it there,
 *   with the device lock still held (locked = true). For fuzzing, where
 *   completions must be deterministic; it blocks the loop, so never for a VM.
 *
 * Another backend is one more struct blk_io_ops. An io_uring one was
 * prototyped and measured against the pool (docs/architecture.md, "Block I/O":
 * why the pool ships).
 *
 * Locking: submit() and quiesce() are called with the device lock held;
 * start() and stop() without it. A backend's own lock is only ever taken
 * after the device lock, never around a call to complete(locked = false) or
 * quiesced().
 */
#ifndef PETREL_BLK_IO_H
#define PETREL_BLK_IO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "petrel/util.h"

#define BLK_IO_POOL_THREADS 4
#define BLK_IO_CHUNK        (1024 * 1024) /* the most one syscall reads or writes */

enum blk_op {
    BLK_OP_READ,
    BLK_OP_WRITE,
    BLK_OP_FLUSH,
    BLK_OP_DISCARD,
    BLK_OP_WRITE_ZEROES,
};

/* A byte range of a discard or write-zeroes request, checked against the capacity. */
struct blk_range {
    uint64_t offset, len;
    bool unmap; /* write zeroes: the guest allows deallocation */
};

/* Request status, as virtio-blk spells it (5.2.6). */
#define BLK_S_OK     0
#define BLK_S_IOERR  1
#define BLK_S_UNSUPP 2

struct blk_req {
    enum blk_op op;
    uint64_t offset;          /* READ, WRITE: bytes into the file */
    struct iovec *iov;        /* READ, WRITE: the data, in guest RAM */
    unsigned iovcnt;          /*   (iov[] is the request's own array) */
    struct blk_range *ranges; /* DISCARD, WRITE_ZEROES (the request's own array) */
    unsigned nr_ranges;

    /* The device's bookkeeping (virtio_blk.c; device lock). */
    uint16_t head;        /* the chain, for virtq_push() */
    uint32_t gen;         /* the device's reset generation when the chain was popped */
    uint8_t *status;      /* the status byte, in guest RAM */
    uint32_t written;     /* the used length to report */
    struct blk_req *next; /* the free list, or the backend's queue */
};

struct blk_io;

struct blk_io_ops {
    const char *name;
    /* Starts the backend (threads); 0 or -errno. */
    int (*start)(struct blk_io *io);
    /* Runs req, later or now; it comes back through io->complete(). Device lock held. */
    void (*submit)(struct blk_io *io, struct blk_req *req);
    /*
     * Device lock held, never waits: requests not started yet are given back
     * through complete(locked = true) with BLK_S_IOERR, unrun. Returns 0 if no
     * request is inside a syscall (none touches guest memory any more), or
     * -EINPROGRESS: the running ones are cancelled at their next chunk, and
     * the backend calls io->quiesced() once the last has left its syscall
     * (before its complete()). No request is submitted meanwhile.
     */
    int (*quiesce)(struct blk_io *io);
    /* Runs everything queued to completion and joins the threads (no device lock). */
    void (*stop)(struct blk_io *io);
};

struct blk_io {
    const struct blk_io_ops *ops;
    int fd;
    bool is_bdev;
    /* What the file turned out to support: cleared on the first EOPNOTSUPP (any thread). */
    atomic_bool punch_ok, zero_range_ok;
    /*
     * Set by quiesce() until the running requests are out: each stops at its
     * next chunk (BLK_IO_CHUNK bytes) with an I/O error, so that a reset waits
     * for at most one syscall per worker, whatever the size the guest asked for.
     */
    atomic_bool cancel;
    /* Gives a finished request back to the device; locked: the caller holds the device lock. */
    void (*complete)(struct blk_io *io, struct blk_req *req, uint8_t status, bool locked);
    /* A quiesce() that returned -EINPROGRESS is over (a worker; no lock held). */
    void (*quiesced)(struct blk_io *io);

    /* blk_io_pool: lock guards queue, tail, active, quiescing and stopping. */
    pthread_mutex_t lock;
    pthread_cond_t work; /* queued work or stopping */
    struct blk_req *queue, **tail;
    unsigned active; /* requests a worker has taken and not finished */
    bool quiescing;  /* a quiesce() returned -EINPROGRESS: quiesced() when active is 0 */
    bool stopping;
    pthread_t threads[BLK_IO_POOL_THREADS];
    unsigned nr_threads;
};

extern const struct blk_io_ops blk_io_pool;
extern const struct blk_io_ops blk_io_sync;

/* Does req's syscalls on io->fd (any thread, no lock); returns a BLK_S_* status. */
uint8_t blk_io_execute(struct blk_io *io, struct blk_req *req);

/*
 * Whether the file can deallocate ranges (FALLOC_FL_PUNCH_HOLE), probed once
 * by punching past the end of a regular file, which changes nothing.
 */
bool blk_io_probe_punch(int fd, uint64_t size);

#endif
