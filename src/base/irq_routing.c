/* The GSI routing table (irqchip + MSI routes) and irqfds. */
#include "petrel/irq_routing.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int kvm_commit(struct irq_routing *rt, const struct kvm_irq_routing *table)
{
    return ioctl(rt->vm_fd, KVM_SET_GSI_ROUTING, table) < 0 ? -errno : 0;
}

static void add(struct kvm_irq_routing *t, struct kvm_irq_routing_entry e)
{
    t->entries[t->nr++] = e;
}

void irq_routing_fill(struct irq_routing *rt, struct kvm_irq_routing *t)
{
    t->nr = 0;
    t->flags = 0;
    /* GSI 2 is the PICs' cascade: nothing routes there (the PIT is GSI 0 -> pin 2). */
    for (uint32_t gsi = 0; gsi < 16; gsi++) {
        if (gsi == 2)
            continue;
        add(t,
            (struct kvm_irq_routing_entry){
                .gsi = gsi,
                .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                              .pin = gsi % 8},
            });
    }
    for (uint32_t gsi = 0; gsi < PLAT_IOAPIC_PINS; gsi++) {
        if (gsi == 2)
            continue;
        add(t, (struct kvm_irq_routing_entry){
                   .gsi = gsi,
                   .type = KVM_IRQ_ROUTING_IRQCHIP,
                   .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = plat_isa_gsi(gsi)},
               });
    }
    for (unsigned i = 0; i < IRQ_ROUTING_MAX_MSI; i++) {
        const struct irq_msi_route *m = &rt->msi[i];
        if (!m->used || !m->valid)
            continue;
        add(t, (struct kvm_irq_routing_entry){
                   .gsi = IRQ_ROUTING_FIRST_MSI + i,
                   .type = KVM_IRQ_ROUTING_MSI,
                   .u.msi = {.address_lo = (uint32_t)m->addr,
                             .address_hi = (uint32_t)(m->addr >> 32),
                             .data = m->data},
               });
    }
}

/* Sends the whole table; called with the lock held. */
static int commit_locked(struct irq_routing *rt)
{
    struct kvm_irq_routing *t =
        malloc(sizeof(*t) + IRQ_ROUTING_MAX * sizeof(struct kvm_irq_routing_entry));
    if (!t)
        return -ENOMEM;
    irq_routing_fill(rt, t);
    int ret = rt->commit(rt, t);
    free(t);
    if (!ret)
        rt->commits++;
    return ret;
}

int irq_routing_init(struct irq_routing *rt, int vm_fd, irq_routing_commit_fn *commit)
{
    void *ctx = rt->ctx;
    memset(rt, 0, sizeof(*rt));
    pthread_mutex_init(&rt->lock, NULL);
    rt->vm_fd = vm_fd;
    rt->ctx = ctx;
    rt->commit = commit ? commit : kvm_commit;
    pthread_mutex_lock(&rt->lock);
    int ret = commit_locked(rt);
    pthread_mutex_unlock(&rt->lock);
    return ret;
}

void irq_routing_destroy(struct irq_routing *rt)
{
    pthread_mutex_destroy(&rt->lock);
}

/* The route of gsi, or NULL if gsi is not an allocated MSI GSI. */
static struct irq_msi_route *route(struct irq_routing *rt, uint32_t gsi)
{
    if (gsi < IRQ_ROUTING_FIRST_MSI || gsi - IRQ_ROUTING_FIRST_MSI >= IRQ_ROUTING_MAX_MSI)
        return NULL;
    struct irq_msi_route *m = &rt->msi[gsi - IRQ_ROUTING_FIRST_MSI];
    return m->used ? m : NULL;
}

