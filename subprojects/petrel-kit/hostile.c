/*
 * hostile: a hostile virtio driver. Finds virtio-blk (1af4:1042; the first
 * read-write drive, and a read-only one if there is one), virtio-rng
 * (1af4:1044) and virtio-net (1af4:1041) if present, and submits, one at a
 * time, each malformed request a driver can build through the kit's
 * low-level queue API (virtio.h): descriptors outside RAM, lengths that wrap,
 * chains that loop or outgrow the queue, bad indexes, bad indirect tables,
 * and requests virtio-blk (virtio 1.2, 5.2.6) and virtio-net (5.1.6) must
 * refuse. The device must answer each with an error:
 *
 *   needs reset   it set DEVICE_NEEDS_RESET (a broken queue; 2.1.2) and used nothing
 *   IOERR/UNSUPP  it wrote that status byte and used the chain
 *   dropped       virtio-net's transmitq: it used the chain (length 0), sending nothing
 *                 (the guest cannot see that nothing went: petrel's --stats counts it)
 *
 * Anything else (status OK, no answer within hostile.timeout, a used element
 * that was never submitted) fails the case. After every case the device is
 * reset and started again, and must then work: a read of sectors 0-7 gives
 * back what the program wrote there at the start (virtio-rng: a 64-byte read
 * comes back; virtio-net: an ARP request for 10.0.2.2 is answered, as
 * slirp does behind petrel's --net user). Prints
 *
 *   pci: ...                                     every PCI function (pci_print)
 *   hostile: blk <bdf> capacity <sectors> features 0x<accepted> queue <size> ro|rw
 *   hostile: rng <bdf> features 0x<accepted> queue <size>
 *   hostile: net <bdf> features 0x<accepted> queue <size>
 *   hostile: <case> ok (needs reset|IOERR|UNSUPP|dropped)
 *   hostile: <case> FAIL (<why>)
 *   hostile: <case> skipped (<why>)              the device lacks what it needs
 *   hostile: PASS cases <n> needs-reset <a> ioerr <b> unsupp <c> dropped <d> skipped <s>
 *   hostile: FAIL <f> of <n> cases
 *   hostile: poweroff
 *
 * then powers off through ACPI (FAIL: exit 1; no virtio-blk: exit 3). The
 * cases, in order (rng-* on virtio-rng, net-* on virtio-net, the others on
 * virtio-blk):
 *
 *   desc-outside-ram      a data buffer at 1 TiB
 *   desc-mmio             a data buffer on the device's own BAR (not RAM)
 *   desc-len-wrap         addr + len wraps past 2^64 (into low RAM)
 *   chain-loop            the status descriptor's next points back at the header
 *   chain-too-long        an indirect chain of queue size + 1 descriptors
 *   next-out-of-range     the header's next is the queue size
 *   indirect-outside-ram  an indirect table at 1 TiB
 *   indirect-bad-len      an indirect table of 40 bytes (not a multiple of 16)
 *   indirect-nested       an indirect descriptor inside an indirect table
 *   head-out-of-range     an available ring entry of queue size + 3
 *   avail-idx-jump        the available index moved by queue size + 1
 *   data-over-ring        a device-writable buffer over the used ring
 *   header-short          an 8-byte header
 *   status-readable       a write whose every descriptor is device-readable
 *   readable-after-write  a read whose status descriptor follows the data but is device-readable
 *   in-readable-data      a read whose data buffer is device-readable
 *   data-not-sectors      a read of 100 bytes
 *   out-beyond-capacity   a write of 2 sectors at capacity - 1
 *   in-at-capacity        a read of the sector at the capacity
 *   sector-overflow       a write at sector 2^55 (sector * 512 wraps to 0)
 *   sector-max            a read at sector 2^64 - 1
 *   flush-with-data       a FLUSH carrying a data buffer
 *   unknown-type          request type 0xdead
 *   ro-write              a write to the read-only drive
 *   rng-desc-outside-ram, rng-chain-loop, rng-head-out-of-range, rng-avail-idx-jump,
 *   rng-data-over-ring    the transport's cases on virtio-rng
 *   net-tx-desc-outside-ram, net-tx-chain-loop, net-tx-head-out-of-range,
 *   net-tx-avail-idx-jump, net-tx-data-over-ring
 *                         the transport's cases on virtio-net's transmitq
 *   net-tx-header-short   a transmit chain of 8 bytes, less than the 12-byte header
 *   net-tx-writable       a frame followed by a device-writable buffer
 *   net-tx-runt           a header and 6 bytes: no Ethernet header (dropped)
 *   net-tx-too-big        a header and 65563 bytes, one more than petrel passes (dropped)
 *   net-rings-overlap     receiveq's used ring over its available ring, at queue_enable
 *   net-rx-desc-outside-ram, net-rx-chain-loop, net-rx-head-out-of-range,
 *   net-rx-avail-idx-jump, net-rx-data-over-ring
 *                         the transport's cases on receiveq
 *   net-rx-readable       a receive chain starting with a device-readable buffer
 *   net-rx-header-short   an 8-byte receive buffer, no room for the header, without
 *                         MRG_RXBUF (1.2 5.1.6.3.1 asks 1526 bytes: SHOULD)
 *   net-rx-mrg-header-short
 *                         the same with MRG_RXBUF (there every buffer MUST hold a header)
 *
 * virtio-net takes MRG_RXBUF when offered (as Linux does), but for
 * net-rx-header-short. A receive chain is looked at only when a frame comes
 * for it: each net-rx-* case posts its chain, then sends an ARP request whose
 * answer is that frame. A receive buffer too small for a frame without
 * MRG_RXBUF is not a case: the device drops the frame and keeps the buffer
 * (as QEMU does), which the guest sees only as nothing arriving
 * (tests/unit/test_virtio_net.c has it).
 *
 * Options: hostile.timeout=<ms> each wait's limit (5000; 0: none),
 * hostile.skip=<case>[,<case>...] cases not to run (said as skipped),
 * hostile.poweroff=0 exit 0 instead of powering off. A bad value prints
 * "hostile: bad <option>" and exits 2.
 */
