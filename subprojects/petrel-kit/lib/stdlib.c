/* Number parsing; see include/kit/stdlib.h. */
#include "kit/stdlib.h"

#define ULONG_MAX (~0UL)

/* The value of digit c, or 36 (too large for any base) if it is none. */
static unsigned digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'z')
        return (unsigned)(c - 'a' + 10);
    if (c >= 'A' && c <= 'Z')
        return (unsigned)(c - 'A' + 10);
    return 36;
}

unsigned long strtoul(const char *s, char **end, int base)
{
    const char *p = s;
    unsigned long v = 0;
    int any = 0, overflow = 0;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '+')
        p++;
    if ((base == 0 || base == 16) && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
        digit_value(p[2]) < 16) {
        p += 2;
        base = 16;
    } else if (base == 0) {
        base = p[0] == '0' ? 8 : 10;
    }
    if (base < 2 || base > 36) {
        if (end)
            *end = (char *)s;
        return 0;
    }
    for (unsigned d; (d = digit_value(*p)) < (unsigned)base; p++) {
        any = 1;
        if (v > (ULONG_MAX - d) / (unsigned)base)
            overflow = 1;
        else
            v = v * (unsigned)base + d;
    }
    if (end)
        *end = (char *)(any ? p : s);
    return overflow ? ULONG_MAX : v;
}