int irq_routing_msi_alloc(struct irq_routing *rt, uint32_t *gsi)
{
    int ret = -ENOSPC;
    pthread_mutex_lock(&rt->lock);
    for (unsigned i = 0; i < IRQ_ROUTING_MAX_MSI; i++) {
        if (!rt->msi[i].used) {
            rt->msi[i] = (struct irq_msi_route){.used = true};
            *gsi = IRQ_ROUTING_FIRST_MSI + i;
            ret = 0;
            break;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return ret;
}

int irq_routing_msi_set(struct irq_routing *rt, uint32_t gsi, uint64_t addr, uint32_t data)
{
    int ret = -EINVAL;
    pthread_mutex_lock(&rt->lock);
    struct irq_msi_route *m = route(rt, gsi);
    if (m) {
        ret = 0;
        if (!m->valid || m->addr != addr || m->data != data) {
            *m = (struct irq_msi_route){.used = true, .valid = true, .addr = addr, .data = data};
            ret = commit_locked(rt);
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return ret;
}

int irq_routing_msi_clear(struct irq_routing *rt, uint32_t gsi)
{
    int ret = -EINVAL;
    pthread_mutex_lock(&rt->lock);
    struct irq_msi_route *m = route(rt, gsi);
    if (m) {
        ret = 0;
        if (m->valid) {
            m->valid = false;
            ret = commit_locked(rt);
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return ret;
}

void irq_routing_msi_free(struct irq_routing *rt, uint32_t gsi)
{
    pthread_mutex_lock(&rt->lock);
    struct irq_msi_route *m = route(rt, gsi);
    if (m) {
        bool was_routed = m->valid;
        *m = (struct irq_msi_route){0};
        if (was_routed)
            (void)commit_locked(rt);
    }
    pthread_mutex_unlock(&rt->lock);
}

int irqfd_init(struct irqfd *irq, int vm_fd, uint32_t gsi)
{
    irq->ready = false;
    irq->vm_fd = vm_fd;
    irq->gsi = gsi;
    irq->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (irq->fd < 0)
        return -errno;
    struct kvm_irqfd req = {.fd = (uint32_t)irq->fd, .gsi = gsi};
    if (ioctl(vm_fd, KVM_IRQFD, &req) < 0) {
        int ret = -errno;
        close(irq->fd);
        irq->fd = -1;
        return ret;
    }
    irq->ready = true;
    return 0;
}

int irqfd_signal(struct irqfd *irq)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is already huge, i.e. an injection is pending anyway. */
    if (write(irq->fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

void irqfd_destroy(struct irqfd *irq)
{
    if (!irq->ready)
        return;
    irq->ready = false;
    struct kvm_irqfd req = {
        .fd = (uint32_t)irq->fd, .gsi = irq->gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN};
    (void)ioctl(irq->vm_fd, KVM_IRQFD, &req);
    close(irq->fd);
    irq->fd = -1;
}

static int ioeventfd_ioctl(struct ioeventfd *io, bool deassign)
{
    struct kvm_ioeventfd req = {
        .addr = io->addr,
        .len = io->len,
        .fd = io->fd,
        .flags =
            (io->pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0),
    };
    return ioctl(io->vm_fd, KVM_IOEVENTFD, &req) < 0 ? -errno : 0;
}

int ioeventfd_init(struct ioeventfd *io, int vm_fd)
{
    *io = (struct ioeventfd){.vm_fd = vm_fd};
    io->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (io->fd < 0)
        return -errno;
    io->ready = true;
    return 0;
}

int ioeventfd_bind(struct ioeventfd *io, uint64_t addr, uint32_t len, bool pio)
{
    ioeventfd_unbind(io);
    io->addr = addr;
    io->len = len;
    io->pio = pio;
    int ret = ioeventfd_ioctl(io, false);
    io->bound = ret == 0;
    return ret;
}

void ioeventfd_unbind(struct ioeventfd *io)
{
    if (io->bound)
        (void)ioeventfd_ioctl(io, true);
    io->bound = false;
}

void ioeventfd_destroy(struct ioeventfd *io)
{
    if (!io->ready)
        return;
    io->ready = false;
    ioeventfd_unbind(io);
    close(io->fd);
    io->fd = -1;
}
