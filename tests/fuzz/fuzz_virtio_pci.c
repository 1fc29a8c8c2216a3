/*
 * Fuzz target: the virtio-pci transport's registers and virtio-rng's queue,
 * as a hostile driver drives them: configuration space, the BAR (common
 * configuration, ISR, notify area, MSI-X table), guest memory under the rings,
 * and the loop that runs the kicks. A fresh device per input, on a real PCI
 * and MMIO bus with fake irqfds and ioeventfds (no KVM), over 64 KiB of fake
 * RAM (so the sanitizers see any access outside it).
 *
 * Input format: fuzz_virtio_ops.h (tests/fuzz/gen_corpus.py writes seeds in
 * it). Checked after every op: fuzz_virtio_check_locked().
 */
#include <string.h>

#include "fuzz_virtio_ops.h"
#include "petrel/virtio_rng.h"

#define RAM_SIZE (64 * 1024)

static void quiet(void *ctx, const char *msg)
{
    (void)ctx, (void)msg;
}

static void check(struct virtio_dev *v)
{
    virtio_lock(v);
    fuzz_virtio_check_locked(v);
    virtio_unlock(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fake_virtio_host h;
    struct virtio_rng rng;
    struct fuzz_input in = {data, size};

    memset(&rng, 0, sizeof(rng));
    FUZZ_CHECK(fake_virtio_host_init(&h, RAM_SIZE) == 0);
    h.pci.warn = quiet;
    FUZZ_CHECK(virtio_rng_init(&rng, &h.sys) == 0);
    FUZZ_CHECK(virtio_pci_add(&rng.vdev, &h.pci) == 0);

    fuzz_virtio_run(&in, &h, &rng.vdev, check);

    virtio_rng_destroy(&rng);
    fake_virtio_host_destroy(&h);
    return 0;
}
