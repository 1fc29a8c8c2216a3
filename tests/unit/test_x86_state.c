/*
 * Unit tests for the x86 vCPU and VM state nodes (no KVM): round trips of both
 * structs through a state tree with a distinct value in every field, hostile
 * trees refused with a message naming the property, the CPUID feature check,
 * and the TSC catch-up. tests/integration/kvm_state_roundtrip.c does the ioctls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/x86_state.h"
#include "fake_state.h"

#define TREE_SIZE (128 * 1024)

/* A distinct, non-trivial 64-bit value for field number i. */
static uint64_t val(unsigned i)
{
    return 0x8000000100000000ULL * (i + 1) ^ (0x0123456789abcdefULL + 0x1111 * i);
}

static void fill_segment(struct kvm_segment *s, unsigned i)
{
    *s = (struct kvm_segment){
        .base = val(i),
        .limit = (uint32_t)val(i + 1),
        .selector = (uint16_t)(0x10 + 8 * i),
        .type = (uint8_t)(i % 16),
        .present = 1,
        .dpl = (uint8_t)(i % 4),
        .db = (uint8_t)(i % 2),
        .s = (uint8_t)((i + 1) % 2),
        .l = (uint8_t)(i % 2),
        .g = 1,
        .avl = (uint8_t)((i + 1) % 2),
        .unusable = (uint8_t)(i % 2),
    };
}

static void fill_events(struct kvm_vcpu_events *e)
{
    e->exception.injected = 1;
    e->exception.nr = 14;
    e->exception.has_error_code = 1;
    e->exception.pending = 1;
    e->exception.error_code = 0xdeadbeef;
    e->exception_has_payload = 1;
    e->exception_payload = 0xffff888012345678ULL;
    e->interrupt.injected = 1;
    e->interrupt.nr = 0xec;
    e->interrupt.soft = 1;
    e->interrupt.shadow = 3;
    e->nmi.injected = 1;
    e->nmi.pending = 2;
    e->nmi.masked = 1;
    e->sipi_vector = 0x9a;
    e->flags = 0x3f;
    e->smi.smm = 1;
    e->smi.pending = 1;
    e->smi.smm_inside_nmi = 1;
    e->smi.latched_init = 1;
    e->triple_fault.pending = 1;
}

/* A vCPU state with a distinct value in every field the format carries. */
static struct x86_vcpu_state *vcpu_sample(bool xsave)
{
    struct x86_vcpu_state *st = calloc(1, sizeof(*st));
    uint64_t *r = (uint64_t *)&st->regs;

    assert_non_null(st);
    for (unsigned i = 0; i < sizeof(st->regs) / 8; i++)
        r[i] = val(i);
    struct kvm_segment *segs[] = {&st->sregs.cs, &st->sregs.ds, &st->sregs.es, &st->sregs.fs,
                                  &st->sregs.gs, &st->sregs.ss, &st->sregs.tr, &st->sregs.ldt};
    for (unsigned i = 0; i < ARRAY_SIZE(segs); i++)
        fill_segment(segs[i], i);
    st->sregs.gdt = (struct kvm_dtable){.base = val(40), .limit = 0x7f};
    st->sregs.idt = (struct kvm_dtable){.base = val(41), .limit = 0xfff};
    st->sregs.cr0 = val(42), st->sregs.cr2 = val(43), st->sregs.cr3 = val(44);
    st->sregs.cr4 = val(45), st->sregs.cr8 = 0xf, st->sregs.efer = 0xd01;
    st->sregs.apic_base = 0xfee00d00;
    st->sregs.flags = KVM_SREGS2_FLAGS_PDPTRS_VALID;
    for (unsigned i = 0; i < 4; i++)
        st->sregs.pdptrs[i] = val(50 + i);
    st->has_xsave = xsave;
    if (xsave) {
        st->xsave_size = 4096 + 576;
        for (unsigned i = 0; i < st->xsave_size; i++)
            st->xsave.bytes[i] = (uint8_t)(i * 7 + 3);
    } else {
        for (unsigned i = 0; i < sizeof(st->fpu.fpr); i++)
            st->fpu.fpr[i / 16][i % 16] = (uint8_t)(i + 1);
        for (unsigned i = 0; i < sizeof(st->fpu.xmm); i++)
            st->fpu.xmm[i / 16][i % 16] = (uint8_t)(0xff - i);
        st->fpu.fcw = 0x37f, st->fpu.fsw = 0x3800, st->fpu.ftwx = 0x81;
        st->fpu.last_opcode = 0x7ff, st->fpu.last_ip = val(60), st->fpu.last_dp = val(61);
        st->fpu.mxcsr = 0x1fa0;
    }
    st->xcrs.nr_xcrs = 2;
    st->xcrs.xcrs[0] = (struct kvm_xcr){.xcr = 0, .value = 0x2e7};
    st->xcrs.xcrs[1] = (struct kvm_xcr){.xcr = 1, .value = val(62)};
    st->msrs.hdr.nmsrs = 300;
    for (unsigned i = 0; i < 300; i++)
        st->msrs.hdr.entries[i] = (struct kvm_msr_entry){.index = 0xc0000000 + i, .data = val(i)};
    for (unsigned i = 0; i < sizeof(st->lapic.regs); i++)
        st->lapic.regs[i] = (char)(i * 13);
    fill_events(&st->events);
    st->mp_state.mp_state = KVM_MP_STATE_HALTED;
    for (unsigned i = 0; i < 4; i++)
        st->debugregs.db[i] = val(70 + i);
    st->debugregs.dr6 = 0xffff4ff0, st->debugregs.dr7 = 0x4ff;
    st->cpuid.hdr.nent = 61;
    for (unsigned i = 0; i < 61; i++)
        st->cpuid.hdr.entries[i] =
            (struct kvm_cpuid_entry2){.function = i < 30 ? i : 0x80000000 + i,
                                      .index = i % 3,
                                      .flags = i % 8,
                                      .eax = (uint32_t)val(i),
                                      .ebx = (uint32_t)(val(i) >> 32),
                                      .ecx = ~i,
                                      .edx = i << 8};
    st->tsc_khz = 2445402;
    return st;
}

