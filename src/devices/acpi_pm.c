/* ACPI fixed hardware: PM1 event/control registers, PM timer, reset register. */
#include "petrel/acpi_pm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "petrel/platform.h"

/* Offsets in the 16-port block. */
enum {
    PM_STS = PLAT_PM1A_EVT_PORT - PLAT_PM1A_EVT_PORT,
    PM_EN = PM_STS + 2,
    PM_CNT = PLAT_PM1A_CNT_PORT - PLAT_PM1A_EVT_PORT,
    PM_TMR = PLAT_PM_TMR_PORT - PLAT_PM1A_EVT_PORT,
    PM_RESET = PLAT_RESET_PORT - PLAT_PM1A_EVT_PORT,
};

/* The enable bits PM1_EN keeps (ACPICA reads an enable back to see that it took). */
#define PM1_EN_BITS (PM1_TMR_EN | PM1_GBL_EN | PM1_PWRBTN_EN | PM1_SLPBTN_EN | PM1_RTC_EN)
/* The events petrel raises. */
#define PM1_EVENTS PM1_PWRBTN_EN

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The host clock's count, before the offset. */
static uint32_t pm_ticks(const struct acpi_pm *pm)
{
    uint64_t ns = pm->now_ns ? pm->now_ns() : monotonic_ns();
    /* Split so that the product cannot overflow. */
    uint64_t s = ns / 1000000000u, rem = ns % 1000000000u;
    return (uint32_t)(s * ACPI_PM_TMR_HZ + rem * ACPI_PM_TMR_HZ / 1000000000u);
}

static uint32_t pm_timer(const struct acpi_pm *pm)
{
    return pm_ticks(pm) + pm->tmr_offset; /* modulo 2^32, as the counter wraps */
}

/* Called with the lock held after sts or en changed. */
static void update_sci(struct acpi_pm *pm)
{
    bool level = (pm->sts & pm->en & PM1_EVENTS) != 0;
    if (level != pm->sci_level) {
        pm->sci_level = level;
        irq_set(pm->sci, level);
    }
}

static uint8_t read_byte(struct acpi_pm *pm, uint64_t off, uint32_t tmr)
{
    switch (off) {
    case PM_STS:
    case PM_STS + 1:
        return (uint8_t)(pm->sts >> (8 * (off - PM_STS)));
    case PM_EN:
    case PM_EN + 1:
        return (uint8_t)(pm->en >> (8 * (off - PM_EN)));
    case PM_CNT:
    case PM_CNT + 1:
        return (uint8_t)((pm->cnt | PM1_SCI_EN) >> (8 * (off - PM_CNT)));
    case PM_TMR:
    case PM_TMR + 1:
    case PM_TMR + 2:
    case PM_TMR + 3:
        return (uint8_t)(tmr >> (8 * (off - PM_TMR)));
    default:
        return 0; /* the reset register reads 0; the rest is reserved */
    }
}

static uint64_t acpi_pm_read(struct device *dev, uint64_t offset, unsigned size)
{
    struct acpi_pm *pm = container_of(dev, struct acpi_pm, dev);
    uint32_t tmr = pm_timer(pm); /* one sample, so a 32-bit read is consistent */
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)read_byte(pm, offset + i, tmr) << (8 * i);
    return v;
}

static void write_cnt(struct acpi_pm *pm, uint16_t value)
{
    /* SLP_EN is write-only; SCI_EN is fixed at 1. */
    pm->cnt = value & (uint16_t) ~(PM1_SLP_EN | PM1_SCI_EN);
    if (!(value & PM1_SLP_EN))
        return;
    unsigned typ = (value & PM1_SLP_TYP_MASK) >> PM1_SLP_TYP_SHIFT;
    if (typ == PLAT_SLP_TYP_S5)
        exit_hook_call(&pm->hook, VM_EXIT_POWEROFF, 0);
    else
        pm->ignored_sleeps++;
}

static void acpi_pm_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct acpi_pm *pm = container_of(dev, struct acpi_pm, dev);

    for (unsigned i = 0; i < size; i++) {
        uint64_t off = offset + i;
        uint16_t b = (uint8_t)(value >> (8 * i));
        unsigned shift = 0;
        switch (off) {
        case PM_STS + 1:
            shift = 8;
            /* fall through */
        case PM_STS:
            pm->sts &= (uint16_t) ~(b << shift); /* write 1 to clear */
            update_sci(pm);
            break;
        case PM_EN + 1:
            shift = 8;
            /* fall through */
        case PM_EN:
            pm->en = (uint16_t)((pm->en & ~(0xffu << shift)) | (b << shift)) & PM1_EN_BITS;
            update_sci(pm);
            break;
        case PM_CNT:
            write_cnt(pm, (uint16_t)((pm->cnt & 0xff00) | b));
            break;
        case PM_CNT + 1:
            /* A 16-bit write arrives here second: SLP_EN acts on the whole value. */
            write_cnt(pm, (uint16_t)((pm->cnt & 0x00ff) | (b << 8)));
            break;
        case PM_RESET:
            if (b == PLAT_RESET_VALUE)
                exit_hook_call(&pm->hook, VM_EXIT_RESET, 0);
            break;
        default:
            break; /* the timer is read-only; the rest is reserved */
        }
    }
}

