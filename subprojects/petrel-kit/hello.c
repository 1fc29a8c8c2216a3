/*
 * hello: the smallest kit program. One line on COM1, one on the debug
 * console, then exit status 0 through debug-exit. Tests look for these lines.
 */
#include "kit/debugcon.h"
#include "kit/kit.h"
#include "kit/printf.h"

int kit_main(void)
{
    puts("hello from the petrel guest kit");
    debugcon_puts("hello from the petrel guest kit (debugcon)\n");
    return 0;
}
