/*
 * Options on the kernel command line, parsed the way Linux splits it
 * (lib/cmdline.c, next_arg): words separated by spaces, each `name` or
 * `name=value`; double quotes group spaces into a word and are removed.
 * Kit programs name their options `<program>.<option>=...`.
 */
#ifndef KIT_CMDLINE_H
#define KIT_CMDLINE_H

#include <stddef.h>

/*
 * Copies the value of the last `name=value` into buf (size bytes, always
 * NUL-terminated, truncated if needed) and returns its full length; a bare
 * `name` has the value "". Returns -1 if name is not on the command line.
 */
int kit_cmdline_get(const char *name, char *buf, size_t size);

/*
 * Reads name's value as an unsigned number in base (0: C prefixes, 0x for
 * hex) into *out. Returns 0, -1 if name is absent, -2 if the value is not a
 * number (*out untouched in both cases).
 */
int kit_cmdline_uint(const char *name, int base, unsigned long *out);

#endif
