/*
 * virtio-console (virtio 1.2, 5.3), one port: transmitq chains go into the
 * console's outbuf, input from the loop fills receiveq buffers. No features
 * beyond the transport's: without VIRTIO_CONSOLE_F_SIZE the driver keeps its
 * own idea of the window size, without MULTIPORT there is no control queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/virtio_console.h"

static struct virtio_console *to_vc(struct virtio_dev *vdev)
{
    return container_of(vdev, struct virtio_console, vdev);
}

/* Whether the driver may be given buffers now (3.1.1: only after DRIVER_OK). */
static bool vc_live(struct virtio_console *vc, unsigned q)
{
    struct virtio_dev *v = &vc->vdev;
    struct virtq *vq = virtio_vq(v, q);

    return !v->paused && (v->status & VIRTIO_STATUS_DRIVER_OK) &&
           !(v->status & VIRTIO_STATUS_NEEDS_RESET) && vq->ready && !vq->broken;
}

/*
 * Copies the held chain's readable bytes from tx_off into the outbuf.
 * Returns true once all of it is there, false when the outbuf filled up.
 */
static bool vc_tx_copy(struct virtio_console *vc)
{
    const struct virtq_chain *ch = &vc->tx_chain;
    uint64_t skip = vc->tx_off;

    for (unsigned i = 0; i < ch->nr_out; i++) {
        const struct virtq_seg *s = &ch->segs[i];
        if (skip >= s->len) {
            skip -= s->len;
            continue;
        }
        size_t want = s->len - (size_t)skip;
        size_t put = outbuf_put(vc->out, (const uint8_t *)s->addr + skip, want);
        vc->tx_off += put;
        vc->tx_bytes += put;
        if (put < want)
            return false;
        skip = 0;
    }
    return true;
}

/*
 * Copies the rest of the held chain into the outbuf and gives it back; WAIT
 * (tx_waiting) while the outbuf is full: the queue then waits for
 * virtio_console_tx_space() instead of a kick.
 */
static enum virtio_chain_ret vc_tx_finish(struct virtio_console *vc, struct virtq *vq)
{
    if (!vc_tx_copy(vc)) {
        vc->tx_waiting = true; /* the outbuf is full: wait for its reader */
        return VIRTIO_CHAIN_WAIT;
    }
    vc->tx_held = false;
    return virtq_push(vq, vc->tx_chain.head, 0) ? VIRTIO_CHAIN_BROKEN : VIRTIO_CHAIN_DONE;
}

/* Before each pop: a chain held from an earlier call goes first. */
static bool vc_tx_ready(struct virtio_dev *vdev, struct virtq *vq)
{
    struct virtio_console *vc = to_vc(vdev);

    return !vc->tx_held || vc_tx_finish(vc, vq) == VIRTIO_CHAIN_DONE;
}

/* A transmit chain just popped (into vc->tx_chain). */
static enum virtio_chain_ret vc_tx_chain(struct virtio_dev *vdev, struct virtq *vq,
                                         struct virtq_chain *ch)
{
    struct virtio_console *vc = to_vc(vdev);

    if (ch->nr_in) {
        virtq_break(vq, "transmitq chain %u has a device-writable buffer", ch->head);
        return VIRTIO_CHAIN_BROKEN;
    }
    vc->tx_held = true;
    vc->tx_off = 0;
    return vc_tx_finish(vc, vq);
}

static const struct virtio_queue_handler vc_tx_handler = {.ready = vc_tx_ready,
                                                          .chain = vc_tx_chain};

/* Guest output: a bounded batch of transmit chains per call (on the loop, lock held). */
static void vc_transmit(struct virtio_console *vc)
{
    vc->tx_chain.segs = vc->tx_segs; /* the rest of a held chain stays */
    vc->tx_chain.cap = VIRTIO_CONSOLE_QUEUE_SIZE;
    virtio_serve_queue_locked(&vc->vdev, VIRTIO_CONSOLE_TX, &vc->tx_chain, VIRTIO_CONSOLE_TX_BUDGET,
                              &vc_tx_handler);
}

/* On the loop, with the device lock held (virtio.h). */
static void vc_queue_notify(struct virtio_dev *vdev, unsigned q)
{
    struct virtio_console *vc = to_vc(vdev);

    if (q == VIRTIO_CONSOLE_TX) {
        if (!vc->tx_waiting)
            vc_transmit(vc);
        return;
    }
    /* receiveq: new buffers. Input that was waiting for them may come now. */
    if (vc->rx_wanted && vc->on_rx_room) {
        vc->rx_wanted = false;
        vc->on_rx_room(vc->on_rx_room_ctx);
    }
}

