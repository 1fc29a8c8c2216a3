/*
 * mmiosplit: MMIO accesses that KVM completes in several exits, for the pause
 * tests (tests/integration/test_pause.py). A pause that lands between two
 * exits of one access must complete the rest before the vCPU parks
 * (vcpu_complete_exit() in src/vmm/vcpu.c); the values checked here show
 * that no fragment is lost, repeated or torn however the pauses fall.
 *
 * The MMIO is the MSI-X table of the first virtio-pci function that has one
 * (petrel's virtio-rng: run with --rng), with MSI-X left disabled, so nothing
 * the table says is ever sent. Each round, with values that change every
 * round (E0, E1: table entries 0 and 1; T: the table's address):
 *  - a 16-byte SSE store of E1 (movaps) and a 16-byte load of it (movdqu):
 *    two 8-byte exits each;
 *  - xchg and lock or on E1's message data (4 bytes) and on its address
 *    (8 bytes): a read exit, then a write exit, each;
 *  - rep movsq from E1 to E0, two elements: MMIO to MMIO, a read and a write
 *    exit per element;
 *  - an 8-byte store and load, and a 16-byte store and load (movdqu), from
 *    T - 4: across a page boundary (the table must start a page, as on
 *    petrel), in 2 and 3 exits (4 bytes, then 8 and 4 on the next page).
 *    The 4 bytes before the table are unclaimed BAR space on petrel: writes
 *    there are dropped, reads return 0.
 * Every read is checked against what was written, under the table's
 * writable bits (an address's bits 1:0 read 0; vector control keeps only its
 * mask bit, which stays set), and each 16-byte read again dword by dword.
 *
 *   mmiosplit: <bdf> table 0x<address> vectors <n>
 *   mmiosplit: ready
 *   mmiosplit: round <n>                   every 2^mmiosplit.report rounds (6)
 *   mmiosplit: PASS rounds <n>             mmiosplit.rounds=<n> (0, default: forever); exit 0
 *   mmiosplit: FAIL <what> round <n> got 0x<value> want 0x<value>     exit 1
 *   mmiosplit: no virtio-pci function with MSI-X     exit 3
 *
 * A bad option prints "mmiosplit: bad <option>" and exits 2.
 *
 * SSE is enabled here (CR4.OSFXSR, CR0.MP; CR0.EM and TS clear) and used
 * only by the two assembly routines below: the kit's compiler flags keep it
 * out of C. So this program needs a real KVM (the nested harness, or
 * hardware): kvm_pvm's emulator cannot run SSE at CPL0 (../shared/PVM.md),
 * and check_insns.py lets it through for this program alone.
 */
#include "kit/cmdline.h"
#include "kit/io.h"
#include "kit/kit.h"
#include "kit/pci.h"
#include "kit/printf.h"

#include <stdint.h>

#define CR0_MP         (1ull << 1)
#define CR0_EM         (1ull << 2)
#define CR0_TS         (1ull << 3)
#define CR4_OSFXSR     (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)

#define VIRTIO_VENDOR     0x1af4
#define VIRTIO_MODERN_MIN 0x1040 /* 0x1040 + device type: virtio 1.x PCI IDs */
#define MSIX_CTRL         2      /* in the capability: message control */
#define MSIX_TABLE        4      /* table offset | BIR */
#define MSIX_SIZE_MASK    0x7ff
#define MSIX_ENTRY        16
#define PAGE              4096

/*
 * dst[0..16) = src[0..16) through %xmm0: movdqu both ways, or (the _aligned
 * one) a movaps store to a 16-byte aligned dst.
 */
void sse_copy16(volatile void *dst, const volatile void *src);
void sse_copy16_aligned(volatile void *dst, const volatile void *src);
__asm__(".text\n"
        ".globl sse_copy16\n"
        ".type sse_copy16, @function\n"
        "sse_copy16:\n"
        "    movdqu (%rsi), %xmm0\n"
        "    movdqu %xmm0, (%rdi)\n"
        "    ret\n"
        ".size sse_copy16, . - sse_copy16\n"
        ".globl sse_copy16_aligned\n"
        ".type sse_copy16_aligned, @function\n"
        "sse_copy16_aligned:\n"
        "    movdqu (%rsi), %xmm0\n"
        "    movaps %xmm0, (%rdi)\n"
        "    ret\n"
        ".size sse_copy16_aligned, . - sse_copy16_aligned\n");

struct quad {
    uint32_t w[4];
} __attribute__((aligned(16)));

/* The bits of an entry's four dwords that the guest may write (PCI 3.0 6.8.2). */
static const uint32_t entry_wmask[4] = {0xfffffffc, 0xffffffff, 0xffffffff, 1};

