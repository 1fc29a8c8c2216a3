/*
 * The interrupt descriptor table: 256 interrupt gates on the kit's 64-bit
 * code segment, each entered through an assembly stub (lib/isr.S) that saves
 * every general register and calls the C handler for the vector.
 *
 * Exceptions (vectors 0-31) are reported on COM1 (vector, name, error code,
 * RIP, and CR2 for a page fault) and end the program with KIT_EXIT_EXCEPTION.
 * Other vectors have no gate until a handler is set: one that arrives anyway
 * raises #NP, reported with the vector it was for.
 *
 * Stubs and handlers use general registers only: the host's instruction
 * emulator on kvm_pvm fails on SSE/x87 (../shared/PVM.md).
 */
#ifndef KIT_IDT_H
#define KIT_IDT_H

#include <stdint.h>

#define IDT_VECTORS    256
#define IDT_EXCEPTIONS 32 /* vectors the CPU reserves for exceptions */

/* Status kit_exit() is called with after an unhandled exception. */
#define KIT_EXIT_EXCEPTION 0x7f

/*
 * The stack as a handler sees it: the registers the stub pushed, the vector,
 * the error code (0 when the vector has none) and the CPU's iretq frame.
 * A handler may change the saved registers; the stub restores them.
 */
struct idt_frame {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};

typedef void idt_handler_fn(struct idt_frame *frame);

/* Fills the exception gates and loads the table (lidt). Idempotent. */
void idt_init(void);

/* Loads the table on the calling CPU (lidt) as it is: for APs, once the BSP
 * has called idt_init(). */
void idt_load(void);

/* Installs fn for vector (>= IDT_EXCEPTIONS) and makes its gate present. */
void idt_set_handler(unsigned vector, idt_handler_fn *fn);

/* The C entry every stub calls; not for programs. */
void idt_dispatch(struct idt_frame *frame);

#endif
