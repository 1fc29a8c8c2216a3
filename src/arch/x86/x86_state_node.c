/*
 * The x86 vCPU and VM state as state nodes (include/petrel/state.h): one
 * property per register, named as the manuals name them, so that
 * `dtc -I dtb -O dts` reads like a register dump; segment registers, the PICs,
 * the IOAPIC and the PIT as small subnodes (no compatible of their own: they
 * are part of their parent's format). docs/snapshot-format.md lists them.
 *
 * Reading is the hostile side: every count and size is bounded before anything
 * is copied, every field is checked against what its register can hold, and
 * what the file does not carry (reserved fields, padding) stays zero.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "petrel/x86_state.h"

/* One fixed-size field of a KVM struct, stored as a u32 cell (u64: two). */
struct x86_field {
    const char *name;
    uint16_t off;
    uint8_t size; /* 1, 2, 4 or 8 bytes */
    uint32_t max; /* the largest value a 1, 2 or 4-byte field holds; 0: its type's */
};

#define FIELD(name, type, member, max)                                                             \
    {                                                                                              \
        name, offsetof(type, member), sizeof(((type *)0)->member), max                             \
    }

static void put_fields(struct state_out *out, const void *base, const struct x86_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)base + f[i].off;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        switch (f[i].size) {
        case 1:
            memcpy(&u8, p, 1);
            state_put_u32(out, f[i].name, u8);
            break;
        case 2:
            memcpy(&u16, p, 2);
            state_put_u32(out, f[i].name, u16);
            break;
        case 4:
            memcpy(&u32, p, 4);
            state_put_u32(out, f[i].name, u32);
            break;
        default:
            memcpy(&u64, p, 8);
            state_put_u64(out, f[i].name, u64);
        }
    }
}

static void take_fields(struct state_in *in, void *base, const struct x86_field *f, size_t n)
{
    for (size_t i = 0; i < n && !in->err; i++) {
        char *p = (char *)base + f[i].off;
        if (f[i].size == 8) {
            uint64_t v;
            state_get_u64(in, f[i].name, &v);
            memcpy(p, &v, 8);
            continue;
        }
        uint32_t v, max = f[i].max ? f[i].max : (uint32_t)(UINT64_C(1) << (8 * f[i].size)) - 1;
        state_get_u32(in, f[i].name, &v);
        if (v > max) {
            state_invalid(in, "property '%s' is %#x, more than %#x", f[i].name, v, max);
            return;
        }
        uint8_t u8 = (uint8_t)v;
        uint16_t u16 = (uint16_t)v;
        memcpy(p,
               f[i].size == 1   ? (void *)&u8
               : f[i].size == 2 ? (void *)&u16
                                : (void *)&v,
               f[i].size);
    }
}

/* Opens a subnode that is part of its parent's format. */
static void node_begin(struct state_out *out, const char *name)
{
    int r = out->err ? 0 : fdt_begin_node(out->fdt, name);
    if (r < 0)
        out->err = r == -FDT_ERR_NOSPACE ? -ENOSPC : -EIO;
}

static void node_end(struct state_out *out)
{
    int r = out->err ? 0 : fdt_end_node(out->fdt);
    if (r < 0)
        out->err = r == -FDT_ERR_NOSPACE ? -ENOSPC : -EIO;
}

/* The subnode name of in, to read with state_get_*(); a missing one fails in. */
static struct state_in node_open(struct state_in *in, const char *name)
{
    struct state_in child = {.fdt = in->fdt, .node = in->node, .err = in->err, .eb = in->eb};

    if (!in->err) {
        int off = fdt_subnode_offset(in->fdt, in->node, name);
        if (off < 0)
            state_invalid(in, "no subnode '%s'", name);
        child.node = off;
        child.err = in->err;
    }
    return child;
}

/* Carries a subnode's failure to its parent. */
static void node_close(struct state_in *in, const struct state_in *child)
{
    if (child->err && !in->err)
        in->err = child->err;
}