static unsigned long long round_no;

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint32_t xchg32(uint64_t addr, uint32_t v)
{
    __asm__ volatile("xchgl %0, %1"
                     : "+r"(v), "+m"(*(volatile uint32_t *)(uintptr_t)addr)
                     :
                     : "memory");
    return v;
}

static uint64_t xchg64(uint64_t addr, uint64_t v)
{
    __asm__ volatile("xchgq %0, %1"
                     : "+r"(v), "+m"(*(volatile uint64_t *)(uintptr_t)addr)
                     :
                     : "memory");
    return v;
}

static void lock_or32(uint64_t addr, uint32_t v)
{
    __asm__ volatile("lock orl %1, %0"
                     : "+m"(*(volatile uint32_t *)(uintptr_t)addr)
                     : "r"(v)
                     : "memory");
}

static void lock_or64(uint64_t addr, uint64_t v)
{
    __asm__ volatile("lock orq %1, %0"
                     : "+m"(*(volatile uint64_t *)(uintptr_t)addr)
                     : "r"(v)
                     : "memory");
}

/* n qwords from src to dst with one rep movsq. */
static void rep_movsq(uint64_t dst, uint64_t src, uint64_t n)
{
    __asm__ volatile("cld; rep movsq" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

/* One 8-byte store and load, whatever the alignment (one instruction each). */
static void store64(uint64_t addr, uint64_t v)
{
    __asm__ volatile("movq %1, %0"
                     : "=m"(*(volatile uint64_t *)(uintptr_t)addr)
                     : "r"(v)
                     : "memory");
}

static uint64_t load64(uint64_t addr)
{
    uint64_t v;
    __asm__ volatile("movq %1, %0"
                     : "=r"(v)
                     : "m"(*(volatile uint64_t *)(uintptr_t)addr)
                     : "memory");
    return v;
}

static int check(const char *what, uint64_t got, uint64_t want)
{
    if (got == want)
        return 0;
    printf("mmiosplit: FAIL %s round %llu got 0x%llx want 0x%llx\n", what, round_no,
           (unsigned long long)got, (unsigned long long)want);
    return 1;
}

/* A 16-byte MMIO load at addr, then the same bytes dword by dword: both must be want. */
static int check16(const char *what, uint64_t addr, const struct quad *want)
{
    struct quad got;

    sse_copy16(&got, (const volatile void *)(uintptr_t)addr);
    for (unsigned i = 0; i < 4; i++)
        if (check(what, got.w[i], want->w[i]))
            return 1;
    for (unsigned i = 0; i < 4; i++)
        if (check(what, mmio_read32(addr + 4 * i), want->w[i]))
            return 1;
    return 0;
}

static uint64_t q64(const struct quad *q, unsigned i)
{
    return (uint64_t)q->w[i + 1] << 32 | q->w[i];
}

/* One round on table t (entries E0 = t, E1 = t + 16); 0 or 1 (reported). */
static int one_round(uint64_t t, uint64_t *rng)
{
    uint64_t e0 = t, e1 = t + MSIX_ENTRY;
    struct quad v, want;

    /* A whole entry by one 16-byte store (aligned), read back by a 16-byte load. */
    for (unsigned i = 0; i < 4; i++)
        v.w[i] = (uint32_t)xorshift64(rng);
    v.w[3] |= 1; /* keep the vector masked */
    sse_copy16_aligned((volatile void *)(uintptr_t)e1, &v);
    for (unsigned i = 0; i < 4; i++)
        want.w[i] = v.w[i] & entry_wmask[i];
    if (check16("16-byte store", e1, &want))
        return 1;

    /* Read-modify-writes on the message data (4 bytes) and the address (8 bytes). */
    uint32_t d = (uint32_t)xorshift64(rng), m = 1u << (xorshift64(rng) % 32);
    if (check("xchg32 old", xchg32(e1 + 8, d), want.w[2]))
        return 1;
    want.w[2] = d;
    if (check("xchg32 new", mmio_read32(e1 + 8), want.w[2]))
        return 1;
    lock_or32(e1 + 8, m);
    want.w[2] |= m;
    if (check("lock or32", mmio_read32(e1 + 8), want.w[2]))
        return 1;
    uint64_t a = xorshift64(rng), o = 1ull << (xorshift64(rng) % 64);
    if (check("xchg64 old", xchg64(e1, a), q64(&want, 0)))
        return 1;
    want.w[0] = (uint32_t)a & entry_wmask[0];
    want.w[1] = (uint32_t)(a >> 32);
    if (check("xchg64 new", mmio_read64(e1), q64(&want, 0)))
        return 1;
    lock_or64(e1, o);
    want.w[0] = ((uint32_t)o | want.w[0]) & entry_wmask[0];
    want.w[1] |= (uint32_t)(o >> 32);
    if (check16("lock or64", e1, &want))
        return 1;

    /* MMIO to MMIO: E0 becomes E1, a read and a write exit per qword. */
    rep_movsq(e0, e1, 2);
    if (check16("rep movsq", e0, &want))
        return 1;

    /* 8 bytes across the page boundary: the upper 4 land in E0's address. */
    uint64_t x = xorshift64(rng);
    store64(t - 4, x);
    want.w[0] = (uint32_t)(x >> 32) & entry_wmask[0];
    if (check("split 8-byte load", load64(t - 4), (uint64_t)want.w[0] << 32))
        return 1;
    if (check16("after split 8-byte store", e0, &want))
        return 1;

    /* 16 bytes across it: E0's address and data take the last 12. */
    for (unsigned i = 0; i < 4; i++)
        v.w[i] = (uint32_t)xorshift64(rng);
    sse_copy16((volatile void *)(uintptr_t)(t - 4), &v);
    want.w[0] = v.w[1] & entry_wmask[0];
    want.w[1] = v.w[2];
    want.w[2] = v.w[3];
    if (check16("after split 16-byte store", e0, &want))
        return 1;
    struct quad split = {{0, want.w[0], want.w[1], want.w[2]}};
    if (check16("split 16-byte load", t - 4, &split))
        return 1;
    return 0;
}

/* Turns SSE on for this CPU (Intel SDM 3A 13.1.3: OSFXSR, EM clear, MP set). */
static void sse_enable(void)
{
    uint64_t cr0, cr4;

    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    cr0 = (cr0 & ~(CR0_EM | CR0_TS)) | CR0_MP;
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4) : "memory");
}

