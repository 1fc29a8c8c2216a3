/*
 * testdev: the example PCI device (testdev.h has its registers). A DMA engine
 * copying between guest buffers, started by a doorbell on an ioeventfd and
 * completed by an MSI-X interrupt. docs/devices.md walks through this file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "petrel/testdev.h"

#define GSI_NONE UINT32_MAX

static struct testdev *to_td(struct pci_dev *pdev)
{
    return container_of(pdev, struct testdev, pdev);
}

/* ---- the KVM-touching calls, replaceable by tests ---- */

static int sys_irqfd_init(struct testdev *td)
{
    const struct testdev_sys_ops *o = td->sys.ops;
    return o && o->irqfd_init ? o->irqfd_init(&td->irqfd, td->sys.vm_fd, td->gsi)
                              : irqfd_init(&td->irqfd, td->sys.vm_fd, td->gsi);
}

static void sys_irqfd_destroy(struct testdev *td)
{
    const struct testdev_sys_ops *o = td->sys.ops;
    if (o && o->irqfd_destroy)
        o->irqfd_destroy(&td->irqfd);
    else
        irqfd_destroy(&td->irqfd);
}

static int sys_bind(struct testdev *td, uint64_t addr)
{
    const struct testdev_sys_ops *o = td->sys.ops;
    return o && o->ioeventfd_bind ? o->ioeventfd_bind(&td->bell, addr, 4, false)
                                  : ioeventfd_bind(&td->bell, addr, 4, false);
}

static void sys_unbind(struct testdev *td)
{
    const struct testdev_sys_ops *o = td->sys.ops;
    if (o && o->ioeventfd_unbind)
        o->ioeventfd_unbind(&td->bell);
    else
        ioeventfd_unbind(&td->bell);
}

/* Something the guest did wrong, logged once per device (the VM goes on). */
static void testdev_warn(struct testdev *td, const char *fmt, ...) PRINTF(2, 3);
static void testdev_warn(struct testdev *td, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (td->warned)
        return;
    td->warned = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct pci_bus *bus = td->pdev.bus;
    if (bus && bus->warn)
        bus->warn(bus->warn_ctx, msg);
    else
        fprintf(stderr, "petrel: %s\n", msg);
}

/* ---- the command: a copy, then status and an interrupt ---- */

/* Copies LEN bytes from SRC to DST if both ranges are guest RAM (lock held). */
static enum testdev_err testdev_dma_locked(struct testdev *td)
{
    if (!td->len || td->len > TESTDEV_DMA_MAX)
        return TESTDEV_ERR_LEN;
    void *src = gm_ptr(td->sys.gm, td->src, td->len);
    if (!src)
        return TESTDEV_ERR_SRC;
    void *dst = gm_ptr(td->sys.gm, td->dst, td->len);
    if (!dst)
        return TESTDEV_ERR_DST;
    memmove(dst, src, td->len); /* the ranges may overlap */
    td->bytes += td->len;
    return TESTDEV_ERR_NONE;
}

/* Runs one command and reports it: STATUS, ERROR, COUNT, vector 0 (lock held). */
static void testdev_command_locked(struct testdev *td)
{
    enum testdev_err err = testdev_dma_locked(td);

    if (err)
        testdev_warn(td,
                     "%s: refused a copy of %" PRIu32 " bytes from 0x%" PRIx64 " to 0x%" PRIx64
                     " (error %d)",
                     td->pdev.dev.name, td->len, td->src, td->dst, (int)err);
    td->error = err;
    td->status |= err ? TESTDEV_ST_ERROR : TESTDEV_ST_DONE;
    td->count++;
    (void)pci_msix_fire_locked(&td->pdev, 0); /* masked: pending in the PBA */
}

/* Rings the doorbell as KVM does on a write to it. */
static void testdev_bell_write(struct testdev *td)
{
    uint64_t one = 1;
    ssize_t r = write(td->bell.fd, &one, sizeof(one));
    (void)r; /* EAGAIN: a ring is pending anyway */
}

/* The loop: the doorbell rang (rings not yet seen make one command). */
static void testdev_on_bell(evutil_socket_t fd, short what, void *arg)
{
    struct testdev *td = arg;
    uint64_t n;
    (void)what;

    if (read(fd, &n, sizeof(n)) != sizeof(n))
        return;
    pthread_mutex_lock(&td->pdev.dev.lock);
    if (td->paused) {
        td->pending = true; /* testdev_resume() rings again */
    } else {
        td->pending = false;
        testdev_command_locked(td);
    }
    pthread_mutex_unlock(&td->pdev.dev.lock);
}

