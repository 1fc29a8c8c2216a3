/*
 * Fuzz target: testdev's registers and MMIO as a hostile guest drives them:
 * the device on a real PCI bus and MMIO bus, 64 KiB of fake RAM, the doorbell
 * through the loop, fake irqfds (eventfds counted) and ioeventfds.
 *
 * Input format (tests/fuzz/gen_corpus.py writes seeds in it): ops, each
 * starting with one byte OP; missing argument bytes read as 0.
 *   OP >> 5 == 0  BAR 0 write: size 1 << (OP & 3), a 2-byte offset (& 0xfff),
 *                 the value in the next 8 bytes
 *   OP >> 5 == 1  BAR 0 read: size 1 << (OP & 3), a 2-byte offset (& 0xfff)
 *   OP >> 5 == 2  the loop runs (the doorbell's event, if rung)
 *   OP >> 5 == 3  register OP & 3 (SRC, DST, LEN, SCRATCH) = an address from a
 *                 table the next byte picks (inside RAM, its edges, the BAR, the
 *                 hole, wrapping), plus the next byte
 *   OP >> 5 == 4  configuration write: register = next byte, size 1 << (OP & 1 ? 2 : 1),
 *                 the value in the next 4 bytes (moves the BAR, MSI-X control)
 *   OP >> 5 == 5  OP & 1: the VM pauses, else resumes
 *   OP >> 5 == 6  device reset
 *   OP >> 5 == 7  the doorbell rung as KVM does (a write to its eventfd)
 *
 * Checked after every op (RAM after every loop run, where commands run): RAM
 * changes only as the model's copies say (each command's result predicted from
 * the registers it ran with: memmove within RAM, or the error code); STATUS holds only DONE and
 * ERROR; ERROR is a known code; COUNT goes up by at most one per loop run and not while paused; no
 * interrupt is sent while MSI-X is off or the vector masked; the doorbell's
 * ioeventfd is bound exactly where BAR 0 decodes.
 */
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "fuzz.h"
#include "petrel/testdev.h"
#include "fake_virtio_driver.h"

#define RAM (64 * KiB)

static const struct testdev_sys_ops fake_td_ops = {
    .irqfd_init = fake_irqfd_init,
    .irqfd_destroy = fake_irqfd_destroy,
    .ioeventfd_bind = fake_ioeventfd_bind,
    .ioeventfd_unbind = fake_ioeventfd_unbind,
};

struct rig {
    struct fake_virtio_host h;
    struct testdev td;
    uint8_t shadow[RAM]; /* what RAM must hold */
    bool paused;
    unsigned warnings;
};

struct in {
    const uint8_t *p;
    size_t n;
};

/* The device's log of what the guest did wrong: counted, not printed. */
static void quiet(void *ctx, const char *msg)
{
    (void)msg;
    (*(unsigned *)ctx)++;
}

static uint8_t byte(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint64_t le(struct in *in, unsigned n)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++)
        x |= (uint64_t)byte(in) << (8 * i);
    return x;
}

static uint64_t irqs(struct rig *r)
{
    uint64_t n = 0;
    return read(r->td.irqfd.fd, &n, sizeof(n)) == sizeof(n) ? n : 0;
}

/* Whether vector 0 can be delivered now (MSI-X on, function and entry unmasked). */
static bool deliverable(struct rig *r)
{
    uint16_t ctl = (uint16_t)pci_config_read(&r->td.pdev, r->td.pdev.msix.cap + PCI_MSIX_FLAGS, 2);
    uint32_t entry = r->td.pdev.msix.table[3];
    return (ctl & PCI_MSIX_FLAGS_ENABLE) && !(ctl & PCI_MSIX_FLAGS_MASKALL) && !(entry & 1);
}

/* The model's copy: what a command with these registers does to RAM, and its error. */
static enum testdev_err model_command(struct rig *r)
{
    uint64_t src = r->td.src, dst = r->td.dst;
    uint32_t len = r->td.len;

    if (!len || len > TESTDEV_DMA_MAX)
        return TESTDEV_ERR_LEN;
    if (src >= RAM || len > RAM - src)
        return TESTDEV_ERR_SRC;
    if (dst >= RAM || len > RAM - dst)
        return TESTDEV_ERR_DST;
    memmove(r->shadow + dst, r->shadow + src, len);
    return TESTDEV_ERR_NONE;
}

static void run_loop(struct rig *r)
{
    uint32_t count = r->td.count;
    bool rung = false;
    uint64_t n;

    /* Peek at the eventfd the way the loop will see it, and put the count back. */
    if (read(r->td.bell.fd, &n, sizeof(n)) == sizeof(n)) {
        rung = true;
        FUZZ_CHECK(write(r->td.bell.fd, &n, sizeof(n)) == sizeof(n));
    }
    bool can_irq = deliverable(r);
    enum testdev_err want = TESTDEV_ERR_NONE;
    if (rung && !r->paused)
        want = model_command(r);
    (void)irqs(r);
    FUZZ_CHECK(event_base_loop(r->h.base, EVLOOP_NONBLOCK) != -1);
    /* Only a command writes RAM, and commands run only here. */
    FUZZ_CHECK(!memcmp(r->shadow, r->h.ram, RAM));
    uint64_t sent = irqs(r);
    if (rung && !r->paused) {
        FUZZ_CHECK(r->td.count == count + 1);
        FUZZ_CHECK(r->td.error == (uint32_t)want);
        FUZZ_CHECK(r->td.status & (want ? TESTDEV_ST_ERROR : TESTDEV_ST_DONE));
        FUZZ_CHECK(sent == (can_irq ? 1 : 0));
    } else {
        FUZZ_CHECK(r->td.count == count);
        FUZZ_CHECK(sent == 0);
    }
}

