/*
 * The virtio 1.x modern PCI transport (virtio 1.2, 4.1) and the interface a
 * virtio device implements.
 *
 * A device is one file: it embeds a struct virtio_dev, fills in a const
 * struct virtio_dev_ops (its type, features, queues, config space and
 * callbacks) and calls virtio_pci_init() and virtio_pci_add(). The transport
 * owns everything else: the PCI function (vendor 0x1af4, device 0x1040 +
 * type, revision 1), one 32-bit memory BAR holding the common configuration,
 * the ISR byte, the device configuration, the notification area and the
 * MSI-X table and PBA (virtio_pci.c lists the layout), the vendor
 * capabilities describing them, feature negotiation, the device status
 * state machine, queue set-up and reset.
 *
 * Notifications. Each queue has an eventfd. When the BAR decodes, KVM signals
 * it on the guest's 16-bit write of the queue index at the queue's notify
 * address (KVM_IOEVENTFD, moved when the guest moves the BAR); any other
 * write that reaches petrel there writes the same eventfd. The loop watches
 * the eventfds and calls the device's queue_notify() on the loop: a vCPU
 * never runs device work.
 *
 * Interrupts. MSI-X: by default one vector per queue plus one for configuration
 * changes (ops->nr_vectors may offer fewer: the driver then shares a vector among
 * its queues), each with a GSI and an irqfd allocated up front; the route is set when the
 * guest unmasks the vector (pci.h's MSI-X contract). virtio_notify_queue_locked()
 * applies the driver's suppression (EVENT_IDX, NO_INTERRUPT) and fires the
 * queue's vector: masked, it waits in the PBA until the guest unmasks it.
 *
 * Reset (4.1.4.3). The driver writes 0 to device_status; the device's reset
 * callback runs there, on the vCPU thread, and must not wait for the host: it
 * returns 0 when nothing of the device is left running (the usual case: the
 * reset is then complete before the status write returns), or -EINPROGRESS
 * while something it started is still inside a host syscall (a disk read
 * writing guest RAM). Then the reset is pending: device_status keeps reading
 * its old, non-zero value (4.1.4.3.2: the driver waits for 0 before it
 * re-initializes), every other register write and every notify is ignored, and
 * no interrupt is sent; the device calls virtio_reset_done() once it is idle,
 * from any thread, and the loop completes the reset (queues forgotten, status
 * 0). Nothing on the loop or a vCPU waits for the host meanwhile.
 *
 * Threads and locks. Everything in a struct virtio_dev (the queues included)
 * is guarded by vdev->pci.dev.lock. Register accesses arrive on vCPU threads
 * with it held (pci.h). The loop takes it around queue_notify(), so a device
 * may pop and push there freely; a device finishing work on another thread
 * takes virtio_lock() around virtq_push() and virtio_notify_queue_locked().
 * Every virtio_dev_ops callback runs with the lock held and must not take it.
 */
#ifndef PETREL_VIRTIO_H
#define PETREL_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "petrel/guest_mem.h"
#include "petrel/hwdev.h"
#include "petrel/irq_routing.h"
#include "petrel/pci.h"
#include "petrel/state.h"
#include "petrel/util.h"
#include "petrel/virtqueue.h"

struct event_base;
struct event;

/* PCI identity (4.1.2). */
#define VIRTIO_PCI_VENDOR      0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + the device type: a non-transitional device */
#define VIRTIO_PCI_SUBSYS      0x1100 /* as QEMU: >= 0x40 for a non-transitional device */
#define VIRTIO_PCI_REVISION    1

/* Device types (5). */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4

/* Device status (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER      0x02
#define VIRTIO_STATUS_DRIVER_OK   0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED      0x80

/* ISR status bits (4.1.4.5). */
#define VIRTIO_ISR_QUEUE  0x1
#define VIRTIO_ISR_CONFIG 0x2

#define VIRTIO_NO_VECTOR  0xffff
#define VIRTIO_MAX_QUEUES 64

/* Vendor capability types (4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_LEN        16 /* struct virtio_pci_cap */
#define VIRTIO_PCI_NOTIFY_CAP_LEN 20 /* + notify_off_multiplier */

/* The BAR's layout. */
#define VIRTIO_PCI_BAR         0
#define VIRTIO_PCI_BAR_SIZE    (32 * KiB)
#define VIRTIO_PCI_COMMON_OFF  0x0000
#define VIRTIO_PCI_COMMON_LEN  0x38 /* struct virtio_pci_common_cfg (up to queue_device) */
#define VIRTIO_PCI_ISR_OFF     0x1000
#define VIRTIO_PCI_DEVICE_OFF  0x2000
#define VIRTIO_PCI_DEVICE_MAX  0x1000
#define VIRTIO_PCI_NOTIFY_OFF  0x3000
#define VIRTIO_PCI_NOTIFY_MULT 4 /* queue q's notify address: NOTIFY_OFF + 4 q */
#define VIRTIO_PCI_MSIX_TABLE  0x4000
#define VIRTIO_PCI_MSIX_PBA    0x6000