#include "kit/acpi.h"
#include "kit/cmdline.h"
#include "kit/kit.h"
#include "kit/pci.h"
#include "kit/printf.h"
#include "kit/string.h"
#include "kit/virtio.h"
#include "kit/vnet.h"

#include <stdarg.h>

#define SECTOR      512
#define REF_SECTORS 8
#define TIB         (1ull << 40)
#define NET_BUFS    4
#define NET_TOO_BIG 65563 /* one byte more than petrel's largest frame (NET_MAX_FRAME) */

/* virtio-blk (5.2.3, 5.2.4, 5.2.6). */
#define VIRTIO_BLK_F_RO       5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9
#define BLK_CFG_CAPACITY      0
#define VIRTIO_BLK_T_IN       0
#define VIRTIO_BLK_T_OUT      1
#define VIRTIO_BLK_T_FLUSH    4
#define VIRTIO_BLK_S_OK       0
#define VIRTIO_BLK_S_IOERR    1
#define VIRTIO_BLK_S_UNSUPP   2
#define STATUS_UNSET          0xee

enum target { BLK, BLK_RO, RNG, NET };

/* How the device answered a case: A_DROPPED, virtio-net used the chain (length 0) and sent nothing.
 */
enum answer { A_RESET, A_IOERR, A_UNSUPP, A_DROPPED, A_BAD };

struct blk_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

enum kind { D_BLK, D_RNG, D_NET };

struct dev {
    struct virtio_dev v;
    enum kind kind;
    uint64_t want;                  /* features asked at each start */
    uint64_t capacity;              /* virtio-blk */
    uint8_t ref[REF_SECTORS * 512]; /* what sectors 0-7 hold */
};

/* One descriptor of a chain built by chain(): NEXT is added between them. */
struct seg {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
};

struct hcase {
    const char *name;
    enum target on;
    /* Builds, publishes and kicks: 0; 1 skipped (d->v.error says why); -1 failed (why);
     * 2 the device answered "needs reset" already. */
    int (*submit)(struct dev *d);
    unsigned q;       /* the queue that answers */
    uint64_t also;    /* features asked for this case besides d->want (and required) */
    uint64_t without; /* features of d->want not asked for this case */
};

static struct pci_func funcs[PCI_MAX_FUNCS];
static struct dev devs[4];
static struct dev *blk, *blk_ro, *rng, *net; /* the devices found, or NULL */
static struct acpi_info acpi;
static struct blk_hdr hdr;
static volatile uint8_t status;
static uint8_t data[REF_SECTORS * SECTOR] __attribute__((aligned(4096)));
static struct virtq_desc itable[KIT_VIRTQ_MAX + 2] __attribute__((aligned(16)));
static struct virtq_desc itable2[4] __attribute__((aligned(16)));
static uint8_t net_rx[NET_BUFS][2048];
static uint8_t net_tx[VNET_HDR + VNET_MAX_FRAME];
static uint8_t net_frame[VNET_HDR + VNET_MAX_FRAME];
static struct vnet vn = {
    .rx = &net_rx[0][0], .nbufs = NET_BUFS, .bufsize = 2048, .tx = net_tx, .frame = net_frame};
static const uint8_t ip_guest[4] = {10, 0, 2, 15}, ip_gw[4] = {10, 0, 2, 2};
static char skip[512];
static char why[160];

static uint64_t addr_of(const volatile void *p)
{
    return (uint64_t)(uintptr_t)p;
}

static int bad(const char *fmt, ...) KIT_PRINTF(1, 2);
static int bad(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return -1;
}

/* Writes segs[0, n) as descriptors first, first + 1, ... chained with NEXT. */
static void chain(struct virtq *vq, unsigned first, const struct seg *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        virtq_desc_set(vq, first + i, s[i].addr, s[i].len,
                       (uint16_t)(s[i].flags | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
                       (uint16_t)(first + i + 1));
}

static void itable_set(struct virtq_desc *t, unsigned i, uint64_t addr, uint32_t len,
                       uint16_t flags, uint16_t next)
{
    t[i].addr = addr;
    t[i].len = len;
    t[i].flags = flags;
    t[i].next = next;
}

static void set_hdr(uint32_t type, uint64_t sector)
{
    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    status = STATUS_UNSET;
}

/* Publishes head 0 on queue 0 and kicks. */
static int go(struct dev *d)
{
    virtq_publish(&d->v.vq[0], 0);
    virtq_kick(&d->v.vq[0]);
    return 0;
}

/* A block request: header, one data buffer (dflags), status; any field may be hostile. */
static int blk_req3(struct dev *d, uint32_t type, uint64_t sector, uint64_t daddr, uint32_t dlen,
                    uint16_t dflags)
{
    struct seg s[3] = {{addr_of(&hdr), sizeof(hdr), 0},
                       {daddr, dlen, dflags},
                       {addr_of(&status), 1, VIRTQ_DESC_F_WRITE}};

    set_hdr(type, sector);
    chain(&d->v.vq[0], 0, s, 3);
    return go(d);
}

static int need_indirect(struct dev *d)
{
    if (d->v.accepted & VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC))
        return 0;
    snprintf(d->v.error, sizeof(d->v.error), "no VIRTIO_F_INDIRECT_DESC");
    return 1;
}

