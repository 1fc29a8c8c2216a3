/*
 * --net tap=NAME: an existing tap device (the admin creates it, as with
 * Firecracker: TUNSETIFF as root would create a missing one, so its
 * existence is checked first with if_nametoindex()). Opened non-blocking
 * with IFF_VNET_HDR and a 12-byte header (TUNSETVNETHDRSZ), so frames carry
 * struct virtio_net_hdr both ways and the device offers checksum and TSO
 * offloads; TUNSETOFFLOAD says which ones the driver takes.
 *
 * On the loop: the fd is read while the device takes frames; a frame it has
 * no room for is kept and reading stops until rx_room (back-pressure: the
 * kernel's tap queue fills and drops, as a NIC's ring would). A write that
 * would block (EAGAIN) makes the device wait and watches the fd for
 * writing; a write the kernel refuses (a bad GSO header, the tap down) is
 * dropped and counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <event2/event.h>
#include <linux/if_tun.h>

#include "petrel/net.h"

#define TAP_HDR        12 /* struct virtio_net_hdr with num_buffers */
#define TAP_READ_BATCH 64 /* frames per read event */

struct net_tap {
    struct net_backend be; /* first */
    int fd;
    char name[NET_IFNAME_MAX];
    struct event_base *base;
    struct net_port port;
    struct event *rd, *wr;
    bool reading;   /* rd is added */
    size_t pending; /* a frame read and not yet taken (bytes in buf), 0: none */
    uint8_t buf[TAP_HDR + NET_MAX_FRAME];
};

static struct net_tap *to_tap(struct net_backend *be)
{
    return container_of(be, struct net_tap, be);
}

static void tap_read(evutil_socket_t fd, short what, void *arg)
{
    struct net_tap *t = arg;
    (void)what;

    for (unsigned i = 0; i < TAP_READ_BATCH; i++) {
        if (!t->pending) {
            ssize_t n = read((int)fd, t->buf, sizeof(t->buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return; /* EAGAIN: drained (other errors: the next event says) */
            if ((size_t)n < TAP_HDR + NET_ETH_MIN) {
                t->be.rx_dropped++;
                continue;
            }
            t->pending = (size_t)n;
        }
        int r = t->port.receive(t->port.dev, t->buf, t->pending);
        if (r == 0) {
            /* No room: stop reading until the driver posts buffers (rx_room). */
            event_del(t->rd);
            t->reading = false;
            return;
        }
        t->pending = 0; /* taken, or dropped and counted by the device */
    }
    /* More may wait: a fresh event, so the loop serves others first. */
    event_active(t->rd, EV_READ, 0);
}

/* The driver posted buffers (device lock held): read again, from the loop. */
static void tap_rx_room(struct net_backend *be)
{
    struct net_tap *t = to_tap(be);

    if (!t->rd || t->reading)
        return;
    t->reading = true;
    event_add(t->rd, NULL);
    event_active(t->rd, EV_READ, 0); /* the kept frame first */
}

static void tap_writable(evutil_socket_t fd, short what, void *arg)
{
    struct net_tap *t = arg;
    (void)fd, (void)what;
    t->port.tx_ready(t->port.dev);
}

static int tap_send(struct net_backend *be, const void *frame, size_t len)
{
    struct net_tap *t = to_tap(be);

    for (;;) {
        ssize_t n = write(t->fd, frame, len);
        if (n >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && t->wr) {
            event_add(t->wr, NULL); /* tx_ready once it takes more */
            return -EAGAIN;
        }
        be->tx_dropped++; /* EINVAL: a header the kernel refuses; EIO: the tap is down */
        return 0;
    }
}

static int tap_set_offload(struct net_backend *be, unsigned flags)
{
    return ioctl(to_tap(be)->fd, TUNSETOFFLOAD, flags) ? -errno : 0;
}

static int tap_attach(struct net_backend *be, struct event_base *base, const struct net_port *port,
                      struct errbuf *eb)
{
    struct net_tap *t = to_tap(be);

    t->port = *port;
    t->base = base;
    t->rd = event_new(base, t->fd, EV_READ | EV_PERSIST, tap_read, t);
    t->wr = event_new(base, t->fd, EV_WRITE, tap_writable, t);
    if (!t->rd || !t->wr || event_add(t->rd, NULL))
        return err_set(eb, -ENOMEM, "--net tap=%s: cannot watch the tap", t->name);
    t->reading = true;
    return 0;
}

static void tap_destroy(struct net_backend *be)
{
    struct net_tap *t = to_tap(be);

    if (t->rd)
        event_free(t->rd);
    if (t->wr)
        event_free(t->wr);
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

static const struct net_backend_ops tap_ops = {
    .send = tap_send,
    .rx_room = tap_rx_room,
    .set_offload = tap_set_offload,
    .attach = tap_attach,
    .destroy = tap_destroy,
};

int net_tap_create(const struct net_spec *spec, struct net_backend **out, struct errbuf *eb)
{
    struct ifreq ifr;
    int hdr = TAP_HDR;

    *out = NULL;
    if (!if_nametoindex(spec->tap))
        return err_set(eb, -ENODEV,
                       "--net tap=%s: there is no such network device (create it first: "
                       "ip tuntap add dev %s mode tap)",
                       spec->tap, spec->tap);
    struct net_tap *t = calloc(1, sizeof(*t));
    if (!t)
        return err_set(eb, -ENOMEM, "--net tap=%s: out of memory", spec->tap);
    t->be.ops = &tap_ops;
    t->be.vnet_hdr = true;
    strcpy(t->name, spec->tap);
    t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (t->fd < 0) {
        int err = errno;
        tap_destroy(&t->be);
        return err_set(eb, -err, "--net tap=%s: cannot open /dev/net/tun: %s", spec->tap,
                       strerror(err));
    }
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, spec->tap);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(t->fd, TUNSETIFF, &ifr)) {
        int err = errno;
        tap_destroy(&t->be);
        const char *why = err == EBUSY    ? "it is in use (another process has it open)"
                          : err == EINVAL ? "it is not a tap device (a tun, or another kind)"
                          : err == EPERM  ? "no permission (the tap's owner, or CAP_NET_ADMIN)"
                                          : strerror(err);
        return err_set(eb, -err, "--net tap=%s: cannot attach: %s", spec->tap, why);
    }
    if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) || ioctl(t->fd, TUNSETOFFLOAD, 0)) {
        int err = errno;
        tap_destroy(&t->be);
        return err_set(eb, -err, "--net tap=%s: cannot set up the virtio-net header: %s", spec->tap,
                       strerror(err));
    }
    *out = &t->be;
    return 0;
}
