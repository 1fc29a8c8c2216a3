/*
 * The ACPI tables and the AML builder: structure, checksums and contents
 * checked here, and every table but the RSDP disassembled by ACPICA's iasl (acpica-tools,
 * installed by scripts/setup), which must report no error or warning; the
 * DSDT's disassembly must also compile back with 0 errors, warnings, remarks.
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
#include <unistd.h>

#include "petrel/acpi.h"
#include "petrel/aml.h"
#include "petrel/platform.h"

#define GPA PLAT_ACPI_GPA

static uint8_t tables[PLAT_ACPI_SIZE];

static uint64_t get(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

/* The table at guest address gpa, checked to lie inside what was built. */
static const uint8_t *at(uint64_t gpa, size_t built, size_t min_len)
{
    assert_true(gpa >= GPA);
    assert_true(gpa - GPA + min_len <= built);
    return tables + (gpa - GPA);
}

static const uint8_t *table(uint64_t gpa, size_t built, const char *sig)
{
    const uint8_t *t = at(gpa, built, 36);
    assert_memory_equal(t, sig, 4);
    uint32_t len = (uint32_t)get(t + 4, 4);
    assert_true(len >= 36);
    at(gpa, built, len);
    assert_int_equal(sum(t, len), 0);
    return t;
}

struct parsed {
    size_t built;
    const uint8_t *rsdp, *xsdt, *fadt, *facs, *dsdt, *madt;
};

static void parse(unsigned nr_cpus, struct parsed *p)
{
    memset(tables, 0xcc, sizeof(tables));
    ssize_t n = acpi_build(tables, sizeof(tables), GPA, nr_cpus);
    assert_true(n > 0);
    p->built = (size_t)n;

    p->rsdp = tables;
    assert_memory_equal(p->rsdp, "RSD PTR ", 8);
    assert_int_equal(p->rsdp[15], 2);
    assert_int_equal(sum(p->rsdp, 20), 0);
    assert_int_equal(get(p->rsdp + 20, 4), 36);
    assert_int_equal(sum(p->rsdp, 36), 0);

    p->xsdt = table(get(p->rsdp + 24, 8), p->built, "XSDT");
    uint32_t xlen = (uint32_t)get(p->xsdt + 4, 4);
    assert_int_equal((xlen - 36) % 8, 0);
    p->fadt = p->madt = NULL;
    for (uint32_t off = 36; off < xlen; off += 8) {
        uint64_t gpa = get(p->xsdt + off, 8);
        const uint8_t *t = at(gpa, p->built, 36);
        if (!memcmp(t, "FACP", 4))
            p->fadt = table(gpa, p->built, "FACP");
        else if (!memcmp(t, "APIC", 4))
            p->madt = table(gpa, p->built, "APIC");
        else
            fail_msg("unexpected table %.4s in the XSDT", (const char *)t);
    }
    assert_non_null(p->fadt);
    assert_non_null(p->madt);

    uint64_t facs = get(p->fadt + 132, 8), dsdt = get(p->fadt + 140, 8);
    assert_int_equal(get(p->fadt + 36, 4), 0); /* FIRMWARE_CTRL: 0 when X_FIRMWARE_CTRL is set */
    assert_int_equal(get(p->fadt + 40, 4), dsdt);
    assert_int_equal(facs % 64, 0);
    p->facs = at(facs, p->built, 64);
    assert_memory_equal(p->facs, "FACS", 4);
    assert_int_equal(get(p->facs + 4, 4), 64);
    p->dsdt = table(dsdt, p->built, "DSDT");
}

static void check_gas_io(const uint8_t *g, uint16_t port, unsigned bits)
{
    assert_int_equal(g[0], 1); /* system I/O */
    assert_int_equal(g[1], bits);
    assert_int_equal(get(g + 4, 8), port);
}

static void test_fadt(void **state)
{
    struct parsed p;
    (void)state;
    parse(1, &p);
    const uint8_t *f = p.fadt;
    assert_int_equal(get(f + 4, 4), 276);
    assert_int_equal(f[8], 6);
    assert_int_equal(get(f + 46, 2), PLAT_SCI_IRQ);
    assert_int_equal(get(f + 48, 4), 0); /* no SMI_CMD: always in ACPI mode */
    assert_int_equal(get(f + 56, 4), PLAT_PM1A_EVT_PORT);
    assert_int_equal(get(f + 64, 4), PLAT_PM1A_CNT_PORT);
    assert_int_equal(get(f + 76, 4), PLAT_PM_TMR_PORT);
    assert_int_equal(f[88], 4);
    assert_int_equal(f[89], 2);
    assert_int_equal(f[91], 4);
    uint32_t flags = (uint32_t)get(f + 112, 4);
    assert_true(flags & (1u << 8));   /* 32-bit PM timer */
    assert_true(flags & (1u << 10));  /* reset register */
    assert_false(flags & (1u << 4));  /* fixed-feature power button */
    assert_false(flags & (1u << 20)); /* not hardware-reduced */
    check_gas_io(f + 116, PLAT_RESET_PORT, 8);
    assert_int_equal(f[128], PLAT_RESET_VALUE);
    check_gas_io(f + 148, PLAT_PM1A_EVT_PORT, 32);
    check_gas_io(f + 172, PLAT_PM1A_CNT_PORT, 16);
    check_gas_io(f + 208, PLAT_PM_TMR_PORT, 32);
    assert_int_equal(get(f + 109, 2) & 3, 3); /* legacy devices and an 8042 */
}

