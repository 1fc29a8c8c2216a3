/*
 * A small virtio 1.x driver for kit programs: the modern PCI transport
 * (virtio 1.2, 4.1) and split virtqueues (2.7), interrupt-driven through
 * MSI-X. Polling a ring at CPL0 costs ~1 us an instruction on kvm_pvm, so a
 * wait sleeps in kit_idle() until a queue's MSI-X vector fires.
 *
 * Use:
 *
 *     virtio_probe(&d, &pci_func)       vendor capabilities, BAR, MSI-X table
 *     virtio_start(&d, features)        reset (waits for status 0), ACKNOWLEDGE, DRIVER, features,
 *                                       FEATURES_OK, MSI-X on (config vector)
 *     virtio_queue_setup(&d, q, size)   rings in kit memory, a vector, enable
 *     virtio_driver_ok(&d)
 *     virtq_xfer(&d.vq[q], bufs, nout, nin, &written)
 *
 * The queue is also reachable a level down, so that a program can build any
 * chain it likes, malformed ones included: virtq_desc_set() writes one
 * descriptor as given, virtq_publish() puts a head in the available ring,
 * virtq_kick() notifies, virtq_wait() sleeps for the next used element.
 *
 * Everything the device says is untrusted and bounds-checked: capability
 * offsets and lengths against the BAR, the MSI-X table against its BAR,
 * queue sizes, configuration reads against the device area's length, used
 * ring indexes and elements. A failure returns a negative value and leaves a
 * sentence in d->error. Nothing here loops without a bound or an interrupt.
 *
 * The kit runs identity-mapped (the low 4 GiB, where petrel and QEMU's
 * firmware put 32-bit BARs), so a BAR's bus address is its pointer and ring
 * memory's address is what the device is told. BARs above 4 GiB are refused.
 *
 * MSI-X: table entry 0 is the configuration vector, entry q + 1 queue q's;
 * each gets its own CPU vector (irq_msi_alloc()) aimed at this CPU. A
 * configuration interrupt wakes waiters too, so a device that sets
 * DEVICE_NEEDS_RESET ends a wait (-VIRTIO_ERR_RESET) instead of hanging it;
 * one that came while no wait looked at it (a wait on another queue that
 * ended with a used element) is seen by the next wait, on any queue.
 */
#ifndef KIT_VIRTIO_H
#define KIT_VIRTIO_H

#include "kit/irq.h"
#include "kit/pci.h"

#include <stdint.h>

#define VIRTIO_VENDOR          0x1af4
#define VIRTIO_PCI_DEVICE(typ) (0x1040 + (typ)) /* a modern (non-transitional) device */
#define VIRTIO_ID_NET          1
#define VIRTIO_ID_BLOCK        2
#define VIRTIO_ID_CONSOLE      3
#define VIRTIO_ID_RNG          4

/* Device status (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER      0x02
#define VIRTIO_STATUS_DRIVER_OK   0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED      0x80

/* Feature bits (6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32
#define VIRTIO_BIT(b)          (1ull << (b))

/* Descriptor flags (2.7.5). */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTIO_NO_VECTOR 0xffff

/* Limits of the kit's driver. */
#define KIT_VIRTQ_MAX     256 /* entries in a queue the kit sets up */
#define KIT_VIRTIO_QUEUES 4   /* queues per device */
#define KIT_VIRTQ_POOL    8   /* queues' ring memory, for all devices together */

/* What virtq_wait() and virtq_xfer() return, negated. */
#define VIRTIO_ERR_TIMEOUT 1 /* d->timeout_ms passed with no used element */
#define VIRTIO_ERR_RESET   2 /* the device set DEVICE_NEEDS_RESET */
#define VIRTIO_ERR_DEVICE  3 /* the device returned something impossible */
#define VIRTIO_ERR_ARG     4 /* the caller asked for something the queue cannot hold */

/* The rings, as the device sees them (2.7.5, 2.7.6, 2.7.8): little-endian. */
struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[KIT_VIRTQ_MAX + 1]; /* ring[size] is used_event */
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[KIT_VIRTQ_MAX + 1]; /* avail_event follows ring[size - 1] */
};

/* One buffer of a chain for virtq_xfer(). */
struct virtq_buf {
    void *addr;
    uint32_t len;
};

struct virtio_dev;

struct virtq {
    struct virtio_dev *dev;
    unsigned index;
    uint16_t size; /* 0: not set up */
    struct virtq_desc *desc;
    struct virtq_avail *avail;
    struct virtq_used *used;
    uint16_t avail_idx; /* the next available index to publish */
    uint16_t last_used; /* the next used index to consume */
    uint64_t notify;    /* the queue's notification address */
    struct irq_msi msi;
    unsigned entry;               /* its MSI-X table entry (shared when the table is small) */
    volatile unsigned interrupts; /* MSI-X interrupts taken for this queue (or its vector) */
};

