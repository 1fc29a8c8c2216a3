/*
 * fault: triple-faults on purpose, so a VMM's crash path can be tested.
 * With an empty IDT (limit 0) the #UD from ud2 cannot be delivered, nor can
 * the #GP that raises, nor the #DF after it: the CPU shuts down (KVM reports
 * KVM_EXIT_SHUTDOWN; QEMU resets, or exits under -no-reboot).
 *
 * Option fault.handled: load the kit's IDT instead, so the #UD is caught and
 * reported ("kit: exception 6 #UD error 0x0 rip 0x...") and the program
 * exits with KIT_EXIT_EXCEPTION (0x7f): the exception path of the runtime.
 */
#include "kit/cmdline.h"
#include "kit/idt.h"
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
    char arg[4];

    if (kit_cmdline_get("fault.handled", arg, sizeof(arg)) >= 0) {
        idt_init();
        puts("fault: executing ud2 with the kit's IDT (expect an exception report)");
        __asm__ volatile("ud2");
        __builtin_unreachable();
    }
    puts("fault: loading an empty IDT and executing ud2 (expect a triple fault)");
    uart_flush(); /* the line must be out before the CPU shuts down */
    __asm__ volatile("lidt %0\n\tud2" : : "m"(empty_idt));
    __builtin_unreachable();
}
