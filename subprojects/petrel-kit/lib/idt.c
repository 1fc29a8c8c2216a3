/* The IDT, its gates and the exception report; see include/kit/idt.h. */
#include "kit/idt.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/segment.h"

/* A 64-bit IDT gate (SDM vol. 3, figure 6-8). */
struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type; /* P, DPL, type */
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
};

#define IDT_GATE_INTR 0x8e /* present, DPL 0, 64-bit interrupt gate (IF cleared on entry) */
#define IDT_STUB_SIZE 16   /* stubs in lib/isr.S are this far apart */

/* #NP's error code, when the missing descriptor was an IDT gate (SDM 6.13). */
#define ERR_IDT 0x2

extern const char isr_stubs[];

static struct idt_gate idt[IDT_VECTORS] __attribute__((aligned(16)));
static idt_handler_fn *idt_handlers[IDT_VECTORS];
static int idt_loaded;
static int idt_reporting; /* an exception is being reported: a second one ends at once */

static const char *const idt_names[IDT_EXCEPTIONS] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
    "#NP", "#SS", "#GP", "#PF", "?",   "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    "?",   "?",   "?",   "?",   "?",   "?",   "#HV", "#VC", "#SX", "?",
};

/* Points vector's gate at its stub and marks it present. */
static void idt_set_gate(unsigned vector)
{
    uint64_t target = (uint64_t)(uintptr_t)(isr_stubs + vector * IDT_STUB_SIZE);
    struct idt_gate *g = &idt[vector];

    g->offset_lo = (uint16_t)target;
    g->selector = KIT_CS64;
    g->ist = 0;
    g->type = IDT_GATE_INTR;
    g->offset_mid = (uint16_t)(target >> 16);
    g->offset_hi = (uint32_t)(target >> 32);
    g->reserved = 0;
}

void idt_load(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) desc = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};

    __asm__ volatile("lidt %0" : : "m"(desc));
}

void idt_init(void)
{
    if (idt_loaded)
        return;
    /* Only the exceptions: 32 gates instead of 256 keeps start-up short on
     * kvm_pvm (~1 us an instruction), and a stray vector still gets reported. */
    for (unsigned v = 0; v < IDT_EXCEPTIONS; v++)
        idt_set_gate(v);
    idt_load();
    idt_loaded = 1;
}

void idt_set_handler(unsigned vector, idt_handler_fn *fn)
{
    if (vector < IDT_EXCEPTIONS || vector >= IDT_VECTORS)
        return;
    idt_handlers[vector] = fn;
    idt_set_gate(vector);
}

/* Prints what the CPU said about an exception, then ends the program. */
static void idt_exception(struct idt_frame *f) __attribute__((noreturn));
static void idt_exception(struct idt_frame *f)
{
    if (idt_reporting)
        kit_exit(KIT_EXIT_EXCEPTION); /* faulted while reporting: say no more */
    idt_reporting = 1;
    printf("kit: exception %llu %s error 0x%llx rip 0x%llx rsp 0x%llx",
           (unsigned long long)f->vector, idt_names[f->vector], (unsigned long long)f->error,
           (unsigned long long)f->rip, (unsigned long long)f->rsp);
    if (f->vector == 14) {
        uint64_t cr2;

        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        printf(" cr2 0x%llx", (unsigned long long)cr2);
    }
    if (f->vector == 11 && (f->error & ERR_IDT))
        printf(" (interrupt vector %llu has no handler)", (unsigned long long)(f->error >> 3));
    printf("\n");
    kit_exit(KIT_EXIT_EXCEPTION);
}

void idt_dispatch(struct idt_frame *f)
{
    if (f->vector < IDT_EXCEPTIONS)
        idt_exception(f);
    idt_handlers[f->vector](f); /* only vectors with a handler have a gate */
}
