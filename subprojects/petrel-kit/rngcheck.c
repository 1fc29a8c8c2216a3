/*
 * rngcheck: finds virtio-rng on PCI and reads it through the kit's virtio
 * driver (include/kit/virtio.h), interrupt-driven by MSI-X.
 *
 * Lists every PCI function on bus 0, then for virtio-rng (1af4:1044) sets up
 * queue 0 and makes rngcheck.reads requests of rngcheck.size bytes, one
 * device-writable buffer each, waiting for each one's MSI-X interrupt.
 * Checks: every request comes back with at least one byte (at most the
 * buffer), the bytes of one read are not all equal, no two reads are the
 * same, and every request was signalled by an interrupt of its own. Prints
 *
 *   pci: <bus>:<dev>.<fn> <vendor>:<device> class <class> rev <rev>   one per function
 *   rngcheck: virtio-rng <bdf> features 0x<offered> accepted 0x<accepted> queue 0 size <n>
 *   rngcheck: read <i> <n> bytes <the first 8 in hex>
 *   rngcheck: PASS reads <n> bytes <total> interrupts <count>
 *   rngcheck: poweroff
 *
 * and powers off through ACPI (petrel and QEMU exit 0). On a failed check,
 * "rngcheck: FAIL <why>" and exit 1; without virtio-rng, "rngcheck: no
 * virtio-rng (1af4:1044)" and exit 3.
 *
 * Options: rngcheck.reads=<1-16> (4), rngcheck.size=<1-4096> (64),
 * rngcheck.timeout=<ms> the longest wait for one request or interrupt
 * (20000; 0: none), rngcheck.poweroff=0 exits 0 instead of powering off.
 * rngcheck.segs=<1-8> splits each buffer over that many chained descriptors
 * (1); rngcheck.indirect=1 puts the chain in an indirect table
 * (VIRTIO_F_INDIRECT_DESC, which must then be offered); rngcheck.event_idx=1
 * negotiates VIRTIO_F_EVENT_IDX (must be offered), so the device interrupts
 * when the used index passes used_event.
 * A bad value prints "rngcheck: bad <option>" and exits 2.
 */
#include "kit/acpi.h"
#include "kit/cmdline.h"
#include "kit/kit.h"
#include "kit/pci.h"
#include "kit/printf.h"
#include "kit/string.h"
#include "kit/virtio.h"

#define RNG_MAX_READS 16
#define RNG_MAX_SIZE  4096
#define RNG_QUEUE     0
#define RNG_QSIZE     16
#define RNG_MAX_SEGS  8

static struct pci_func funcs[PCI_MAX_FUNCS];
static struct virtio_dev rng;
static struct acpi_info acpi;
static uint8_t bufs[RNG_MAX_READS][RNG_MAX_SIZE];
static uint32_t got[RNG_MAX_READS];
static struct virtq_desc indirect[RNG_MAX_SEGS] __attribute__((aligned(16)));

/* Reads option name (base 10) into *v when present; -1 (and the message) when out of [lo, hi]. */
static int option(const char *name, unsigned long lo, unsigned long hi, unsigned long *v)
{
    int r = kit_cmdline_uint(name, 10, v);

    if (r == -2 || (r == 0 && (*v < lo || *v > hi))) {
        printf("rngcheck: bad %s (want %lu-%lu)\n", name, lo, hi);
        return -1;
    }
    return 0;
}

static int fail(const char *why)
{
    printf("rngcheck: FAIL %s\n", why);
    return 1;
}

/*
 * One read of size bytes into buf over segs device-writable descriptors:
 * chained in the ring from descriptor 0, or in the indirect table that
 * descriptor 0 points at. Returns what the device wrote, or -1 (reported).
 */
static int read_chain(struct virtq *vq, uint8_t *buf, uint32_t size, unsigned segs, int indir)
{
    struct virtq_used_elem e;
    uint32_t seg = size / segs;

    for (unsigned i = 0; i < segs; i++) {
        uint32_t len = i + 1 < segs ? seg : size - seg * (segs - 1);
        uint16_t flags = VIRTQ_DESC_F_WRITE | (i + 1 < segs ? VIRTQ_DESC_F_NEXT : 0);
        uint64_t addr = (uint64_t)(uintptr_t)(buf + seg * i);

        if (indir) {
            indirect[i] = (struct virtq_desc){addr, len, flags, (uint16_t)(i + 1)};
        } else if (virtq_desc_set(vq, i, addr, len, flags, (uint16_t)(i + 1))) {
            printf("rngcheck: FAIL %u segments do not fit the queue (%u)\n", segs, vq->size);
            return -1;
        }
    }
    if (indir)
        virtq_desc_set(vq, 0, (uint64_t)(uintptr_t)indirect, segs * sizeof(indirect[0]),
                       VIRTQ_DESC_F_INDIRECT, 0);
    virtq_publish(vq, 0);
    virtq_kick(vq);
    if (virtq_wait(vq, &e)) {
        printf("rngcheck: FAIL %s\n", vq->dev->error);
        return -1;
    }
    if (e.id != 0 || e.len > size) {
        printf("rngcheck: FAIL used element id %u len %u for head 0, %u bytes\n", e.id, e.len,
               size);
        return -1;
    }
    return (int)e.len;
}

