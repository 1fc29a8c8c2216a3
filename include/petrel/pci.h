/*
 * PCI for petrel: configuration mechanism #1, bus 0 with a host bridge, and a
 * generic type-0 function model that device transports (virtio-pci) build on.
 *
 * - struct pci_bus is the host side: a device on the PIO bus at
 *   PLAT_PCI_CONF_PORT (0xcf8, 8 ports). CONFIG_ADDRESS is the dword at 0xcf8
 *   (byte and word accesses to 0xcf8-0xcfb do not touch it, as on Intel
 *   chipsets, where they pass through to the I/O bus: they read all-ones).
 *   CONFIG_DATA is 0xcfc-0xcff, 1, 2 or 4 bytes at any offset. Bus 0 only,
 *   32 slots, function 0 only; anything absent reads all-ones. There is no
 *   extended configuration space (no MCFG; a CONFIG_ADDRESS with any of
 *   bits 24-30 set, which Linux on AMD CPUs uses for registers 256-4095,
 *   selects nothing), so every function has 256 bytes.
 * - The host bridge at 00:00.0 is 8086:0d57, class 0x060000, header type 0,
 *   no BARs: Intel's ID for a virtual PCIe host bridge, the one Cloud
 *   Hypervisor and Dragonball give theirs. Linux's conf1 probe
 *   (arch/x86/pci/direct.c, pci_sanity_check) only wants a function of class
 *   "host bridge" on bus 0; no quirk or driver is keyed to 8086:0d57, so the
 *   guest expects nothing chipset-specific of it. A real chipset's ID would:
 *   the i440FX's 8086:1237 gets quirk_natoma, Q35's 8086:29c0 is claimed by
 *   intel-agp, and firmware written for them programs their PAM/SMRAM
 *   registers.
 * - struct pci_dev is one function: 256 bytes of configuration space with a
 *   writable mask per byte (everything else is read-only), command and
 *   status, up to six memory BARs (32- or 64-bit, optionally prefetchable,
 *   power-of-two sizes of at least 4 KiB), a capability list and MSI-X.
 *
 * BARs. pci_bus_add() places every BAR in the 32-bit window
 * (PLAT_PCI_MMIO_BASE, naturally aligned) and turns memory decoding on, as
 * firmware would, so a guest that does not re-assign finds working devices.
 * While decoding is on, each BAR is registered on the MMIO bus by this module
 * (one struct device per BAR, whose accesses reach the owner's bar_read and
 * bar_write, or the MSI-X table and PBA). When the guest moves a BAR or
 * toggles memory decoding, the old range is unregistered, the new one
 * registered, and then the owner's bar_moved() says where the BAR is now (to
 * move its ioeventfds); pci_bus_add() reports the first placement the same
 * way. A range that cannot be registered (it overlaps another
 * device) stays unregistered until the guest moves the BAR again; that is
 * logged once per BAR and the VM keeps running.
 *
 * MSI-X. pci_msix_init() adds the capability and puts the table and the PBA
 * in one of the function's BARs. The contract with the transport:
 * - a vector is *masked* while MSI-X is disabled, the function is masked
 *   (message control bit 14) or its entry's mask bit is set;
 * - msix_vector() reports each change of a vector's (address, data, masked);
 *   msix_control() reports changes of (enabled, function masked);
 * - the transport raises a vector only with pci_msix_fire(): while the vector
 *   is masked, that sets its PBA bit and nothing is sent; when it is unmasked
 *   with its PBA bit set, the bit is cleared and msix_signal() delivers it,
 *   always after msix_vector() reported the unmasked state, so a transport
 *   that routes in msix_vector() has its route before the signal;
 * - msix_signal() (the transport's irqfd write) is called only for an
 *   unmasked vector, and never outside pci_msix_fire() or an unmask. With
 *   MSI-X disabled a fire is dropped (no INTx: the interrupt pin is 0).
 * A transport with KVM routing therefore: allocates one GSI and irqfd per
 * vector up front (irq_routing.h), routes in msix_vector() whenever the vector
 * is unmasked (irq_routing_msi_set), keeps the route while it is masked (an
 * irqfd write already in flight then still lands), and writes the irqfd in
 * msix_signal().
 *
 * Threads and locks. A function's state, and its owner's state, is guarded
 * by pdev->dev.lock. Configuration accesses arrive on vCPU threads through
 * bus_dispatch() on the PIO bus, holding the conf1 device's lock
 * (bus->dev.lock, which guards CONFIG_ADDRESS); this module then takes the
 * function's lock. BAR accesses arrive through bus_dispatch() on the MMIO bus
 * holding the BAR's own struct device lock, then take the function's lock.
 * Every pci_dev_ops callback runs with pdev->dev.lock held, on a vCPU thread
 * (or wherever pci_msix_fire()/pci_dev_reset() was called); a callback must
 * not take the lock again (call the *_locked functions). Lock order:
 * conf1 lock or BAR lock -> function lock -> MMIO bus lock, irq routing lock.
 * Buses, functions and BARs are set up before the vCPUs start and stay until
 * they are gone (no hot-plug).
 */
