/* Interrupt lines on the in-kernel irqchip. */
#include "petrel/irq.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "petrel/util.h"

static int kvm_irq_gsi_set(struct irq_line *line, bool level)
{
    struct kvm_irq_gsi *irq = container_of(line, struct kvm_irq_gsi, line);
    struct kvm_irq_level l = {.irq = irq->gsi, .level = level};

    return ioctl(irq->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

void kvm_irq_gsi_init(struct kvm_irq_gsi *irq, int vm_fd, uint32_t gsi)
{
    irq->line.set_level = kvm_irq_gsi_set;
    irq->vm_fd = vm_fd;
    irq->gsi = gsi;
}
