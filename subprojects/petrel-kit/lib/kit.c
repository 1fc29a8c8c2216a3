/* Start-up and exit of a kit program; see include/kit/kit.h. */
#include "kit/kit.h"
#include "kit/boot_params.h"
#include "kit/cmdline.h"
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
    /* kit.exit=reset: a VMM without a debug-exit port (kvmtool) ends when the guest resets
     * through the i8042 (its pulse-reset command 0xfe). */
    char v[2];
    if (kit_cmdline_get("kit.exit", v, sizeof(v)) >= 0 && v[0] == 'r')
        outb(0xfe, 0x64);
    kit_halt();
}

void kit_halt(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}