/* ---- registers (pci.h's BAR callbacks, lock held, on a vCPU thread) ---- */

/* The registers as bytes, for reads of any size at any offset. */
static void testdev_regs(const struct testdev *td, uint8_t *b)
{
    const uint64_t r[] = {
        (uint64_t)TESTDEV_VERSION << 32 | TESTDEV_MAGIC,
        (uint64_t)td->status << 32 | td->scratch,
        td->src,
        td->dst,
        (uint64_t)td->error << 32 | td->len,
        td->count,
    };
    for (size_t i = 0; i < ARRAY_SIZE(r); i++)
        for (unsigned k = 0; k < 8; k++)
            b[8 * i + k] = (uint8_t)(r[i] >> (8 * k));
}

#define TESTDEV_REGS_LEN 0x30

static uint64_t testdev_bar_read(struct pci_dev *pdev, unsigned bar, uint64_t offset, unsigned size)
{
    uint8_t b[TESTDEV_REGS_LEN];
    uint64_t x = 0;

    if (bar != TESTDEV_BAR || offset >= TESTDEV_REGS_LEN)
        return 0;
    testdev_regs(to_td(pdev), b);
    for (unsigned i = 0; i < size && offset + i < TESTDEV_REGS_LEN; i++)
        x |= (uint64_t)b[offset + i] << (8 * i);
    return x;
}

/* Replaces the low (hi false) or high dword of *reg. */
static void set_half(uint64_t *reg, bool hi, uint64_t v)
{
    unsigned sh = hi ? 32 : 0;
    *reg = (*reg & ~(0xffffffffULL << sh)) | (v & 0xffffffffULL) << sh;
}

/* Writes: 4 bytes at a register, or 8 at SRC or DST; other sizes and places do nothing. */
static void testdev_bar_write(struct pci_dev *pdev, unsigned bar, uint64_t offset, uint64_t value,
                              unsigned size)
{
    struct testdev *td = to_td(pdev);

    if (bar != TESTDEV_BAR)
        return;
    if (offset >= TESTDEV_REG_DOORBELL && offset < TESTDEV_REG_DOORBELL + 4) {
        testdev_bell_write(td); /* a write KVM did not catch: the same path */
        return;
    }
    if (size == 8 && (offset == TESTDEV_REG_SRC || offset == TESTDEV_REG_DST)) {
        *(offset == TESTDEV_REG_SRC ? &td->src : &td->dst) = value;
        return;
    }
    if (size != 4)
        return;
    switch (offset) {
    case TESTDEV_REG_SCRATCH:
        td->scratch = (uint32_t)value;
        break;
    case TESTDEV_REG_STATUS:
        td->status &= ~(uint32_t)value; /* write 1 to clear */
        break;
    case TESTDEV_REG_SRC:
    case TESTDEV_REG_SRC + 4:
        set_half(&td->src, offset & 4, value);
        break;
    case TESTDEV_REG_DST:
    case TESTDEV_REG_DST + 4:
        set_half(&td->dst, offset & 4, value);
        break;
    case TESTDEV_REG_LEN:
        td->len = (uint32_t)value;
        break;
    }
}

/* BAR 0 moved: the doorbell's ioeventfd follows it (or waits while it does not decode). */
static void testdev_bar_moved(struct pci_dev *pdev, unsigned bar, uint64_t old_addr,
                              uint64_t new_addr)
{
    struct testdev *td = to_td(pdev);
    (void)old_addr;

    if (bar != TESTDEV_BAR)
        return;
    td->bar_addr = new_addr;
    if (new_addr == PCI_BAR_UNMAPPED) {
        sys_unbind(td);
        return;
    }
    int ret = sys_bind(td, new_addr + TESTDEV_REG_DOORBELL);
    if (ret) /* the doorbell still works, through petrel */
        testdev_warn(td, "%s: cannot bind the doorbell at 0x%" PRIx64 ": %s", pdev->dev.name,
                     new_addr + TESTDEV_REG_DOORBELL, strerror(-ret));
}

/* pci.h's contract: route while unmasked, keep the route while masked. */
static void testdev_msix_vector(struct pci_dev *pdev, unsigned vector,
                                const struct pci_msix_vector *m)
{
    struct testdev *td = to_td(pdev);
    (void)vector;

    if (!m->masked && td->sys.routing && td->gsi != GSI_NONE)
        (void)irq_routing_msi_set(td->sys.routing, td->gsi, m->addr, m->data);
}

