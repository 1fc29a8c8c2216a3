/*
 * A NIC's configuration (--net) and the interface between virtio-net and
 * the host side of its link, a backend (net_slirp.c: user-mode networking
 * through libslirp; net_tap.c: an existing tap device).
 *
 * Frames cross the interface whole, Ethernet from the destination MAC on, no
 * FCS; without the virtio-net header, unless the backend sets vnet_hdr (a tap
 * with IFF_VNET_HDR): then each frame comes after the 12-byte struct
 * virtio_net_hdr, checksum and GSO offloads included, both ways.
 *
 * Guest to host: the device calls be->ops->send() on the loop with its lock
 * held. The backend takes the frame (copies it or sends it on; 0), drops it
 * (counts it; 0) or says it is full (-EAGAIN): then the device stops taking
 * transmit buffers until the backend calls port->tx_ready(). A backend must
 * never call back into the device from send() (the lock is held): frames it
 * makes in answer wait for a deferred event.
 *
 * Host to guest: the backend calls port->receive() on the loop without the
 * device lock. 1: taken; 0: no room in the posted receive buffers, keep it
 * and wait for be->ops->rx_room(), which the device calls (on the loop, with
 * its lock held: defer the retry) when the driver posts buffers; -errno: the
 * frame is dropped (the link is not up, or the frame can never fit), and the
 * device counted it.
 */
#ifndef PETREL_NET_H
#define PETREL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/util.h"

#define NET_MAX_NICS    4 /* --net options per VM */
#define NET_MAX_HOSTFWD 8 /* hostfwd= rules per --net user */
#define NET_SPEC_MAX    512
#define NET_MAX_FRAME   65562 /* the largest frame either side passes (64 KiB GSO, headers) */
#define NET_ETH_MIN     14    /* an Ethernet header */
#define NET_IFNAME_MAX  16    /* IFNAMSIZ */
#define NET_DEFAULT_MAC0                                                                           \
    {                                                                                              \
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56                                                         \
    } /* + the NIC's index, as QEMU */

enum net_kind {
    NET_USER, /* libslirp: 10.0.2.0/24, the host at 10.0.2.2, DNS at 10.0.2.3 */
    NET_TAP,  /* an existing tap device */
};

/* hostfwd=tcp:HOSTADDR:HOSTPORT-:GUESTPORT (or udp:). */
struct net_hostfwd {
    bool udp;
    uint32_t host_addr; /* network byte order; 0: any */
    uint16_t host_port, guest_port;
};

/* One --net. */
struct net_spec {
    char text[NET_SPEC_MAX]; /* the argument as given: what a snapshot keeps */
    enum net_kind kind;
    char tap[NET_IFNAME_MAX]; /* NET_TAP: the device's name */
    uint8_t mac[6];
    bool mac_given; /* mac= (else the default for the NIC's index) */
    struct net_hostfwd fwd[NET_MAX_HOSTFWD];
    unsigned nr_fwd;
};

/*
 * Parses a --net argument: user[,hostfwd=...]...[,mac=M] or
 * tap=NAME[,mac=M]. 0, or -EINVAL with one line in eb naming what is wrong.
 */
int net_spec_parse(const char *arg, struct net_spec *spec, struct errbuf *eb) MUST_CHECK;

/* The MAC of the NIC at index (the spec's, or 52:54:00:12:34:56 + index). */
void net_spec_mac(const struct net_spec *spec, unsigned index, uint8_t mac[6]);

/* The device as a backend sees it (filled by virtio-net). */
struct net_port {
    void *dev;
    int (*receive)(void *dev, const void *frame, size_t len);
    void (*tx_ready)(void *dev); /* on the loop, without the device lock */
};

struct net_backend;
struct event_base;

struct net_backend_ops {
    /* A frame from the guest (see above). 0 or -EAGAIN. */
    int (*send)(struct net_backend *be, const void *frame, size_t len);
    /* The driver posted receive buffers (the device lock held: defer). */
    void (*rx_room)(struct net_backend *be);
    /* vnet_hdr backends: the offloads the guest takes (TUN_F_*), from now on. May be NULL. */
    int (*set_offload)(struct net_backend *be, unsigned tun_flags);
    /* Starts working on the loop, delivering to port. 0 or -errno (eb says why). */
    int (*attach)(struct net_backend *be, struct event_base *base, const struct net_port *port,
                  struct errbuf *eb);
    void (*destroy)(struct net_backend *be);
};

struct net_backend {
    const struct net_backend_ops *ops;
    bool vnet_hdr;       /* frames carry struct virtio_net_hdr (above) */
    uint64_t rx_dropped; /* frames for the guest the backend had to drop (counter) */
    uint64_t tx_dropped; /* frames from the guest the host refused (a bad GSO header, link down) */
};

/*
 * Makes the backend a spec asks for, before KVM is touched: binds hostfwd
 * ports, checks and opens a tap. 0, or -errno with one line in eb.
 */
int net_backend_create(const struct net_spec *spec, struct net_backend **be,
                       struct errbuf *eb) MUST_CHECK;

/* The user backend (net_slirp.c). */
int net_slirp_create(const struct net_spec *spec, struct net_backend **be,
                     struct errbuf *eb) MUST_CHECK;

/* The tap backend (net_tap.c). */
int net_tap_create(const struct net_spec *spec, struct net_backend **be,
                   struct errbuf *eb) MUST_CHECK;

#endif