/* The reads' checks: not all equal within one, no two alike. */
static int check_reads(unsigned reads)
{
    for (unsigned i = 0; i < reads; i++) {
        unsigned same = 1;
        for (unsigned j = 1; j < got[i]; j++)
            same += bufs[i][j] == bufs[i][0];
        if (got[i] > 1 && same == got[i]) {
            printf("rngcheck: FAIL read %u: all %u bytes are 0x%02x\n", i, got[i], bufs[i][0]);
            return 1;
        }
        for (unsigned k = 0; k < i; k++) {
            if (got[k] == got[i] && !memcmp(bufs[k], bufs[i], got[i])) {
                printf("rngcheck: FAIL reads %u and %u are the same %u bytes\n", k, i, got[i]);
                return 1;
            }
        }
    }
    return 0;
}

int kit_main(void)
{
    unsigned long reads = 4, size = 64, timeout = 20000, poweroff = 1, segs = 1, indir = 0;
    unsigned long event_idx = 0;

    if (option("rngcheck.reads", 1, RNG_MAX_READS, &reads) ||
        option("rngcheck.size", 1, RNG_MAX_SIZE, &size) ||
        option("rngcheck.timeout", 0, 60000, &timeout) ||
        option("rngcheck.poweroff", 0, 1, &poweroff) ||
        option("rngcheck.segs", 1, RNG_MAX_SEGS, &segs) ||
        option("rngcheck.indirect", 0, 1, &indir) || option("rngcheck.event_idx", 0, 1, &event_idx))
        return 2;
    if (segs > size) {
        puts("rngcheck: bad rngcheck.segs (more segments than bytes)");
        return 2;
    }

    unsigned n = pci_scan(funcs, PCI_MAX_FUNCS);
    int found = pci_next(funcs, n, 0, VIRTIO_VENDOR, VIRTIO_PCI_DEVICE(VIRTIO_ID_RNG));
    if (found < 0) {
        printf("rngcheck: no virtio-rng (%04x:%04x)\n", VIRTIO_VENDOR,
               VIRTIO_PCI_DEVICE(VIRTIO_ID_RNG));
        return 3;
    }
    const struct pci_func *f = &funcs[found];

    if (virtio_probe(&rng, f))
        return fail(rng.error);
    rng.timeout_ms = (unsigned)timeout;
    uint64_t want = (indir ? VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) : 0) |
                    (event_idx ? VIRTIO_BIT(VIRTIO_F_EVENT_IDX) : 0);
    if (virtio_start(&rng, want) || virtio_queue_setup(&rng, RNG_QUEUE, RNG_QSIZE) ||
        virtio_driver_ok(&rng))
        return fail(rng.error);
    struct virtq *vq = &rng.vq[RNG_QUEUE];
    printf("rngcheck: virtio-rng %02x:%02x.%x features 0x%llx accepted 0x%llx queue 0 size %u\n",
           PCI_BDF_BUS(f->bdf), PCI_BDF_DEV(f->bdf), PCI_BDF_FN(f->bdf),
           (unsigned long long)rng.features, (unsigned long long)rng.accepted, vq->size);

    if ((rng.accepted & want) != want) {
        printf("rngcheck: FAIL the device does not offer 0x%llx\n",
               (unsigned long long)(want & ~rng.accepted));
        return 1;
    }
    unsigned total = 0;
    for (unsigned i = 0; i < reads; i++) {
        int len = read_chain(vq, bufs[i], (uint32_t)size, (unsigned)segs, (int)indir);
        if (len < 0)
            return 1;
        got[i] = (uint32_t)len;
        if (virtq_wait_interrupts(vq, i + 1))
            return fail(rng.error);
        if (!got[i]) {
            printf("rngcheck: FAIL read %u: the device wrote nothing\n", i);
            return 1;
        }
        total += got[i];
        printf("rngcheck: read %u %u bytes", i, got[i]);
        for (unsigned j = 0; j < got[i] && j < 8; j++)
            printf("%s%02x", j ? "" : " ", bufs[i][j]);
        printf("\n");
    }
    if (check_reads((unsigned)reads))
        return 1;
    printf("rngcheck: PASS reads %lu bytes %u interrupts %u\n", reads, total, vq->interrupts);
    virtio_reset(&rng);

    if (!poweroff)
        return 0;
    if (acpi_init(&acpi) < 0 || !acpi_can_poweroff(&acpi))
        return fail("no ACPI poweroff");
    puts("rngcheck: poweroff");
    acpi_poweroff(&acpi);
    return fail("poweroff: the machine is still on");
}
