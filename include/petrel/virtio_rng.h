/*
 * virtio-rng (virtio 1.2, 5.4): one queue of device-writable buffers that the
 * device fills with bytes from getrandom(). Linux's virtio_rng driver feeds
 * them to /dev/hwrng.
 */
#ifndef PETREL_VIRTIO_RNG_H
#define PETREL_VIRTIO_RNG_H

#include <stdint.h>

#include "petrel/virtio.h"

#define VIRTIO_RNG_QUEUE_SIZE 256
#define VIRTIO_RNG_CHAIN_MAX  (64 * 1024) /* bytes given per chain, at most */

struct virtio_rng {
    struct virtio_dev vdev;
    struct virtq_seg segs[VIRTIO_RNG_QUEUE_SIZE]; /* the chain being filled (device lock) */
    uint64_t bytes;                               /* given to the guest (device lock) */
};

/* Sets up the device on the transport (virtio_pci_add() plugs it in). 0 or -errno. */
int virtio_rng_init(struct virtio_rng *rng, const struct virtio_sys *sys) MUST_CHECK;
void virtio_rng_destroy(struct virtio_rng *rng);

/* virtio-rng (--rng) in the machine table (machine.c). */
extern const struct hwdev_ops virtio_rng_pci;
/*
 * Snapshots: the device has no state of its own (every chain is finished in
 * queue_notify), so its node holds only the transport's (virtio_pci_save()).
 */
#define VIRTIO_RNG_STATE_COMPATIBLE "petrel,virtio-rng-v1"

/* Writes the state into a node the caller began (VM paused). Returns out->err. */
int virtio_rng_save(const struct virtio_rng *rng, struct state_out *out) MUST_CHECK;

/* Loads it into a device set up and plugged in the same way; refused: unchanged. */
int virtio_rng_restore(struct virtio_rng *rng, struct state_in *in) MUST_CHECK;

#endif
