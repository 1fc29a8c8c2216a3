/*
 * QEMU-compatible debug ports for test guests:
 * - debugcon (port 0xe9): each byte written is guest output; reads return 0xe9
 *   so a guest can tell the port exists.
 * - debug-exit (port 0xf4, enabled by --debug-exit): a write of V ends petrel
 *   with status V & 0xff. (QEMU's isa-debug-exit at the same port exits with
 *   (V << 1) | 1 instead.)
 */
#ifndef PETREL_DEBUGPORT_H
#define PETREL_DEBUGPORT_H

#include <stdint.h>

#include "petrel/bus.h"
#include "petrel/exit.h"
#include "petrel/hwdev.h"
#include "petrel/outbuf.h"

#define DEBUGCON_PORT  0xe9
#define DEBUGEXIT_PORT 0xf4
#define DEBUGEXIT_LEN  4

struct debugcon {
    struct device dev;
    struct outbuf *out;
    uint64_t dropped; /* bytes lost because out was full (under dev.lock) */
};

struct debugexit {
    struct device dev;
    struct exit_hook hook;
};

void debugcon_init(struct debugcon *d, struct outbuf *out);
void debugcon_destroy(struct debugcon *d);
void debugexit_init(struct debugexit *d, struct exit_hook hook);
void debugexit_destroy(struct debugexit *d);

/* In the machine table (machine.c): debugcon, and debug-exit with --debug-exit. */
extern const struct hwdev_ops debugcon_port;
extern const struct hwdev_ops debugexit_port;

#endif
