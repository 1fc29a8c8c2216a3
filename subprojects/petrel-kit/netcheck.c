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
 * skipped, at most VNET_MAX_SKIP of them (kit/vnet.h). Prints
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
#include "kit/vnet.h"

#define NET_QSIZE   16
#define NET_RX_BUFS 8

static struct pci_func funcs[PCI_MAX_FUNCS];
static struct virtio_dev net;
static struct acpi_info acpi;
static uint8_t rx_bufs[NET_RX_BUFS][2048];
static uint8_t tx_buf[VNET_HDR + VNET_MAX_FRAME];
static uint8_t frame[VNET_HDR + VNET_MAX_FRAME]; /* a received frame, header first, reassembled */
static struct vnet vn = {
    .dev = &net, .rx = &rx_bufs[0][0], .nbufs = NET_RX_BUFS, .tx = tx_buf, .frame = frame};

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

/* DHCPDISCOVER from 0.0.0.0:68 to 255.255.255.255:67; the OFFER's yiaddr and server. */
static int dhcp(uint8_t yiaddr[4], uint8_t server[4])
{
    static uint8_t f[14 + 20 + 8 + 244];
    const uint32_t xid = 0x7e7a1c0d;

    memset(f, 0, sizeof(f));
    memset(f, 0xff, 6);
    memcpy(f + 6, vn.mac, 6);
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
    memcpy(b + 28, vn.mac, 6);
    b[236] = 99, b[237] = 130, b[238] = 83, b[239] = 99; /* the magic cookie */
    b[240] = 53, b[241] = 1, b[242] = 1;                 /* DHCPDISCOVER */
    b[243] = 255;
    if (vnet_send(&vn, f, sizeof(f)))
        return fail(net.error);
    for (unsigned skip = 0; skip < VNET_MAX_SKIP; skip++) {
        int n = vnet_recv(&vn);
        if (n < 0)
            return fail(net.error);
        const uint8_t *e = frame + VNET_HDR, *rip = e + 14;
        if (n < VNET_HDR + 14 + 20 + 8 + 240 || get16(e + 12) != 0x0800 || rip[9] != 17)
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
    unsigned long timeout = 20000, poweroff = 1, mrg = 0, use_dhcp = 1, bufsize = 2048;
    uint8_t gw[6], yiaddr[4], server[4], status[2];

    if (option("netcheck.timeout", 0, 60000, &timeout) ||
        option("netcheck.poweroff", 0, 1, &poweroff) || option("netcheck.mrg", 0, 1, &mrg) ||
        option("netcheck.bufsize", 64, 2048, &bufsize) ||
        option("netcheck.dhcp", 0, 1, &use_dhcp) || option_ip("netcheck.ip", ip_guest) ||
        option_ip("netcheck.gw", ip_gw))
        return 2;
    if (!mrg && bufsize < VNET_HDR + VNET_MAX_FRAME) {
        puts("netcheck: bad netcheck.bufsize (without mrg a buffer holds a whole frame)");
        return 2;
    }
    vn.bufsize = (unsigned)bufsize;
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
    uint64_t want = VIRTIO_BIT(VNET_F_MAC) | VIRTIO_BIT(VNET_F_STATUS) |
                    (mrg ? VIRTIO_BIT(VNET_F_MRG_RXBUF) : 0);
    if (virtio_start(&net, want) || virtio_queue_setup(&net, VNET_RX, NET_QSIZE) ||
        virtio_queue_setup(&net, VNET_TX, NET_QSIZE))
        return fail(net.error);
    if ((net.accepted & want) != want) {
        printf("netcheck: FAIL the device does not offer 0x%llx\n",
               (unsigned long long)(want & ~net.accepted));
        return 1;
    }
    if (virtio_config_read(&net, 0, vn.mac, 6) || virtio_config_read(&net, 6, status, 2))
        return fail(net.error);
    for (unsigned i = 0; i < NET_RX_BUFS; i++)
        vnet_rx_post(&vn, i);
    if (virtio_driver_ok(&net))
        return fail(net.error);
    virtq_kick(&net.vq[VNET_RX]);
    printf("netcheck: virtio-net %02x:%02x.%x", PCI_BDF_BUS(f->bdf), PCI_BDF_DEV(f->bdf),
           PCI_BDF_FN(f->bdf));
    print_mac(" mac ", vn.mac);
    printf(" link %s features 0x%llx accepted 0x%llx\n", status[0] & 1 ? "up" : "down",
           (unsigned long long)net.features, (unsigned long long)net.accepted);
    if (!(status[0] & 1))
        return fail("the link is down");

    if (vnet_arp(&vn, ip_guest, ip_gw, gw))
        return fail(net.error);
    printf("netcheck: arp %u.%u.%u.%u", ip_gw[0], ip_gw[1], ip_gw[2], ip_gw[3]);
    print_mac(" is at ", gw);
    printf("\n");
    if (use_dhcp) {
        if (dhcp(yiaddr, server))
            return 1;
        printf("netcheck: dhcp offer %u.%u.%u.%u from %u.%u.%u.%u\n", yiaddr[0], yiaddr[1],
               yiaddr[2], yiaddr[3], server[0], server[1], server[2], server[3]);
    }
    printf("netcheck: PASS frames sent %u received %u\n", vn.sent, vn.received);
    virtio_reset(&net);

    if (!poweroff)
        return 0;
    if (acpi_init(&acpi) < 0 || !acpi_can_poweroff(&acpi))
        return fail("no ACPI poweroff");
    puts("netcheck: poweroff");
    acpi_poweroff(&acpi);
    return fail("poweroff: the machine is still on");
}
