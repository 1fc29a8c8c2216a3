/*
 * What gdb sees of an x86-64 vCPU: the target description (XML) petrel
 * serves with qXfer:features:read, the registers it lists packed in that
 * order (the 'g'/'G'/'p'/'P' packets), the debug registers that hold
 * hardware breakpoints and watchpoints, and guest-virtual to guest-physical
 * translation through the guest's own page tables.
 */
#ifndef PETREL_X86_GDB_H
#define PETREL_X86_GDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "petrel/guest_mem.h"
#include "petrel/util.h"

/* A vCPU's registers as KVM gives them. */
struct x86_gdb_regs {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
};

/* Registers in the target description, numbered from 0 in this order. */
#define X86_GDB_NR_REGS 65
/* Bytes of all of them: the 'g' packet's payload is twice this in hex. */
#define X86_GDB_REGS_BYTES 600

/* The target description (one XML document, "target.xml"), and its length. */
extern const char x86_gdb_target_xml[];
extern const size_t x86_gdb_target_xml_len;

/* Register n's offset and size in the packed buffer: 0, or -EINVAL for no such register. */
int x86_gdb_reg_slot(unsigned n, size_t *offset, size_t *size) MUST_CHECK;

/* Packs every register into buf (X86_GDB_REGS_BYTES), in gdb's (little-endian) order. */
void x86_gdb_pack(const struct x86_gdb_regs *r, uint8_t *buf);

/*
 * Takes a packed buffer back into r (which holds the current values): 0, or
 * -EINVAL if it changes a segment selector (a selector alone cannot be
 * loaded: its descriptor would not follow), leaving r unchanged.
 */
int x86_gdb_unpack(struct x86_gdb_regs *r, const uint8_t *buf) MUST_CHECK;

/* A hardware breakpoint's kind, as gdb's Z1-Z4 name them. */
enum x86_hwbp_type {
    X86_HWBP_EXEC = 1,  /* Z1 */
    X86_HWBP_WRITE = 2, /* Z2 */
    X86_HWBP_READ = 3,  /* Z3: x86 has no read-only watch; it is a read/write one */
    X86_HWBP_ACCESS = 4 /* Z4 */
};

/*
 * DR7's bits for slot (0-3) holding a breakpoint of type over len bytes
 * (1 for EXEC; 1, 2, 4 or 8 aligned for the others): the enable bit, R/W
 * and LEN. 0, or -EINVAL for a length or alignment x86 cannot watch.
 */
int x86_dr7_slot(unsigned slot, enum x86_hwbp_type type, uint64_t addr, unsigned len,
                 uint64_t *bits) MUST_CHECK;

/* What decides how a vCPU translates addresses. */
struct x86_mmu {
    uint64_t cr0, cr3, cr4, efer;
};

/*
 * Translates gva through the guest's page tables (read from gm through the
 * checked accessor): *gpa, and in *span the bytes from gva to the end of its
 * page (4 KiB, 2 MiB or 1 GiB), so a caller crosses pages one at a time.
 * Paging off: identity. 4-level long mode paging: walked. -EOPNOTSUPP for
 * 5-level paging (CR4.LA57) and 32-bit paging modes; -EFAULT for a
 * non-canonical address, a non-present entry, a reserved PS bit or a table
 * outside RAM.
 */
int x86_translate(const struct guest_mem *gm, const struct x86_mmu *mmu, uint64_t gva,
                  uint64_t *gpa, uint64_t *span) MUST_CHECK;

#endif
