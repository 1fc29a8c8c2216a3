/*
 * virtio 1.x split virtqueues (virtio 1.2, 2.7), the device side, independent
 * of the transport.
 *
 * The transport owns a struct virtq per queue: it fills in size and the three
 * ring addresses from the driver's register writes while the queue is not
 * ready, calls virtq_enable() when the driver enables the queue and
 * virtq_reset() when the device is reset. The device pops chains of buffers,
 * works on them and pushes them back, then asks whether to interrupt (a
 * virtio-pci device does not write this loop: virtio_serve_queue_locked() in
 * virtio.h is it, with a budget):
 *
 *     for (;;) {
 *         virtq_disable_notify(vq);
 *         while ((r = virtq_pop(vq, &chain)) > 0)
 *             ...; virtq_push(vq, chain.head, written);
 *         if (r < 0 || !virtq_enable_notify(vq))
 *             break;
 *     }
 *     if (virtq_need_interrupt(vq))
 *         raise the queue's interrupt;
 *     if (vq->broken)
 *         the transport sets DEVICE_NEEDS_RESET and logs vq->broken_reason once.
 *
 * Everything the driver wrote is untrusted. A chain or ring that no conforming
 * driver can produce (descriptors outside RAM, lengths that wrap, loops,
 * chains longer than the queue, bad indexes, bad indirect tables, rings that
 * overlap, device-writable buffers over a ring) marks the queue broken: a
 * sticky state, with a reason, that only virtq_reset() clears. A broken queue
 * pops nothing, takes no used buffers and interrupts no one. No input makes
 * these functions touch memory outside guest RAM or loop for longer than the
 * queue size plus the caller's segment cap, and nothing the device writes
 * (used ring, buffers) can land in this queue's rings and make work for it:
 * without the driver, a device's processing loop ends after at most size
 * chains. A driver that keeps adding work can keep it busy, though: a device
 * handles a bounded batch per event and reschedules itself for the rest.
 *
 * Threads: a struct virtq has no lock. Every call on one queue, including the
 * transport's register writes, enable and reset, must be serialised by the
 * caller (the device lock, or one thread owning the queue): pops on the loop
 * and pushes from a completion thread take the same lock. The guest itself
 * runs concurrently on other CPUs; the memory ordering against it is inside
 * (virtqueue.c explains each barrier), so a caller needs no barrier of its own:
 * whatever it wrote into a chain's buffers before virtq_push() reaches the
 * driver with it.
 */
#ifndef PETREL_VIRTQUEUE_H
#define PETREL_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/guest_mem.h"
#include "petrel/trace.h"
#include "petrel/util.h"

#define VIRTQ_MAX_SIZE 32768 /* the largest split queue (2.7: Queue Size <= 32768) */

/* Feature bits (virtio 1.2, 6) the queue itself depends on. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29 /* VIRTIO_RING_F_EVENT_IDX in Linux */
#define VIRTIO_F_VERSION_1     32

/* Ring layouts (2.7.5, 2.7.6, 2.7.8), all fields little-endian. */
#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2 /* device-writable (otherwise device-readable) */
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[]; /* [size], then uint16_t used_event */
};

struct virtq_used_elem {
    uint32_t id; /* the chain's head */
    uint32_t len;
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[]; /* [size], then uint16_t avail_event */
};

/* Ring sizes in bytes for a queue of size entries, the event fields included. */
static inline uint64_t virtq_desc_bytes(unsigned size)
{
    return 16ULL * size;
}

static inline uint64_t virtq_avail_bytes(unsigned size)
{
    return 6ULL + 2ULL * size;
}

static inline uint64_t virtq_used_bytes(unsigned size)
{
    return 6ULL + 8ULL * size;
}

/*
 * The spec's vring_need_event() (2.7.10): the other side asked to be notified
 * once the entry at index event_idx is written; true if the index moving from
 * old to new_idx wrote it, i.e. event_idx is in [old, new_idx) modulo 2^16.
 */
static inline bool virtq_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

struct virtq {
    /* Set by virtq_init(). */
    const struct guest_mem *gm;
    uint16_t max_size; /* what the device offers; size reads back as this after reset */

    /*
     * The driver's configuration, written by the transport while !ready (the
     * driver must not change it while the queue is enabled: 4.1.4.3.2). The
     * queue works on its own copies from virtq_enable() on.
     */
    uint16_t size; /* a power of 2 in [1, max_size] */
    uint64_t desc_gpa, avail_gpa, used_gpa;

