/*
 * virtio-net driven as a driver drives it (tests/support/fake_virtio_driver.h):
 * rings in fake guest memory, kicks through the loop, fake irqfds, and a
 * fake backend that records what the guest sent and can say it is full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "petrel/virtio_net.h"
#include "fake_state.h"
#include "fake_virtio_driver.h"

#define RAM_SIZE (1 * MiB)
#define QSIZE    16
#define BUF_GPA  0x40000
#define HDR      VIRTIO_NET_HDR_SIZE

/* Two MSI-X entries: configuration, and one both queues share (as Linux sets them up). */
#define VEC_CONFIG 0
#define VEC_RX     1
#define VEC_TX     1

#define DESC_GPA(q)  (0x10000 + 0x4000 * (q))
#define AVAIL_GPA(q) (DESC_GPA(q) + 0x1000)
#define USED_GPA(q)  (DESC_GPA(q) + 0x2000)

static const uint8_t MAC[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

/* The fake backend: frames sent, whether it is full, rx_room calls. */
struct fake_be {
    struct net_backend be;
    uint8_t sent[8][2048];
    size_t sent_len[8];
    unsigned nr_sent;
    bool full;
    unsigned rooms;
    unsigned offload, offload_calls; /* set_offload()'s last flags, and how often */
};

static int fbe_send(struct net_backend *be, const void *frame, size_t len)
{
    struct fake_be *f = container_of(be, struct fake_be, be);
    if (f->full)
        return -EAGAIN;
    if (f->nr_sent < 8) {
        memcpy(f->sent[f->nr_sent], frame, len < 2048 ? len : 2048);
        f->sent_len[f->nr_sent] = len;
    }
    f->nr_sent++;
    return 0;
}

static void fbe_rx_room(struct net_backend *be)
{
    container_of(be, struct fake_be, be)->rooms++;
}

static int fbe_set_offload(struct net_backend *be, unsigned flags)
{
    struct fake_be *f = container_of(be, struct fake_be, be);
    f->offload = flags;
    f->offload_calls++;
    return 0;
}

static const struct net_backend_ops fbe_ops = {
    .send = fbe_send, .rx_room = fbe_rx_room, .set_offload = fbe_set_offload};

struct rig {
    struct fake_virtio_host h;
    struct virtio_net net;
    struct fake_be fbe;
    uint16_t avail[2], next_desc[2], used_seen[2];
};

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_int_equal(fake_virtio_host_init(&r->h, RAM_SIZE), 0);
    assert_int_equal(virtio_net_init(&r->net, &r->h.sys, MAC, false), 0);
    assert_int_equal(virtio_pci_add(&r->net.vdev, &r->h.pci), 0);
    r->fbe.be.ops = &fbe_ops;
    virtio_net_set_backend(&r->net, &r->fbe.be);
    *state = r;
    return 0;
}

/* The device as with a tap: offloads offered, the header passed both ways. */
static int setup_offloads(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_int_equal(fake_virtio_host_init(&r->h, RAM_SIZE), 0);
    assert_int_equal(virtio_net_init(&r->net, &r->h.sys, MAC, true), 0);
    assert_int_equal(virtio_pci_add(&r->net.vdev, &r->h.pci), 0);
    r->fbe.be.ops = &fbe_ops;
    r->fbe.be.vnet_hdr = true;
    virtio_net_set_backend(&r->net, &r->fbe.be);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    virtio_net_destroy(&r->net);
    fake_virtio_host_destroy(&r->h);
    free(r);
    return 0;
}

static struct virtio_dev *vdev(struct rig *r)
{
    return &r->net.vdev;
}

static void run_loop(struct rig *r)
{
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
}

static uint8_t status(struct rig *r)
{
    return (uint8_t)fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_COMMON_STATUS, 1);
}

static void bring_up(struct rig *r, uint64_t features)
{
    memset(r->avail, 0, sizeof(r->avail));
    memset(r->next_desc, 0, sizeof(r->next_desc));
    memset(r->used_seen, 0, sizeof(r->used_seen));
    memset(r->h.ram + DESC_GPA(0), 0, 0x8000);
    fake_virtio_negotiate(&r->h.mmio, vdev(r), features | 1ULL << VIRTIO_F_VERSION_1);
    fake_virtio_bar_wr(&r->h.mmio, vdev(r), VIRTIO_COMMON_MSIX, VEC_CONFIG, 2);
    for (unsigned q = 0; q < 2; q++)
        fake_virtio_setup_queue(&r->h.mmio, vdev(r), q, QSIZE, q == 0 ? VEC_RX : VEC_TX,
                                DESC_GPA(q), AVAIL_GPA(q), USED_GPA(q));
    fake_virtio_msix_enable(vdev(r));
    for (unsigned v = 0; v < 2; v++)
        fake_virtio_msix_unmask(&r->h.mmio, vdev(r), v);
    fake_virtio_driver_ok(&r->h.mmio, vdev(r));
    run_loop(r);
    for (unsigned v = 0; v < 2; v++)
        (void)fake_virtio_irq_count(vdev(r), v);
}

