/*
 * gdbtarget: a guest for the gdb stub's tests (tests/integration/test_gdb.py),
 * which load this program's ELF for its symbols. Prints "gdbtarget: ready",
 * then for round 1..gdbtarget.rounds (default 3) calls gdbt_tick(round),
 * which stores round * 0x11 in gdbt_value, and gdbt_mark(); then prints
 * "gdbtarget: done" and exits 0. Both functions are out of line, so a
 * breakpoint on either stops once a round.
 */
#include "kit/cmdline.h"
#include "kit/kit.h"
#include "kit/printf.h"

#include <stdint.h>

volatile uint64_t gdbt_value;
volatile uint64_t gdbt_marks;

__attribute__((noinline)) void gdbt_tick(uint64_t round);
__attribute__((noinline)) void gdbt_mark(void);

__attribute__((noinline)) void gdbt_tick(uint64_t round)
{
    gdbt_value = round * 0x11;
}

__attribute__((noinline)) void gdbt_mark(void)
{
    gdbt_marks++;
}

int kit_main(void)
{
    unsigned long rounds = 3;

    if (kit_cmdline_uint("gdbtarget.rounds", 10, &rounds) == -2) {
        puts("gdbtarget: bad gdbtarget.rounds");
        return 2;
    }
    puts("gdbtarget: ready");
    for (unsigned long i = 1; i <= rounds; i++) {
        gdbt_tick(i);
        gdbt_mark();
    }
    printf("gdbtarget: done value %llu marks %llu\n", (unsigned long long)gdbt_value,
           (unsigned long long)gdbt_marks);
    return 0;
}