#ifndef PETREL_PCI_H
#define PETREL_PCI_H

#include <linux/pci_regs.h>
#include <stdbool.h>
#include <stdint.h>

#include "petrel/bus.h"
#include "petrel/hwdev.h"
#include "petrel/state.h"
#include "petrel/util.h"

#define PCI_SLOTS            32
#define PCI_CFG_SIZE         PCI_CFG_SPACE_SIZE /* 256: no extended space */
#define PCI_NR_BARS          PCI_STD_NUM_BARS
#define PCI_BAR_MIN_SIZE     (4 * KiB)
#define PCI_BAR_UNMAPPED     UINT64_MAX /* a BAR that does not decode */
#define PCI_CAP_FIRST        0x40       /* capabilities go after the type-0 header */
#define PCI_MSIX_MAX_VECTORS (PCI_MSIX_FLAGS_QSIZE + 1)
#define PCI_MSIX_CAP_LEN     12

#define PCI_HOST_VENDOR 0x8086 /* the virtual host bridge: see above */
#define PCI_HOST_DEVICE 0x0d57
#define PCI_HOST_CLASS  0x060000 /* bridge, host bridge */

/* CONFIG_ADDRESS fields. */
#define PCI_CONF1_ENABLE   0x80000000u
#define PCI_CONF1_EXT_MASK 0x7f000000u /* reserved; AMD's extended register number */

/* Commands the function model implements (the others are hardwired to 0). */
#define PCI_COMMAND_WRITABLE                                                                       \
    (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR |             \
     PCI_COMMAND_INTX_DISABLE)

/* pci_bar_set() flags. */
#define PCI_BAR_64       (1u << 0)
#define PCI_BAR_PREFETCH (1u << 1)
#define PCI_BAR_UPPER    (1u << 2) /* internal: the upper dword of the 64-bit BAR below */

/* What pci_msix_fire() did. */
enum pci_msix_fired {
    PCI_MSIX_SENT = 0,    /* msix_signal() delivered it */
    PCI_MSIX_PENDING = 1, /* the vector is masked: its PBA bit is set */
    PCI_MSIX_DROPPED = 2, /* MSI-X is disabled */
};

struct pci_dev;
struct pci_bus;

/* The read-only identity of a function. */
struct pci_id {
    uint16_t vendor, device;
    uint16_t subsystem_vendor, subsystem;
    uint32_t class_code; /* base class << 16 | subclass << 8 | programming interface */
    uint8_t revision;
};

/* A vector as msix_vector() reports it. */
struct pci_msix_vector {
    uint64_t addr;
    uint32_t data;
    bool masked; /* MSI-X disabled, the function masked, or the entry masked */
};

/* What the owner of a function (a transport) plugs in; every member may be NULL. */
struct pci_dev_ops {
    /* BAR accesses outside the MSI-X table and PBA; offset within the BAR, size 1-8. */
    uint64_t (*bar_read)(struct pci_dev *pdev, unsigned bar, uint64_t offset, unsigned size);
    void (*bar_write)(struct pci_dev *pdev, unsigned bar, uint64_t offset, uint64_t value,
                      unsigned size);
    /* The BAR now decodes at new_addr (was old_addr); either may be PCI_BAR_UNMAPPED. */
    void (*bar_moved)(struct pci_dev *pdev, unsigned bar, uint64_t old_addr, uint64_t new_addr);
    /* After the model handled a config read (value) or write, for the owner's capabilities. */
    uint32_t (*config_read)(struct pci_dev *pdev, unsigned reg, unsigned size, uint32_t value);
    void (*config_write)(struct pci_dev *pdev, unsigned reg, uint32_t value, unsigned size);
    /* MSI-X: see the contract above. msix_signal returns 0 or -errno. */
    void (*msix_control)(struct pci_dev *pdev, bool enabled, bool function_masked);
    void (*msix_vector)(struct pci_dev *pdev, unsigned vector, const struct pci_msix_vector *v);
    int (*msix_signal)(struct pci_dev *pdev, unsigned vector);
};

