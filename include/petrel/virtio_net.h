/*
 * virtio-net (virtio 1.2, 5.1): one receive queue and one transmit queue on
 * the virtio-pci transport, a MAC in the configuration, link status, and
 * VIRTIO_NET_F_MRG_RXBUF. The host side of the link is a backend (net.h).
 *
 * Every frame carries struct virtio_net_hdr (12 bytes with VERSION_1, 5.1.6).
 * With a user backend no offload is offered: transmit reads the header and
 * drops it, receive writes one with only num_buffers. With a tap (vnet_hdr)
 * the checksum and TSO offloads are offered and the header goes through both
 * ways: a transmit header must ask only for what was negotiated (else the
 * frame is dropped and counted), the tap is told with TUNSETOFFLOAD what the
 * driver takes (GUEST_CSUM, GUEST_TSO4/6) once it is DRIVER_OK, and a received
 * header asking for more than that is dropped. Receive: the device writes a
 * header with num_buffers and the frame; without MRG_RXBUF a frame takes one chain and a frame
 * larger than the chain is dropped (counted), with it a frame takes as many chains as it needs, all
 * pushed at once (virtq_push_many()) so the driver never sees part of one.
 *
 * Back-pressure: when the posted receive buffers cannot hold the next frame,
 * receive returns 0 and the backend keeps it until the driver posts more
 * (rx_room); when the backend cannot take a frame (-EAGAIN), the device gives
 * the chain back (virtq_unpop()) and stops until tx_ready. Frames are dropped
 * (and counted in rx_dropped, tx_dropped) only where the protocol leaves no
 * choice: the link is not up yet, a frame is too large for the buffers a
 * driver without MRG_RXBUF posted, or with it for all the buffers its queue
 * can hold at once (every descriptor posted: waiting would hold the queue
 * until a reset), or too large or too small to be a frame.
 *
 * Interrupts: the MSI-X table has two entries, configuration and one for both
 * queues, so a driver shares one vector between receive and transmit (Linux's
 * fallback when it cannot have a vector per queue). A transmit completion and
 * the frame that answers it (a TCP ack from slirp) usually land in the same
 * pass of the loop: one interrupt instead of two, about half the interrupt
 * injections, EOI exits and interrupt-window exits per frame of a guest's
 * request/response traffic (docs/architecture.md, virtio-net).
 *
 * Hostile chains break the queue (DEVICE_NEEDS_RESET), as for virtio-blk: a
 * device-writable buffer on the transmit queue or a chain shorter than the
 * header; a device-readable buffer on the receive queue or a receive chain
 * with no room for the header (with MRG_RXBUF 5.1.6.3.1 forbids it; without,
 * such a chain can never hold a frame). A transmit chain that walks but holds
 * no frame (shorter than an Ethernet header, longer than NET_MAX_FRAME) is
 * used with length 0 and counted in tx_dropped, as a wire drops it. The kit's
 * hostile program (net-*) pins each answer; docs/architecture.md compares
 * them with QEMU's and Firecracker's.
 */
#ifndef PETREL_VIRTIO_NET_H
#define PETREL_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "petrel/net.h"
#include "petrel/virtio.h"

#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_RX         0
#define VIRTIO_NET_TX         1
#define VIRTIO_NET_TX_BUDGET  64 /* transmit chains per queue_notify() call */
#define VIRTIO_NET_HDR_SIZE   12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM       0 /* the device takes partially checksummed frames */
#define VIRTIO_NET_F_GUEST_CSUM 1 /* the driver takes them */
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_HOST_TSO4  11
#define VIRTIO_NET_F_HOST_TSO6  12
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16

/* struct virtio_net_config (5.1.4): mac[6], le16 status, le16 max_virtqueue_pairs. */
#define VIRTIO_NET_CFG_MAC       0
#define VIRTIO_NET_CFG_STATUS    6
#define VIRTIO_NET_CFG_MAX_PAIRS 8
#define VIRTIO_NET_CONFIG_SIZE   10
#define VIRTIO_NET_S_LINK_UP     1

/* struct virtio_net_hdr (5.1.6): flags, gso_type. */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE     0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_ECN      0x80

/* The offloads offered with a vnet_hdr backend (a tap), negotiated, never assumed. */
#define VIRTIO_NET_OFFLOADS                                                                        \
    (1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM |                                 \
     1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 |                           \
     1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_HOST_TSO6)

struct virtio_net {
    struct virtio_dev vdev; /* vdev.pci.dev.lock guards everything below */
    uint8_t mac[6];
    bool link_up;
    struct net_backend *be; /* NULL: frames from the guest are counted and dropped */
    struct net_port port;
    bool offloads;        /* VIRTIO_NET_OFFLOADS offered: frames carry the header to the backend */
    unsigned tun_offload; /* what set_offload() was last told (TUN_F_*), ~0u: nothing yet */
    bool tx_waiting;      /* the backend said -EAGAIN: transmit waits for tx_ready */
    bool rx_wanted;       /* receive found no room: tell the backend when buffers come */

    struct virtq_seg tx_segs[VIRTIO_NET_QUEUE_SIZE];
    struct virtq_seg rx_segs[VIRTIO_NET_QUEUE_SIZE];
    struct virtq_used_elem rx_used[VIRTIO_NET_QUEUE_SIZE];
    uint8_t frame[VIRTIO_NET_HDR_SIZE + NET_MAX_FRAME]; /* one transmitted frame, linear */

    /* Counters. */
    uint64_t tx_frames, rx_frames, tx_bytes, rx_bytes, tx_dropped, rx_dropped;
};

/*
 * Sets up the device with mac, on the transport, link up, no backend yet
 * (virtio_net_set_backend()). offloads: offer VIRTIO_NET_OFFLOADS, for a
 * backend whose frames carry the header (net.h's vnet_hdr). 0 or -errno.
 */
int virtio_net_init(struct virtio_net *net, const struct virtio_sys *sys, const uint8_t mac[6],
                    bool offloads) MUST_CHECK;
void virtio_net_destroy(struct virtio_net *net);

/* The backend the device sends to (before the guest runs). */
void virtio_net_set_backend(struct virtio_net *net, struct net_backend *be);

/* A frame for the guest (the loop, without the lock): net.h's receive. */
int virtio_net_receive(struct virtio_net *net, const void *frame, size_t len);

/* The backend can take frames again (the loop, without the lock). */
void virtio_net_tx_ready(struct virtio_net *net);

/* Link status (VIRTIO_NET_S_LINK_UP), with a configuration interrupt. */
void virtio_net_set_link(struct virtio_net *net, bool up);

/* virtio-net (--net) in the machine table (machine.c). */
extern const struct hwdev_ops virtio_net_pci;

/*
 * Snapshots: besides the transport, the MAC ('mac', which a restore checks
 * against the NIC's: a state is not moved onto another NIC) and the link
 * ('link-up'). No chain is ever held across events (transmit gives a chain
 * back rather than keep it), so nothing of the queues is the device's own.
 * The backend's state is not saved (docs/devices.md): a user backend starts
 * afresh, and the guest's TCP connections through it are lost. v2: two MSI-X
 * vectors (v1 had one per queue: its queue vectors do not fit).
 */
#define VIRTIO_NET_STATE_COMPATIBLE "petrel,virtio-net-v2"

int virtio_net_save(const struct virtio_net *net, struct state_out *out) MUST_CHECK;
int virtio_net_restore(struct virtio_net *net, struct state_in *in) MUST_CHECK;

#endif