static void reset(struct rig *r)
{
    fake_virtio_bar_wr(&r->h.mmio, vdev(r), VIRTIO_COMMON_STATUS, 0, 1);
}

struct seg {
    uint64_t gpa;
    uint32_t len;
    uint16_t flags;
};

static uint16_t add_chain(struct rig *r, unsigned q, const struct seg *segs, unsigned n)
{
    uint8_t *desc = r->h.ram + DESC_GPA(q);
    uint16_t head = r->next_desc[q] % QSIZE;
    for (unsigned i = 0; i < n; i++) {
        uint16_t at = (uint16_t)((head + i) % QSIZE);
        struct virtq_desc d = {
            .addr = segs[i].gpa,
            .len = segs[i].len,
            .flags = (uint16_t)(segs[i].flags | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
            .next = (uint16_t)((at + 1) % QSIZE),
        };
        memcpy(desc + 16 * at, &d, sizeof(d));
    }
    r->next_desc[q] = (uint16_t)(r->next_desc[q] + n);
    struct virtq_avail *av = (struct virtq_avail *)(r->h.ram + AVAIL_GPA(q));
    av->ring[r->avail[q] % QSIZE] = head;
    r->avail[q]++;
    __atomic_store_n(&av->idx, r->avail[q], __ATOMIC_RELEASE);
    return head;
}

static uint16_t add_rx(struct rig *r, uint64_t gpa, uint32_t len)
{
    struct seg s = {gpa, len, VIRTQ_DESC_F_WRITE};
    return add_chain(r, VIRTIO_NET_RX, &s, 1);
}

static void kick(struct rig *r, unsigned q)
{
    fake_virtio_bar_wr(&r->h.mmio, vdev(r), VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, q,
                       2);
    run_loop(r);
}

static struct virtq_used *used(struct rig *r, unsigned q)
{
    return (struct virtq_used *)(r->h.ram + USED_GPA(q));
}

static uint16_t used_idx(struct rig *r, unsigned q)
{
    return __atomic_load_n(&used(r, q)->idx, __ATOMIC_ACQUIRE);
}

static struct virtq_used_elem next_used(struct rig *r, unsigned q)
{
    assert_true(used_idx(r, q) != r->used_seen[q]);
    return used(r, q)->ring[r->used_seen[q]++ % QSIZE];
}

/* A frame of len bytes: a broadcast header, then a counting pattern from seed. */
static void make_frame(uint8_t *f, size_t len, uint8_t seed)
{
    memset(f, 0xff, 6);
    memcpy(f + 6, MAC, 6);
    f[12] = 0x08;
    f[13] = 0x06;
    for (size_t i = 14; i < len; i++)
        f[i] = (uint8_t)(seed + i);
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- tests ---- */

static void test_identity_and_config(void **state)
{
    struct rig *r = *state;
    struct pci_dev *p = &vdev(r)->pci;

    assert_int_equal(pci_config_read(p, PCI_DEVICE_ID, 2), 0x1041);
    assert_int_equal(pci_config_read(p, PCI_CLASS_REVISION, 4) >> 8, 0x020000);
    uint64_t f = fake_virtio_device_features(&r->h.mmio, vdev(r));
    assert_true(f & 1ULL << VIRTIO_NET_F_MAC);
    assert_true(f & 1ULL << VIRTIO_NET_F_STATUS);
    assert_true(f & 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    assert_false(f & 1); /* no CSUM: nothing offloaded is offered */
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_PCI_DEVICE_OFF + i, 1),
                         MAC[i]);
    assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_PCI_DEVICE_OFF + 6, 2),
                     VIRTIO_NET_S_LINK_UP);
    assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_PCI_DEVICE_OFF + 8, 2), 1);
    assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_COMMON_NUMQ, 2), 2);
}

/*
 * Two MSI-X entries, so the driver shares one vector between the queues: a queue
 * cannot be given a third, and a transmit completion and a received frame both
 * fire the shared one.
 */
