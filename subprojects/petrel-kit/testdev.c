/*
 * testdev: drives petrel's example PCI device (petrel run --testdev; petrel's
 * include/petrel/testdev.h has its registers) as its driver would.
 *
 * Finds 1234:7e57 on PCI, checks its registers, sets up MSI-X entry 0 to an
 * MSI vector of this CPU, then runs copies: the registers, STATUS cleared, a
 * 4-byte write to the doorbell (an ioeventfd under petrel), and a sleep until
 * the interrupt. Cases, each printed as it passes:
 *
 *   copy      64 KiB from one buffer to another, every byte checked
 *   overlap   256 bytes 16 above and 16 below themselves (memmove semantics)
 *   hostile   each refused with STATUS ERROR, its code, and its interrupt, nothing
 *             written: a source and a destination outside RAM (far above it, and
 *             wrapping past 2^64), lengths 0, TESTDEV_DMA_MAX + 1 and 0xffffffff,
 *             the device's own BAR as source and destination, the LAPIC page in
 *             the MMIO hole as destination, a range running off the end of RAM
 *   masked    entry 0 masked: the copy completes (STATUS polled) without an
 *             interrupt and the PBA bit is set; unmasked, the interrupt comes
 *   again     a good copy after all that: the device still works
 *   byte doorbell  rung with a 1-byte write, which KVM's 4-byte ioeventfd does not
 *             match: petrel's register handler rings the same eventfd
 *
 * Prints
 *   pci: ...                                        every PCI function (pci_print)
 *   testdev: <bdf> bar 0x<addr> msix vector 0x<v>
 *   testdev: <case> ok
 *   testdev: PASS copies <n> refused <m> interrupts <k>
 * and exits 0 through debug-exit (petrel run --debug-exit). A failed check
 * prints "testdev: FAIL <why>" and exits 1; without the device, "testdev: no
 * testdev (1234:7e57)" and exit 3. Options: testdev.timeout=<ms> (20000), the
 * longest wait for one command; testdev.snapshot=1 first programs a command
 * and SCRATCH, prints "testdev: ready for a snapshot" and waits for a byte on
 * COM1 (a test snapshots and restores the VM meanwhile), then rings the
 * doorbell without touching the registers, checks the copy, its interrupt and
 * SCRATCH, prints "testdev: after the snapshot ok" and goes on with the cases.
 */
#include "kit/boot_params.h"
#include "kit/cmdline.h"
#include "kit/io.h"
#include "kit/irq.h"
#include "kit/kit.h"
#include "kit/lapic.h"
#include "kit/pci.h"
#include "kit/printf.h"
#include "kit/string.h"
#include "kit/uart_rx.h"

#define TD_VENDOR 0x1234
#define TD_DEVICE 0x7e57
#define TD_MAGIC  0x56445450u

#define REG_ID       0x00
#define REG_VERSION  0x04
#define REG_SCRATCH  0x08
#define REG_STATUS   0x0c
#define REG_SRC      0x10
#define REG_DST      0x18
#define REG_LEN      0x20
#define REG_ERROR    0x24
#define REG_COUNT    0x28
#define REG_DOORBELL 0x100
#define MSIX_TABLE   0x800
#define MSIX_PBA     0xc00

#define ST_DONE  1u
#define ST_ERROR 2u
#define ERR_LEN  1u
#define ERR_SRC  2u
#define ERR_DST  3u
#define DMA_MAX  (1u << 20)

#define MSIX_CTRL        2
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASK   0x4000

#define BUF 65536

static struct pci_func funcs[PCI_MAX_FUNCS];
static uint8_t src_buf[BUF] __attribute__((aligned(4096)));
static uint8_t dst_buf[BUF] __attribute__((aligned(4096)));
static volatile unsigned interrupts;
static volatile int timer_fired;
static uint64_t bar;
static unsigned timeout_ms = 20000;
static unsigned copies, refused;

static void on_msi(unsigned vector)
{
    (void)vector;
    interrupts++;
}

static void on_timer(unsigned vector)
{
    (void)vector;
    timer_fired = 1;
}

static int fail(const char *why)
{
    printf("testdev: FAIL %s\n", why);
    return 1;
}

static uint32_t reg(unsigned off)
{
    return mmio_read32(bar + off);
}

