/*
 * The machine fuzz_snapshot.c restores onto, and fuzz_snapshot_seeds.c saves
 * its seeds from: the devices of machine.c's table that have state, named and
 * ordered as there, made as the unit tests make them (fake guest RAM, buses,
 * interrupt lines, a fake clock; no KVM), and the host CPUID the vCPU nodes
 * are checked against.
 */
#ifndef PETREL_FUZZ_SNAPSHOT_MACHINE_H
#define PETREL_FUZZ_SNAPSHOT_MACHINE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/event.h>
#include <libfdt.h>

#include "fake_irq.h"
#include "fuzz_virtio_ops.h"
#include "petrel/acpi_pm.h"
#include "petrel/config.h"
#include "petrel/hwdev.h"
#include "petrel/i8042.h"
#include "petrel/outbuf.h"
#include "petrel/pci.h"
#include "petrel/platform.h"
#include "petrel/rtc_cmos.h"
#include "petrel/snapshot.h"
#include "petrel/testdev.h"
#include "petrel/uart8250.h"
#include "petrel/virtio_blk.h"
#include "petrel/virtio_console.h"
#include "petrel/virtio_net.h"
#include "petrel/virtio_rng.h"
#include "petrel/x86_state.h"

#define FUZZ_RAM_MAX      (256 * MiB) /* more RAM than this: the first 256 MiB of it */
#define FUZZ_DISK_SECTORS 2048        /* every drive: 1 MiB */

/* ---- the host the x86 state is checked against ---- */

/* This host's KVM as the target sees it: AMD, every feature bit but a few reserved ones. */
static inline void fixed_cpuid(union x86_cpuid_table *t)
{
    static const struct kvm_cpuid_entry2 leaves[] = {
        {.function = 0, .eax = 0xd, .ebx = 0x68747541, .edx = 0x69746e65, .ecx = 0x444d4163},
        {.function = 1, .ecx = 0xffffffff, .edx = 0xffffffff},
        {.function = 7,
         .index = 0,
         .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
         .ebx = 0xffffffff,
         .ecx = 0xffffffff,
         .edx = 0xffffffff},
        {.function = 7, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0x7fffffff},
        {.function = 0xd,
         .index = 0,
         .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
         .eax = 0xffffffff,
         .edx = 0xffffffff},
        {.function = 0xd, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0xffffffff},
        {.function = 0x40000001, .eax = 0xff0fffff},
        {.function = 0x80000001, .ecx = 0xffffffff, .edx = 0xffffffff},
        {.function = 0x80000007, .edx = 0xffffffff},
        {.function = 0x80000008, .ebx = 0xffffffff},
    };
    memset(t, 0, sizeof(*t));
    t->hdr.nent = ARRAY_SIZE(leaves);
    memcpy(t->hdr.entries, leaves, sizeof(leaves));
}

/* ---- guest RAM as the snapshot's memory file would hold it ---- */

struct ram {
    uint8_t *host;
    size_t size;
    struct guest_mem gm;
};

static inline void ram_put16(struct ram *r, uint64_t gpa, uint16_t v)
{
    if (gpa < r->size && r->size - gpa >= 2)
        memcpy(r->host + gpa, &v, 2); /* little-endian, as the rings are */
}

/* A u32-cell or u64 property of node, or 0. */
static inline uint64_t prop_num(const void *fdt, int node, const char *name)
{
    int len;
    const void *p = fdt_getprop(fdt, node, name, &len);
    if (p && len == 4)
        return fdt32_ld(p);
    if (p && len == 8)
        return fdt64_ld(p);
    return 0;
}

/* The indexes of every enabled queue of the transport at node "virtio", and a held chain. */
static inline void ram_fill_virtio(struct ram *r, const void *fdt, int dev)
{
    int virtio = fdt_subnode_offset(fdt, dev, "virtio"), q;
    if (virtio < 0)
        return;
    fdt_for_each_subnode(q, fdt, virtio)
    {
        if (!prop_num(fdt, q, "enabled"))
            continue;
        ram_put16(r, prop_num(fdt, q, "avail-addr") + 2,
                  (uint16_t)prop_num(fdt, q, "last-avail-idx"));
        ram_put16(r, prop_num(fdt, q, "used-addr") + 2, (uint16_t)prop_num(fdt, q, "used-idx"));
    }
    /* virtio-console's held transmit chain: one readable buffer longer than what went out. */
    int txq = fdt_subnode_offset(fdt, virtio, "queue1");
    if (prop_num(fdt, dev, "tx-held") && txq >= 0) {
        uint64_t desc =
            prop_num(fdt, txq, "desc-addr") + 16 * (prop_num(fdt, dev, "tx-head") & 0xffff);
        uint32_t len = (uint32_t)prop_num(fdt, dev, "tx-off") + 16;
        if (desc < r->size && r->size - desc >= 16)
            memcpy(r->host + desc + 8, &len, 4); /* address 0, no flags: the end of the chain */
    }
}