static void test_queues_share_one_vector(void **state)
{
    struct rig *r = *state;
    struct pci_dev *p = &vdev(r)->pci;
    uint8_t f[60];

    assert_int_equal(p->msix.nr, 2);
    assert_int_equal(
        (pci_config_read(p, p->msix.cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1, 2);
    fake_virtio_bar_wr(&r->h.mmio, vdev(r), VIRTIO_COMMON_Q_SELECT, VIRTIO_NET_TX, 2);
    fake_virtio_bar_wr(&r->h.mmio, vdev(r), VIRTIO_COMMON_Q_MSIX, 2, 2);
    assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_COMMON_Q_MSIX, 2),
                     VIRTIO_NO_VECTOR);

    bring_up(r, 0);
    make_frame(f, sizeof(f), 7);
    memset(r->h.ram + BUF_GPA, 0, HDR);
    memcpy(r->h.ram + BUF_GPA + HDR, f, sizeof(f));
    struct seg tx = {BUF_GPA, HDR + sizeof(f), 0};
    add_chain(r, VIRTIO_NET_TX, &tx, 1);
    kick(r, VIRTIO_NET_TX);
    assert_int_equal(next_used(r, VIRTIO_NET_TX).len, 0);
    assert_int_equal(fake_virtio_irq_count(vdev(r), 1), 1);

    add_rx(r, BUF_GPA + 0x1000, 0x800);
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 1);
    assert_int_equal(next_used(r, VIRTIO_NET_RX).len, HDR + sizeof(f));
    assert_int_equal(fake_virtio_irq_count(vdev(r), 1), 1);
    assert_int_equal(fake_virtio_irq_count(vdev(r), VEC_CONFIG), 0);
}

/* Transmit chains in any layout: header and frame in one buffer, split anywhere, many pieces. */
static void test_transmit_any_layout(void **state)
{
    struct rig *r = *state;
    uint8_t f[100];

    bring_up(r, 0);
    make_frame(f, sizeof(f), 1);
    /* One buffer: header + frame. */
    memset(r->h.ram + BUF_GPA, 0, HDR);
    memcpy(r->h.ram + BUF_GPA + HDR, f, sizeof(f));
    struct seg one = {BUF_GPA, HDR + sizeof(f), 0};
    add_chain(r, VIRTIO_NET_TX, &one, 1);
    /* Header split over two buffers, frame over three, one of 1 byte. */
    uint64_t g = BUF_GPA + 0x1000;
    memset(r->h.ram + g, 0, 0x1000);
    memcpy(r->h.ram + g + 0x100, f, 1);
    memcpy(r->h.ram + g + 0x200, f + 1, 50);
    memcpy(r->h.ram + g + 0x300, f + 51, 49);
    struct seg five[5] = {{g, 5, 0},
                          {g + 0x80, HDR - 5, 0},
                          {g + 0x100, 1, 0},
                          {g + 0x200, 50, 0},
                          {g + 0x300, 49, 0}};
    add_chain(r, VIRTIO_NET_TX, five, 5);
    kick(r, VIRTIO_NET_TX);

    assert_int_equal(r->fbe.nr_sent, 2);
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(r->fbe.sent_len[i], sizeof(f));
        assert_memory_equal(r->fbe.sent[i], f, sizeof(f));
        assert_int_equal(next_used(r, VIRTIO_NET_TX).len, 0);
    }
    assert_true(fake_virtio_irq_count(vdev(r), VEC_TX) >= 1);
    assert_int_equal(r->net.tx_frames, 2);
    assert_int_equal(r->net.tx_dropped, 0);
}

/* A chain with a header and no frame is dropped and counted, the queue goes on. */
static void test_transmit_runt_dropped(void **state)
{
    struct rig *r = *state;

    bring_up(r, 0);
    struct seg s = {BUF_GPA, HDR + 5, 0};
    add_chain(r, VIRTIO_NET_TX, &s, 1);
    kick(r, VIRTIO_NET_TX);
    assert_int_equal(r->fbe.nr_sent, 0);
    assert_int_equal(r->net.tx_dropped, 1);
    assert_int_equal(next_used(r, VIRTIO_NET_TX).len, 0);
    assert_false(status(r) & VIRTIO_STATUS_NEEDS_RESET);
}

/* A full backend: the chain is given back and waits for tx_ready; nothing is lost. */
static void test_transmit_back_pressure(void **state)
{
    struct rig *r = *state;
    uint8_t f[60];

    bring_up(r, 0);
    make_frame(f, sizeof(f), 7);
    for (unsigned i = 0; i < 3; i++) {
        memset(r->h.ram + BUF_GPA + 0x100 * i, 0, HDR);
        memcpy(r->h.ram + BUF_GPA + 0x100 * i + HDR, f, sizeof(f));
        struct seg s = {BUF_GPA + 0x100 * i, HDR + sizeof(f), 0};
        add_chain(r, VIRTIO_NET_TX, &s, 1);
    }
    r->fbe.full = true;
    kick(r, VIRTIO_NET_TX);
    assert_int_equal(r->fbe.nr_sent, 0);
    assert_int_equal(used_idx(r, VIRTIO_NET_TX), 0);
    assert_true(r->net.tx_waiting);
    kick(r, VIRTIO_NET_TX); /* a kick changes nothing while full */
    assert_int_equal(used_idx(r, VIRTIO_NET_TX), 0);

    r->fbe.full = false;
    virtio_net_tx_ready(&r->net);
    run_loop(r);
    assert_int_equal(r->fbe.nr_sent, 3);
    assert_int_equal(used_idx(r, VIRTIO_NET_TX), 3);
    assert_int_equal(r->net.tx_dropped, 0);
}

