/*
 * Interrupts for kit programs: the platform's controllers set up the way the
 * kit uses them, device handlers, and sleeping until an interrupt.
 *
 * - The 8259s are remapped and fully masked, and the LAPIC's LINT0 (their
 *   ExtINT path) masked; devices reach the CPU through the I/O APIC only.
 * - ISA IRQ n is I/O APIC pin n, except the PIT's IRQ 0: on a PC, QEMU's pc
 *   machine and petrel it is pin 2, the interrupt source override every MADT
 *   has. irq_route_isa(0, ...) routes pin 0 to IRQ 0's vector as well, for
 *   machines without the override: only one of them ever carries the PIT.
 *   ISA IRQ n uses vector IRQ_VECTOR_ISA + n, the LAPIC timer IRQ_VECTOR_TIMER.
 * - Handlers run with interrupts off; the kit sends the LAPIC EOI after the
 *   handler returns, so a level-triggered source is quiet by then.
 * - Kit programs run with interrupts off (the entry clears IF) and take them
 *   only inside kit_idle(). Handlers and the program therefore never run
 *   interleaved except at that point, and data they share needs no lock,
 *   only `volatile` or kit_idle()'s compiler barrier.
 */
#ifndef KIT_IRQ_H
#define KIT_IRQ_H

#include "kit/lapic.h"

#include <stdint.h>

#define IRQ_VECTOR_ISA     0x30 /* + ISA IRQ number, 0x30-0x3f */
#define IRQ_VECTOR_TIMER   0x40 /* the LAPIC timer */
#define IRQ_VECTOR_SMP     0x41 /* the LAPIC timer as kit_smp_start()'s one-shot delay */
#define IRQ_VECTOR_WAIT    0x42 /* the LAPIC timer as a wait's time limit (virtio.h) */
#define IRQ_VECTOR_MSI     0x50 /* irq_msi_alloc() hands out 0x50 .. IRQ_VECTOR_MSI_END - 1 */
#define IRQ_VECTOR_MSI_END 0xf0

/* Status kit_exit() is called with when a vector arrives that has a gate but
 * no handler (cannot happen through this API; kept for the report). */
#define KIT_EXIT_UNEXPECTED_IRQ 0x7e

typedef void irq_handler_fn(unsigned vector);

/* Loads the IDT, disables the 8259s, masks every I/O APIC pin and enables
 * the LAPIC. Call once before anything below; repeated calls do nothing. */
void irq_init(void);

/* Installs fn for a device vector (IRQ_VECTOR_ISA and above, not the
 * spurious vector); the kit sends the EOI after it returns. */
void irq_set_handler(unsigned vector, irq_handler_fn *fn);

/* Installs fn for ISA IRQ isa_irq (vector IRQ_VECTOR_ISA + isa_irq) and
 * routes its pin (IRQ 0: pins 0 and 2, see above), edge-triggered and active
 * high, to this CPU. */
void irq_route_isa(unsigned isa_irq, irq_handler_fn *fn);

/* An MSI (or MSI-X table entry) that raises a vector on one CPU. */
struct irq_msi {
    uint64_t addr; /* 0xfee00000 | APIC ID << 12: physical destination, no redirection */
    uint32_t data; /* the vector: fixed delivery, edge */
    unsigned vector;
};

/*
 * Takes the next free MSI vector, installs fn for it and fills in the message
 * a device writes to raise it on this CPU (Intel SDM vol. 3, "Message
 * Signalled Interrupts"). 0, or -1 when the MSI vectors are used up.
 */
int irq_msi_alloc(irq_handler_fn *fn, struct irq_msi *msg);

/* Sleeps until an interrupt has been handled: sti; hlt, then cli again.
 * The one-instruction interrupt shadow after sti means an interrupt already
 * pending cannot slip in between the program's last check and the hlt. */
static inline void kit_idle(void)
{
    __asm__ volatile("sti; hlt; cli" : : : "memory");
}

#endif