/* struct virtio_pci_common_cfg (4.1.4.3): offsets in the common area. */
#define VIRTIO_COMMON_DFSELECT      0x00
#define VIRTIO_COMMON_DF            0x04
#define VIRTIO_COMMON_GFSELECT      0x08
#define VIRTIO_COMMON_GF            0x0c
#define VIRTIO_COMMON_MSIX          0x10
#define VIRTIO_COMMON_NUMQ          0x12
#define VIRTIO_COMMON_STATUS        0x14
#define VIRTIO_COMMON_CFGGENERATION 0x15
#define VIRTIO_COMMON_Q_SELECT      0x16
#define VIRTIO_COMMON_Q_SIZE        0x18
#define VIRTIO_COMMON_Q_MSIX        0x1a
#define VIRTIO_COMMON_Q_ENABLE      0x1c
#define VIRTIO_COMMON_Q_NOFF        0x1e
#define VIRTIO_COMMON_Q_DESC        0x20
#define VIRTIO_COMMON_Q_AVAIL       0x28
#define VIRTIO_COMMON_Q_USED        0x30

struct virtio_dev;

/* What a device adds to the transport; one const table per device type. */
struct virtio_dev_ops {
    uint16_t device_type;    /* VIRTIO_ID_* */
    uint32_t class_code;     /* PCI class (0: 0xff0000, "other") */
    unsigned num_queues;     /* 1 .. VIRTIO_MAX_QUEUES */
    uint16_t queue_max_size; /* a power of 2 up to VIRTQ_MAX_SIZE */
    unsigned config_size;    /* bytes of device configuration, <= VIRTIO_PCI_DEVICE_MAX */
    /*
     * MSI-X table entries, 2 .. num_queues + 1 (0: num_queues + 1, a vector per queue and
     * one for configuration). Fewer than that and a driver shares one vector among its
     * queues (Linux falls back to that when it cannot have a vector per queue).
     */
    unsigned nr_vectors;
    /* Device configuration accesses (offset + size <= config_size); may be NULL. */
    uint64_t (*config_read)(struct virtio_dev *vdev, unsigned offset, unsigned size);
    void (*config_write)(struct virtio_dev *vdev, unsigned offset, uint64_t value, unsigned size);
    /* The driver kicked queue q (on the loop; the queue is ready, the driver OK). */
    void (*queue_notify)(struct virtio_dev *vdev, unsigned q);
    /*
     * The driver reset the device (status 0; on a vCPU thread): forget every
     * popped chain, without waiting for the host. 0: done, the transport resets
     * the queues now; -EINPROGRESS: something is still in a host syscall, and
     * the device calls virtio_reset_done() when it is not (see above). May be
     * NULL (done at once).
     */
    int (*reset)(struct virtio_dev *vdev);
};

/*
 * The KVM-touching calls, so that unit tests can run the transport without
 * KVM; NULL members (or a NULL table) mean irq_routing.h's functions.
 */
struct virtio_sys_ops {
    int (*irqfd_init)(struct irqfd *irq, int vm_fd, uint32_t gsi);
    void (*irqfd_destroy)(struct irqfd *irq);
    int (*ioeventfd_bind)(struct ioeventfd *io, uint64_t addr, uint32_t len, bool pio);
    void (*ioeventfd_unbind)(struct ioeventfd *io);
};

/* Where a transport lives: the VM's pieces it uses. */
struct virtio_sys {
    int vm_fd;
    const struct guest_mem *gm;
    struct irq_routing *routing;
    struct event_base *base;          /* the loop that watches the kick eventfds */
    const struct virtio_sys_ops *ops; /* NULL: KVM */
    struct trace *trace;              /* event tracing (NULL: none) */
    const char *name;                 /* the instance ("vda") in the trace; NULL: the PCI name */
    /* The device set DEVICE_NEEDS_RESET (any thread, the device's lock held). NULL: none. */
    void (*needs_reset)(void *ctx, const char *device, const char *why);
    void *needs_reset_ctx;
};

struct virtio_queue {
    struct virtq vq;
    uint16_t vector;       /* MSI-X vector, or VIRTIO_NO_VECTOR */
    struct ioeventfd kick; /* the queue's notify eventfd */
    struct event *ev;      /* the loop's watch on kick.fd */
    struct virtio_dev *vdev;
    uint64_t kicks, interrupts; /* counters */
};