/* Zeroed RAM of the configuration's size (at most FUZZ_RAM_MAX), mapped lazily. 0 or -errno. */
static inline int ram_init(struct ram *r, const struct vm_config *cfg)
{
    r->size = cfg->memory < FUZZ_RAM_MAX ? cfg->memory : FUZZ_RAM_MAX;
    r->host = mmap(NULL, r->size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r->host == MAP_FAILED)
        return -errno;
    gm_init_fake(&r->gm, r->host, r->size);
    return 0;
}

/* What the memory file of the state fdt holds of every virtio device in its node "devices". */
static inline void ram_fill(struct ram *r, const void *fdt)
{
    int devices = fdt_subnode_offset(fdt, 0, "devices"), dev;
    if (devices < 0)
        return;
    fdt_for_each_subnode(dev, fdt, devices) ram_fill_virtio(r, fdt, dev);
}

static inline void ram_destroy(struct ram *r)
{
    munmap(r->host, r->size);
}

/* ---- a machine of fake devices, as machine.c lists them ---- */

struct machine {
    const struct vm_config *cfg;
    struct bus pio, mmio;
    struct pci_bus pci;
    struct irq_routing rt;
    struct event_base *base;
    struct outbuf out;
    struct hwdev_roles roles;
    struct hwdev_host host; /* .vm is the machine */
    struct hwdev_list devices;
    int *disks; /* FUZZ's memfds, one per drive */
};

static inline struct machine *machine_of(const struct hwdev *hw)
{
    return hw->host->vm;
}

static inline struct virtio_sys sys_of(struct machine *m)
{
    return (struct virtio_sys){
        .vm_fd = -1, .gm = m->host.mem, .routing = &m->rt, .base = m->base, .ops = &fake_sys_ops};
}

static inline const struct rtc_cmos_clock *fixed_clock(void);

/* Each device: its hwdev, its interrupt lines, the device. */
struct f_uart {
    struct hwdev hw;
    struct fake_irq irq;
    struct uart8250 uart;
};
struct f_kbc {
    struct hwdev hw;
    struct fake_irq kbd, aux;
    struct i8042 kbc;
};
struct f_pm {
    struct hwdev hw;
    struct fake_irq sci;
    struct acpi_pm pm;
};
struct f_rtc {
    struct hwdev hw;
    struct fake_irq irq;
    struct rtc_cmos rtc;
    bool ready;
};
struct f_rng {
    struct hwdev hw;
    struct virtio_rng rng;
};
struct f_blk {
    struct hwdev hw;
    unsigned index;
    struct virtio_blk blk;
};
struct f_vcons {
    struct hwdev hw;
    struct virtio_console vc;
};
struct f_testdev {
    struct hwdev hw;
    struct testdev td;
};
struct f_net {
    struct hwdev hw;
    unsigned index;
    struct virtio_net net; /* no backend: what the guest sends is counted and dropped */
};

static inline int uart_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct f_uart *d = container_of(hw, struct f_uart, hw);
    (void)eb;
    fake_irq_init(&d->irq);
    uart8250_init(&d->uart, "com1", &d->irq.line, hw->host->console_out);
    return bus_register(hw->host->pio, UART_COM1_BASE, UART_NR_REGS, &d->uart.dev);
}

static inline int uart_restore(struct hwdev *hw, struct state_in *in)
{
    return uart8250_restore(&container_of(hw, struct f_uart, hw)->uart, in);
}

static inline int uart_save(struct hwdev *hw, struct state_out *out)
{
    return uart8250_save(&container_of(hw, struct f_uart, hw)->uart, out);
}

static inline void uart_destroy(struct hwdev *hw)
{
    if (hw->realized) {
        (void)bus_unregister(hw->host->pio, UART_COM1_BASE);
        uart8250_destroy(&container_of(hw, struct f_uart, hw)->uart);
    }
}

