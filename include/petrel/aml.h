/*
 * A small builder of ACPI Machine Language (ACPI 6.x, chapter 20): the subset
 * petrel's DSDT needs — names, integers, strings, packages, buffers, scopes
 * and devices, EISA IDs and resource templates. No methods: petrel's DSDT
 * only declares things.
 *
 * Objects with a body (scope, device, package, buffer) are opened, filled and
 * closed; closing writes the PkgLength in front of the body. Errors (out of
 * memory, unbalanced closes, bad names) are sticky: aml_finish() reports them.
 */
#ifndef PETREL_AML_H
#define PETREL_AML_H

#include <stddef.h>
#include <stdint.h>

#include "petrel/util.h"

#define AML_MAX_DEPTH 8

struct aml {
    uint8_t *buf;
    size_t len, cap;
    size_t open[AML_MAX_DEPTH]; /* where each open object's body starts */
    unsigned depth;
    int error; /* 0 or the first -errno */
};

void aml_init(struct aml *a);
void aml_free(struct aml *a);
/* 0 when everything was built and closed, else the first -errno. */
int aml_finish(struct aml *a) MUST_CHECK;

/*
 * Names are written as in ASL: "_S5", "\\_SB", "PCI0", "\\_SB.PCI0"; each
 * segment is at most 4 characters (padded with '_').
 */
void aml_name(struct aml *a, const char *name); /* Name (name, <the next object>) */
void aml_int(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
void aml_eisaid(struct aml *a, const char *id); /* "PNP0A03" -> its 32-bit compressed form */

void aml_scope(struct aml *a, const char *name);  /* opens Scope (name) */
void aml_device(struct aml *a, const char *name); /* opens Device (name) */
void aml_package(struct aml *a, uint8_t n);       /* opens Package (n) */
void aml_buffer(struct aml *a);                   /* opens Buffer () { bytes } */
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_close(struct aml *a);

/* Resource descriptors, written into an open buffer (ACPI 6.x, 6.4). */
void aml_res_io(struct aml *a, uint16_t base, uint8_t len); /* IO (Decode16, base, base, 1, len) */
void aml_res_irq(struct aml *a, unsigned irq);              /* IRQNoFlags () { irq } */
void aml_res_bus_range(struct aml *a, uint16_t first, uint16_t last);
void aml_res_io_range(struct aml *a, uint16_t first, uint16_t last);
void aml_res_mem32_range(struct aml *a, uint32_t first, uint32_t last);
void aml_res_end(struct aml *a);

#endif
