/*
 * Fuzz target: a split virtqueue fed by a hostile driver.
 *
 * Input format (tests/fuzz/gen_corpus.py writes seeds in it), little-endian:
 *   byte 0       queue size: bit 7 set: the raw value & 0x7f (often invalid);
 *                else 1 << (value % 9)
 *   byte 1       bit 0 VIRTIO_F_INDIRECT_DESC, bit 1 VIRTIO_F_EVENT_IDX, bit 2 drops
 *                VIRTIO_F_VERSION_1; bits 3-7: the device's segment cap (0: the size)
 *   bytes 2-3    the starting ring index (as after a restore)
 *   bytes 4-15   the descriptor table, available and used ring addresses (32 bits each)
 *   bytes 16-17  n, then n bytes of guest RAM image from address 0 (64 KiB of RAM)
 *   then ops, one byte OP each, OP & 7 selecting:
 *     0  pop a chain; with OP & 8 the device holds it, else pushes it at once
 *     1  process the queue the way a device does: pop and push until empty, with
 *        notifications off, then on again and a re-check
 *     2  the driver writes the next byte at the RAM offset in the two before it
 *     3  the driver adds head (next byte) at avail->idx in the available ring and
 *        publishes idx + 1
 *     4  push the oldest held chain, with the next byte as the written length
 *     5  OP & 8: disable notifications; OP & 16: enable them; else ask whether to interrupt
 *     6  reset the queue and enable it again (the driver starting over)
 *     7  the driver writes used_event (next two bytes), and NO_INTERRUPT from OP & 8
 *
 * Checked: every segment lies inside guest RAM and has a length; a chain has at
 * most cap segments, out before in, with matching byte counts; the head is in
 * range; a failed pop leaves the queue broken with a reason, and a broken
 * queue stays broken (pops and pushes fail) until reset; a good push publishes
 * its element; the device's count of chains in flight matches the harness's;
 * a device's processing loop ends within size + 1 pops. AddressSanitizer
 * catches any access outside the RAM buffer.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "petrel/virtqueue.h"

#define RAM_SIZE (64 * 1024)
#define MAX_SEGS 256

struct harness {
    uint8_t *ram;
    struct guest_mem gm;
    struct virtq vq;
    uint16_t size;
    uint64_t desc, avail, used, features;
    uint16_t start;
    unsigned cap;
    struct virtq_seg segs[MAX_SEGS + 1];
    uint16_t held[VIRTQ_MAX_SIZE];
    unsigned held_first, nr_held;
};

static unsigned rd16(const uint8_t *p)
{
    return p[0] | (unsigned)p[1] << 8;
}

static uint64_t rd32(const uint8_t *p)
{
    return p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

/* The driver's view of the available ring, if the configured one lies in RAM. */
static struct virtq_avail *drv_avail_ring(struct harness *h)
{
    if (!h->vq.ready)
        return NULL;
    return gm_ptr(&h->gm, h->avail, virtq_avail_bytes(h->vq.size));
}

static void start_queue(struct harness *h)
{
    virtq_reset(&h->vq);
    FUZZ_CHECK(!h->vq.broken && !h->vq.ready);
    h->vq.size = h->size;
    h->vq.desc_gpa = h->desc;
    h->vq.avail_gpa = h->avail;
    h->vq.used_gpa = h->used;
    h->vq.last_avail_idx = h->start;
    h->vq.used_idx = h->start;
    h->nr_held = 0;
    h->held_first = 0;
    int ret = virtq_enable(&h->vq, h->features);
    FUZZ_CHECK(ret == 0 || ret == -EINVAL);
    FUZZ_CHECK(ret == 0 ? h->vq.ready && !h->vq.broken
                        : !h->vq.ready && h->vq.broken && h->vq.broken_reason[0]);
}

