/*
 * Fuzz target: virtio-blk on the virtio-pci transport, as a hostile driver
 * drives it: the transport's registers, the rings, and requests of every
 * kind (well-formed or not) in fake guest RAM, against a 64 KiB disk in a
 * memfd. The device runs with the synchronous backend (blk_io_sync), so every
 * request completes inside the loop turn that pops it and each input runs
 * the same way every time; the worker pool's own paths (threads, reset
 * against workers) are the unit tests' job.
 *
 * Input format: fuzz_virtio_ops.h (tests/fuzz/gen_corpus.py writes seeds in
 * it). Checked after every op: fuzz_virtio_check_locked(), no reset pending
 * and no request left in flight, every request slot free; at the end, the
 * disk kept its size.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_virtio_ops.h"
#include "petrel/virtio_blk.h"

#define RAM_SIZE  (64 * 1024)
#define DISK_SIZE (64 * 1024)

static void quiet(void *ctx, const char *msg)
{
    (void)ctx, (void)msg;
}

static void check(struct virtio_dev *v)
{
    struct virtio_blk *blk = container_of(v, struct virtio_blk, vdev);
    unsigned nfree = 0;

    virtio_lock(v);
    fuzz_virtio_check_locked(v);
    FUZZ_CHECK(!v->reset_pending); /* the sync backend leaves nothing in a syscall */
    FUZZ_CHECK(blk->inflight == 0);
    for (struct blk_req *r = blk->free; r; r = r->next)
        nfree++;
    FUZZ_CHECK(nfree == VIRTIO_BLK_QUEUE_SIZE);
    virtio_unlock(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int disk = -1;
    static char path[64];
    struct fake_virtio_host h;
    struct virtio_blk blk;
    struct fuzz_input in = {data, size};
    struct errbuf eb;
    struct stat st;

    if (disk < 0) {
        disk = memfd_create("petrel-fuzz-disk", MFD_CLOEXEC);
        FUZZ_CHECK(disk >= 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", disk);
    }
    /* The same disk for every input: all zeros. */
    FUZZ_CHECK(ftruncate(disk, 0) == 0 && ftruncate(disk, DISK_SIZE) == 0);
    FUZZ_CHECK(fake_virtio_host_init(&h, RAM_SIZE) == 0);
    h.pci.warn = quiet;
    /* The first input byte picks a read-only drive or a writable one. */
    struct virtio_blk_spec spec = {.path = path, .ro = size && (data[0] & 0x80)};
    FUZZ_CHECK(virtio_blk_open(&blk, &spec, &eb) == 0);
    FUZZ_CHECK(virtio_blk_init(&blk, &blk_io_sync, &h.sys, &eb) == 0);
    FUZZ_CHECK(virtio_pci_add(&blk.vdev, &h.pci) == 0);

    fuzz_virtio_run(&in, &h, &blk.vdev, check);

    virtio_blk_destroy(&blk);
    fake_virtio_host_destroy(&h);
    FUZZ_CHECK(fstat(disk, &st) == 0 && st.st_size == DISK_SIZE);
    return 0;
}
