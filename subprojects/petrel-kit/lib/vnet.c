/* Frames over virtio-net for kit programs (vnet.h). */
#include "kit/vnet.h"

#include "kit/printf.h"
#include "kit/string.h"

#include <stdarg.h>

static int vnet_fail(struct vnet *n, const char *fmt, ...) KIT_PRINTF(2, 3);
static int vnet_fail(struct vnet *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(n->dev->error, sizeof(n->dev->error), fmt, ap);
    va_end(ap);
    return -1;
}

void vnet_rx_post(struct vnet *n, unsigned i)
{
    struct virtq *vq = &n->dev->vq[VNET_RX];

    virtq_desc_set(vq, i, (uint64_t)(uintptr_t)(n->rx + (uint64_t)i * n->bufsize), n->bufsize,
                   VIRTQ_DESC_F_WRITE, 0);
    virtq_publish(vq, (uint16_t)i);
}

int vnet_send(struct vnet *n, const uint8_t *f, unsigned len)
{
    struct virtq *vq = &n->dev->vq[VNET_TX];
    struct virtq_used_elem e;

    if (len > VNET_MAX_FRAME)
        return vnet_fail(n, "transmit: a frame of %u bytes", len);
    memset(n->tx, 0, VNET_HDR);
    memcpy(n->tx + VNET_HDR, f, len);
    virtq_desc_set(vq, 0, (uint64_t)(uintptr_t)n->tx, VNET_HDR + len, 0, 0);
    virtq_publish(vq, 0);
    virtq_kick(vq);
    if (virtq_wait(vq, &e)) {
        char why[sizeof(n->dev->error)];
        memcpy(why, n->dev->error, sizeof(why));
        return vnet_fail(n, "transmit: %s", why);
    }
    if (e.id != 0)
        return vnet_fail(n, "transmit: used id %u for head 0", e.id);
    n->sent++;
    return 0;
}

int vnet_recv(struct vnet *n)
{
    struct virtq *vq = &n->dev->vq[VNET_RX];
    struct virtq_used_elem e;
    unsigned len = 0, nbufs = 1;

    for (unsigned k = 0; k < nbufs; k++) {
        if (virtq_wait(vq, &e)) {
            char why[sizeof(n->dev->error)];
            memcpy(why, n->dev->error, sizeof(why));
            return vnet_fail(n, "receive: %s", why);
        }
        if (e.id >= n->nbufs || e.len > n->bufsize || (k == 0 && e.len < VNET_HDR) ||
            len + e.len > VNET_HDR + VNET_MAX_FRAME)
            return vnet_fail(n, "receive: used id %u len %u", e.id, e.len);
        memcpy(n->frame + len, n->rx + (uint64_t)e.id * n->bufsize, e.len);
        len += e.len;
        if (k == 0) {
            nbufs = n->frame[10] | n->frame[11] << 8;
            if (nbufs < 1 || nbufs > n->nbufs ||
                (!(n->dev->accepted & VIRTIO_BIT(VNET_F_MRG_RXBUF)) && nbufs != 1))
                return vnet_fail(n, "receive: num_buffers %u", nbufs);
        }
        vnet_rx_post(n, e.id);
        virtq_kick(vq);
    }
    n->received++;
    return (int)len;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

int vnet_arp_request(struct vnet *n, const uint8_t ip[4], const uint8_t target[4])
{
    uint8_t f[60] = {0};

    memset(f, 0xff, 6);
    memcpy(f + 6, n->mac, 6);
    put16(f + 12, 0x0806);
    put16(f + 14, 1);      /* Ethernet */
    put16(f + 16, 0x0800); /* IPv4 */
    f[18] = 6, f[19] = 4;
    put16(f + 20, 1); /* request */
    memcpy(f + 22, n->mac, 6);
    memcpy(f + 28, ip, 4);
    memcpy(f + 38, target, 4);
    return vnet_send(n, f, sizeof(f));
}

int vnet_arp(struct vnet *n, const uint8_t ip[4], const uint8_t target[4], uint8_t who[6])
{
    if (vnet_arp_request(n, ip, target))
        return -1;
    for (unsigned skip = 0; skip < VNET_MAX_SKIP; skip++) {
        int len = vnet_recv(n);
        if (len < 0)
            return -1;
        const uint8_t *e = n->frame + VNET_HDR;
        if (len < VNET_HDR + 42 || get16(e + 12) != 0x0806 || get16(e + 20) != 2 ||
            memcmp(e + 28, target, 4) || memcmp(e + 32, n->mac, 6))
            continue;
        memcpy(who, e + 22, 6);
        return 0;
    }
    return vnet_fail(n, "no ARP reply among the frames received");
}
