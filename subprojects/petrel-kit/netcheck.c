/*
 * netcheck: finds virtio-net on PCI and talks to the network behind it
 * through the kit's virtio driver (include/kit/virtio.h), written against
 * virtio 1.2, 5.1: receiveq 0 and transmitq 1, each frame after a 12-byte
 * struct virtio_net_hdr (VERSION_1, so num_buffers is always there).
 *
 * Reads the MAC and link status from the configuration, posts receive
 * buffers, then:
 *   - ARP: asks who has 10.0.2.2 (slirp's gateway) from 10.0.2.15, and
 *     waits for the answer;
 *   - DHCP: broadcasts a DHCPDISCOVER and waits for the DHCPOFFER, whose
 *     yiaddr is the address the guest would get.
 * Frames that are not the answer (anything else the network sends) are
 * skipped, at most NET_MAX_SKIP of them. Prints
 *
 *   netcheck: virtio-net <bdf> mac <mac> link <up|down> features 0x<f> accepted 0x<a>
 *   netcheck: arp <gw> is at <mac>
 *   netcheck: dhcp offer <yiaddr> from <server>    (unless netcheck.dhcp=0)
 *   netcheck: PASS frames sent <n> received <n>
 *   netcheck: poweroff
 *
 * and powers off through ACPI. On a failed check "netcheck: FAIL <why>" and
 * exit 1; without virtio-net "netcheck: no virtio-net (1af4:1041)", exit 3.
 *
 * Options: netcheck.ip=a.b.c.d and netcheck.gw=a.b.c.d replace 10.0.2.15 and
 * 10.0.2.2 in the ARP request, netcheck.dhcp=0 leaves DHCP out (a tap's
 * peer is the host's kernel, which answers ARP but runs no DHCP server);
 * netcheck.mrg=1 negotiates VIRTIO_NET_F_MRG_RXBUF (which must then
 * be offered), netcheck.bufsize=<64-2048> the receive buffers' size (2048;
 * with mrg, small buffers make a frame span several),
 * netcheck.timeout=<ms> the longest wait (20000), netcheck.poweroff=0 exits
 * 0 instead. A bad value prints "netcheck: bad <option>" and exits 2.
 */
#include "kit/acpi.h"
#include "kit/cmdline.h"
#include "kit/kit.h"
#include "kit/pci.h"
#include "kit/printf.h"
#include "kit/string.h"
#include "kit/virtio.h"

#define NET_F_MAC       5
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS    16
#define NET_RX          0
#define NET_TX          1
#define NET_QSIZE       16
#define NET_RX_BUFS     8
#define NET_HDR         12
#define NET_MAX_FRAME   1514
#define NET_MAX_SKIP    32

static struct pci_func funcs[PCI_MAX_FUNCS];
static struct virtio_dev net;
static struct acpi_info acpi;
static uint8_t rx_bufs[NET_RX_BUFS][2048];
static uint8_t tx_buf[NET_HDR + NET_MAX_FRAME];
static uint8_t frame[NET_HDR + NET_MAX_FRAME]; /* a received frame, header first, reassembled */
static uint8_t mac[6];
static unsigned long bufsize = 2048;
static unsigned sent, received;

static uint8_t ip_guest[4] = {10, 0, 2, 15}, ip_gw[4] = {10, 0, 2, 2};

/* Option name as a dotted quad into ip (kept if absent). 0, or -1 (said) if malformed. */
static int option_ip(const char *name, uint8_t ip[4])
{
    char v[20];
    unsigned b[4] = {0}, k = 0, digits = 0;

    if (kit_cmdline_get(name, v, sizeof(v)) < 0)
        return 0;
    for (const char *p = v;; p++) {
        if (*p >= '0' && *p <= '9' && digits < 3) {
            b[k] = b[k] * 10 + (unsigned)(*p - '0');
            digits++;
        } else if (((*p == '.' && k < 3) || (!*p && k == 3)) && digits && b[k] < 256) {
            if (!*p)
                break;
            k++;
            digits = 0;
        } else {
            printf("netcheck: bad %s (want a.b.c.d)\n", name);
            return -1;
        }
    }
    for (unsigned i = 0; i < 4; i++)
        ip[i] = (uint8_t)b[i];
    return 0;
}

static int option(const char *name, unsigned long lo, unsigned long hi, unsigned long *v)
{
    int r = kit_cmdline_uint(name, 10, v);

    if (r == -2 || (r == 0 && (*v < lo || *v > hi))) {
        printf("netcheck: bad %s (want %lu-%lu)\n", name, lo, hi);
        return -1;
    }
    return 0;
}

static int fail(const char *why)
{
    printf("netcheck: FAIL %s\n", why);
    return 1;
}

/* Buffer i, one device-writable descriptor i, made available. */
static void rx_post(unsigned i)
{
    struct virtq *vq = &net.vq[NET_RX];
    virtq_desc_set(vq, i, (uint64_t)(uintptr_t)rx_bufs[i], (uint32_t)bufsize, VIRTQ_DESC_F_WRITE,
                   0);
    virtq_publish(vq, (uint16_t)i);
}

