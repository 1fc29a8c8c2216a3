/*
 * The KVM-touching calls of the virtio transport (struct virtio_sys_ops) and
 * of the GSI routing table, faked for tests: irqfds are plain eventfds (a test
 * reads them to count interrupts), ioeventfd bindings are only recorded, and
 * routing commits go nowhere.
 */
#ifndef PETREL_TEST_FAKE_VIRTIO_SYS_H
#define PETREL_TEST_FAKE_VIRTIO_SYS_H

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "petrel/irq_routing.h"
#include "petrel/virtio.h"

static inline int fake_irqfd_init(struct irqfd *irq, int vm_fd, uint32_t gsi)
{
    irq->vm_fd = vm_fd;
    irq->gsi = gsi;
    irq->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (irq->fd < 0)
        return -errno;
    irq->ready = true;
    return 0;
}

static inline void fake_irqfd_destroy(struct irqfd *irq)
{
    if (irq->ready)
        close(irq->fd);
    irq->ready = false;
}

static inline int fake_ioeventfd_bind(struct ioeventfd *io, uint64_t addr, uint32_t len, bool pio)
{
    io->addr = addr;
    io->len = len;
    io->pio = pio;
    io->bound = true;
    return 0;
}

static inline void fake_ioeventfd_unbind(struct ioeventfd *io)
{
    io->bound = false;
}

static const struct virtio_sys_ops fake_sys_ops = {
    .irqfd_init = fake_irqfd_init,
    .irqfd_destroy = fake_irqfd_destroy,
    .ioeventfd_bind = fake_ioeventfd_bind,
    .ioeventfd_unbind = fake_ioeventfd_unbind,
};

static inline int fake_commit(struct irq_routing *rt, const struct kvm_irq_routing *t)
{
    (void)rt, (void)t;
    return 0;
}

#endif
