/*
 * spin: for pause tests. Prints "spin: ready", then increments spin_counter
 * (a 64-bit variable in memory, a global symbol for tools that read guest
 * memory) in a tight loop with no VM exits, forever.
 *
 * Options: spin.report=<n> also print "spin: <count>" whenever the count is
 * a multiple of 2^n (each line costs VM exits; at ~1 us an instruction on
 * kvm_pvm, 2^20 iterations take a few seconds). spin.smp=1 starts the other
 * CPUs first (include/kit/smp.h); each AP spins on its own counter,
 * spin_cpu_counter[cpu index].n, also without exits, and the line becomes
 * "spin: ready cpus N" once all N CPUs are spinning. A bad spin.smp prints
 * "spin: bad spin.smp" and exits 2.
 */
#include "kit/cmdline.h"
#include "kit/io.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/smp.h"

#include <stdint.h>

volatile uint64_t spin_counter;

/* One cache line per CPU, so the APs' loops do not share lines. */
struct spin_cpu {
    volatile uint64_t n;
    char pad[56];
};
struct spin_cpu spin_cpu_counter[KIT_SMP_MAX_CPUS] __attribute__((aligned(64)));

static uint32_t spin_aps; /* APs in their loop; lock add */

static void spin_ap(unsigned cpu)
{
    __atomic_fetch_add(&spin_aps, 1, __ATOMIC_SEQ_CST);
    for (;;)
        spin_cpu_counter[cpu].n++;
}

int kit_main(void)
{
    unsigned long report, smp = 0;

    int has_report = kit_cmdline_uint("spin.report", 10, &report) == 0;
    if (kit_cmdline_uint("spin.smp", 10, &smp) == -2) {
        puts("spin: bad spin.smp (want 0 or 1)");
        return 2;
    }
    if (smp) {
        unsigned n = kit_smp_start(spin_ap);

        while (__atomic_load_n(&spin_aps, __ATOMIC_SEQ_CST) != n - 1)
            cpu_relax();
        printf("spin: ready cpus %u\n", n);
    } else {
        puts("spin: ready");
    }
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