static int testdev_msix_signal(struct pci_dev *pdev, unsigned vector)
{
    struct testdev *td = to_td(pdev);
    (void)vector;
    return td->irqfd.ready ? irqfd_signal(&td->irqfd) : -ENODEV;
}

static const struct pci_dev_ops testdev_pci_ops = {
    .bar_read = testdev_bar_read,
    .bar_write = testdev_bar_write,
    .bar_moved = testdev_bar_moved,
    .msix_vector = testdev_msix_vector,
    .msix_signal = testdev_msix_signal,
};

/* ---- life ---- */

int testdev_init(struct testdev *td, const struct testdev_sys *sys)
{
    static const struct pci_id id = {
        .vendor = TESTDEV_VENDOR,
        .device = TESTDEV_DEVICE,
        .subsystem_vendor = TESTDEV_VENDOR,
        .subsystem = TESTDEV_DEVICE,
        .class_code = TESTDEV_CLASS,
        .revision = TESTDEV_VERSION,
    };
    int ret;

    memset(td, 0, sizeof(*td));
    pci_dev_init(&td->pdev, "testdev", &id, &testdev_pci_ops);
    td->sys = *sys;
    td->gsi = GSI_NONE;
    td->bar_addr = PCI_BAR_UNMAPPED;
    td->bell.fd = -1;

    ret = pci_bar_set(&td->pdev, TESTDEV_BAR, TESTDEV_BAR_SIZE, 0);
    if (!ret) {
        ret = pci_msix_init(&td->pdev, TESTDEV_VECTORS, TESTDEV_BAR, TESTDEV_MSIX_TABLE,
                            TESTDEV_MSIX_PBA);
        ret = ret < 0 ? ret : 0;
    }
    if (!ret && sys->routing)
        ret = irq_routing_msi_alloc(sys->routing, &td->gsi);
    if (!ret)
        ret = sys_irqfd_init(td);
    if (!ret)
        ret = ioeventfd_init(&td->bell, sys->vm_fd);
    if (ret)
        goto err_destroy;
    td->bell_ev = event_new(sys->base, td->bell.fd, EV_READ | EV_PERSIST, testdev_on_bell, td);
    if (!td->bell_ev || event_add(td->bell_ev, NULL)) {
        ret = -ENOMEM;
        goto err_destroy;
    }
    return 0;

err_destroy:
    testdev_destroy(td);
    return ret;
}

void testdev_destroy(struct testdev *td)
{
    if (td->bell_ev)
        event_free(td->bell_ev);
    td->bell_ev = NULL;
    if (td->bell.ready) {
        sys_unbind(td);
        ioeventfd_destroy(&td->bell);
    }
    sys_irqfd_destroy(td);
    if (td->gsi != GSI_NONE && td->sys.routing)
        irq_routing_msi_free(td->sys.routing, td->gsi);
    td->gsi = GSI_NONE;
    pci_dev_destroy(&td->pdev);
}

void testdev_reset(struct testdev *td)
{
    uint64_t n;

    pthread_mutex_lock(&td->pdev.dev.lock);
    /* A ring from before the reset is not a command for the device after it. */
    ssize_t r = read(td->bell.fd, &n, sizeof(n));
    (void)r; /* EAGAIN: none */
    td->scratch = td->status = td->len = td->error = td->count = 0;
    td->src = td->dst = 0;
    td->pending = false;
    pci_dev_reset_locked(&td->pdev);
    pthread_mutex_unlock(&td->pdev.dev.lock);
}

void testdev_pause(struct testdev *td)
{
    uint64_t n;

    pthread_mutex_lock(&td->pdev.dev.lock);
    td->paused = true;
    /* A ring the loop has not seen yet is part of the state a snapshot saves. */
    if (read(td->bell.fd, &n, sizeof(n)) == sizeof(n))
        td->pending = true;
    pthread_mutex_unlock(&td->pdev.dev.lock);
}

void testdev_resume(struct testdev *td)
{
    pthread_mutex_lock(&td->pdev.dev.lock);
    td->paused = false;
    if (td->pending)
        testdev_bell_write(td);
    pthread_mutex_unlock(&td->pdev.dev.lock);
}

/* ---- saving and restoring ---- */

