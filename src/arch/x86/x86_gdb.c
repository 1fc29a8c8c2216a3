/* gdb's view of an x86-64 vCPU: target description, register packing, DR7, page walk. */
#include "petrel/x86_gdb.h"

#include <errno.h>
#include <string.h>

/*
 * The registers in the order the target description lists them (gdb numbers
 * them so): the i386 core feature (general registers, rip, eflags, segment
 * selectors, the x87 stack and control words), the SSE feature, the segment
 * bases, then the system registers gdb has no feature for (shown by
 * `info registers cr3` and `info all-registers`). gdb's amd64 support needs
 * the core feature with every one of its 40 registers; the rest is optional.
 */
enum x86_gdb_src {
    SRC_GPR,   /* index into struct kvm_regs as u64 (rax..r15, rip, rflags) */
    SRC_SEG,   /* selector of a segment (index: cs ss ds es fs gs) */
    SRC_ST,    /* x87 register */
    SRC_FPCTL, /* fctrl fstat ftag fiseg fioff foseg fooff fop */
    SRC_XMM,
    SRC_MXCSR,
    SRC_BASE, /* fs_base, gs_base */
    SRC_CR,   /* cr0 cr2 cr3 cr4 cr8 efer */
};

struct x86_gdb_reg {
    const char *name;
    unsigned char size, src, idx;
};

/* struct kvm_regs order: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags. */
enum { KR_RAX, KR_RBX, KR_RCX, KR_RDX, KR_RSI, KR_RDI, KR_RSP, KR_RBP, KR_R8, KR_RIP = 16, KR_RFL };

static const struct x86_gdb_reg x86_gdb_regs[X86_GDB_NR_REGS] = {
    {"rax", 8, SRC_GPR, KR_RAX},    {"rbx", 8, SRC_GPR, KR_RBX},    {"rcx", 8, SRC_GPR, KR_RCX},
    {"rdx", 8, SRC_GPR, KR_RDX},    {"rsi", 8, SRC_GPR, KR_RSI},    {"rdi", 8, SRC_GPR, KR_RDI},
    {"rbp", 8, SRC_GPR, KR_RBP},    {"rsp", 8, SRC_GPR, KR_RSP},    {"r8", 8, SRC_GPR, KR_R8},
    {"r9", 8, SRC_GPR, KR_R8 + 1},  {"r10", 8, SRC_GPR, KR_R8 + 2}, {"r11", 8, SRC_GPR, KR_R8 + 3},
    {"r12", 8, SRC_GPR, KR_R8 + 4}, {"r13", 8, SRC_GPR, KR_R8 + 5}, {"r14", 8, SRC_GPR, KR_R8 + 6},
    {"r15", 8, SRC_GPR, KR_R8 + 7}, {"rip", 8, SRC_GPR, KR_RIP},    {"eflags", 4, SRC_GPR, KR_RFL},
    {"cs", 4, SRC_SEG, 0},          {"ss", 4, SRC_SEG, 1},          {"ds", 4, SRC_SEG, 2},
    {"es", 4, SRC_SEG, 3},          {"fs", 4, SRC_SEG, 4},          {"gs", 4, SRC_SEG, 5},
    {"st0", 10, SRC_ST, 0},         {"st1", 10, SRC_ST, 1},         {"st2", 10, SRC_ST, 2},
    {"st3", 10, SRC_ST, 3},         {"st4", 10, SRC_ST, 4},         {"st5", 10, SRC_ST, 5},
    {"st6", 10, SRC_ST, 6},         {"st7", 10, SRC_ST, 7},         {"fctrl", 4, SRC_FPCTL, 0},
    {"fstat", 4, SRC_FPCTL, 1},     {"ftag", 4, SRC_FPCTL, 2},      {"fiseg", 4, SRC_FPCTL, 3},
    {"fioff", 4, SRC_FPCTL, 4},     {"foseg", 4, SRC_FPCTL, 5},     {"fooff", 4, SRC_FPCTL, 6},
    {"fop", 4, SRC_FPCTL, 7},       {"xmm0", 16, SRC_XMM, 0},       {"xmm1", 16, SRC_XMM, 1},
    {"xmm2", 16, SRC_XMM, 2},       {"xmm3", 16, SRC_XMM, 3},       {"xmm4", 16, SRC_XMM, 4},
    {"xmm5", 16, SRC_XMM, 5},       {"xmm6", 16, SRC_XMM, 6},       {"xmm7", 16, SRC_XMM, 7},
    {"xmm8", 16, SRC_XMM, 8},       {"xmm9", 16, SRC_XMM, 9},       {"xmm10", 16, SRC_XMM, 10},
    {"xmm11", 16, SRC_XMM, 11},     {"xmm12", 16, SRC_XMM, 12},     {"xmm13", 16, SRC_XMM, 13},
    {"xmm14", 16, SRC_XMM, 14},     {"xmm15", 16, SRC_XMM, 15},     {"mxcsr", 4, SRC_MXCSR, 0},
    {"fs_base", 8, SRC_BASE, 0},    {"gs_base", 8, SRC_BASE, 1},    {"cr0", 8, SRC_CR, 0},
    {"cr2", 8, SRC_CR, 1},          {"cr3", 8, SRC_CR, 2},          {"cr4", 8, SRC_CR, 3},
    {"cr8", 8, SRC_CR, 4},          {"efer", 8, SRC_CR, 5},
};

