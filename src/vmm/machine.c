/*
 * The machine: which devices a VM has, in what order, as a board file would
 * list them (docs/platform.md). Each row is a device's ops and how many
 * instances the configuration asks for; the order is the order of creation,
 * realization, reset, saving and restoring (and the reverse for teardown).
 * Ports, IRQs and PCI slots are each device's own (platform.h); PCI functions
 * take slots in the order they are realized, so Linux finds drives as vda, vdb
 * ... in command-line order. Adding a device is one row here.
 */
#include "petrel/machine.h"

#include "petrel/acpi_pm.h"
#include "petrel/config.h"
#include "petrel/debugport.h"
#include "petrel/i8042.h"
#include "petrel/pci.h"
#include "petrel/rtc_cmos.h"
#include "petrel/testdev.h"
#include "petrel/uart8250.h"
#include "petrel/virtio_blk.h"
#include "petrel/virtio_console.h"
#include "petrel/virtio_net.h"
#include "petrel/virtio_rng.h"

static unsigned one(const struct vm_config *cfg)
{
    (void)cfg;
    return 1;
}

static unsigned with_debug_exit(const struct vm_config *cfg)
{
    return cfg->debug_exit;
}

static unsigned with_rng(const struct vm_config *cfg)
{
    return cfg->rng;
}

static unsigned per_drive(const struct vm_config *cfg)
{
    return cfg->nr_drives;
}

static unsigned per_net(const struct vm_config *cfg)
{
    return cfg->nr_nets;
}

static unsigned with_virtio_console(const struct vm_config *cfg)
{
    return cfg->console_virtio;
}

static unsigned with_testdev(const struct vm_config *cfg)
{
    return cfg->testdev;
}

static const struct {
    const struct hwdev_ops *ops;
    unsigned (*count)(const struct vm_config *cfg);
} pc_machine[] = {
    {&uart8250_com1, one},
    {&debugcon_port, one},
    {&i8042_kbc, one},
    {&debugexit_port, with_debug_exit},
    {&acpi_pm_fixed, one},
    {&rtc_cmos_isa, one},
    {&pci_host_bridge, one},
    {&virtio_rng_pci, with_rng},
    {&virtio_blk_pci, per_drive},
    {&virtio_console_pci, with_virtio_console},
    {&testdev_pci, with_testdev},
    {&virtio_net_pci, per_net},
};

int machine_create(struct hwdev_list *l, const struct hwdev_host *host, struct errbuf *eb)
{
    for (unsigned i = 0; i < ARRAY_SIZE(pc_machine); i++) {
        unsigned n = pc_machine[i].count(host->cfg);
        for (unsigned k = 0; k < n; k++) {
            int ret = hwdev_list_create(l, pc_machine[i].ops, host, k, eb);
            if (ret)
                return ret;
        }
    }
    return 0;
}
