/*
 * virtio-console (virtio 1.2, 5.3) with one port and no MULTIPORT: port 0 is
 * receiveq (queue 0, device-writable buffers the device fills with input)
 * and transmitq (queue 1, device-readable buffers of guest output). Linux's
 * virtio_console driver makes it hvc0.
 *
 * Output goes into an outbuf, the same one the UART writes (the console's):
 * when it is full the device keeps the chain it was copying, stops taking
 * transmit buffers, and continues when virtio_console_tx_space() says the
 * loop made room, so a slow reader slows the guest and nothing is lost.
 *
 * Input comes from the loop through virtio_console_receive(), which copies
 * what fits into the buffers the driver has posted and returns how much that
 * was; the caller (the console's input, console_in.h) keeps the rest. When it
 * could not take everything, the device calls on_rx_room once the driver
 * posts buffers again (a kick on receiveq, or DRIVER_OK), as the UART does
 * when its FIFO drains.
 *
 * A chain that breaks the direction rules (a device-writable buffer on
 * transmitq, a device-readable one or no room on receiveq) breaks the queue:
 * DEVICE_NEEDS_RESET, logged once (virtio.h).
 */
#ifndef PETREL_VIRTIO_CONSOLE_H
#define PETREL_VIRTIO_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/outbuf.h"
#include "petrel/virtio.h"

#define VIRTIO_CONSOLE_QUEUE_SIZE 256
#define VIRTIO_CONSOLE_RX         0  /* receiveq (port 0) */
#define VIRTIO_CONSOLE_TX         1  /* transmitq (port 0) */
#define VIRTIO_CONSOLE_TX_BUDGET  64 /* transmit chains per queue_notify() call */

/* struct virtio_console_config (5.3.4): cols, rows, max_nr_ports, emerg_wr. */
#define VIRTIO_CONSOLE_CONFIG_SIZE 12

struct virtio_console {
    struct virtio_dev vdev; /* vdev.pci.dev.lock guards everything below */
    struct outbuf *out;     /* where guest output goes */

    /* A transmit chain only partly copied because out was full. */
    bool tx_held;
    struct virtq_chain tx_chain;
    uint64_t tx_off;               /* bytes of tx_chain already copied */
    bool tx_waiting;               /* out was full: queue_notify again on tx_space */
    bool rx_wanted;                /* receive() could not take everything: call on_rx_room */
    void (*on_rx_room)(void *ctx); /* on the loop, lock held: must not call back in */
    void *on_rx_room_ctx;

    struct virtq_seg tx_segs[VIRTIO_CONSOLE_QUEUE_SIZE];
    struct virtq_seg rx_segs[VIRTIO_CONSOLE_QUEUE_SIZE];
    uint64_t tx_bytes, rx_bytes; /* counters */
};

/* Sets up the device on the transport, writing output to out. 0 or -errno. */
int virtio_console_init(struct virtio_console *vc, const struct virtio_sys *sys,
                        struct outbuf *out) MUST_CHECK;
void virtio_console_destroy(struct virtio_console *vc);

/*
 * Delivers input into the posted receive buffers (the loop; takes the lock).
 * Returns how many bytes were taken, in order; 0 while the driver is not
 * ready or has posted nothing.
 */
size_t virtio_console_receive(struct virtio_console *vc, const uint8_t *buf, size_t len);

/* outbuf on_space callback (the loop): a held transmit chain may go on. */
void virtio_console_tx_space(void *ctx);

/* virtio-console (--console virtio) in the machine table (machine.c). */
extern const struct hwdev_ops virtio_console_pci;
/*
 * Snapshots: besides the transport, the transmit chain held while the outbuf
 * was full ('tx-held', its head 'tx-head' and the bytes already written
 * 'tx-off'): it is walked again after a restore and goes on from there, to
 * the new process's console. Input is not the device's: what it could not
 * take stays with the console's input (console_in.h).
 */
#define VIRTIO_CONSOLE_STATE_COMPATIBLE "petrel,virtio-console-v1"

/* Writes the state into a node the caller began (VM paused). Returns out->err. */
int virtio_console_save(const struct virtio_console *vc, struct state_out *out) MUST_CHECK;

/*
 * Loads it into a device set up and plugged in the same way. A refusal from
 * the checks leaves the device unchanged; a held chain that no longer walks
 * (its descriptors in guest memory changed) is refused once the transport is
 * restored, with the transmit queue broken, so that the device asks the
 * driver for a reset.
 */
int virtio_console_restore(struct virtio_console *vc, struct state_in *in) MUST_CHECK;

#endif