size_t virtio_console_receive(struct virtio_console *vc, const uint8_t *buf, size_t len)
{
    struct virtio_dev *v = &vc->vdev;
    struct virtq *vq = virtio_vq(v, VIRTIO_CONSOLE_RX);
    struct virtq_chain ch = {.segs = vc->rx_segs, .cap = VIRTIO_CONSOLE_QUEUE_SIZE};
    size_t taken = 0;
    bool pushed = false;
    int r = 0;

    virtio_lock(v);
    if (!vc_live(vc, VIRTIO_CONSOLE_RX))
        goto out;
    /* Each chain takes at least one byte: at most len chains per call. */
    for (;;) {
        while (taken < len && (r = virtq_pop(vq, &ch)) > 0) {
            if (ch.nr_out || !ch.in_bytes) {
                r = virtq_break(vq, "receiveq chain %u has %s", ch.head,
                                ch.nr_out ? "a device-readable buffer" : "no room");
                break;
            }
            size_t n = len - taken < ch.in_bytes ? len - taken : (size_t)ch.in_bytes;
            n = virtq_chain_write(&ch, 0, buf + taken, n);
            if (virtq_push(vq, ch.head, (uint32_t)n)) {
                r = -EIO;
                break;
            }
            pushed = true;
            taken += n;
            vc->rx_bytes += n;
        }
        if (r < 0 || vq->broken)
            break;
        /* Keep avail_event current (EVENT_IDX) so the driver kicks for new buffers. */
        if (!virtq_enable_notify(vq) || taken == len)
            break;
    }
    if (pushed || vq->broken)
        virtio_notify_queue_locked(v, VIRTIO_CONSOLE_RX);
out:
    vc->rx_wanted = taken < len;
    virtio_unlock(v);
    return taken;
}

void virtio_console_tx_space(void *ctx)
{
    struct virtio_console *vc = ctx;

    virtio_lock(&vc->vdev);
    if (vc->tx_waiting) {
        vc->tx_waiting = false;
        virtio_requeue_locked(&vc->vdev, VIRTIO_CONSOLE_TX);
    }
    virtio_unlock(&vc->vdev);
}

/* The configuration: no size (no F_SIZE), one port, no emergency write (no F_EMERG_WRITE). */
static uint64_t vc_config_read(struct virtio_dev *vdev, unsigned offset, unsigned size)
{
    uint8_t cfg[VIRTIO_CONSOLE_CONFIG_SIZE] = {[4] = 1}; /* max_nr_ports = 1 */
    uint64_t x = 0;
    (void)vdev;

    for (unsigned i = 0; i < size && offset + i < sizeof(cfg); i++)
        x |= (uint64_t)cfg[offset + i] << (8 * i);
    return x;
}

/* The driver reset the device (a vCPU thread, lock held): forget the held chain. Done at once. */
static int vc_reset(struct virtio_dev *vdev)
{
    struct virtio_console *vc = to_vc(vdev);

    vc->tx_held = false;
    vc->tx_waiting = false;
    vc->tx_off = 0;
    /* rx_wanted stays: input still waits, and the next driver's buffers take it. */
    return 0;
}

static const struct virtio_dev_ops virtio_console_ops = {
    .device_type = VIRTIO_ID_CONSOLE,
    .class_code = 0x078000, /* "other communication controller", as QEMU's virtio-serial-pci */
    .num_queues = 2,
    .queue_max_size = VIRTIO_CONSOLE_QUEUE_SIZE,
    .config_size = VIRTIO_CONSOLE_CONFIG_SIZE,
    .config_read = vc_config_read,
    .queue_notify = vc_queue_notify,
    .reset = vc_reset,
};

int virtio_console_init(struct virtio_console *vc, const struct virtio_sys *sys, struct outbuf *out)
{
    vc->out = out;
    vc->tx_held = vc->tx_waiting = vc->rx_wanted = false;
    vc->tx_off = vc->tx_bytes = vc->rx_bytes = 0;
    vc->on_rx_room = NULL;
    vc->on_rx_room_ctx = NULL;
    return virtio_pci_init(&vc->vdev, "virtio-console", &virtio_console_ops, 0, sys);
}

void virtio_console_destroy(struct virtio_console *vc)
{
    virtio_pci_destroy(&vc->vdev);
}

/* The machine's virtio-console (hwdev.h), with --console virtio: the console's device. */
struct virtio_console_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct virtio_console vc;
    struct console_port port;
};

static size_t vc_port_receive(void *dev, const uint8_t *buf, size_t len)
{
    return virtio_console_receive(dev, buf, len);
}

static void vc_port_set_room_hook(void *dev, void (*hook)(void *ctx), void *ctx)
{
    struct virtio_console *vc = dev;
    virtio_lock(&vc->vdev);
    vc->on_rx_room = hook;
    vc->on_rx_room_ctx = ctx;
    virtio_unlock(&vc->vdev);
}

static int vc_create(struct hwdev *hw, unsigned index, struct errbuf *eb)
{
    struct virtio_console_hw *d = container_of(hw, struct virtio_console_hw, hw);
    (void)index, (void)eb;
    d->port = (struct console_port){.dev = &d->vc,
                                    .receive = vc_port_receive,
                                    .set_room_hook = vc_port_set_room_hook,
                                    .tx_space = virtio_console_tx_space};
    return 0;
}