static void acpi_pm_reset(struct device *dev)
{
    struct acpi_pm *pm = container_of(dev, struct acpi_pm, dev);
    pm->sts = pm->en = pm->cnt = 0;
    update_sci(pm);
}

static const struct dev_ops acpi_pm_ops = {
    .read = acpi_pm_read,
    .write = acpi_pm_write,
    .reset = acpi_pm_reset,
};

void acpi_pm_init(struct acpi_pm *pm, struct exit_hook hook, struct irq_line *sci)
{
    memset(pm, 0, sizeof(*pm));
    device_init(&pm->dev, "acpi-pm", &acpi_pm_ops);
    pm->hook = hook;
    pm->sci = sci;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
    device_destroy(&pm->dev);
}

bool acpi_pm_power_button(struct acpi_pm *pm)
{
    pthread_mutex_lock(&pm->dev.lock);
    bool enabled = pm->en & PM1_PWRBTN_EN;
    if (enabled) {
        pm->sts |= PM1_PWRBTN_STS;
        update_sci(pm);
    }
    pthread_mutex_unlock(&pm->dev.lock);
    return enabled;
}

/* PM1_CNT as write_cnt() keeps it: SLP_EN and SCI_EN are never stored. */
#define PM1_CNT_BITS (0xffffu & ~(PM1_SLP_EN | PM1_SCI_EN))

int acpi_pm_save(const struct acpi_pm *pm, struct state_out *out)
{
    state_put_u32(out, "pm1-status", pm->sts);
    state_put_u32(out, "pm1-enable", pm->en);
    state_put_u32(out, "pm1-control", pm->cnt);
    state_put_u32(out, "timer", pm_timer(pm));
    return out->err;
}

int acpi_pm_restore(struct acpi_pm *pm, struct state_in *in)
{
    uint32_t sts, en, cnt, timer;

    state_get_bits(in, "pm1-status", PM1_PWRBTN_STS, &sts);
    state_get_bits(in, "pm1-enable", PM1_EN_BITS, &en);
    state_get_bits(in, "pm1-control", PM1_CNT_BITS, &cnt);
    state_get_u32(in, "timer", &timer);
    if (in->err)
        return in->err;

    pthread_mutex_lock(&pm->dev.lock);
    pm->sts = (uint16_t)sts;
    pm->en = (uint16_t)en;
    pm->cnt = (uint16_t)cnt;
    pm->tmr_offset = timer - pm_ticks(pm);
    update_sci(pm);
    pthread_mutex_unlock(&pm->dev.lock);
    return 0;
}

/* The machine's ACPI fixed hardware (hwdev.h): SCI on IRQ 9, the power-button role. */
struct acpi_pm_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct kvm_irq_gsi sci;
    struct acpi_pm pm;
};

static bool acpi_pm_button(void *dev)
{
    return acpi_pm_power_button(dev);
}

static int acpi_pm_hw_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct acpi_pm_hw *d = container_of(hw, struct acpi_pm_hw, hw);
    const struct hwdev_host *host = hw->host;

    kvm_irq_gsi_init(&d->sci, host->vm_fd, PLAT_SCI_IRQ);
    acpi_pm_init(&d->pm, host->exit, &d->sci.line);
    int ret = bus_register(host->pio, PLAT_PM1A_EVT_PORT, PLAT_PM_PORTS, &d->pm.dev);
    if (ret) {
        acpi_pm_destroy(&d->pm);
        return err_set(eb, ret, "cannot register the ACPI PM registers: %s", strerror(-ret));
    }
    host->roles->power_button = acpi_pm_button;
    host->roles->power_button_dev = &d->pm;
    return 0;
}

static int acpi_pm_hw_save(struct hwdev *hw, struct state_out *out)
{
    return acpi_pm_save(&container_of(hw, struct acpi_pm_hw, hw)->pm, out);
}

static int acpi_pm_hw_restore(struct hwdev *hw, struct state_in *in)
{
    return acpi_pm_restore(&container_of(hw, struct acpi_pm_hw, hw)->pm, in);
}

static void acpi_pm_hw_destroy(struct hwdev *hw)
{
    struct acpi_pm_hw *d = container_of(hw, struct acpi_pm_hw, hw);
    if (hw->realized) {
        hw->host->roles->power_button = NULL;
        (void)bus_unregister(hw->host->pio, PLAT_PM1A_EVT_PORT);
        acpi_pm_destroy(&d->pm);
    }
}

const struct hwdev_ops acpi_pm_fixed = {
    .type = "acpi-pm",
    .compatible = ACPI_PM_STATE_COMPATIBLE,
    .size = sizeof(struct acpi_pm_hw),
    .name = "pm",
    .realize = acpi_pm_hw_realize,
    .save = acpi_pm_hw_save,
    .restore = acpi_pm_hw_restore,
    .destroy = acpi_pm_hw_destroy,
};