struct virtio_dev {
    struct pci_func pci;
    /* Where the structures are (identity-mapped addresses) and how long. */
    uint64_t common, isr, device, notify;
    uint32_t device_len, notify_len, notify_mult;
    uint64_t msix_table;
    unsigned msix_size; /* table entries */
    uint8_t msix_cap;
    uint16_t num_queues;    /* what the device has */
    uint64_t features;      /* what the device offers */
    uint64_t accepted;      /* what was negotiated */
    unsigned timeout_ms;    /* a wait's limit, 0: none (a reset's: 10 s); uses the LAPIC timer */
    unsigned resets_waited; /* resets whose status did not read 0 at once */
    struct irq_msi config_msi;
    volatile unsigned config_interrupts;
    unsigned config_checked; /* config_interrupts when a wait last read the status */
    struct virtq vq[KIT_VIRTIO_QUEUES];
    char error[120];
};

/*
 * Finds the common, notify, ISR and device capabilities of a virtio PCI
 * function and the MSI-X capability, checks each against its BAR, and turns
 * on memory decoding and bus mastering. 0 or -1 (d->error says why).
 */
int virtio_probe(struct virtio_dev *d, const struct pci_func *f);

/*
 * Resets the device and brings it to FEATURES_OK: ACKNOWLEDGE, DRIVER, then
 * accepts VERSION_1 (required) and whatever of want the device offers; turns
 * MSI-X on with entry 0 as the configuration vector. Calls irq_init(). 0 or -1
 * (the status is then FAILED). Called again on a started device (to start it
 * over after a reset), it keeps the configuration vector it had.
 */
int virtio_start(struct virtio_dev *d, uint64_t want);

/*
 * Sets up queue q (< KIT_VIRTIO_QUEUES) with min(the device's size, size)
 * entries (rounded down to a power of 2), rings zeroed in kit memory, MSI-X
 * entry q + 1 on its own vector, and enables it. 0 or -1. Set up again
 * after virtio_start() started the device over, the queue keeps its ring
 * memory and vector (zeroed rings, counters back to 0).
 */
int virtio_queue_setup(struct virtio_dev *d, unsigned q, unsigned size);

/*
 * virtio_queue_setup(), but the device is told the used ring is at used (a
 * hostile driver's: over the queue's own available ring, say); the kit's
 * waits still look at its own. For hostile.c.
 */
int virtio_queue_setup_used(struct virtio_dev *d, unsigned q, unsigned size, uint64_t used);

/* Sets DRIVER_OK. 0, or -1 if the device then says FAILED or NEEDS_RESET. */
int virtio_driver_ok(struct virtio_dev *d);

/* Writes status 0: the device forgets the queues. */
void virtio_reset(struct virtio_dev *d);

/*
 * After virtio_reset(): waits until the status reads 0 (4.1.4.3.2: the driver
 * must before it re-initializes). A device may take its time (petrel's
 * virtio-blk completes a reset once the host has finished the I/O it had in
 * flight, showing the old status meanwhile); one that never finishes is a
 * failure, not a hang: the limit is d->timeout_ms, or 10 s when that is 0,
 * timed by the LAPIC timer. 0 or -1 (d->error says why).
 */
int virtio_reset_wait(struct virtio_dev *d);

uint8_t virtio_status(const struct virtio_dev *d);

/*
 * Reads len bytes of device configuration at off, consistently (the
 * generation counter before and after agree; 4.1.4.3.1). 0, or -1 if the
 * range is outside the device area or the generation never settles.
 */
int virtio_config_read(struct virtio_dev *d, unsigned off, void *buf, unsigned len);
int virtio_config_write(struct virtio_dev *d, unsigned off, const void *buf, unsigned len);

/* Writes descriptor i (< size) exactly as given; -1 if i is outside the table. */
int virtq_desc_set(struct virtq *vq, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                   uint16_t next);

/* Puts head (any value) in the next available slot and publishes the index;
 * first sets used_event to the next used index (EVENT_IDX: interrupt on it). */
void virtq_publish(struct virtq *vq, uint16_t head);

/* Notifies the device (a 16-bit write of the queue index at its notify address). */
void virtq_kick(struct virtq *vq);

/*
 * Sleeps until the device uses the next buffer and returns its element.
 * 0, or -VIRTIO_ERR_TIMEOUT, -VIRTIO_ERR_RESET, or -VIRTIO_ERR_DEVICE (the
 * used index ran ahead of what was published; the element is not taken).
 */
int virtq_wait(struct virtq *vq, struct virtq_used_elem *elem);

/*
 * Sleeps until the queue has taken count MSI-X interrupts in all (its
 * interrupts counter): a check that every used buffer was signalled, since
 * virtq_wait() need not sleep when the device was quick. 0 or a negative
 * VIRTIO_ERR_*.
 */
int virtq_wait_interrupts(struct virtq *vq, unsigned count);

/*
 * One request: nout device-readable buffers then nin device-writable ones,
 * chained in descriptors 0 .. nout + nin - 1, published, kicked and waited
 * for. *written is what the device says it wrote, checked against the
 * writable buffers' total. 0 or a negative VIRTIO_ERR_*.
 */
int virtq_xfer(struct virtq *vq, const struct virtq_buf *bufs, unsigned nout, unsigned nin,
               uint32_t *written);

#endif
