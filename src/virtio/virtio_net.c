/*
 * virtio-net (virtio 1.2, 5.1): receiveq and transmitq of one queue pair,
 * the MAC and link status in the configuration, MRG_RXBUF. virtio_net.h
 * says what is dropped and what waits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/config.h"
#include "petrel/virtio_net.h"

static struct virtio_net *to_net(struct virtio_dev *vdev)
{
    return container_of(vdev, struct virtio_net, vdev);
}

static bool net_mrg(const struct virtio_net *net)
{
    return net->vdev.driver_features & 1ULL << VIRTIO_NET_F_MRG_RXBUF;
}

static bool net_has(const struct virtio_net *net, unsigned bit)
{
    return net->vdev.driver_features & 1ULL << bit;
}

/*
 * Whether a header asks only for what the features allow: NEEDS_CSUM with
 * csum (CSUM one way, GUEST_CSUM the other), a GSO type with its TSO bit.
 */
static bool net_hdr_allowed(const struct virtio_net *net, const uint8_t *hdr, unsigned csum,
                            unsigned tso4, unsigned tso6)
{
    uint8_t flags = hdr[0], gso = hdr[1] & ~VIRTIO_NET_HDR_GSO_ECN;

    if (flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
        return false;
    if ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !net_has(net, csum))
        return false;
    if (hdr[1] & VIRTIO_NET_HDR_GSO_ECN)
        return false; /* no ECN feature is offered */
    return gso == VIRTIO_NET_HDR_GSO_NONE ||
           (gso == VIRTIO_NET_HDR_GSO_TCPV4 && net_has(net, tso4)) ||
           (gso == VIRTIO_NET_HDR_GSO_TCPV6 && net_has(net, tso6));
}

/*
 * Tells a vnet_hdr backend which offloads the driver takes, when that changed
 * (lock held; after DRIVER_OK, else none): TUNSETOFFLOAD's flags.
 */
static void net_apply_offload(struct virtio_net *net)
{
    unsigned want = 0;

    if (!net->offloads || !net->be || !net->be->ops->set_offload)
        return;
    if ((net->vdev.status & VIRTIO_STATUS_DRIVER_OK) && net_has(net, VIRTIO_NET_F_GUEST_CSUM)) {
        want = 0x01; /* TUN_F_CSUM */
        if (net_has(net, VIRTIO_NET_F_GUEST_TSO4))
            want |= 0x02; /* TUN_F_TSO4 */
        if (net_has(net, VIRTIO_NET_F_GUEST_TSO6))
            want |= 0x04; /* TUN_F_TSO6 */
    }
    if (want != net->tun_offload && !net->be->ops->set_offload(net->be, want))
        net->tun_offload = want;
}

/* ---- transmit ---- */

/* Before each pop: whether the backend takes frames. */
static bool net_tx_ready(struct virtio_dev *vdev, struct virtq *vq)
{
    (void)vq;
    return !to_net(vdev)->tx_waiting;
}

/* One transmit chain: header, then the frame, all device-readable (5.1.6.2). */
static enum virtio_chain_ret net_tx_chain(struct virtio_dev *vdev, struct virtq *vq,
                                          struct virtq_chain *ch)
{
    struct virtio_net *net = to_net(vdev);