static inline int kbc_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct f_kbc *d = container_of(hw, struct f_kbc, hw);
    (void)eb;
    fake_irq_init(&d->kbd);
    fake_irq_init(&d->aux);
    i8042_init(&d->kbc, hw->host->exit, &d->kbd.line, &d->aux.line);
    return bus_register(hw->host->pio, I8042_DATA_PORT, I8042_RANGE_LEN, &d->kbc.dev);
}

static inline int kbc_restore(struct hwdev *hw, struct state_in *in)
{
    return i8042_restore(&container_of(hw, struct f_kbc, hw)->kbc, in);
}

static inline int kbc_save(struct hwdev *hw, struct state_out *out)
{
    return i8042_save(&container_of(hw, struct f_kbc, hw)->kbc, out);
}

static inline void kbc_destroy(struct hwdev *hw)
{
    if (hw->realized) {
        (void)bus_unregister(hw->host->pio, I8042_DATA_PORT);
        i8042_destroy(&container_of(hw, struct f_kbc, hw)->kbc);
    }
}

static inline int pm_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct f_pm *d = container_of(hw, struct f_pm, hw);
    (void)eb;
    fake_irq_init(&d->sci);
    acpi_pm_init(&d->pm, hw->host->exit, &d->sci.line);
    return bus_register(hw->host->pio, PLAT_PM1A_EVT_PORT, PLAT_PM_PORTS, &d->pm.dev);
}

static inline int pm_restore(struct hwdev *hw, struct state_in *in)
{
    return acpi_pm_restore(&container_of(hw, struct f_pm, hw)->pm, in);
}

static inline int pm_save(struct hwdev *hw, struct state_out *out)
{
    return acpi_pm_save(&container_of(hw, struct f_pm, hw)->pm, out);
}

static inline void pm_destroy(struct hwdev *hw)
{
    if (hw->realized) {
        (void)bus_unregister(hw->host->pio, PLAT_PM1A_EVT_PORT);
        acpi_pm_destroy(&container_of(hw, struct f_pm, hw)->pm);
    }
}

static inline int rtc_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct f_rtc *d = container_of(hw, struct f_rtc, hw);
    (void)eb;
    fake_irq_init(&d->irq);
    int ret = rtc_cmos_init(&d->rtc, &d->irq.line, fixed_clock());
    if (ret)
        return ret;
    d->ready = true;
    return bus_register(hw->host->pio, RTC_CMOS_INDEX_PORT, RTC_CMOS_NR_PORTS, &d->rtc.dev);
}

static inline int rtc_restore(struct hwdev *hw, struct state_in *in)
{
    return rtc_cmos_restore(&container_of(hw, struct f_rtc, hw)->rtc, in);
}

static inline int rtc_save(struct hwdev *hw, struct state_out *out)
{
    return rtc_cmos_save(&container_of(hw, struct f_rtc, hw)->rtc, out);
}

static inline void rtc_destroy(struct hwdev *hw)
{
    struct f_rtc *d = container_of(hw, struct f_rtc, hw);
    if (hw->realized)
        (void)bus_unregister(hw->host->pio, RTC_CMOS_INDEX_PORT);
    if (d->ready)
        rtc_cmos_destroy(&d->rtc);
}

static inline int pci_realize(struct hwdev *hw, struct errbuf *eb)
{
    (void)eb;
    return bus_register(hw->host->pio, PLAT_PCI_CONF_PORT, PLAT_PCI_CONF_LEN, &hw->host->pci->dev);
}

static inline int pci_restore(struct hwdev *hw, struct state_in *in)
{
    return pci_bus_restore(hw->host->pci, in);
}

static inline int pci_save(struct hwdev *hw, struct state_out *out)
{
    return pci_bus_save(hw->host->pci, out);
}

static inline void pci_destroy(struct hwdev *hw)
{
    if (hw->realized)
        (void)bus_unregister(hw->host->pio, PLAT_PCI_CONF_PORT);
}

static inline int rng_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct f_rng *d = container_of(hw, struct f_rng, hw);
    struct virtio_sys sys = sys_of(machine_of(hw));
    (void)eb;
    int ret = virtio_rng_init(&d->rng, &sys);
    if (ret)
        return ret;
    ret = virtio_pci_add(&d->rng.vdev, hw->host->pci);
    if (ret)
        virtio_rng_destroy(&d->rng);
    return ret;
}

static inline int rng_restore(struct hwdev *hw, struct state_in *in)
{
    return virtio_rng_restore(&container_of(hw, struct f_rng, hw)->rng, in);
}