/* Receive without MRG_RXBUF: one chain per frame, header with num_buffers 1. */
static void test_receive_one_chain(void **state)
{
    struct rig *r = *state;
    uint8_t f[200];

    bring_up(r, 0);
    make_frame(f, sizeof(f), 3);
    /* Header and frame over two writable buffers (any layout). */
    struct seg s[2] = {{BUF_GPA, 20, VIRTQ_DESC_F_WRITE},
                       {BUF_GPA + 0x1000, 2000, VIRTQ_DESC_F_WRITE}};
    uint16_t head = add_chain(r, VIRTIO_NET_RX, s, 2);
    kick(r, VIRTIO_NET_RX);
    memset(r->h.ram + BUF_GPA, 0xaa, 20);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 1);
    struct virtq_used_elem e = next_used(r, VIRTIO_NET_RX);
    assert_int_equal(e.id, head);
    assert_int_equal(e.len, HDR + sizeof(f));
    const uint8_t *b = r->h.ram + BUF_GPA;
    for (unsigned i = 0; i < 10; i++)
        assert_int_equal(b[i], 0); /* flags, gso_type, lengths: 0 */
    assert_int_equal(le16(b + 10), 1);
    assert_memory_equal(b + HDR, f, 20 - HDR);
    assert_memory_equal(r->h.ram + BUF_GPA + 0x1000, f + 20 - HDR, sizeof(f) - (20 - HDR));
    assert_true(fake_virtio_irq_count(vdev(r), VEC_RX) >= 1);

    /* A frame larger than the next chain: dropped and counted, the chain kept for the next. */
    add_rx(r, BUF_GPA + 0x2000, 100);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), -EMSGSIZE);
    assert_int_equal(r->net.rx_dropped, 1);
    assert_int_equal(virtio_net_receive(&r->net, f, 60), 1);
    assert_int_equal(next_used(r, VIRTIO_NET_RX).len, HDR + 60);
    assert_int_equal(r->net.rx_frames, 2);
}

/* MRG_RXBUF: a frame over several chains, pushed together, num_buffers counting them. */
static void test_receive_mergeable(void **state)
{
    struct rig *r = *state;
    uint8_t f[1000];

    bring_up(r, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    make_frame(f, sizeof(f), 9);
    uint16_t h[3];
    for (unsigned i = 0; i < 3; i++)
        h[i] = add_rx(r, BUF_GPA + 0x1000 * i, 400);
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 1);
    assert_int_equal(used_idx(r, VIRTIO_NET_RX), 3);
    uint32_t lens[3] = {400, 400, HDR + sizeof(f) - 800};
    for (unsigned i = 0; i < 3; i++) {
        struct virtq_used_elem e = next_used(r, VIRTIO_NET_RX);
        assert_int_equal(e.id, h[i]);
        assert_int_equal(e.len, lens[i]);
    }
    assert_int_equal(le16(r->h.ram + BUF_GPA + 10), 3);
    assert_memory_equal(r->h.ram + BUF_GPA + HDR, f, 400 - HDR);
    assert_memory_equal(r->h.ram + BUF_GPA + 0x1000, f + 400 - HDR, 400);
    assert_memory_equal(r->h.ram + BUF_GPA + 0x2000, f + 800 - HDR, sizeof(f) - 800 + HDR);
}

/*
 * MRG_RXBUF with too little posted: nothing pushed, every chain given back,
 * the frame waits (0); the driver's next buffers call rx_room and it fits.
 */
static void test_receive_waits_for_room(void **state)
{
    struct rig *r = *state;
    uint8_t f[1000];

    bring_up(r, 1ULL << VIRTIO_NET_F_MRG_RXBUF | 1ULL << VIRTIO_F_EVENT_IDX);
    make_frame(f, sizeof(f), 5);
    add_rx(r, BUF_GPA, 400);
    add_rx(r, BUF_GPA + 0x1000, 400);
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 0);
    assert_int_equal(used_idx(r, VIRTIO_NET_RX), 0);
    assert_true(r->net.rx_wanted);
    /* EVENT_IDX: the driver is asked to kick when it adds past what it had (2), not at 0. */
    uint16_t *avail_event = (uint16_t *)&used(r, VIRTIO_NET_RX)->ring[QSIZE];
    assert_int_equal(*avail_event, 2);
    add_rx(r, BUF_GPA + 0x2000, 400);
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(r->fbe.rooms, 1);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 1);
    assert_int_equal(used_idx(r, VIRTIO_NET_RX), 3);
    assert_int_equal(r->net.rx_dropped, 0);

    /* No buffer at all: waits too. */
    assert_int_equal(virtio_net_receive(&r->net, f, 60), 0);
    assert_true(r->net.rx_wanted);
}

