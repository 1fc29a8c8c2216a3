/*
 * The loop's side of console input: reads the user's terminal or pipe, handles
 * the escape keys, and feeds the UART's receive FIFO. When the FIFO is full the
 * rest waits here (and reading stops) until the guest drains it, so input is
 * never dropped. On a terminal, raw mode is set by console_in_start() and the
 * saved settings are put back by console_in_stop(), on every way out.
 * End of input does not end the VM.
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
    int fd;
    bool is_tty;
    bool pollable; /* epoll can watch fd (not a regular file or /dev/null) */
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
    void *ctx;
};

int console_in_init(struct console_in *c, struct event_base *base, int fd, struct uart8250 *uart,
                    struct outbuf *echo) MUST_CHECK;

/* Starts reading (raw mode on a terminal). */
int console_in_start(struct console_in *c) MUST_CHECK;

/* Stops reading and restores the terminal. Safe to call more than once. */
void console_in_stop(struct console_in *c);

void console_in_destroy(struct console_in *c);

#endif
