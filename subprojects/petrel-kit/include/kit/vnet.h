/*
 * Frames over virtio-net (virtio 1.2, 5.1) for kit programs, on top of the
 * kit's virtio driver (virtio.h): receiveq 0 and transmitq 1, each frame after
 * a 12-byte struct virtio_net_hdr (VERSION_1, so num_buffers is always there).
 *
 * The program owns the memory: nbufs receive buffers of bufsize bytes each
 * (rx, one after another), a transmit buffer and a frame buffer of
 * VNET_HDR + VNET_MAX_FRAME bytes each. Receive buffer i is always descriptor
 * i of receiveq; a transmitted frame is descriptor 0 of transmitq. A failure
 * returns -1 with a sentence in dev->error ("transmit: ..." or "receive: ...").
 */
#ifndef KIT_VNET_H
#define KIT_VNET_H

#include "kit/virtio.h"

#include <stdint.h>

#define VNET_F_MAC       5
#define VNET_F_MRG_RXBUF 15
#define VNET_F_STATUS    16
#define VNET_RX          0
#define VNET_TX          1
#define VNET_HDR         12
#define VNET_MAX_FRAME   1514
#define VNET_MAX_SKIP    32 /* frames that are not the answer, skipped before giving up */

struct vnet {
    struct virtio_dev *dev;
    uint8_t *rx; /* nbufs buffers of bufsize bytes */
    unsigned nbufs, bufsize;
    uint8_t *tx;    /* VNET_HDR + VNET_MAX_FRAME bytes */
    uint8_t *frame; /* VNET_HDR + VNET_MAX_FRAME: the last frame received, header first */
    uint8_t mac[6];
    unsigned sent, received;
};

/* Receive buffer i as device-writable descriptor i of receiveq, made available (no kick). */
void vnet_rx_post(struct vnet *n, unsigned i);

/* Sends a frame of len bytes after a zero header and waits until it is used. 0 or -1. */
int vnet_send(struct vnet *n, const uint8_t *f, unsigned len);

/*
 * The next frame into n->frame (header first), reassembled over num_buffers
 * buffers (MRG_RXBUF), each posted again. Its length with the header, or -1.
 */
int vnet_recv(struct vnet *n);

/* Sends an ARP request (broadcast): who has target? Tell ip. 0 or -1. */
int vnet_arp_request(struct vnet *n, const uint8_t ip[4], const uint8_t target[4]);

/*
 * ARP: asks who has target from ip, and waits for the answer among at most
 * VNET_MAX_SKIP other frames; its sender's hardware address into who.
 * 0, or -1 (dev->error says why).
 */
int vnet_arp(struct vnet *n, const uint8_t ip[4], const uint8_t target[4], uint8_t who[6]);

#endif