/* n u64 values as 2n u32 cells (high, low), shown as <...> by dtc. */
static void put_u64_array(struct state_out *out, const char *name, const uint64_t *v, size_t n)
{
    uint32_t cells[2 * 24];

    for (size_t i = 0; i < n && i < 24; i++) {
        cells[2 * i] = (uint32_t)(v[i] >> 32);
        cells[2 * i + 1] = (uint32_t)v[i];
    }
    state_put_u32_array(out, name, cells, 2 * n);
}

static void take_u64_array(struct state_in *in, const char *name, uint64_t *v, size_t n)
{
    uint32_t cells[2 * 24];

    state_get_u32_array(in, name, cells, 2 * n);
    for (size_t i = 0; i < n && i < 24; i++)
        v[i] = (uint64_t)cells[2 * i] << 32 | cells[2 * i + 1];
}

/*
 * A counted table of u32 cells, width cells an entry: "NAME-count" and NAME.
 * take_table() refuses a count above max before it reads the table.
 */
static void put_table(struct state_out *out, const char *count, const char *name,
                      const uint32_t *cells, uint32_t n, unsigned width)
{
    state_put_u32(out, count, n);
    state_put_u32_array(out, name, cells, (size_t)n * width);
}

static uint32_t take_table(struct state_in *in, const char *count, const char *name,
                           uint32_t *cells, uint32_t max, unsigned width)
{
    uint32_t n;

    state_get_u32(in, count, &n);
    if (n > max) {
        state_invalid(in, "property '%s' is %u, more than the %u a snapshot may hold", count, n,
                      max);
        return 0;
    }
    state_get_u32_array(in, name, cells, (size_t)n * width);
    return in->err ? 0 : n;
}

static const struct x86_field x86_regs_fields[] = {
    FIELD("rax", struct kvm_regs, rax, 0), FIELD("rbx", struct kvm_regs, rbx, 0),
    FIELD("rcx", struct kvm_regs, rcx, 0), FIELD("rdx", struct kvm_regs, rdx, 0),
    FIELD("rsi", struct kvm_regs, rsi, 0), FIELD("rdi", struct kvm_regs, rdi, 0),
    FIELD("rsp", struct kvm_regs, rsp, 0), FIELD("rbp", struct kvm_regs, rbp, 0),
    FIELD("r8", struct kvm_regs, r8, 0),   FIELD("r9", struct kvm_regs, r9, 0),
    FIELD("r10", struct kvm_regs, r10, 0), FIELD("r11", struct kvm_regs, r11, 0),
    FIELD("r12", struct kvm_regs, r12, 0), FIELD("r13", struct kvm_regs, r13, 0),
    FIELD("r14", struct kvm_regs, r14, 0), FIELD("r15", struct kvm_regs, r15, 0),
    FIELD("rip", struct kvm_regs, rip, 0), FIELD("rflags", struct kvm_regs, rflags, 0),
};

static const struct x86_field x86_sregs_fields[] = {
    FIELD("cr0", struct kvm_sregs2, cr0, 0),
    FIELD("cr2", struct kvm_sregs2, cr2, 0),
    FIELD("cr3", struct kvm_sregs2, cr3, 0),
    FIELD("cr4", struct kvm_sregs2, cr4, 0),
    FIELD("cr8", struct kvm_sregs2, cr8, 0),
    FIELD("efer", struct kvm_sregs2, efer, 0),
    FIELD("apic-base", struct kvm_sregs2, apic_base, 0),
    FIELD("gdt-base", struct kvm_sregs2, gdt.base, 0),
    FIELD("gdt-limit", struct kvm_sregs2, gdt.limit, 0),
    FIELD("idt-base", struct kvm_sregs2, idt.base, 0),
    FIELD("idt-limit", struct kvm_sregs2, idt.limit, 0),
    FIELD("pdptrs-valid", struct kvm_sregs2, flags, 0), /* u64 in KVM: checked below */
};