    if (ch->nr_in) {
        virtq_break(vq, "transmitq chain %u has a device-writable buffer", ch->head);
        return VIRTIO_CHAIN_BROKEN;
    }
    if (ch->out_bytes < VIRTIO_NET_HDR_SIZE) {
        virtq_break(vq, "transmitq chain %u has %llu bytes, less than the header", ch->head,
                    (unsigned long long)ch->out_bytes);
        return VIRTIO_CHAIN_BROKEN;
    }
    uint64_t len = ch->out_bytes - VIRTIO_NET_HDR_SIZE;
    size_t off = net->offloads ? 0 : VIRTIO_NET_HDR_SIZE; /* the header goes on, or not */
    if (net->offloads)
        net_apply_offload(net);
    if (len < NET_ETH_MIN || len > NET_MAX_FRAME || !net->be) {
        net->tx_dropped++; /* not a frame, or nowhere to send it: gone, as on a wire */
    } else {
        size_t got =
            virtq_chain_read(ch, off, net->frame, (size_t)(len + VIRTIO_NET_HDR_SIZE - off));
        if (net->offloads) {
            /* Copied, so the guest cannot change it after the check. num_buffers: unused. */
            net->frame[10] = net->frame[11] = 0;
            if (!net_hdr_allowed(net, net->frame, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_TSO4,
                                 VIRTIO_NET_F_HOST_TSO6)) {
                net->tx_dropped++;
                return virtq_push(vq, ch->head, 0) ? VIRTIO_CHAIN_BROKEN : VIRTIO_CHAIN_DONE;
            }
        }
        if (net->be->ops->send(net->be, net->frame, got) == -EAGAIN) {
            virtq_unpop(vq, 1, ch->out_bytes); /* taken again once the backend has room */
            net->tx_waiting = true;
            return VIRTIO_CHAIN_WAIT;
        }
        net->tx_frames++;
        net->tx_bytes += got - (VIRTIO_NET_HDR_SIZE - off);
    }
    return virtq_push(vq, ch->head, 0) ? VIRTIO_CHAIN_BROKEN : VIRTIO_CHAIN_DONE;
}

static const struct virtio_queue_handler net_tx_handler = {.ready = net_tx_ready,
                                                           .chain = net_tx_chain};

/* On the loop, with the device lock held (virtio.h). */
static void net_queue_notify(struct virtio_dev *vdev, unsigned q)
{
    struct virtio_net *net = to_net(vdev);

    if (q == VIRTIO_NET_TX) {
        struct virtq_chain ch = {.segs = net->tx_segs, .cap = VIRTIO_NET_QUEUE_SIZE};
        if (!net->tx_waiting)
            virtio_serve_queue_locked(vdev, q, &ch, VIRTIO_NET_TX_BUDGET, &net_tx_handler);
        return;
    }
    /* receiveq: new buffers; a frame that waited for them may come now. */
    net_apply_offload(net);
    if (net->rx_wanted && net->be) {
        net->rx_wanted = false;
        net->be->ops->rx_room(net->be);
    }
}

void virtio_net_tx_ready(struct virtio_net *net)
{
    virtio_lock(&net->vdev);
    if (net->tx_waiting) {
        net->tx_waiting = false;
        virtio_requeue_locked(&net->vdev, VIRTIO_NET_TX);
    }
    virtio_unlock(&net->vdev);
}

/* ---- receive ---- */

/* Whether the driver may be given frames (3.1.1: after DRIVER_OK), the link up. */
static bool net_rx_live(struct virtio_net *net)
{
    struct virtio_dev *v = &net->vdev;
    struct virtq *vq = virtio_vq(v, VIRTIO_NET_RX);

    return net->link_up && (v->status & VIRTIO_STATUS_DRIVER_OK) &&
           !(v->status & VIRTIO_STATUS_NEEDS_RESET) && vq->ready && !vq->broken;
}

/*
 * Places a frame into the posted chains (lock held): 1 placed and pushed; 0
 * not enough room (every chain given back, the driver asked to kick for
 * more); -EMSGSIZE too large for a chain without MRG_RXBUF, or with it for
 * every chain the queue can hold (dropped, the chains kept); -EIO the queue
 * broke.
 */
