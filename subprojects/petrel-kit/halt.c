/*
 * halt: for pause tests. Sets up the IDT and interrupt controllers with every
 * source masked, prints "halt: ready", then sits in "sti; hlt" forever, so
 * the vCPU stays halted in the kernel with interrupts enabled. An interrupt
 * that arrives anyway is reported (see idt.h) and ends the program with
 * status 0x7f.
 */
#include "kit/irq.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/uart.h"

int kit_main(void)
{
    irq_init();
    puts("halt: ready");
    uart_flush();
    for (;;)
        kit_idle();
}
