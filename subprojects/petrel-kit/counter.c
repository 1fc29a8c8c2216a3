/*
 * counter: prints "counter: N" for N = 0, 1, 2, ... one line per tick of the
 * LAPIC timer, sleeping in kit_idle() between ticks, forever. N goes up by
 * exactly one a line, whatever happens between ticks (ticks that pile up
 * while the VM is paused give one line, not a jump), so a test can check
 * that no number is skipped or repeated across pause and resume.
 *
 * Options: counter.ms=<n> the period in milliseconds (default 100;
 * approximate, see lapic.h); counter.every=<n> a line every n ticks (default
 * 1): a fast tick with little output; counter.max=<n> exit 0 after printing n lines;
 * counter.smp=1 first starts the other CPUs (include/kit/smp.h), which spin
 * without exits for good, and prints "counter: cpus N": a pause test gets
 * busy vCPUs and a consecutive counter at once.
 * counter.blk=1 first starts the first virtio-blk (1af4:1042) through the
 * kit's virtio driver and prints "counter: blk capacity <sectors>"; then each
 * tick writes sector N % capacity with blkcheck's pattern N & 0xff (byte k of
 * sector s: (P + s + (s >> 8) + k + (k >> 8)) & 0xff), waits for it, and
 * prints "counter: N wrote S" instead of "counter: N": a drive written for as
 * long as the guest runs, whose file says how far it got. No virtio-blk:
 * "counter: no virtio-blk (1af4:1042)", exit 3; a failed write: "counter:
 * FAIL <why>", exit 1. counter.verify=1 (with counter.blk=1) also reads the sector
 * back after each write and compares it before the line is printed (a mismatch:
 * "counter: FAIL sector S byte K reads 0x.. not 0x..", exit 1): scripts/soak's
 * guest, which prints, writes and checks its data while the host pauses it.
 * counter.touch=<percent> first writes one byte (non-zero) to each 4 KiB page
 * of that share of the e820 RAM, from the end of the image up (below 4 GiB, the
 * kit's identity map; the first MiB and the image itself are left alone, so 100
 * touches slightly less), and prints "counter: touched N KiB": a snapshot
 * benchmark gets that much guest RAM holding data, cheaply (a few instructions
 * a page).
 * A bad value prints "counter: bad counter.<option>" and exits 2.
 */
#include "kit/boot_params.h"
#include "kit/cmdline.h"
#include "kit/irq.h"
#include "kit/kit.h"
#include "kit/pci.h"
#include "kit/printf.h"
#include "kit/smp.h"
#include "kit/ticker.h"
#include "kit/virtio.h"

#include <stdint.h>

#define COUNTER_MS_DEFAULT 100
#define BLK_SECTOR         512
#define BLK_CFG_CAPACITY   0 /* virtio 1.2, 5.2.4 */
#define VIRTIO_BLK_T_IN    0
#define VIRTIO_BLK_T_OUT   1
#define VIRTIO_BLK_S_OK    0

/* counter.blk: the drive and its one request's buffers. */
static struct pci_func funcs[PCI_MAX_FUNCS];
static struct virtio_dev blk;
static uint64_t blk_capacity;
static struct {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
} blk_hdr;
static uint8_t blk_data[BLK_SECTOR];
static uint8_t blk_back[BLK_SECTOR]; /* counter.verify: what the sector reads back */
static volatile uint8_t blk_status;

#define COUNTER_PAGE   4096ULL
#define COUNTER_MAPPED (1ULL << 32) /* the identity map the kit runs on */

extern char _end[]; /* kit.ld: the end of the image, its stacks included */

/*
 * Writes a byte to each page of percent % of the e820 RAM, lowest first, above
 * the image and below COUNTER_MAPPED; returns the bytes of RAM touched.
 */
static uint64_t counter_touch(unsigned long percent)
{
    unsigned n = boot_params_e820_count();
    uint64_t ram = 0, done = 0;
    struct e820_entry e;

    for (unsigned i = 0; i < n; i++)
        if (boot_params_e820_entry(i, &e) == 0 && e.type == E820_RAM)
            ram += e.size;
    uint64_t want = ram / 100 * percent / COUNTER_PAGE * COUNTER_PAGE;
    uint64_t floor = ((uint64_t)(uintptr_t)_end + COUNTER_PAGE - 1) & ~(COUNTER_PAGE - 1);
    for (unsigned i = 0; i < n && done < want; i++) {
        if (boot_params_e820_entry(i, &e) != 0 || e.type != E820_RAM)
            continue;
        uint64_t lo = (e.addr + COUNTER_PAGE - 1) & ~(COUNTER_PAGE - 1);
        uint64_t hi = (e.addr + e.size) & ~(COUNTER_PAGE - 1);
        if (lo < floor)
            lo = floor;
        if (hi > COUNTER_MAPPED)
            hi = COUNTER_MAPPED;
        if (hi > lo + (want - done))
            hi = lo + (want - done);
        for (uint64_t a = lo; a < hi; a += COUNTER_PAGE)
            *(volatile uint8_t *)(uintptr_t)a = 0xa5;
        if (hi > lo)
            done += hi - lo;
    }
    return done;
}

/* What the APs do with counter.smp: spin in memory, never exiting. */
static void counter_ap(unsigned cpu)
{
    volatile uint64_t n = 0;

    (void)cpu;
    for (;;)
        n++;
}

