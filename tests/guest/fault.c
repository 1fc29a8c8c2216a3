/*
 * fault: triple-faults on purpose, so a VMM's crash path can be tested.
 * With an empty IDT (limit 0) the #UD from ud2 cannot be delivered, nor can
 * the #GP that raises, nor the #DF after it: the CPU shuts down (KVM reports
 * KVM_EXIT_SHUTDOWN; QEMU resets, or exits under -no-reboot).
 */
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/uart.h"

#include <stdint.h>

int kit_main(void)
{
    static const struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty_idt = {0, 0};

    puts("fault: loading an empty IDT and executing ud2 (expect a triple fault)");
    uart_flush(); /* the line must be out before the CPU shuts down */
    __asm__ volatile("lidt %0\n\tud2" : : "m"(empty_idt));
    __builtin_unreachable();
}