static const struct x86_field x86_segment_fields[] = {
    FIELD("base", struct kvm_segment, base, 0),
    FIELD("limit", struct kvm_segment, limit, 0),
    FIELD("selector", struct kvm_segment, selector, 0),
    FIELD("type", struct kvm_segment, type, 15),
    FIELD("present", struct kvm_segment, present, 1),
    FIELD("dpl", struct kvm_segment, dpl, 3),
    FIELD("db", struct kvm_segment, db, 1),
    FIELD("s", struct kvm_segment, s, 1),
    FIELD("l", struct kvm_segment, l, 1),
    FIELD("g", struct kvm_segment, g, 1),
    FIELD("avl", struct kvm_segment, avl, 1),
    FIELD("unusable", struct kvm_segment, unusable, 1),
};

static const struct {
    const char *name;
    size_t off;
} x86_segments[] = {
    {"cs", offsetof(struct kvm_sregs2, cs)}, {"ds", offsetof(struct kvm_sregs2, ds)},
    {"es", offsetof(struct kvm_sregs2, es)}, {"fs", offsetof(struct kvm_sregs2, fs)},
    {"gs", offsetof(struct kvm_sregs2, gs)}, {"ss", offsetof(struct kvm_sregs2, ss)},
    {"tr", offsetof(struct kvm_sregs2, tr)}, {"ldt", offsetof(struct kvm_sregs2, ldt)},
};

#define EV(name, member, max) FIELD(name, struct kvm_vcpu_events, member, max)
static const struct x86_field x86_events_fields[] = {
    EV("exception-injected", exception.injected, 1),
    EV("exception-nr", exception.nr, 31),
    EV("exception-has-error-code", exception.has_error_code, 1),
    EV("exception-pending", exception.pending, 1),
    EV("exception-error-code", exception.error_code, 0),
    EV("exception-has-payload", exception_has_payload, 1),
    EV("exception-payload", exception_payload, 0),
    EV("interrupt-injected", interrupt.injected, 1),
    EV("interrupt-nr", interrupt.nr, 0),
    EV("interrupt-soft", interrupt.soft, 1),
    EV("interrupt-shadow", interrupt.shadow, 3), /* KVM_X86_SHADOW_INT_MOV_SS | _STI */
    EV("nmi-injected", nmi.injected, 1),
    EV("nmi-pending", nmi.pending, 0),
    EV("nmi-masked", nmi.masked, 1),
    EV("sipi-vector", sipi_vector, 0xff),
    EV("events-flags", flags, 0x3f), /* KVM_VCPUEVENT_VALID_* */
    EV("smi-smm", smi.smm, 1),
    EV("smi-pending", smi.pending, 1),
    EV("smi-smm-inside-nmi", smi.smm_inside_nmi, 1),
    EV("smi-latched-init", smi.latched_init, 1),
    EV("triple-fault-pending", triple_fault.pending, 1),
};

static const struct x86_field x86_misc_fields[] = {
    FIELD("mp-state", struct x86_vcpu_state, mp_state.mp_state, KVM_MP_STATE_SUSPENDED),
    FIELD("tsc-khz", struct x86_vcpu_state, tsc_khz, 0),
    FIELD("dr0", struct x86_vcpu_state, debugregs.db[0], 0),
    FIELD("dr1", struct x86_vcpu_state, debugregs.db[1], 0),
    FIELD("dr2", struct x86_vcpu_state, debugregs.db[2], 0),
    FIELD("dr3", struct x86_vcpu_state, debugregs.db[3], 0),
    FIELD("dr6", struct x86_vcpu_state, debugregs.dr6, 0),
    FIELD("dr7", struct x86_vcpu_state, debugregs.dr7, 0),
};

static const struct x86_field x86_fpu_fields[] = {
    FIELD("fpu-fcw", struct kvm_fpu, fcw, 0),
    FIELD("fpu-fsw", struct kvm_fpu, fsw, 0),
    FIELD("fpu-ftwx", struct kvm_fpu, ftwx, 0),
    FIELD("fpu-last-opcode", struct kvm_fpu, last_opcode, 0),
    FIELD("fpu-last-ip", struct kvm_fpu, last_ip, 0),
    FIELD("fpu-last-dp", struct kvm_fpu, last_dp, 0),
    FIELD("fpu-mxcsr", struct kvm_fpu, mxcsr, 0),
};

