/* A small printf family; see include/kit/printf.h for what it understands. */
#include "kit/printf.h"
#include "kit/string.h"
#include "kit/uart.h"

#include <stdint.h>

/* Where formatted characters go: the console, or a buffer that may fill. */
struct sink {
    int console; /* else buf[0, size) */
    char *buf;
    size_t size;
    size_t len; /* characters produced so far, kept or not */
};

/* One conversion's flags and width. */
struct spec {
    int left; /* '-': pad on the right */
    int zero; /* '0': pad numbers with zeros */
    int width;
};

/* Emits one character into the sink. */
static void sink_put(struct sink *s, char c)
{
    if (s->console)
        uart_write(&c, 1);
    else if (s->len + 1 < s->size)
        s->buf[s->len] = c;
    s->len++;
}

/* Emits n copies of c. */
static void sink_fill(struct sink *s, char c, int n)
{
    while (n-- > 0)
        sink_put(s, c);
}

/* Emits a string of length n, padded to the spec's width with spaces. */
static void put_str(struct sink *s, const struct spec *sp, const char *str, int n)
{
    if (!sp->left)
        sink_fill(s, ' ', sp->width - n);
    for (int i = 0; i < n; i++)
        sink_put(s, str[i]);
    if (sp->left)
        sink_fill(s, ' ', sp->width - n);
}

/* Emits a number: sign or "0x" prefix, zero or space padding, digits. */
static void put_num(struct sink *s, const struct spec *sp, unsigned long long v, unsigned base,
                    int upper, const char *prefix)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24]; /* 2^64 has 20 decimal digits */
    int n = 0, plen = (int)strlen(prefix);

    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);

    int pad = sp->width - n - plen;
    if (!sp->left && !sp->zero)
        sink_fill(s, ' ', pad);
    for (int i = 0; i < plen; i++)
        sink_put(s, prefix[i]);
    if (!sp->left && sp->zero)
        sink_fill(s, '0', pad);
    while (n)
        sink_put(s, tmp[--n]);
    if (sp->left)
        sink_fill(s, ' ', pad);
}

/* Reads an integer argument of the given length (-2 hh, -1 h, 0, 1 l, 2 ll). */
static unsigned long long arg_unsigned(va_list *ap, int len)
{
    switch (len) {
    case -2:
        return (unsigned char)va_arg(*ap, unsigned int);
    case -1:
        return (unsigned short)va_arg(*ap, unsigned int);
    case 0:
        return va_arg(*ap, unsigned int);
    case 1:
        return va_arg(*ap, unsigned long);
    default:
        return va_arg(*ap, unsigned long long);
    }
}

static long long arg_signed(va_list *ap, int len)
{
    switch (len) {
    case -2:
        return (signed char)va_arg(*ap, int);
    case -1:
        return (short)va_arg(*ap, int);
    case 0:
        return va_arg(*ap, int);
    case 1:
        return va_arg(*ap, long);
    default:
        return va_arg(*ap, long long);
    }
}

/* The formatter behind every entry point. */
static void format(struct sink *s, const char *fmt, va_list ap_in)
{
    va_list ap;

    va_copy(ap, ap_in);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            sink_put(s, *fmt);
            continue;
        }
        struct spec sp = {0};
        for (fmt++;; fmt++) {
            if (*fmt == '-')
                sp.left = 1;
            else if (*fmt == '0')
                sp.zero = 1;
            else
                break;
        }
        if (*fmt == '*') {
            sp.width = va_arg(ap, int);
            if (sp.width < 0) {
                sp.left = 1;
                sp.width = -sp.width;
            }
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            sp.width = sp.width * 10 + (*fmt++ - '0');
        int len = 0;
        if (*fmt == 'h') {
            len = -1;
            if (*++fmt == 'h') {
                len = -2;
                fmt++;
            }
        } else if (*fmt == 'l') {
            len = 1;
            if (*++fmt == 'l') {
                len = 2;
                fmt++;
            }
        } else if (*fmt == 'z') {
            len = 1; /* size_t is unsigned long here */
            fmt++;
        }

        switch (*fmt) {
        case 'd':
        case 'i': {
            long long v = arg_signed(&ap, len);
            unsigned long long mag = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
            put_num(s, &sp, mag, 10, 0, v < 0 ? "-" : "");
            break;
        }
        case 'u':
            put_num(s, &sp, arg_unsigned(&ap, len), 10, 0, "");
            break;
        case 'x':
        case 'X':
            put_num(s, &sp, arg_unsigned(&ap, len), 16, *fmt == 'X', "");
            break;
        case 'p':
            put_num(s, &sp, (uintptr_t)va_arg(ap, void *), 16, 0, "0x");
            break;
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            put_str(s, &sp, str, (int)strlen(str));
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            put_str(s, &sp, &c, 1);
            break;
        }
        case '%':
            sink_put(s, '%');
            break;
        case '\0':
            /* A lone '%' at the end: print it rather than read past the NUL. */
            sink_put(s, '%');
            fmt--;
            break;
        default:
            /* Unknown conversion: show it as written. */
            sink_put(s, '%');
            sink_put(s, *fmt);
            break;
        }
    }
    va_end(ap);
}

int vprintf(const char *fmt, va_list ap)
{
    struct sink s = {.console = 1};

    uart_lock();
    format(&s, fmt, ap);
    uart_unlock();
    return (int)s.len;
}

int printf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct sink s = {.buf = buf, .size = size};

    format(&s, fmt, ap);
    if (size)
        buf[s.len < size ? s.len : size - 1] = '\0';
    return (int)s.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int puts(const char *s)
{
    size_t n = strlen(s);

    uart_lock();
    uart_write(s, n);
    uart_write("\n", 1);
    uart_unlock();
    return (int)n + 1;
}

int putchar(int c)
{
    char ch = (char)c;

    uart_lock();
    uart_write(&ch, 1);
    uart_unlock();
    return (unsigned char)ch;
}
