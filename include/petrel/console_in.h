/*
 * The loop's side of console input: reads the attached fd (the user's terminal
 * or pipe, a pty, a console client), optionally handles the escape keys, and
 * feeds the UART's receive FIFO. When the FIFO is full the rest waits here
 * (and reading stops) until the guest drains it, so input is never dropped.
 * On a terminal with escapes, raw mode is set on attach and the saved
 * settings are put back on detach. End of input does not end the VM.
 */
#ifndef PETREL_CONSOLE_IN_H
#define PETREL_CONSOLE_IN_H

#include <stdbool.h>
#include <stdint.h>
#include <termios.h>
#include <event2/event.h>

#include "petrel/escape.h"
#include "petrel/outbuf.h"
#include "petrel/uart8250.h"
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

    /* Input the UART could not take yet (loop only). */
    uint8_t pending[CONSOLE_IN_PENDING];
    size_t pending_len;

    struct uart8250 *uart;
    struct outbuf *echo; /* where the help text goes */
    int room_fd;         /* eventfd the UART's on_rx_room writes */
    struct event *ev_read;
    struct event *ev_room;
    void (*on_action)(void *ctx, enum escape_action action);
    void (*on_eof)(void *ctx); /* the attached fd ended (a client left) */
    void *ctx;
};

int console_in_init(struct console_in *c, struct event_base *base, struct uart8250 *uart,
                    struct outbuf *echo) MUST_CHECK;

/* Starts reading fd (raw mode when it is a terminal and escapes is set). */
int console_in_attach(struct console_in *c, int fd, bool escapes) MUST_CHECK;

/* Stops reading and restores the terminal (the fd is not closed). Idempotent. */
void console_in_detach(struct console_in *c);

void console_in_destroy(struct console_in *c);

#endif
