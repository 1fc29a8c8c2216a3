/*
 * A virtio driver's side of the transport, for tests: the register writes a
 * driver makes to bring a device up (features, queues, DRIVER_OK), through a
 * real MMIO bus into the device's BAR, and a host to plug devices into (fake
 * RAM, MMIO and PCI buses, GSI routing with fake commits, an event base, and
 * fake_virtio_sys.h's irqfds and ioeventfds).
 */
#ifndef PETREL_TEST_FAKE_VIRTIO_DRIVER_H
#define PETREL_TEST_FAKE_VIRTIO_DRIVER_H

#include <stdlib.h>
#include <event2/event.h>

#include "petrel/bus.h"
#include "petrel/pci.h"
#include "petrel/virtio.h"
#include "fake_virtio_sys.h"

/* Everything a virtio device needs around it, without KVM. */
struct fake_virtio_host {
    uint8_t *ram;
    size_t ram_size;
    struct guest_mem gm;
    struct bus mmio;
    struct pci_bus pci;
    struct irq_routing rt;
    struct event_base *base;
    struct virtio_sys sys;
};

/* 0, or -1 if something could not be made. */
static inline int fake_virtio_host_init(struct fake_virtio_host *h, size_t ram_size)
{
    h->ram = calloc(1, ram_size);
    h->ram_size = ram_size;
    if (!h->ram)
        return -1;
    gm_init_fake(&h->gm, h->ram, ram_size);
    bus_init(&h->mmio, "mmio");
    pci_bus_init(&h->pci, &h->mmio);
    if (irq_routing_init(&h->rt, -1, fake_commit))
        return -1;
    h->base = event_base_new();
    if (!h->base)
        return -1;
    h->sys = (struct virtio_sys){
        .vm_fd = -1, .gm = &h->gm, .routing = &h->rt, .base = h->base, .ops = &fake_sys_ops};
    return 0;
}

/* After the devices are destroyed (their events live in the base). */
static inline void fake_virtio_host_destroy(struct fake_virtio_host *h)
{
    if (h->base)
        event_base_free(h->base);
    irq_routing_destroy(&h->rt);
    pci_bus_destroy(&h->pci);
    bus_destroy(&h->mmio);
    free(h->ram);
}

/* A BAR access as a vCPU makes it; bus_dispatch()'s result (0 when claimed). */
static inline int fake_virtio_bar(struct bus *mmio, struct virtio_dev *v, uint64_t off,
                                  uint64_t *val, unsigned size, bool write)
{
    return bus_dispatch(mmio, v->bar_addr + off, val, size, write);
}

static inline uint64_t fake_virtio_bar_rd(struct bus *mmio, struct virtio_dev *v, uint64_t off,
                                          unsigned size)
{
    uint64_t x = 0;
    (void)fake_virtio_bar(mmio, v, off, &x, size, false);
    return x;
}

static inline void fake_virtio_bar_wr(struct bus *mmio, struct virtio_dev *v, uint64_t off,
                                      uint64_t val, unsigned size)
{
    (void)fake_virtio_bar(mmio, v, off, &val, size, true);
}

/* ACKNOWLEDGE, DRIVER, the features (both halves), FEATURES_OK. */
static inline void fake_virtio_negotiate(struct bus *mmio, struct virtio_dev *v, uint64_t features)
{
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_STATUS,
                       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_GFSELECT, 0, 4);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_GF, (uint32_t)features, 4);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_GFSELECT, 1, 4);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_GF, (uint32_t)(features >> 32), 4);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_STATUS,
                       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK,
                       1);
}

/* The offered features, both halves. */
static inline uint64_t fake_virtio_device_features(struct bus *mmio, struct virtio_dev *v)
{
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_DFSELECT, 0, 4);
    uint64_t lo = fake_virtio_bar_rd(mmio, v, VIRTIO_COMMON_DF, 4);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_DFSELECT, 1, 4);
    return lo | fake_virtio_bar_rd(mmio, v, VIRTIO_COMMON_DF, 4) << 32;
}

/* Sets up queue q with its rings at desc, avail and used, and enables it. */
static inline void fake_virtio_setup_queue(struct bus *mmio, struct virtio_dev *v, unsigned q,
                                           uint16_t size, uint16_t vector, uint64_t desc,
                                           uint64_t avail, uint64_t used)
{
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_SELECT, q, 2);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_SIZE, size, 2);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_MSIX, vector, 2);
    /* As Linux writes 64-bit registers: two 32-bit halves (used: one 64-bit write). */
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_DESC, (uint32_t)desc, 4);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_DESC + 4, desc >> 32, 4);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_AVAIL, (uint32_t)avail, 4);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_AVAIL + 4, avail >> 32, 4);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_USED, used, 8);
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_ENABLE, 1, 2);
}