static int net_rx_place(struct virtio_net *net, struct virtq *vq, const uint8_t *in_hdr,
                        const uint8_t *frame, size_t len)
{
    struct virtq_seg first_segs[VIRTIO_NET_QUEUE_SIZE];
    struct virtq_chain first = {.segs = first_segs, .cap = VIRTIO_NET_QUEUE_SIZE};
    struct virtq_chain ch = {.segs = net->rx_segs, .cap = VIRTIO_NET_QUEUE_SIZE};
    bool mrg = net_mrg(net);
    unsigned n = 0, descs = 0;
    size_t done = 0; /* bytes of the frame placed */

    while (n == 0 || done < len) {
        struct virtq_chain *c = n ? &ch : &first;
        int r = virtq_pop(vq, c);
        if (r < 0)
            return -EIO;
        if (r == 0) {
            virtq_unpop(vq, n, 0); /* receive chains: device-writable only */
            /* Every descriptor is in these chains: the driver can add no more until some
             * are used, so this frame would hold the queue until a reset. */
            return descs >= vq->num ? -EMSGSIZE : 0;
        }
        descs += c->nr_desc;
        if (c->nr_out || c->in_bytes < VIRTIO_NET_HDR_SIZE) {
            virtq_break(vq, "receiveq chain %u has %s", c->head,
                        c->nr_out ? "a device-readable buffer" : "no room for the header");
            return -EIO;
        }
        if (!mrg && c->in_bytes < VIRTIO_NET_HDR_SIZE + len) {
            virtq_unpop(vq, 1, 0);
            return -EMSGSIZE;
        }
        uint64_t start = n ? 0 : VIRTIO_NET_HDR_SIZE;
        size_t take = c->in_bytes - start < len - done ? (size_t)(c->in_bytes - start) : len - done;
        virtq_chain_write(c, start, frame + done, take);
        done += take;
        net->rx_used[n].id = c->head;
        net->rx_used[n].len = (uint32_t)(start + take);
        n++;
    }
    /* 5.1.6.4: the backend's header (checked), or without offloads all 0 but num_buffers. */
    uint8_t hdr[VIRTIO_NET_HDR_SIZE] = {0};
    if (in_hdr)
        memcpy(hdr, in_hdr, 10);
    hdr[10] = (uint8_t)n;
    hdr[11] = (uint8_t)(n >> 8);
    virtq_chain_write(&first, 0, hdr, sizeof(hdr));
    if (virtq_push_many(vq, net->rx_used, n))
        return -EIO;
    return 1;
}

int virtio_net_receive(struct virtio_net *net, const void *buf, size_t len)
{
    struct virtio_dev *v = &net->vdev;
    struct virtq *vq = virtio_vq(v, VIRTIO_NET_RX);
    const uint8_t *frame = buf, *hdr = NULL;
    uint8_t h[VIRTIO_NET_HDR_SIZE];
    int ret;

    virtio_lock(v);
    if (net->offloads) { /* the backend's header first */
        if (len < VIRTIO_NET_HDR_SIZE) {
            net->rx_dropped++;
            ret = -EINVAL;
            goto out;
        }
        memcpy(h, frame, sizeof(h));
        /* 5.1.6.4.1: DATA_VALID only to a driver that took GUEST_CSUM (a tap sets it anyway). */
        if (!net_has(net, VIRTIO_NET_F_GUEST_CSUM))
            h[0] &= (uint8_t)~VIRTIO_NET_HDR_F_DATA_VALID;
        hdr = h;
        frame += VIRTIO_NET_HDR_SIZE;
        len -= VIRTIO_NET_HDR_SIZE;
    }
    if (v->paused) {
        net->rx_wanted = true; /* the resume looks at the queues */
        ret = 0;
        goto out;
    }
    if (!net_rx_live(net) || len < NET_ETH_MIN || len > NET_MAX_FRAME ||
        (hdr && !net_hdr_allowed(net, hdr, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
                                 VIRTIO_NET_F_GUEST_TSO6))) {
        net->rx_dropped++;
        ret = net_rx_live(net) ? -EINVAL : -ENETDOWN;
        goto out;
    }
    for (;;) {
        ret = net_rx_place(net, vq, hdr, frame, len);
        if (ret)
            break;
        /* Not enough room: a kick when the driver adds some, unless it just did. */
        if (!virtq_enable_notify_more(vq)) {
            net->rx_wanted = true;
            break;
        }
    }
    if (ret == 1) {
        net->rx_frames++;
        net->rx_bytes += len;
    } else if (ret < 0) {
        net->rx_dropped++;
    }
    if (ret == 1 || vq->broken)
        virtio_notify_queue_locked(v, VIRTIO_NET_RX);
out:
    virtio_unlock(v);
    return ret;
}

/* ---- configuration, link ---- */