static inline int rng_save(struct hwdev *hw, struct state_out *out)
{
    return virtio_rng_save(&container_of(hw, struct f_rng, hw)->rng, out);
}

static inline void rng_destroy(struct hwdev *hw)
{
    if (hw->realized)
        virtio_rng_destroy(&container_of(hw, struct f_rng, hw)->rng);
}

/* As blk_hw_create(): vdX, the drive opened (here: its stand-in, named as the configuration). */
static inline int blk_create(struct hwdev *hw, unsigned index, struct errbuf *eb)
{
    struct f_blk *d = container_of(hw, struct f_blk, hw);
    struct machine *m = machine_of(hw);
    char path[64];

    snprintf(hw->name, sizeof(hw->name), "vd%c", index < 26 ? 'a' + index : '?');
    d->index = index;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", m->disks[index]);
    struct virtio_blk_spec spec = {.path = path, .ro = m->cfg->drives[index].ro};
    int ret = virtio_blk_open(&d->blk, &spec, eb);
    if (ret)
        return ret;
    char *named = strdup(m->cfg->drives[index].path);
    FUZZ_CHECK(named);
    free(d->blk.path);
    d->blk.path = named;
    return 0;
}

static inline int blk_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct f_blk *d = container_of(hw, struct f_blk, hw);
    struct virtio_sys sys = sys_of(machine_of(hw));
    int ret = virtio_blk_init(&d->blk, &blk_io_sync, &sys, eb);
    return ret ? ret : virtio_pci_add(&d->blk.vdev, hw->host->pci);
}

static inline int blk_restore(struct hwdev *hw, struct state_in *in)
{
    return virtio_blk_restore(&container_of(hw, struct f_blk, hw)->blk, in);
}

static inline int blk_save(struct hwdev *hw, struct state_out *out)
{
    return virtio_blk_save(&container_of(hw, struct f_blk, hw)->blk, out);
}

static inline void blk_destroy(struct hwdev *hw)
{
    virtio_blk_destroy(&container_of(hw, struct f_blk, hw)->blk);
}

static inline int vcons_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct f_vcons *d = container_of(hw, struct f_vcons, hw);
    struct virtio_sys sys = sys_of(machine_of(hw));
    (void)eb;
    int ret = virtio_console_init(&d->vc, &sys, hw->host->console_out);
    if (ret)
        return ret;
    ret = virtio_pci_add(&d->vc.vdev, hw->host->pci);
    if (ret)
        virtio_console_destroy(&d->vc);
    return ret;
}

static inline int vcons_restore(struct hwdev *hw, struct state_in *in)
{
    return virtio_console_restore(&container_of(hw, struct f_vcons, hw)->vc, in);
}

static inline int vcons_save(struct hwdev *hw, struct state_out *out)
{
    return virtio_console_save(&container_of(hw, struct f_vcons, hw)->vc, out);
}

static inline void vcons_destroy(struct hwdev *hw)
{
    if (hw->realized)
        virtio_console_destroy(&container_of(hw, struct f_vcons, hw)->vc);
}

static const struct testdev_sys_ops fake_testdev_sys_ops = {
    .irqfd_init = fake_irqfd_init,
    .irqfd_destroy = fake_irqfd_destroy,
    .ioeventfd_bind = fake_ioeventfd_bind,
    .ioeventfd_unbind = fake_ioeventfd_unbind,
};

static inline int td_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct f_testdev *d = container_of(hw, struct f_testdev, hw);
    struct machine *m = machine_of(hw);
    struct testdev_sys sys = {.vm_fd = -1,
                              .gm = hw->host->mem,
                              .routing = &m->rt,
                              .base = m->base,
                              .ops = &fake_testdev_sys_ops};
    (void)eb;
    int ret = testdev_init(&d->td, &sys);
    if (ret)
        return ret;
    ret = pci_bus_add(hw->host->pci, &d->td.pdev, -1);
    if (ret)
        testdev_destroy(&d->td);
    return ret;
}

static inline int td_restore(struct hwdev *hw, struct state_in *in)
{
    return testdev_restore(&container_of(hw, struct f_testdev, hw)->td, in);
}

static inline int td_save(struct hwdev *hw, struct state_out *out)
{
    return testdev_save(&container_of(hw, struct f_testdev, hw)->td, out);
}

static inline void td_destroy(struct hwdev *hw)
{
    if (hw->realized)
        testdev_destroy(&container_of(hw, struct f_testdev, hw)->td);
}

