/* Interrupt lines on the in-kernel irqchip. */
#include "petrel/irq.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "petrel/trace.h"
#include "petrel/util.h"

static int kvm_irq_gsi_set(struct irq_line *line, bool level)
{
    struct kvm_irq_gsi *irq = container_of(line, struct kvm_irq_gsi, line);
    struct kvm_irq_level l = {.irq = irq->gsi, .level = level};

    if (level)
        atomic_fetch_add_explicit(&irq->raised, 1, memory_order_relaxed);
    if (irq->trace && TRACE_ON(irq->trace, TRACE_IRQ)) {
        struct trace_event e = {.kind = TRACE_IRQ,
                                .op = TRACE_OP_LINE,
                                .addr = irq->gsi,
                                .value = level,
                                .dev = irq->name};
        trace_emit(irq->trace, -1, &e);
    }

    return ioctl(irq->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

void kvm_irq_gsi_init(struct kvm_irq_gsi *irq, int vm_fd, uint32_t gsi)
{
    irq->line.set_level = kvm_irq_gsi_set;
    irq->vm_fd = vm_fd;
    irq->gsi = gsi;
    irq->trace = NULL;
    irq->name = NULL;
    atomic_init(&irq->raised, 0);
}
