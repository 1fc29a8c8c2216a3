/*
 * Formatted output on the console (COM1). Conversions: %d %i %u %x %X %p %s
 * %c %%, with the flags '-' and '0', a width (or '*') and the length
 * modifiers hh, h, l, ll, z. No floating point: the kit has no SSE or x87.
 * Each console call holds the console lock (uart.h) throughout, so what two
 * CPUs print does not interleave within a call.
 */
#ifndef KIT_PRINTF_H
#define KIT_PRINTF_H

#include <stdarg.h>
#include <stddef.h>

#define KIT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* Console output; each returns the number of characters formatted. */
int printf(const char *fmt, ...) KIT_PRINTF(1, 2);
int vprintf(const char *fmt, va_list ap);

/* Formats into buf (always NUL-terminated when size > 0); returns the length
 * the whole output would have had, as C's snprintf does. */
int snprintf(char *buf, size_t size, const char *fmt, ...) KIT_PRINTF(3, 4);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* Writes s and a newline to the console, as C's puts does. */
int puts(const char *s);

int putchar(int c);

#endif
