/*
 * spin: for pause tests. Prints "spin: ready", then increments spin_counter
 * (a 64-bit variable in memory, a global symbol for tools that read guest
 * memory) in a tight loop with no VM exits, forever.
 *
 * Options: spin.report=<n> also print "spin: <count>" whenever the count is
 * a multiple of 2^n (each line costs VM exits; at ~1 us an instruction on
 * kvm_pvm, 2^20 iterations take a few seconds).
 */
#include "kit/cmdline.h"
#include "kit/kit.h"
#include "kit/printf.h"

#include <stdint.h>

volatile uint64_t spin_counter;

int kit_main(void)
{
    unsigned long report;

    int has_report = kit_cmdline_uint("spin.report", 10, &report) == 0;
    puts("spin: ready");
    if (!has_report) {
        for (;;)
            spin_counter++;
    }
    uint64_t mask = report >= 64 ? ~0ull : (1ull << report) - 1;
    for (;;) {
        uint64_t v = ++spin_counter;

        if (!(v & mask))
            printf("spin: %llu\n", (unsigned long long)v);
    }
}
