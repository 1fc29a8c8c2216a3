/*
 * Unit tests for x86 vCPU set-up that needs no KVM: the CPUID topology patch
 * on a synthetic table, and the boot GDT and identity page tables walked the
 * way the CPU walks them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/guest_mem.h"
#include "petrel/x86_boot.h"
#include "petrel/x86_cpu.h"

static void test_core_bits(void **state)
{
    (void)state;
    static const struct {
        unsigned n, bits;
    } cases[] = {
        {0, 0},  {1, 0},   {2, 1},   {3, 2},   {4, 2},   {5, 3},   {8, 3},     {9, 4},     {16, 4},
        {17, 5}, {128, 7}, {129, 8}, {255, 8}, {256, 8}, {257, 9}, {1024, 10}, {4096, 12},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        if (x86_core_bits(cases[i].n) != cases[i].bits)
            fail_msg("x86_core_bits(%u) = %u, want %u", cases[i].n, x86_core_bits(cases[i].n),
                     cases[i].bits);
}

/* What a host's KVM_GET_SUPPORTED_CPUID might say, with values the patch must replace. */
static const struct kvm_cpuid_entry2 host_entries[] = {
    {.function = 0x0, .eax = 0x1f, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69},
    /* Host APIC ID 0x12 and 0x34 logical IDs; CLFLUSH size 8; HTT set, hypervisor clear. */
    {.function = 0x1, .eax = 0x000806ec, .ebx = 0x12340800, .ecx = 0x7ffafbff, .edx = 0xbfebfbff},
    /* Deterministic cache parameters: L1d, L1i, L2, L3, then the end (type 0). */
    {.function = 0x4,
     .index = 0,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 0x1c004121,
     .ebx = 0x01c0003f,
     .ecx = 0x3f,
     .edx = 0},
    {.function = 0x4,
     .index = 1,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 0x1c004122,
     .ebx = 0x01c0003f,
     .ecx = 0x3f,
     .edx = 0},
    {.function = 0x4,
     .index = 2,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 0x1c004143,
     .ebx = 0x00c0003f,
     .ecx = 0x3ff,
     .edx = 0},
    {.function = 0x4,
     .index = 3,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 0x1c03c163,
     .ebx = 0x03c0003f,
     .ecx = 0x2fff,
     .edx = 6},
    {.function = 0x4, .index = 4, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0},
    {.function = 0x7, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = 0x029c6fbf},
    /* Extended topology: 2 threads per core, 8 threads per package on the host. */
    {.function = 0xb,
     .index = 0,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 1,
     .ebx = 2,
     .ecx = 0x100,
     .edx = 0x99},
    {.function = 0xb,
     .index = 1,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 4,
     .ebx = 8,
     .ecx = 0x201,
     .edx = 0x99},
    {.function = 0xb,
     .index = 2,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 0,
     .ebx = 0,
     .ecx = 2,
     .edx = 0x99},
    {.function = 0x1f,
     .index = 0,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 1,
     .ebx = 2,
     .ecx = 0x100,
     .edx = 0x99},
    {.function = 0x1f,
     .index = 1,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 4,
     .ebx = 8,
     .ecx = 0x201,
     .edx = 0x99},
    {.function = 0x1f,
     .index = 2,
     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
     .eax = 0,
     .ebx = 0,
     .ecx = 2,
     .edx = 0x99},
    {.function = 0x80000000, .eax = 0x8000001f},
    /* AMD: ApicIdCoreIdSize 7, NC 15, PerfTscSize 3 (bits 17:16). */
    {.function = 0x80000008, .eax = 0x3030, .ecx = 0x0003700f},
    /* AMD: extended APIC ID 0x77, 2 threads per core, core 5, node 1. */
    {.function = 0x8000001e, .eax = 0x77, .ebx = 0x00000105, .ecx = 0x00000101},
};

static struct kvm_cpuid2 *host_cpuid(void)
{
    size_t n = ARRAY_SIZE(host_entries);
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
    assert_non_null(c);
    c->nent = (uint32_t)n;
    memcpy(c->entries, host_entries, sizeof(host_entries));
    return c;
}

static const struct kvm_cpuid_entry2 *host_entry(uint32_t function, uint32_t index)
{
    for (size_t i = 0; i < ARRAY_SIZE(host_entries); i++)
        if (host_entries[i].function == function && host_entries[i].index == index)
            return &host_entries[i];
    return NULL;
}

static struct kvm_cpuid_entry2 *must_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, function, index);
    if (!e)
        fail_msg("no CPUID entry %#x.%u", function, index);
    return e;
}

