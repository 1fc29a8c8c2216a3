/*
 * A periodic tick from the LAPIC timer, for programs that do something every
 * so many milliseconds while sleeping in kit_idle() in between. The period is
 * approximate (lapic.h): good for pacing output, not for measuring time.
 */
#ifndef KIT_TICKER_H
#define KIT_TICKER_H

#include <stdint.h>

#define TICKER_MS_MAX 60000 /* the longest period the 32-bit count allows, rounded */

/* Starts ticking every ms milliseconds (1 to TICKER_MS_MAX; clamped) on
 * IRQ_VECTOR_TIMER. Calls irq_init() first. Restarting resets the period. */
void ticker_start(unsigned ms);

/* Stops ticking. */
void ticker_stop(void);

/* Ticks so far (interrupts taken), since the first ticker_start(). */
uint64_t ticker_count(void);

#endif
