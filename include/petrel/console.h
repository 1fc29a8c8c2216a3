/*
 * The loop's side of guest output: drains an outbuf into the attached file
 * descriptor (the terminal, a pipe, a file, a console client) without ever
 * blocking the loop. While an fd is attached and slow, the outbuf fills and
 * the devices feel back-pressure; while nothing is attached (a headless VM),
 * output is consumed at once and only the last CONSOLE_HISTORY bytes are kept,
 * to be replayed to the next client. An fd that fails is detached: stdout with
 * one warning (output is then discarded), a console client silently.
 *
 * At exit, console_out_flush() gives the reader until a deadline to take what
 * is still queued and drops the rest: a reader that stopped reading never
 * holds petrel up. Bytes the fd did not take (there, or while running in
 * lossy mode) are counted in dropped, for the one line petrel says at exit.
 */
#ifndef PETREL_CONSOLE_H
#define PETREL_CONSOLE_H

#include <stdbool.h>
#include <event2/event.h>

#include "petrel/outbuf.h"
#include "petrel/util.h"

#define CONSOLE_HISTORY (64 * 1024)
/* How long petrel waits at exit for its console readers to take what is queued. */
#define CONSOLE_EXIT_WAIT_MS 1000

struct console_out {
    struct outbuf buf;
    struct event_base *base;
    int fd;             /* attached fd, or -1 */
    int saved_flags;    /* fd's file status flags before petrel made it non-blocking */
    bool warn_on_error; /* say once that output is lost (stdout), else detach quietly */
    bool warned;
    bool lossy;       /* when the fd is full, drop output instead of slowing the guest */
    const char *what; /* for the warning ("standard output", a path) */
    /* Bytes the attached fd did not take: while lossy, and at exit (also in dropped). */
    uint64_t dropped, dropped_at_exit;
    struct event *ev_notify;
    struct event *ev_writable;
    /* Called on the loop when the attached fd failed and was detached. */
    void (*on_detach)(void *ctx);
    void *on_detach_ctx;

    uint8_t *hist; /* the last output, a ring */
    size_t hist_head, hist_len;
};

/* Sets up a buffer of cap bytes drained on base, with nothing attached. */
int console_out_init(struct console_out *c, struct event_base *base, size_t cap) MUST_CHECK;

/*
 * Attaches fd (made non-blocking until detached). With replay, the history is
 * written to it first (as much as it takes without blocking).
 */
int console_out_attach(struct console_out *c, int fd, const char *what, bool warn_on_error,
                       bool replay) MUST_CHECK;

/*
 * Lets the producers (vCPU threads) write the attached fd themselves while nothing
 * is queued (outbuf_set_direct()), until it is detached. For an output no console
 * client will attach to later (stdio, a file): bytes written so do not enter the
 * history, and an fd that fails is still detached by the loop (the producer queues
 * what the fd refused, and the loop's drain meets the error). Not for a lossy fd.
 */
void console_out_direct(struct console_out *c);

/* Detaches the fd (not closed: the caller owns it). */
void console_out_detach(struct console_out *c);

/*
 * At exit, with no producer left: writes what is still queued, waiting for
 * the fd while it is full but not past deadline_ns (now_ns()'s clock), then
 * drops the rest (counted). Returns the bytes dropped here.
 */
uint64_t console_out_flush(struct console_out *c, uint64_t deadline_ns);

void console_out_destroy(struct console_out *c);

#endif