static void test_cpuid_find(void **state)
{
    (void)state;
    struct kvm_cpuid2 *c = host_cpuid();
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, 0x4, 3);
    assert_ptr_equal(e, &c->entries[5]);
    assert_int_equal(e->eax, 0x1c03c163);
    assert_ptr_equal(x86_cpuid_find(c, 0x8000001e, 0), &c->entries[c->nent - 1]);
    assert_null(x86_cpuid_find(c, 0x4, 5));
    assert_null(x86_cpuid_find(c, 0x2, 0));
    assert_null(x86_cpuid_find(c, 0x1, 1));
    free(c);
}

/* Topology expectations for n vCPUs: the APIC ID core field's width and its span. */
struct topo {
    unsigned n, bits, ids;
};

static const struct topo topos[] = {
    {1, 0, 1},
    {2, 1, 2},
    {3, 2, 4},
    {8, 3, 8},
};

/* Checks every patched leaf of vCPU apic of t->n. */
static void check_patched(struct kvm_cpuid2 *c, const struct topo *t, unsigned apic)
{
    /* Leaf 1: APIC ID, addressable IDs, HTT only with more than one vCPU, hypervisor bit. */
    const struct kvm_cpuid_entry2 *h = host_entry(0x1, 0);
    struct kvm_cpuid_entry2 *e = must_find(c, 0x1, 0);
    assert_int_equal(e->ebx >> 24, apic);
    assert_int_equal((e->ebx >> 16) & 0xff, t->ids);
    assert_int_equal(e->ebx & 0xffff, h->ebx & 0xffff);
    assert_int_equal((e->edx >> 28) & 1, t->n > 1);
    assert_int_equal(e->edx & ~(1U << 28), h->edx & ~(1U << 28));
    assert_int_equal(e->ecx, h->ecx | 1U << 31);
    assert_int_equal(e->eax, h->eax);

    /* Leaf 4: L1 and L2 private to a core, L3 shared by the package. */
    for (uint32_t i = 0; i < 4; i++) {
        h = host_entry(0x4, i);
        e = must_find(c, 0x4, i);
        unsigned level = (h->eax >> 5) & 7;
        unsigned sharing = (e->eax >> 14) & 0xfff;
        assert_int_equal(sharing, level == 3 ? t->ids - 1 : 0);
        assert_int_equal(e->eax >> 26, t->ids - 1);
        assert_int_equal(e->eax & 0x3fff, h->eax & 0x3fff);
        assert_int_equal(e->ebx, h->ebx);
        assert_int_equal(e->ecx, h->ecx);
    }
    assert_int_equal(must_find(c, 0x4, 4)->eax, 0);

    /* Leaves 0xB and 0x1F: SMT level (1 thread), core level (n cores), then invalid. */
    static const uint32_t topo_leaves[] = {0xb, 0x1f};
    for (size_t l = 0; l < ARRAY_SIZE(topo_leaves); l++) {
        e = must_find(c, topo_leaves[l], 0);
        assert_int_equal(e->eax, 0);
        assert_int_equal(e->ebx, 1);
        assert_int_equal(e->ecx, 0x100);
        assert_int_equal(e->edx, apic);
        e = must_find(c, topo_leaves[l], 1);
        assert_int_equal(e->eax, t->bits);
        assert_int_equal(e->ebx, t->n);
        assert_int_equal(e->ecx, 0x201);
        assert_int_equal(e->edx, apic);
        e = must_find(c, topo_leaves[l], 2);
        assert_int_equal(e->eax, 0);
        assert_int_equal(e->ebx, 0);
        assert_int_equal(e->ecx, 2);
        assert_int_equal(e->edx, apic);
    }

    /* AMD: core count and ID size; the extended APIC ID, one thread per core. */
    h = host_entry(0x80000008, 0);
    e = must_find(c, 0x80000008, 0);
    assert_int_equal(e->ecx & 0xff, t->n - 1);
    assert_int_equal((e->ecx >> 12) & 0xf, t->bits);
    assert_int_equal(e->ecx & 0xffff0000, h->ecx & 0xffff0000);
    assert_int_equal(e->eax, h->eax);
    e = must_find(c, 0x8000001e, 0);
    assert_int_equal(e->eax, apic);
    assert_int_equal(e->ebx & 0xff, apic);
    assert_int_equal((e->ebx >> 8) & 0xff, 0);
    assert_int_equal(e->ecx, 0);

    /* Leaves the patch has no business with are untouched. */
    static const uint32_t untouched[] = {0x0, 0x7, 0x80000000};
    for (size_t i = 0; i < ARRAY_SIZE(untouched); i++)
        assert_memory_equal(must_find(c, untouched[i], 0), host_entry(untouched[i], 0), sizeof(*e));
}