    /* Set by virtq_enable(); cleared by virtq_reset(). */
    bool ready;
    uint64_t features;         /* the negotiated features */
    bool indirect, event_idx;  /* VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX negotiated */
    struct virtq_desc *desc;   /* the rings in host memory, checked whole by gm_ptr() */
    struct virtq_avail *avail; /*   at enable time: valid as long as gm is unchanged */
    struct virtq_used *used;
    uint16_t num; /* size, as enabled */
    struct {
        uint64_t gpa, len;
    } ring[3]; /* the three rings as enabled, which no device-writable buffer may overlap */

    /*
     * The device's position in the rings, free-running modulo 2^16. A snapshot
     * saves last_avail_idx and used_idx (with size, the addresses and ready)
     * and restores them before calling virtq_enable().
     */
    uint16_t last_avail_idx;   /* the next available entry to pop */
    uint16_t used_idx;         /* the next used entry to fill; used->idx as published */
    uint16_t avail_idx;        /* avail->idx as last read; [last_avail_idx, avail_idx) is work */
    uint16_t signalled_used;   /* used_idx at the last interrupt decision (or enable) */
    bool signalled_used_valid; /* false until the first decision after enable, which says yes */

    /* Sticky until virtq_reset(): the driver gave something impossible. */
    bool broken;
    char broken_reason[160];

    /* Set by the transport: the trace (NULL: none), the device's name and the queue's index. */
    struct trace *trace;
    const char *trace_dev;
    uint16_t trace_queue;
    /* Counters for GET /stats (the caller's serialisation, like everything here). */
    uint64_t chains;              /* chains popped (less those given back by virtq_unpop) */
    uint64_t bytes_out, bytes_in; /* their device-readable bytes; the used lengths pushed */
};

/* A piece of a chain: a host pointer into guest RAM (gm_ptr-checked) and its length (> 0). */
struct virtq_seg {
    void *addr;
    uint32_t len;
};

/*
 * A chain taken off the available ring. The caller provides segs[cap]; pop
 * fills segs[0, nr_out) with the device-readable ("out") buffers in order,
 * then segs[nr_out, nr_out + nr_in) with the device-writable ("in") ones.
 * The segments point into guest memory that the guest may change at any
 * time: copy what must be checked before checking it.
 */
struct virtq_chain {
    struct virtq_seg *segs;
    unsigned cap;
    unsigned nr_out, nr_in;
    uint64_t out_bytes, in_bytes;
    unsigned nr_desc; /* descriptors of the queue's table it holds (an indirect table: 1) */
    uint16_t head;    /* give it back to virtq_push() */
};

/*
 * A queue's state for a snapshot: the driver's configuration and the
 * device's position in the rings (virtio_pci.c saves it; each field is a
 * property of the same name).
 */
struct virtq_state {
    uint16_t size;                          /* 'size' */
    bool ready;                             /* 'enabled' */
    uint64_t desc_gpa, avail_gpa, used_gpa; /* 'desc-addr', 'avail-addr', 'used-addr' */
    uint16_t last_avail_idx, used_idx;      /* 'last-avail-idx', 'used-idx' */
    uint16_t signalled_used;                /* 'signalled-used' */
    bool signalled_used_valid;              /* 'signalled-used-valid' */
    bool broken;                            /* 'broken' (the reason is not kept) */
};

/* Sets up a queue in its reset state; the device offers max_size entries (a power of 2). */
void virtq_init(struct virtq *vq, const struct guest_mem *gm, uint16_t max_size);

/*
 * Returns the queue to its state after virtq_init(): not ready, size =
 * max_size, addresses and indexes 0, not broken. The device must have
 * finished (or forgotten) every chain it popped: pushing one afterwards would
 * write into a queue the driver has set up anew.
 */
void virtq_reset(struct virtq *vq);

/*
 * The driver enabled the queue (features are the negotiated ones, final by
 * then). Checks size and the ring addresses (alignment, wholly in RAM, no
 * two rings overlapping) and maps the rings; with the indexes as they are (0 after reset, or
 * restored), marks the queue ready. Writes used->flags = 0 as 2.7.10 asks; with EVENT_IDX, asks for
 * a notification at the next available entry. Returns 0; -EINVAL with the queue broken (not ready)
 * and the reason recorded; -EIO if it was broken already (only virtq_reset() mends it).
 */
int virtq_enable(struct virtq *vq, uint64_t features) MUST_CHECK;

/* The queue's state, for a snapshot (the device's lock held, or the VM paused). */
void virtq_save(const struct virtq *vq, struct virtq_state *st);

/*
 * Loads a snapshot's state into a queue in its reset state, as if the driver
 * had written the configuration and enabled the queue with features, and the
 * device had then worked up to st's indexes. Everything is checked before
 * anything changes: a queue that is not enabled has its indexes at 0 (its
 * size and addresses are what the driver may write, checked at enable); an
 * enabled one has a size and rings virtq_enable() would take and, unless it
 * is broken, indexes that agree with its rings in guest memory (at most size
 * chains in flight between used_idx and last_avail_idx, at most size
 * available past last_avail_idx, used->idx as the device last published it).
 * Nothing is written to guest memory: the rings (used->flags, avail_event)
 * hold what the device last wrote. Returns 0, or -EINVAL with vq unchanged
 * and the reason, naming the property, in why[n].
 */