static uint64_t net_config_read(struct virtio_dev *vdev, unsigned offset, unsigned size)
{
    struct virtio_net *net = to_net(vdev);
    uint8_t c[VIRTIO_NET_CONFIG_SIZE] = {0};
    uint64_t x = 0;

    memcpy(c + VIRTIO_NET_CFG_MAC, net->mac, 6);
    c[VIRTIO_NET_CFG_STATUS] = net->link_up ? VIRTIO_NET_S_LINK_UP : 0;
    c[VIRTIO_NET_CFG_MAX_PAIRS] = 1;
    for (unsigned i = 0; i < size; i++) /* the transport checked offset + size */
        x |= (uint64_t)c[offset + i] << (8 * i);
    return x;
}

void virtio_net_set_link(struct virtio_net *net, bool up)
{
    virtio_lock(&net->vdev);
    if (net->link_up != up) {
        net->link_up = up;
        virtio_config_changed_locked(&net->vdev);
    }
    virtio_unlock(&net->vdev);
}

/* The driver reset the device (a vCPU thread, lock held): nothing is held. Done at once. */
static int net_reset(struct virtio_dev *vdev)
{
    struct virtio_net *net = to_net(vdev);

    net->tx_waiting = false; /* the backend's tx_ready finds nothing to requeue */
    /* The next driver's offloads are told to the backend at its first use of a queue; frames
     * meanwhile are checked against its features (none before FEATURES_OK). */
    /* rx_wanted stays: the backend's frame waits for the next driver's buffers. */
    return 0;
}

static const struct virtio_dev_ops virtio_net_ops = {
    .device_type = VIRTIO_ID_NET,
    .class_code = 0x020000, /* Ethernet controller, as QEMU's virtio-net-pci */
    .num_queues = 2,
    .nr_vectors = 2, /* configuration, and one for both queues (virtio_net.h) */
    .queue_max_size = VIRTIO_NET_QUEUE_SIZE,
    .config_size = VIRTIO_NET_CONFIG_SIZE,
    .config_read = net_config_read,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
};

#define NET_FEATURES                                                                               \
    (1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_STATUS | 1ULL << VIRTIO_NET_F_MRG_RXBUF)

int virtio_net_init(struct virtio_net *net, const struct virtio_sys *sys, const uint8_t mac[6],
                    bool offloads)
{
    memcpy(net->mac, mac, 6);
    net->offloads = offloads;
    net->tun_offload = ~0u;
    net->link_up = true;
    net->be = NULL;
    net->tx_waiting = net->rx_wanted = false;
    net->tx_frames = net->rx_frames = net->tx_bytes = net->rx_bytes = 0;
    net->tx_dropped = net->rx_dropped = 0;
    return virtio_pci_init(&net->vdev, "virtio-net", &virtio_net_ops,
                           NET_FEATURES | (offloads ? VIRTIO_NET_OFFLOADS : 0), sys);
}

void virtio_net_destroy(struct virtio_net *net)
{
    virtio_pci_destroy(&net->vdev);
}

void virtio_net_set_backend(struct virtio_net *net, struct net_backend *be)
{
    virtio_lock(&net->vdev);
    net->be = be;
    virtio_unlock(&net->vdev);
}

/* ---- snapshots ---- */

int virtio_net_save(const struct virtio_net *net, struct state_out *out)
{
    state_put_bytes(out, "mac", net->mac, 6);
    state_put_bool(out, "link-up", net->link_up);
    return virtio_pci_save(&net->vdev, out);
}

int virtio_net_restore(struct virtio_net *net, struct state_in *in)
{
    uint8_t mac[6];
    bool link_up;

    state_get_bytes(in, "mac", mac, 6);
    state_get_bool(in, "link-up", &link_up);
    if (!in->err && memcmp(mac, net->mac, 6))
        state_invalid(in, "property 'mac' %02x:%02x:%02x:%02x:%02x:%02x is not this NIC's", mac[0],
                      mac[1], mac[2], mac[3], mac[4], mac[5]);
    if (in->err || virtio_pci_restore(&net->vdev, in, NULL))
        return in->err;
    virtio_lock(&net->vdev);
    net->link_up = link_up;
    net->tx_waiting = false; /* a new backend, with room */
    net->tun_offload = ~0u;  /* and its offloads not told yet */
    net_apply_offload(net);
    virtio_unlock(&net->vdev);
    return 0;
}