static struct hwdev_ops fake_uart = {.size = sizeof(struct f_uart),
                                     .realize = uart_realize,
                                     .save = uart_save,
                                     .restore = uart_restore,
                                     .destroy = uart_destroy};
static struct hwdev_ops fake_kbc = {.size = sizeof(struct f_kbc),
                                    .realize = kbc_realize,
                                    .save = kbc_save,
                                    .restore = kbc_restore,
                                    .destroy = kbc_destroy};
static struct hwdev_ops fake_pm = {.size = sizeof(struct f_pm),
                                   .realize = pm_realize,
                                   .save = pm_save,
                                   .restore = pm_restore,
                                   .destroy = pm_destroy};
static struct hwdev_ops fake_rtc = {.size = sizeof(struct f_rtc),
                                    .realize = rtc_realize,
                                    .save = rtc_save,
                                    .restore = rtc_restore,
                                    .destroy = rtc_destroy};
static struct hwdev_ops fake_pci = {.size = sizeof(struct hwdev),
                                    .realize = pci_realize,
                                    .save = pci_save,
                                    .restore = pci_restore,
                                    .destroy = pci_destroy};
static struct hwdev_ops fake_rng = {.size = sizeof(struct f_rng),
                                    .realize = rng_realize,
                                    .save = rng_save,
                                    .restore = rng_restore,
                                    .destroy = rng_destroy};
static struct hwdev_ops fake_blk = {.size = sizeof(struct f_blk),
                                    .create = blk_create,
                                    .realize = blk_realize,
                                    .save = blk_save,
                                    .restore = blk_restore,
                                    .destroy = blk_destroy};
static struct hwdev_ops fake_vcons = {.size = sizeof(struct f_vcons),
                                      .realize = vcons_realize,
                                      .save = vcons_save,
                                      .restore = vcons_restore,
                                      .destroy = vcons_destroy};
static struct hwdev_ops fake_testdev = {.size = sizeof(struct f_testdev),
                                        .realize = td_realize,
                                        .save = td_save,
                                        .restore = td_restore,
                                        .destroy = td_destroy};

static inline int net_create(struct hwdev *hw, unsigned index, struct errbuf *eb)
{
    (void)eb;
    container_of(hw, struct f_net, hw)->index = index;
    snprintf(hw->name, sizeof(hw->name), "net%u", index);
    return 0;
}

static inline int net_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct f_net *d = container_of(hw, struct f_net, hw);
    struct virtio_sys sys = sys_of(machine_of(hw));
    uint8_t mac[6];
    net_spec_mac(&hw->host->cfg->nets[d->index], d->index, mac);
    int ret = virtio_net_init(&d->net, &sys, mac, false);
    if (ret)
        return err_set(eb, ret, "virtio-net: %s", strerror(-ret));
    ret = virtio_pci_add(&d->net.vdev, hw->host->pci);
    if (ret) {
        virtio_net_destroy(&d->net);
        return err_set(eb, ret, "virtio-net: plugging in: %s", strerror(-ret));
    }
    return 0;
}

static inline int net_restore(struct hwdev *hw, struct state_in *in)
{
    return virtio_net_restore(&container_of(hw, struct f_net, hw)->net, in);
}

static inline int net_save(struct hwdev *hw, struct state_out *out)
{
    return virtio_net_save(&container_of(hw, struct f_net, hw)->net, out);
}

static inline void net_destroy(struct hwdev *hw)
{
    if (hw->realized)
        virtio_net_destroy(&container_of(hw, struct f_net, hw)->net);
}

static struct hwdev_ops fake_net = {.size = sizeof(struct f_net),
                                    .create = net_create,
                                    .realize = net_realize,
                                    .save = net_save,
                                    .restore = net_restore,
                                    .destroy = net_destroy};

static inline unsigned per_net(const struct vm_config *cfg)
{
    return cfg->nr_nets;
}

static inline unsigned one(const struct vm_config *cfg)
{
    (void)cfg;
    return 1;
}

static inline unsigned with_rng(const struct vm_config *cfg)
{
    return cfg->rng;
}

static inline unsigned per_drive(const struct vm_config *cfg)
{
    return cfg->nr_drives;
}

static inline unsigned with_virtio_console(const struct vm_config *cfg)
{
    return cfg->console_virtio;
}

static inline unsigned with_testdev(const struct vm_config *cfg)
{
    return cfg->testdev;
}