static void fill(uint8_t *p, unsigned len, unsigned seed)
{
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

/* Sleeps until more than `seen` interrupts came or the timeout passed. 0 or -1. */
static int wait_irq(unsigned seen)
{
    timer_fired = 0;
    lapic_timer_oneshot(IRQ_VECTOR_WAIT, timeout_ms * LAPIC_TIMER_TICKS_PER_MS);
    while (interrupts == seen && !timer_fired)
        kit_idle(); /* sti; hlt: an interrupt pending since the check still wakes it */
    lapic_timer_stop();
    return interrupts == seen ? -1 : 0;
}

/* Polls STATUS (interrupts on, for the timer) until it is not 0. Returns it, 0 on timeout. */
static uint32_t poll_status(void)
{
    uint32_t st;

    timer_fired = 0;
    lapic_timer_oneshot(IRQ_VECTOR_WAIT, timeout_ms * LAPIC_TIMER_TICKS_PER_MS);
    __asm__ volatile("sti" : : : "memory");
    while (!(st = reg(REG_STATUS)) && !timer_fired)
        cpu_relax();
    lapic_timer_stop();
    __asm__ volatile("cli" : : : "memory");
    return st;
}

/* Rings with a 1-byte write: KVM's ioeventfd matches 4-byte writes only, so this one exits to
 * petrel, whose register handler takes the same path. */
static int byte_bell;

/* Programs a command and rings the doorbell; the caller waits. */
static void start(uint64_t src, uint64_t dst, uint32_t len)
{
    mmio_write32(bar + REG_SRC, (uint32_t)src);
    mmio_write32(bar + REG_SRC + 4, (uint32_t)(src >> 32));
    mmio_write32(bar + REG_DST, (uint32_t)dst);
    mmio_write32(bar + REG_DST + 4, (uint32_t)(dst >> 32));
    mmio_write32(bar + REG_LEN, len);
    mmio_write32(bar + REG_STATUS, ST_DONE | ST_ERROR);
    if (byte_bell)
        mmio_write8(bar + REG_DOORBELL, 1);
    else
        mmio_write32(bar + REG_DOORBELL, 1);
}

/* testdev.snapshot=1: a command programmed before, run after a snapshot and restore. */
static int case_snapshot(void)
{
    fill(src_buf, 4096, 8);
    memset(dst_buf, 0, 4096);
    start((uintptr_t)src_buf, (uintptr_t)dst_buf, 4096);
    unsigned seen = interrupts;
    if (wait_irq(seen) || reg(REG_STATUS) != ST_DONE)
        return fail("snapshot: the command before");
    memset(dst_buf, 0, 4096);
    mmio_write32(bar + REG_SCRATCH, 0x5eed);
    mmio_write32(bar + REG_STATUS, ST_DONE | ST_ERROR);
    uart_rx_init();
    puts("testdev: ready for a snapshot");
    (void)kit_getc();
    seen = interrupts;
    mmio_write32(bar + REG_DOORBELL, 1);
    if (wait_irq(seen))
        return fail("snapshot: no interrupt after the restore");
    if (reg(REG_STATUS) != ST_DONE || reg(REG_COUNT) != 2 || reg(REG_SCRATCH) != 0x5eed ||
        memcmp(src_buf, dst_buf, 4096))
        return fail("snapshot: the registers or the copy after the restore");
    copies += 2;
    puts("testdev: after the snapshot ok");
    return 0;
}

/* One command to its interrupt; want_err 0: DONE, else ERROR with that code. 0 or -1 (said). */
static int command(const char *what, uint64_t src, uint64_t dst, uint32_t len, uint32_t want_err)
{
    unsigned seen = interrupts;
    uint32_t count = reg(REG_COUNT);

    start(src, dst, len);
    if (wait_irq(seen)) {
        printf("testdev: FAIL %s: no interrupt within %u ms (status 0x%x count %u)\n", what,
               timeout_ms, reg(REG_STATUS), reg(REG_COUNT));
        return -1;
    }
    uint32_t st = reg(REG_STATUS), err = reg(REG_ERROR), n = reg(REG_COUNT);
    uint32_t want_st = want_err ? ST_ERROR : ST_DONE;
    if (st != want_st || err != want_err || n != count + 1) {
        printf("testdev: FAIL %s: status 0x%x error %u count %u, want 0x%x %u %u\n", what, st, err,
               n, want_st, want_err, count + 1);
        return -1;
    }
    if (want_err)
        refused++;
    else
        copies++;
    return 0;
}

/* Finds the function, its BAR 0 and MSI-X table; enables them. 0, -1 (said) or -3 (absent). */
static int probe(uint16_t *bdf)
{
    struct pci_bar b;
    unsigned n = pci_scan(funcs, PCI_MAX_FUNCS);
    int i = pci_next(funcs, n, 0, TD_VENDOR, TD_DEVICE);

    if (i < 0) {
        printf("testdev: no testdev (%04x:%04x)\n", TD_VENDOR, TD_DEVICE);
        return -3;
    }
    *bdf = funcs[i].bdf;
    if (pci_bar_read(*bdf, 0, &b) || b.io || b.size < 4096 || !b.addr || b.addr >= (1ULL << 32))
        return fail("BAR 0 is not a memory BAR of 4 KiB or more below 4 GiB"), -1;
    bar = b.addr;
    int cap = pci_cap_find(*bdf, PCI_CAP_ID_MSIX);
    if (cap <= 0)
        return fail("no MSI-X capability"), -1;
    uint32_t table = pci_read32(*bdf, (unsigned)cap + 4);
    if ((table & 7) != 0 || (table & ~7u) != MSIX_TABLE)
        return fail("the MSI-X table is not at BAR 0 + 0x800"), -1;
    pci_enable(*bdf, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    if (reg(REG_ID) != TD_MAGIC || reg(REG_VERSION) != 1)
        return fail("ID or VERSION"), -1;
    mmio_write32(bar + REG_SCRATCH, 0xa5a55a5a);
    if (reg(REG_SCRATCH) != 0xa5a55a5a)
        return fail("SCRATCH does not keep what was written"), -1;

    /* MSI-X on with the function masked, entry 0 programmed and unmasked, then the function. */
    struct irq_msi msg;
    irq_init();
    irq_set_handler(IRQ_VECTOR_WAIT, on_timer);
    if (irq_msi_alloc(on_msi, &msg))
        return fail("no MSI vector left"), -1;
    uint16_t ctrl = pci_read16(*bdf, (unsigned)cap + MSIX_CTRL);
    pci_write16(*bdf, (unsigned)cap + MSIX_CTRL, ctrl | MSIX_CTRL_ENABLE | MSIX_CTRL_MASK);
    mmio_write32(bar + MSIX_TABLE + 12, 1);
    mmio_write32(bar + MSIX_TABLE, (uint32_t)msg.addr);
    mmio_write32(bar + MSIX_TABLE + 4, (uint32_t)(msg.addr >> 32));
    mmio_write32(bar + MSIX_TABLE + 8, msg.data);
    mmio_write32(bar + MSIX_TABLE + 12, 0);
    pci_write16(*bdf, (unsigned)cap + MSIX_CTRL, (ctrl | MSIX_CTRL_ENABLE) & ~MSIX_CTRL_MASK);
    printf("testdev: %02x:%02x.%x bar 0x%llx msix vector 0x%x\n", PCI_BDF_BUS(*bdf),
           PCI_BDF_DEV(*bdf), PCI_BDF_FN(*bdf), (unsigned long long)bar, msg.vector);
    return 0;
}

static int case_copy(void)
{
    fill(src_buf, BUF, 1);
    memset(dst_buf, 0xee, BUF);
    if (command("copy", (uintptr_t)src_buf, (uintptr_t)dst_buf, BUF, 0))
        return -1;
    for (unsigned i = 0; i < BUF; i++) {
        if (dst_buf[i] != src_buf[i]) {
            printf("testdev: FAIL copy: byte %u is 0x%02x, want 0x%02x\n", i, dst_buf[i],
                   src_buf[i]);
            return -1;
        }
    }
    puts("testdev: copy ok");
    return 0;
}

static int case_overlap(void)
{
    static uint8_t want[256];

    fill(src_buf, 512, 2);
    for (unsigned i = 0; i < 256; i++)
        want[i] = src_buf[i];
    if (command("overlap up", (uintptr_t)src_buf, (uintptr_t)src_buf + 16, 256, 0))
        return -1;
    if (memcmp(src_buf + 16, want, 256))
        return fail("overlap up: not what memmove gives");
    fill(src_buf, 512, 3);
    for (unsigned i = 0; i < 256; i++)
        want[i] = src_buf[16 + i];
    if (command("overlap down", (uintptr_t)src_buf + 16, (uintptr_t)src_buf, 256, 0))
        return -1;
    if (memcmp(src_buf, want, 256))
        return fail("overlap down: not what memmove gives");
    puts("testdev: overlap ok");
    return 0;
}

/* The end of the e820 RAM range holding addr (0: none). */
static uint64_t ram_end(uint64_t addr)
{
    struct e820_entry e;

    for (unsigned i = 0; boot_params_e820_entry(i, &e) == 0; i++)
        if (e.type == E820_RAM && addr >= e.addr && addr - e.addr < e.size)
            return e.addr + e.size;
    return 0;
}

static int case_hostile(void)
{
    uint64_t s = (uintptr_t)src_buf, d = (uintptr_t)dst_buf, end = ram_end(d);
    const struct {
        const char *what;
        uint64_t src, dst;
        uint32_t len, err;
    } cases[] = {
        {"source far outside RAM", 1ULL << 46, d, 64, ERR_SRC},
        {"destination far outside RAM", s, 1ULL << 46, 64, ERR_DST},
        {"source wrapping", 0xffffffffffffffc0ULL, d, 128, ERR_SRC},
        {"destination wrapping", s, 0xfffffffffffffff0ULL, 64, ERR_DST},
        {"length 0", s, d, 0, ERR_LEN},
        {"length above the limit", s, d, DMA_MAX + 1, ERR_LEN},
        {"length 0xffffffff", s, d, 0xffffffffu, ERR_LEN},
        {"source in the device's BAR", bar, d, 64, ERR_SRC},
        {"destination in the device's BAR", s, bar, 64, ERR_DST},
        {"destination on the MSI-X table", s, bar + MSIX_TABLE, 16, ERR_DST},
        {"destination in the LAPIC page", s, LAPIC_BASE, 16, ERR_DST},
        {"destination running off RAM's end", s, end - 32, 64, ERR_DST},
        {"source running off RAM's end", end - 8, d, 16, ERR_SRC},
    };

    if (!end)
        return fail("hostile: no e820 RAM range holds the buffers");
    fill(src_buf, 256, 4);
    memset(dst_buf, 0x5a, 256);
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (command(cases[i].what, cases[i].src, cases[i].dst, cases[i].len, cases[i].err))
            return -1;
        printf("testdev: hostile %s ok\n", cases[i].what);
    }
    for (unsigned i = 0; i < 256; i++)
        if (dst_buf[i] != 0x5a)
            return fail("hostile: a refused copy wrote the destination buffer");
    if (reg(REG_ID) != TD_MAGIC || (mmio_read32(bar + MSIX_TABLE + 12) & 1))
        return fail("hostile: the device's registers or MSI-X entry changed");
    return 0;
}

static int case_masked(void)
{
    unsigned seen = interrupts;

    mmio_write32(bar + MSIX_TABLE + 12, 1);
    fill(src_buf, 64, 5);
    start((uintptr_t)src_buf, (uintptr_t)dst_buf, 64);
    uint32_t st = poll_status();
    if (st != ST_DONE) {
        printf("testdev: FAIL masked: status 0x%x\n", st);
        return -1;
    }
    copies++;
    if (interrupts != seen)
        return fail("masked: an interrupt came through a masked entry");
    if (!(mmio_read32(bar + MSIX_PBA) & 1))
        return fail("masked: the PBA bit is not set");
    mmio_write32(bar + MSIX_TABLE + 12, 0);
    if (wait_irq(seen))
        return fail("masked: no interrupt after the unmask");
    if (mmio_read32(bar + MSIX_PBA) & 1)
        return fail("masked: the PBA bit stays set after delivery");
    if (memcmp(dst_buf, src_buf, 64))
        return fail("masked: the bytes");
    puts("testdev: masked ok");
    return 0;
}

int kit_main(void)
{
    unsigned long t;
    uint16_t bdf;

    int r = kit_cmdline_uint("testdev.timeout", 10, &t);
    if (r == -2 || (r == 0 && (t < 1 || t > 60000))) {
        puts("testdev: bad testdev.timeout (want 1-60000)");
        return 2;
    }
    if (r == 0)
        timeout_ms = (unsigned)t;
    unsigned long snap = 0;
    r = kit_cmdline_uint("testdev.snapshot", 10, &snap);
    if (r == -2 || (r == 0 && snap > 1)) {
        puts("testdev: bad testdev.snapshot (want 0 or 1)");
        return 2;
    }
    r = probe(&bdf);
    if (r)
        return r == -3 ? 3 : 1;
    if (snap && case_snapshot())
        return 1;
    if (case_copy() || case_overlap() || case_hostile() || case_masked())
        return 1;
    fill(src_buf, BUF, 6);
    if (command("again", (uintptr_t)src_buf, (uintptr_t)dst_buf, BUF, 0) ||
        memcmp(src_buf, dst_buf, BUF))
        return fail("again: the copy after the hostile cases");
    puts("testdev: again ok");
    byte_bell = 1;
    fill(src_buf, 4096, 7);
    if (command("byte doorbell", (uintptr_t)src_buf, (uintptr_t)dst_buf, 4096, 0) ||
        memcmp(src_buf, dst_buf, 4096))
        return fail("byte doorbell: the copy");
    puts("testdev: byte doorbell ok");
    printf("testdev: PASS copies %u refused %u interrupts %u\n", copies, refused, interrupts);
    return 0;
}
