/*
 * testdev: a small PCI device that lives in the tree as the example of how a
 * device is written (docs/devices.md walks through it) and as a target for
 * device-model tests. It is on the machine only with `petrel run --testdev`.
 *
 * It copies bytes between two guest buffers: the driver writes the source,
 * destination and length registers, rings the doorbell, and gets an MSI-X
 * interrupt when the copy is done or refused. Every guest address goes
 * through gm_ptr(); a range outside RAM (the device's own BAR, the MMIO hole,
 * past the end) or a length of 0 or above TESTDEV_DMA_MAX is refused with an
 * error code, and the VM keeps running.
 *
 * The function is 1234:7e57, class 0xff0000 ("other"), no INTx: vendor 0x1234
 * is not assigned by the PCI-SIG (QEMU's VGA uses 1234:1111), so no driver
 * anywhere binds to it.
 *
 * BAR 0 (32-bit memory, 4 KiB), every register 32 bits, little endian; the
 * 64-bit addresses also take one 8-byte access:
 *   0x00  ID         RO  TESTDEV_MAGIC ("PTDV")
 *   0x04  VERSION    RO  TESTDEV_VERSION
 *   0x08  SCRATCH    RW  anything; for register tests
 *   0x0c  STATUS     RW1C TESTDEV_ST_DONE | TESTDEV_ST_ERROR (a 1 written clears)
 *   0x10  SRC        RW  source guest-physical address, low then high dword
 *   0x18  DST        RW  destination, the same
 *   0x20  LEN        RW  bytes to copy
 *   0x24  ERROR      RO  why the last command failed (enum testdev_err); 0 after DONE
 *   0x28  COUNT      RO  commands completed (done or failed), wrapping
 *   0x100 DOORBELL   WO  any write starts a command with the registers as they are
 *                        then; KVM catches 4-byte writes (KVM_IOEVENTFD) and the loop
 *                        runs the command; other sizes take the same path through petrel
 *   0x800 MSI-X table (TESTDEV_VECTORS entries), 0xc00 PBA
 *
 * A command runs on the loop, with the registers as they are when it runs (a
 * driver leaves them alone until the command is done): the copy has memmove()
 * semantics (source and destination may overlap), then STATUS gets DONE or
 * ERROR, COUNT goes up and vector 0 fires (pci_msix_fire(): held in the PBA
 * while masked, dropped with MSI-X off). Rings the loop has not yet seen make
 * one command, as an interrupt already pending is not raised twice; a ring
 * while the VM is paused runs at resume (and is saved in a snapshot).
 *
 * Locking: pdev.dev.lock guards every field below pdev (the PCI model takes it
 * around BAR accesses on vCPU threads; the loop takes it to run a command).
 */
#ifndef PETREL_TESTDEV_H
#define PETREL_TESTDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "petrel/guest_mem.h"
#include "petrel/hwdev.h"
#include "petrel/irq_routing.h"
#include "petrel/pci.h"
#include "petrel/state.h"

#define TESTDEV_VENDOR  0x1234
#define TESTDEV_DEVICE  0x7e57
#define TESTDEV_CLASS   0xff0000
#define TESTDEV_MAGIC   0x56445450u /* "PTDV" */
#define TESTDEV_VERSION 1u

#define TESTDEV_BAR      0
#define TESTDEV_BAR_SIZE (4 * KiB)

/* Register offsets in BAR 0. */
#define TESTDEV_REG_ID       0x00
#define TESTDEV_REG_VERSION  0x04
#define TESTDEV_REG_SCRATCH  0x08
#define TESTDEV_REG_STATUS   0x0c
#define TESTDEV_REG_SRC      0x10
#define TESTDEV_REG_DST      0x18
#define TESTDEV_REG_LEN      0x20
#define TESTDEV_REG_ERROR    0x24
#define TESTDEV_REG_COUNT    0x28
#define TESTDEV_REG_DOORBELL 0x100
#define TESTDEV_MSIX_TABLE   0x800
#define TESTDEV_MSIX_PBA     0xc00
#define TESTDEV_VECTORS      1

#define TESTDEV_ST_DONE  (1u << 0)
#define TESTDEV_ST_ERROR (1u << 1)

/* The longest copy: bounded work per event on the loop. */
#define TESTDEV_DMA_MAX (1 * MiB)

/* The ERROR register. */
enum testdev_err {
    TESTDEV_ERR_NONE = 0,
    TESTDEV_ERR_LEN = 1, /* LEN is 0 or above TESTDEV_DMA_MAX */
    TESTDEV_ERR_SRC = 2, /* [SRC, SRC + LEN) is not wholly in one RAM region */
    TESTDEV_ERR_DST = 3, /* [DST, DST + LEN) is not */
};
#define TESTDEV_ERR_MAX TESTDEV_ERR_DST

/* The KVM-touching calls, replaceable by tests (NULL members: the real ones). */
struct testdev_sys_ops {
    int (*irqfd_init)(struct irqfd *irq, int vm_fd, uint32_t gsi);
    void (*irqfd_destroy)(struct irqfd *irq);
    int (*ioeventfd_bind)(struct ioeventfd *io, uint64_t addr, uint32_t len, bool pio);
    void (*ioeventfd_unbind)(struct ioeventfd *io);
};

/* What the device uses of the VM. */
struct testdev_sys {
    int vm_fd;
    struct guest_mem *gm;
    struct irq_routing *routing; /* NULL: no GSI routes (tests) */
    struct event_base *base;     /* the loop that watches the doorbell */
    const struct testdev_sys_ops *ops;
};

struct testdev {
    struct pci_dev pdev; /* pdev.dev.lock guards everything below */
    struct testdev_sys sys;
    uint32_t scratch, status, len, error, count;
    uint64_t src, dst;
    bool paused;           /* the VM is paused: doorbells wait */
    bool pending;          /* a doorbell rang and its command has not run (paused) */
    uint64_t bar_addr;     /* where BAR 0 decodes, or PCI_BAR_UNMAPPED */
    struct ioeventfd bell; /* the doorbell's eventfd */
    struct event *bell_ev; /* the loop's watch on bell.fd */
    uint32_t gsi;          /* vector 0's GSI */
    struct irqfd irqfd;    /* vector 0's irqfd */
    bool warned;           /* a refused command was logged */
    uint64_t bytes;        /* bytes copied (host statistics, not state) */
};

/* Sets up the function (not yet on a bus), its vector and the doorbell's event. 0 or -errno. */
int testdev_init(struct testdev *td, const struct testdev_sys *sys) MUST_CHECK;
void testdev_destroy(struct testdev *td);

/* The power-on state: registers 0, the function as pci_bus_add() left it. */
void testdev_reset(struct testdev *td);

/* The VM's pause and resume (on the loop): doorbells rung meanwhile run at resume. */
void testdev_pause(struct testdev *td);
void testdev_resume(struct testdev *td);

#define TESTDEV_STATE_COMPATIBLE "petrel,testdev-v1"

/* Writes the registers and the function (subnode "pci"); the VM paused. out->err. */
int testdev_save(const struct testdev *td, struct state_out *out) MUST_CHECK;
/* Reads them back, checked, or refuses with the property named and changes nothing. */
int testdev_restore(struct testdev *td, struct state_in *in) MUST_CHECK;

/* The machine's test device (machine.c), with --testdev. */
extern const struct hwdev_ops testdev_pci;

#endif
