/*
 * petrel's ACPI tables (docs/platform.md): RSDP, XSDT, FADT (full, not
 * hardware-reduced), FACS, DSDT and MADT for nr_cpus vCPUs.
 */
#ifndef PETREL_ACPI_H
#define PETREL_ACPI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "petrel/util.h"

/*
 * Writes the tables into buf[0, cap), which the guest sees at guest-physical
 * gpa; the RSDP is at gpa. Returns the bytes used, -EINVAL (nr_cpus out of
 * range), -ENOSPC or -ENOMEM.
 */
ssize_t acpi_build(void *buf, size_t cap, uint64_t gpa, unsigned nr_cpus) MUST_CHECK;

#endif
