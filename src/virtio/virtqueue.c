/*
 * virtio split virtqueues, the device side; include/petrel/virtqueue.h gives
 * the model.
 *
 * Memory ordering. The rings live in guest RAM that the driver changes
 * concurrently from other CPUs, so every access to a ring field that the
 * other side also touches is a single atomic access (GCC/clang __atomic
 * builtins: the fields are plain guest memory, not _Atomic objects), and the
 * orderings pair with the driver's barriers (Linux: virtio_ring.c):
 *
 * - pop: avail->idx is read with acquire before the ring entries and the
 *   descriptors it covers (the driver writes them, then idx with a write
 *   barrier);
 * - push: the used element is written, then used->idx with release, so the
 *   element and the device's writes into the buffers come first;
 * - notification decisions are store-then-load on both sides (the device
 *   stores used->idx and loads used_event/flags; the driver stores used_event
 *   and loads used->idx; likewise for kicks), which needs a full fence between
 *   the store and the load on each side, or each side could miss the other's
 *   store and a wake-up is lost.
 *
 * A descriptor is copied once and only the copy is checked and used: the
 * driver may rewrite it meanwhile.
 */
#include "petrel/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static uint16_t load16_relaxed(const uint16_t *p)
{
    return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static uint16_t load16_acquire(const uint16_t *p)
{
    return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static void store16_relaxed(uint16_t *p, uint16_t v)
{
    __atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static void store16_release(uint16_t *p, uint16_t v)
{
    __atomic_store_n(p, htole16(v), __ATOMIC_RELEASE);
}

static void store32_relaxed(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, htole32(v), __ATOMIC_RELAXED);
}

/* The trailing event fields: used_event after avail->ring[size], avail_event after used->ring. */
static uint16_t *used_event(struct virtq *vq)
{
    return &vq->avail->ring[vq->num];
}

static uint16_t *avail_event(struct virtq *vq)
{
    return (uint16_t *)&vq->used->ring[vq->num];
}

bool virtq_enable_notify_more(struct virtq *vq)
{
    if (vq->broken || !vq->ready)
        return false;
    uint16_t seen = load16_acquire(&vq->avail->idx);
    if (vq->event_idx)
        store16_relaxed(avail_event(vq), seen);
    else
        store16_relaxed(&vq->used->flags, 0);
    /* As in virtq_enable_notify(): the driver sees the request, or this load its entries. */
    atomic_thread_fence(memory_order_seq_cst);
    return load16_acquire(&vq->avail->idx) != seen;
}

/* A virtqueue event for the trace (the transport set vq->trace). */
static void virtq_trace(struct virtq *vq, enum trace_op op, uint16_t head, unsigned chain,
                        uint64_t bytes)
{
    struct trace_event e = {.kind = TRACE_VIRTIO,
                            .op = (uint8_t)op,
                            .dev = vq->trace_dev,
                            .queue = vq->trace_queue,
                            .head = head,
                            .chain = chain,
                            .value = bytes};
    trace_emit(vq->trace, -1, &e);
}

int virtq_break(struct virtq *vq, const char *fmt, ...)
{
    if (!vq->broken) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(vq->broken_reason, sizeof(vq->broken_reason), fmt, ap);
        va_end(ap);
        vq->broken = true;
        if (vq->trace && TRACE_ON(vq->trace, TRACE_VIRTIO))
            virtq_trace(vq, TRACE_OP_BROKEN, 0, 0, 0);
    }
    return -EIO;
}

void virtq_init(struct virtq *vq, const struct guest_mem *gm, uint16_t max_size)
{
    memset(vq, 0, sizeof(*vq));
    vq->gm = gm;
    vq->max_size = max_size;
    vq->size = max_size;
}

void virtq_reset(struct virtq *vq)
{
    /* The transport's trace settings and the counters outlive a reset. */
    struct virtq keep = *vq;
    virtq_init(vq, keep.gm, keep.max_size);
    vq->trace = keep.trace;
    vq->trace_dev = keep.trace_dev;
    vq->trace_queue = keep.trace_queue;
    vq->chains = keep.chains;
    vq->bytes_out = keep.bytes_out;
    vq->bytes_in = keep.bytes_in;
}

/* Whether [a, a + alen) and [b, b + blen) overlap; both lie in RAM, so nothing wraps. */
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Maps a ring of len bytes at gpa that must be aligned to align; NULL (and broken) if not. */
static void *map_ring(struct virtq *vq, const char *what, uint64_t gpa, uint64_t len,
                      unsigned align)
{
    if (gpa % align) {
        virtq_break(vq, "%s ring at 0x%llx is not %u-byte aligned", what, (unsigned long long)gpa,
                    align);
        return NULL;
    }
    void *p = gm_ptr(vq->gm, gpa, len);
    if (!p) {
        virtq_break(vq, "%s ring [0x%llx, +0x%llx) is not in RAM", what, (unsigned long long)gpa,
                    (unsigned long long)len);
        return NULL;
    }
    /* RAM regions are page-aligned on the host, so this holds whenever gpa is aligned; the
     * atomic accesses below depend on it. */
    if ((uintptr_t)p % align) {
        virtq_break(vq, "%s ring at 0x%llx is misaligned on the host", what,
                    (unsigned long long)gpa);
        return NULL;
    }
    return p;
}

/*
 * Checks the driver's configuration (size, ring addresses) and maps the
 * rings, writing nothing: 0, or -EINVAL with the queue broken.
 */
static int rings_map(struct virtq *vq, uint64_t features)
{
    unsigned size = vq->size;

    if (!(features & (1ULL << VIRTIO_F_VERSION_1))) {
        /* Legacy rings are guest-endian with a different layout; petrel is modern only. */
        virtq_break(vq, "VIRTIO_F_VERSION_1 was not negotiated");
        return -EINVAL;
    }
    if (size == 0 || size > vq->max_size || (size & (size - 1))) {
        virtq_break(vq, "queue size %u is not a power of 2 in [1, %u]", size, vq->max_size);
        return -EINVAL;
    }
    /* Alignments from 2.7 (Virtqueue Alignment). */
    vq->desc = map_ring(vq, "descriptor", vq->desc_gpa, virtq_desc_bytes(size), 16);
    vq->avail = map_ring(vq, "available", vq->avail_gpa, virtq_avail_bytes(size), 2);
    vq->used = map_ring(vq, "used", vq->used_gpa, virtq_used_bytes(size), 4);
    vq->ring[0].gpa = vq->desc_gpa;
    vq->ring[0].len = virtq_desc_bytes(size);
    vq->ring[1].gpa = vq->avail_gpa;
    vq->ring[1].len = virtq_avail_bytes(size);
    vq->ring[2].gpa = vq->used_gpa;
    vq->ring[2].len = virtq_used_bytes(size);
    /*
     * Rings that overlap would let the device's own writes (used elements,
     * flags, avail_event) make work for it, which no driver needs.
     */
    if (!vq->broken &&
        (overlaps(vq->ring[0].gpa, vq->ring[0].len, vq->ring[1].gpa, vq->ring[1].len) ||
         overlaps(vq->ring[0].gpa, vq->ring[0].len, vq->ring[2].gpa, vq->ring[2].len) ||
         overlaps(vq->ring[1].gpa, vq->ring[1].len, vq->ring[2].gpa, vq->ring[2].len)))
        virtq_break(vq, "the rings at 0x%llx, 0x%llx and 0x%llx overlap",
                    (unsigned long long)vq->desc_gpa, (unsigned long long)vq->avail_gpa,
                    (unsigned long long)vq->used_gpa);
    if (vq->broken) {
        vq->desc = NULL;
        vq->avail = NULL;
        vq->used = NULL;
        return -EINVAL;
    }
    vq->num = size;
    vq->features = features;
    vq->indirect = features & (1ULL << VIRTIO_F_INDIRECT_DESC);
    vq->event_idx = features & (1ULL << VIRTIO_F_EVENT_IDX);
    return 0;
}

int virtq_enable(struct virtq *vq, uint64_t features)
{
    if (vq->broken)
        return -EIO;
    vq->ready = false;
    if (rings_map(vq, features))
        return -EINVAL;
    vq->avail_idx = vq->last_avail_idx;
    vq->signalled_used = vq->used_idx;
    vq->signalled_used_valid = false;
    /* 2.7.10: the device initialises used->flags to 0 (kicks wanted). */
    store16_relaxed(&vq->used->flags, 0);
    if (vq->event_idx)
        store16_relaxed(avail_event(vq), vq->last_avail_idx);
    vq->ready = true;
    return 0;
}

void virtq_save(const struct virtq *vq, struct virtq_state *st)
{
    *st = (struct virtq_state){
        .size = vq->size,
        .ready = vq->ready,
        .desc_gpa = vq->desc_gpa,
        .avail_gpa = vq->avail_gpa,
        .used_gpa = vq->used_gpa,
        .last_avail_idx = vq->last_avail_idx,
        .used_idx = vq->used_idx,
        .signalled_used = vq->signalled_used,
        .signalled_used_valid = vq->signalled_used_valid,
        .broken = vq->broken,
    };
}

static int PRINTF(3, 4) refuse(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A ready queue's indexes against its rings in guest memory (q mapped). */
static int indexes_check(struct virtq *q, char *why, size_t n)
{
    uint16_t avail = load16_acquire(&q->avail->idx), used = load16_relaxed(&q->used->idx);
    uint16_t in_flight = q->last_avail_idx - q->used_idx;

    if (in_flight > q->num)
        return refuse(why, n,
                      "property 'last-avail-idx' is %u, %u chains past 'used-idx' %u: more than "
                      "the size %u",
                      q->last_avail_idx, in_flight, q->used_idx, q->num);
    if ((uint16_t)(avail - q->last_avail_idx) > q->num)
        return refuse(why, n,
                      "property 'last-avail-idx' is %u, not within the size %u behind the "
                      "available index %u in guest memory",
                      q->last_avail_idx, q->num, avail);
    if (used != q->used_idx)
        return refuse(why, n, "property 'used-idx' is %u, not the used index %u in guest memory",
                      q->used_idx, used);
    return 0;
}

int virtq_restore(struct virtq *vq, const struct virtq_state *st, uint64_t features, char *why,
                  size_t n)
{
    struct virtq q;

    virtq_init(&q, vq->gm, vq->max_size);
    q.size = st->size;
    q.desc_gpa = st->desc_gpa;
    q.avail_gpa = st->avail_gpa;
    q.used_gpa = st->used_gpa;
    if (!st->ready) {
        /* What the driver may write before enabling it; the position is the reset one. */
        if (st->last_avail_idx || st->used_idx || st->signalled_used || st->signalled_used_valid)
            return refuse(why, n,
                          "properties 'last-avail-idx', 'used-idx', 'signalled-used', "
                          "'signalled-used-valid' are not 0 in a queue that is not enabled");
    } else {
        if (!st->size || st->size > vq->max_size || (st->size & (st->size - 1)))
            return refuse(why, n, "property 'size' is %u, not a power of 2 in [1, %u]", st->size,
                          vq->max_size);
        if (rings_map(&q, features))
            return refuse(why, n, "properties 'desc-addr', 'avail-addr', 'used-addr': %s",
                          q.broken_reason);
        q.last_avail_idx = q.avail_idx = st->last_avail_idx;
        q.used_idx = st->used_idx;
        q.signalled_used = st->signalled_used;
        q.signalled_used_valid = st->signalled_used_valid;
        /* A broken queue's indexes may be what broke it; it will not use them. */
        if (!st->broken && indexes_check(&q, why, n))
            return -EINVAL;
        q.ready = true;
    }
    if (st->broken)
        virtq_break(&q, "broken before the snapshot");
    q.trace = vq->trace;
    q.trace_dev = vq->trace_dev;
    q.trace_queue = vq->trace_queue;
    *vq = q;
    return 0;
}

/* Whether the guest range [gpa, gpa + len), in RAM, overlaps one of the queue's rings. */
static bool writes_ring(const struct virtq *vq, uint64_t gpa, uint32_t len)
{
    for (unsigned i = 0; i < ARRAY_SIZE(vq->ring); i++)
        if (overlaps(gpa, len, vq->ring[i].gpa, vq->ring[i].len))
            return true;
    return false;
}

/* Copies descriptor i of a table; the table may be an unaligned indirect one. */
static struct virtq_desc read_desc(const struct virtq_desc *table, unsigned i)
{
    struct virtq_desc d;
    memcpy(&d, (const uint8_t *)table + 16 * (size_t)i, sizeof(d));
    /* A compiler barrier: d is a private copy from here on, never re-read from the table. */
    atomic_signal_fence(memory_order_seq_cst);
    d.addr = le64toh(d.addr);
    d.len = le32toh(d.len);
    d.flags = le16toh(d.flags);
    d.next = le16toh(d.next);
    return d;
}

/*
 * Walks the chain at head into ch. Bounded: the direct table is walked for at
 * most size descriptors, an indirect table for at most its count, and every
 * descriptor but the one indirect pointer becomes a segment, at most ch->cap.
 */
static int walk_chain(struct virtq *vq, uint16_t head, struct virtq_chain *ch)
{
    const struct virtq_desc *table = vq->desc;
    unsigned table_n = vq->num;
    bool in_indirect = false;
    unsigned i = head, steps = 0, nr = 0;

    for (;;) {
        if (++steps > table_n)
            return virtq_break(vq, "chain at head %u loops or is longer than its %s (%u)", head,
                               in_indirect ? "indirect table" : "queue", table_n);
        struct virtq_desc d = read_desc(table, i);

        if (!in_indirect)
            ch->nr_desc++;
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            if (!vq->indirect)
                return virtq_break(vq, "indirect descriptor %u without VIRTIO_F_INDIRECT_DESC", i);
            if (in_indirect)
                return virtq_break(vq, "indirect descriptor inside an indirect table (head %u)",
                                   head);
            if (d.flags & VIRTQ_DESC_F_NEXT)
                return virtq_break(vq, "indirect descriptor %u has NEXT set", i);
            if (d.len == 0 || d.len % sizeof(struct virtq_desc))
                return virtq_break(vq, "indirect table of %u bytes (descriptor %u)", d.len, i);
            const struct virtq_desc *t = gm_ptr(vq->gm, d.addr, d.len);
            if (!t)
                return virtq_break(vq, "indirect table [0x%llx, +0x%x) is not in RAM",
                                   (unsigned long long)d.addr, d.len);
            /* The WRITE flag of the pointer is ignored (2.7.5.3.2). */
            table = t;
            table_n = d.len / sizeof(struct virtq_desc);
            in_indirect = true;
            i = 0;
            steps = 0;
            continue;
        }

        if (d.len == 0)
            return virtq_break(vq, "zero-length descriptor %u (head %u)", i, head);
        void *p = gm_ptr(vq->gm, d.addr, d.len);
        if (!p)
            return virtq_break(vq, "descriptor %u [0x%llx, +0x%x) is not in RAM", i,
                               (unsigned long long)d.addr, d.len);
        if (nr == ch->cap)
            return virtq_break(vq, "chain at head %u has more than %u buffers", head, ch->cap);
        if (d.flags & VIRTQ_DESC_F_WRITE) {
            /*
             * A buffer over a ring would have the device rewrite the rings with
             * data (a disk's, a host's), feeding itself work it never finishes.
             */
            if (writes_ring(vq, d.addr, d.len))
                return virtq_break(vq, "writable descriptor %u [0x%llx, +0x%x) overlaps a ring", i,
                                   (unsigned long long)d.addr, d.len);
            ch->nr_in++;
            ch->in_bytes += d.len;
        } else {
            if (ch->nr_in)
                return virtq_break(vq, "device-readable descriptor %u after a writable one", i);
            ch->nr_out++;
            ch->out_bytes += d.len;
        }
        ch->segs[nr++] = (struct virtq_seg){.addr = p, .len = d.len};

        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        i = d.next;
        if (i >= table_n)
            return virtq_break(vq, "descriptor next %u is beyond the %s (%u)", i,
                               in_indirect ? "indirect table" : "queue", table_n);
    }
}

/* Empties ch: nothing taken. */
static void chain_clear(struct virtq_chain *ch)
{
    ch->nr_out = ch->nr_in = ch->nr_desc = 0;
    ch->out_bytes = ch->in_bytes = 0;
    ch->head = 0;
}

/* Walks the chain at head into ch: 0, or -EIO (the queue broken) with ch empty. */
static int take_chain(struct virtq *vq, uint16_t head, struct virtq_chain *ch)
{
    int ret = walk_chain(vq, head, ch);
    if (ret < 0) {
        chain_clear(ch);
        return ret;
    }
    ch->head = head;
    return 0;
}

int virtq_pop(struct virtq *vq, struct virtq_chain *ch)
{
    chain_clear(ch);
    if (vq->broken)
        return -EIO;
    if (!vq->ready)
        return 0;

    if (vq->last_avail_idx == vq->avail_idx) {
        /* Acquire: the ring entries and descriptors below were written before idx. */
        uint16_t idx = load16_acquire(&vq->avail->idx);
        uint16_t n = idx - vq->last_avail_idx;
        if (n > vq->num)
            return virtq_break(vq, "available index moved from %u to %u, more than the size %u",
                               vq->last_avail_idx, idx, vq->num);
        vq->avail_idx = idx;
        if (n == 0)
            return 0;
    }
    /* A driver cannot have more than size buffers outstanding (QEMU checks the same). */
    if ((uint16_t)(vq->last_avail_idx - vq->used_idx) >= vq->num)
        return virtq_break(vq, "more than %u chains in flight", vq->num);

    uint16_t head = load16_relaxed(&vq->avail->ring[vq->last_avail_idx & (vq->num - 1)]);
    if (head >= vq->num)
        return virtq_break(vq, "available ring entry %u holds head %u, beyond the size %u",
                           vq->last_avail_idx, head, vq->num);
    int ret = take_chain(vq, head, ch);
    if (ret < 0)
        return ret;
    vq->last_avail_idx++;
    vq->chains++;
    vq->bytes_out += ch->out_bytes;
    if (vq->trace && TRACE_ON(vq->trace, TRACE_VIRTIO))
        virtq_trace(vq, TRACE_OP_POP, head, ch->nr_out + ch->nr_in, ch->out_bytes + ch->in_bytes);
    return 1;
}

int virtq_get_chain(struct virtq *vq, uint16_t head, struct virtq_chain *ch)
{
    chain_clear(ch);
    if (vq->broken)
        return -EIO;
    if (!vq->ready || head >= vq->num || vq->used_idx == vq->last_avail_idx)
        return -EINVAL;
    return take_chain(vq, head, ch);
}

int virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
    if (vq->broken || !vq->ready)
        return -EIO;
    if (head >= vq->num || vq->used_idx == vq->last_avail_idx)
        return -EINVAL;
    struct virtq_used_elem *e = &vq->used->ring[vq->used_idx & (vq->num - 1)];
    store32_relaxed(&e->id, head);
    store32_relaxed(&e->len, len);
    vq->used_idx++;
    /* Release: the element and the buffers' contents before the index that publishes them. */
    store16_release(&vq->used->idx, vq->used_idx);
    vq->bytes_in += len;
    if (vq->trace && TRACE_ON(vq->trace, TRACE_VIRTIO))
        virtq_trace(vq, TRACE_OP_PUSH, head, 0, len);
    return 0;
}

