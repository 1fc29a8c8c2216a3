/*
 * The I/O APIC at 0xfec00000 (82093AA datasheet): one redirection entry per
 * input pin, reached through the index (IOREGSEL) and data (IOWIN) registers.
 * On petrel (KVM's in-kernel IOAPIC, default GSI routing) and QEMU's pc
 * machine, ISA IRQ n arrives on pin n; see irq.h for the PIT's exception.
 */
#ifndef KIT_IOAPIC_H
#define KIT_IOAPIC_H

#include <stdint.h>

#define IOAPIC_BASE 0xfec00000

/* Flags for ioapic_route(); 0 is an ISA interrupt: edge, active high. */
#define IOAPIC_LEVEL      0x1 /* level-triggered (else edge) */
#define IOAPIC_ACTIVE_LOW 0x2 /* active low (else active high) */

/* Number of input pins (redirection entries), from the version register. */
unsigned ioapic_pins(void);

/* Masks every pin. */
void ioapic_mask_all(void);

/* Sends pin to vector on the CPU with APIC ID dest (fixed delivery, physical
 * destination) with the trigger and polarity in flags, and unmasks it. */
void ioapic_route(unsigned pin, unsigned vector, unsigned flags, unsigned dest);

/* Masks one pin, keeping its routing. */
void ioapic_mask(unsigned pin);

#endif