static void x86_sregs_put(const struct kvm_sregs2 *s, struct state_out *out)
{
    put_fields(out, s, x86_sregs_fields, ARRAY_SIZE(x86_sregs_fields));
    const uint64_t pdptrs[4] = {s->pdptrs[0], s->pdptrs[1], s->pdptrs[2], s->pdptrs[3]};
    put_u64_array(out, "pdptrs", pdptrs, 4);
}

/* The segment registers, as subnodes: after every property of the node (FDT order). */
static void x86_segments_put(const struct kvm_sregs2 *s, struct state_out *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(x86_segments); i++) {
        node_begin(out, x86_segments[i].name);
        put_fields(out, (const char *)s + x86_segments[i].off, x86_segment_fields,
                   ARRAY_SIZE(x86_segment_fields));
        node_end(out);
    }
}

static void x86_sregs_take(struct kvm_sregs2 *s, struct state_in *in)
{
    take_fields(in, s, x86_sregs_fields, ARRAY_SIZE(x86_sregs_fields));
    if (s->flags & ~(uint64_t)KVM_SREGS2_FLAGS_PDPTRS_VALID)
        state_invalid(in, "property 'pdptrs-valid' is not 0 or 1");
    uint64_t pdptrs[4];
    take_u64_array(in, "pdptrs", pdptrs, 4);
    for (unsigned i = 0; i < 4; i++)
        s->pdptrs[i] = pdptrs[i];
    for (size_t i = 0; i < ARRAY_SIZE(x86_segments) && !in->err; i++) {
        struct state_in seg = node_open(in, x86_segments[i].name);
        take_fields(&seg, (char *)s + x86_segments[i].off, x86_segment_fields,
                    ARRAY_SIZE(x86_segment_fields));
        node_close(in, &seg);
    }
}

/* XSAVE area, or the FPU on a KVM without XSAVE ("xsave-size" 0). */
static void x86_fpu_put(const struct x86_vcpu_state *st, struct state_out *out)
{
    if (st->has_xsave) {
        size_t size = st->xsave_size <= sizeof(st->xsave) ? st->xsave_size : sizeof(st->xsave);
        state_put_u32(out, "xsave-size", (uint32_t)size);
        state_put_bytes(out, "xsave", st->xsave.bytes, size);
        return;
    }
    state_put_u32(out, "xsave-size", 0);
    put_fields(out, &st->fpu, x86_fpu_fields, ARRAY_SIZE(x86_fpu_fields));
    state_put_bytes(out, "fpu-fpr", st->fpu.fpr, sizeof(st->fpu.fpr));
    state_put_bytes(out, "fpu-xmm", st->fpu.xmm, sizeof(st->fpu.xmm));
}

static void x86_fpu_take(struct x86_vcpu_state *st, struct state_in *in)
{
    uint32_t size;

    state_get_u32(in, "xsave-size", &size);
    if (in->err)
        return;
    if (size == 0) {
        st->has_xsave = false;
        take_fields(in, &st->fpu, x86_fpu_fields, ARRAY_SIZE(x86_fpu_fields));
        state_get_bytes(in, "fpu-fpr", st->fpu.fpr, sizeof(st->fpu.fpr));
        state_get_bytes(in, "fpu-xmm", st->fpu.xmm, sizeof(st->fpu.xmm));
        return;
    }
    if (size < sizeof(struct kvm_xsave) || size > sizeof(st->xsave)) {
        state_invalid(in, "property 'xsave-size' is %u, not between %zu and %zu", size,
                      sizeof(struct kvm_xsave), sizeof(st->xsave));
        return;
    }
    st->has_xsave = true;
    st->xsave_size = size;
    state_get_bytes(in, "xsave", st->xsave.bytes, size);
}