/* ---- the cases ---- */

static int c_desc_outside_ram(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_IN, 0, TIB, SECTOR, VIRTQ_DESC_F_WRITE);
}

static int c_desc_mmio(struct dev *d)
{
    /* The device's configuration area: MMIO, not RAM, and harmless if written. */
    return blk_req3(d, VIRTIO_BLK_T_IN, 0, d->v.device & ~0xfffull, SECTOR, VIRTQ_DESC_F_WRITE);
}

static int c_desc_len_wrap(struct dev *d)
{
    /* 0xfffffffffffff000 + 0x2000 wraps to 0x1000: low RAM if the sum is trusted. */
    return blk_req3(d, VIRTIO_BLK_T_IN, 0, 0xfffffffffffff000ull, 0x2000, VIRTQ_DESC_F_WRITE);
}

static int c_chain_loop(struct dev *d)
{
    struct virtq *vq = &d->v.vq[0];

    set_hdr(VIRTIO_BLK_T_IN, 0);
    virtq_desc_set(vq, 0, addr_of(&hdr), sizeof(hdr), VIRTQ_DESC_F_NEXT, 1);
    virtq_desc_set(vq, 1, addr_of(data), SECTOR, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    virtq_desc_set(vq, 2, addr_of(&status), 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
    return go(d);
}

static int c_chain_too_long(struct dev *d)
{
    struct virtq *vq = &d->v.vq[0];
    unsigned n = vq->size + 1u; /* descriptors: header, n - 2 sectors, status */

    if (need_indirect(d))
        return 1;
    set_hdr(VIRTIO_BLK_T_IN, 0);
    itable_set(itable, 0, addr_of(&hdr), sizeof(hdr), VIRTQ_DESC_F_NEXT, 1);
    for (unsigned i = 1; i + 1 < n; i++)
        itable_set(itable, i, addr_of(data), SECTOR, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
                   (uint16_t)(i + 1));
    itable_set(itable, n - 1, addr_of(&status), 1, VIRTQ_DESC_F_WRITE, 0);
    virtq_desc_set(vq, 0, addr_of(itable), n * 16, VIRTQ_DESC_F_INDIRECT, 0);
    return go(d);
}

static int c_next_out_of_range(struct dev *d)
{
    struct virtq *vq = &d->v.vq[0];

    set_hdr(VIRTIO_BLK_T_IN, 0);
    virtq_desc_set(vq, 0, addr_of(&hdr), sizeof(hdr), VIRTQ_DESC_F_NEXT, vq->size);
    return go(d);
}

static int c_indirect_outside_ram(struct dev *d)
{
    if (need_indirect(d))
        return 1;
    virtq_desc_set(&d->v.vq[0], 0, TIB, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    return go(d);
}

/* A good 3-descriptor read in table t: header, sector 0, status. */
static void itable_read(struct virtq_desc *t)
{
    set_hdr(VIRTIO_BLK_T_IN, 0);
    itable_set(t, 0, addr_of(&hdr), sizeof(hdr), VIRTQ_DESC_F_NEXT, 1);
    itable_set(t, 1, addr_of(data), SECTOR, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    itable_set(t, 2, addr_of(&status), 1, VIRTQ_DESC_F_WRITE, 0);
}

static int c_indirect_bad_len(struct dev *d)
{
    if (need_indirect(d))
        return 1;
    itable_read(itable);
    virtq_desc_set(&d->v.vq[0], 0, addr_of(itable), 40, VIRTQ_DESC_F_INDIRECT, 0);
    return go(d);
}

static int c_indirect_nested(struct dev *d)
{
    if (need_indirect(d))
        return 1;
    itable_read(itable2);
    itable_set(itable, 0, addr_of(itable2), 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
    virtq_desc_set(&d->v.vq[0], 0, addr_of(itable), 16, VIRTQ_DESC_F_INDIRECT, 0);
    return go(d);
}

/* Publishes head queue size + 3 (whatever the descriptors hold: the head is refused first), kicks.
 */
static int head_out_of_range(struct virtq *vq)
{
    virtq_publish(vq, (uint16_t)(vq->size + 3));
    virtq_kick(vq);
    return 0;
}

/* Moves the available index by queue size + 1, every entry head 0; kicks. */
static int avail_idx_jump(struct virtq *vq)
{
    for (unsigned i = 0; i < vq->size; i++)
        vq->avail->ring[i] = 0;
    /* The index says size + 1 chains; the kit's own count stays at 0, so a used
     * element would be reported as running ahead. */
    __asm__ volatile("" : : : "memory");
    *(volatile uint16_t *)&vq->avail->idx = (uint16_t)(vq->avail_idx + vq->size + 1);
    virtq_kick(vq);
    return 0;
}

/* A good block read in descriptors 0-2 of queue 0 (a transport case's raw material). */
static struct virtq *blk_read_chain(struct dev *d)
{
    struct seg s[3] = {{addr_of(&hdr), sizeof(hdr), 0},
                       {addr_of(data), SECTOR, VIRTQ_DESC_F_WRITE},
                       {addr_of(&status), 1, VIRTQ_DESC_F_WRITE}};

    set_hdr(VIRTIO_BLK_T_IN, 0);
    chain(&d->v.vq[0], 0, s, 3);
    return &d->v.vq[0];
}

static int c_head_out_of_range(struct dev *d)
{
    return head_out_of_range(blk_read_chain(d));
}

static int c_avail_idx_jump(struct dev *d)
{
    return avail_idx_jump(blk_read_chain(d));
}

static int c_data_over_ring(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_IN, 0, addr_of(d->v.vq[0].used), SECTOR, VIRTQ_DESC_F_WRITE);
}

static int c_header_short(struct dev *d)
{
    struct seg s[2] = {{addr_of(&hdr), 8, 0}, {addr_of(&status), 1, VIRTQ_DESC_F_WRITE}};

    set_hdr(VIRTIO_BLK_T_IN, 0);
    chain(&d->v.vq[0], 0, s, 2);
    return go(d);
}

static int c_status_readable(struct dev *d)
{
    struct seg s[3] = {
        {addr_of(&hdr), sizeof(hdr), 0}, {addr_of(data), SECTOR, 0}, {addr_of(&status), 1, 0}};

    set_hdr(VIRTIO_BLK_T_OUT, REF_SECTORS);
    chain(&d->v.vq[0], 0, s, 3);
    return go(d);
}

static int c_readable_after_write(struct dev *d)
{
    struct seg s[3] = {{addr_of(&hdr), sizeof(hdr), 0},
                       {addr_of(data), SECTOR, VIRTQ_DESC_F_WRITE},
                       {addr_of(&status), 1, 0}};

    set_hdr(VIRTIO_BLK_T_IN, 0);
    chain(&d->v.vq[0], 0, s, 3);
    return go(d);
}

static int c_in_readable_data(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_IN, 0, addr_of(data), SECTOR, 0);
}

static int c_data_not_sectors(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_IN, 0, addr_of(data), 100, VIRTQ_DESC_F_WRITE);
}

/* Fills data with 0x5a: what a write that should have been refused would leave on the disk. */
static uint64_t evil(void)
{
    memset(data, 0x5a, sizeof(data));
    return addr_of(data);
}

static int c_out_beyond_capacity(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_OUT, d->capacity - 1, evil(), 2 * SECTOR, 0);
}

static int c_in_at_capacity(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_IN, d->capacity, addr_of(data), SECTOR, VIRTQ_DESC_F_WRITE);
}