struct pci_bar {
    struct device region; /* what the MMIO bus dispatches to; its lock is taken before pdev's */
    struct pci_dev *pdev;
    uint64_t size;   /* 0: no BAR here */
    unsigned flags;  /* PCI_BAR_* */
    uint64_t want;   /* where the guest asked it to decode, or PCI_BAR_UNMAPPED */
    uint64_t mapped; /* where it is registered, or PCI_BAR_UNMAPPED (a conflict) */
    bool warned;     /* a conflict was logged */
};

struct pci_msix {
    unsigned nr; /* table entries; 0: no MSI-X */
    unsigned bar;
    uint64_t table_off, pba_off;      /* within the BAR */
    uint8_t cap;                      /* the capability's config offset */
    bool enabled, fmasked;            /* message control as last acted on */
    uint32_t *table;                  /* nr entries of 4 dwords: address lo/hi, data, control */
    uint64_t *pba;                    /* pending bits */
    struct pci_msix_vector *reported; /* what msix_vector() last said */
    uint64_t sent;                    /* messages sent (dev.lock), for GET /stats */
};

/*
 * dev.ops treats the configuration space as the device's registers (read,
 * write at offset = register) and reset is pci_dev_reset_locked(); the caller
 * holds dev.lock, as bus_dispatch() would.
 */
struct pci_dev {
    struct device dev; /* dev.lock guards everything below, and the owner's state */
    const struct pci_dev_ops *ops;
    struct pci_bus *bus; /* NULL until pci_bus_add() */
    unsigned slot;
    uint8_t cfg[PCI_CFG_SIZE];       /* the owner may update read-only bytes under the lock */
    uint8_t wmask[PCI_CFG_SIZE];     /* bits the guest may write */
    uint8_t reset_cfg[PCI_CFG_SIZE]; /* as pci_bus_add() left it: what a reset restores */
    uint16_t cap_next;               /* where the next capability goes */
    uint8_t cap_last;                /* the last one's offset, 0: none yet */
    struct pci_bar bars[PCI_NR_BARS];
    struct pci_msix msix;
};

struct pci_bus {
    struct device dev; /* the conf1 ports; dev.lock guards config_address */
    uint32_t config_address;
    struct pci_dev *slots[PCI_SLOTS]; /* filled before the vCPUs start */
    struct pci_dev host;              /* 00:00.0 */
    struct bus *mmio;                 /* where BARs are registered; NULL: only bar_moved() */
    uint64_t mmio_next, mmio_end;     /* pre-assignment allocator (set-up only) */
    /* Logs a problem the guest caused (NULL: stderr); any vCPU thread. */
    void (*warn)(void *ctx, const char *msg);
    void *warn_ctx;
    struct trace *trace; /* event tracing (NULL: none): MSI-X messages */
};

/* Sets up bus 0 with the host bridge in slot 0; BARs will be registered on mmio. */
void pci_bus_init(struct pci_bus *bus, struct bus *mmio);
void pci_bus_destroy(struct pci_bus *bus);

/*
 * Plugs pdev into slot (-1: the first free one), places its BARs in the 32-bit
 * window, turns memory decoding on and registers them. 0, -EBUSY (slot taken),
 * -ENOSPC (no slot, or the window is full), -EEXIST (a BAR overlaps another
 * MMIO device), -EINVAL.
 */
int pci_bus_add(struct pci_bus *bus, struct pci_dev *pdev, int slot) MUST_CHECK;

/* A naturally aligned range of size bytes in the 32-bit window. 0 or -ENOSPC, -EINVAL. */
int pci_bus_alloc_mmio(struct pci_bus *bus, uint64_t size, uint64_t *addr) MUST_CHECK;

/* Initialises a function (header type 0, no BARs, no capabilities). ops may be NULL. */
void pci_dev_init(struct pci_dev *pdev, const char *name, const struct pci_id *id,
                  const struct pci_dev_ops *ops);
/* Unregisters its BARs and frees it; the vCPUs are gone. */
void pci_dev_destroy(struct pci_dev *pdev);

/*
 * Declares a memory BAR (before pci_bus_add): size a power of two, at least
 * PCI_BAR_MIN_SIZE (at most 2 GiB for a 32-bit BAR); a 64-bit BAR also takes
 * the next BAR's register. 0 or -EINVAL, -EBUSY.
 */
