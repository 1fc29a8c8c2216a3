/*
 * The debug console: every byte written to port 0xe9 is output (QEMU's
 * isa-debugcon, petrel's debugcon). One exit per byte, no status to poll.
 */
#ifndef KIT_DEBUGCON_H
#define KIT_DEBUGCON_H

#include <stddef.h>

#define DEBUGCON_PORT 0xe9

/* Writes len bytes as they are (no "\r" added). */
void debugcon_write(const char *s, size_t len);

/* Writes a NUL-terminated string. */
void debugcon_puts(const char *s);

/* Whether the port is there: reads of it return 0xe9 under QEMU and petrel. */
int debugcon_present(void);

#endif