static void x86_xcrs_put(const struct kvm_xcrs *x, struct state_out *out)
{
    uint32_t cells[3 * KVM_MAX_XCRS];
    uint32_t n = x->nr_xcrs <= KVM_MAX_XCRS ? x->nr_xcrs : KVM_MAX_XCRS;

    for (uint32_t i = 0; i < n; i++) {
        cells[3 * i] = x->xcrs[i].xcr;
        cells[3 * i + 1] = (uint32_t)(x->xcrs[i].value >> 32);
        cells[3 * i + 2] = (uint32_t)x->xcrs[i].value;
    }
    put_table(out, "xcr-count", "xcrs", cells, n, 3);
}

static void x86_xcrs_take(struct kvm_xcrs *x, struct state_in *in)
{
    uint32_t cells[3 * KVM_MAX_XCRS];
    uint32_t n = take_table(in, "xcr-count", "xcrs", cells, KVM_MAX_XCRS, 3);

    x->nr_xcrs = n;
    for (uint32_t i = 0; i < n; i++) {
        x->xcrs[i].xcr = cells[3 * i];
        x->xcrs[i].value = (uint64_t)cells[3 * i + 1] << 32 | cells[3 * i + 2];
    }
}

/* MSRs as <index value-high value-low> triples. */
static void x86_msrs_put(const union x86_msr_table *t, struct state_out *out)
{
    uint32_t n = t->hdr.nmsrs <= X86_STATE_MAX_MSRS ? t->hdr.nmsrs : X86_STATE_MAX_MSRS;
    uint32_t *cells = malloc(3 * sizeof(*cells) * (n ? n : 1));

    if (!cells) {
        out->err = out->err ? out->err : -ENOMEM;
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        cells[3 * i] = t->hdr.entries[i].index;
        cells[3 * i + 1] = (uint32_t)(t->hdr.entries[i].data >> 32);
        cells[3 * i + 2] = (uint32_t)t->hdr.entries[i].data;
    }
    put_table(out, "msr-count", "msrs", cells, n, 3);
    free(cells);
}

static void x86_msrs_take(union x86_msr_table *t, struct state_in *in)
{
    uint32_t *cells = malloc(3 * sizeof(*cells) * X86_STATE_MAX_MSRS);

    if (!cells) {
        state_invalid(in, "out of memory for the MSRs");
        return;
    }
    uint32_t n = take_table(in, "msr-count", "msrs", cells, X86_STATE_MAX_MSRS, 3);
    t->hdr.nmsrs = n;
    for (uint32_t i = 0; i < n; i++) {
        t->hdr.entries[i].index = cells[3 * i];
        t->hdr.entries[i].data = (uint64_t)cells[3 * i + 1] << 32 | cells[3 * i + 2];
    }
    free(cells);
}

/* CPUID entries as <function index flags eax ebx ecx edx>. */
static void x86_cpuid_put(const union x86_cpuid_table *c, struct state_out *out)
{
    uint32_t n = c->hdr.nent <= X86_STATE_MAX_CPUID ? c->hdr.nent : X86_STATE_MAX_CPUID;
    uint32_t *cells = malloc(7 * sizeof(*cells) * (n ? n : 1));

    if (!cells) {
        out->err = out->err ? out->err : -ENOMEM;
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct kvm_cpuid_entry2 *e = &c->hdr.entries[i];
        const uint32_t entry[7] = {e->function, e->index, e->flags, e->eax, e->ebx, e->ecx, e->edx};
        memcpy(&cells[7 * i], entry, sizeof(entry));
    }
    put_table(out, "cpuid-count", "cpuid", cells, n, 7);
    free(cells);
}

static void x86_cpuid_take(union x86_cpuid_table *c, struct state_in *in)
{
    uint32_t *cells = malloc(7 * sizeof(*cells) * X86_STATE_MAX_CPUID);

    if (!cells) {
        state_invalid(in, "out of memory for the CPUID");
        return;
    }
    uint32_t n = take_table(in, "cpuid-count", "cpuid", cells, X86_STATE_MAX_CPUID, 7);
    c->hdr.nent = n;
    for (uint32_t i = 0; i < n && !in->err; i++) {
        const uint32_t *e = &cells[7 * i];
        if (e[2] & ~(uint32_t)(KVM_CPUID_FLAG_SIGNIFCANT_INDEX | KVM_CPUID_FLAG_STATEFUL_FUNC |
                               KVM_CPUID_FLAG_STATE_READ_NEXT))
            state_invalid(in, "property 'cpuid': entry %u has flags %#x", i, e[2]);
        c->hdr.entries[i] = (struct kvm_cpuid_entry2){
            .function = e[0],
            .index = e[1],
            .flags = e[2],
            .eax = e[3],
            .ebx = e[4],
            .ecx = e[5],
            .edx = e[6],
        };
    }
    free(cells);
}

