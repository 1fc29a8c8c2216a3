/*
 * The loop's side of console input: reads the attached fd (the user's terminal
 * or pipe, a pty, a console client), optionally handles the escape keys, and
 * feeds the console device (the sink: the UART's receive FIFO, or
 * virtio-console's receive buffers). What the device cannot take yet waits
 * here, up to CONSOLE_IN_PENDING bytes; reading goes on while there is room
 * (so the escape keys keep working while the guest does not read) and stops
 * when it is full, until the device calls console_in_wake(): input is never
 * dropped and the loop never waits. On a terminal with escapes, raw mode is
 * set on attach and the saved settings are put back on detach. End of input
 * does not end the VM.
 */
#ifndef PETREL_CONSOLE_IN_H
#define PETREL_CONSOLE_IN_H

#include <stdbool.h>
#include <stdint.h>
#include <termios.h>
#include <event2/event.h>

#include "petrel/escape.h"
#include "petrel/outbuf.h"
#include "petrel/util.h"

#define CONSOLE_IN_PENDING 4096

struct console_in {
    struct event_base *base;
    int fd;        /* attached fd, or -1 */
    bool pollable; /* epoll can watch fd (not a regular file or /dev/null) */
    bool escapes;  /* Ctrl-A keys are petrel's */
    bool raw;      /* raw mode is on; saved holds what to restore */
    struct termios saved;
    struct escape esc;
    bool eof;

    /* Input the device could not take yet (loop only). */
    uint8_t pending[CONSOLE_IN_PENDING];
    size_t pending_len;

    /* The device: takes up to len bytes, returns how many (on the loop). */
    size_t (*deliver)(void *sink, const uint8_t *buf, size_t len);
    void *sink;
    struct outbuf *echo; /* where the help text goes */
    int room_fd;         /* eventfd console_in_wake() writes */
    struct event *ev_read;
    struct event *ev_room;
    void (*on_action)(void *ctx, enum escape_action action);
    void (*on_eof)(void *ctx); /* the attached fd ended (a client left) */
    void *ctx;
};

int console_in_init(struct console_in *c, struct event_base *base, struct outbuf *echo) MUST_CHECK;

/* Where input goes (before attaching; without a sink input is read and dropped). */
void console_in_set_sink(struct console_in *c,
                         size_t (*deliver)(void *sink, const uint8_t *buf, size_t len), void *sink);

/*
 * The device's "room again" hook (any thread, any lock held: it only writes
 * an eventfd): waiting input is delivered from the loop.
 */
void console_in_wake(void *ctx);

/* Starts reading fd (raw mode when it is a terminal and escapes is set). */
int console_in_attach(struct console_in *c, int fd, bool escapes) MUST_CHECK;

/* Stops reading and restores the terminal (the fd is not closed). Idempotent. */
void console_in_detach(struct console_in *c);

void console_in_destroy(struct console_in *c);

#endif
