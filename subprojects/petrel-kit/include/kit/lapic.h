/*
 * The local APIC in xAPIC mode, through its MMIO page at 0xfee00000 (SDM
 * vol. 3, chapter 11): enable, EOI, ID, and the timer.
 *
 * Timer rate: KVM's in-kernel LAPIC and QEMU's emulated one both count a
 * 1 GHz bus clock (one tick per nanosecond before the divider), so with the
 * divider at 16 a millisecond is about LAPIC_TIMER_TICKS_PER_MS ticks. That is
 * a documented approximation, not a calibration: real hardware differs, and
 * the kit's tests never assert timing.
 */
#ifndef KIT_LAPIC_H
#define KIT_LAPIC_H

#include <stdint.h>

#define LAPIC_BASE            0xfee00000
#define LAPIC_SPURIOUS_VECTOR 0xff /* needs no EOI */

#define LAPIC_TIMER_BUS_HZ       1000000000u /* assumed, see above */
#define LAPIC_TIMER_DIVIDE       16          /* what lapic_init() sets */
#define LAPIC_TIMER_TICKS_PER_MS (LAPIC_TIMER_BUS_HZ / LAPIC_TIMER_DIVIDE / 1000)

/* Interrupt command register, low word (SDM vol. 3, "Interrupt Command
 * Register (ICR)"). */
#define LAPIC_ICR_FIXED        0x00000
#define LAPIC_ICR_INIT         0x00500
#define LAPIC_ICR_STARTUP      0x00600 /* | the start page number */
#define LAPIC_ICR_BUSY         0x01000 /* delivery status: send pending */
#define LAPIC_ICR_ASSERT       0x04000
#define LAPIC_ICR_ALL_BUT_SELF 0xc0000 /* destination shorthand */

/* Enables the APIC (global enable in IA32_APIC_BASE, software enable in the
 * spurious vector register), accepts every priority (TPR 0), masks LINT0 (the
 * 8259s' ExtINT path) and the timer, and sets the divider to LAPIC_TIMER_DIVIDE. */
void lapic_init(void);

/* This CPU's APIC ID (bits 31:24 of the ID register). */
unsigned lapic_id(void);

/*
 * Sends an IPI: waits (boundedly) for the previous one to leave, then writes
 * dest (an APIC ID; ignored with a shorthand) and icr, the low word.
 * Returns 0, or -1 if the ICR stayed busy (the IPI is sent anyway).
 */
int lapic_ipi(unsigned dest, uint32_t icr);

/* Signals the end of the interrupt being serviced. */
void lapic_eoi(void);

/* Sets the timer divider: 1, 2, 4, ..., 128 (other values are rounded down). */
void lapic_timer_divide(unsigned divisor);

/* Starts the timer: one interrupt on vector after count ticks, or one every
 * count ticks. A count of 0 stops it. */
void lapic_timer_oneshot(unsigned vector, uint32_t count);
void lapic_timer_periodic(unsigned vector, uint32_t count);

/* Stops the timer and masks its interrupt. */
void lapic_timer_stop(void);

/* Ticks left until the timer fires next. */
uint32_t lapic_timer_current(void);

#endif