/*
 * MRG_RXBUF with every descriptor posted and still too little room: the driver
 * can add nothing more until the device uses something, so waiting would hold
 * the queue (and the backend's backlog behind the frame) until a reset. The
 * frame is dropped and counted, every chain given back, nothing broken; the
 * next frame that fits takes them.
 */
static void test_receive_whole_ring_too_small(void **state)
{
    struct rig *r = *state;
    uint8_t f[600];

    bring_up(r, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    make_frame(f, sizeof(f), 3);
    for (unsigned i = 0; i < QSIZE; i++)
        add_rx(r, BUF_GPA + 0x100 * i, HDR + 8); /* 8 bytes of frame each but the first */
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), -EMSGSIZE);
    assert_int_equal(r->net.rx_dropped, 1);
    assert_false(r->net.rx_wanted);
    assert_int_equal(used_idx(r, VIRTIO_NET_RX), 0);
    assert_false(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    /* A frame that fits them (the ring holds 8 + 15 * 20 bytes of frame): 60 in 4 chains. */
    assert_int_equal(virtio_net_receive(&r->net, f, 60), 1);
    assert_int_equal(used_idx(r, VIRTIO_NET_RX), 4);
    assert_int_equal(le16(r->h.ram + BUF_GPA + 10), 4);
    assert_int_equal(r->net.rx_dropped, 1);
}

/* The same with every descriptor in two-descriptor chains: half as many chains as the size. */
static void test_receive_whole_ring_too_small_pairs(void **state)
{
    struct rig *r = *state;
    uint8_t f[600];

    bring_up(r, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    make_frame(f, sizeof(f), 3);
    for (unsigned i = 0; i < QSIZE / 2; i++) {
        struct seg s[2] = {{BUF_GPA + 0x200 * i, HDR, VIRTQ_DESC_F_WRITE},
                           {BUF_GPA + 0x200 * i + 0x100, 8, VIRTQ_DESC_F_WRITE}};
        add_chain(r, VIRTIO_NET_RX, s, 2);
    }
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), -EMSGSIZE);
    assert_int_equal(r->net.rx_dropped, 1);
    assert_false(r->net.rx_wanted);
    assert_int_equal(used_idx(r, VIRTIO_NET_RX), 0);
}

/* Before DRIVER_OK, or with the link down, frames are dropped and counted. */
static void test_receive_link_not_up(void **state)
{
    struct rig *r = *state;
    uint8_t f[60];

    make_frame(f, sizeof(f), 0);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), -ENETDOWN);
    bring_up(r, 0);
    add_rx(r, BUF_GPA, 2000);
    virtio_net_set_link(&r->net, false);
    assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_PCI_DEVICE_OFF + 6, 2), 0);
    assert_true(fake_virtio_irq_count(vdev(r), VEC_CONFIG) >= 1);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), -ENETDOWN);
    assert_int_equal(r->net.rx_dropped, 2);
    virtio_net_set_link(&r->net, true);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 1);
}

/* Paused: nothing taken (kept by the backend), the resume calls rx_room. */
static void test_paused_takes_nothing(void **state)
{
    struct rig *r = *state;
    uint8_t f[60];

    bring_up(r, 0);
    make_frame(f, sizeof(f), 0);
    add_rx(r, BUF_GPA, 2000);
    kick(r, VIRTIO_NET_RX);
    virtio_pci_pause(vdev(r));
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 0);
    virtio_pci_resume(vdev(r));
    run_loop(r);
    assert_int_equal(r->fbe.rooms, 1);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 1);
}