int x86_vcpu_state_put(const struct x86_vcpu_state *st, struct state_out *out)
{
    put_fields(out, &st->regs, x86_regs_fields, ARRAY_SIZE(x86_regs_fields));
    x86_sregs_put(&st->sregs, out);
    x86_fpu_put(st, out);
    x86_xcrs_put(&st->xcrs, out);
    x86_msrs_put(&st->msrs, out);
    state_put_bytes(out, "lapic", st->lapic.regs, sizeof(st->lapic.regs));
    put_fields(out, &st->events, x86_events_fields, ARRAY_SIZE(x86_events_fields));
    put_fields(out, st, x86_misc_fields, ARRAY_SIZE(x86_misc_fields));
    x86_cpuid_put(&st->cpuid, out);
    x86_segments_put(&st->sregs, out);
    return out->err;
}

int x86_vcpu_state_take(struct x86_vcpu_state *st, struct state_in *in)
{
    memset(st, 0, sizeof(*st));
    take_fields(in, &st->regs, x86_regs_fields, ARRAY_SIZE(x86_regs_fields));
    x86_sregs_take(&st->sregs, in);
    x86_fpu_take(st, in);
    x86_xcrs_take(&st->xcrs, in);
    x86_msrs_take(&st->msrs, in);
    state_get_bytes(in, "lapic", st->lapic.regs, sizeof(st->lapic.regs));
    take_fields(in, &st->events, x86_events_fields, ARRAY_SIZE(x86_events_fields));
    take_fields(in, st, x86_misc_fields, ARRAY_SIZE(x86_misc_fields));
    x86_cpuid_take(&st->cpuid, in);
    if (in->err)
        memset(st, 0, sizeof(*st)); /* nothing half-read is left for a caller to use */
    return in->err;
}

#define PIC(name, member) FIELD(name, struct kvm_pic_state, member, 0)
static const struct x86_field x86_pic_fields[] = {
    PIC("last-irr", last_irr),
    PIC("irr", irr),
    PIC("imr", imr),
    PIC("isr", isr),
    PIC("priority-add", priority_add),
    PIC("irq-base", irq_base),
    PIC("read-reg-select", read_reg_select),
    PIC("poll", poll),
    PIC("special-mask", special_mask),
    PIC("init-state", init_state),
    PIC("auto-eoi", auto_eoi),
    PIC("rotate-on-auto-eoi", rotate_on_auto_eoi),
    PIC("special-fully-nested-mode", special_fully_nested_mode),
    PIC("init4", init4),
    PIC("elcr", elcr),
    PIC("elcr-mask", elcr_mask),
};

static const struct x86_field x86_ioapic_fields[] = {
    FIELD("base-address", struct kvm_ioapic_state, base_address, 0),
    FIELD("ioregsel", struct kvm_ioapic_state, ioregsel, 0),
    FIELD("id", struct kvm_ioapic_state, id, 0),
    FIELD("irr", struct kvm_ioapic_state, irr, 0),
};

#define PITCH(name, member, max) FIELD(name, struct kvm_pit_channel_state, member, max)
static const struct x86_field x86_pit_channel_fields[] = {
    PITCH("count", count, 0x10000),
    PITCH("latched-count", latched_count, 0),
    PITCH("count-latched", count_latched, 0),
    PITCH("status-latched", status_latched, 1),
    PITCH("status-byte", status, 0),
    PITCH("read-state", read_state, 0),
    PITCH("write-state", write_state, 0),
    PITCH("write-latch", write_latch, 0),
    PITCH("rw-mode", rw_mode, 3),
    PITCH("mode", mode, 0), /* 0-5, and 0xff: never programmed (KVM's reset) */
    PITCH("bcd", bcd, 1),
    PITCH("gate", gate, 1),
};