/* Written for petrel from the register list above; gdb reads the types it names. */
const char x86_gdb_target_xml[] =
    "<?xml version=\"1.0\"?>\n"
    "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
    "<target version=\"1.0\">\n"
    "<architecture>i386:x86-64</architecture>\n"
    "<feature name=\"org.gnu.gdb.i386.core\">\n"
    "<reg name=\"rax\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rbx\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rcx\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rdx\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rsi\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rdi\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rbp\" bitsize=\"64\" type=\"data_ptr\"/>\n"
    "<reg name=\"rsp\" bitsize=\"64\" type=\"data_ptr\"/>\n"
    "<reg name=\"r8\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r9\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r10\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r11\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r12\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r13\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r14\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"r15\" bitsize=\"64\" type=\"int64\"/>\n"
    "<reg name=\"rip\" bitsize=\"64\" type=\"code_ptr\"/>\n"
    "<reg name=\"eflags\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"cs\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"ss\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"ds\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"es\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"fs\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"gs\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"st0\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st1\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st2\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st3\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st4\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st5\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st6\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st7\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"fctrl\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fstat\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"ftag\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fiseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fioff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"foseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fooff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fop\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "</feature>\n"
    "<feature name=\"org.gnu.gdb.i386.sse\">\n"
    "<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>\n"
    "<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>\n"
    "<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>\n"
    "<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>\n"
    "<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>\n"
    "<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>\n"
    "<union id=\"vec128\">\n"
    "<field name=\"v4_float\" type=\"v4f\"/>\n"
    "<field name=\"v2_double\" type=\"v2d\"/>\n"
    "<field name=\"v16_int8\" type=\"v16i8\"/>\n"
    "<field name=\"v8_int16\" type=\"v8i16\"/>\n"
    "<field name=\"v4_int32\" type=\"v4i32\"/>\n"
    "<field name=\"v2_int64\" type=\"v2i64\"/>\n"
    "<field name=\"uint128\" type=\"uint128\"/>\n"
    "</union>\n"
    "<reg name=\"xmm0\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm1\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm2\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm3\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm4\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm5\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm6\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm7\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm8\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm9\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm10\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm11\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm12\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm13\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm14\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"xmm15\" bitsize=\"128\" type=\"vec128\"/>\n"
    "<reg name=\"mxcsr\" bitsize=\"32\" type=\"int\" group=\"vector\"/>\n"
    "</feature>\n"
    "<feature name=\"org.gnu.gdb.i386.segments\">\n"
    "<reg name=\"fs_base\" bitsize=\"64\" type=\"int\"/>\n"
    "<reg name=\"gs_base\" bitsize=\"64\" type=\"int\"/>\n"
    "</feature>\n"
    "<feature name=\"org.petrel.x86.sys\">\n"
    "<reg name=\"cr0\" bitsize=\"64\" type=\"int64\" group=\"system\"/>\n"
    "<reg name=\"cr2\" bitsize=\"64\" type=\"int64\" group=\"system\"/>\n"
    "<reg name=\"cr3\" bitsize=\"64\" type=\"int64\" group=\"system\"/>\n"
    "<reg name=\"cr4\" bitsize=\"64\" type=\"int64\" group=\"system\"/>\n"
    "<reg name=\"cr8\" bitsize=\"64\" type=\"int64\" group=\"system\"/>\n"
    "<reg name=\"efer\" bitsize=\"64\" type=\"int64\" group=\"system\"/>\n"
    "</feature>\n"
    "</target>\n";