/* Hostile chains break their queue (DEVICE_NEEDS_RESET); a reset mends it. */
static void test_hostile_chains(void **state)
{
    struct rig *r = *state;
    uint8_t f[60];

    make_frame(f, sizeof(f), 0);
    /* A device-writable buffer on transmitq. */
    bring_up(r, 0);
    struct seg tw[2] = {{BUF_GPA, HDR + 60, 0}, {BUF_GPA + 0x100, 8, VIRTQ_DESC_F_WRITE}};
    add_chain(r, VIRTIO_NET_TX, tw, 2);
    kick(r, VIRTIO_NET_TX);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(r->fbe.nr_sent, 0);
    reset(r);

    /* A transmit chain shorter than the header. */
    bring_up(r, 0);
    struct seg ts = {BUF_GPA, HDR - 1, 0};
    add_chain(r, VIRTIO_NET_TX, &ts, 1);
    kick(r, VIRTIO_NET_TX);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    reset(r);

    /* A transmit buffer outside RAM. */
    bring_up(r, 0);
    struct seg to = {RAM_SIZE - 8, HDR + 60, 0};
    add_chain(r, VIRTIO_NET_TX, &to, 1);
    kick(r, VIRTIO_NET_TX);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    reset(r);

    /* A device-readable buffer on receiveq. */
    bring_up(r, 0);
    struct seg rr[2] = {{BUF_GPA, 8, 0}, {BUF_GPA + 0x100, 2000, VIRTQ_DESC_F_WRITE}};
    add_chain(r, VIRTIO_NET_RX, rr, 2);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), -EIO);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(used_idx(r, VIRTIO_NET_RX), 0);
    assert_true(fake_virtio_irq_count(vdev(r), VEC_CONFIG) >= 1);
    reset(r);

    /* A receive chain with no room for the header (MRG_RXBUF: each buffer must hold one). */
    bring_up(r, 1ULL << VIRTIO_NET_F_MRG_RXBUF);
    add_rx(r, BUF_GPA, 400);
    add_rx(r, BUF_GPA + 0x1000, HDR - 2);
    uint8_t big[600];
    make_frame(big, sizeof(big), 0);
    assert_int_equal(virtio_net_receive(&r->net, big, sizeof(big)), -EIO);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(used_idx(r, VIRTIO_NET_RX), 0);
    reset(r);

    /* An available index far ahead, on receiveq. */
    bring_up(r, 0);
    struct virtq_avail *av = (struct virtq_avail *)(r->h.ram + AVAIL_GPA(0));
    __atomic_store_n(&av->idx, (uint16_t)(QSIZE + 5), __ATOMIC_RELEASE);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), -EIO);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    reset(r);

    /* A receive chain that loops on itself. */
    bring_up(r, 0);
    struct virtq_desc d = {.addr = BUF_GPA, .len = 4, .flags = VIRTQ_DESC_F_WRITE | 1, .next = 0};
    memcpy(r->h.ram + DESC_GPA(0), &d, sizeof(d));
    av->ring[0] = 0;
    __atomic_store_n(&av->idx, (uint16_t)1, __ATOMIC_RELEASE);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), -EIO);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    reset(r);

    /* After all that: a reset device works both ways. */
    bring_up(r, 0);
    add_rx(r, BUF_GPA, 2000);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 1);
    memset(r->h.ram + BUF_GPA + 0x1000, 0, HDR);
    memcpy(r->h.ram + BUF_GPA + 0x1000 + HDR, f, sizeof(f));
    struct seg ok = {BUF_GPA + 0x1000, HDR + sizeof(f), 0};
    add_chain(r, VIRTIO_NET_TX, &ok, 1);
    kick(r, VIRTIO_NET_TX);
    assert_int_equal(r->fbe.nr_sent, 1);
}

/* ---- offloads (a vnet_hdr backend: a tap) ---- */

#define F(b) (1ULL << (b))

/* A transmit chain of header hdr[10] and frame f; kicked. */
static void send_with_hdr(struct rig *r, const uint8_t *hdr, const uint8_t *f, size_t len,
                          uint64_t gpa)
{
    memcpy(r->h.ram + gpa, hdr, 10);
    r->h.ram[gpa + 10] = 0x77; /* num_buffers: unused on transmit, zeroed on the way */
    r->h.ram[gpa + 11] = 0x77;
    memcpy(r->h.ram + gpa + HDR, f, len);
    struct seg s = {gpa, (uint32_t)(HDR + len), 0};
    add_chain(r, VIRTIO_NET_TX, &s, 1);
    kick(r, VIRTIO_NET_TX);
}

/*
 * Offered, never assumed: the tap hears of the offloads the driver took at
 * DRIVER_OK's first queue use; a transmit header asking for what was not
 * negotiated is dropped; one that was goes to the backend whole.
 */
