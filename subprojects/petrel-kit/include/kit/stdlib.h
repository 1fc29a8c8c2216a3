/* The one <stdlib.h> function the kit needs: reading numbers from text. */
#ifndef KIT_STDLIB_H
#define KIT_STDLIB_H

/*
 * As C's strtoul: skips leading spaces, reads an optional '+', then digits in
 * base (2-36; 0 means decimal, "0x" hex, "0" octal; base 16 also takes "0x").
 * *end (if end is not NULL) is set past the last digit, or to s if there was
 * none. Saturates at ULONG_MAX on overflow.
 */
unsigned long strtoul(const char *s, char **end, int base);

#endif
