/* The local APIC through its xAPIC MMIO page; see include/kit/lapic.h. */
#include "kit/lapic.h"
#include "kit/io.h"

/* Register offsets (SDM vol. 3, table 11-1). */
#define LAPIC_ID        0x020
#define LAPIC_TPR       0x080
#define LAPIC_EOI       0x0b0
#define LAPIC_SVR       0x0f0
#define LAPIC_LVT_TMR   0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_TMR_INIT  0x380
#define LAPIC_TMR_CUR   0x390
#define LAPIC_TMR_DIV   0x3e0
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310

#define LAPIC_SVR_ENABLE   0x100
#define LAPIC_LVT_MASKED   0x10000
#define LAPIC_LVT_PERIODIC 0x20000
#define MSR_APIC_BASE      0x1b
#define APIC_BASE_ENABLE   0x800

/* Polls of the delivery status before sending anyway. KVM and QEMU never
 * show it busy; a real xAPIC clears it within microseconds. */
#define LAPIC_ICR_POLLS 100000

static uint32_t lapic_read(unsigned reg)
{
    return mmio_read32(LAPIC_BASE + reg);
}

static void lapic_write(unsigned reg, uint32_t v)
{
    mmio_write32(LAPIC_BASE + reg, v);
}

void lapic_init(void)
{
    uint32_t lo, hi;

    /* Enabled at reset; a loader may have turned it off. */
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(MSR_APIC_BASE));
    if (!(lo & APIC_BASE_ENABLE)) {
        lo |= APIC_BASE_ENABLE;
        __asm__ volatile("wrmsr" : : "a"(lo), "d"(hi), "c"(MSR_APIC_BASE));
    }
    lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | LAPIC_SPURIOUS_VECTOR);
    lapic_write(LAPIC_TPR, 0);
    /* The 8259s reach the CPU through LINT0 (ExtINT, unmasked on the BSP after
     * reset); the kit routes through the I/O APIC instead, as Linux does. */
    lapic_write(LAPIC_LVT_LINT0, lapic_read(LAPIC_LVT_LINT0) | LAPIC_LVT_MASKED);
    lapic_timer_stop();
    lapic_timer_divide(LAPIC_TIMER_DIVIDE);
}

unsigned lapic_id(void)
{
    return lapic_read(LAPIC_ID) >> 24;
}

int lapic_ipi(unsigned dest, uint32_t icr)
{
    int ret = -1;

    for (unsigned i = 0; i < LAPIC_ICR_POLLS; i++) {
        if (!(lapic_read(LAPIC_ICR_LO) & LAPIC_ICR_BUSY)) {
            ret = 0;
            break;
        }
        cpu_relax();
    }
    lapic_write(LAPIC_ICR_HI, (dest & 0xff) << 24);
    lapic_write(LAPIC_ICR_LO, icr); /* the write that sends */
    return ret;
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_EOI, 0);
}

void lapic_timer_divide(unsigned divisor)
{
    /* Divide configuration: bits 3,1,0 encode 2^(n+1), with 0b111 meaning 1. */
    unsigned n = 0;

    while (divisor > 1 && n < 7) {
        divisor >>= 1;
        n++;
    }
    unsigned code = (n + 7) & 7; /* 1 -> 7, 2 -> 0, ..., 128 -> 6 */
    lapic_write(LAPIC_TMR_DIV, (code & 3) | (code & 4) << 1);
}

/* Programs the LVT entry first, so the count starts with the right mode. */
static void lapic_timer_start(unsigned vector, uint32_t count, uint32_t mode)
{
    lapic_write(LAPIC_LVT_TMR, mode | (vector & 0xff));
    lapic_write(LAPIC_TMR_INIT, count);
}

void lapic_timer_oneshot(unsigned vector, uint32_t count)
{
    lapic_timer_start(vector, count, 0);
}

void lapic_timer_periodic(unsigned vector, uint32_t count)
{
    lapic_timer_start(vector, count, LAPIC_LVT_PERIODIC);
}

void lapic_timer_stop(void)
{
    lapic_write(LAPIC_TMR_INIT, 0);
    lapic_write(LAPIC_LVT_TMR, LAPIC_LVT_MASKED);
}

uint32_t lapic_timer_current(void)
{
    return lapic_read(LAPIC_TMR_CUR);
}