const size_t x86_gdb_target_xml_len = sizeof(x86_gdb_target_xml) - 1;

int x86_gdb_reg_slot(unsigned n, size_t *offset, size_t *size)
{
    size_t off = 0;

    if (n >= X86_GDB_NR_REGS)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++)
        off += x86_gdb_regs[i].size;
    *offset = off;
    *size = x86_gdb_regs[n].size;
    return 0;
}

static struct kvm_segment *x86_gdb_seg(struct kvm_sregs *s, unsigned idx)
{
    struct kvm_segment *segs[] = {&s->cs, &s->ss, &s->ds, &s->es, &s->fs, &s->gs};
    return segs[idx];
}

static uint64_t *x86_gdb_cr(struct kvm_sregs *s, unsigned idx)
{
    uint64_t *crs[] = {(uint64_t *)&s->cr0, (uint64_t *)&s->cr2, (uint64_t *)&s->cr3,
                       (uint64_t *)&s->cr4, (uint64_t *)&s->cr8, (uint64_t *)&s->efer};
    return crs[idx];
}

/*
 * The x87 control words. KVM keeps the abridged tag (FXSAVE's one bit a
 * register, 1 = in use); gdb wants the full tag word (two bits a register,
 * 11 = empty): a register in use is reported valid (00).
 */
static uint32_t x86_gdb_fpctl_get(const struct kvm_fpu *f, unsigned idx)
{
    uint32_t tag = 0;

    switch (idx) {
    case 0:
        return f->fcw;
    case 1:
        return f->fsw;
    case 2:
        for (unsigned i = 0; i < 8; i++)
            if (!(f->ftwx & (1U << i)))
                tag |= 3U << (2 * i);
        return tag;
    case 3:
        return (uint32_t)(f->last_ip >> 32);
    case 4:
        return (uint32_t)f->last_ip;
    case 5:
        return (uint32_t)(f->last_dp >> 32);
    case 6:
        return (uint32_t)f->last_dp;
    default:
        return f->last_opcode;
    }
}

static void x86_gdb_fpctl_set(struct kvm_fpu *f, unsigned idx, uint32_t v)
{
    switch (idx) {
    case 0:
        f->fcw = (uint16_t)v;
        break;
    case 1:
        f->fsw = (uint16_t)v;
        break;
    case 2:
        f->ftwx = 0;
        for (unsigned i = 0; i < 8; i++)
            if (((v >> (2 * i)) & 3) != 3)
                f->ftwx |= (uint8_t)(1U << i);
        break;
    case 3:
        f->last_ip = (f->last_ip & 0xffffffffULL) | (uint64_t)v << 32;
        break;
    case 4:
        f->last_ip = (f->last_ip & ~0xffffffffULL) | v;
        break;
    case 5:
        f->last_dp = (f->last_dp & 0xffffffffULL) | (uint64_t)v << 32;
        break;
    case 6:
        f->last_dp = (f->last_dp & ~0xffffffffULL) | v;
        break;
    default:
        f->last_opcode = (uint16_t)v;
        break;
    }
}