static void put_vcpu(struct state_out *out, void *ctx)
{
    state_begin(out, "cpu0", X86_VCPU_STATE_COMPATIBLE);
    x86_vcpu_state_put(ctx, out);
    state_end(out);
}

/* Takes /cpu0 from tree into a fresh struct; returns take's result, eb says why. */
static int take_vcpu(void *tree, struct x86_vcpu_state **out, struct errbuf *eb)
{
    struct state_in root = state_test_root(tree, eb), in;
    *out = calloc(1, sizeof(**out));
    assert_non_null(*out);
    if (state_open(&root, "cpu0", X86_VCPU_STATE_COMPATIBLE, &in))
        return in.err;
    return x86_vcpu_state_take(*out, &in);
}

static void vcpu_round_trip(bool xsave)
{
    struct x86_vcpu_state *st = vcpu_sample(xsave), *back;
    struct errbuf eb = {{0}};
    void *tree = malloc(TREE_SIZE);

    assert_int_equal(state_test_write(tree, TREE_SIZE, put_vcpu, st), 0);
    assert_int_equal(take_vcpu(tree, &back, &eb), 0);
    assert_memory_equal(back, st, sizeof(*st));
    free(back);
    free(st);
    free(tree);
}

static void test_vcpu_round_trip_xsave(void **state)
{
    (void)state;
    vcpu_round_trip(true);
}

static void test_vcpu_round_trip_fpu(void **state)
{
    (void)state;
    vcpu_round_trip(false);
}

/* The sample written, edited by edit, then taken: refused with want in the message. */
static void vcpu_refused(void (*edit)(void *tree), const char *want)
{
    struct x86_vcpu_state *st = vcpu_sample(true), *back;
    struct errbuf eb = {{0}};
    void *tree = malloc(TREE_SIZE);

    assert_int_equal(state_test_write(tree, TREE_SIZE, put_vcpu, st), 0);
    edit(tree);
    int ret = take_vcpu(tree, &back, &eb);
    assert_true(ret < 0);
    if (!strstr(eb.msg, want))
        fail_msg("message '%s' does not say '%s'", eb.msg, want);
    /* Nothing half-read is left behind. */
    struct x86_vcpu_state *zero = calloc(1, sizeof(*zero));
    assert_memory_equal(back, zero, sizeof(*zero));
    free(zero);
    free(back);
    free(st);
    free(tree);
}