/* ---- the machine's NIC (hwdev.h), one per --net ---- */

struct virtio_net_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    unsigned index;
    struct net_backend *be;
    struct virtio_net net;
};

static int net_port_receive(void *dev, const void *frame, size_t len)
{
    return virtio_net_receive(dev, frame, len);
}

static void net_port_tx_ready(void *dev)
{
    virtio_net_tx_ready(dev);
}

/* Before KVM: the backend (hostfwd ports bound, the tap checked). */
static int net_hw_create(struct hwdev *hw, unsigned index, struct errbuf *eb)
{
    struct virtio_net_hw *d = container_of(hw, struct virtio_net_hw, hw);

    d->index = index;
    snprintf(hw->name, sizeof(hw->name), "net%u", index);
    return net_backend_create(&hw->host->cfg->nets[index], &d->be, eb);
}

static int net_hw_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct virtio_net_hw *d = container_of(hw, struct virtio_net_hw, hw);
    struct virtio_sys sys = virtio_sys_of(hw->host);
    uint8_t mac[6];

    sys.name = hw->name; /* "net0": events and the trace say which NIC */

    net_spec_mac(&hw->host->cfg->nets[d->index], d->index, mac);
    int ret = virtio_net_init(&d->net, &sys, mac, d->be->vnet_hdr);
    if (ret)
        return err_set(eb, ret, "cannot set up virtio-net: %s", strerror(-ret));
    d->net.port = (struct net_port){
        .dev = &d->net, .receive = net_port_receive, .tx_ready = net_port_tx_ready};
    ret = d->be->ops->attach(d->be, hw->host->base, &d->net.port, eb);
    if (ret) {
        virtio_net_destroy(&d->net);
        return ret;
    }
    virtio_net_set_backend(&d->net, d->be);
    return virtio_pci_plug(&d->net.vdev, hw->host, "virtio-net", eb);
}

static struct virtio_net *net_of(struct hwdev *hw)
{
    return &container_of(hw, struct virtio_net_hw, hw)->net;
}

static void net_hw_pause(struct hwdev *hw)
{
    virtio_pci_pause(&net_of(hw)->vdev);
}

/* The resume's look at receiveq hands frames kept while paused on. */
static void net_hw_resume(struct hwdev *hw)
{
    virtio_pci_resume(&net_of(hw)->vdev);
}

static int net_hw_save(struct hwdev *hw, struct state_out *out)
{
    return virtio_net_save(net_of(hw), out);
}

static int net_hw_restore(struct hwdev *hw, struct state_in *in)
{
    return virtio_net_restore(net_of(hw), in);
}

static void net_hw_stats(struct hwdev *hw, struct hwdev_stats *st)
{
    struct virtio_net_hw *d = container_of(hw, struct virtio_net_hw, hw);
    if (!hw->realized)
        return;
    virtio_stats(&d->net.vdev, st);
    st->net_dropped +=
        d->net.tx_dropped + d->net.rx_dropped + (d->be ? d->be->rx_dropped + d->be->tx_dropped : 0);
}

static void net_hw_destroy(struct hwdev *hw)
{
    struct virtio_net_hw *d = container_of(hw, struct virtio_net_hw, hw);
    if (hw->realized)
        virtio_net_destroy(&d->net);
    if (d->be)
        d->be->ops->destroy(d->be);
}

const struct hwdev_ops virtio_net_pci = {
    .type = "virtio-net",
    .compatible = VIRTIO_NET_STATE_COMPATIBLE,
    .size = sizeof(struct virtio_net_hw),
    .name = "net",
    .create = net_hw_create,
    .realize = net_hw_realize,
    .pause = net_hw_pause,
    .resume = net_hw_resume,
    .save = net_hw_save,
    .restore = net_hw_restore,
    .stats = net_hw_stats,
    .destroy = net_hw_destroy,
};
