/* Output on the debug console port; see include/kit/debugcon.h. */
#include "kit/debugcon.h"
#include "kit/io.h"
#include "kit/string.h"

void debugcon_write(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        outb((unsigned char)s[i], DEBUGCON_PORT);
}

void debugcon_puts(const char *s)
{
    debugcon_write(s, strlen(s));
}

int debugcon_present(void)
{
    return inb(DEBUGCON_PORT) == DEBUGCON_PORT;
}
