/*
 * The VM's GSI routing table and the irqfds that inject through it.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table, so petrel keeps the table
 * here and sends all of it on every change: the irqchip routes of
 * docs/platform.md for GSI 0-23 (the PIT's GSI 0 on IOAPIC pin 2), then one
 * MSI route per device vector on GSIs from IRQ_ROUTING_FIRST_MSI up. MSI-X
 * table writes arrive on vCPU threads, so every call takes the table's lock.
 *
 * An irqfd is an eventfd bound to a GSI with KVM_IRQFD: writing it (from any
 * thread) injects whatever the GSI's route says. A GSI without a route drops
 * the interrupt, so the order is: set the route, then signal; to mask, stop
 * signalling (the transport records the pending bit) before clearing the route.
 */
#ifndef PETREL_IRQ_ROUTING_H
#define PETREL_IRQ_ROUTING_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "petrel/platform.h"
#include "petrel/util.h"

#define IRQ_ROUTING_FIRST_MSI PLAT_IOAPIC_PINS
#define IRQ_ROUTING_MAX_MSI   512
/* Irqchip routes: GSI 0-15 but 2 to the PICs, GSI 0-23 but 2 to the IOAPIC. */
#define IRQ_ROUTING_CHIP_ROUTES (15 + PLAT_IOAPIC_PINS - 1)
#define IRQ_ROUTING_MAX         (IRQ_ROUTING_CHIP_ROUTES + IRQ_ROUTING_MAX_MSI)

struct kvm_irq_routing;

struct irq_msi_route {
    bool used;  /* allocated to a device vector */
    bool valid; /* has a message: routed */
    uint64_t addr;
    uint32_t data;
};

struct irq_routing {
    pthread_mutex_t lock;
    int vm_fd;
    /* Sends the table (KVM_SET_GSI_ROUTING); tests replace it. 0 or -errno. */
    int (*commit)(struct irq_routing *rt, const struct kvm_irq_routing *table);
    void *ctx; /* for the commit function */
    struct irq_msi_route msi[IRQ_ROUTING_MAX_MSI];
    uint64_t commits;
};

typedef int irq_routing_commit_fn(struct irq_routing *rt, const struct kvm_irq_routing *table);

/* Sets up the table and sends the irqchip routes; commit NULL means
 * KVM_SET_GSI_ROUTING on vm_fd (tests pass their own). 0 or -errno. */
int irq_routing_init(struct irq_routing *rt, int vm_fd, irq_routing_commit_fn *commit) MUST_CHECK;
void irq_routing_destroy(struct irq_routing *rt);

/* Fills table with every route (the caller sizes it for IRQ_ROUTING_MAX entries). */
void irq_routing_fill(struct irq_routing *rt, struct kvm_irq_routing *table);

/* Reserves a GSI for one MSI vector (no route yet). 0 or -ENOSPC. */
int irq_routing_msi_alloc(struct irq_routing *rt, uint32_t *gsi) MUST_CHECK;
/* Routes gsi to the MSI message (addr, data) and sends the table. 0 or -errno. */
int irq_routing_msi_set(struct irq_routing *rt, uint32_t gsi, uint64_t addr, uint32_t data);
/* Removes gsi's route (the vector is masked or disabled) and sends the table. */
int irq_routing_msi_clear(struct irq_routing *rt, uint32_t gsi);
/* Gives gsi back (its route goes too). */
void irq_routing_msi_free(struct irq_routing *rt, uint32_t gsi);

/* An eventfd injecting into a GSI through KVM_IRQFD. */
struct irqfd {
    bool ready; /* irqfd_init() succeeded: a zeroed struct owns nothing */
    int fd;
    int vm_fd;
    uint32_t gsi;
};

/* Creates the eventfd and binds it to gsi. 0 or -errno. */
int irqfd_init(struct irqfd *irq, int vm_fd, uint32_t gsi) MUST_CHECK;
/* Injects once (any thread). 0 or -errno. */
int irqfd_signal(struct irqfd *irq);
/* Unbinds and closes (safe on a zeroed or failed irqfd). */
void irqfd_destroy(struct irqfd *irq);

/*
 * An eventfd KVM signals when the guest writes an address (KVM_IOEVENTFD):
 * virtio queue notifications reach the loop without stopping in petrel.
 */
struct ioeventfd {
    bool ready; /* ioeventfd_init() succeeded: a zeroed struct owns nothing */
    int fd;
    int vm_fd;
    uint64_t addr;
    uint32_t len; /* 1, 2, 4 or 8 bytes; any written value matches */
    bool pio;
    bool bound;
};

/* Creates the eventfd (not yet bound: the address may not be known). 0 or -errno. */
int ioeventfd_init(struct ioeventfd *io, int vm_fd) MUST_CHECK;
/* Binds it to [addr, addr + len) in MMIO (or PIO) space, unbinding any old address. */
int ioeventfd_bind(struct ioeventfd *io, uint64_t addr, uint32_t len, bool pio) MUST_CHECK;
void ioeventfd_unbind(struct ioeventfd *io);
/* Unbinds and closes (safe on a zeroed or failed one). */
void ioeventfd_destroy(struct ioeventfd *io);

#endif
