/* Start-up and exit of a kit program; see include/kit/kit.h. */
#include "kit/kit.h"
#include "kit/boot_params.h"
#include "kit/io.h"
#include "kit/uart.h"

void kit_start(const void *boot_params)
{
    boot_params_init(boot_params);
    uart_init();
    kit_exit(kit_main());
}

void kit_exit(int status)
{
    /* The VMM may stop reading the console the moment it sees the exit. */
    uart_flush();
    outb((unsigned char)status, KIT_DEBUG_EXIT_PORT);
    kit_halt();
}

void kit_halt(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}
