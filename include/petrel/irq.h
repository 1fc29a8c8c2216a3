/*
 * An interrupt line a device drives. The KVM implementation asserts and
 * deasserts a GSI of the in-kernel irqchip with KVM_IRQ_LINE (safe from any
 * thread); unit tests swap in a fake that records the level.
 */
#ifndef PETREL_IRQ_H
#define PETREL_IRQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct trace;

struct irq_line {
    /* Sets the line's level; returns 0 or -errno. */
    int (*set_level)(struct irq_line *line, bool level);
};

/* A level-triggered GSI of the in-kernel irqchip (PIC + IOAPIC). */
struct kvm_irq_gsi {
    struct irq_line line;
    int vm_fd;
    uint32_t gsi;
    struct trace *trace; /* optional, with name: the device, for the trace */
    const char *name;
    _Atomic uint64_t raised; /* assertions (level 0 -> 1 requests), for GET /stats */
};

void kvm_irq_gsi_init(struct kvm_irq_gsi *irq, int vm_fd, uint32_t gsi);

static inline int irq_set(struct irq_line *line, bool level)
{
    return line ? line->set_level(line, level) : 0;
}

#endif