static inline void fake_virtio_driver_ok(struct bus *mmio, struct virtio_dev *v)
{
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_STATUS,
                       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                           VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK,
                       1);
}

/* MSI-X on (the function's capability), every vector still masked. */
static inline void fake_virtio_msix_enable(struct virtio_dev *v)
{
    pci_config_write(&v->pci, v->pci.msix.cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
}

/* Vector n gets a message and is unmasked (a pending interrupt goes out now). */
static inline void fake_virtio_msix_unmask(struct bus *mmio, struct virtio_dev *v, unsigned n)
{
    uint64_t e = VIRTIO_PCI_MSIX_TABLE + 16 * n;
    fake_virtio_bar_wr(mmio, v, e, 0xfee00000u, 4);
    fake_virtio_bar_wr(mmio, v, e + 4, 0, 4);
    fake_virtio_bar_wr(mmio, v, e + 8, 0x40 + n, 4);
    fake_virtio_bar_wr(mmio, v, e + 12, 0, 4);
}

#define FAKE_VIRTIO_REGS 1024

/*
 * Everything a driver can read of the device into r[FAKE_VIRTIO_REGS], in a
 * fixed order, for comparing two devices: the configuration space, the common
 * configuration with each queue selected (queue_select put back after), the
 * device configuration, the MSI-X table and PBA, and last the ISR, which the
 * read clears. Returns how many values.
 */
static inline unsigned fake_virtio_read_regs(struct bus *mmio, struct virtio_dev *v, uint32_t *r)
{
    unsigned n = 0;

    for (unsigned off = 0; off < PCI_CFG_SIZE; off += 4)
        r[n++] = pci_config_read(&v->pci, off, 4);
    uint64_t sel = fake_virtio_bar_rd(mmio, v, VIRTIO_COMMON_Q_SELECT, 2);
    for (unsigned q = 0; q < v->nr_queues && n + 16 < FAKE_VIRTIO_REGS; q++) {
        fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_SELECT, q, 2);
        for (unsigned off = 0; off < VIRTIO_PCI_COMMON_LEN; off += 4)
            r[n++] = (uint32_t)fake_virtio_bar_rd(mmio, v, off, 4);
    }
    fake_virtio_bar_wr(mmio, v, VIRTIO_COMMON_Q_SELECT, sel, 2);
    for (unsigned off = 0; off + 4 <= v->ops->config_size && n < FAKE_VIRTIO_REGS; off += 4)
        r[n++] = (uint32_t)fake_virtio_bar_rd(mmio, v, VIRTIO_PCI_DEVICE_OFF + off, 4);
    for (unsigned i = 0; i < 4 * v->nr_vectors && n + 2 < FAKE_VIRTIO_REGS; i++)
        r[n++] = (uint32_t)fake_virtio_bar_rd(mmio, v, VIRTIO_PCI_MSIX_TABLE + 4 * i, 4);
    r[n++] = (uint32_t)fake_virtio_bar_rd(mmio, v, VIRTIO_PCI_MSIX_PBA, 4);
    r[n++] = (uint32_t)fake_virtio_bar_rd(mmio, v, VIRTIO_PCI_ISR_OFF, 1);
    return n;
}

/*
 * Compares what a driver reads of two devices (fake_virtio_read_regs(), so
 * both ISRs are cleared): -1 if the same, else the index of the first
 * difference, with the two values in *va and *vb.
 */
static inline int fake_virtio_regs_differ(struct bus *mmio_a, struct virtio_dev *a,
                                          struct bus *mmio_b, struct virtio_dev *b, uint32_t *va,
                                          uint32_t *vb)
{
    static uint32_t ra[FAKE_VIRTIO_REGS], rb[FAKE_VIRTIO_REGS];
    unsigned na = fake_virtio_read_regs(mmio_a, a, ra), nb = fake_virtio_read_regs(mmio_b, b, rb);

    for (unsigned i = 0; i < na || i < nb; i++) {
        if (i >= na || i >= nb || ra[i] != rb[i]) {
            *va = i < na ? ra[i] : 0;
            *vb = i < nb ? rb[i] : 0;
            return (int)i;
        }
    }
    return -1;
}

/* Interrupts sent on a vector since the last call (fake irqfds are eventfds). */
static inline uint64_t fake_virtio_irq_count(struct virtio_dev *v, unsigned vector)
{
    uint64_t n = 0;
    if (read(v->irqfds[vector].fd, &n, sizeof(n)) != sizeof(n))
        return 0;
    return n;
}

#endif