static void test_cpuid_patch(void **state)
{
    (void)state;
    for (size_t t = 0; t < ARRAY_SIZE(topos); t++) {
        for (unsigned apic = 0; apic < topos[t].n; apic++) {
            struct kvm_cpuid2 *c = host_cpuid();
            x86_cpuid_patch(c, apic, topos[t].n);
            check_patched(c, &topos[t], apic);
            free(c);
        }
    }
}

/*
 * vm.c patches one table in place for each vCPU in turn, so a patch must
 * overwrite everything the previous vCPU's patch set.
 */
static void test_cpuid_patch_idempotent(void **state)
{
    (void)state;
    struct kvm_cpuid2 *a = host_cpuid(), *b = host_cpuid();
    x86_cpuid_patch(a, 2, 3);
    x86_cpuid_patch(b, 7, 8);
    x86_cpuid_patch(b, 2, 3);
    assert_memory_equal(a->entries, b->entries, a->nent * sizeof(a->entries[0]));
    check_patched(b, &topos[2], 2);
    free(a);
    free(b);
}

#define PTE_P     (1ULL << 0)
#define PTE_RW    (1ULL << 1)
#define PTE_PS    (1ULL << 7)
#define PTE_ADDR  0x000ffffffffff000ULL
#define TABLE_MEM (1 * MiB)

/* Reads the 8-byte table entry idx of the table at gpa, checking it lies in memory. */
static uint64_t table_entry(const uint8_t *mem, uint64_t gpa, unsigned idx)
{
    if (gpa + 4096 > TABLE_MEM)
        fail_msg("page table at %#llx is outside guest memory", (unsigned long long)gpa);
    return get_le64(mem + gpa + 8 * idx);
}

/* Translates va through the 4-level tables at cr3; returns false when not mapped. */
static bool walk(const uint8_t *mem, uint64_t cr3, uint64_t va, uint64_t *pa)
{
    uint64_t e = table_entry(mem, cr3, (va >> 39) & 511);
    if (!(e & PTE_P))
        return false;
    assert_true(e & PTE_RW);
    e = table_entry(mem, e & PTE_ADDR, (va >> 30) & 511);
    if (!(e & PTE_P))
        return false;
    assert_true(e & PTE_RW);
    if (e & PTE_PS) {
        *pa = (e & PTE_ADDR & ~((1ULL << 30) - 1)) | (va & ((1ULL << 30) - 1));
        return true;
    }
    e = table_entry(mem, e & PTE_ADDR, (va >> 21) & 511);
    if (!(e & PTE_P))
        return false;
    assert_true(e & PTE_RW);
    if (e & PTE_PS) {
        *pa = (e & PTE_ADDR & ~((1ULL << 21) - 1)) | (va & ((1ULL << 21) - 1));
        return true;
    }
    e = table_entry(mem, e & PTE_ADDR, (va >> 12) & 511);
    if (!(e & PTE_P))
        return false;
    *pa = (e & PTE_ADDR) | (va & 0xfff);
    return true;
}

struct tables {
    uint8_t *mem;
    struct guest_mem gm;
};

static int tables_setup(void **state)
{
    struct tables *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    t->mem = malloc(TABLE_MEM);
    if (!t->mem)
        return -1;
    /* Garbage everywhere: the tables must be written in full, not rely on zeroed RAM. */
    memset(t->mem, 0xcc, TABLE_MEM);
    gm_init_fake(&t->gm, t->mem, TABLE_MEM);
    if (x86_boot_tables(&t->gm) != 0)
        return -1;
    *state = t;
    return 0;
}

static int tables_teardown(void **state)
{
    struct tables *t = *state;
    free(t->mem);
    free(t);
    return 0;
}