static int c_sector_overflow(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_OUT, 1ull << 55, evil(), SECTOR, 0);
}

static int c_sector_max(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_IN, ~0ull, addr_of(data), SECTOR, VIRTQ_DESC_F_WRITE);
}

static int c_flush_with_data(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_FLUSH, 0, addr_of(data), SECTOR, 0);
}

static int c_unknown_type(struct dev *d)
{
    struct seg s[2] = {{addr_of(&hdr), sizeof(hdr), 0}, {addr_of(&status), 1, VIRTQ_DESC_F_WRITE}};

    set_hdr(0xdead, 0);
    chain(&d->v.vq[0], 0, s, 2);
    return go(d);
}

static int c_ro_write(struct dev *d)
{
    return blk_req3(d, VIRTIO_BLK_T_OUT, 0, evil(), SECTOR, 0);
}

/* virtio-rng: one device-writable buffer per request. */
static int rng_one(struct dev *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    virtq_desc_set(&d->v.vq[0], 0, addr, len, (uint16_t)(VIRTQ_DESC_F_WRITE | flags), next);
    return go(d);
}

static int c_rng_desc_outside_ram(struct dev *d)
{
    return rng_one(d, TIB, 64, 0, 0);
}

static int c_rng_chain_loop(struct dev *d)
{
    return rng_one(d, addr_of(data), 64, VIRTQ_DESC_F_NEXT, 0);
}

static int c_rng_data_over_ring(struct dev *d)
{
    return rng_one(d, addr_of(d->v.vq[0].used), 64, 0, 0);
}

/*
 * virtio-net (5.1.6): transmitq 1, receiveq 0. A receive chain is looked at
 * only when a frame comes for it: each receive case posts its chain, then
 * sends an ARP request for 10.0.2.2, whose answer (from slirp, --net user)
 * is that frame.
 */

/* Transmit chain s[0, n) as descriptors 0.., published and kicked. */
static int tx_chain(struct dev *d, const struct seg *s, unsigned n)
{
    struct virtq *vq = &d->v.vq[VNET_TX];

    memset(data, 0, VNET_HDR + 60); /* a zero header and frame: never sent */
    chain(vq, 0, s, n);
    virtq_publish(vq, 0);
    virtq_kick(vq);
    return 0;
}

/* A frame for receiveq: the answer to an ARP request (the request itself must go). 0 or -1. */
static int rx_trigger(struct dev *d)
{
    virtq_kick(&d->v.vq[VNET_RX]);
    return vnet_arp_request(&vn, ip_guest, ip_gw) ? bad("%s", d->v.error) : 0;
}

/* Receive chain s[0, n) as descriptors 0.., published; then the frame for it. */
static int rx_chain(struct dev *d, const struct seg *s, unsigned n)
{
    chain(&d->v.vq[VNET_RX], 0, s, n);
    virtq_publish(&d->v.vq[VNET_RX], 0);
    return rx_trigger(d);
}

static int c_net_tx_desc_outside_ram(struct dev *d)
{
    struct seg s = {TIB, VNET_HDR + 60, 0};
    return tx_chain(d, &s, 1);
}

static int c_net_tx_chain_loop(struct dev *d)
{
    struct virtq *vq = &d->v.vq[VNET_TX];

    virtq_desc_set(vq, 0, addr_of(data), VNET_HDR + 60, VIRTQ_DESC_F_NEXT, 0);
    virtq_publish(vq, 0);
    virtq_kick(vq);
    return 0;
}