struct virtio_dev {
    struct pci_dev pci; /* pci.dev.lock guards everything below (see above) */
    const struct virtio_dev_ops *ops;
    struct virtio_sys sys;
    uint64_t device_features; /* offered: the device's plus the transport's */
    uint64_t driver_features; /* accepted by the driver */
    uint32_t dfselect, gfselect;
    uint16_t config_vector;
    uint16_t queue_sel;
    uint8_t status;
    uint8_t config_generation;
    uint8_t isr;
    unsigned nr_queues;
    struct virtio_queue *queues;
    unsigned nr_vectors; /* ops->nr_vectors, or nr_queues + 1 */
    uint32_t *gsi;       /* per vector */
    struct irqfd *irqfds;
    uint64_t bar_addr;  /* where the BAR decodes, or PCI_BAR_UNMAPPED */
    bool reset_pending; /* the driver reset it; the device has not finished (see above) */
    bool paused;        /* the VM is paused: kicks wait for virtio_pci_resume() */
    int reset_fd;       /* eventfd: virtio_reset_done() -> the loop */
    struct event *reset_ev;
    uint64_t resets_pending; /* resets that had to wait for the device (a counter) */
    bool warned;             /* a broken queue was logged */
    bool warned_bind;        /* a notify address that would not bind was logged */
};

/*
 * Sets up the transport for a device: the PCI function, its BAR and
 * capabilities, MSI-X, one GSI and irqfd per vector and one kick eventfd per
 * queue, watched on sys->base. features are the device-specific bits offered
 * (VERSION_1, INDIRECT_DESC and EVENT_IDX are added). 0 or -errno.
 */
int virtio_pci_init(struct virtio_dev *vdev, const char *name, const struct virtio_dev_ops *ops,
                    uint64_t features, const struct virtio_sys *sys) MUST_CHECK;

/* Plugs it into the bus (the first free slot): BAR placed, kicks bound. 0 or -errno. */
int virtio_pci_add(struct virtio_dev *vdev, struct pci_bus *bus) MUST_CHECK;

/*
 * The VM's pause and resume (the loop; hwdev pause/resume hooks): while paused the
 * device takes nothing from its queues, so guest memory and the queues stay as
 * a snapshot saves them; the resume looks at every ready queue once (a kick
 * that came meanwhile was consumed). In-flight host I/O still completes.
 */
void virtio_pci_pause(struct virtio_dev *vdev);
void virtio_pci_resume(struct virtio_dev *vdev);

/* Frees everything virtio_pci_init() made (the vCPUs are gone; on the loop's thread). */
void virtio_pci_destroy(struct virtio_dev *vdev);

static inline void virtio_lock(struct virtio_dev *vdev)
{
    pthread_mutex_lock(&vdev->pci.dev.lock);
}

static inline void virtio_unlock(struct virtio_dev *vdev)
{
    pthread_mutex_unlock(&vdev->pci.dev.lock);
}

static inline struct virtq *virtio_vq(struct virtio_dev *vdev, unsigned q)
{
    return &vdev->queues[q].vq;
}

/*
 * Has queue_notify() run again for queue q soon, from the loop (lock held). A
 * device handles a bounded batch of chains per call, so that a driver adding
 * buffers as fast as they are used cannot keep the loop to itself, and calls
 * this when it stops with work left.
 */
void virtio_requeue_locked(struct virtio_dev *vdev, unsigned q);

/* What a device's chain handler tells virtio_serve_queue_locked(). */
enum virtio_chain_ret {
    VIRTIO_CHAIN_DONE,   /* pushed, or handed on to finish later: the next one */
    VIRTIO_CHAIN_WAIT,   /* the device cannot go on now: stop (see below) */
    VIRTIO_CHAIN_BROKEN, /* the chain broke the queue (virtq_break()), or a push failed: stop */
};

/* How a device serves one of its queues. */
struct virtio_queue_handler {
    /*
     * Before each pop, may be NULL: whether the device can take a chain now.
     * It may first finish work it kept from an earlier call (a chain whose
     * sink was full). false stops the round as VIRTIO_CHAIN_WAIT does.
     */
    bool (*ready)(struct virtio_dev *vdev, struct virtq *vq);
    /* A chain just popped into ch; the device pushes it now or later. */
    enum virtio_chain_ret (*chain)(struct virtio_dev *vdev, struct virtq *vq,
                                   struct virtq_chain *ch);
};