/* Under TCG the guest gets no XSAVE, nor anything whose state needs it; SSE stays. */
static void test_cpuid_hide_xsave(void **state)
{
    (void)state;
    static const struct kvm_cpuid_entry2 all[] = {
        {.function = 0x1, .eax = 0x00800f12, .ecx = 0xffffffff, .edx = 0xffffffff},
        {.function = 0x7, .index = 0, .ebx = 0xffffffff, .ecx = 0xffffffff, .edx = 0xffffffff},
        {.function = 0x7, .index = 1, .eax = 0xffffffff},
        {.function = 0xd, .index = 0, .eax = 7, .ebx = 0x240, .ecx = 0x340},
        {.function = 0xd, .index = 2, .eax = 0x100, .ebx = 0x240},
        {.function = 0x80000001, .ecx = 0xffffffff, .edx = 0xffffffff},
        {.function = 0x4, .index = 0, .eax = 0x1c004121},
    };
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + sizeof(all));
    assert_non_null(c);
    c->nent = ARRAY_SIZE(all);
    memcpy(c->entries, all, sizeof(all));
    x86_cpuid_hide_xsave(c);

    struct kvm_cpuid_entry2 *e = must_find(c, 0x1, 0);
    /* FMA, XSAVE, OSXSAVE, AVX, F16C gone; SSE3, PCLMULQDQ, SSSE3, SSE4.1/4.2, AES stay. */
    assert_int_equal(e->ecx, ~(1U << 12 | 1U << 26 | 1U << 27 | 1U << 28 | 1U << 29));
    assert_int_equal(e->ecx & (1U << 0 | 1U << 1 | 1U << 9 | 1U << 19 | 1U << 20 | 1U << 25),
                     1U << 0 | 1U << 1 | 1U << 9 | 1U << 19 | 1U << 20 | 1U << 25);
    assert_int_equal(e->edx, 0xffffffff); /* FXSR, SSE, SSE2 */
    e = must_find(c, 0x7, 0);
    assert_int_equal(e->ebx & (1U << 5 | 1U << 16), 0);                   /* AVX2, AVX-512F */
    assert_int_equal(e->ebx & (1U << 3 | 1U << 8 | 1U << 9), 0x308);      /* BMI1, BMI2, ERMS */
    assert_int_equal(e->ecx & (1U << 3 | 1U << 4 | 1U << 10), 0);         /* PKU, VPCLMULQDQ */
    assert_int_equal(e->edx & (1U << 22 | 1U << 24 | 1U << 25), 0);       /* AMX */
    assert_int_equal(must_find(c, 0x7, 1)->eax & (1U << 4 | 1U << 5), 0); /* AVX-VNNI, BF16 */
    for (unsigned i = 0; i < c->nent; i++) {
        e = &c->entries[i];
        if (e->function == 0xd && (e->eax || e->ebx || e->ecx || e->edx))
            fail_msg("leaf 0xd.%u still describes XSAVE state", e->index);
    }
    assert_int_equal(must_find(c, 0x80000001, 0)->ecx & (1U << 11 | 1U << 16), 0); /* XOP, FMA4 */
    assert_int_equal(must_find(c, 0x4, 0)->eax, 0x1c004121);
    free(c);
}

static void test_identity_map(void **state)
{
    struct tables *t = *state;
    static const uint64_t addrs[] = {
        0,          0x1000,     0x100000,   0x100200,   0x7000,     0x3fffffff, 0x40000000,
        0xbfe00000, 0xbfffffff, 0xc0000000, 0xfee00000, 0xffe00000, 0xffffffff,
    };
    uint64_t pa;

    for (size_t i = 0; i < ARRAY_SIZE(addrs); i++) {
        if (!walk(t->mem, BOOT_PML4_GPA, addrs[i], &pa))
            fail_msg("%#llx is not mapped", (unsigned long long)addrs[i]);
        if (pa != addrs[i])
            fail_msg("%#llx maps to %#llx", (unsigned long long)addrs[i], (unsigned long long)pa);
    }
    /* Every 2 MiB page of the low 4 GiB, at an odd offset inside it. */
    for (uint64_t va = 0x1234; va < 4 * GiB; va += 2 * MiB) {
        assert_true(walk(t->mem, BOOT_PML4_GPA, va, &pa));
        assert_int_equal(pa, va);
    }
    /* Nothing above 4 GiB. */
    assert_false(walk(t->mem, BOOT_PML4_GPA, 4 * GiB, &pa));
    assert_false(walk(t->mem, BOOT_PML4_GPA, 512 * GiB, &pa));
    assert_false(walk(t->mem, BOOT_PML4_GPA, 0xffffffff80000000ULL, &pa));
}