void x86_gdb_pack(const struct x86_gdb_regs *r, uint8_t *buf)
{
    struct x86_gdb_regs c = *r; /* the helpers take non-const pointers */
    uint64_t gpr[18];
    size_t off = 0;

    memcpy(gpr, &c.regs, sizeof(gpr));
    for (unsigned n = 0; n < X86_GDB_NR_REGS; n++) {
        const struct x86_gdb_reg *d = &x86_gdb_regs[n];
        uint64_t v = 0;
        uint32_t w;
        switch (d->src) {
        case SRC_GPR:
            v = gpr[d->idx];
            memcpy(buf + off, &v, d->size);
            break;
        case SRC_SEG:
            w = x86_gdb_seg(&c.sregs, d->idx)->selector;
            memcpy(buf + off, &w, 4);
            break;
        case SRC_ST:
            memcpy(buf + off, c.fpu.fpr[d->idx], 10);
            break;
        case SRC_FPCTL:
            w = x86_gdb_fpctl_get(&c.fpu, d->idx);
            memcpy(buf + off, &w, 4);
            break;
        case SRC_XMM:
            memcpy(buf + off, c.fpu.xmm[d->idx], 16);
            break;
        case SRC_MXCSR:
            memcpy(buf + off, &c.fpu.mxcsr, 4);
            break;
        case SRC_BASE:
            v = x86_gdb_seg(&c.sregs, 4 + d->idx)->base;
            memcpy(buf + off, &v, 8);
            break;
        case SRC_CR:
            v = *x86_gdb_cr(&c.sregs, d->idx);
            memcpy(buf + off, &v, 8);
            break;
        }
        off += d->size;
    }
}

int x86_gdb_unpack(struct x86_gdb_regs *r, const uint8_t *buf)
{
    struct x86_gdb_regs c = *r;
    uint64_t gpr[18];
    size_t off = 0;

    memcpy(gpr, &c.regs, sizeof(gpr));
    for (unsigned n = 0; n < X86_GDB_NR_REGS; n++) {
        const struct x86_gdb_reg *d = &x86_gdb_regs[n];
        uint64_t v = 0;
        uint32_t w;
        switch (d->src) {
        case SRC_GPR:
            memcpy(&v, buf + off, d->size);
            if (d->idx == KR_RFL) /* eflags is 32 bits here; keep the (zero) upper half */
                v |= gpr[d->idx] & ~0xffffffffULL;
            gpr[d->idx] = v;
            break;
        case SRC_SEG:
            memcpy(&w, buf + off, 4);
            if (w != x86_gdb_seg(&c.sregs, d->idx)->selector)
                return -EINVAL;
            break;
        case SRC_ST:
            memcpy(c.fpu.fpr[d->idx], buf + off, 10);
            break;
        case SRC_FPCTL:
            memcpy(&w, buf + off, 4);
            x86_gdb_fpctl_set(&c.fpu, d->idx, w);
            break;
        case SRC_XMM:
            memcpy(c.fpu.xmm[d->idx], buf + off, 16);
            break;
        case SRC_MXCSR:
            memcpy(&c.fpu.mxcsr, buf + off, 4);
            break;
        case SRC_BASE:
            memcpy(&v, buf + off, 8);
            x86_gdb_seg(&c.sregs, 4 + d->idx)->base = v;
            break;
        case SRC_CR:
            memcpy(&v, buf + off, 8);
            *x86_gdb_cr(&c.sregs, d->idx) = v;
            break;
        }
        off += d->size;
    }
    memcpy(&c.regs, gpr, sizeof(gpr));
    *r = c;
    return 0;
}