static void check_broken_state(struct harness *h)
{
    FUZZ_CHECK(h->vq.broken_reason[0]);
    struct virtq_chain ch = {.segs = h->segs, .cap = h->cap};
    FUZZ_CHECK(virtq_pop(&h->vq, &ch) == -EIO);
    FUZZ_CHECK(ch.nr_out == 0 && ch.nr_in == 0);
    FUZZ_CHECK(virtq_push(&h->vq, 0, 0) == -EIO);
    FUZZ_CHECK(!virtq_need_interrupt(&h->vq));
}

/* Checks a popped chain against guest RAM and the cap, and uses every byte of it. */
static void check_chain(struct harness *h, const struct virtq_chain *ch)
{
    FUZZ_CHECK(!h->vq.broken);
    FUZZ_CHECK(ch->head < h->vq.size);
    FUZZ_CHECK(ch->nr_out + ch->nr_in >= 1);
    FUZZ_CHECK(ch->nr_out + ch->nr_in <= h->cap);
    uint64_t out = 0, in = 0;
    for (unsigned i = 0; i < ch->nr_out + ch->nr_in; i++) {
        const uint8_t *p = ch->segs[i].addr;
        FUZZ_CHECK(ch->segs[i].len > 0);
        FUZZ_CHECK(p >= h->ram && p < h->ram + RAM_SIZE);
        FUZZ_CHECK(ch->segs[i].len <= (uint64_t)(h->ram + RAM_SIZE - p));
        if (i < ch->nr_out)
            out += ch->segs[i].len;
        else
            in += ch->segs[i].len;
    }
    FUZZ_CHECK(out == ch->out_bytes && in == ch->in_bytes);

    /* A device reads what it was given and fills what it may write. */
    uint8_t buf[512];
    uint64_t got = 0;
    size_t n;
    while ((n = virtq_chain_read(ch, got, buf, sizeof(buf))) > 0)
        got += n;
    FUZZ_CHECK(got == out);
    memset(buf, 0xa5, sizeof(buf));
    uint64_t put = 0;
    while ((n = virtq_chain_write(ch, put, buf, sizeof(buf))) > 0)
        put += n;
    FUZZ_CHECK(put == in);
}

static void push(struct harness *h, uint16_t head, uint32_t len)
{
    bool was_broken = h->vq.broken;
    int ret = virtq_push(&h->vq, head, len);
    if (was_broken) {
        FUZZ_CHECK(ret == -EIO);
        return;
    }
    FUZZ_CHECK(ret == 0);
    uint16_t idx = h->vq.used_idx;
    const struct virtq_used_elem *e = &h->vq.used->ring[(uint16_t)(idx - 1) & (h->vq.size - 1)];
    FUZZ_CHECK(h->vq.used->idx == idx);
    FUZZ_CHECK(e->id == head && e->len == len);
}

/* Pops one chain: returns pop's result after checking it. */
static int pop(struct harness *h, bool hold)
{
    struct virtq_chain ch = {.segs = h->segs, .cap = h->cap};
    bool was_broken = h->vq.broken;
    int ret = virtq_pop(&h->vq, &ch);
    FUZZ_CHECK(ret == 1 || ret == 0 || ret == -EIO);
    if (ret < 0) {
        FUZZ_CHECK(h->vq.broken);
        check_broken_state(h);
        return ret;
    }
    FUZZ_CHECK(!was_broken && !h->vq.broken);
    if (ret == 0)
        return 0;
    check_chain(h, &ch);
    if (hold) {
        FUZZ_CHECK(h->nr_held < h->vq.size);
        h->held[(h->held_first + h->nr_held++) % VIRTQ_MAX_SIZE] = ch.head;
    } else {
        push(h, ch.head, (uint32_t)ch.in_bytes);
    }
    return 1;
}