static void check_madt(unsigned nr_cpus)
{
    struct parsed p;
    parse(nr_cpus, &p);
    const uint8_t *m = p.madt;
    uint32_t len = (uint32_t)get(m + 4, 4);
    unsigned cpus = 0, ioapics = 0, isos = 0, nmis = 0;
    bool irq0 = false, sci = false;

    assert_int_equal(get(m + 36, 4), PLAT_LAPIC_GPA);
    assert_int_equal(get(m + 40, 4), 1); /* PCAT_COMPAT */
    for (uint32_t off = 44; off < len;) {
        const uint8_t *e = m + off;
        assert_true(e[1] >= 2 && off + e[1] <= len);
        switch (e[0]) {
        case 0:
            assert_int_equal(e[1], 8);
            assert_int_equal(e[2], cpus); /* processor UID */
            assert_int_equal(e[3], cpus); /* APIC ID */
            assert_int_equal(get(e + 4, 4), 1);
            cpus++;
            break;
        case 1:
            assert_int_equal(e[1], 12);
            assert_int_equal(e[2], nr_cpus);
            assert_int_equal(get(e + 4, 4), PLAT_IOAPIC_GPA);
            assert_int_equal(get(e + 8, 4), 0);
            ioapics++;
            break;
        case 2:
            assert_int_equal(e[1], 10);
            if (e[3] == 0) {
                assert_int_equal(get(e + 4, 4), 2);
                assert_int_equal(get(e + 8, 2), 0);
                irq0 = true;
            } else {
                assert_int_equal(e[3], PLAT_SCI_IRQ);
                assert_int_equal(get(e + 4, 4), PLAT_SCI_IRQ);
                assert_int_equal(get(e + 8, 2), 0xf); /* level, active low */
                sci = true;
            }
            isos++;
            break;
        case 4:
            assert_int_equal(e[1], 6);
            assert_int_equal(e[2], 0xff);
            assert_int_equal(e[5], 1);
            nmis++;
            break;
        default:
            fail_msg("unexpected MADT entry type %u", e[0]);
        }
        off += e[1];
    }
    assert_int_equal(cpus, nr_cpus);
    assert_int_equal(ioapics, 1);
    assert_int_equal(isos, 2);
    assert_int_equal(nmis, 1);
    assert_true(irq0 && sci);
}

static void test_madt(void **state)
{
    (void)state;
    check_madt(1);
    check_madt(2);
    check_madt(7);
    check_madt(PLAT_MAX_CPUS);
}

static size_t count(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    size_t c = 0;
    for (size_t i = 0; i + m <= n; i++)
        c += memcmp(hay + i, needle, m) == 0;
    return c;
}

static void test_dsdt_contents(void **state)
{
    static const unsigned cpus[] = {1, 2, 100, PLAT_MAX_CPUS};
    /* Name (\_S5, Package (4) {5, 5, 0, 0}) */
    static const uint8_t s5[] = {0x08, '\\', '_',  'S',  '5',  '_',  0x12, 0x08,
                                 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00};
    static const uint8_t pnp0a03[] = {0x0c, 0x41, 0xd0, 0x0a, 0x03};
    /* DWordMemory: 0xc0000000 - 0xfebfffff */
    static const uint8_t window[] = {0x87, 23,   0,    0,    0x0c, 0x01, 0,    0,    0,
                                     0,    0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xbf, 0xfe};
    (void)state;
    for (size_t i = 0; i < sizeof(cpus) / sizeof(cpus[0]); i++) {
        struct parsed p;
        parse(cpus[i], &p);
        size_t len = get(p.dsdt + 4, 4);
        assert_int_equal(count(p.dsdt, len, s5, sizeof(s5)), 1);
        assert_int_equal(count(p.dsdt, len, "ACPI0007", 8), cpus[i]);
        assert_int_equal(count(p.dsdt, len, pnp0a03, sizeof(pnp0a03)), 1);
        assert_int_equal(count(p.dsdt, len, window, sizeof(window)), 1);
    }
}