static void xsave_longer(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0", "xsave-size", 8192), 0);
}
static void xsave_huge(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0", "xsave-size", 0x10000000), 0);
}
static void xsave_small(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0", "xsave-size", 512), 0);
}
static void msr_count_huge(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0", "msr-count", X86_STATE_MAX_MSRS + 1), 0);
}
static void msr_count_more(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0", "msr-count", 301), 0);
}
static void cpuid_count_huge(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0", "cpuid-count", 0xffffffff), 0);
}
static void xcr_count_huge(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0", "xcr-count", KVM_MAX_XCRS + 1), 0);
}
static void no_rip(void *tree)
{
    assert_int_equal(fdt_delprop(tree, fdt_path_offset(tree, "/cpu0"), "rip"), 0);
}
static void no_lapic(void *tree)
{
    assert_int_equal(fdt_delprop(tree, fdt_path_offset(tree, "/cpu0"), "lapic"), 0);
}
static void no_cs(void *tree)
{
    assert_int_equal(fdt_del_node(tree, fdt_path_offset(tree, "/cpu0/cs")), 0);
}
static void dpl_4(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0/ss", "dpl", 4), 0);
}
static void mp_state_bad(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0", "mp-state", 11), 0);
}
static void events_flags_bad(void *tree)
{
    assert_int_equal(state_test_set_u32(tree, "/cpu0", "events-flags", 0x40), 0);
}
static void pdptrs_valid_bad(void *tree)
{
    assert_int_equal(state_test_set_u64(tree, "/cpu0", "pdptrs-valid", 2), 0);
}
static void cpuid_flags_bad(void *tree)
{
    int len;
    uint32_t *cells = state_test_prop(tree, "/cpu0", "cpuid", &len);
    assert_non_null(cells);
    cells[2] = cpu_to_fdt32(0x100); /* entry 0's flags */
}
static void rip_short(void *tree)
{
    int len;
    char *p = state_test_prop(tree, "/cpu0", "rip", &len), four[4];
    assert_non_null(p);
    memcpy(four, p, sizeof(four));
    assert_int_equal(fdt_setprop(tree, fdt_path_offset(tree, "/cpu0"), "rip", four, 4), 0);
}
static void other_version(void *tree)
{
    int len;
    char *c = state_test_prop(tree, "/cpu0", "compatible", &len);
    assert_non_null(c);
    c[len - 2] = '2'; /* petrel,x86-vcpu-v2 */
}

static void test_vcpu_hostile(void **state)
{
    (void)state;
    vcpu_refused(xsave_longer, "property 'xsave' has 4672 bytes, not 8192");
    vcpu_refused(xsave_huge, "'xsave-size'");
    vcpu_refused(xsave_small, "'xsave-size'");
    vcpu_refused(msr_count_huge, "'msr-count' is 1025, more than the 1024");
    vcpu_refused(msr_count_more, "property 'msrs' has 3600 bytes, not 3612");
    vcpu_refused(cpuid_count_huge, "'cpuid-count'");
    vcpu_refused(xcr_count_huge, "'xcr-count'");
    vcpu_refused(no_rip, "no property 'rip'");
    vcpu_refused(no_lapic, "no property 'lapic'");
    vcpu_refused(no_cs, "no subnode 'cs'");
    vcpu_refused(dpl_4, "state node 'ss': property 'dpl' is 0x4, more than 0x3");
    vcpu_refused(mp_state_bad, "'mp-state'");
    vcpu_refused(events_flags_bad, "'events-flags'");
    vcpu_refused(pdptrs_valid_bad, "'pdptrs-valid'");
    vcpu_refused(cpuid_flags_bad, "'cpuid': entry 0 has flags 0x100");
    vcpu_refused(rip_short, "property 'rip' has 4 bytes, not 8");
    vcpu_refused(other_version, "is not 'petrel,x86-vcpu-v1' (compatible: petrel,x86-vcpu-v2)");
}

static struct x86_vm_state vm_sample(bool pit)
{
    struct x86_vm_state st;

    memset(&st, 0, sizeof(st));
    for (unsigned c = 0; c < 2; c++) {
        uint8_t *p = (uint8_t *)&st.pic[c];
        for (unsigned i = 0; i < sizeof(st.pic[c]); i++)
            p[i] = (uint8_t)(0x11 * (i + 1) + c);
    }
    st.ioapic.base_address = 0xfec00000;
    st.ioapic.ioregsel = 0x3e, st.ioapic.id = 0x5000000, st.ioapic.irr = 0x810001;
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
        st.ioapic.redirtbl[i].bits = val(i) | 0x10000;
    st.has_pit = pit;
    if (pit) {
        st.pit.flags = KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON;
        for (unsigned i = 0; i < 3; i++) {
            struct kvm_pit_channel_state *c = &st.pit.channels[i];
            *c = (struct kvm_pit_channel_state){.count = 0x10000 - i,
                                                .latched_count = (uint16_t)(0x1234 + i),
                                                .count_latched = (uint8_t)(1 + i),
                                                .status_latched = 1,
                                                .status = (uint8_t)(0x36 + i),
                                                .read_state = (uint8_t)(2 + i),
                                                .write_state = (uint8_t)(3 + i),
                                                .write_latch = (uint8_t)(0x9c + i),
                                                .rw_mode = 3,
                                                .mode = i == 2 ? 0xff : (uint8_t)(2 + i),
                                                .bcd = 1,
                                                .gate = 1};
        }
    }
    st.clock = (struct kvm_clock_data){
        .clock = val(80), .flags = 0xe, .realtime = val(81), .host_tsc = val(82)};
    st.realtime_ns = val(83);
    return st;
}

