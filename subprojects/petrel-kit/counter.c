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
 * busy vCPUs and a consecutive counter at once. counter.touch=<percent> first
 * writes one byte (non-zero) to each 4 KiB page of that share of the e820 RAM,
 * from the end of the image up (below 4 GiB, the kit's identity map; the first
 * MiB and the image itself are left alone, so 100 touches slightly less), and
 * prints "counter: touched N KiB": a snapshot benchmark gets that much guest
 * RAM holding data, cheaply (a few instructions a page).
 * A bad value prints "counter: bad counter.<option>" and exits 2.
 */
#include "kit/boot_params.h"
#include "kit/cmdline.h"
#include "kit/irq.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/smp.h"
#include "kit/ticker.h"

#include <stdint.h>

#define COUNTER_MS_DEFAULT 100
#define COUNTER_PAGE       4096ULL
#define COUNTER_MAPPED     (1ULL << 32) /* the identity map the kit runs on */

extern char _end[]; /* kit.ld: the end of the image, its stacks included */

/*
 * Writes a byte to each page of percent % of the e820 RAM, lowest first, above
 * the image and below COUNTER_MAPPED; returns the bytes of RAM touched.
 */
static uint64_t counter_touch(unsigned long percent)
{
    unsigned n = boot_params_e820_count();
    uint64_t ram = 0, done = 0;
    struct e820_entry e;

    for (unsigned i = 0; i < n; i++)
        if (boot_params_e820_entry(i, &e) == 0 && e.type == E820_RAM)
            ram += e.size;
    uint64_t want = ram / 100 * percent / COUNTER_PAGE * COUNTER_PAGE;
    uint64_t floor = ((uint64_t)(uintptr_t)_end + COUNTER_PAGE - 1) & ~(COUNTER_PAGE - 1);
    for (unsigned i = 0; i < n && done < want; i++) {
        if (boot_params_e820_entry(i, &e) != 0 || e.type != E820_RAM)
            continue;
        uint64_t lo = (e.addr + COUNTER_PAGE - 1) & ~(COUNTER_PAGE - 1);
        uint64_t hi = (e.addr + e.size) & ~(COUNTER_PAGE - 1);
        if (lo < floor)
            lo = floor;
        if (hi > COUNTER_MAPPED)
            hi = COUNTER_MAPPED;
        if (hi > lo + (want - done))
            hi = lo + (want - done);
        for (uint64_t a = lo; a < hi; a += COUNTER_PAGE)
            *(volatile uint8_t *)(uintptr_t)a = 0xa5;
        if (hi > lo)
            done += hi - lo;
    }
    return done;
}

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
    unsigned long touch = 0;
    if (kit_cmdline_uint("counter.touch", 10, &touch) == -2 || touch > 100) {
        puts("counter: bad counter.touch (want a percentage, 0 to 100)");
        return 2;
    }
    if (smp)
        printf("counter: cpus %u\n", kit_smp_start(counter_ap));
    if (touch)
        printf("counter: touched %llu KiB\n", (unsigned long long)(counter_touch(touch) >> 10));
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