int x86_dr7_slot(unsigned slot, enum x86_hwbp_type type, uint64_t addr, unsigned len,
                 uint64_t *bits)
{
    uint64_t rw, lenbits;

    if (slot > 3)
        return -EINVAL;
    switch (type) {
    case X86_HWBP_EXEC:
        if (len != 1) /* gdb's kind for x86 is 1; an execute breakpoint's LEN must be 00 */
            return -EINVAL;
        rw = 0;
        break;
    case X86_HWBP_WRITE:
        rw = 1;
        break;
    case X86_HWBP_READ:
    case X86_HWBP_ACCESS:
        rw = 3;
        break;
    default:
        return -EINVAL;
    }
    switch (len) {
    case 1:
        lenbits = 0;
        break;
    case 2:
        lenbits = 1;
        break;
    case 4:
        lenbits = 3;
        break;
    case 8:
        lenbits = 2;
        break;
    default:
        return -EINVAL;
    }
    if (addr & (len - 1))
        return -EINVAL;
    /* Ln (local enable) at bit 2n; R/Wn at 16 + 4n; LENn at 18 + 4n (SDM vol. 3, 18.2.4). */
    *bits = (1ULL << (2 * slot)) | rw << (16 + 4 * slot) | lenbits << (18 + 4 * slot);
    return 0;
}

#define X86_CR0_PG   (1ULL << 31)
#define X86_CR4_LA57 (1ULL << 12)
#define X86_EFER_LMA (1ULL << 10)
#define X86_PTE_P    1ULL
#define X86_PTE_PS   (1ULL << 7)
#define X86_PTE_ADDR 0x000ffffffffff000ULL

/* Reads a page-table entry from guest RAM: 0, or -EFAULT outside RAM. */
static int x86_read_pte(const struct guest_mem *gm, uint64_t gpa, uint64_t *pte)
{
    const void *p = gm_ptr(gm, gpa, 8);
    if (!p)
        return -EFAULT;
    memcpy(pte, p, 8);
    return 0;
}

int x86_translate(const struct guest_mem *gm, const struct x86_mmu *mmu, uint64_t gva,
                  uint64_t *gpa, uint64_t *span)
{
    if (!(mmu->cr0 & X86_CR0_PG)) {
        *gpa = gva;
        *span = 4096 - (gva & 4095);
        return 0;
    }
    if (!(mmu->efer & X86_EFER_LMA))
        return -EOPNOTSUPP; /* 32-bit paging (with or without PAE): no 64-bit guest uses it */
    if (mmu->cr4 & X86_CR4_LA57)
        return -EOPNOTSUPP;
    /* Canonical: bits 63..47 all equal. */
    uint64_t top = gva >> 47;
    if (top != 0 && top != 0x1ffff)
        return -EFAULT;

    uint64_t table = mmu->cr3 & X86_PTE_ADDR;
    /* Levels 4 (PML4) down to 1 (PT); shift is the bits the level's entry maps. */
    for (int level = 4; level >= 1; level--) {
        unsigned shift = 12 + 9 * (unsigned)(level - 1);
        uint64_t pte;
        int ret = x86_read_pte(gm, table + ((gva >> shift) & 511) * 8, &pte);
        if (ret)
            return ret;
        if (!(pte & X86_PTE_P))
            return -EFAULT;
        bool leaf = level == 1;
        if (pte & X86_PTE_PS) {
            if (level == 4)
                return -EFAULT; /* reserved in a PML4 entry */
            leaf = true;        /* a 1 GiB or 2 MiB page (at level 1 the bit is PAT) */
        }
        if (leaf) {
            uint64_t size = 1ULL << shift;
            uint64_t base = pte & X86_PTE_ADDR & ~(size - 1);
            *gpa = base | (gva & (size - 1));
            *span = size - (gva & (size - 1));
            return 0;
        }
        table = pte & X86_PTE_ADDR;
    }
    return -EFAULT; /* not reached */
}
