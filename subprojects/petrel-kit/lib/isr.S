/*
 * Interrupt entry stubs, one per vector, 16 bytes apart from isr_stubs (the
 * IDT code computes a gate's target as isr_stubs + 16 * vector). A stub
 * pushes a zero error code where the CPU pushes none, then its vector, and
 * joins isr_common, which saves all fifteen general registers into a
 * struct idt_frame (include/kit/idt.h), calls idt_dispatch(frame), restores
 * them and returns with iretq.
 *
 * The CPU aligns RSP to 16 bytes before pushing its 40-byte frame; with the
 * error code, the vector and 15 registers the frame is 176 bytes, so the call
 * is made with the stack aligned as the ABI wants. Nothing here may use
 * SSE/x87 or int3 (../shared/PVM.md).
 */

/* Vectors for which the CPU pushes an error code (SDM vol. 3, table 6-1). */
#define HAS_ERROR(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || \
                      (v) == 29 || (v) == 30)

    .code64
    .section .text, "ax"
    .balign 16
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16, 0x90
1:
    .if !HAS_ERROR(vec)
    pushq $0
    .endif
    pushq $vec
    /* jmp rel32, spelled out: a relaxable jmp would make the check below
     * non-constant for the assembler. */
    .byte 0xe9
    .long isr_common - . - 4
    .if . - 1b > 16
    .error "an interrupt stub is longer than 16 bytes"
    .endif
    .set vec, vec + 1
    .endr

isr_common:
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    pushq %r11
    pushq %r10
    pushq %r9
    pushq %r8
    pushq %rbp
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %rcx
    pushq %rbx
    pushq %rax
    movq %rsp, %rdi
    cld /* the C code's string instructions expect DF = 0 */
    call idt_dispatch
    popq %rax
    popq %rbx
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    popq %rbp
    popq %r8
    popq %r9
    popq %r10
    popq %r11
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    addq $16, %rsp /* the vector and the error code */
    iretq

    .section .note.GNU-stack, "", @progbits
