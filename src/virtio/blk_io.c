/*
 * Block I/O backends (blk_io.h): the syscalls a request needs, a worker pool
 * that runs them off the loop, and a synchronous backend for fuzzing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "petrel/blk_io.h"
#include "petrel/sandbox.h"

/* ---- the syscalls ---- */

/* Drops n bytes from the front of iov[0, *cnt), which holds at least n. */
static struct iovec *iov_advance(struct iovec *iov, unsigned *cnt, size_t n)
{
    while (n && *cnt) {
        if (n < iov->iov_len) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= n;
            return iov;
        }
        n -= iov->iov_len;
        iov++;
        (*cnt)--;
    }
    while (*cnt && !iov->iov_len) {
        iov++;
        (*cnt)--;
    }
    return iov;
}

/*
 * preadv/pwritev until every byte is done, at most BLK_IO_CHUNK bytes a call
 * (io->cancel is checked between calls); a read past the end of the file is an
 * error.
 */
static int rw_all(struct blk_io *io, bool write, struct iovec *iov, unsigned cnt, uint64_t off)
{
    iov = iov_advance(iov, &cnt, 0);
    while (cnt) {
        if (atomic_load(&io->cancel))
            return -ECANCELED;
        /* Whole iovecs up to the chunk, or the first one cut to it. */
        unsigned n = 0;
        size_t sum = 0;
        while (n < cnt && n < IOV_MAX && (!n || sum + iov[n].iov_len <= BLK_IO_CHUNK))
            sum += iov[n++].iov_len;
        struct iovec part = {.iov_base = iov[0].iov_base, .iov_len = BLK_IO_CHUNK};
        const struct iovec *v = sum > BLK_IO_CHUNK ? &part : iov;
        ssize_t r =
            write ? pwritev(io->fd, v, (int)n, (off_t)off) : preadv(io->fd, v, (int)n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO; /* the file shrank under the guest */
        off += (uint64_t)r;
        iov = iov_advance(iov, &cnt, (size_t)r);
    }
    return 0;
}

static int fallocate_range(int fd, int mode, uint64_t off, uint64_t len)
{
    while (fallocate(fd, mode, (off_t)off, (off_t)len) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

/* Zeroes a range by writing zeros, for files that cannot fallocate (io->cancel between calls). */
static int write_zeros(struct blk_io *io, uint64_t off, uint64_t len)
{
    static const uint8_t zeros[64 * 1024];
    while (len) {
        if (atomic_load(&io->cancel))
            return -ECANCELED;
        size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
        ssize_t r = pwrite(io->fd, zeros, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    return 0;
}

/*
 * Write zeroes (5.2.6.2: afterwards the range reads as zeros, unmap or not):
 * a hole where the guest allows deallocation and the file can punch, else
 * ZERO_RANGE, else plain writes. An EOPNOTSUPP is remembered.
 */
static int zero_range(struct blk_io *io, const struct blk_range *r)
{
    if (r->unmap && atomic_load(&io->punch_ok)) {
        int ret =
            fallocate_range(io->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, r->offset, r->len);
        if (ret != -EOPNOTSUPP)
            return ret;
        atomic_store(&io->punch_ok, false);
    }
    if (atomic_load(&io->zero_range_ok)) {
        int ret =
            fallocate_range(io->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, r->offset, r->len);
        if (ret != -EOPNOTSUPP)
            return ret;
        atomic_store(&io->zero_range_ok, false);
    }
    return write_zeros(io, r->offset, r->len);
}

uint8_t blk_io_execute(struct blk_io *io, struct blk_req *req)
{
    int ret = 0;

    switch (req->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        ret = rw_all(io, req->op == BLK_OP_WRITE, req->iov, req->iovcnt, req->offset);
        break;
    case BLK_OP_FLUSH:
        while ((ret = fdatasync(io->fd)) < 0 && errno == EINTR)
            ;
        ret = ret < 0 ? -errno : 0;
        break;
    case BLK_OP_DISCARD:
        /* Deallocation is a hint (5.2.6.2: the device MAY deallocate). */
        for (unsigned i = 0; i < req->nr_ranges && !ret; i++)
            ret = fallocate_range(io->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  req->ranges[i].offset, req->ranges[i].len);
        if (ret == -EOPNOTSUPP) {
            atomic_store(&io->punch_ok, false);
            return BLK_S_UNSUPP;
        }
        break;
    case BLK_OP_WRITE_ZEROES:
        for (unsigned i = 0; i < req->nr_ranges && !ret; i++)
            ret = atomic_load(&io->cancel) ? -ECANCELED : zero_range(io, &req->ranges[i]);
        break;
    }
    return ret ? BLK_S_IOERR : BLK_S_OK;
}

bool blk_io_probe_punch(int fd, uint64_t size)
{
    return fallocate_range(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, size, 4096) == 0;
}

/* ---- blk_io_sync: run in submit() ---- */

static int sync_start(struct blk_io *io)
{
    (void)io;
    return 0;
}

static void sync_submit(struct blk_io *io, struct blk_req *req)
{
    io->complete(io, req, blk_io_execute(io, req), true);
}

static int sync_quiesce(struct blk_io *io)
{
    (void)io; /* nothing is ever in flight */
    return 0;
}

static void sync_stop(struct blk_io *io)
{
    (void)io;
}

const struct blk_io_ops blk_io_sync = {
    .name = "sync",
    .start = sync_start,
    .submit = sync_submit,
    .quiesce = sync_quiesce,
    .stop = sync_stop,
};

/* ---- blk_io_pool: worker threads ---- */

/*
 * A worker: takes the oldest request, runs it with no lock held, then hands it
 * to the device, which takes its own lock. The last one out of a syscall
 * during a quiesce says so first. At stop it empties the queue first.
 */
static void *pool_worker(void *arg)
{
    struct blk_io *io = arg;

    sandbox_enter_or_die(SANDBOX_BLK);
    pthread_mutex_lock(&io->lock);
    for (;;) {
        while (!io->queue && !io->stopping)
            pthread_cond_wait(&io->work, &io->lock);
        struct blk_req *req = io->queue;
        if (!req)
            break; /* stopping, and nothing left */
        io->queue = req->next;
        if (!io->queue)
            io->tail = &io->queue;
        io->active++;
        pthread_mutex_unlock(&io->lock);

        uint8_t status = blk_io_execute(io, req);

        pthread_mutex_lock(&io->lock);
        bool quiesced = !--io->active && io->quiescing;
        if (quiesced) {
            io->quiescing = false;
            atomic_store(&io->cancel, false);
        }
        pthread_mutex_unlock(&io->lock);
        if (quiesced)
            io->quiesced(io);
        io->complete(io, req, status, false); /* takes the device lock: ours is not held */
        pthread_mutex_lock(&io->lock);
    }
    pthread_mutex_unlock(&io->lock);
    return NULL;
}

static void pool_stop(struct blk_io *io)
{
    pthread_mutex_lock(&io->lock);
    io->stopping = true;
    pthread_cond_broadcast(&io->work);
    pthread_mutex_unlock(&io->lock);
    for (unsigned i = 0; i < io->nr_threads; i++)
        pthread_join(io->threads[i], NULL);
    io->nr_threads = 0;
    pthread_cond_destroy(&io->work);
    pthread_mutex_destroy(&io->lock);
}

static int pool_start(struct blk_io *io)
{
    sigset_t all, old;
    int ret = 0;

    pthread_mutex_init(&io->lock, NULL);
    pthread_cond_init(&io->work, NULL);
    io->queue = NULL;
    io->tail = &io->queue;
    io->active = 0;
    io->quiescing = false;
    io->stopping = false;
    io->nr_threads = 0;

    /* Workers take no signals: SIGRTMIN is the vCPUs' kick, the rest the loop's. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < BLK_IO_POOL_THREADS; i++) {
        ret = -pthread_create(&io->threads[i], NULL, pool_worker, io);
        if (ret)
            break;
        pthread_setname_np(io->threads[i], "petrel-blk");
        io->nr_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret)
        pool_stop(io);
    return ret;
}

static void pool_submit(struct blk_io *io, struct blk_req *req)
{
    req->next = NULL;
    pthread_mutex_lock(&io->lock);
    *io->tail = req;
    io->tail = &req->next;
    pthread_cond_signal(&io->work);
    pthread_mutex_unlock(&io->lock);
}

/*
 * Never waits (the caller is a vCPU holding the device lock): workers in a
 * syscall finish it, stop at their next chunk, and the last one calls
 * quiesced().
 */
static int pool_quiesce(struct blk_io *io)
{
    int ret = 0;

    pthread_mutex_lock(&io->lock);
    struct blk_req *unrun = io->queue;
    io->queue = NULL;
    io->tail = &io->queue;
    if (io->active) {
        atomic_store(&io->cancel, true);
        io->quiescing = true;
        ret = -EINPROGRESS;
    }
    pthread_mutex_unlock(&io->lock);
    while (unrun) {
        struct blk_req *next = unrun->next;
        io->complete(io, unrun, BLK_S_IOERR, true);
        unrun = next;
    }
    return ret;
}

const struct blk_io_ops blk_io_pool = {
    .name = "pool",
    .start = pool_start,
    .submit = pool_submit,
    .quiesce = pool_quiesce,
    .stop = pool_stop,
};
