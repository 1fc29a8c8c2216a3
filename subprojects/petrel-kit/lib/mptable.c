/* MP specification 1.4 tables; see include/kit/mptable.h. */
#include "kit/mptable.h"
#include "kit/bda.h"
#include "kit/printf.h"
#include "kit/string.h"

#include <stdarg.h>

#define MPF_SIG     0x5f504d5fu /* "_MP_" */
#define MPF_LEN     16
#define MPC_HDR_LEN 44
#define MP_BIOS_LO  0xf0000
#define MP_BIOS_HI  0x100000
#define MP_ADDR_MAX (1ull << 32)

/* Entry types (table 4-3) and their lengths. */
#define MP_ENTRY_CPU    0
#define MP_ENTRY_BUS    1
#define MP_ENTRY_IOAPIC 2
#define MP_ENTRY_IOINT  3
#define MP_ENTRY_LINT   4
#define MP_CPU_LEN      20
#define MP_ENTRY_LEN    8

static const uint8_t *phys(uint64_t addr)
{
    return (const uint8_t *)(uintptr_t)addr;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint8_t mp_sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;

    while (n--)
        s += *p++;
    return s;
}

static void mp_err(struct mp_info *mi, const char *fmt, ...) KIT_PRINTF(2, 3);
static void mp_err(struct mp_info *mi, const char *fmt, ...)
{
    va_list ap;

    if (mi->error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(mi->error, sizeof(mi->error), fmt, ap);
    va_end(ap);
}

/* The first floating pointer in [lo, hi) whose length and checksum hold; a
 * signature with a bad checksum is remembered in *bad and the scan goes on. */
static uint64_t mp_scan(uint64_t lo, uint64_t hi, uint64_t *bad)
{
    for (uint64_t a = lo; a + MPF_LEN <= hi; a += 16) {
        const uint8_t *p = phys(a);

        if (rd32(p) != MPF_SIG)
            continue;
        unsigned len = p[8] * 16u;
        if (len >= MPF_LEN && a + len <= hi && !mp_sum(p, len))
            return a;
        if (!*bad)
            *bad = a;
    }
    return 0;
}

/*
 * Walks the entries by the base table's length, as Linux's smp_read_mpc()
 * does; an entry count that disagrees is reported (qboot writes 0) but does
 * not hide the entries.
 */
static void mp_entries(struct mp_info *mi, const uint8_t *t, uint32_t len, unsigned count)
{
    unsigned seen = 0;

    for (uint32_t off = MPC_HDR_LEN; off < len; seen++) {
        const uint8_t *e = t + off;
        uint32_t elen = e[0] == MP_ENTRY_CPU ? MP_CPU_LEN : MP_ENTRY_LEN;
        if (e[0] > MP_ENTRY_LINT) {
            mp_err(mi, "MP table: entry %u has type %u", seen, e[0]);
            return;
        }
        if (elen > len - off) {
            mp_err(mi, "MP table: entry %u runs past the table", seen);
            return;
        }
        off += elen;
        switch (e[0]) {
        case MP_ENTRY_CPU:
            if (e[3] & MP_CPU_ENABLED)
                mi->ncpus_enabled++;
            if (mi->ncpus < MP_MAX_CPUS) {
                mi->cpus[mi->ncpus].apic_id = e[1];
                mi->cpus[mi->ncpus].flags = e[3];
                mi->ncpus++;
            }
            break;
        case MP_ENTRY_BUS:
            if (mi->nbuses < MP_MAX_BUSES) {
                struct mp_bus *b = &mi->buses[mi->nbuses++];
                b->id = e[1];
                memcpy(b->type, e + 2, 6);
                b->type[6] = '\0';
            }
            break;
        case MP_ENTRY_IOAPIC:
            if (mi->nioapics < MP_MAX_IOAPICS) {
                struct mp_ioapic *io = &mi->ioapics[mi->nioapics++];
                io->id = e[1];
                io->flags = e[3];
                io->addr = rd32(e + 4);
            }
            break;
        case MP_ENTRY_IOINT:
            if (mi->nints < MP_MAX_INTS) {
                struct mp_int *n = &mi->ints[mi->nints++];
                n->type = e[1];
                n->flags = rd16(e + 2);
                n->bus = e[4];
                n->bus_irq = e[5];
                n->ioapic = e[6];
                n->pin = e[7];
            }
            break;
        case MP_ENTRY_LINT:
            mi->nlints++;
            break;
        }
    }
    if (seen != count)
        mp_err(mi, "MP table: entry count %u, but it holds %u entries", count, seen);
}

int mptable_init(struct mp_info *mi)
{
    uint64_t bad = 0, a = 0;

    memset(mi, 0, sizeof(*mi));
    uint32_t ebda = bda_ebda();
    if (ebda)
        a = mp_scan(ebda, ebda + 1024, &bad);
    if (!a) {
        uint32_t top = bda_base_mem_end();
        a = mp_scan(top - 1024, top, &bad);
    }
    if (!a)
        a = mp_scan(MP_BIOS_LO, MP_BIOS_HI, &bad);
    if (!a) {
        if (bad)
            mp_err(mi, "MP floating pointer at 0x%llx fails its checksum", (unsigned long long)bad);
        return bad ? -2 : -1;
    }
    const uint8_t *f = phys(a);
    mi->mpf = a;
    mi->mpc = rd32(f + 4);
    mi->spec_rev = f[9];
    mi->default_cfg = f[11];
    if (mi->default_cfg)
        return 0; /* one of the specification's default configurations, no table */
    if (!mi->mpc || mi->mpc >= MP_ADDR_MAX - MPC_HDR_LEN) {
        mp_err(mi, "MP floating pointer: no configuration table (0x%x)", mi->mpc);
        return -2;
    }

    const uint8_t *t = phys(mi->mpc);
    if (memcmp(t, "PCMP", 4)) {
        mp_err(mi, "MP table at 0x%x: no PCMP signature", mi->mpc);
        return -2;
    }
    uint32_t len = rd16(t + 4), ext_len = rd16(t + 40);
    if (len < MPC_HDR_LEN || (uint64_t)mi->mpc + len + ext_len > MP_ADDR_MAX) {
        mp_err(mi, "MP table at 0x%x: length %u", mi->mpc, len);
        return -2;
    }
    if (mp_sum(t, len))
        mp_err(mi, "MP table at 0x%x: checksum", mi->mpc);
    /* The extended table's checksum byte makes its bytes sum to zero with it. */
    if (ext_len && (uint8_t)(mp_sum(t + len, ext_len) + t[42]))
        mp_err(mi, "MP table at 0x%x: extended table checksum", mi->mpc);
    mi->lapic_addr = rd32(t + 36);
    mp_entries(mi, t, len, rd16(t + 34));
    return mi->error[0] ? -2 : 0;
}

int mptable_bus_is_isa(const struct mp_info *mi, unsigned id)
{
    for (unsigned i = 0; i < mi->nbuses; i++) {
        if (mi->buses[i].id == id)
            return !memcmp(mi->buses[i].type, "ISA   ", 6);
    }
    return 0;
}
