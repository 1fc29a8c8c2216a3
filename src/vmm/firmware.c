/*
 * The firmware tables a stock kernel looks for (docs/platform.md): ACPI (RSDP
 * address in the zero page), the MP table, and the BIOS data area's pointers.
 */
#include <errno.h>
#include <string.h>

#include "petrel/acpi.h"
#include "petrel/mptable.h"
#include "petrel/platform.h"
#include "petrel/vm.h"
#include "petrel/x86_boot.h"

#define BP_ACPI_RSDP_ADDR 0x070 /* boot_params.acpi_rsdp_addr (protocol 2.14) */

/* The BIOS data area at 0x400: the words petrel fills. */
#define BDA_GPA      0x400
#define BDA_SIZE     0x100
#define BDA_EBDA_SEG 0x0e /* 0x40e: the EBDA's segment */
#define BDA_BASE_KIB 0x13 /* 0x413: base memory in KiB (below the EBDA) */

int vm_firmware_tables(struct vm *vm, struct errbuf *eb)
{
    uint8_t *acpi = gm_ptr(&vm->mem, PLAT_ACPI_GPA, PLAT_ACPI_SIZE);
    uint8_t *zp = gm_ptr(&vm->mem, BOOT_ZERO_PAGE_GPA, BP_SIZE);
    if (!acpi || !zp)
        return err_set(eb, -ENOMEM, "guest memory is too small for the firmware tables");

    ssize_t len = acpi_build(acpi, PLAT_ACPI_SIZE, PLAT_ACPI_GPA, vm->cfg.cpus);
    if (len < 0)
        return err_set(eb, (int)len, "cannot build the ACPI tables: %s", strerror((int)-len));
    for (unsigned i = 0; i < 8; i++)
        zp[BP_ACPI_RSDP_ADDR + i] = (uint8_t)((uint64_t)PLAT_ACPI_GPA >> (8 * i));

    /* The BIOS data area's EBDA segment and base memory size, where scanners look first. */
    uint8_t *bda = gm_ptr(&vm->mem, BDA_GPA, BDA_SIZE);
    if (!bda)
        return err_set(eb, -ENOMEM, "guest memory is too small for the BIOS data area");
    bda[BDA_EBDA_SEG] = (uint8_t)(BOOT_EBDA_GPA >> 4);
    bda[BDA_EBDA_SEG + 1] = (uint8_t)(BOOT_EBDA_GPA >> 12);
    bda[BDA_BASE_KIB] = (uint8_t)(BOOT_EBDA_GPA >> 10);
    bda[BDA_BASE_KIB + 1] = (uint8_t)(BOOT_EBDA_GPA >> 18);

    uint8_t *mp = gm_ptr(&vm->mem, PLAT_MPTABLE_GPA, PLAT_MPTABLE_SIZE);
    int ret = mp ? mptable_build(mp, PLAT_MPTABLE_SIZE, PLAT_MPTABLE_GPA, vm->cfg.cpus) : -ENOMEM;
    if (ret < 0)
        return err_set(eb, ret, "cannot build the MP table: %s", strerror(-ret));
    return 0;
}
