/*
 * counter: prints "counter: N" for N = 0, 1, 2, ... one line per tick of the
 * LAPIC timer, sleeping in kit_idle() between ticks, forever. N goes up by
 * exactly one a line, whatever happens between ticks (ticks that pile up
 * while the VM is paused give one line, not a jump), so a test can check
 * that no number is skipped or repeated across pause and resume.
 *
 * Options: counter.ms=<n> the period in milliseconds (default 100;
 * approximate, see lapic.h); counter.max=<n> exit 0 after printing n lines;
 * counter.smp=1 first starts the other CPUs (include/kit/smp.h), which spin
 * without exits for good, and prints "counter: cpus N": a pause test gets
 * busy vCPUs and a consecutive counter at once.
 * A bad value prints "counter: bad counter.<option>" and exits 2.
 */
#include "kit/cmdline.h"
#include "kit/irq.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/smp.h"
#include "kit/ticker.h"

#include <stdint.h>

#define COUNTER_MS_DEFAULT 100

/* What the APs do with counter.smp: spin in memory, never exiting. */
static void counter_ap(unsigned cpu)
{
    volatile uint64_t n = 0;

    (void)cpu;
    for (;;)
        n++;
}

int kit_main(void)
{
    unsigned long ms = COUNTER_MS_DEFAULT, max = 0;

    if (kit_cmdline_uint("counter.ms", 10, &ms) == -2 || ms == 0 || ms > TICKER_MS_MAX) {
        printf("counter: bad counter.ms (want 1 to %u)\n", TICKER_MS_MAX);
        return 2;
    }
    int max_err = kit_cmdline_uint("counter.max", 10, &max);
    if (max_err == -2) {
        puts("counter: bad counter.max (want a number)");
        return 2;
    }
    unsigned long smp = 0;
    if (kit_cmdline_uint("counter.smp", 10, &smp) == -2) {
        puts("counter: bad counter.smp (want 0 or 1)");
        return 2;
    }
    if (smp)
        printf("counter: cpus %u\n", kit_smp_start(counter_ap));
    ticker_start((unsigned)ms);
    int forever = max_err != 0;
    for (unsigned long n = 0; forever || n < max; n++) {
        uint64_t seen = ticker_count();

        while (ticker_count() == seen)
            kit_idle();
        printf("counter: %lu\n", n);
    }
    return 0;
}
