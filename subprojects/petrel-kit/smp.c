/*
 * smp: starts the other CPUs and lists them. Prints "smp: cpus N" (the BSP
 * included), then "smp: cpu <apic id> up" for each CPU that checked in, in
 * APIC ID order, and exits 0. The APs halt once checked in.
 *
 * Options: smp.expect=<n> waits up to 10 s more for APs that are late (a
 * loaded host) and exits 1 (after the lines, and "smp: expected <n> cpus")
 * if the count is not n. A bad value prints "smp: bad smp.expect" and
 * exits 2.
 */
#include "kit/cmdline.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/smp.h"

int kit_main(void)
{
    unsigned long expect = 0;

    int expect_err = kit_cmdline_uint("smp.expect", 10, &expect);
    if (expect_err == -2) {
        puts("smp: bad smp.expect (want a number)");
        return 2;
    }
    unsigned n = kit_smp_start(NULL);
    if (expect_err == 0 && n < expect) /* late APs (a loaded host): up to 10 s more */
        n = kit_smp_wait((unsigned)expect, 10000);
    printf("smp: cpus %u\n", n);
    for (unsigned id = 0; id < KIT_SMP_APIC_IDS; id++) {
        if (kit_smp_online(id))
            printf("smp: cpu %u up\n", id);
    }
    if (kit_smp_ignored())
        printf("smp: %u more cpus parked (the kit runs at most %u)\n", kit_smp_ignored(),
               KIT_SMP_MAX_CPUS);
    if (expect_err == 0 && expect != n) {
        printf("smp: expected %lu cpus\n", expect);
        return 1;
    }
    return 0;
}
