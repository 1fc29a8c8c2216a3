/*
 * The loop's side of guest output: drains an outbuf into a file descriptor
 * (the terminal, a pipe, a file) without ever blocking the loop. When the fd
 * cannot take more, the outbuf fills and the devices feel back-pressure. When
 * the fd is gone (EPIPE), output is discarded with one warning.
 */
#ifndef PETREL_CONSOLE_H
#define PETREL_CONSOLE_H

#include <stdbool.h>
#include <event2/event.h>

#include "petrel/outbuf.h"
#include "petrel/util.h"

struct console_out {
    struct outbuf buf;
    int fd;
    int saved_flags;  /* fd's file status flags before petrel made it non-blocking */
    bool broken;      /* the fd failed: discard */
    const char *what; /* for the warning ("standard output", a path) */
    struct event *ev_notify;
    struct event *ev_writable;
};

/* Sets up draining of a new buffer of cap bytes into fd on base. */
int console_out_init(struct console_out *c, struct event_base *base, int fd, size_t cap,
                     const char *what) MUST_CHECK;

/* Writes whatever is still queued, waiting for fd if needed (at exit). */
void console_out_flush(struct console_out *c);

void console_out_destroy(struct console_out *c);

#endif