/* Sends a frame of len bytes (after a zero header). 0 or -1 (reported). */
static int send(const uint8_t *f, unsigned len)
{
    struct virtq *vq = &net.vq[NET_TX];
    struct virtq_used_elem e;

    memset(tx_buf, 0, NET_HDR);
    memcpy(tx_buf + NET_HDR, f, len);
    virtq_desc_set(vq, 0, (uint64_t)(uintptr_t)tx_buf, NET_HDR + len, 0, 0);
    virtq_publish(vq, 0);
    virtq_kick(vq);
    if (virtq_wait(vq, &e)) {
        printf("netcheck: FAIL transmit: %s\n", net.error);
        return -1;
    }
    if (e.id != 0) {
        printf("netcheck: FAIL transmit: used id %u for head 0\n", e.id);
        return -1;
    }
    sent++;
    return 0;
}

/*
 * The next frame into frame[] (header first), reassembled over num_buffers
 * buffers, each posted again. Its length with the header, or -1 (reported).
 */
static int recv(void)
{
    struct virtq *vq = &net.vq[NET_RX];
    struct virtq_used_elem e;
    unsigned len = 0, nbufs = 1;

    for (unsigned k = 0; k < nbufs; k++) {
        if (virtq_wait(vq, &e)) {
            printf("netcheck: FAIL receive: %s\n", net.error);
            return -1;
        }
        if (e.id >= NET_RX_BUFS || e.len > bufsize || (k == 0 && e.len < NET_HDR) ||
            len + e.len > sizeof(frame)) {
            printf("netcheck: FAIL receive: used id %u len %u\n", e.id, e.len);
            return -1;
        }
        memcpy(frame + len, rx_bufs[e.id], e.len);
        len += e.len;
        if (k == 0) {
            nbufs = frame[10] | frame[11] << 8;
            if (nbufs < 1 || nbufs > NET_RX_BUFS ||
                (!(net.accepted & VIRTIO_BIT(NET_F_MRG_RXBUF)) && nbufs != 1)) {
                printf("netcheck: FAIL receive: num_buffers %u\n", nbufs);
                return -1;
            }
        }
        rx_post(e.id);
        virtq_kick(vq);
    }
    received++;
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

/* The IPv4 header checksum (RFC 791) over n bytes. */
static unsigned ip_csum(const uint8_t *p, unsigned n)
{
    uint32_t s = 0;
    for (unsigned i = 0; i < n; i += 2)
        s += get16(p + i);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return ~s & 0xffff;
}

static void print_mac(const char *before, const uint8_t *m)
{
    printf("%s%02x:%02x:%02x:%02x:%02x:%02x", before, m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* ARP: who has ip_gw (10.0.2.2)? The answer's sender hardware address, into gw. */
static int arp(uint8_t gw[6])
{
    uint8_t f[60] = {0};

    memset(f, 0xff, 6);
    memcpy(f + 6, mac, 6);
    put16(f + 12, 0x0806);
    put16(f + 14, 1);      /* Ethernet */
    put16(f + 16, 0x0800); /* IPv4 */
    f[18] = 6, f[19] = 4;
    put16(f + 20, 1); /* request */
    memcpy(f + 22, mac, 6);
    memcpy(f + 28, ip_guest, 4);
    memcpy(f + 38, ip_gw, 4);
    if (send(f, sizeof(f)))
        return -1;
    for (unsigned skip = 0; skip < NET_MAX_SKIP; skip++) {
        int n = recv();
        if (n < 0)
            return -1;
        const uint8_t *e = frame + NET_HDR;
        if (n < NET_HDR + 42 || get16(e + 12) != 0x0806 || get16(e + 20) != 2 ||
            memcmp(e + 28, ip_gw, 4) || memcmp(e + 32, mac, 6))
            continue;
        memcpy(gw, e + 22, 6);
        return 0;
    }
    return fail("no ARP reply among the frames received");
}

/* DHCPDISCOVER from 0.0.0.0:68 to 255.255.255.255:67; the OFFER's yiaddr and server. */
static int dhcp(uint8_t yiaddr[4], uint8_t server[4])
{
    static uint8_t f[14 + 20 + 8 + 244];
    const uint32_t xid = 0x7e7a1c0d;

    memset(f, 0, sizeof(f));
    memset(f, 0xff, 6);
    memcpy(f + 6, mac, 6);
    put16(f + 12, 0x0800);
    uint8_t *ip = f + 14, *udp = ip + 20, *b = udp + 8;
    ip[0] = 0x45;
    put16(ip + 2, 20 + 8 + 244);
    ip[8] = 64; /* TTL */
    ip[9] = 17; /* UDP */
    memset(ip + 16, 0xff, 4);
    put16(ip + 10, ip_csum(ip, 20));
    put16(udp, 68);
    put16(udp + 2, 67);
    put16(udp + 4, 8 + 244); /* no UDP checksum (0) */
    b[0] = 1, b[1] = 1, b[2] = 6;
    b[4] = (uint8_t)(xid >> 24), b[5] = (uint8_t)(xid >> 16), b[6] = (uint8_t)(xid >> 8);
    b[7] = (uint8_t)xid;
    memcpy(b + 28, mac, 6);
    b[236] = 99, b[237] = 130, b[238] = 83, b[239] = 99; /* the magic cookie */
    b[240] = 53, b[241] = 1, b[242] = 1;                 /* DHCPDISCOVER */
    b[243] = 255;
    if (send(f, sizeof(f)))
        return -1;
    for (unsigned skip = 0; skip < NET_MAX_SKIP; skip++) {
        int n = recv();
        if (n < 0)
            return -1;
        const uint8_t *e = frame + NET_HDR, *rip = e + 14;
        if (n < NET_HDR + 14 + 20 + 8 + 240 || get16(e + 12) != 0x0800 || rip[9] != 17)
            continue;
        const uint8_t *rudp = rip + 4 * (rip[0] & 0xf), *rb = rudp + 8;
        if (rb + 240 > frame + n || get16(rudp) != 67 || get16(rudp + 2) != 68 || rb[0] != 2 ||
            memcmp(rb + 4, b + 4, 4))
            continue;
        memcpy(yiaddr, rb + 16, 4);
        memcpy(server, rip + 12, 4);
        return 0;
    }
    return fail("no DHCPOFFER among the frames received");
}

int kit_main(void)
{
    unsigned long timeout = 20000, poweroff = 1, mrg = 0, use_dhcp = 1;
    uint8_t gw[6], yiaddr[4], server[4], status[2];

    if (option("netcheck.timeout", 0, 60000, &timeout) ||
        option("netcheck.poweroff", 0, 1, &poweroff) || option("netcheck.mrg", 0, 1, &mrg) ||
        option("netcheck.bufsize", 64, 2048, &bufsize) ||
        option("netcheck.dhcp", 0, 1, &use_dhcp) || option_ip("netcheck.ip", ip_guest) ||
        option_ip("netcheck.gw", ip_gw))
        return 2;
    if (!mrg && bufsize < NET_HDR + NET_MAX_FRAME) {
        puts("netcheck: bad netcheck.bufsize (without mrg a buffer holds a whole frame)");
        return 2;
    }
    unsigned n = pci_scan(funcs, PCI_MAX_FUNCS);
    int found = pci_next(funcs, n, 0, VIRTIO_VENDOR, VIRTIO_PCI_DEVICE(VIRTIO_ID_NET));
    if (found < 0) {
        printf("netcheck: no virtio-net (%04x:%04x)\n", VIRTIO_VENDOR,
               VIRTIO_PCI_DEVICE(VIRTIO_ID_NET));
        return 3;
    }
    const struct pci_func *f = &funcs[found];
    if (virtio_probe(&net, f))
        return fail(net.error);
    net.timeout_ms = (unsigned)timeout;
    uint64_t want =
        VIRTIO_BIT(NET_F_MAC) | VIRTIO_BIT(NET_F_STATUS) | (mrg ? VIRTIO_BIT(NET_F_MRG_RXBUF) : 0);
    if (virtio_start(&net, want) || virtio_queue_setup(&net, NET_RX, NET_QSIZE) ||
        virtio_queue_setup(&net, NET_TX, NET_QSIZE))
        return fail(net.error);
    if ((net.accepted & want) != want) {
        printf("netcheck: FAIL the device does not offer 0x%llx\n",
               (unsigned long long)(want & ~net.accepted));
        return 1;
    }
    if (virtio_config_read(&net, 0, mac, 6) || virtio_config_read(&net, 6, status, 2))
        return fail(net.error);
    for (unsigned i = 0; i < NET_RX_BUFS; i++)
        rx_post(i);
    if (virtio_driver_ok(&net))
        return fail(net.error);
    virtq_kick(&net.vq[NET_RX]);
    printf("netcheck: virtio-net %02x:%02x.%x", PCI_BDF_BUS(f->bdf), PCI_BDF_DEV(f->bdf),
           PCI_BDF_FN(f->bdf));
    print_mac(" mac ", mac);
    printf(" link %s features 0x%llx accepted 0x%llx\n", status[0] & 1 ? "up" : "down",
           (unsigned long long)net.features, (unsigned long long)net.accepted);
    if (!(status[0] & 1))
        return fail("the link is down");

    if (arp(gw))
        return 1;
    printf("netcheck: arp %u.%u.%u.%u", ip_gw[0], ip_gw[1], ip_gw[2], ip_gw[3]);
    print_mac(" is at ", gw);
    printf("\n");
    if (use_dhcp) {
        if (dhcp(yiaddr, server))
            return 1;
        printf("netcheck: dhcp offer %u.%u.%u.%u from %u.%u.%u.%u\n", yiaddr[0], yiaddr[1],
               yiaddr[2], yiaddr[3], server[0], server[1], server[2], server[3]);
    }
    printf("netcheck: PASS frames sent %u received %u\n", sent, received);
    virtio_reset(&net);

    if (!poweroff)
        return 0;
    if (acpi_init(&acpi) < 0 || !acpi_can_poweroff(&acpi))
        return fail("no ACPI poweroff");
    puts("netcheck: poweroff");
    acpi_poweroff(&acpi);
    return fail("poweroff: the machine is still on");
}