static void put_vm(struct state_out *out, void *ctx)
{
    state_begin(out, "kvm", X86_VM_STATE_COMPATIBLE);
    x86_vm_state_put(ctx, out);
    state_end(out);
}

static int take_vm(void *tree, struct x86_vm_state *st, struct errbuf *eb)
{
    struct state_in root = state_test_root(tree, eb), in;
    memset(st, 0xa5, sizeof(*st));
    if (state_open(&root, "kvm", X86_VM_STATE_COMPATIBLE, &in))
        return in.err;
    return x86_vm_state_take(st, &in);
}

static void test_vm_round_trip(void **state)
{
    (void)state;
    for (int pit = 0; pit < 2; pit++) {
        struct x86_vm_state st = vm_sample(pit), back;
        struct errbuf eb = {{0}};
        uint8_t tree[STATE_TEST_TREE];
        assert_int_equal(state_test_write(tree, sizeof(tree), put_vm, &st), 0);
        assert_int_equal(take_vm(tree, &back, &eb), 0);
        assert_memory_equal(&back, &st, sizeof(st));
        assert_int_equal(fdt_path_offset(tree, "/kvm/pit") >= 0, pit);
    }
}

static void test_vm_hostile(void **state)
{
    static const struct {
        const char *path, *prop;
        uint32_t v;
        const char *want;
    } cases[] = {
        {"/kvm/pit/channel1", "count", 0x10001, "state node 'channel1': property 'count'"},
        {"/kvm/pit/channel0", "gate", 2, "property 'gate' is 0x2"},
        {"/kvm/pit", "flags", 4, "property 'flags' is 0x4"},
        {"/kvm/pic-slave", "imr", 0x100, "state node 'pic-slave': property 'imr'"},
        {"/kvm", "has-pit", 2, "property 'has-pit'"},
        {"/kvm", "clock-flags", 0, NULL}, /* a clock without flags is fine */
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct x86_vm_state st = vm_sample(true), back;
        struct errbuf eb = {{0}};
        uint8_t tree[STATE_TEST_TREE];
        assert_int_equal(state_test_write(tree, sizeof(tree), put_vm, &st), 0);
        assert_int_equal(state_test_set_u32(tree, cases[i].path, cases[i].prop, cases[i].v), 0);
        int ret = take_vm(tree, &back, &eb);
        if (!cases[i].want) {
            assert_int_equal(ret, 0);
            continue;
        }
        assert_int_equal(ret, -EINVAL);
        if (!strstr(eb.msg, cases[i].want))
            fail_msg("message '%s' does not say '%s'", eb.msg, cases[i].want);
    }

    /* A PIT announced and missing; a redirection table cut short. */
    struct x86_vm_state st = vm_sample(true), back;
    struct errbuf eb = {{0}};
    uint8_t tree[STATE_TEST_TREE];
    assert_int_equal(state_test_write(tree, sizeof(tree), put_vm, &st), 0);
    assert_int_equal(fdt_del_node(tree, fdt_path_offset(tree, "/kvm/pit")), 0);
    assert_int_equal(take_vm(tree, &back, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "no subnode 'pit'"));
    assert_int_equal(state_test_write(tree, sizeof(tree), put_vm, &st), 0);
    int off = fdt_path_offset(tree, "/kvm/ioapic"), len;
    const void *redir = fdt_getprop(tree, off, "redirtbl", &len);
    assert_non_null(redir);
    uint8_t copy[8 * KVM_IOAPIC_NUM_PINS];
    memcpy(copy, redir, sizeof(copy));
    assert_int_equal(fdt_setprop(tree, off, "redirtbl", copy, 100), 0);
    assert_int_equal(take_vm(tree, &back, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "property 'redirtbl' has 100 bytes, not 192"));
}

/* A CPUID table of n entries from a list of {function, index, eax, ebx, ecx, edx}. */
static struct kvm_cpuid2 *table(const uint32_t (*e)[6], unsigned n)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
    assert_non_null(c);
    c->nent = n;
    for (unsigned i = 0; i < n; i++)
        c->entries[i] = (struct kvm_cpuid_entry2){.function = e[i][0],
                                                  .index = e[i][1],
                                                  .eax = e[i][2],
                                                  .ebx = e[i][3],
                                                  .ecx = e[i][4],
                                                  .edx = e[i][5]};
    return c;
}