int pci_bar_set(struct pci_dev *pdev, unsigned bar, uint64_t size, unsigned flags) MUST_CHECK;

/*
 * Adds a capability (before pci_bus_add): len bytes of cap, cap[0] being its
 * ID (cap[1], the next pointer, is filled in); wmask (NULL: all read-only)
 * gives the bits the guest may write. Returns its config offset, or -ENOSPC,
 * -EINVAL, -EBUSY.
 */
int pci_cap_add(struct pci_dev *pdev, const void *cap, unsigned len, const void *wmask) MUST_CHECK;

/*
 * Adds MSI-X with nr vectors (before pci_bus_add): the table at table_off and
 * the PBA at pba_off in memory BAR bar (8-byte aligned, inside the BAR, not
 * overlapping). Returns the capability's offset, or -EINVAL, -EEXIST, -ENOMEM.
 */
int pci_msix_init(struct pci_dev *pdev, unsigned nr, unsigned bar, uint64_t table_off,
                  uint64_t pba_off) MUST_CHECK;

/* Configuration access as the guest makes it (reg + size within 256 bytes; otherwise
 * reads are all-ones and writes ignored). Take pdev->dev.lock. */
uint32_t pci_config_read(struct pci_dev *pdev, unsigned reg, unsigned size);
void pci_config_write(struct pci_dev *pdev, unsigned reg, uint32_t value, unsigned size);

/* Back to the state pci_bus_add() left (BARs at their first place, MSI-X off, table masked). */
void pci_dev_reset(struct pci_dev *pdev);
void pci_dev_reset_locked(struct pci_dev *pdev);

/* The address in a BAR's registers (not necessarily decoded); pdev->dev.lock held. */
uint64_t pci_bar_addr(const struct pci_dev *pdev, unsigned bar);
uint16_t pci_command(const struct pci_dev *pdev);

/*
 * Raises an MSI-X vector (any thread; the _locked form with pdev->dev.lock
 * held, as in a callback). Returns an enum pci_msix_fired, -EINVAL for a
 * vector the table does not have, or msix_signal()'s error.
 */
int pci_msix_fire(struct pci_dev *pdev, unsigned vector);
int pci_msix_fire_locked(struct pci_dev *pdev, unsigned vector);

/* Whether vector's PBA bit is set (pdev->dev.lock held). */
bool pci_msix_pending(const struct pci_dev *pdev, unsigned vector);

/*
 * Saving and restoring. A function's state is its configuration space (BAR
 * addresses, command, capability registers: the bus mapping and the MSI-X
 * control follow from it) and its MSI-X table and pending bits; the owner
 * (a transport) saves it in a node of its own, e.g. a subnode "pci" of the
 * device's node. The bus's own state is CONFIG_ADDRESS and the host bridge
 * (a subnode "host").
 */
#define PCI_DEV_STATE_COMPATIBLE "petrel,pci-function-v1"
#define PCI_BUS_STATE_COMPATIBLE "petrel,pci-bus-v1"

/* Writes pdev's state into a node the caller began, with the VM paused. Returns out->err. */
int pci_dev_save(const struct pci_dev *pdev, struct state_out *out) MUST_CHECK;

/*
 * Loads what pci_dev_save() wrote into a function set up the same way (the
 * same identity, BARs and capabilities: every read-only bit must be this
 * function's, and only writable MSI-X bits may be set), or refuses it
 * (in->err, with the property named) and leaves pdev unchanged. Then, as
 * after the guest's own writes: the BARs decode where the restored registers
 * say (bar_moved()), msix_control() and msix_vector() report what changed,
 * and a pending vector that is not masked is delivered. Without the lock.
 */
int pci_dev_restore(struct pci_dev *pdev, struct state_in *in) MUST_CHECK;

/* Writes CONFIG_ADDRESS and the host bridge into a node the caller began. Returns out->err. */
int pci_bus_save(const struct pci_bus *bus, struct state_out *out) MUST_CHECK;

/*
 * Loads what pci_bus_save() wrote, or refuses it and leaves bus unchanged.
 * Restore the bus before the functions on it: it takes every function's
 * BARs off the MMIO bus, and each pci_dev_restore() then registers them
 * where its restored registers say, so that functions the guest moved into
 * each other's old places do not collide with the places they start at.
 */
int pci_bus_restore(struct pci_bus *bus, struct state_in *in) MUST_CHECK;

/* Bus 0's host bridge and configuration ports in the machine table (machine.c). */
extern const struct hwdev_ops pci_host_bridge;

#endif