static void test_offloads_negotiated_transmit(void **state)
{
    struct rig *r = *state;
    uint8_t f[100], csum[10] = {VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 34, 0, 16, 0};
    uint8_t tso[10] = {
        VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 54, 0, 0xb4, 5, 34, 0, 16, 0};

    uint64_t offered = fake_virtio_device_features(&r->h.mmio, vdev(r));
    assert_true((offered & VIRTIO_NET_OFFLOADS) == VIRTIO_NET_OFFLOADS);
    make_frame(f, sizeof(f), 4);

    /* A driver that takes no offload: the tap is told 0; a NEEDS_CSUM header is dropped. */
    bring_up(r, 0);
    add_rx(r, BUF_GPA + 0x8000, 2000);
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(r->fbe.offload, 0);
    send_with_hdr(r, csum, f, sizeof(f), BUF_GPA);
    assert_int_equal(r->fbe.nr_sent, 0);
    assert_int_equal(r->net.tx_dropped, 1);
    reset(r);

    /* CSUM and HOST_TSO4, GUEST_CSUM and GUEST_TSO4 (not 6): both headers go through. */
    bring_up(r, F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_GUEST_CSUM) |
                    F(VIRTIO_NET_F_GUEST_TSO4));
    add_rx(r, BUF_GPA + 0x8000, 2000);
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(r->fbe.offload, 0x01 | 0x02); /* TUN_F_CSUM | TUN_F_TSO4 */
    send_with_hdr(r, csum, f, sizeof(f), BUF_GPA);
    send_with_hdr(r, tso, f, sizeof(f), BUF_GPA + 0x1000);
    assert_int_equal(r->fbe.nr_sent, 2);
    assert_int_equal(r->fbe.sent_len[1], HDR + sizeof(f));
    assert_memory_equal(r->fbe.sent[1], tso, 10);
    assert_int_equal(r->fbe.sent[1][10], 0);
    assert_int_equal(r->fbe.sent[1][11], 0);
    assert_memory_equal(r->fbe.sent[1] + HDR, f, sizeof(f));
    /* TCPv6 was not negotiated (HOST_TSO6), nor ECN, nor unknown flags. */
    uint8_t tso6[10] = {1, VIRTIO_NET_HDR_GSO_TCPV6, 74, 0, 0xa0, 5, 54, 0, 16, 0};
    uint8_t ecn[10] = {1, VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 54, 0, 0xb4, 5};
    uint8_t odd[10] = {0x80};
    send_with_hdr(r, tso6, f, sizeof(f), BUF_GPA + 0x2000);
    send_with_hdr(r, ecn, f, sizeof(f), BUF_GPA + 0x3000);
    send_with_hdr(r, odd, f, sizeof(f), BUF_GPA + 0x4000);
    assert_int_equal(r->fbe.nr_sent, 2);
    assert_int_equal(r->net.tx_dropped, 4);
    assert_false(status(r) & VIRTIO_STATUS_NEEDS_RESET);
}

