/* Starting the APs and counting them; see include/kit/smp.h. */
#include "kit/smp.h"
#include "kit/idt.h"
#include "kit/irq.h"
#include "kit/kit.h"
#include "kit/lapic.h"
#include "kit/string.h"

#include <stdint.h>

/* Start-up delays (MultiProcessor Specification 1.4, B.4): 10 ms after INIT,
 * 200 us after each SIPI. KVM and QEMU need none; real CPUs do. */
#define SMP_INIT_DELAY_US 10000
#define SMP_SIPI_DELAY_US 200
/* Quiet periods before giving up on CPUs that keep arriving (~2 s). */
#define SMP_QUIET_ROUNDS 40

/* lib/trampoline.S */
extern const char smp_trampoline[], smp_trampoline_end[];
extern const char smp_tramp_gdt[], smp_tramp_cr3[];
void smp_ap_main(unsigned cpu) __attribute__((noreturn));

/*
 * Shared between CPUs. The BSP writes smp_fn and the trampoline before the
 * first IPI (the ICR write is ordered after them: x86 keeps stores in order).
 * APs update the rest with locked instructions only: smp_next_slot (lock xadd
 * in trampoline.S), smp_online and smp_cpus (lock or/add below), smp_ignored
 * (lock inc).
 */
uint32_t smp_next_slot = 1;
uint32_t smp_ignored;
static kit_smp_fn *volatile smp_fn;
static volatile uint32_t smp_cpus = 1;
static volatile int smp_started;
static uint64_t smp_online[KIT_SMP_APIC_IDS / 64];
static volatile int smp_timer_fired;

/* Marks the calling CPU's APIC ID online. */
static void smp_mark_online(void)
{
    unsigned id = lapic_id();

    __atomic_fetch_or(&smp_online[id / 64], 1ull << (id % 64), __ATOMIC_SEQ_CST);
}

/* An AP's C entry, on its own stack, from lib/trampoline.S. */
void smp_ap_main(unsigned cpu)
{
    idt_load();
    lapic_init();
    smp_mark_online();
    __atomic_fetch_add(&smp_cpus, 1, __ATOMIC_SEQ_CST);
    kit_smp_fn *fn = smp_fn;
    if (fn)
        fn(cpu);
    kit_halt();
}

/* The end of an smp_delay_us(). */
static void smp_timer_irq(unsigned vector)
{
    (void)vector;
    smp_timer_fired = 1;
}

/*
 * Waits about us microseconds on the LAPIC timer by watching its current count
 * (in-kernel LAPIC reads, no exit to the VMM) rather than sleeping in hlt for
 * its interrupt: under the nested harness (TCG's emulated SVM) a timer
 * interrupt has been seen to go missing, and a lost wake-up here would hang
 * the start-up instead of merely making it late.
 */
static void smp_delay_us(uint32_t us)
{
    uint32_t ticks = us * (LAPIC_TIMER_TICKS_PER_MS / 1000);

    smp_timer_fired = 0;
    lapic_timer_oneshot(IRQ_VECTOR_SMP, ticks ? ticks : 1);
    while (!smp_timer_fired && lapic_timer_current() != 0)
        __asm__ volatile("pause");
}

/* Copies the trampoline into place with the BSP's GDT and CR3 in its data. */
static void smp_trampoline_install(void)
{
    uint8_t *dst = (uint8_t *)(uintptr_t)KIT_SMP_TRAMPOLINE;
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) gdt;
    uint64_t cr3;

    __asm__ volatile("sgdt %0" : "=m"(gdt));
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint32_t base = (uint32_t)gdt.base, cr3_32 = (uint32_t)cr3;

    memcpy(dst, smp_trampoline, (size_t)(smp_trampoline_end - smp_trampoline));
    memcpy(dst + (smp_tramp_gdt - smp_trampoline), &gdt.limit, 2);
    memcpy(dst + (smp_tramp_gdt - smp_trampoline) + 2, &base, 4);
    memcpy(dst + (smp_tramp_cr3 - smp_trampoline), &cr3_32, 4);
    __asm__ volatile("" : : : "memory");
}

unsigned kit_smp_start(kit_smp_fn *fn)
{
    irq_init();
    irq_set_handler(IRQ_VECTOR_SMP, smp_timer_irq);
    smp_mark_online();
    smp_fn = fn;
    smp_trampoline_install();
    smp_started = 1;

    lapic_ipi(0, LAPIC_ICR_ALL_BUT_SELF | LAPIC_ICR_ASSERT | LAPIC_ICR_INIT);
    smp_delay_us(SMP_INIT_DELAY_US);
    for (int i = 0; i < 2; i++) {
        lapic_ipi(0, LAPIC_ICR_ALL_BUT_SELF | LAPIC_ICR_ASSERT | LAPIC_ICR_STARTUP |
                         KIT_SMP_TRAMPOLINE >> 12);
        smp_delay_us(SMP_SIPI_DELAY_US);
    }

    /* Every AP that took a slot below KIT_SMP_MAX_CPUS checks in soon after;
     * done when that has happened and no new one came for a quiet period. */
    uint32_t seen = __atomic_load_n(&smp_next_slot, __ATOMIC_SEQ_CST);
    for (int round = 0; round < SMP_QUIET_ROUNDS; round++) {
        smp_delay_us(KIT_SMP_QUIET_MS * 1000);
        uint32_t now = __atomic_load_n(&smp_next_slot, __ATOMIC_SEQ_CST);
        uint32_t slots = now < KIT_SMP_MAX_CPUS ? now : KIT_SMP_MAX_CPUS;
        if (now == seen && smp_cpus == slots)
            break;
        seen = now;
    }
    lapic_timer_stop();
    return smp_cpus;
}

unsigned kit_smp_count(void)
{
    return smp_cpus;
}

unsigned kit_smp_wait(unsigned n, unsigned ms)
{
    for (unsigned waited = 0; kit_smp_count() < n && waited < ms; waited += KIT_SMP_QUIET_MS)
        smp_delay_us(KIT_SMP_QUIET_MS * 1000);
    lapic_timer_stop();
    return kit_smp_count();
}

int kit_smp_online(unsigned apic_id)
{
    if (apic_id >= KIT_SMP_APIC_IDS)
        return 0;
    return (__atomic_load_n(&smp_online[apic_id / 64], __ATOMIC_SEQ_CST) >> (apic_id % 64)) & 1;
}

unsigned kit_smp_ignored(void)
{
    return __atomic_load_n(&smp_ignored, __ATOMIC_SEQ_CST);
}

int kit_smp_active(void)
{
    return smp_started;
}

unsigned kit_cpu_id(void)
{
    return lapic_id();
}