static const uint64_t places[] = {
    0,
    0x100,
    RAM / 2,
    RAM - 1,
    RAM,
    RAM + 1,
    0xc0000000u,
    0xfee00000u,
    1ULL << 32,
    UINT64_MAX,
    UINT32_MAX,
    TESTDEV_DMA_MAX,
    TESTDEV_DMA_MAX + 1,
    RAM / 4,
    RAM - 0x100,
};

static void check(struct rig *r)
{
    FUZZ_CHECK(!(r->td.status & ~(TESTDEV_ST_DONE | TESTDEV_ST_ERROR)));
    FUZZ_CHECK(r->td.error <= TESTDEV_ERR_MAX);
    FUZZ_CHECK(r->warnings <= 1); /* once per device */
    if (r->td.bar_addr == PCI_BAR_UNMAPPED)
        FUZZ_CHECK(!r->td.bell.bound);
    else
        FUZZ_CHECK(r->td.bell.bound && r->td.bell.addr == r->td.bar_addr + TESTDEV_REG_DOORBELL);
    /* Nothing was sent outside a loop run or an unmask: drained by each check. */
    if (!deliverable(r))
        FUZZ_CHECK(irqs(r) == 0);
    else
        (void)irqs(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rig r;
    struct in in = {data, size};

    memset(&r, 0, sizeof(r));
    FUZZ_CHECK(fake_virtio_host_init(&r.h, RAM) == 0);
    r.h.pci.warn = quiet;
    r.h.pci.warn_ctx = &r.warnings;
    struct testdev_sys sys = {
        .vm_fd = -1, .gm = &r.h.gm, .routing = &r.h.rt, .base = r.h.base, .ops = &fake_td_ops};
    FUZZ_CHECK(testdev_init(&r.td, &sys) == 0);
    FUZZ_CHECK(pci_bus_add(&r.h.pci, &r.td.pdev, -1) == 0);
    for (unsigned i = 0; i < RAM; i++)
        r.h.ram[i] = r.shadow[i] = (uint8_t)(i * 13 + (i >> 8));

    while (in.n) {
        uint8_t op = byte(&in);
        unsigned len = 1u << (op & 3);
        uint64_t v = 0;

        switch (op >> 5) {
        case 0: {
            uint64_t off = le(&in, 2) & 0xfff;
            v = le(&in, 8);
            if (r.td.bar_addr != PCI_BAR_UNMAPPED && off + len <= TESTDEV_BAR_SIZE)
                (void)bus_dispatch(&r.h.mmio, r.td.bar_addr + off, &v, len, true);
            break;
        }
        case 1: {
            uint64_t off = le(&in, 2) & 0xfff;
            if (r.td.bar_addr != PCI_BAR_UNMAPPED && off + len <= TESTDEV_BAR_SIZE)
                FUZZ_CHECK(bus_dispatch(&r.h.mmio, r.td.bar_addr + off, &v, len, false) == 0);
            break;
        }
        case 2:
            run_loop(&r);
            break;
        case 3: {
            uint8_t t = byte(&in);
            uint64_t a = places[t % ARRAY_SIZE(places)] + byte(&in);
            if (t & 0x80 && r.td.bar_addr != PCI_BAR_UNMAPPED)
                a = r.td.bar_addr + (t & 0x7f);
            static const unsigned regs[] = {TESTDEV_REG_SRC, TESTDEV_REG_DST, TESTDEV_REG_LEN,
                                            TESTDEV_REG_SCRATCH};
            unsigned reg = regs[op & 3];
            unsigned sz = reg == TESTDEV_REG_SRC || reg == TESTDEV_REG_DST ? 8 : 4;
            if (r.td.bar_addr != PCI_BAR_UNMAPPED)
                (void)bus_dispatch(&r.h.mmio, r.td.bar_addr + reg, &a, sz, true);
            break;
        }
        case 4: {
            unsigned reg = byte(&in);
            unsigned sz = op & 1 ? 4 : 2;
            uint32_t x = (uint32_t)le(&in, 4);
            pci_config_write(&r.td.pdev, reg & ~(sz - 1), x, sz); /* takes the lock */
            break;
        }
        case 5:
            if (op & 1) {
                testdev_pause(&r.td);
                r.paused = true;
            } else {
                testdev_resume(&r.td);
                r.paused = false;
            }
            break;
        case 6:
            testdev_reset(&r.td);
            break;
        case 7: {
            uint64_t one = 1;
            FUZZ_CHECK(write(r.td.bell.fd, &one, sizeof(one)) == sizeof(one));
            break;
        }
        }
        check(&r);
    }
    run_loop(&r);
    check(&r);
    FUZZ_CHECK(!memcmp(r.shadow, r.h.ram, RAM));
    testdev_destroy(&r.td);
    fake_virtio_host_destroy(&r.h);
    return 0;
}