int virtq_restore(struct virtq *vq, const struct virtq_state *st, uint64_t features, char *why,
                  size_t n) MUST_CHECK;

/*
 * Takes the next available chain into ch. Returns 1 with ch filled, 0 if
 * there is none (or the queue is not ready), -EIO if the queue is or has just
 * become broken (ch then holds nothing). A chain with more segments than
 * ch->cap breaks the queue: pass a cap of at least the queue size, or what
 * the device advertises (seg_max) plus its headers.
 */
int virtq_pop(struct virtq *vq, struct virtq_chain *ch) MUST_CHECK;

/*
 * Takes the chain at head, which the device popped and has not pushed, again
 * into ch, as virtq_pop() did: for a device that held a chain across a
 * snapshot. 0; -EINVAL if the queue is not ready, head is out of range or no
 * chain is in flight; -EIO if the chain is not one virtq_pop() would take
 * (the queue is then broken, as a pop would leave it).
 */
int virtq_get_chain(struct virtq *vq, uint16_t head, struct virtq_chain *ch) MUST_CHECK;

/*
 * Returns the chain that started at head to the driver, having written len
 * bytes into its device-writable buffers, and publishes it (used->idx) at
 * once: everything the device wrote into the buffers before this call is
 * visible to the driver when it sees the new used->idx. Returns 0, -EIO if the
 * queue is broken or not ready (nothing is written), -EINVAL for a device bug
 * (head out of range, or no chain outstanding).
 */
int virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/*
 * Pushes n chains at once, in order, published by one used->idx store: the
 * driver sees all of them or none (virtio-net's MRG_RXBUF: one frame over
 * several chains, whose first header counts them). Same returns as
 * virtq_push(); nothing is written on an error.
 */
int virtq_push_many(struct virtq *vq, const struct virtq_used_elem *e, unsigned n) MUST_CHECK;

/*
 * Gives back the last n chains popped and not pushed, so that the next pops
 * take them again (a device that found it cannot use them now: a frame that
 * does not fit the buffers posted so far). The caller must not have pushed
 * since popping them. out_bytes: their device-readable bytes together (the
 * chains' out_bytes), taken off GET /stats' count with the chains, as they
 * are counted again when popped again.
 */
void virtq_unpop(struct virtq *vq, unsigned n, uint64_t out_bytes);

/*
 * Whether the driver wants an interrupt for what was pushed since the last
 * call: with EVENT_IDX, if used->idx went past used_event; otherwise unless
 * the driver set VIRTQ_AVAIL_F_NO_INTERRUPT. False when nothing was pushed
 * since, or the queue is broken. Call it once after a batch of pushes.
 */
bool virtq_need_interrupt(struct virtq *vq) MUST_CHECK;

/*
 * Tells the driver that kicks are not needed while the device is working
 * through the ring (a hint: the driver may kick anyway).
 */
void virtq_disable_notify(struct virtq *vq);

/*
 * Asks the driver to kick again for new work, then looks at the ring once
 * more. Returns true if work arrived before the request was visible (a kick
 * for it may never come: pop it now), false if the device may sleep until the
 * next kick. False on a broken or not ready queue.
 */
bool virtq_enable_notify(struct virtq *vq) MUST_CHECK;

/*
 * Asks the driver to kick when it adds to what is available now (not from
 * last_avail_idx on): for a device that looked at the available chains and
 * needs more than there are (a frame larger than the receive buffers posted).
 * True if more came before the request was visible: look again.
 */
bool virtq_enable_notify_more(struct virtq *vq) MUST_CHECK;

/*
 * Marks the queue broken with a reason (the first one stays) and returns
 * -EIO: for a device that finds a chain no conforming driver can produce and
 * no way to tell the driver through the chain itself.
 */
int virtq_break(struct virtq *vq, const char *fmt, ...) PRINTF(2, 3);

/*
 * Copies up to len bytes of the chain's device-readable part, starting off
 * bytes in, to dst. Returns the number of bytes copied (less at the end).
 */
size_t virtq_chain_read(const struct virtq_chain *ch, uint64_t off, void *dst, size_t len);

/*
 * Copies len bytes from src into the chain's device-writable part, starting
 * off bytes in. Returns the number of bytes copied (less at the end).
 */
size_t virtq_chain_write(const struct virtq_chain *ch, uint64_t off, const void *src, size_t len);

#endif