/* A good frame as descriptor 0 of transmitq (a transport case's raw material). */
static struct virtq *tx_frame_desc(struct dev *d)
{
    virtq_desc_set(&d->v.vq[VNET_TX], 0, addr_of(data), VNET_HDR + 60, 0, 0);
    return &d->v.vq[VNET_TX];
}

static int c_net_tx_head_out_of_range(struct dev *d)
{
    return head_out_of_range(tx_frame_desc(d));
}

static int c_net_tx_avail_idx_jump(struct dev *d)
{
    return avail_idx_jump(tx_frame_desc(d));
}

static int c_net_tx_data_over_ring(struct dev *d)
{
    struct seg s[2] = {{addr_of(data), VNET_HDR + 60, 0},
                       {addr_of(d->v.vq[VNET_TX].used), 64, VIRTQ_DESC_F_WRITE}};
    return tx_chain(d, s, 2);
}

static int c_net_tx_header_short(struct dev *d)
{
    struct seg s = {addr_of(data), VNET_HDR - 4, 0};
    return tx_chain(d, &s, 1);
}

static int c_net_tx_writable(struct dev *d)
{
    struct seg s[2] = {{addr_of(data), VNET_HDR + 60, 0},
                       {addr_of(data) + 1024, 64, VIRTQ_DESC_F_WRITE}};
    return tx_chain(d, s, 2);
}

static int c_net_tx_runt(struct dev *d)
{
    struct seg s = {addr_of(data), VNET_HDR + 6, 0};
    return tx_chain(d, &s, 1);
}

static int c_net_tx_too_big(struct dev *d)
{
    /* The frame is whatever the kit's image holds from 1 MiB on: RAM, read, never sent. */
    struct seg s[2] = {{addr_of(data), VNET_HDR, 0}, {0x100000, NET_TOO_BIG, 0}};
    return tx_chain(d, s, 2);
}

static int c_net_rx_desc_outside_ram(struct dev *d)
{
    struct seg s = {TIB, 2048, VIRTQ_DESC_F_WRITE};
    return rx_chain(d, &s, 1);
}