static void test_errors(void **state)
{
    (void)state;
    assert_int_equal(acpi_build(tables, sizeof(tables), GPA, 0), -EINVAL);
    assert_int_equal(acpi_build(tables, sizeof(tables), GPA, PLAT_MAX_CPUS + 1), -EINVAL);
    assert_int_equal(acpi_build(tables, 100, GPA, 1), -ENOSPC);
    assert_int_equal(acpi_build(tables, 1000, GPA, PLAT_MAX_CPUS), -ENOSPC);
    assert_int_equal(acpi_build(tables, sizeof(tables), 0xffffff00, 1), -EINVAL);
    /* Every size from nothing to enough: an error or a complete build, never a crash. */
    ssize_t full = acpi_build(tables, sizeof(tables), GPA, 2);
    assert_true(full > 0);
    for (size_t cap = 0; cap < (size_t)full; cap += 7)
        assert_int_equal(acpi_build(tables, cap, GPA, 2), -ENOSPC);
    assert_int_equal(acpi_build(tables, (size_t)full, GPA, 2), full);
}

/* PkgLength: 1 byte up to 63, 2 bytes up to 4095, 3 up to 1 MiB - 1. */
static void test_aml_pkglength(void **state)
{
    static const struct {
        size_t body;
        unsigned bytes;
    } cases[] = {{0, 1}, {62, 1}, {63, 2}, {4093, 2}, {4094, 3}, {100000, 3}};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct aml a;
        aml_init(&a);
        aml_package(&a, 0); /* PackageOp, then PkgLength, then NumElements (1 byte) */
        uint8_t *fill = calloc(1, cases[i].body + 1);
        assert_non_null(fill);
        aml_bytes(&a, fill, cases[i].body - (cases[i].body ? 1 : 0));
        free(fill);
        aml_close(&a);
        assert_int_equal(aml_finish(&a), 0);
        size_t body = cases[i].body ? cases[i].body : 1; /* NumElements at least */
        assert_int_equal(a.len, 1 + cases[i].bytes + body);
        unsigned lead = a.buf[1];
        assert_int_equal((lead >> 6) + 1, cases[i].bytes);
        size_t total = cases[i].bytes == 1 ? lead & 0x3f : lead & 0x0f;
        for (unsigned b = 1; b < cases[i].bytes; b++)
            total |= (size_t)a.buf[1 + b] << (4 + 8 * (b - 1));
        assert_int_equal(total, cases[i].bytes + body);
        aml_free(&a);
    }
}

static void test_aml_encodings(void **state)
{
    struct aml a;
    (void)state;
    aml_init(&a);
    aml_int(&a, 0);
    aml_int(&a, 1);
    aml_int(&a, 0xff);
    aml_int(&a, 0x100);
    aml_int(&a, 0x10000);
    aml_int(&a, 0x100000000ull);
    aml_name(&a, "\\_SB.PCI0");
    aml_string(&a, "AB");
    aml_eisaid(&a, "PNP0501");
    assert_int_equal(aml_finish(&a), 0);
    static const uint8_t want[] = {
        0x00, 0x01, 0x0a, 0xff, 0x0b, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x01, 0x00, 0x0e, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08, '\\', 0x2e, '_',  'S',  'B',  '_',
        'P',  'C',  'I',  '0',  0x0d, 'A',  'B',  0x00, 0x0c, 0x41, 0xd0, 0x05, 0x01,
    };
    assert_int_equal(a.len, sizeof(want));
    assert_memory_equal(a.buf, want, sizeof(want));
    aml_free(&a);

    /* A buffer's size goes in front of its bytes. */
    aml_init(&a);
    aml_buffer(&a);
    aml_res_end(&a);
    aml_close(&a);
    assert_int_equal(aml_finish(&a), 0);
    static const uint8_t buf[] = {0x11, 0x05, 0x0a, 0x02, 0x79, 0x00};
    assert_int_equal(a.len, sizeof(buf));
    assert_memory_equal(a.buf, buf, sizeof(buf));
    aml_free(&a);
}

