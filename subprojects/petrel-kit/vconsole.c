/*
 * vconsole: a console on virtio-console (virtio 1.2, 5.3; 1af4:1043), port 0
 * without MULTIPORT, through the kit's virtio driver, interrupt-driven by
 * MSI-X: what Linux's hvc0 does, in a few lines.
 *
 * Lists the PCI functions and says what it found on COM1, posts
 * VCON_RX_BUFS receive buffers, then writes on the transmitq
 *
 *   hvc: ready
 *
 * and echoes every chunk it receives upper-cased (a CR also gets an LF), on
 * the transmitq, one chain per chunk. A line "exit" (ended by CR or LF) ends
 * it: "hvc: bye" on the transmitq, "vconsole: poweroff" on COM1, and ACPI
 * poweroff (petrel and QEMU exit 0). Every transmit waits for its used
 * element; every receive buffer goes back to the device at once.
 *
 * COM1 lines:
 *   pci: ...                                    every PCI function (pci_print)
 *   vconsole: virtio-console <bdf> features 0x<offered> accepted 0x<accepted>
 *   vconsole: received <bytes> bytes in <chunks> chunks     before poweroff
 *   vconsole: FAIL <why>                        exit 1
 *   vconsole: no virtio-console (1af4:1043)     exit 3
 *
 * vconsole.rxsize=<1-64> is each receive buffer's size (64): small buffers
 * make the device split input over several chains.
 */
#include "kit/acpi.h"
#include "kit/cmdline.h"
#include "kit/kit.h"
#include "kit/pci.h"
#include "kit/printf.h"
#include "kit/string.h"
#include "kit/virtio.h"

#define VCON_RX       0
#define VCON_TX       1
#define VCON_QSIZE    16
#define VCON_RX_BUFS  8
#define VCON_RX_SIZE  64
#define VCON_LINE_MAX 32

static struct pci_func funcs[PCI_MAX_FUNCS];
static struct virtio_dev con;
static struct acpi_info acpi;
static uint8_t rxbuf[VCON_RX_BUFS][VCON_RX_SIZE];
static char txbuf[2 * VCON_RX_SIZE + 16];

static int fail(const char *why)
{
    printf("vconsole: FAIL %s\n", why);
    return 1;
}

/* Writes len bytes through the transmitq and waits until the device used them. */
static int hvc_write(const char *s, unsigned len)
{
    struct virtq_buf b = {(void *)s, len};
    uint32_t written;

    if (virtq_xfer(&con.vq[VCON_TX], &b, 1, 0, &written))
        return fail(con.error);
    if (written)
        return fail("the device says it wrote into a transmit buffer");
    return 0;
}

/* Receive buffer i (descriptor i) goes (back) to the device. */
static void rx_post(unsigned i, unsigned size)
{
    struct virtq *vq = &con.vq[VCON_RX];

    virtq_desc_set(vq, i, (uint64_t)(uintptr_t)rxbuf[i], size, VIRTQ_DESC_F_WRITE, 0);
    virtq_publish(vq, (uint16_t)i);
}

int kit_main(void)
{
    unsigned long rxsize = VCON_RX_SIZE;
    char line[VCON_LINE_MAX + 1];
    unsigned line_len = 0, total = 0, chunks = 0;

    int r = kit_cmdline_uint("vconsole.rxsize", 10, &rxsize);
    if (r == -2 || (r == 0 && (rxsize < 1 || rxsize > VCON_RX_SIZE))) {
        puts("vconsole: bad vconsole.rxsize (want 1-64)");
        return 2;
    }

    unsigned n = pci_scan(funcs, PCI_MAX_FUNCS);
    int found = pci_next(funcs, n, 0, VIRTIO_VENDOR, VIRTIO_PCI_DEVICE(VIRTIO_ID_CONSOLE));
    if (found < 0) {
        printf("vconsole: no virtio-console (%04x:%04x)\n", VIRTIO_VENDOR,
               VIRTIO_PCI_DEVICE(VIRTIO_ID_CONSOLE));
        return 3;
    }
    const struct pci_func *f = &funcs[found];
    if (virtio_probe(&con, f) || virtio_start(&con, 0) ||
        virtio_queue_setup(&con, VCON_RX, VCON_QSIZE) ||
        virtio_queue_setup(&con, VCON_TX, VCON_QSIZE) || virtio_driver_ok(&con))
        return fail(con.error);
    printf("vconsole: virtio-console %02x:%02x.%x features 0x%llx accepted 0x%llx\n",
           PCI_BDF_BUS(f->bdf), PCI_BDF_DEV(f->bdf), PCI_BDF_FN(f->bdf),
           (unsigned long long)con.features, (unsigned long long)con.accepted);

    struct virtq *rx = &con.vq[VCON_RX];
    for (unsigned i = 0; i < VCON_RX_BUFS; i++)
        rx_post(i, (unsigned)rxsize);
    virtq_kick(rx);
    if (hvc_write("hvc: ready\r\n", 12))
        return 1;

    for (;;) {
        struct virtq_used_elem e;
        if (virtq_wait(rx, &e))
            return fail(con.error);
        if (e.id >= VCON_RX_BUFS || e.len > rxsize || !e.len) {
            printf("vconsole: FAIL receive element id %u len %u\n", e.id, e.len);
            return 1;
        }
        unsigned out = 0, done = 0;
        total += e.len;
        chunks++;
        for (unsigned i = 0; i < e.len; i++) {
            char c = (char)rxbuf[e.id][i];
            if (c == '\r' || c == '\n') {
                line[line_len] = 0;
                done = line_len == 4 && !memcmp(line, "exit", 4);
                line_len = 0;
                txbuf[out++] = '\r';
                txbuf[out++] = '\n';
                if (done)
                    break;
                continue;
            }
            if (line_len < VCON_LINE_MAX)
                line[line_len++] = c;
            txbuf[out++] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
        }
        rx_post(e.id, (unsigned)rxsize);
        virtq_kick(rx);
        if (out && hvc_write(txbuf, out))
            return 1;
        if (done)
            break;
    }
    if (hvc_write("hvc: bye\r\n", 10))
        return 1;
    printf("vconsole: received %u bytes in %u chunks\n", total, chunks);
    if (acpi_init(&acpi) < 0 || !acpi_can_poweroff(&acpi))
        return fail("no ACPI poweroff");
    puts("vconsole: poweroff");
    acpi_poweroff(&acpi);
    return fail("poweroff: the machine is still on");
}
