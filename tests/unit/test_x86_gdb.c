/*
 * Unit tests for x86_gdb.c: the target description against the packed
 * register layout, packing and unpacking, DR7 slots, and the page walker on
 * fake guest memory (4-level, large pages, non-present entries, 5-level and
 * 32-bit paging refused, non-canonical addresses).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/x86_gdb.h"

/* Every <reg> of the XML, in order, has the slot's size; there are X86_GDB_NR_REGS. */
static void test_target_xml_matches_layout(void **state)
{
    const char *p = x86_gdb_target_xml;
    unsigned n = 0;
    size_t total = 0;
    (void)state;

    while ((p = strstr(p, "<reg name=\""))) {
        unsigned bits;
        const char *b = strstr(p, "bitsize=\"");
        assert_non_null(b);
        assert_int_equal(sscanf(b, "bitsize=\"%u\"", &bits), 1);
        size_t off, size;
        assert_int_equal(x86_gdb_reg_slot(n, &off, &size), 0);
        assert_int_equal(off, total);
        assert_int_equal(size * 8, bits);
        total += size;
        n++;
        p++;
    }
    assert_int_equal(n, X86_GDB_NR_REGS);
    assert_int_equal(total, X86_GDB_REGS_BYTES);
    size_t off, size;
    assert_int_equal(x86_gdb_reg_slot(X86_GDB_NR_REGS, &off, &size), -EINVAL);
    assert_non_null(strstr(x86_gdb_target_xml, "<architecture>i386:x86-64</architecture>"));
}

static uint64_t get64(const uint8_t *buf, unsigned reg)
{
    size_t off, size;
    uint64_t v = 0;
    assert_int_equal(x86_gdb_reg_slot(reg, &off, &size), 0);
    memcpy(&v, buf + off, size < 8 ? size : 8);
    return v;
}

static void test_pack_unpack(void **state)
{
    struct x86_gdb_regs r;
    uint8_t buf[X86_GDB_REGS_BYTES];
    (void)state;

    memset(&r, 0, sizeof(r));
    r.regs.rax = 1;
    r.regs.rbx = 2;
    r.regs.rsp = 0x7000;
    r.regs.rbp = 0x8000;
    r.regs.r15 = 15;
    r.regs.rip = 0x100200;
    r.regs.rflags = 0x246;
    r.sregs.cs.selector = 0x10;
    r.sregs.gs.selector = 0x18;
    r.sregs.fs.base = 0xf5;
    r.sregs.gs.base = 0x65;
    r.sregs.cr0 = 0x80000031;
    r.sregs.cr3 = 0x9000;
    r.sregs.cr4 = 0x20;
    r.sregs.efer = 0x500;
    r.fpu.fcw = 0x37f;
    r.fpu.ftwx = 0x01; /* st0 in use */
    r.fpu.mxcsr = 0x1f80;
    r.fpu.xmm[3][0] = 0xaa;
    r.fpu.fpr[0][9] = 0x40;
    x86_gdb_pack(&r, buf);

    /* gdb's order: rax rbx rcx rdx rsi rdi rbp rsp (KVM's has rsp before rbp). */
    assert_int_equal(get64(buf, 0), 1);
    assert_int_equal(get64(buf, 1), 2);
    assert_int_equal(get64(buf, 6), 0x8000);
    assert_int_equal(get64(buf, 7), 0x7000);
    assert_int_equal(get64(buf, 15), 15);
    assert_int_equal(get64(buf, 16), 0x100200);
    assert_int_equal(get64(buf, 17), 0x246);
    assert_int_equal(get64(buf, 18), 0x10);
    assert_int_equal(get64(buf, 23), 0x18);
    assert_int_equal(buf[164 + 9], 0x40); /* st0's top byte */
    assert_int_equal(get64(buf, 32), 0x37f);
    assert_int_equal(get64(buf, 34), 0xfffc); /* ftag: st0 valid (00), the rest empty (11) */
    assert_int_equal(buf[276 + 3 * 16], 0xaa);
    assert_int_equal(get64(buf, 56), 0x1f80);
    assert_int_equal(get64(buf, 57), 0xf5);
    assert_int_equal(get64(buf, 58), 0x65);
    assert_int_equal(get64(buf, 59), 0x80000031);
    assert_int_equal(get64(buf, 61), 0x9000);
    assert_int_equal(get64(buf, 62), 0x20);
    assert_int_equal(get64(buf, 64), 0x500);

    /* Unpacking what was packed changes nothing. */
    struct x86_gdb_regs back = r;
    assert_int_equal(x86_gdb_unpack(&back, buf), 0);
    assert_memory_equal(&back, &r, sizeof(r));

    /* Changes land where they belong. */
    size_t off, size;
    assert_int_equal(x86_gdb_reg_slot(7, &off, &size), 0);
    uint64_t v = 0x6000;
    memcpy(buf + off, &v, 8);
    assert_int_equal(x86_gdb_reg_slot(34, &off, &size), 0);
    uint32_t tag = 0xfff0; /* st0 and st1 valid */
    memcpy(buf + off, &tag, 4);
    assert_int_equal(x86_gdb_unpack(&back, buf), 0);
    assert_int_equal(back.regs.rsp, 0x6000);
    assert_int_equal(back.regs.rbp, 0x8000);
    assert_int_equal(back.fpu.ftwx, 0x03);

    /* A selector change is refused and r stays as it was. */
    assert_int_equal(x86_gdb_reg_slot(19, &off, &size), 0);
    uint32_t ss = 0x2b;
    memcpy(buf + off, &ss, 4);
    struct x86_gdb_regs before = back;
    assert_int_equal(x86_gdb_unpack(&back, buf), -EINVAL);
    assert_memory_equal(&back, &before, sizeof(back));
}