/*
 * The service loop of queue q, what a device's queue_notify() calls (on the
 * loop, lock held): with the driver's kicks suppressed, pops chains into ch
 * (its segs and cap set by the device) and hands each to h->chain, at most
 * budget of them; then asks for kicks again and looks once more, since work
 * that arrived before the request was visible may never be kicked
 * (virtq_enable_notify(); with EVENT_IDX that is avail_event), and goes on
 * if there is some. A spent budget requeues the queue (virtio_requeue_locked())
 * so the loop serves others first. VIRTIO_CHAIN_WAIT (or ready() false) stops
 * without asking for kicks: the device calls virtio_requeue_locked() when it
 * can go on (a completion freed a slot, its sink drained). Ends with
 * virtio_notify_queue_locked(): one interrupt decision for the round.
 */
void virtio_serve_queue_locked(struct virtio_dev *vdev, unsigned q, struct virtq_chain *ch,
                               unsigned budget, const struct virtio_queue_handler *h);

/*
 * After a batch of pushes on queue q (lock held, any thread): interrupts the
 * driver if it wants it (virtq_need_interrupt), and if the queue broke, sets
 * DEVICE_NEEDS_RESET and tells the driver.
 */
void virtio_notify_queue_locked(struct virtio_dev *vdev, unsigned q);

/*
 * A device whose reset callback returned -EINPROGRESS is idle now (any thread,
 * no lock needed): the loop completes the pending reset.
 */
void virtio_reset_done(struct virtio_dev *vdev);

/* Logs a problem the guest caused, through the PCI bus's hook when there is one. */
void virtio_warn(struct virtio_dev *vdev, const char *fmt, ...) PRINTF(2, 3);

/* The device configuration changed: new generation, config interrupt (lock held). */
void virtio_config_changed_locked(struct virtio_dev *vdev);

/* The transport's view of the machine a device was created on (hwdev.h). */
struct virtio_sys virtio_sys_of(const struct hwdev_host *host);

/* Adds the transport's counters (interrupts sent; chains, bytes per queue) to st (takes the lock).
 */
struct hwdev_stats;
void virtio_stats(struct virtio_dev *vdev, struct hwdev_stats *st);

/*
 * A device's realize step (hwdev.h): plugs vdev, which virtio_pci_init() set up,
 * into bus 0. On failure says so for name and frees the transport. 0 or -errno.
 */
int virtio_pci_plug(struct virtio_dev *vdev, const struct hwdev_host *host, const char *name,
                    struct errbuf *eb) MUST_CHECK;
/*
 * Snapshots. The transport's state is a subnode "virtio" of the device's node
 * (VIRTIO_PCI_STATE_COMPATIBLE): the device status, the features offered
 * and accepted, the feature and queue selectors, the configuration
 * generation, the ISR and the configuration vector; a subnode "pci" with the
 * PCI function (pci_dev_save()); and a subnode per queue, "queue0", ...
 * (VIRTIO_QUEUE_STATE_COMPATIBLE) with its MSI-X vector and its struct
 * virtq_state (virtqueue.h). A device's own properties sit beside "virtio"
 * in its node. Device configuration is not saved: a device derives it from
 * its own state.
 */
#define VIRTIO_PCI_STATE_COMPATIBLE   "petrel,virtio-pci-v1"
#define VIRTIO_QUEUE_STATE_COMPATIBLE "petrel,virtqueue-v1"

/*
 * Writes the transport's state as a subnode "virtio" of the node the caller
 * began, with the VM paused (on the loop). A reset still waiting for the
 * device (virtio_reset_done()) cannot be saved: -EBUSY, with a message in
 * out->eb. Returns out->err.
 */
int virtio_pci_save(const struct virtio_dev *vdev, struct state_out *out) MUST_CHECK;

/*
 * Loads the subnode "virtio" of in, as virtio_pci_save() wrote it, into a
 * transport set up the same way (the same device type, queues and offered
 * features) and plugged in, with guest memory in place. held (NULL: none) is,
 * per queue, how many chains the device restores as popped and not pushed;
 * an enabled queue must have exactly that many in flight. Every value is
 * checked first (the queues as virtq_restore() checks them, against guest
 * memory); a refusal (in->err, the property named in in->eb) leaves vdev
 * unchanged. Then, as after the driver's writes: the BAR decodes and the kick
 * eventfds are bound where the restored registers say, the MSI-X routes are
 * set (pci_dev_restore()), and with DRIVER_OK every enabled queue is looked
 * at once, as a kick lost with the old process would have asked. Without
 * the lock.
 */
int virtio_pci_restore(struct virtio_dev *vdev, struct state_in *in,
                       const uint16_t *held) MUST_CHECK;

#endif
