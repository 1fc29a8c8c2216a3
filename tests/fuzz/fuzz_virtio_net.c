/*
 * Fuzz target: virtio-net on the virtio-pci transport, as a hostile driver
 * drives it: the transport's registers, both queues' rings and buffers in
 * fake guest RAM, kicks, resets, MRG_RXBUF or not. Around it, a fake
 * backend; after every op the host side acts as the first input byte says
 * (it is also the first op): bit 7: a frame is offered (virtio_net_receive(),
 * its length stepping through small, merged-buffer and too-large sizes),
 * bit 6: the backend is full every other op (transmit chains are given back
 * and wait for tx_ready, which comes on the next op); bit 5: the backend is
 * a tap's (vnet_hdr: offloads offered, headers both ways; offered frames
 * get headers asking for each offload in turn).
 *
 * Input format: fuzz_virtio_ops.h (tests/fuzz/gen_corpus.py writes seeds in
 * it). Checked after every op: fuzz_virtio_check_locked(); the device
 * never sends a frame shorter than an Ethernet header or longer than
 * NET_MAX_FRAME, never holds a chain (nothing in flight on either queue),
 * waits for the backend only after it said it was full; receive answers 1,
 * 0 or an error it counted.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_virtio_ops.h"
#include "petrel/virtio_net.h"

#define RAM_SIZE (64 * 1024)

static struct {
    struct net_backend be;
    bool feed, choke, full, vnet;
    struct virtio_net *net;
    unsigned step;
    uint64_t sent, refused;
} host;

static int fbe_send(struct net_backend *be, const void *frame, size_t len)
{
    (void)be, (void)frame;
    size_t hdr = host.vnet ? VIRTIO_NET_HDR_SIZE : 0;
    FUZZ_CHECK(len >= hdr + NET_ETH_MIN && len <= hdr + NET_MAX_FRAME);
    if (host.vnet) {
        const uint8_t *h = frame;
        uint64_t f = host.net->vdev.driver_features;
        FUZZ_CHECK(h[10] == 0 && h[11] == 0);
        /* Only what was negotiated reaches the tap. */
        FUZZ_CHECK(!(h[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) || (f & 1ULL << VIRTIO_NET_F_CSUM));
        FUZZ_CHECK(h[1] == VIRTIO_NET_HDR_GSO_NONE ||
                   (h[1] == VIRTIO_NET_HDR_GSO_TCPV4 && (f & 1ULL << VIRTIO_NET_F_HOST_TSO4)) ||
                   (h[1] == VIRTIO_NET_HDR_GSO_TCPV6 && (f & 1ULL << VIRTIO_NET_F_HOST_TSO6)));
    }
    if (host.full) {
        host.refused++;
        return -EAGAIN;
    }
    host.sent++;
    return 0;
}

static void fbe_rx_room(struct net_backend *be)
{
    (void)be;
}

static int fbe_set_offload(struct net_backend *be, unsigned flags)
{
    (void)be;
    FUZZ_CHECK(!(flags & ~7u) && (!flags || (flags & 1)));
    return 0;
}

static const struct net_backend_ops fbe_ops = {
    .send = fbe_send, .rx_room = fbe_rx_room, .set_offload = fbe_set_offload};

static void quiet(void *ctx, const char *msg)
{
    (void)ctx, (void)msg;
}

static void check(struct virtio_dev *v)
{
    struct virtio_net *net = container_of(v, struct virtio_net, vdev);
    static uint8_t frame[3000];

    virtio_lock(v);
    fuzz_virtio_check_locked(v);
    for (unsigned q = 0; q < 2; q++) {
        struct virtq *vq = virtio_vq(v, q);
        FUZZ_CHECK(!vq->ready || vq->broken || vq->used_idx == vq->last_avail_idx);
    }
    FUZZ_CHECK(!net->tx_waiting || host.refused);
    FUZZ_CHECK(net->tx_frames == host.sent);
    uint64_t dropped = net->rx_dropped;
    virtio_unlock(v);

    if (host.feed) {
        static const size_t sizes[] = {60, 14, 13, 1514, 200, 2999, 100};
        size_t len = sizes[host.step % (sizeof(sizes) / sizeof(sizes[0]))];
        memset(frame, (int)host.step, len);
        if (host.vnet && len >= VIRTIO_NET_HDR_SIZE) {
            static const uint8_t kinds[][2] = {{0, 0}, {1, 0}, {1, 1}, {1, 4}, {2, 0}, {1, 0x81}};
            const uint8_t *k = kinds[host.step % (sizeof(kinds) / sizeof(kinds[0]))];
            memset(frame, 0, VIRTIO_NET_HDR_SIZE);
            frame[0] = k[0];
            frame[1] = k[1];
        }
        int r = virtio_net_receive(net, frame, len);
        FUZZ_CHECK(r == 1 || r == 0 || r == -ENETDOWN || r == -EINVAL || r == -EMSGSIZE ||
                   r == -EIO);
        FUZZ_CHECK(r >= 0 || net->rx_dropped == dropped + 1);
    }
    host.step++;
    if (host.choke) {
        bool was = host.full;
        host.full = !was;
        if (was)
            virtio_net_tx_ready(net);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
    struct fake_virtio_host h;
    static struct virtio_net net;
    struct fuzz_input in = {data, size};

    memset(&net, 0, sizeof(net));
    memset(&host, 0, sizeof(host));
    host.be.ops = &fbe_ops;
    host.feed = size && (data[0] & 0x80);
    host.choke = size && (data[0] & 0x40);
    host.vnet = size && (data[0] & 0x20);
    host.net = &net;
    host.be.vnet_hdr = host.vnet;
    FUZZ_CHECK(fake_virtio_host_init(&h, RAM_SIZE) == 0);
    h.pci.warn = quiet;
    FUZZ_CHECK(virtio_net_init(&net, &h.sys, mac, host.vnet) == 0);
    virtio_net_set_backend(&net, &host.be);
    FUZZ_CHECK(virtio_pci_add(&net.vdev, &h.pci) == 0);

    fuzz_virtio_run(&in, &h, &net.vdev, check);

    virtio_net_destroy(&net);
    fake_virtio_host_destroy(&h);
    return 0;
}
