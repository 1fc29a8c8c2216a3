/*
 * virtio-rng (virtio 1.2, 5.4): each buffer the driver makes available is
 * filled with random bytes and given back. The bytes come from getrandom()
 * without blocking (the loop never blocks), at most VIRTIO_RNG_CHAIN_MAX per
 * chain; before the host's pool is initialised a chain goes back short.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "petrel/virtio_rng.h"

static struct virtio_rng *to_rng(struct virtio_dev *vdev)
{
    return container_of(vdev, struct virtio_rng, vdev);
}

/* Fills the chain's writable part; returns the bytes written. */
static uint32_t rng_fill(const struct virtq_chain *ch)
{
    uint32_t done = 0;

    for (unsigned i = ch->nr_out; i < ch->nr_out + ch->nr_in; i++) {
        const struct virtq_seg *s = &ch->segs[i];
        uint32_t want = s->len;
        if (want > VIRTIO_RNG_CHAIN_MAX - done)
            want = VIRTIO_RNG_CHAIN_MAX - done;
        uint32_t got = 0;
        while (got < want) {
            ssize_t n = getrandom((char *)s->addr + got, want - got, GRND_NONBLOCK);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return done + got;
            got += (uint32_t)n;
        }
        done += got;
        if (done == VIRTIO_RNG_CHAIN_MAX)
            break;
    }
    return done;
}

/* One chain: random bytes into its writable part, and back to the driver. */
static enum virtio_chain_ret rng_chain(struct virtio_dev *vdev, struct virtq *vq,
                                       struct virtq_chain *ch)
{
    uint32_t len = rng_fill(ch);

    if (virtq_push(vq, ch->head, len))
        return VIRTIO_CHAIN_BROKEN;
    to_rng(vdev)->bytes += len;
    return VIRTIO_CHAIN_DONE;
}

static const struct virtio_queue_handler rng_handler = {.chain = rng_chain};

/* On the loop, with the device lock held (virtio.h). */
static void rng_queue_notify(struct virtio_dev *vdev, unsigned q)
{
    struct virtio_rng *rng = to_rng(vdev);
    struct virtq_chain ch = {.segs = rng->segs, .cap = VIRTIO_RNG_QUEUE_SIZE};

    /* A queue's worth of chains per call: the loop has other work. */
    virtio_serve_queue_locked(vdev, q, &ch, VIRTIO_RNG_QUEUE_SIZE, &rng_handler);
}

static const struct virtio_dev_ops virtio_rng_ops = {
    .device_type = VIRTIO_ID_RNG,
    .class_code = 0xff0000, /* "other", as QEMU's virtio-rng-pci */
    .num_queues = 1,
    .queue_max_size = VIRTIO_RNG_QUEUE_SIZE,
    .config_size = 0,
    .queue_notify = rng_queue_notify,
    /* No reset: nothing is in flight, every chain is finished in queue_notify. */
};

int virtio_rng_init(struct virtio_rng *rng, const struct virtio_sys *sys)
{
    rng->bytes = 0;
    return virtio_pci_init(&rng->vdev, "virtio-rng", &virtio_rng_ops, 0, sys);
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
    virtio_pci_destroy(&rng->vdev);
}

/* The machine's virtio-rng (hwdev.h), with --rng. */
struct virtio_rng_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct virtio_rng rng;
};

static int rng_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct virtio_rng *rng = &container_of(hw, struct virtio_rng_hw, hw)->rng;
    struct virtio_sys sys = virtio_sys_of(hw->host);
    sys.name = hw->name;
    int ret = virtio_rng_init(rng, &sys);
    if (ret)
        return err_set(eb, ret, "cannot set up virtio-rng: %s", strerror(-ret));
    return virtio_pci_plug(&rng->vdev, hw->host, "virtio-rng", eb);
}

static struct virtio_rng *rng_of(struct hwdev *hw)
{
    return &container_of(hw, struct virtio_rng_hw, hw)->rng;
}

static void rng_pause(struct hwdev *hw)
{
    virtio_pci_pause(&rng_of(hw)->vdev);
}

static void rng_resume(struct hwdev *hw)
{
    virtio_pci_resume(&rng_of(hw)->vdev);
}

static int rng_save(struct hwdev *hw, struct state_out *out)
{
    return virtio_rng_save(rng_of(hw), out);
}

static int rng_restore(struct hwdev *hw, struct state_in *in)
{
    return virtio_rng_restore(rng_of(hw), in);
}

static void rng_stats(struct hwdev *hw, struct hwdev_stats *st)
{
    virtio_stats(&rng_of(hw)->vdev, st);
}

static void rng_destroy(struct hwdev *hw)
{
    if (hw->realized)
        virtio_rng_destroy(&container_of(hw, struct virtio_rng_hw, hw)->rng);
}

const struct hwdev_ops virtio_rng_pci = {
    .type = "virtio-rng",
    .compatible = VIRTIO_RNG_STATE_COMPATIBLE,
    .size = sizeof(struct virtio_rng_hw),
    .name = "rng",
    .realize = rng_realize,
    .pause = rng_pause,
    .resume = rng_resume,
    .save = rng_save,
    .restore = rng_restore,
    .stats = rng_stats,
    .destroy = rng_destroy,
};
int virtio_rng_save(const struct virtio_rng *rng, struct state_out *out)
{
    return virtio_pci_save(&rng->vdev, out);
}

int virtio_rng_restore(struct virtio_rng *rng, struct state_in *in)
{
    return virtio_pci_restore(&rng->vdev, in, NULL);
}