static void test_aml_errors(void **state)
{
    static const char *bad_names[] = {"", "TOOLONG", "1ABC", "a", "\\_SB..X", "A-B"};
    struct aml a;
    (void)state;
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        aml_init(&a);
        aml_device(&a, bad_names[i]);
        aml_close(&a);
        if (bad_names[i][0] == 0) /* the empty name is the root's NullName: fine */
            assert_int_equal(aml_finish(&a), 0);
        else
            assert_int_equal(aml_finish(&a), -EINVAL);
        aml_free(&a);
    }
    aml_init(&a);
    aml_close(&a);
    assert_int_equal(aml_finish(&a), -EINVAL); /* close without open */
    aml_free(&a);
    aml_init(&a);
    aml_scope(&a, "\\_SB");
    assert_int_equal(aml_finish(&a), -EINVAL); /* left open */
    aml_free(&a);
    aml_init(&a);
    for (int i = 0; i <= AML_MAX_DEPTH; i++)
        aml_scope(&a, "X");
    assert_int_equal(aml_finish(&a), -E2BIG);
    aml_free(&a);
    aml_init(&a);
    aml_eisaid(&a, "PNP0G00");
    aml_res_irq(&a, 16);
    assert_int_equal(aml_finish(&a), -EINVAL);
    aml_free(&a);
}

/* Runs cmd in dir; returns its output (malloc'ed), the exit status in *status. */
static char *run(const char *dir, const char *cmd, int *status)
{
    char line[1024];
    snprintf(line, sizeof(line), "cd '%s' && %s 2>&1", dir, cmd);
    FILE *f = popen(line, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t n;
    while ((n = fread(out + len, 1, cap - 1 - len, f)) > 0) {
        len += n;
        if (len == cap - 1) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[len] = 0;
    *status = pclose(f);
    return out;
}

static char *slurp(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("iasl wrote no %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static void put_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void assert_clean(const char *what, const char *text)
{
    static const char *bad[] = {"Error",   "Warning", "Incorrect", "Invalid",
                                "invalid", "Unknown", "mismatch"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *hit = strstr(text, bad[i]);
        if (hit)
            fail_msg("%s: iasl says: %.200s", what, hit);
    }
}

static void disassemble(unsigned nr_cpus)
{
    struct parsed p;
    int status;
    char dir[] = "/tmp/petrel-acpi-XXXXXX";
    /* The RSDP has no table header: iasl cannot read it alone (parse() checks it). */
    static const char *names[] = {"xsdt", "fadt", "facs", "madt", "dsdt"};

    char *which = run("/", "command -v iasl", &status);
    if (status != 0)
        fail_msg("iasl not found: install acpica-tools (scripts/setup does)");
    free(which);

    parse(nr_cpus, &p);
    assert_non_null(mkdtemp(dir));
    const uint8_t *t[] = {p.xsdt, p.fadt, p.facs, p.madt, p.dsdt};
    for (size_t i = 0; i < 5; i++) {
        char dat[32], cmd[64], dsl[32];
        size_t len = get(t[i] + 4, 4);
        snprintf(dat, sizeof(dat), "%s.dat", names[i]);
        snprintf(dsl, sizeof(dsl), "%s.dsl", names[i]);
        snprintf(cmd, sizeof(cmd), "iasl -d %s", dat);
        put_file(dir, dat, t[i], len);
        char *out = run(dir, cmd, &status);
        if (status != 0)
            fail_msg("iasl -d %s failed: %s", dat, out);
        assert_clean(dat, out);
        char *text = slurp(dir, dsl);
        assert_clean(dsl, text);
        free(text);
        free(out);
    }
    /* The DSDT's disassembly compiles back cleanly. */
    char *out = run(dir, "iasl dsdt.dsl", &status);
    if (status != 0 || !strstr(out, "0 Errors, 0 Warnings, 0 Remarks"))
        fail_msg("iasl dsdt.dsl: %s", out);
    free(out);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_iasl(void **state)
{
    (void)state;
    disassemble(1);
    disassemble(2);
    disassemble(PLAT_MAX_CPUS);
}

/* iasl's own check can fail: a table with a broken checksum is reported. */
static void test_iasl_catches_bad_checksum(void **state)
{
    int status;
    char dir[] = "/tmp/petrel-acpi-XXXXXX";
    struct parsed p;
    (void)state;
    parse(2, &p);
    uint8_t madt[512];
    size_t len = get(p.madt + 4, 4);
    assert_true(len <= sizeof(madt));
    memcpy(madt, p.madt, len);
    madt[44 + 3] ^= 1;
    assert_non_null(mkdtemp(dir));
    put_file(dir, "madt.dat", madt, len);
    free(run(dir, "iasl -d madt.dat", &status));
    char *text = slurp(dir, "madt.dsl");
    assert_non_null(strstr(text, "Incorrect checksum"));
    free(text);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fadt),
        cmocka_unit_test(test_madt),
        cmocka_unit_test(test_dsdt_contents),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_aml_pkglength),
        cmocka_unit_test(test_aml_encodings),
        cmocka_unit_test(test_aml_errors),
        cmocka_unit_test(test_iasl),
        cmocka_unit_test(test_iasl_catches_bad_checksum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
