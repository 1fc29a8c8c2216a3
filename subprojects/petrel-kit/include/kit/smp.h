/*
 * Starting the other CPUs (application processors, APs) and telling them
 * apart. The BSP copies a real-mode trampoline to KIT_SMP_TRAMPOLINE and
 * broadcasts INIT, SIPI, SIPI (SDM vol. 3, "Typical BSP Initialization
 * Sequence"; MultiProcessor Specification 1.4, B.4); each AP goes real -> protected -> long mode on
 * the BSP's page tables and GDT, takes a stack of its own, loads the kit IDT,
 * enables its LAPIC, checks in and runs the function the BSP gave.
 *
 * Start-up reads no firmware tables (acpi.h and mptable.h can, for programs
 * that want the MADT's or MP table's view), so the BSP counts the CPUs that
 * check in: it stops waiting once none has arrived for
 * KIT_SMP_QUIET_MS (timed with the LAPIC timer, sleeping in hlt). An AP
 * slower than that still checks in and runs the function later: it is missing
 * from kit_smp_start()'s result but not from kit_smp_count() once it is up.
 *
 * Where the trampoline goes: 0x1000-0x1fff is RAM that nothing uses once
 * the kit runs. petrel's boot layout (include/petrel/x86_boot.h) has the
 * GDT at 0x500, the IDT at 0x540, the zero page at 0x7000, the boot stack
 * below 0x8ff0, page tables at 0x9000-0xefff and the command line at
 * 0x20000. Under QEMU, SeaBIOS keeps its data in 0x400-0x4ff, the EBDA and
 * 0xe0000 up, the linuxboot ROM puts the setup code at 0x10000 and the
 * command line at 0x20000, and multiboot (the boot64 shim) its information at
 * 0x9000; the shim recreates petrel's layout. The SIPI vector is the page
 * number: 0x01.
 *
 * An AP runs with interrupts off, on a KIT_SMP_STACK_SIZE stack, and is
 * identified by its APIC ID from the LAPIC ID register (never cpuid: on
 * kvm_pvm a guest's cpuid shows the host's values, PVM.md).
 */
#ifndef KIT_SMP_H
#define KIT_SMP_H

#define KIT_SMP_TRAMPOLINE 0x1000 /* page-aligned and below 1 MiB: a SIPI vector */
#define KIT_SMP_MAX_CPUS   16     /* the BSP and up to 15 APs; more are parked */
#define KIT_SMP_STACK_SIZE 4096   /* per AP (lib/trampoline.S) */
#define KIT_SMP_APIC_IDS   256    /* xAPIC IDs are 8 bits */
#define KIT_SMP_QUIET_MS   50     /* how long no check-in means "all here" */

#ifndef __ASSEMBLER__

/* What an AP runs after checking in; cpu is its index (1 .. count - 1, in
 * check-in order; 0 is the BSP). It runs with interrupts off; if it returns,
 * the AP halts. */
typedef void kit_smp_fn(unsigned cpu);

/*
 * Starts every other CPU, waits until they stop checking in, and returns the
 * number of CPUs (the BSP included). Each AP runs fn (NULL: halts). Calls
 * irq_init(); uses the LAPIC timer and leaves it stopped, so call it before
 * ticker_start(). Call it once.
 */
unsigned kit_smp_start(kit_smp_fn *fn);

/* CPUs checked in so far, the BSP included (1 before kit_smp_start()). */
unsigned kit_smp_count(void);

/*
 * After kit_smp_start(), for a program that knows how many CPUs to expect: waits
 * until n have checked in or ms have passed (LAPIC timer, as kit_smp_start());
 * returns kit_smp_count(). An AP's vCPU thread on a loaded host can miss the
 * quiet period and still be on its way.
 */
unsigned kit_smp_wait(unsigned n, unsigned ms);

/* Whether the CPU with this APIC ID has checked in. */
int kit_smp_online(unsigned apic_id);

/* APs that started beyond KIT_SMP_MAX_CPUS and were parked, uncounted. */
unsigned kit_smp_ignored(void);

/* Whether kit_smp_start() has begun: other CPUs may be running. */
int kit_smp_active(void);

/* The calling CPU's APIC ID (the LAPIC ID register). */
unsigned kit_cpu_id(void);

#endif

#endif