static void test_dr7(void **state)
{
    uint64_t bits;
    (void)state;

    assert_int_equal(x86_dr7_slot(0, X86_HWBP_EXEC, 0x1001, 1, &bits), 0);
    assert_true(bits == 0x1);
    assert_int_equal(x86_dr7_slot(3, X86_HWBP_WRITE, 0x1000, 4, &bits), 0);
    assert_true(bits == ((1ULL << 6) | (1ULL << 28) | (3ULL << 30)));
    assert_int_equal(x86_dr7_slot(1, X86_HWBP_ACCESS, 0x1000, 8, &bits), 0);
    assert_true(bits == ((1ULL << 2) | (3ULL << 20) | (2ULL << 22)));
    assert_int_equal(x86_dr7_slot(2, X86_HWBP_READ, 0x1002, 2, &bits), 0);
    assert_true(bits == ((1ULL << 4) | (3ULL << 24) | (1ULL << 26)));
    assert_int_equal(x86_dr7_slot(0, X86_HWBP_EXEC, 0x1000, 4, &bits), -EINVAL);
    assert_int_equal(x86_dr7_slot(0, X86_HWBP_WRITE, 0x1002, 4, &bits), -EINVAL);
    assert_int_equal(x86_dr7_slot(0, X86_HWBP_WRITE, 0x1000, 3, &bits), -EINVAL);
    assert_int_equal(x86_dr7_slot(4, X86_HWBP_WRITE, 0x1000, 4, &bits), -EINVAL);
}

/* 2 MiB of fake RAM holding page tables. */
#define RAM (2u << 20)
#define P   1ULL
#define RW  2ULL
#define PS  0x80ULL

struct walk {
    uint8_t *ram;
    struct guest_mem gm;
    struct x86_mmu mmu;
};

static void set_pte(struct walk *w, uint64_t table, unsigned idx, uint64_t val)
{
    memcpy(w->ram + table + idx * 8, &val, 8);
}

static unsigned idx(uint64_t gva, int level)
{
    return (unsigned)((gva >> (12 + 9 * (level - 1))) & 511);
}

/*
 * Tables: PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000. Mapped:
 *   A = 0x0000004000603000: 4 KiB page at 0x5000 (PML4 0, PDPT 1, PD 3, PT 3)
 *   B = 0x0000004000a00000 + x: 2 MiB page at 0x200000 (PD 5)
 *   C = 0x0000008000000000 + x: 1 GiB page at 0x40000000 (PML4 1 -> PDPT 0x6000 entry 0)
 *   K = 0xffffffff81000000: the kernel's 2 MiB page at 0x1000000 (PML4 511, PDPT 510 at
 *       0x7000, PD 0x8000 entry 8)
 */
static struct walk *walk_new(void)
{
    struct walk *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->ram = calloc(1, RAM);
    assert_non_null(w->ram);
    gm_init_fake(&w->gm, w->ram, RAM);
    uint64_t a = 0x0000004000603000ULL, b = 0x0000004000a00000ULL;
    uint64_t c = 0x0000008000000000ULL, k = 0xffffffff81000000ULL;
    set_pte(w, 0x1000, idx(a, 4), 0x2000 | P | RW);
    set_pte(w, 0x2000, idx(a, 3), 0x3000 | P | RW);
    set_pte(w, 0x3000, idx(a, 2), 0x4000 | P | RW);
    set_pte(w, 0x4000, idx(a, 1), 0x5000 | P | RW | (1ULL << 63)); /* NX is not address */
    set_pte(w, 0x3000, idx(b, 2), 0x200000 | P | RW | PS);
    set_pte(w, 0x1000, idx(c, 4), 0x6000 | P | RW);
    set_pte(w, 0x6000, idx(c, 3), 0x40000000 | P | RW | PS);
    set_pte(w, 0x1000, idx(k, 4), 0x7000 | P | RW);
    set_pte(w, 0x7000, idx(k, 3), 0x8000 | P | RW);
    set_pte(w, 0x8000, idx(k, 2), 0x1000000 | P | RW | PS);
    w->mmu = (struct x86_mmu){.cr0 = 0x80000011, .cr3 = 0x1000, .cr4 = 0x20, .efer = 0x500};
    return w;
}

