/*
 * Fuzz target: virtio-console on the virtio-pci transport, as a hostile
 * driver drives it: the transport's registers, both queues' rings and
 * buffers in fake guest RAM, kicks, resets. Around it, the host side acts
 * after every op as the first input byte says (it is also the first op):
 * bit 7: 5 bytes of input are offered (virtio_console_receive()), bit 6: the
 * console's reader drains the output buffer (else it never does, and
 * transmit chains wait, held, for room that never comes). The output buffer
 * is small (256 bytes) so that both happen often.
 *
 * Input format: fuzz_virtio_ops.h (tests/fuzz/gen_corpus.py writes seeds in
 * it). Checked after every op: fuzz_virtio_check_locked(); a held transmit
 * chain is one with no writable part and the copied offset within it; every
 * byte the device counted as output is in the buffer or was drained; every
 * byte it says it took as input was counted.
 */
#include <string.h>

#include "fuzz_virtio_ops.h"
#include "petrel/virtio_console.h"

#define RAM_SIZE (64 * 1024)
#define OUT_CAP  256

/* The host side of one input. */
static struct {
    struct outbuf out;
    bool feed, drain;
    uint64_t drained, offered, accepted;
} host;

static void quiet(void *ctx, const char *msg)
{
    (void)ctx, (void)msg;
}

static void check(struct virtio_dev *v)
{
    struct virtio_console *vc = container_of(v, struct virtio_console, vdev);
    uint8_t buf[OUT_CAP], in[5];

    virtio_lock(v);
    fuzz_virtio_check_locked(v);
    FUZZ_CHECK(!vc->tx_waiting || vc->tx_held);
    if (vc->tx_held) {
        FUZZ_CHECK(vc->tx_chain.nr_in == 0);
        FUZZ_CHECK(vc->tx_off <= vc->tx_chain.out_bytes);
    }
    FUZZ_CHECK(vc->tx_bytes == host.drained + outbuf_len(&host.out));
    FUZZ_CHECK(vc->rx_bytes == host.accepted);
    virtio_unlock(v);

    if (host.feed) {
        for (unsigned i = 0; i < sizeof(in); i++)
            in[i] = (uint8_t)(host.offered + i);
        size_t n = virtio_console_receive(vc, in, sizeof(in));
        FUZZ_CHECK(n <= sizeof(in));
        host.accepted += n;
        host.offered += n;
    }
    if (host.drain) {
        size_t n = outbuf_peek(&host.out, buf, sizeof(buf));
        outbuf_consume(&host.out, n); /* on_space: the device may go on */
        host.drained += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fake_virtio_host h;
    struct virtio_console vc;
    struct fuzz_input in = {data, size};

    memset(&vc, 0, sizeof(vc));
    memset(&host, 0, sizeof(host));
    host.feed = size && (data[0] & 0x80);
    host.drain = size && (data[0] & 0x40);
    FUZZ_CHECK(outbuf_init(&host.out, OUT_CAP) == 0);
    host.out.on_space = virtio_console_tx_space;
    host.out.on_space_ctx = &vc;
    FUZZ_CHECK(fake_virtio_host_init(&h, RAM_SIZE) == 0);
    h.pci.warn = quiet;
    FUZZ_CHECK(virtio_console_init(&vc, &h.sys, &host.out) == 0);
    FUZZ_CHECK(virtio_pci_add(&vc.vdev, &h.pci) == 0);

    fuzz_virtio_run(&in, &h, &vc.vdev, check);

    virtio_console_destroy(&vc);
    fake_virtio_host_destroy(&h);
    outbuf_destroy(&host.out);
    return 0;
}