/* The tables do not overlap each other or the zero page and command line. */
static void test_table_layout(void **state)
{
    (void)state;
    assert_true(BOOT_GDT_GPA + 6 * 8 <= BOOT_ZERO_PAGE_GPA);
    assert_true(BOOT_ZERO_PAGE_GPA + BP_SIZE <= BOOT_PML4_GPA);
    assert_true(BOOT_PML4_GPA + 4096 <= BOOT_PDPT_GPA);
    assert_true(BOOT_PDPT_GPA + 4096 <= BOOT_PD_GPA);
    assert_true(BOOT_PD_GPA + BOOT_PD_PAGES * 4096 <= BOOT_CMDLINE_GPA);
    /* The stack grows down from below the PML4, above the zero page. */
    assert_true(BOOT_STACK_GPA < BOOT_PML4_GPA);
    assert_true(BOOT_STACK_GPA > BOOT_ZERO_PAGE_GPA + BP_SIZE);
}

/* One GDT descriptor, decoded. */
struct desc {
    uint32_t base, limit;
    uint8_t access; /* P, DPL, S, type */
    uint8_t flags;  /* G, D/B, L, AVL */
};

static struct desc gdt_desc(const uint8_t *mem, unsigned sel)
{
    uint64_t d = get_le64(mem + BOOT_GDT_GPA + sel);
    return (struct desc){
        .base = (uint32_t)(((d >> 16) & 0xffffff) | ((d >> 56) << 24)),
        .limit = (uint32_t)((d & 0xffff) | ((d >> 48) & 0xf) << 16),
        .access = (uint8_t)(d >> 40),
        .flags = (uint8_t)((d >> 52) & 0xf),
    };
}

static void test_gdt(void **state)
{
    struct tables *t = *state;

    assert_int_equal(get_le64(t->mem + BOOT_GDT_GPA), 0); /* the null descriptor */

    struct desc cs = gdt_desc(t->mem, BOOT_CS_SEL);
    assert_int_equal(cs.access, 0x9b); /* present, DPL 0, code: execute/read, accessed */
    assert_int_equal(cs.flags, 0xa);   /* G=1, D=0, L=1: 64-bit code */
    assert_int_equal(cs.base, 0);
    assert_int_equal(cs.limit, 0xfffff);

    struct desc ds = gdt_desc(t->mem, BOOT_DS_SEL);
    assert_int_equal(ds.access, 0x93); /* present, DPL 0, data: read/write, accessed */
    assert_int_equal(ds.flags, 0xc);   /* G=1, B=1 */
    assert_int_equal(ds.base, 0);
    assert_int_equal(ds.limit, 0xfffff);

    /* The IDT: empty (interrupts stay off until the kernel loads its own). */
    assert_int_equal(get_le64(t->mem + BOOT_IDT_GPA), 0);
}

/*
 * The busy TSS descriptor that TR's selector names must be in the GDT in
 * memory, as KVM's sregs say (x86_set_boot_regs loads TR = BOOT_TSS_SEL with
 * a GDT limit of 6 * 8 - 1). The IDT must therefore not overlap the GDT.
 */
static void test_gdt_tss(void **state)
{
    struct tables *t = *state;

    struct desc tss = gdt_desc(t->mem, BOOT_TSS_SEL);
    assert_int_equal(tss.access, 0x8b); /* present, system: 64-bit busy TSS */
    assert_int_equal(tss.limit, 0x67);
    assert_int_equal(tss.base, 0);
    /* The descriptor's upper half (base 63:32) follows it. */
    assert_int_equal(get_le64(t->mem + BOOT_GDT_GPA + BOOT_TSS_SEL + 8), 0);
    bool overlap = BOOT_IDT_GPA < BOOT_GDT_GPA + 6 * 8 && BOOT_GDT_GPA < BOOT_IDT_GPA + 8;
    assert_false(overlap);
}

static void test_tables_no_room(void **state)
{
    (void)state;
    uint8_t *mem = calloc(1, BOOT_PD_GPA + 4096);
    struct guest_mem gm;
    assert_non_null(mem);
    gm_init_fake(&gm, mem, BOOT_PD_GPA + 4096); /* room for one PD page of four */
    assert_int_equal(x86_boot_tables(&gm), -ENOSPC);
    free(mem);
}

#define TABLES_TEST(fn) cmocka_unit_test_setup_teardown(fn, tables_setup, tables_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_bits),
        cmocka_unit_test(test_cpuid_find),
        cmocka_unit_test(test_cpuid_patch),
        cmocka_unit_test(test_cpuid_patch_idempotent),
        cmocka_unit_test(test_cpuid_hide_xsave),
        TABLES_TEST(test_identity_map),
        cmocka_unit_test(test_table_layout),
        TABLES_TEST(test_gdt),
        TABLES_TEST(test_gdt_tss),
        cmocka_unit_test(test_tables_no_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