/* machine.c's rows that have state, in its order: each takes the real row's name and compatible. */
static const struct {
    const struct hwdev_ops *real;
    struct hwdev_ops *fake;
    unsigned (*count)(const struct vm_config *cfg);
} rows[] = {
    {&uart8250_com1, &fake_uart, one},
    {&i8042_kbc, &fake_kbc, one},
    {&acpi_pm_fixed, &fake_pm, one},
    {&rtc_cmos_isa, &fake_rtc, one},
    {&pci_host_bridge, &fake_pci, one},
    {&virtio_rng_pci, &fake_rng, with_rng},
    {&virtio_blk_pci, &fake_blk, per_drive},
    {&virtio_console_pci, &fake_vcons, with_virtio_console},
    {&testdev_pci, &fake_testdev, with_testdev},
    {&virtio_net_pci, &fake_net, per_net},
};

static inline int64_t clock_realtime(void *ctx)
{
    (void)ctx;
    return INT64_C(1700000000) * 1000000000; /* November 2023 */
}

static inline int64_t clock_monotonic(void *ctx)
{
    (void)ctx;
    return INT64_C(1000) * 1000000000;
}

/* The RTC's clocks stand still: every input runs the same way, and two saves agree. */
static inline const struct rtc_cmos_clock *fixed_clock(void)
{
    static const struct rtc_cmos_clock clock = {clock_realtime, clock_monotonic, NULL};
    return &clock;
}

/* The machine cfg describes, realized on fakes over ram. 0 or -errno with eb. */
static inline int machine_init(struct machine *m, const struct vm_config *cfg, struct ram *ram,
                               int *disks, struct errbuf *eb)
{
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->disks = disks;
    bus_init(&m->pio, "pio");
    bus_init(&m->mmio, "mmio");
    pci_bus_init(&m->pci, &m->mmio);
    hwdev_list_init(&m->devices);
    FUZZ_CHECK(irq_routing_init(&m->rt, -1, fake_commit) == 0);
    m->base = event_base_new();
    FUZZ_CHECK(m->base);
    FUZZ_CHECK(outbuf_init(&m->out, VM_CONSOLE_BUFFER) == 0);
    m->host = (struct hwdev_host){
        .cfg = cfg,
        .vm_fd = -1,
        .mem = &ram->gm,
        .pio = &m->pio,
        .mmio = &m->mmio,
        .pci = &m->pci,
        .routing = &m->rt,
        .base = m->base,
        .console_out = &m->out,
        .debugcon_out = &m->out,
        .roles = &m->roles,
        .vm = m,
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        rows[i].fake->type = rows[i].real->type;
        rows[i].fake->compatible = rows[i].real->compatible;
        rows[i].fake->name = rows[i].real->name;
        for (unsigned k = 0; k < rows[i].count(cfg); k++) {
            int ret = hwdev_list_create(&m->devices, rows[i].fake, &m->host, k, eb);
            if (ret)
                return ret;
        }
    }
    return hwdev_list_realize(&m->devices, eb);
}

static inline void machine_destroy(struct machine *m)
{
    hwdev_list_destroy(&m->devices);
    outbuf_destroy(&m->out);
    event_base_free(m->base);
    irq_routing_destroy(&m->rt);
    pci_bus_destroy(&m->pci);
    bus_destroy(&m->mmio);
    bus_destroy(&m->pio);
}

/* hwdev_list_restore() from the node "devices" of fdt. 0 or -errno with eb. */
static inline int machine_restore(struct machine *m, const void *fdt, struct errbuf *eb)
{
    struct state_in root = {.fdt = fdt, .eb = eb}, devices;
    if (state_open(&root, "devices", "petrel,devices-v1", &devices))
        return devices.err;
    return hwdev_list_restore(&m->devices, &devices);
}

static inline void save_devices(struct state_out *out, void *ctx)
{
    struct machine *m = ctx;
    state_begin(out, "devices", "petrel,devices-v1");
    if (!out->err)
        out->err = hwdev_list_save(&m->devices, out);
    state_end(out);
}

/* One memfd per drive the configuration may name, all zeros, FUZZ_DISK_SECTORS each. */
static inline void fuzz_disks_reset(int *disks)
{
    for (unsigned i = 0; i < VIRTIO_BLK_MAX_DRIVES; i++) {
        if (!disks[i])
            disks[i] = memfd_create("petrel-fuzz-disk", MFD_CLOEXEC);
        FUZZ_CHECK(disks[i] > 0 && ftruncate(disks[i], 0) == 0 &&
                   ftruncate(disks[i], FUZZ_DISK_SECTORS * 512) == 0);
    }
}

#endif