int testdev_save(const struct testdev *td, struct state_out *out)
{
    state_put_u32(out, "scratch", td->scratch);
    state_put_u32(out, "status", td->status);
    state_put_u64(out, "src", td->src);
    state_put_u64(out, "dst", td->dst);
    state_put_u32(out, "len", td->len);
    state_put_u32(out, "error", td->error);
    state_put_u32(out, "count", td->count);
    state_put_bool(out, "doorbell-pending", td->pending);
    state_begin(out, "pci", PCI_DEV_STATE_COMPATIBLE);
    if (pci_dev_save(&td->pdev, out) == 0)
        state_end(out);
    return out->err;
}

int testdev_restore(struct testdev *td, struct state_in *in)
{
    uint32_t scratch, status, len, error, count;
    uint64_t src, dst;
    bool pending;
    struct state_in pci;

    state_get_u32(in, "scratch", &scratch);
    state_get_bits(in, "status", TESTDEV_ST_DONE | TESTDEV_ST_ERROR, &status);
    state_get_u64(in, "src", &src);
    state_get_u64(in, "dst", &dst);
    state_get_u32(in, "len", &len);
    state_get_u32(in, "error", &error);
    state_get_u32(in, "count", &count);
    state_get_bool(in, "doorbell-pending", &pending);
    if (!in->err && error > TESTDEV_ERR_MAX)
        state_invalid(in, "property 'error' is %" PRIu32 ": the codes are 0 to %d", error,
                      TESTDEV_ERR_MAX);
    /* The function last: it applies itself (BAR, doorbell bound, MSI-X route) when it passes. */
    if (!in->err) {
        if (state_open(in, "pci", PCI_DEV_STATE_COMPATIBLE, &pci) == 0)
            pci.err = pci_dev_restore(&td->pdev, &pci);
        in->err = pci.err;
    }
    if (in->err)
        return in->err;
    pthread_mutex_lock(&td->pdev.dev.lock);
    td->scratch = scratch;
    td->status = status;
    td->src = src;
    td->dst = dst;
    td->len = len;
    td->error = error;
    td->count = count;
    td->pending = pending;
    if (pending) /* the ring the old process had not run yet */
        testdev_bell_write(td);
    pthread_mutex_unlock(&td->pdev.dev.lock);
    return 0;
}

/* ---- the machine's device (hwdev.h), with --testdev ---- */

struct testdev_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct testdev td;
};

static struct testdev *td_of(struct hwdev *hw)
{
    return &container_of(hw, struct testdev_hw, hw)->td;
}

static int testdev_hw_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct testdev *td = td_of(hw);
    const struct testdev_sys sys = {
        .vm_fd = hw->host->vm_fd,
        .gm = hw->host->mem,
        .routing = hw->host->routing,
        .base = hw->host->base,
    };
    int ret = testdev_init(td, &sys);
    if (ret)
        return err_set(eb, ret, "cannot set up testdev: %s", strerror(-ret));
    ret = pci_bus_add(hw->host->pci, &td->pdev, -1);
    if (ret) {
        testdev_destroy(td);
        return err_set(eb, ret, "cannot plug testdev into PCI: %s", strerror(-ret));
    }
    return 0;
}

static void testdev_hw_reset(struct hwdev *hw)
{
    testdev_reset(td_of(hw));
}

static void testdev_hw_pause(struct hwdev *hw)
{
    testdev_pause(td_of(hw));
}

static void testdev_hw_resume(struct hwdev *hw)
{
    testdev_resume(td_of(hw));
}

static int testdev_hw_save(struct hwdev *hw, struct state_out *out)
{
    return testdev_save(td_of(hw), out);
}

static int testdev_hw_restore(struct hwdev *hw, struct state_in *in)
{
    return testdev_restore(td_of(hw), in);
}

static void testdev_hw_destroy(struct hwdev *hw)
{
    if (hw->realized)
        testdev_destroy(td_of(hw));
}

const struct hwdev_ops testdev_pci = {
    .type = "testdev",
    .compatible = TESTDEV_STATE_COMPATIBLE,
    .size = sizeof(struct testdev_hw),
    .name = "testdev",
    .realize = testdev_hw_realize,
    .reset = testdev_hw_reset,
    .pause = testdev_hw_pause,
    .resume = testdev_hw_resume,
    .save = testdev_hw_save,
    .restore = testdev_hw_restore,
    .destroy = testdev_hw_destroy,
};