/* Starts the first virtio-blk; no timeout on its waits (the ticker has the LAPIC timer). */
static int counter_blk_start(void)
{
    unsigned n = pci_scan(funcs, PCI_MAX_FUNCS);
    int i = pci_next(funcs, n, 0, VIRTIO_VENDOR, VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK));

    if (i < 0) {
        printf("counter: no virtio-blk (%04x:%04x)\n", VIRTIO_VENDOR,
               VIRTIO_PCI_DEVICE(VIRTIO_ID_BLOCK));
        return 3;
    }
    if (virtio_probe(&blk, &funcs[i]) || virtio_start(&blk, 0) || virtio_queue_setup(&blk, 0, 16) ||
        virtio_config_read(&blk, BLK_CFG_CAPACITY, &blk_capacity, sizeof(blk_capacity)) ||
        virtio_driver_ok(&blk)) {
        printf("counter: FAIL %s\n", blk.error);
        return 1;
    }
    if (!blk_capacity) {
        puts("counter: FAIL the drive has no sectors");
        return 1;
    }
    printf("counter: blk capacity %llu\n", (unsigned long long)blk_capacity);
    return 0;
}

/* Reads sector s back and compares it with blk_data. 0, or -1 (reported). */
static int counter_blk_verify(uint64_t s)
{
    struct virtq_buf bufs[3] = {
        {&blk_hdr, sizeof(blk_hdr)}, {blk_back, BLK_SECTOR}, {(void *)&blk_status, 1}};
    uint32_t written;

    blk_hdr.type = VIRTIO_BLK_T_IN;
    blk_hdr.sector = s;
    blk_status = 0xee;
    for (unsigned k = 0; k < BLK_SECTOR; k++)
        blk_back[k] = (uint8_t)~blk_data[k];
    if (virtq_xfer(&blk.vq[0], bufs, 1, 2, &written)) {
        printf("counter: FAIL read %llu: %s\n", (unsigned long long)s, blk.error);
        return -1;
    }
    if (blk_status != VIRTIO_BLK_S_OK) {
        printf("counter: FAIL read %llu: status 0x%02x\n", (unsigned long long)s, blk_status);
        return -1;
    }
    for (unsigned k = 0; k < BLK_SECTOR; k++) {
        if (blk_back[k] != blk_data[k]) {
            printf("counter: FAIL sector %llu byte %u reads 0x%02x not 0x%02x\n",
                   (unsigned long long)s, k, blk_back[k], blk_data[k]);
            return -1;
        }
    }
    return 0;
}

/* Writes tick n's sector and waits for it. Returns the sector, or -1 (reported). */
static int64_t counter_blk_write(unsigned long n, int verify)
{
    uint64_t s = n % blk_capacity;
    struct virtq_buf bufs[3] = {
        {&blk_hdr, sizeof(blk_hdr)}, {blk_data, BLK_SECTOR}, {(void *)&blk_status, 1}};
    uint32_t written;

    for (unsigned k = 0; k < BLK_SECTOR; k++)
        blk_data[k] = (uint8_t)(n + s + (s >> 8) + k + (k >> 8));
    blk_hdr.type = VIRTIO_BLK_T_OUT;
    blk_hdr.sector = s;
    blk_status = 0xee;
    if (virtq_xfer(&blk.vq[0], bufs, 2, 1, &written)) {
        printf("counter: FAIL write %llu: %s\n", (unsigned long long)s, blk.error);
        return -1;
    }
    if (blk_status != VIRTIO_BLK_S_OK) {
        printf("counter: FAIL write %llu: status 0x%02x\n", (unsigned long long)s, blk_status);
        return -1;
    }
    if (verify && counter_blk_verify(s))
        return -1;
    return (int64_t)s;
}

int kit_main(void)
{
    unsigned long ms = COUNTER_MS_DEFAULT, max = 0;

    if (kit_cmdline_uint("counter.ms", 10, &ms) == -2 || ms == 0 || ms > TICKER_MS_MAX) {
        printf("counter: bad counter.ms (want 1 to %u)\n", TICKER_MS_MAX);
        return 2;
    }
    unsigned long every = 1;
    if (kit_cmdline_uint("counter.every", 10, &every) == -2 || every == 0) {
        puts("counter: bad counter.every (want a positive number)");
        return 2;
    }
    int max_err = kit_cmdline_uint("counter.max", 10, &max);
    if (max_err == -2) {
        puts("counter: bad counter.max (want a number)");
        return 2;
    }
    unsigned long smp = 0;
    if (kit_cmdline_uint("counter.smp", 10, &smp) == -2) {
        puts("counter: bad counter.smp (want 0 or 1)");
        return 2;
    }
    unsigned long use_blk = 0;
    if (kit_cmdline_uint("counter.blk", 10, &use_blk) == -2 || use_blk > 1) {
        puts("counter: bad counter.blk (want 0 or 1)");
        return 2;
    }
    unsigned long verify = 0;
    if (kit_cmdline_uint("counter.verify", 10, &verify) == -2 || verify > 1) {
        puts("counter: bad counter.verify (want 0 or 1)");
        return 2;
    }
    unsigned long touch = 0;
    if (kit_cmdline_uint("counter.touch", 10, &touch) == -2 || touch > 100) {
        puts("counter: bad counter.touch (want a percentage, 0 to 100)");
        return 2;
    }
    if (smp)
        printf("counter: cpus %u\n", kit_smp_start(counter_ap));
    if (use_blk) {
        int err = counter_blk_start();
        if (err)
            return err;
    }
    if (touch)
        printf("counter: touched %llu KiB\n", (unsigned long long)(counter_touch(touch) >> 10));
    ticker_start((unsigned)ms);
    int forever = max_err != 0;
    for (unsigned long n = 0; forever || n < max; n++) {
        uint64_t seen = ticker_count();

        while (ticker_count() - seen < every)
            kit_idle();
        if (!use_blk) {
            printf("counter: %lu\n", n);
            continue;
        }
        int64_t s = counter_blk_write(n, (int)verify);
        if (s < 0)
            return 1;
        printf("counter: %lu wrote %llu\n", n, (unsigned long long)s);
    }
    return 0;
}
