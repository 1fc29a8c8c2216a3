/*
 * The platform a stock kernel expects (docs/platform.md): the in-kernel
 * irqchip's GSI routing and IOAPIC ID, the ACPI and MP tables in guest memory,
 * and the platform devices (ACPI fixed hardware, the RTC, the PCI host bridge).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

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

/* KVM's IOAPIC starts with ID 0; the tables give it the first ID no vCPU has. */
static int set_ioapic_id(struct vm *vm, struct errbuf *eb)
{
    struct kvm_irqchip chip = {.chip_id = KVM_IRQCHIP_IOAPIC};
    if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
        return err_set(eb, -errno, "KVM_GET_IRQCHIP: %s", strerror(errno));
    chip.chip.ioapic.id = plat_ioapic_id(vm->cfg.cpus);
    if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
        return err_set(eb, -errno, "KVM_SET_IRQCHIP: %s", strerror(errno));
    return 0;
}

/*
 * GSI routing as on a PC (irq_routing.c): KVM's default would route the PIT's
 * GSI 0 to IOAPIC pin 0, against the tables' IRQ 0 -> GSI 2 override.
 */
int vm_platform_irqchip(struct vm *vm, struct errbuf *eb)
{
    int ret = irq_routing_init(&vm->routing, vm->vm_fd, NULL);
    if (ret)
        return err_set(eb, ret, "KVM_SET_GSI_ROUTING: %s", strerror(-ret));
    vm->routing_ready = true;
    return set_ioapic_id(vm, eb);
}

int vm_platform_tables(struct vm *vm, struct errbuf *eb)
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

static void vm_on_rtc_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    rtc_cmos_on_timer(arg);
}

static int setup_rtc(struct vm *vm, struct errbuf *eb)
{
    kvm_irq_gsi_init(&vm->rtc_irq, vm->vm_fd, PLAT_RTC_IRQ);
    int ret = rtc_cmos_init(&vm->rtc, &vm->rtc_irq.line, NULL);
    if (ret)
        return err_set(eb, ret, "cannot set up the RTC: %s", strerror(-ret));
    vm->rtc_ready = true;

    uint64_t below = gm_low_end(&vm->mem);
    rtc_cmos_set_memory(&vm->rtc, below, vm->mem.size - below);

    vm->ev_rtc = event_new(vm->base, rtc_cmos_timer_fd(&vm->rtc), EV_READ | EV_PERSIST,
                           vm_on_rtc_timer, &vm->rtc);
    if (!vm->ev_rtc || event_add(vm->ev_rtc, NULL))
        return err_set(eb, -ENOMEM, "cannot watch the RTC's timer");
    ret = bus_register(&vm->pio, RTC_CMOS_INDEX_PORT, RTC_CMOS_NR_PORTS, &vm->rtc.dev);
    if (ret)
        return err_set(eb, ret, "cannot register the RTC: %s", strerror(-ret));
    return 0;
}

/* --console virtio: the console's output buffer and input (vm_console.c) move to it. */
static int setup_virtio_console(struct vm *vm, const struct virtio_sys *sys, struct errbuf *eb)
{
    if (!vm->cfg.console_virtio)
        return 0;
    int ret = virtio_console_init(&vm->vcons, sys, &vm->console.buf);
    if (ret)
        return err_set(eb, ret, "cannot set up virtio-console: %s", strerror(-ret));
    ret = virtio_pci_add(&vm->vcons.vdev, &vm->pci);
    if (ret)
        return err_set(eb, ret, "cannot plug virtio-console into PCI: %s", strerror(-ret));
    vm_console_use_virtio(vm);
    return 0;
}

/* The virtio devices the configuration asks for, on PCI bus 0 (virtio.h). */
static int setup_virtio(struct vm *vm, struct errbuf *eb)
{
    struct virtio_sys sys = {
        .vm_fd = vm->vm_fd,
        .gm = &vm->mem,
        .routing = &vm->routing,
        .base = vm->base,
    };

    if (vm->cfg.rng) {
        int ret = virtio_rng_init(&vm->rng, &sys);
        if (ret)
            return err_set(eb, ret, "cannot set up virtio-rng: %s", strerror(-ret));
        ret = virtio_pci_add(&vm->rng.vdev, &vm->pci);
        if (ret)
            return err_set(eb, ret, "cannot plug virtio-rng into PCI: %s", strerror(-ret));
    }
    /* One function per drive in command-line order: Linux names them vda, vdb, ... as found. */
    for (unsigned i = 0; i < vm->cfg.nr_drives; i++) {
        int ret = virtio_blk_init(&vm->blk[i], NULL, &sys, eb);
        if (ret)
            return ret;
        ret = virtio_pci_add(&vm->blk[i].vdev, &vm->pci);
        if (ret)
            return err_set(eb, ret, "cannot plug virtio-blk for %s into PCI: %s",
                           vm->cfg.drives[i].path, strerror(-ret));
    }
    return setup_virtio_console(vm, &sys, eb);
}

/* Opens the --drive files, early: a missing file is reported before KVM is touched. */
int vm_platform_drives(struct vm *vm, struct errbuf *eb)
{
    for (unsigned i = 0; i < vm->cfg.nr_drives; i++) {
        int ret = virtio_blk_open(&vm->blk[i], &vm->cfg.drives[i], eb);
        if (ret)
            return ret;
    }
    return 0;
}

int vm_platform_devices(struct vm *vm, struct errbuf *eb)
{
    kvm_irq_gsi_init(&vm->sci_irq, vm->vm_fd, PLAT_SCI_IRQ);
    acpi_pm_init(&vm->pm, vm_exit_hook(vm), &vm->sci_irq.line);
    int ret = bus_register(&vm->pio, PLAT_PM1A_EVT_PORT, PLAT_PM_PORTS, &vm->pm.dev);
    if (ret)
        return err_set(eb, ret, "cannot register the ACPI PM registers: %s", strerror(-ret));
    ret = setup_rtc(vm, eb);
    if (ret)
        return ret;

    /* The PCI host bridge is always there: the DSDT describes it, stock kernels probe it. */
    pci_bus_init(&vm->pci, &vm->mmio);
    vm->pci_ready = true;
    ret = bus_register(&vm->pio, PLAT_PCI_CONF_PORT, PLAT_PCI_CONF_LEN, &vm->pci.dev);
    if (ret)
        return err_set(eb, ret, "cannot register the PCI configuration ports: %s", strerror(-ret));
    return setup_virtio(vm, eb);
}

/* Before the event base is freed (the RTC's event lives in it). */
void vm_platform_destroy(struct vm *vm)
{
    if (vm->ev_rtc)
        event_free(vm->ev_rtc);
    vm->ev_rtc = NULL;
    if (vm->rtc_ready)
        rtc_cmos_destroy(&vm->rtc);
    vm->rtc_ready = false;
    if (vm->rng.vdev.ops) /* its kick events live in the event base */
        virtio_rng_destroy(&vm->rng);
    /* Each drive finishes what its workers hold, then closes: flushed data is on the file. */
    for (unsigned i = 0; i < VIRTIO_BLK_MAX_DRIVES; i++)
        virtio_blk_destroy(&vm->blk[i]);
    if (vm->vcons.vdev.ops)
        virtio_console_destroy(&vm->vcons);
    if (vm->pci_ready)
        pci_bus_destroy(&vm->pci);
    vm->pci_ready = false;
    if (vm->pm.dev.ops)
        acpi_pm_destroy(&vm->pm);
    if (vm->routing_ready)
        irq_routing_destroy(&vm->routing);
    vm->routing_ready = false;
}