static void walk_free(struct walk *w)
{
    free(w->ram);
    free(w);
}

static int tr(struct walk *w, uint64_t gva, uint64_t *gpa, uint64_t *span)
{
    return x86_translate(&w->gm, &w->mmu, gva, gpa, span);
}

static void test_walk_pages(void **state)
{
    struct walk *w = walk_new();
    uint64_t gpa, span;
    (void)state;

    assert_int_equal(tr(w, 0x0000004000603123ULL, &gpa, &span), 0);
    assert_true(gpa == 0x5123);
    assert_true(span == 4096 - 0x123);
    assert_int_equal(tr(w, 0x0000004000b23456ULL, &gpa, &span), 0);
    assert_true(gpa == 0x323456);
    assert_true(span == 0x200000 - 0x123456);
    assert_int_equal(tr(w, 0x0000008012345678ULL, &gpa, &span), 0);
    assert_true(gpa == 0x52345678);
    assert_true(span == 0x40000000 - 0x12345678);
    assert_int_equal(tr(w, 0xffffffff81134567ULL, &gpa, &span), 0);
    assert_true(gpa == 0x1134567);
    walk_free(w);
}

static void test_walk_faults(void **state)
{
    struct walk *w = walk_new();
    uint64_t gpa, span;
    (void)state;

    /* Not present at each level: PT entry, PD entry, PDPT entry, PML4 entry. */
    assert_int_equal(tr(w, 0x0000004000604000ULL, &gpa, &span), -EFAULT);
    assert_int_equal(tr(w, 0x0000004000e00000ULL, &gpa, &span), -EFAULT);
    assert_int_equal(tr(w, 0x0000004080000000ULL, &gpa, &span), -EFAULT);
    assert_int_equal(tr(w, 0x0000010000000000ULL, &gpa, &span), -EFAULT);
    /* Non-canonical. */
    assert_int_equal(tr(w, 0x0000800000000000ULL, &gpa, &span), -EFAULT);
    assert_int_equal(tr(w, 0xfff0000000000000ULL, &gpa, &span), -EFAULT);
    /* A table outside RAM. */
    set_pte(w, 0x1000, 2, 0x7fff0000000ULL | P);
    assert_int_equal(tr(w, 0x0000010000000000ULL, &gpa, &span), -EFAULT);
    /* PS in a PML4 entry is reserved. */
    set_pte(w, 0x1000, 2, 0x2000 | P | PS);
    assert_int_equal(tr(w, 0x0000010000000000ULL, &gpa, &span), -EFAULT);
    /* CR3 outside RAM. */
    w->mmu.cr3 = 0x7fff0000000ULL;
    assert_int_equal(tr(w, 0x0000004000603000ULL, &gpa, &span), -EFAULT);
    walk_free(w);
}

static void test_walk_modes(void **state)
{
    struct walk *w = walk_new();
    uint64_t gpa, span;
    (void)state;

    /* 5-level paging: refused, not walked as 4 levels. */
    w->mmu.cr4 |= 1ULL << 12;
    assert_int_equal(tr(w, 0x0000004000603000ULL, &gpa, &span), -EOPNOTSUPP);
    /* 32-bit paging (PG without long mode). */
    w->mmu.cr4 = 0x20;
    w->mmu.efer = 0;
    assert_int_equal(tr(w, 0x603000, &gpa, &span), -EOPNOTSUPP);
    /* Paging off: identity. */
    w->mmu.cr0 = 0x11;
    assert_int_equal(tr(w, 0x12345, &gpa, &span), 0);
    assert_true(gpa == 0x12345);
    assert_true(span == 4096 - 0x345);
    walk_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_xml_matches_layout),
        cmocka_unit_test(test_pack_unpack),
        cmocka_unit_test(test_dr7),
        cmocka_unit_test(test_walk_pages),
        cmocka_unit_test(test_walk_faults),
        cmocka_unit_test(test_walk_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
