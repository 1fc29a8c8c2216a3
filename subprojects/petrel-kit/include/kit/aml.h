/*
 * A skim of AML (ACPI 6.x, chapter 20) for the two facts kit programs need
 * from a DSDT: the \_S5 sleep type (for poweroff) and the PCI host bridge's
 * windows (its _CRS resource template).
 *
 * Not an interpreter: it walks Scope and Device bodies, reads Name
 * declarations with constant data, and skips what it knows by its length
 * (Method, Field, If, Buffer, Package, OperationRegion with constant
 * arguments, ...). An opcode it does not know ends the walk of the body it is
 * in (the rest of that Scope or Device is skipped; the parent's walk goes on
 * after the body's PkgLength). Every read is checked against the table's end:
 * a malformed table gives an error message, never a read outside it.
 *
 * Names are resolved to absolute paths the way declarations are (relative to
 * the enclosing scope, `\` and `^` prefixes honoured), so a _CRS declared in a
 * separate `Scope (\_SB.PCI0)`, as QEMU's DSDT does, still belongs to the
 * host bridge `Device (PCI0)`.
 */
#ifndef KIT_AML_H
#define KIT_AML_H

#include <stddef.h>
#include <stdint.h>

/* EisaId("PNP0A03"), PCI host bridge, and "PNP0A08", PCI Express, as the
 * DWordConst the ASL compiler makes of them. */
#define AML_EISAID_PNP0A03 0x030ad041u
#define AML_EISAID_PNP0A08 0x080ad041u

#define AML_ERROR_LEN 96

/* One address range from a resource template. */
struct aml_range {
    uint64_t min, max;
};

struct aml_info {
    /* \_S5: SLP_TYPa and SLP_TYPb, the package's first two elements. */
    int s5;
    unsigned slp_typa, slp_typb;

    /* The PCI host bridge (a Device with _HID or _CID PNP0A03 or PNP0A08). */
    int pci;           /* the device was found */
    char pci_path[40]; /* its absolute path, like \_SB_.PCI0 */
    int pci_crs;       /* its _CRS buffer was found and parsed */
    int has_mem32, has_mem64, has_bus;
    struct aml_range mem32; /* the largest memory window below 4 GiB */
    struct aml_range mem64; /* the largest memory window above 4 GiB */
    struct aml_range bus;   /* bus number range */
    unsigned windows;       /* memory ranges in the _CRS, of every size */

    /* Opcodes the skim did not know; the bodies they were in were skipped. */
    unsigned skipped;

    char error[AML_ERROR_LEN]; /* the first problem; "" if none */
};

/*
 * Skims one definition block's AML (the bytes after a DSDT's 36-byte header)
 * into *out (zeroed first): two walks, the second for the host bridge's _CRS
 * once the first has found the bridge. Returns 0, or -1 if the AML is
 * malformed (out->error says where; what was found before is kept).
 */
int aml_skim(const uint8_t *aml, size_t len, struct aml_info *out);

#endif
