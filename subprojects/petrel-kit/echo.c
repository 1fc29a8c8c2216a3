/*
 * echo: prints "echo: ready" once COM1 input is on, then one line per byte
 * received, its value in hex ("echo: 0x61"), sleeping in kit_idle() in
 * between, forever.
 *
 * Options: echo.exit=<hex byte> (say echo.exit=63): after printing the line
 * for that byte, exit with status 0, so a test can end it deterministically.
 * A value that is not a hex byte prints "echo: bad echo.exit=..." and exits 2.
 */
#include "kit/cmdline.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/uart_rx.h"

int kit_main(void)
{
    unsigned long exit_byte = 0;
    char arg[32];

    int has_exit = kit_cmdline_uint("echo.exit", 16, &exit_byte);
    if (has_exit == -2 || exit_byte > 0xff) {
        kit_cmdline_get("echo.exit", arg, sizeof(arg));
        printf("echo: bad echo.exit=%s (want a hex byte, like 63)\n", arg);
        return 2;
    }
    uart_rx_init();
    puts("echo: ready");
    for (;;) {
        int c = kit_getc();

        printf("echo: 0x%02x\n", c);
        if (has_exit == 0 && (unsigned long)c == exit_byte)
            return 0;
    }
}
