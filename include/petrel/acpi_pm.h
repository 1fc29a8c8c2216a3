/*
 * ACPI fixed hardware (docs/platform.md): the PM1a event and control
 * registers, the PM timer and the reset register, at ports 0x600-0x60f.
 *
 * - PM1_STS/PM1_EN: the power button (PWRBTN_STS, write 1 to clear). The SCI
 *   (IRQ 9, a level line) is asserted while PWRBTN_STS and PWRBTN_EN are set.
 *   The other enable bits (timer, global lock, sleep button, RTC) read back
 *   what was written, as ACPICA checks, but no event sets their status.
 * - PM1_CNT: SCI_EN always reads 1 (there is no SMI_CMD to switch modes).
 *   SLP_EN with SLP_TYP 5 (\_S5) powers off; other sleep types are ignored.
 * - PM timer: 32 bits at 3.579545 MHz from CLOCK_MONOTONIC (plus an offset
 *   after a restore); TMR_STS never set.
 * - Reset register: writing PLAT_RESET_VALUE resets the machine.
 */
#ifndef PETREL_ACPI_PM_H
#define PETREL_ACPI_PM_H

#include <stdbool.h>
#include <stdint.h>

#include "petrel/bus.h"
#include "petrel/hwdev.h"
#include "petrel/exit.h"
#include "petrel/irq.h"
#include "petrel/state.h"

#define ACPI_PM_TMR_HZ 3579545u

#define PM1_TMR_STS       (1u << 0)
#define PM1_PWRBTN_STS    (1u << 8)
#define PM1_WAK_STS       (1u << 15)
#define PM1_TMR_EN        (1u << 0)
#define PM1_GBL_EN        (1u << 5)
#define PM1_PWRBTN_EN     (1u << 8)
#define PM1_SLPBTN_EN     (1u << 9)
#define PM1_RTC_EN        (1u << 10)
#define PM1_SCI_EN        (1u << 0)
#define PM1_SLP_TYP_SHIFT 10
#define PM1_SLP_TYP_MASK  (7u << PM1_SLP_TYP_SHIFT)
#define PM1_SLP_EN        (1u << 13)

struct acpi_pm {
    struct device dev; /* dev.lock guards everything below */
    struct exit_hook hook;
    struct irq_line *sci;
    uint16_t sts, en, cnt;
    bool sci_level;
    unsigned ignored_sleeps; /* SLP_EN writes for a state petrel does not offer */
    /* The PM timer's clock in ns (NULL: CLOCK_MONOTONIC); tests replace it. */
    uint64_t (*now_ns)(void);
    uint32_t tmr_offset; /* added to the count: 0, or what makes a restored timer go on */
};

/* The device covers PLAT_PM_PORTS ports from PLAT_PM1A_EVT_PORT. */
void acpi_pm_init(struct acpi_pm *pm, struct exit_hook hook, struct irq_line *sci);
void acpi_pm_destroy(struct acpi_pm *pm);

/*
 * Presses the power button (any thread) if the guest has enabled its event:
 * sets PWRBTN_STS, which raises the SCI, and returns true. Otherwise returns
 * false and latches nothing: the press is petrel's request to the guest, and
 * one it could not see is refused rather than left to surprise it later.
 */
bool acpi_pm_power_button(struct acpi_pm *pm);

#define ACPI_PM_STATE_COMPATIBLE "petrel,acpi-pm-v1"

/*
 * Writes PM1 status, enable and control and the PM timer's count into a node
 * the caller began (ACPI_PM_STATE_COMPATIBLE), with the VM paused. Returns
 * out->err.
 */
int acpi_pm_save(const struct acpi_pm *pm, struct state_out *out) MUST_CHECK;

/*
 * Loads what acpi_pm_save() wrote into a device set up by acpi_pm_init(),
 * refusing (in->err, with the property named) a bit the registers cannot
 * hold, in which case pm is unchanged. The SCI follows the restored
 * registers; the PM timer goes on from the saved count (it measures
 * intervals, like the TSC: it does not jump by the time the VM was away).
 */
int acpi_pm_restore(struct acpi_pm *pm, struct state_in *in) MUST_CHECK;

/* The ACPI fixed hardware (PLAT_PM1A_EVT_PORT, SCI) in the machine table (machine.c). */
extern const struct hwdev_ops acpi_pm_fixed;

#endif