int virtq_push_many(struct virtq *vq, const struct virtq_used_elem *e, unsigned n)
{
    if (vq->broken || !vq->ready)
        return -EIO;
    if ((uint16_t)(vq->last_avail_idx - vq->used_idx) < n)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++)
        if (e[i].id >= vq->num)
            return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        struct virtq_used_elem *u = &vq->used->ring[(uint16_t)(vq->used_idx + i) & (vq->num - 1)];
        store32_relaxed(&u->id, e[i].id);
        store32_relaxed(&u->len, e[i].len);
    }
    vq->used_idx = (uint16_t)(vq->used_idx + n);
    /* Release: every element and buffer before the one index that publishes them all. */
    store16_release(&vq->used->idx, vq->used_idx);
    for (unsigned i = 0; i < n; i++)
        vq->bytes_in += e[i].len;
    return 0;
}

void virtq_unpop(struct virtq *vq, unsigned n, uint64_t out_bytes)
{
    vq->last_avail_idx = (uint16_t)(vq->last_avail_idx - n);
    vq->chains -= n; /* given back: popped again later, and counted then */
    vq->bytes_out -= out_bytes;
}

bool virtq_need_interrupt(struct virtq *vq)
{
    if (vq->broken || !vq->ready)
        return false;
    uint16_t old = vq->signalled_used;
    bool valid = vq->signalled_used_valid;
    uint16_t new_idx = vq->used_idx;
    if (old == new_idx)
        return false; /* nothing pushed since the last decision (or enable) */
    vq->signalled_used = new_idx;
    vq->signalled_used_valid = true;
    /*
     * Pairs with the driver's barrier between writing used_event (or clearing
     * NO_INTERRUPT) and re-reading used->idx (Linux: virtqueue_poll()): either
     * the driver sees the new used->idx, or this load sees its request.
     */
    atomic_thread_fence(memory_order_seq_cst);
    if (!vq->event_idx)
        return !(load16_relaxed(&vq->avail->flags) & VIRTQ_AVAIL_F_NO_INTERRUPT);
    if (!valid)
        return true;
    return virtq_need_event(load16_relaxed(used_event(vq)), new_idx, old);
}