/* Receive: the backend's header is kept (num_buffers set) when the driver took it. */
static void test_offloads_receive(void **state)
{
    struct rig *r = *state;
    uint8_t buf[HDR + 200];
    const uint8_t gso[10] = {
        VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 54, 0, 0xb4, 5, 34, 0, 16, 0};

    memcpy(buf, gso, 10);
    buf[10] = buf[11] = 0;
    make_frame(buf + HDR, 200, 6);
    /* Without GUEST_TSO4: a GSO frame from the backend is dropped, a plain one goes. */
    bring_up(r, F(VIRTIO_NET_F_GUEST_CSUM));
    add_rx(r, BUF_GPA, 2000);
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(r->fbe.offload, 0x01);
    assert_int_equal(virtio_net_receive(&r->net, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(r->net.rx_dropped, 1);
    assert_int_equal(virtio_net_receive(&r->net, buf, HDR - 1), -EINVAL);
    reset(r);

    /* A driver without GUEST_CSUM: the tap's DATA_VALID does not reach it. */
    bring_up(r, 0);
    add_rx(r, BUF_GPA, 2000);
    kick(r, VIRTIO_NET_RX);
    uint8_t valid[HDR + 60] = {VIRTIO_NET_HDR_F_DATA_VALID};
    make_frame(valid + HDR, 60, 1);
    assert_int_equal(virtio_net_receive(&r->net, valid, sizeof(valid)), 1);
    assert_int_equal(r->h.ram[BUF_GPA], 0);
    reset(r);

    bring_up(r, F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4));
    add_rx(r, BUF_GPA, 2000);
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(virtio_net_receive(&r->net, buf, sizeof(buf)), 1);
    assert_int_equal(next_used(r, VIRTIO_NET_RX).len, HDR + 200);
    assert_memory_equal(r->h.ram + BUF_GPA, gso, 10);
    assert_int_equal(le16(r->h.ram + BUF_GPA + 10), 1);
    assert_memory_equal(r->h.ram + BUF_GPA + HDR, buf + HDR, 200);
}

/* ---- save and restore ---- */

static uint8_t tree[STATE_TEST_TREE], edited[STATE_TEST_TREE];

static void save_net(struct state_out *out, void *ctx)
{
    state_begin(out, "net0", VIRTIO_NET_STATE_COMPATIBLE);
    if (virtio_net_save(ctx, out) == 0)
        state_end(out);
}

static struct rig *twin(struct rig *r)
{
    void *p;
    setup(&p);
    struct rig *w = p;
    memcpy(w->h.ram, r->h.ram, RAM_SIZE);
    memcpy(w->avail, r->avail, sizeof(r->avail));
    memcpy(w->next_desc, r->next_desc, sizeof(r->next_desc));
    memcpy(w->used_seen, r->used_seen, sizeof(r->used_seen));
    return w;
}

static int restore_net(const void *t, struct rig *w, struct errbuf *eb)
{
    struct state_in root = state_test_root(t, eb), in;
    if (state_open(&root, "net0", VIRTIO_NET_STATE_COMPATIBLE, &in))
        return in.err;
    return virtio_net_restore(&w->net, &in);
}

/*
 * A device with frames both ways done, receive buffers posted and a transmit
 * chain waiting (kicked, not taken: the VM paused): saved, restored into a
 * fresh device. The registers read the same; the waiting chain goes out and
 * the next frame lands in the next posted buffer.
 */
static void test_save_restore(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    uint8_t f[80];
    uint32_t va, vb;

    bring_up(r, 1ULL << VIRTIO_NET_F_MRG_RXBUF | 1ULL << VIRTIO_F_EVENT_IDX);
    make_frame(f, sizeof(f), 2);
    add_rx(r, BUF_GPA, 1000);
    add_rx(r, BUF_GPA + 0x1000, 1000);
    kick(r, VIRTIO_NET_RX);
    assert_int_equal(virtio_net_receive(&r->net, f, sizeof(f)), 1);
    virtio_pci_pause(vdev(r));
    memset(r->h.ram + BUF_GPA + 0x3000, 0, HDR);
    memcpy(r->h.ram + BUF_GPA + 0x3000 + HDR, f, sizeof(f));
    struct seg s = {BUF_GPA + 0x3000, HDR + sizeof(f), 0};
    add_chain(r, VIRTIO_NET_TX, &s, 1);
    kick(r, VIRTIO_NET_TX);
    assert_int_equal(r->fbe.nr_sent, 0);

    assert_int_equal(state_test_write(tree, sizeof(tree), save_net, &r->net), 0);
    struct rig *w = twin(r);
    int ret = restore_net(tree, w, &eb);
    if (ret)
        fail_msg("%s", eb.msg);
    int i = fake_virtio_regs_differ(&r->h.mmio, vdev(r), &w->h.mmio, vdev(w), &va, &vb);
    if (i >= 0)
        fail_msg("register read %d: %#x, then %#x", i, va, vb);
    run_loop(w); /* the restore looks at the queues: the waiting chain goes out */
    assert_int_equal(w->fbe.nr_sent, 1);
    assert_memory_equal(w->fbe.sent[0], f, sizeof(f));
    assert_int_equal(used_idx(w, VIRTIO_NET_TX), 1);
    assert_int_equal(virtio_net_receive(&w->net, f, 60), 1);
    assert_int_equal(used_idx(w, VIRTIO_NET_RX), 2);
    assert_memory_equal(w->h.ram + BUF_GPA + 0x1000 + HDR, f, 60);
    teardown((void **)&w);
}

/* Another NIC's state, or a bad one, is refused with the property named; the device works. */
static void test_restore_refuses_hostile(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    uint8_t f[60];

    bring_up(r, 0);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_net, &r->net), 0);
    struct rig *w = twin(r);

    memcpy(edited, tree, sizeof(tree));
    uint8_t other[6] = {0x52, 0x54, 0, 0, 0, 1};
    int len;
    uint8_t *mac = state_test_prop(edited, "/net0", "mac", &len);
    assert_non_null(mac);
    assert_int_equal(len, 6);
    memcpy(mac, other, 6);
    assert_int_equal(restore_net(edited, w, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "property 'mac' 52:54:00:00:00:01 is not this NIC's"));
    assert_int_equal(status(w), 0);

    memcpy(edited, tree, sizeof(tree));
    assert_int_equal(state_test_set_u32(edited, "/net0", "link-up", 7), 0);
    assert_int_equal(restore_net(edited, w, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "link-up"));

    bring_up(w, 0);
    make_frame(f, sizeof(f), 0);
    add_rx(w, BUF_GPA, 2000);
    assert_int_equal(virtio_net_receive(&w->net, f, sizeof(f)), 1);
    teardown((void **)&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_and_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queues_share_one_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit_any_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit_runt_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit_back_pressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_one_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_mergeable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_waits_for_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_whole_ring_too_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_whole_ring_too_small_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_link_not_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_takes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offloads_negotiated_transmit, setup_offloads,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_offloads_receive, setup_offloads, teardown),
        cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refuses_hostile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
