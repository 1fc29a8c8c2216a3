/*
 * The console's escape keys, as a pure state machine (unit-tested on split
 * reads): Ctrl-A x quits, Ctrl-A h prints help, Ctrl-A p pauses or resumes,
 * Ctrl-A Ctrl-A sends one Ctrl-A.
 * Any other key after Ctrl-A is dropped, as in QEMU's character mux.
 */
#ifndef PETREL_ESCAPE_H
#define PETREL_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ESCAPE_CHAR 0x01 /* Ctrl-A */

enum escape_action {
    ESCAPE_NONE,
    ESCAPE_QUIT,   /* Ctrl-A x */
    ESCAPE_HELP,   /* Ctrl-A h */
    ESCAPE_PAUSE,  /* Ctrl-A p: pause or resume the VM */
    ESCAPE_DETACH, /* Ctrl-A d: leave an attached console (petrel console) */
};

struct escape {
    bool armed; /* the last byte was a lone Ctrl-A (it may end one read and key the next) */
};

/*
 * Filters in[0, len): bytes meant for the guest are appended to out (room for
 * len bytes), *out_len says how many. Stops right after an escape action and
 * returns the number of input bytes consumed, so the caller can act and feed
 * the rest.
 */
size_t escape_feed(struct escape *e, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len,
                   enum escape_action *action);

/* The help text Ctrl-A h prints (CRLF line ends: the terminal is raw). */
extern const char escape_help[];

#endif
