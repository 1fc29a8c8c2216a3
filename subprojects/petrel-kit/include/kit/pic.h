/*
 * The two 8259A PICs. The kit routes interrupts through the I/O APIC, so the
 * 8259s are only ever moved out of the way: their vectors remapped off the
 * exceptions, every line masked.
 */
#ifndef KIT_PIC_H
#define KIT_PIC_H

#define PIC_VECTOR_BASE 0x20 /* master 0x20-0x27, slave 0x28-0x2f */

/* Reinitialises both PICs at PIC_VECTOR_BASE and masks all 16 lines. */
void pic_disable(void);

#endif
