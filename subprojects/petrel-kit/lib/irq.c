/* The kit's interrupt set-up and device handler dispatch; see include/kit/irq.h. */
#include "kit/irq.h"
#include "kit/idt.h"
#include "kit/ioapic.h"
#include "kit/kit.h"
#include "kit/pic.h"
#include "kit/printf.h"

#define IRQ_ISA_LINES 16
#define IRQ_PIT       0
#define IRQ_PIT_PIN   2 /* where a PC's MADT override puts it */

#define MSI_ADDR_BASE       0xfee00000u
#define MSI_ADDR_DEST_SHIFT 12

static irq_handler_fn *irq_handlers[IDT_VECTORS];
static int irq_ready;
static unsigned irq_msi_next = IRQ_VECTOR_MSI;

/* The IDT handler of every device vector: the program's handler, then EOI. */
static void irq_entry(struct idt_frame *f)
{
    irq_handler_fn *fn = irq_handlers[f->vector];

    if (!fn) {
        printf("kit: interrupt on vector %llu, which has no handler\n",
               (unsigned long long)f->vector);
        kit_exit(KIT_EXIT_UNEXPECTED_IRQ);
    }
    fn((unsigned)f->vector);
    lapic_eoi();
}

/* A spurious LAPIC interrupt is not in service: no EOI (SDM 11.9). */
static void irq_spurious(struct idt_frame *f)
{
    (void)f;
}

void irq_init(void)
{
    if (irq_ready)
        return;
    idt_init();
    pic_disable();
    ioapic_mask_all();
    lapic_init();
    idt_set_handler(LAPIC_SPURIOUS_VECTOR, irq_spurious);
    irq_ready = 1;
}

void irq_set_handler(unsigned vector, irq_handler_fn *fn)
{
    if (vector < IRQ_VECTOR_ISA || vector >= LAPIC_SPURIOUS_VECTOR)
        return;
    irq_handlers[vector] = fn;
    idt_set_handler(vector, irq_entry);
}

void irq_route_isa(unsigned isa_irq, irq_handler_fn *fn)
{
    unsigned vector = IRQ_VECTOR_ISA + isa_irq;

    if (isa_irq >= IRQ_ISA_LINES)
        return;
    irq_set_handler(vector, fn);
    ioapic_route(isa_irq, vector, 0, lapic_id());
    if (isa_irq == IRQ_PIT)
        ioapic_route(IRQ_PIT_PIN, vector, 0, lapic_id());
}

int irq_msi_alloc(irq_handler_fn *fn, struct irq_msi *msg)
{
    if (irq_msi_next >= IRQ_VECTOR_MSI_END)
        return -1;
    msg->vector = irq_msi_next++;
    msg->addr = MSI_ADDR_BASE | (uint64_t)(lapic_id() & 0xff) << MSI_ADDR_DEST_SHIFT;
    msg->data = msg->vector;
    irq_set_handler(msg->vector, fn);
    return 0;
}
