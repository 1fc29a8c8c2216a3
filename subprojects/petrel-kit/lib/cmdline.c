/* Kernel command line options; see include/kit/cmdline.h. */
#include "kit/cmdline.h"
#include "kit/boot_params.h"
#include "kit/stdlib.h"

/* The end of the word at w: the first space outside double quotes. */
static const char *cmdline_word_end(const char *w)
{
    int quoted = 0;

    for (; *w; w++) {
        if (*w == '"')
            quoted = !quoted;
        else if (*w == ' ' && !quoted)
            break;
    }
    return w;
}

/* Whether the word [w, end) is name, alone or as name=...; *val is then set
 * to what follows the first '=' (or to end). Quotes are skipped. */
static int cmdline_match(const char *w, const char *end, const char *name, const char **val)
{
    const char *n = name;

    for (; w < end && *w != '='; w++) {
        if (*w == '"')
            continue;
        if (*w != *n)
            return 0;
        n++;
    }
    if (*n)
        return 0;
    *val = w < end ? w + 1 : end;
    return 1;
}

int kit_cmdline_get(const char *name, char *buf, size_t size)
{
    const char *p = boot_params_cmdline();
    const char *found = NULL, *found_end = NULL;

    if (!*name)
        return -1;
    while (*p) {
        if (*p == ' ') {
            p++;
            continue;
        }
        const char *end = cmdline_word_end(p);
        const char *val;
        if (cmdline_match(p, end, name, &val)) {
            found = val;
            found_end = end;
        }
        p = end;
    }
    if (!found)
        return -1;
    size_t len = 0;
    for (const char *v = found; v < found_end; v++) {
        if (*v == '"')
            continue;
        if (size && len + 1 < size)
            buf[len] = *v;
        len++;
    }
    if (size)
        buf[len < size ? len : size - 1] = '\0';
    return (int)len;
}

int kit_cmdline_uint(const char *name, int base, unsigned long *out)
{
    char buf[32];
    char *end;

    int n = kit_cmdline_get(name, buf, sizeof(buf));
    if (n < 0)
        return -1;
    if (n == 0 || (size_t)n >= sizeof(buf))
        return -2;
    unsigned long v = strtoul(buf, &end, base);
    if (*end || end == buf)
        return -2;
    *out = v;
    return 0;
}