/* Leaf 0 of an AMD CPU: "AuthenticAMD" in EBX, EDX, ECX. */
#define AMD_LEAF0(max)                                                                             \
    {                                                                                              \
        0, 0, max, 0x68747541, 0x444d4163, 0x69746e65                                              \
    }

static void test_cpuid_check(void **state)
{
    static const uint32_t host[][6] = {
        AMD_LEAF0(0xd),
        {0x1, 0, 0x00a00f11, 0, 0x00202001, 0x078bfbff},
        {0x7, 0, 0, 0x219c03ab, 0x604, 0},
        {0x80000001, 0, 0, 0, 0x1, 0x2c100800},
    };
    static const uint32_t subset[][6] = {
        AMD_LEAF0(0xd),
        /* OSXSAVE, MONITOR and the hypervisor bit vary at run time or are petrel's. */
        {0x1, 0, 0x00a00f11, 0, 0x88000001 | 1U << 3, 0x078bfbff},
        {0x7, 0, 0, 0x00000003, 0x4 | 0x10, 0},
    };
    static const uint32_t extra[][6] = {
        AMD_LEAF0(0xd),
        {0x7, 0, 0, 0x219c03ab | 1U << 2 | 1U << 16, 0x604, 0},
        {0x80000001, 0, 0, 0, 0x1 | 1U << 2, 0x2c100800},
        {0xd, 1, 0x1, 0, 0, 0}, /* a leaf the host table lacks */
    };
    static const uint32_t intel[][6] = {{0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69}};
    struct kvm_cpuid2 *h = table(host, ARRAY_SIZE(host));
    struct kvm_cpuid2 *s = table(subset, ARRAY_SIZE(subset));
    struct kvm_cpuid2 *x = table(extra, ARRAY_SIZE(extra));
    struct kvm_cpuid2 *i = table(intel, ARRAY_SIZE(intel));
    struct errbuf eb = {{0}};
    (void)state;

    assert_int_equal(x86_cpuid_check(h, h, &eb), 0);
    assert_int_equal(x86_cpuid_check(s, h, &eb), 0);
    assert_int_equal(x86_cpuid_check(x, h, &eb), -ENOTSUP);
    if (!strstr(eb.msg, "CPUID 0x7.0 EBX bits 2,16; CPUID 0xd.1 EAX bit 0; "
                        "CPUID 0x80000001.0 ECX bit 2"))
        fail_msg("message: %s", eb.msg);
    assert_int_equal(x86_cpuid_check(i, h, &eb), -ENOTSUP);
    assert_non_null(strstr(eb.msg, "ran on a GenuineIntel CPU, this host is AuthenticAMD"));
    free(h);
    free(s);
    free(x);
    free(i);
}

static void test_advance_tsc(void **state)
{
    struct x86_vcpu_state *st = calloc(1, sizeof(*st));
    (void)state;

    st->msrs.hdr.nmsrs = 2;
    st->msrs.hdr.entries[0] = (struct kvm_msr_entry){.index = 0x6e0, .data = 1000};
    st->msrs.hdr.entries[1] = (struct kvm_msr_entry){.index = X86_MSR_IA32_TSC, .data = 5000};
    st->tsc_khz = 2000000;                         /* 2 GHz */
    x86_vcpu_state_advance_tsc(st, 1500000000ULL); /* 1.5 s */
    assert_int_equal(st->msrs.hdr.entries[1].data, 5000 + 3000000000ULL);
    assert_int_equal(st->msrs.hdr.entries[0].data, 1000);   /* the deadline stays */
    x86_vcpu_state_advance_tsc(st, 1000000000000000000ULL); /* 31 years at 2 GHz: no overflow */
    assert_int_equal(st->msrs.hdr.entries[1].data, 5000 + 3000000000ULL + 2000000000000000000ULL);
    st->tsc_khz = 0; /* unknown rate: left alone */
    x86_vcpu_state_advance_tsc(st, 1000000000ULL);
    assert_int_equal(st->msrs.hdr.entries[1].data, 5000 + 3000000000ULL + 2000000000000000000ULL);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vcpu_round_trip_xsave),
        cmocka_unit_test(test_vcpu_round_trip_fpu),
        cmocka_unit_test(test_vcpu_hostile),
        cmocka_unit_test(test_vm_round_trip),
        cmocka_unit_test(test_vm_hostile),
        cmocka_unit_test(test_cpuid_check),
        cmocka_unit_test(test_advance_tsc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
