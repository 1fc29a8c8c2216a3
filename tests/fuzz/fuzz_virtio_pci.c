/*
 * Fuzz target: the virtio-pci transport's registers and virtio-rng's queue,
 * as a hostile driver drives them: configuration space, the BAR (common
 * configuration, ISR, notify area, MSI-X table), guest memory under the rings,
 * and the loop that runs the kicks. A fresh device per input, on a real PCI
 * and MMIO bus with fake irqfds and ioeventfds (no KVM), over 64 KiB of fake
 * RAM (so the sanitizers see any access outside it).
 *
 * Input format (tests/fuzz/gen_corpus.py writes seeds in it): ops, each one
 * byte OP and its arguments; missing bytes read as 0.
 *   OP % 6 == 0  BAR write: offset (2 bytes, little-endian) % the BAR size,
 *                size 1 << (OP >> 3 & 3), the value in the next 8 bytes
 *   OP % 6 == 1  BAR read: offset (2 bytes), size 1 << (OP >> 3 & 3)
 *   OP % 6 == 2  configuration write: register (1 byte), size 1 << (OP >> 3 & 3)
 *                (8 means 4), the value in the next 4 bytes
 *   OP % 6 == 3  configuration read: register (1 byte), the same size
 *   OP % 6 == 4  guest memory: address (2 bytes) in RAM, then N (1 byte) bytes
 *   OP % 6 == 5  run the loop once (kicks reach the device)
 *
 * Checked after every op: a broken queue of a running device (DRIVER_OK)
 * always comes with NEEDS_RESET; a queue that is ready has a power-of-two size
 * no larger than the device's maximum; the BAR sits at a multiple of its size.
 */
#include <string.h>
#include <event2/event.h>

#include "fuzz.h"
#include "petrel/virtio.h"
#include "petrel/virtio_rng.h"
#include "fake_virtio_sys.h"

#define RAM_SIZE (64 * 1024)

static void quiet(void *ctx, const char *msg)
{
    (void)ctx, (void)msg;
}

struct input {
    const uint8_t *p;
    size_t left;
};

static uint64_t take(struct input *in, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t b = 0;
        if (in->left) {
            b = *in->p++;
            in->left--;
        }
        v |= (uint64_t)b << (8 * i);
    }
    return v;
}

static void check(struct virtio_rng *rng)
{
    struct virtio_dev *v = &rng->vdev;

    virtio_lock(v);
    /* A broken queue always leaves the device asking for a reset. */
    for (unsigned q = 0; q < v->nr_queues; q++)
        FUZZ_CHECK(!v->queues[q].vq.broken || (v->status & VIRTIO_STATUS_NEEDS_RESET) ||
                   !(v->status & VIRTIO_STATUS_DRIVER_OK));
    for (unsigned q = 0; q < v->nr_queues; q++) {
        const struct virtq *vq = &v->queues[q].vq;
        if (vq->ready) {
            FUZZ_CHECK(vq->size && (vq->size & (vq->size - 1)) == 0);
            FUZZ_CHECK(vq->size <= VIRTIO_RNG_QUEUE_SIZE);
        }
    }
    FUZZ_CHECK(v->bar_addr == PCI_BAR_UNMAPPED || v->bar_addr % VIRTIO_PCI_BAR_SIZE == 0);
    virtio_unlock(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t ram[RAM_SIZE];
    struct guest_mem gm;
    struct bus mmio;
    struct pci_bus pci;
    struct irq_routing rt;
    struct virtio_rng rng;
    struct input in = {data, size};

    memset(ram, 0, sizeof(ram));
    memset(&rng, 0, sizeof(rng));
    gm_init_fake(&gm, ram, RAM_SIZE);
    bus_init(&mmio, "mmio");
    pci_bus_init(&pci, &mmio);
    pci.warn = quiet;
    FUZZ_CHECK(irq_routing_init(&rt, -1, fake_commit) == 0);
    struct event_base *base = event_base_new();
    FUZZ_CHECK(base);
    struct virtio_sys sys = {
        .vm_fd = -1, .gm = &gm, .routing = &rt, .base = base, .ops = &fake_sys_ops};
    FUZZ_CHECK(virtio_rng_init(&rng, &sys) == 0);
    FUZZ_CHECK(virtio_pci_add(&rng.vdev, &pci) == 0);
    struct virtio_dev *v = &rng.vdev;

    for (unsigned ops = 0; in.left && ops < 4096; ops++) {
        uint8_t op = (uint8_t)take(&in, 1);
        unsigned sz = 1u << (op >> 3 & 3);
        switch (op % 6) {
        case 0:
        case 1: {
            uint64_t off = take(&in, 2) % VIRTIO_PCI_BAR_SIZE;
            uint64_t val = op % 6 == 0 ? take(&in, 8) : 0;
            if (off + sz > VIRTIO_PCI_BAR_SIZE)
                break;
            virtio_lock(v);
            uint64_t bar = v->bar_addr;
            virtio_unlock(v);
            if (bar != PCI_BAR_UNMAPPED)
                (void)bus_dispatch(&mmio, bar + off, &val, sz, op % 6 == 0);
            break;
        }
        case 2:
        case 3: {
            unsigned reg = (unsigned)take(&in, 1);
            unsigned csz = sz > 4 ? 4 : sz;
            uint32_t val = op % 6 == 2 ? (uint32_t)take(&in, 4) : 0;
            if (reg + csz > PCI_CFG_SIZE)
                break;
            if (op % 6 == 2)
                pci_config_write(&v->pci, reg, val, csz);
            else
                (void)pci_config_read(&v->pci, reg, csz);
            break;
        }
        case 4: {
            uint64_t addr = take(&in, 2) % RAM_SIZE;
            unsigned n = (unsigned)take(&in, 1);
            for (unsigned i = 0; i < n && addr + i < RAM_SIZE; i++)
                ram[addr + i] = (uint8_t)take(&in, 1);
            break;
        }
        case 5:
            event_base_loop(base, EVLOOP_NONBLOCK);
            break;
        }
        check(&rng);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    check(&rng);

    virtio_rng_destroy(&rng);
    event_base_free(base);
    irq_routing_destroy(&rt);
    pci_bus_destroy(&pci);
    bus_destroy(&mmio);
    return 0;
}