void virtq_disable_notify(struct virtq *vq)
{
    if (vq->broken || !vq->ready)
        return;
    /* With EVENT_IDX, avail_event simply stays behind: the driver has gone past it. */
    if (!vq->event_idx)
        store16_relaxed(&vq->used->flags, VIRTQ_USED_F_NO_NOTIFY);
}

bool virtq_enable_notify(struct virtq *vq)
{
    if (vq->broken || !vq->ready)
        return false;
    if (vq->event_idx)
        store16_relaxed(avail_event(vq), vq->last_avail_idx);
    else
        store16_relaxed(&vq->used->flags, 0);
    /*
     * Pairs with the driver's barrier between writing avail->idx and reading
     * avail_event or used->flags (Linux: virtqueue_kick_prepare()): either the
     * driver sees this request and kicks, or this load sees its new entries.
     */
    atomic_thread_fence(memory_order_seq_cst);
    uint16_t idx = load16_acquire(&vq->avail->idx);
    /* A bad index is left for virtq_pop() to report. */
    return idx != vq->last_avail_idx;
}

/*
 * Copies len bytes between segs[0, nr), starting off bytes in, and a host
 * buffer: into to if it is not NULL, else from from into the segments.
 * Returns the bytes copied.
 */
static size_t seg_copy(const struct virtq_seg *segs, unsigned nr, uint64_t off, void *to,
                       const void *from, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < nr && done < len; i++) {
        if (off >= segs[i].len) {
            off -= segs[i].len;
            continue;
        }
        size_t n = segs[i].len - off;
        if (n > len - done)
            n = len - done;
        uint8_t *g = (uint8_t *)segs[i].addr + off;
        if (to)
            memcpy((uint8_t *)to + done, g, n);
        else
            memcpy(g, (const uint8_t *)from + done, n);
        done += n;
        off = 0;
    }
    return done;
}

size_t virtq_chain_read(const struct virtq_chain *ch, uint64_t off, void *dst, size_t len)
{
    return seg_copy(ch->segs, ch->nr_out, off, dst, NULL, len);
}

size_t virtq_chain_write(const struct virtq_chain *ch, uint64_t off, const void *src, size_t len)
{
    return seg_copy(ch->segs + ch->nr_out, ch->nr_in, off, NULL, src, len);
}
