/*
 * The hostile driver shared by the virtio fuzz targets (fuzz_virtio_pci.c,
 * fuzz_virtio_blk.c): an input is a sequence of ops on one device, each one
 * byte OP and its arguments; missing bytes read as 0.
 *   OP % 6 == 0  BAR write: offset (2 bytes, little-endian) % the BAR size,
 *                size 1 << (OP >> 3 & 3), the value in the next 8 bytes
 *   OP % 6 == 1  BAR read: offset (2 bytes), size 1 << (OP >> 3 & 3)
 *   OP % 6 == 2  configuration write: register (1 byte), size 1 << (OP >> 3 & 3)
 *                (8 means 4), the value in the next 4 bytes
 *   OP % 6 == 3  configuration read: register (1 byte), the same size
 *   OP % 6 == 4  guest memory: address (2 bytes) in RAM, then N (1 byte) bytes
 *   OP % 6 == 5  run the loop once (kicks reach the device)
 * tests/fuzz/gen_corpus.py writes seeds in this format (vp_* helpers).
 */
#ifndef PETREL_FUZZ_VIRTIO_OPS_H
#define PETREL_FUZZ_VIRTIO_OPS_H

#include <event2/event.h>

#include "fuzz.h"
#include "fake_virtio_driver.h"

#define FUZZ_VIRTIO_MAX_OPS 4096

struct fuzz_input {
    const uint8_t *p;
    size_t left;
};

static inline uint64_t fuzz_take(struct fuzz_input *in, unsigned n)
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

/* Runs the input's ops against v, plugged into h; check(v) after each op and at the end. */
static inline void fuzz_virtio_run(struct fuzz_input *in, struct fake_virtio_host *h,
                                   struct virtio_dev *v, void (*check)(struct virtio_dev *v))
{
    for (unsigned ops = 0; in->left && ops < FUZZ_VIRTIO_MAX_OPS; ops++) {
        uint8_t op = (uint8_t)fuzz_take(in, 1);
        unsigned sz = 1u << (op >> 3 & 3);
        switch (op % 6) {
        case 0:
        case 1: {
            uint64_t off = fuzz_take(in, 2) % VIRTIO_PCI_BAR_SIZE;
            uint64_t val = op % 6 == 0 ? fuzz_take(in, 8) : 0;
            if (off + sz > VIRTIO_PCI_BAR_SIZE)
                break;
            virtio_lock(v);
            uint64_t bar = v->bar_addr;
            virtio_unlock(v);
            if (bar != PCI_BAR_UNMAPPED)
                (void)bus_dispatch(&h->mmio, bar + off, &val, sz, op % 6 == 0);
            break;
        }
        case 2:
        case 3: {
            unsigned reg = (unsigned)fuzz_take(in, 1);
            unsigned csz = sz > 4 ? 4 : sz;
            uint32_t val = op % 6 == 2 ? (uint32_t)fuzz_take(in, 4) : 0;
            if (reg + csz > PCI_CFG_SIZE)
                break;
            if (op % 6 == 2)
                pci_config_write(&v->pci, reg, val, csz);
            else
                (void)pci_config_read(&v->pci, reg, csz);
            break;
        }
        case 4: {
            uint64_t addr = fuzz_take(in, 2) % h->ram_size;
            unsigned n = (unsigned)fuzz_take(in, 1);
            for (unsigned i = 0; i < n && addr + i < h->ram_size; i++)
                h->ram[addr + i] = (uint8_t)fuzz_take(in, 1);
            break;
        }
        case 5:
            event_base_loop(h->base, EVLOOP_NONBLOCK);
            break;
        }
        check(v);
    }
    event_base_loop(h->base, EVLOOP_NONBLOCK);
    check(v);
}

/* What holds for every virtio device: a broken queue of a running device comes with NEEDS_RESET
 * (unless a reset is pending: the driver is done with the queues); a pending reset reads as a
 * non-zero status, so the driver keeps waiting (virtio.h); a ready queue has a power-of-two size
 * no larger than the device's maximum; the BAR sits at a multiple of its size. Lock held. */
static inline void fuzz_virtio_check_locked(struct virtio_dev *v)
{
    FUZZ_CHECK(!v->reset_pending || v->status);
    for (unsigned q = 0; q < v->nr_queues; q++) {
        const struct virtq *vq = &v->queues[q].vq;
        FUZZ_CHECK(!vq->broken || (v->status & VIRTIO_STATUS_NEEDS_RESET) ||
                   !(v->status & VIRTIO_STATUS_DRIVER_OK) || v->reset_pending);
        if (vq->ready) {
            FUZZ_CHECK(vq->size && (vq->size & (vq->size - 1)) == 0);
            FUZZ_CHECK(vq->size <= v->ops->queue_max_size);
        }
    }
    FUZZ_CHECK(v->bar_addr == PCI_BAR_UNMAPPED || v->bar_addr % VIRTIO_PCI_BAR_SIZE == 0);
}

#endif