static int c_net_rx_chain_loop(struct dev *d)
{
    virtq_desc_set(&d->v.vq[VNET_RX], 0, addr_of(data), 2048,
                   VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
    virtq_publish(&d->v.vq[VNET_RX], 0);
    return rx_trigger(d);
}

/* A good receive buffer as descriptor 0 of receiveq (a transport case's raw material). */
static struct virtq *rx_buf_desc(struct dev *d)
{
    virtq_desc_set(&d->v.vq[VNET_RX], 0, addr_of(data), 2048, VIRTQ_DESC_F_WRITE, 0);
    return &d->v.vq[VNET_RX];
}

static int c_net_rx_head_out_of_range(struct dev *d)
{
    head_out_of_range(rx_buf_desc(d));
    return rx_trigger(d);
}

static int c_net_rx_avail_idx_jump(struct dev *d)
{
    avail_idx_jump(rx_buf_desc(d));
    return rx_trigger(d);
}

static int c_net_rx_data_over_ring(struct dev *d)
{
    struct seg s = {addr_of(d->v.vq[VNET_RX].used), 64, VIRTQ_DESC_F_WRITE};
    return rx_chain(d, &s, 1);
}

static int c_net_rx_readable(struct dev *d)
{
    struct seg s[2] = {{addr_of(data), VNET_HDR, 0},
                       {addr_of(data) + 1024, 2048, VIRTQ_DESC_F_WRITE}};
    return rx_chain(d, s, 2);
}

/*
 * receiveq's used ring over its available ring (2.7: the rings are separate):
 * refused when the driver enables the queue. Answers by itself: 2 needs
 * reset, or -1 and why.
 */
static int c_net_rings_overlap(struct dev *d)
{
    struct virtio_dev *v = &d->v;

    if (virtio_start(v, d->want))
        return bad("start: %s", v->error);
    if (!virtio_queue_setup_used(v, VNET_RX, KIT_VIRTQ_MAX, addr_of(v->vq[VNET_RX].avail)))
        return bad("the queue was enabled");
    uint8_t st = virtio_status(v);
    return st & VIRTIO_STATUS_NEEDS_RESET ? 2 : bad("%s; status 0x%02x", v->error, st);
}

/* Without MRG_RXBUF or with it (the case's features say which). */
static int c_net_rx_header_short(struct dev *d)
{
    struct seg s = {addr_of(data), VNET_HDR - 4, VIRTQ_DESC_F_WRITE};
    return rx_chain(d, &s, 1);
}

static const struct hcase cases[] = {
    {"desc-outside-ram", BLK, c_desc_outside_ram, 0, 0, 0},
    {"desc-mmio", BLK, c_desc_mmio, 0, 0, 0},
    {"desc-len-wrap", BLK, c_desc_len_wrap, 0, 0, 0},
    {"chain-loop", BLK, c_chain_loop, 0, 0, 0},
    {"chain-too-long", BLK, c_chain_too_long, 0, 0, 0},
    {"next-out-of-range", BLK, c_next_out_of_range, 0, 0, 0},
    {"indirect-outside-ram", BLK, c_indirect_outside_ram, 0, 0, 0},
    {"indirect-bad-len", BLK, c_indirect_bad_len, 0, 0, 0},
    {"indirect-nested", BLK, c_indirect_nested, 0, 0, 0},
    {"head-out-of-range", BLK, c_head_out_of_range, 0, 0, 0},
    {"avail-idx-jump", BLK, c_avail_idx_jump, 0, 0, 0},
    {"data-over-ring", BLK, c_data_over_ring, 0, 0, 0},
    {"header-short", BLK, c_header_short, 0, 0, 0},
    {"status-readable", BLK, c_status_readable, 0, 0, 0},
    {"readable-after-write", BLK, c_readable_after_write, 0, 0, 0},
    {"in-readable-data", BLK, c_in_readable_data, 0, 0, 0},
    {"data-not-sectors", BLK, c_data_not_sectors, 0, 0, 0},
    {"out-beyond-capacity", BLK, c_out_beyond_capacity, 0, 0, 0},
    {"in-at-capacity", BLK, c_in_at_capacity, 0, 0, 0},
    {"sector-overflow", BLK, c_sector_overflow, 0, 0, 0},
    {"sector-max", BLK, c_sector_max, 0, 0, 0},
    {"flush-with-data", BLK, c_flush_with_data, 0, 0, 0},
    {"unknown-type", BLK, c_unknown_type, 0, 0, 0},
    {"ro-write", BLK_RO, c_ro_write, 0, 0, 0},
    {"rng-desc-outside-ram", RNG, c_rng_desc_outside_ram, 0, 0, 0},
    {"rng-chain-loop", RNG, c_rng_chain_loop, 0, 0, 0},
    {"rng-head-out-of-range", RNG, c_head_out_of_range, 0, 0, 0},
    {"rng-avail-idx-jump", RNG, c_avail_idx_jump, 0, 0, 0},
    {"rng-data-over-ring", RNG, c_rng_data_over_ring, 0, 0, 0},
    {"net-tx-desc-outside-ram", NET, c_net_tx_desc_outside_ram, VNET_TX, 0, 0},
    {"net-tx-chain-loop", NET, c_net_tx_chain_loop, VNET_TX, 0, 0},
    {"net-tx-head-out-of-range", NET, c_net_tx_head_out_of_range, VNET_TX, 0, 0},
    {"net-tx-avail-idx-jump", NET, c_net_tx_avail_idx_jump, VNET_TX, 0, 0},
    {"net-tx-data-over-ring", NET, c_net_tx_data_over_ring, VNET_TX, 0, 0},
    {"net-tx-header-short", NET, c_net_tx_header_short, VNET_TX, 0, 0},
    {"net-tx-writable", NET, c_net_tx_writable, VNET_TX, 0, 0},
    {"net-tx-runt", NET, c_net_tx_runt, VNET_TX, 0, 0},
    {"net-tx-too-big", NET, c_net_tx_too_big, VNET_TX, 0, 0},
    {"net-rings-overlap", NET, c_net_rings_overlap, VNET_RX, 0, 0},
    {"net-rx-desc-outside-ram", NET, c_net_rx_desc_outside_ram, VNET_RX, 0, 0},
    {"net-rx-chain-loop", NET, c_net_rx_chain_loop, VNET_RX, 0, 0},
    {"net-rx-head-out-of-range", NET, c_net_rx_head_out_of_range, VNET_RX, 0, 0},
    {"net-rx-avail-idx-jump", NET, c_net_rx_avail_idx_jump, VNET_RX, 0, 0},
    {"net-rx-data-over-ring", NET, c_net_rx_data_over_ring, VNET_RX, 0, 0},
    {"net-rx-readable", NET, c_net_rx_readable, VNET_RX, 0, 0},
    {"net-rx-header-short", NET, c_net_rx_header_short, VNET_RX, 0, VIRTIO_BIT(VNET_F_MRG_RXBUF)},
    {"net-rx-mrg-header-short", NET, c_net_rx_header_short, VNET_RX, VIRTIO_BIT(VNET_F_MRG_RXBUF),
     0},
};

/* ---- starting, checking, restarting ---- */

/*
 * Starts d (again): features (d->want but without, and also), queue 0 (and virtio-net's
 * transmitq) as large as the kit allows, DRIVER_OK. 0 or -1.
 */
static int dev_start(struct dev *d, uint64_t also, uint64_t without)
{
    struct virtio_dev *v = &d->v;

    if (virtio_start(v, (d->want & ~without) | also) || virtio_queue_setup(v, 0, KIT_VIRTQ_MAX) ||
        (d->kind == D_NET && virtio_queue_setup(v, VNET_TX, KIT_VIRTQ_MAX)))
        return bad("start: %s", v->error);
    if (d->kind == D_BLK &&
        virtio_config_read(v, BLK_CFG_CAPACITY, &d->capacity, sizeof(d->capacity)))
        return bad("start: %s", v->error);
    if (d->kind == D_NET && virtio_config_read(v, 0, vn.mac, 6))
        return bad("start: %s", v->error);
    if (virtio_driver_ok(v))
        return bad("start: %s", v->error);
    return 0;
}

/* One good request through virtq_xfer(); its status must be OK. 0 or -1. */
static int blk_good(struct dev *d, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
    struct virtq_buf bufs[3] = {{&hdr, sizeof(hdr)}, {buf, len}, {(void *)&status, 1}};
    uint32_t written;
    int in = type == VIRTIO_BLK_T_IN;

    set_hdr(type, sector);
    if (virtq_xfer(&d->v.vq[0], bufs, in ? 1 : 2, in ? 2 : 1, &written))
        return bad("%s", d->v.error);
    if (status != VIRTIO_BLK_S_OK)
        return bad("%s of sector %llu: status 0x%02x", in ? "read" : "write",
                   (unsigned long long)sector, status);
    return 0;
}

/*
 * The device works: sectors 0-7 read back as ref (virtio-rng: 64 bytes come
 * back; virtio-net: slirp answers an ARP request for 10.0.2.2).
 */
static int dev_works(struct dev *d)
{
    if (d->kind == D_NET) {
        uint8_t who[6];

        for (unsigned i = 0; i < NET_BUFS; i++)
            vnet_rx_post(&vn, i);
        virtq_kick(&d->v.vq[VNET_RX]);
        return vnet_arp(&vn, ip_guest, ip_gw, who) ? bad("%s", d->v.error) : 0;
    }
    if (d->kind == D_RNG) {
        struct virtq_buf b = {data, 64};
        uint32_t written;

        if (virtq_xfer(&d->v.vq[0], &b, 0, 1, &written))
            return bad("%s", d->v.error);
        return written ? 0 : bad("a 64-byte read came back empty");
    }
    memset(data, 0xee, sizeof(data));
    if (blk_good(d, VIRTIO_BLK_T_IN, 0, data, sizeof(data)))
        return -1;
    for (unsigned i = 0; i < sizeof(data); i++)
        if (data[i] != d->ref[i])
            return bad("sector %u byte %u reads 0x%02x, not 0x%02x", i / SECTOR, i % SECTOR,
                       data[i], d->ref[i]);
    return 0;
}

/* Whether name is in the hostile.skip list. */
static int skipped(const char *name)
{
    size_t n = strlen(name);

    for (const char *p = skip; *p;) {
        const char *end = p;
        while (*end && *end != ',')
            end++;
        if ((size_t)(end - p) == n && !memcmp(p, name, n))
            return 1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* How the device answered the case just submitted; why says more for A_BAD. */
static enum answer answer(struct dev *d, const struct hcase *hc)
{
    struct virtq_used_elem e;
    int r = virtq_wait(&d->v.vq[hc->q], &e);

    if (r == -VIRTIO_ERR_RESET)
        return A_RESET;
    if (r) {
        bad("%s", d->v.error);
        return A_BAD;
    }
    if (e.id != 0) {
        bad("used element id %u, only head 0 was submitted", e.id);
        return A_BAD;
    }
    if (d->kind == D_NET && hc->q == VNET_TX && e.len == 0)
        return A_DROPPED; /* GET /stats or --stats count it (test_virtio.py) */
    if (d->kind != D_BLK) {
        bad("accepted (used length %u)", e.len);
        return A_BAD;
    }
    uint8_t st = status;
    if (st == VIRTIO_BLK_S_IOERR)
        return A_IOERR;
    if (st == VIRTIO_BLK_S_UNSUPP)
        return A_UNSUPP;
    if (st == VIRTIO_BLK_S_OK)
        bad("accepted: status OK (used length %u)", e.len);
    else if (st == STATUS_UNSET)
        bad("used (length %u) with no status written", e.len);
    else
        bad("status 0x%02x (used length %u)", st, e.len);
    return A_BAD;
}

int kit_main(void)
{
    unsigned long timeout = 5000, poweroff = 1;
    unsigned counts[A_BAD] = {0}, nskipped = 0, failed = 0, ran = 0;

    if (kit_cmdline_uint("hostile.timeout", 10, &timeout) == -2 || timeout > 60000) {
        puts("hostile: bad hostile.timeout (want 0-60000)");
        return 2;
    }
    if (kit_cmdline_uint("hostile.poweroff", 10, &poweroff) == -2 || poweroff > 1) {
        puts("hostile: bad hostile.poweroff (want 0 or 1)");
        return 2;
    }
    if (kit_cmdline_get("hostile.skip", skip, sizeof(skip)) >= (int)sizeof(skip)) {
        puts("hostile: bad hostile.skip (too long)");
        return 2;
    }

    unsigned n = pci_scan(funcs, PCI_MAX_FUNCS), ndevs = 0;
    for (unsigned i = 0; i < n && ndevs < 4; i++) {
        const struct pci_func *f = &funcs[i];
        enum kind kind = f->device == VIRTIO_PCI_DEVICE(VIRTIO_ID_RNG)   ? D_RNG
                         : f->device == VIRTIO_PCI_DEVICE(VIRTIO_ID_NET) ? D_NET
                                                                         : D_BLK;
        struct dev *d = &devs[ndevs];

        if (f->vendor != VIRTIO_VENDOR || (kind == D_RNG && rng) || (kind == D_NET && net) ||
            (kind == D_BLK && (f->device != VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK) || (blk && blk_ro))))
            continue;
        if (virtio_probe(&d->v, f)) {
            printf("hostile: FAIL %02x:%02x.%x: %s\n", PCI_BDF_BUS(f->bdf), PCI_BDF_DEV(f->bdf),
                   PCI_BDF_FN(f->bdf), d->v.error);
            return 1;
        }
        d->kind = kind;
        d->v.timeout_ms = (unsigned)timeout;
        d->want = VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
        if (kind == D_BLK)
            d->want |= VIRTIO_BIT(VIRTIO_BLK_F_RO) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                       VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
        if (kind == D_NET) {
            /* MRG_RXBUF as Linux takes it; QEMU 7.2 writes num_buffers only with it. */
            d->want =
                VIRTIO_BIT(VNET_F_MAC) | VIRTIO_BIT(VNET_F_STATUS) | VIRTIO_BIT(VNET_F_MRG_RXBUF);
            vn.dev = &d->v;
        }
        if (dev_start(d, 0, 0)) {
            printf("hostile: FAIL %s\n", why);
            return 1;
        }
        int ro = kind == D_BLK && (d->v.accepted & VIRTIO_BIT(VIRTIO_BLK_F_RO));
        if (kind == D_RNG)
            rng = d;
        else if (kind == D_NET)
            net = d;
        else if (ro && !blk_ro)
            blk_ro = d;
        else if (!ro && !blk)
            blk = d;
        else {
            virtio_reset(&d->v); /* one of each kind is enough */
            continue;
        }
        ndevs++;
        if (kind != D_BLK)
            printf("hostile: %s %02x:%02x.%x features 0x%llx queue %u\n",
                   kind == D_RNG ? "rng" : "net", PCI_BDF_BUS(f->bdf), PCI_BDF_DEV(f->bdf),
                   PCI_BDF_FN(f->bdf), (unsigned long long)d->v.accepted, d->v.vq[0].size);
        else
            printf("hostile: blk %02x:%02x.%x capacity %llu features 0x%llx queue %u %s\n",
                   PCI_BDF_BUS(f->bdf), PCI_BDF_DEV(f->bdf), PCI_BDF_FN(f->bdf),
                   (unsigned long long)d->capacity, (unsigned long long)d->v.accepted,
                   d->v.vq[0].size, ro ? "ro" : "rw");
    }
    if (!blk && !blk_ro) {
        printf("hostile: no virtio-blk (%04x:%04x)\n", VIRTIO_VENDOR,
               VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK));
        return 3;
    }

    /* The reference sectors: a pattern written now, or what the read-only drive holds. */
    if (blk) {
        for (unsigned i = 0; i < sizeof(blk->ref); i++)
            blk->ref[i] = (uint8_t)(i * 7 + (i >> 9) + 1);
        if (blk->capacity < REF_SECTORS + 1 ||
            blk_good(blk, VIRTIO_BLK_T_OUT, 0, blk->ref, sizeof(blk->ref)) || dev_works(blk)) {
            printf("hostile: FAIL the reference write: %s\n",
                   blk->capacity < REF_SECTORS + 1 ? "the drive is too small" : why);
            return 1;
        }
    }
    if (blk_ro) {
        if (blk_ro->capacity < REF_SECTORS ||
            blk_good(blk_ro, VIRTIO_BLK_T_IN, 0, blk_ro->ref, sizeof(blk_ro->ref))) {
            printf("hostile: FAIL the reference read: %s\n",
                   blk_ro->capacity < REF_SECTORS ? "the drive is too small" : why);
            return 1;
        }
    }

    if (net && dev_works(net)) {
        printf("hostile: FAIL the first ARP exchange: %s\n", why);
        return 1;
    }

    for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const struct hcase *hc = &cases[c];
        struct dev *d = hc->on == RNG ? rng : hc->on == NET ? net : hc->on == BLK_RO ? blk_ro : blk;

        if (!d || skipped(hc->name)) {
            printf("hostile: %s skipped (%s)\n", hc->name,
                   d               ? "hostile.skip"
                   : hc->on == RNG ? "no virtio-rng"
                   : hc->on == NET ? "no virtio-net"
                   : hc->on == BLK ? "no read-write virtio-blk"
                                   : "no read-only virtio-blk");
            nskipped++;
            continue;
        }
        d->v.error[0] = 0;
        /* virtio-net starts each case afresh: dev_works() left receive buffers posted. */
        if (d->kind == D_NET || hc->also || hc->without) {
            virtio_reset(&d->v);
            if (dev_start(d, hc->also, hc->without)) {
                printf("hostile: %s FAIL (%s)\n", hc->name, why);
                failed++, ran++;
                continue;
            }
            if ((d->v.accepted & hc->also) != hc->also)
                snprintf(d->v.error, sizeof(d->v.error), "features 0x%llx not offered",
                         (unsigned long long)(hc->also & ~d->v.accepted));
        }
        int r = d->v.error[0] ? 1 : hc->submit(d);
        if (r == 1) {
            printf("hostile: %s skipped (%s)\n", hc->name, d->v.error);
            nskipped++;
        } else {
            ran++;
            enum answer a = r < 0 ? A_BAD : r == 2 ? A_RESET : answer(d, hc);
            static const char *const names[] = {"needs reset", "IOERR", "UNSUPP", "dropped"};
            int ok = a != A_BAD;
            char first[sizeof(why)];

            if (ok)
                counts[a]++;
            else
                memcpy(first, why, sizeof(why));
            /* Start over and prove the device works. */
            virtio_reset(&d->v);
            if (dev_start(d, 0, 0) || dev_works(d)) {
                if (ok)
                    printf("hostile: %s FAIL (%s, but then: %s)\n", hc->name, names[a], why);
                else
                    printf("hostile: %s FAIL (%s; then: %s)\n", hc->name, first, why);
                failed++;
            } else if (!ok) {
                printf("hostile: %s FAIL (%s)\n", hc->name, first);
                failed++;
            } else {
                printf("hostile: %s ok (%s)\n", hc->name, names[a]);
            }
        }
    }
    if (failed) {
        printf("hostile: FAIL %u of %u cases\n", failed, ran);
        return 1;
    }
    printf("hostile: PASS cases %u needs-reset %u ioerr %u unsupp %u dropped %u skipped %u\n", ran,
           counts[A_RESET], counts[A_IOERR], counts[A_UNSUPP], counts[A_DROPPED], nskipped);

    if (!poweroff)
        return 0;
    if (acpi_init(&acpi) < 0 || !acpi_can_poweroff(&acpi)) {
        puts("hostile: FAIL no ACPI poweroff");
        return 1;
    }
    puts("hostile: poweroff");
    acpi_poweroff(&acpi);
    puts("hostile: FAIL poweroff: the machine is still on");
    return 1;
}