static int vc_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct virtio_console_hw *d = container_of(hw, struct virtio_console_hw, hw);
    struct virtio_sys sys = virtio_sys_of(hw->host);
    sys.name = hw->name;
    int ret = virtio_console_init(&d->vc, &sys, hw->host->console_out);
    if (ret)
        return err_set(eb, ret, "cannot set up virtio-console: %s", strerror(-ret));
    ret = virtio_pci_plug(&d->vc.vdev, hw->host, "virtio-console", eb);
    if (ret)
        return ret;
    hw->host->console_connect(hw->host->vm, &d->port, true);
    return 0;
}

static struct virtio_console *vc_of(struct hwdev *hw)
{
    return &container_of(hw, struct virtio_console_hw, hw)->vc;
}

static void vc_pause(struct hwdev *hw)
{
    virtio_pci_pause(&vc_of(hw)->vdev);
}

/* The resume's look at receiveq calls for input refused while paused. */
static void vc_resume(struct hwdev *hw)
{
    virtio_pci_resume(&vc_of(hw)->vdev);
}

static int vc_save(struct hwdev *hw, struct state_out *out)
{
    return virtio_console_save(vc_of(hw), out);
}

static int vc_restore(struct hwdev *hw, struct state_in *in)
{
    return virtio_console_restore(vc_of(hw), in);
}

static void vc_stats(struct hwdev *hw, struct hwdev_stats *st)
{
    virtio_stats(&vc_of(hw)->vdev, st);
}

static void vc_destroy(struct hwdev *hw)
{
    struct virtio_console_hw *d = container_of(hw, struct virtio_console_hw, hw);
    if (hw->realized) {
        hw->host->console_disconnect(hw->host->vm, &d->port);
        virtio_console_destroy(&d->vc);
    }
}

const struct hwdev_ops virtio_console_pci = {
    .type = "virtio-console",
    .compatible = VIRTIO_CONSOLE_STATE_COMPATIBLE,
    .size = sizeof(struct virtio_console_hw),
    .name = "vcons",
    .create = vc_create,
    .realize = vc_realize,
    .pause = vc_pause,
    .resume = vc_resume,
    .save = vc_save,
    .restore = vc_restore,
    .stats = vc_stats,
    .destroy = vc_destroy,
};
int virtio_console_save(const struct virtio_console *vc, struct state_out *out)
{
    state_put_bool(out, "tx-held", vc->tx_held);
    state_put_u32(out, "tx-head", vc->tx_held ? vc->tx_chain.head : 0);
    state_put_u64(out, "tx-off", vc->tx_held ? vc->tx_off : 0);
    return virtio_pci_save(&vc->vdev, out);
}

/*
 * Takes the held chain again (lock held, the transport restored): head's
 * chain must walk, be output only, and hold more than off bytes.
 */
static int vc_tx_rehold(struct virtio_console *vc, uint16_t head, uint64_t off, struct state_in *in)
{
    struct virtq *vq = virtio_vq(&vc->vdev, VIRTIO_CONSOLE_TX);
    struct virtq_chain *ch = &vc->tx_chain;

    if (vq->broken)
        return 0; /* nothing goes out of a broken queue: the driver's reset forgets the chain */
    ch->segs = vc->tx_segs;
    ch->cap = VIRTIO_CONSOLE_QUEUE_SIZE;
    int ret = virtq_get_chain(vq, head, ch);
    if (!ret && !ch->nr_in && off <= ch->out_bytes) {
        vc->tx_held = true;
        vc->tx_off = off;
        return 0;
    }
    const char *what = ret == -EIO ? vq->broken_reason
                       : ret       ? "the transmit queue has no such chain in flight"
                       : ch->nr_in ? "the held chain has device-writable buffers"
                                   : "the held chain is shorter than 'tx-off'";
    state_invalid(in, "properties 'tx-head' %u and 'tx-off' %llu: %s", head,
                  (unsigned long long)off, what);
    if (!vq->broken)
        virtq_break(vq, "after a restore, %s", what);
    virtio_notify_queue_locked(&vc->vdev, VIRTIO_CONSOLE_TX); /* DEVICE_NEEDS_RESET */
    return in->err;
}

int virtio_console_restore(struct virtio_console *vc, struct state_in *in)
{
    uint16_t head, held[2] = {0, 0};
    uint64_t off;
    bool tx_held;

    state_get_bool(in, "tx-held", &tx_held);
    state_get_u16(in, "tx-head", &head);
    state_get_u64(in, "tx-off", &off);
    if (!tx_held && (head || off))
        state_invalid(in, "properties 'tx-head' and 'tx-off' are not 0 without 'tx-held'");
    if (head >= VIRTIO_CONSOLE_QUEUE_SIZE)
        state_invalid(in, "property 'tx-head' is %u, beyond the queue's %u entries", head,
                      VIRTIO_CONSOLE_QUEUE_SIZE);
    held[VIRTIO_CONSOLE_TX] = tx_held;
    if (in->err || virtio_pci_restore(&vc->vdev, in, held))
        return in->err;

    virtio_lock(&vc->vdev);
    vc->tx_held = false;
    vc->tx_off = 0;
    /* The new process's outbuf has room: the transport's look at the queue goes on with it. */
    vc->tx_waiting = false;
    if (tx_held)
        (void)vc_tx_rehold(vc, head, off, in);
    virtio_unlock(&vc->vdev);
    return in->err;
}