static const struct x86_field x86_clock_fields[] = {
    FIELD("clock", struct x86_vm_state, clock.clock, 0),
    FIELD("clock-flags", struct x86_vm_state, clock.flags, 0),
    FIELD("clock-realtime", struct x86_vm_state, clock.realtime, 0),
    FIELD("clock-host-tsc", struct x86_vm_state, clock.host_tsc, 0),
    FIELD("realtime-stamp", struct x86_vm_state, realtime_ns, 0),
    FIELD("has-pit", struct x86_vm_state, has_pit, 1),
};

static const char *const x86_pit_channels[] = {"channel0", "channel1", "channel2"};

static void x86_pit_put(const struct kvm_pit_state2 *pit, struct state_out *out)
{
    node_begin(out, "pit");
    state_put_u32(out, "flags", pit->flags);
    for (unsigned i = 0; i < 3; i++) {
        node_begin(out, x86_pit_channels[i]);
        put_fields(out, &pit->channels[i], x86_pit_channel_fields,
                   ARRAY_SIZE(x86_pit_channel_fields));
        node_end(out);
    }
    node_end(out);
}

static void x86_pit_take(struct kvm_pit_state2 *pit, struct state_in *in)
{
    struct state_in node = node_open(in, "pit");

    state_get_bits(&node, "flags", KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON,
                   &pit->flags);
    for (unsigned i = 0; i < 3 && !node.err; i++) {
        struct state_in ch = node_open(&node, x86_pit_channels[i]);
        take_fields(&ch, &pit->channels[i], x86_pit_channel_fields,
                    ARRAY_SIZE(x86_pit_channel_fields));
        node_close(&node, &ch);
    }
    node_close(in, &node);
}

int x86_vm_state_put(const struct x86_vm_state *st, struct state_out *out)
{
    static const char *const pics[] = {"pic-master", "pic-slave"};

    put_fields(out, st, x86_clock_fields, ARRAY_SIZE(x86_clock_fields));
    for (unsigned i = 0; i < 2; i++) {
        node_begin(out, pics[i]);
        put_fields(out, &st->pic[i], x86_pic_fields, ARRAY_SIZE(x86_pic_fields));
        node_end(out);
    }
    node_begin(out, "ioapic");
    put_fields(out, &st->ioapic, x86_ioapic_fields, ARRAY_SIZE(x86_ioapic_fields));
    uint64_t redir[KVM_IOAPIC_NUM_PINS];
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
        redir[i] = st->ioapic.redirtbl[i].bits;
    put_u64_array(out, "redirtbl", redir, KVM_IOAPIC_NUM_PINS);
    node_end(out);
    if (st->has_pit)
        x86_pit_put(&st->pit, out);
    return out->err;
}

int x86_vm_state_take(struct x86_vm_state *st, struct state_in *in)
{
    static const char *const pics[] = {"pic-master", "pic-slave"};

    memset(st, 0, sizeof(*st));
    take_fields(in, st, x86_clock_fields, ARRAY_SIZE(x86_clock_fields));
    for (unsigned i = 0; i < 2; i++) {
        struct state_in pic = node_open(in, pics[i]);
        take_fields(&pic, &st->pic[i], x86_pic_fields, ARRAY_SIZE(x86_pic_fields));
        node_close(in, &pic);
    }
    struct state_in io = node_open(in, "ioapic");
    take_fields(&io, &st->ioapic, x86_ioapic_fields, ARRAY_SIZE(x86_ioapic_fields));
    uint64_t redir[KVM_IOAPIC_NUM_PINS];
    take_u64_array(&io, "redirtbl", redir, KVM_IOAPIC_NUM_PINS);
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
        st->ioapic.redirtbl[i].bits = redir[i];
    node_close(in, &io);
    if (st->has_pit)
        x86_pit_take(&st->pit, in);
    if (in->err)
        memset(st, 0, sizeof(*st));
    return in->err;
}
