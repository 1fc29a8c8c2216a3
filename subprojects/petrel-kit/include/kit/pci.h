/*
 * PCI for kit programs: configuration mechanism #1 (ports 0xcf8/0xcfc, PCI
 * Local Bus 3.0, 3.2.2.3.2), bus 0 only, as petrel and QEMU's pc machine
 * present it.
 *
 * - Enumeration: every slot's function 0, and functions 1-7 when function
 *   0's header type says multi-function; a vendor ID of 0xffff is absent.
 * - BARs: read and sized (all-ones written with memory and I/O decoding off,
 *   then the original value and command put back); 32- and 64-bit memory
 *   BARs and I/O BARs.
 * - Capabilities: the list from the status register's CAP_LIST bit and
 *   offset 0x34, walked with a bound (PCI_CAP_TTL entries, pointers in
 *   0x40-0xfc): a configuration space that loops or points into the header
 *   is reported as malformed, never followed forever.
 *
 * Everything the configuration space says is untrusted: a device under test
 * may be hostile. Each configuration access is a port exit (~17 us on
 * kvm_pvm), so the walkers read as little as they can.
 */
#ifndef KIT_PCI_H
#define KIT_PCI_H

#include <stdint.h>

#define PCI_MAX_FUNCS 256 /* bus 0: 32 slots x 8 functions */
#define PCI_CAP_TTL   48  /* at most this many capabilities (Linux's PCI_FIND_CAP_TTL) */
#define PCI_NR_BARS   6

/* Type-0 header registers (PCI Local Bus 3.0, 6.1). */
#define PCI_VENDOR_ID     0x00
#define PCI_DEVICE_ID     0x02
#define PCI_COMMAND       0x04
#define PCI_STATUS        0x06
#define PCI_REVISION      0x08 /* then the class code: prog-if 0x09, subclass 0x0a, class 0x0b */
#define PCI_HEADER_TYPE   0x0e
#define PCI_BAR0          0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID     0x2e
#define PCI_CAP_PTR       0x34

#define PCI_COMMAND_IO     0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_STATUS_CAP     0x10
#define PCI_HEADER_MULTI   0x80

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

/* A function's address: bus << 8 | device << 3 | function. */
#define PCI_BDF(bus, dev, fn) ((uint16_t)((bus) << 8 | (dev) << 3 | (fn)))
#define PCI_BDF_BUS(bdf)      ((unsigned)(bdf) >> 8)
#define PCI_BDF_DEV(bdf)      (((unsigned)(bdf) >> 3) & 0x1f)
#define PCI_BDF_FN(bdf)       ((unsigned)(bdf)&7)

/* What enumeration read of one function. */
struct pci_func {
    uint16_t bdf;
    uint16_t vendor, device;
    uint16_t subsys_vendor, subsys;
    uint32_t class_code; /* class << 16 | subclass << 8 | prog-if */
    uint8_t revision;
    uint8_t header_type; /* without the multi-function bit */
};

/* A BAR as pci_bar_read() found it. */
struct pci_bar {
    uint64_t addr; /* where it decodes (the register's address bits) */
    uint64_t size; /* 0: the BAR is not implemented */
    uint8_t io;    /* an I/O BAR */
    uint8_t is64;  /* a 64-bit memory BAR (it took the next register too) */
    uint8_t prefetch;
};

/* One capability: its offset in configuration space and its ID. */
struct pci_cap {
    uint8_t off, id;
};

/* Configuration space of bdf; reg is a byte offset (0-255), aligned to the size. */
uint32_t pci_read32(uint16_t bdf, unsigned reg);
uint16_t pci_read16(uint16_t bdf, unsigned reg);
uint8_t pci_read8(uint16_t bdf, unsigned reg);
void pci_write32(uint16_t bdf, unsigned reg, uint32_t v);
void pci_write16(uint16_t bdf, unsigned reg, uint16_t v);
void pci_write8(uint16_t bdf, unsigned reg, uint8_t v);

/* Fills out[0..max) with the functions on bus 0, in bdf order; returns how many. */
unsigned pci_enumerate(struct pci_func *out, unsigned max);

/* Reads one function's identity; -1 if nothing answers at bdf. */
int pci_func_read(uint16_t bdf, struct pci_func *f);

/* pci_enumerate(), printing each function found (pci_print): what a program reports first. */
unsigned pci_scan(struct pci_func *out, unsigned max);

/* The index of the first of f[from..n) with this vendor and device ID, or -1. */
int pci_next(const struct pci_func *f, unsigned n, unsigned from, uint16_t vendor, uint16_t device);

/*
 * Reads and sizes BAR n (0-5) of a type-0 function. 0, or -1 if n is out of
 * range, -2 if the BAR is malformed (a 64-bit BAR in register 5, a reserved
 * memory type, a size mask with holes). A BAR that is not implemented
 * returns 0 with size 0. A 64-bit BAR takes register n + 1 too: a caller
 * walking the BARs skips it.
 */
int pci_bar_read(uint16_t bdf, unsigned n, struct pci_bar *bar);

/*
 * Lists the capabilities, at most max of them, into out. Returns the count,
 * or -1 if the list is malformed (a pointer into the header, a loop, more
 * than PCI_CAP_TTL entries); out then holds what came before the fault.
 */
int pci_caps(uint16_t bdf, struct pci_cap *out, unsigned max);

/* Offset of the first capability with this ID, 0 if there is none, -1 if the list is malformed. */
int pci_cap_find(uint16_t bdf, uint8_t id);

/* Sets bits in the command register (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER ...). */
void pci_enable(uint16_t bdf, uint16_t bits);

/* Prints "pci: 00:01.0 1af4:1044 class ff0000 rev 01" for f. */
void pci_print(const struct pci_func *f);

#endif