/* What a device's queue handler does; must end within size + 1 pops. */
static void process(struct harness *h)
{
    unsigned pops = 0;
    for (;;) {
        virtq_disable_notify(&h->vq);
        int ret;
        while ((ret = pop(h, false)) > 0)
            FUZZ_CHECK(++pops <= (unsigned)h->vq.size + 1);
        if (ret < 0 || !virtq_enable_notify(&h->vq))
            break;
        FUZZ_CHECK(++pops <= (unsigned)h->vq.size + 1);
    }
    bool irq = virtq_need_interrupt(&h->vq);
    FUZZ_CHECK(!irq || !h->vq.broken);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 18)
        return 0;
    struct harness *h = calloc(1, sizeof(*h));
    FUZZ_CHECK(h);
    h->ram = calloc(1, RAM_SIZE);
    FUZZ_CHECK(h->ram);
    gm_init_fake(&h->gm, h->ram, RAM_SIZE);

    h->size = data[0] & 0x80 ? data[0] & 0x7f : 1u << (data[0] % 9);
    h->features = 1ULL << VIRTIO_F_VERSION_1;
    if (data[1] & 1)
        h->features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
    if (data[1] & 2)
        h->features |= 1ULL << VIRTIO_F_EVENT_IDX;
    if (data[1] & 4)
        h->features = 0;
    h->cap = data[1] >> 3 ? data[1] >> 3 : (h->size ? h->size : 1);
    if (h->cap > MAX_SEGS)
        h->cap = MAX_SEGS;
    h->start = (uint16_t)rd16(data + 2);
    h->desc = rd32(data + 4);
    h->avail = rd32(data + 8);
    h->used = rd32(data + 12);
    size_t n = rd16(data + 16);
    size_t pos = 18;
    if (n > size - pos)
        n = size - pos;
    memcpy(h->ram, data + pos, n);
    pos += n;

    virtq_init(&h->vq, &h->gm, 256);
    start_queue(h);

    while (pos < size) {
        uint8_t op = data[pos++];
        const uint8_t *arg = data + pos;
        size_t left = size - pos;
        struct virtq_avail *av;

        switch (op & 7) {
        case 0:
            pop(h, op & 8);
            break;
        case 1:
            process(h);
            break;
        case 2:
            if (left >= 3) {
                h->ram[rd16(arg) % RAM_SIZE] = arg[2];
                pos += 3;
            }
            break;
        case 3:
            if (left >= 1) {
                av = drv_avail_ring(h);
                if (av) {
                    uint16_t idx = av->idx;
                    av->ring[idx & (h->vq.size - 1)] = (uint16_t)(arg[0] % h->vq.size);
                    __atomic_store_n(&av->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
                }
                pos += 1;
            }
            break;
        case 4:
            if (left >= 1) {
                if (h->nr_held) {
                    uint16_t head = h->held[h->held_first];
                    h->held_first = (h->held_first + 1) % VIRTQ_MAX_SIZE;
                    h->nr_held--;
                    push(h, head, arg[0]);
                }
                pos += 1;
            }
            break;
        case 5:
            if (op & 8)
                virtq_disable_notify(&h->vq);
            if (op & 16) {
                bool more = virtq_enable_notify(&h->vq);
                FUZZ_CHECK(!more || (h->vq.ready && !h->vq.broken));
            }
            if (!(op & 24)) {
                bool irq = virtq_need_interrupt(&h->vq);
                FUZZ_CHECK(!irq || (h->vq.ready && !h->vq.broken));
            }
            break;
        case 6:
            start_queue(h);
            break;
        case 7:
            if (left >= 2) {
                av = drv_avail_ring(h);
                if (av) {
                    av->ring[h->vq.size] = (uint16_t)rd16(arg);
                    av->flags = op & 8 ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0;
                }
                pos += 2;
            }
            break;
        }
        if (h->vq.broken)
            check_broken_state(h);
        else if (h->vq.ready)
            FUZZ_CHECK((uint16_t)(h->vq.last_avail_idx - h->vq.used_idx) == h->nr_held);
    }
    process(h);

    free(h->ram);
    free(h);
    return 0;
}