/*
 * The MSI-X table of the first modern virtio-pci function with one, its
 * offset in its BAR and its size; 0 if there is none.
 */
static uint64_t find_table(uint32_t *offset, unsigned *vectors)
{
    static struct pci_func funcs[PCI_MAX_FUNCS];
    unsigned n = pci_enumerate(funcs, PCI_MAX_FUNCS);

    for (unsigned i = 0; i < n; i++) {
        const struct pci_func *f = &funcs[i];
        struct pci_bar bar;

        if (f->vendor != VIRTIO_VENDOR || f->device < VIRTIO_MODERN_MIN)
            continue;
        int cap = pci_cap_find(f->bdf, PCI_CAP_ID_MSIX);
        if (cap <= 0)
            continue;
        uint32_t tbl = pci_read32(f->bdf, (unsigned)cap + MSIX_TABLE);
        if (pci_bar_read(f->bdf, tbl & 7, &bar) || !bar.size || bar.io || !bar.addr)
            continue;
        *vectors = (pci_read16(f->bdf, (unsigned)cap + MSIX_CTRL) & MSIX_SIZE_MASK) + 1;
        pci_enable(f->bdf, PCI_COMMAND_MEMORY);
        *offset = tbl & ~7u;
        uint64_t t = bar.addr + *offset;
        printf("mmiosplit: %02x:%02x.%x table 0x%llx vectors %u\n", PCI_BDF_BUS(f->bdf),
               PCI_BDF_DEV(f->bdf), PCI_BDF_FN(f->bdf), (unsigned long long)t, *vectors);
        return t;
    }
    return 0;
}

int kit_main(void)
{
    unsigned long report = 6, rounds = 0;
    unsigned vectors;
    uint32_t offset;

    if (kit_cmdline_uint("mmiosplit.report", 10, &report) == -2 || report > 63) {
        puts("mmiosplit: bad mmiosplit.report (want 0-63)");
        return 2;
    }
    if (kit_cmdline_uint("mmiosplit.rounds", 10, &rounds) == -2) {
        puts("mmiosplit: bad mmiosplit.rounds");
        return 2;
    }
    uint64_t t = find_table(&offset, &vectors);
    if (!t) {
        puts("mmiosplit: no virtio-pci function with MSI-X");
        return 3;
    }
    /* Two entries, and the 4 bytes before the table: on the page before, in the BAR. */
    if (vectors < 2 || t % PAGE || offset < PAGE) {
        puts("mmiosplit: FAIL the table needs 2 vectors, and to start a page that is not "
             "the BAR's first");
        return 1;
    }
    sse_enable();
    puts("mmiosplit: ready");

    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (round_no = 1;; round_no++) {
        if (one_round(t, &rng))
            return 1;
        if (!(round_no & ((1ull << report) - 1)))
            printf("mmiosplit: round %llu\n", round_no);
        if (rounds && round_no == rounds) {
            printf("mmiosplit: PASS rounds %llu\n", round_no);
            return 0;
        }
    }
}
