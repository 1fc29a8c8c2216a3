/*
 * The Intel MultiProcessor Specification 1.4 tables ("the MP table") for
 * kernels booted with acpi=off: a floating pointer structure followed by the
 * base configuration table, describing the vCPUs' LAPICs, the buses, the
 * IOAPIC and how the ISA IRQs reach it (docs/platform.md, "MP table").
 *
 * The floating pointer is found by scanning, in 16-byte steps, the first KiB
 * of memory, the last KiB of base memory, the EBDA's first KiB and
 * 0xf0000-0xfffff (MP spec 1.4 section 4; Linux's arch/x86/kernel/mpparse.c),
 * so the tables must live at a 16-byte aligned address in one of those areas,
 * marked reserved in e820: petrel puts them at PLAT_MPTABLE_GPA.
 */
#ifndef PETREL_MPTABLE_H
#define PETREL_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "petrel/util.h"

/* Sizes fixed by the specification (MP spec 1.4 chapter 4). */
#define MPTABLE_FLOAT_SIZE  16 /* the floating pointer structure */
#define MPTABLE_HEADER_SIZE 44 /* the configuration table header */
#define MPTABLE_CPU_SIZE    20 /* a processor entry */
#define MPTABLE_ENTRY_SIZE  8  /* a bus, IOAPIC, I/O or local interrupt entry */

/* Entries besides the processors: 2 buses, 1 IOAPIC, ISA IRQs 0-15 but 2, LINT0 and LINT1. */
#define MPTABLE_FIXED_ENTRIES (2 + 1 + 15 + 2)

/* Bytes mptable_build() writes for nr_cpus vCPUs (both structures). */
#define MPTABLE_SIZE(nr_cpus)                                                                      \
    (MPTABLE_FLOAT_SIZE + MPTABLE_HEADER_SIZE + (nr_cpus)*MPTABLE_CPU_SIZE +                       \
     MPTABLE_FIXED_ENTRIES * MPTABLE_ENTRY_SIZE)

/*
 * Writes the floating pointer structure and, right after it, the configuration
 * table for nr_cpus vCPUs into buf, as they will live at guest-physical gpa
 * (the floating pointer's table pointer is gpa + 16). Returns the number of
 * bytes written (MPTABLE_SIZE(nr_cpus)), -ENOSPC if cap is smaller than that,
 * or -EINVAL if nr_cpus is 0 or above PLAT_MAX_CPUS, gpa is not 16-byte
 * aligned or the tables would not end below 4 GiB.
 */
int mptable_build(void *buf, size_t cap, uint32_t gpa, unsigned nr_cpus) MUST_CHECK;

#endif
