/* A periodic LAPIC timer tick; see include/kit/ticker.h. */
#include "kit/ticker.h"
#include "kit/irq.h"
#include "kit/lapic.h"

static volatile uint64_t ticks;

static void ticker_irq(unsigned vector)
{
    (void)vector;
    ticks++;
}

void ticker_start(unsigned ms)
{
    if (ms < 1)
        ms = 1;
    if (ms > TICKER_MS_MAX)
        ms = TICKER_MS_MAX;
    irq_init();
    irq_set_handler(IRQ_VECTOR_TIMER, ticker_irq);
    lapic_timer_periodic(IRQ_VECTOR_TIMER, ms * LAPIC_TIMER_TICKS_PER_MS);
}

void ticker_stop(void)
{
    lapic_timer_stop();
}

uint64_t ticker_count(void)
{
    return ticks;
}
