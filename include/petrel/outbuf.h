/*
 * A bounded byte queue from device threads to the event loop.
 *
 * Devices (the UART, debugcon) put guest output here from vCPU threads; the
 * loop drains it to the console's file descriptor. When it is full, devices see
 * no space (the UART stops reporting its transmitter empty), so a slow reader
 * slows the guest instead of losing bytes or blocking a vCPU in write().
 */
#ifndef PETREL_OUTBUF_H
#define PETREL_OUTBUF_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/util.h"

struct outbuf {
    pthread_mutex_t lock; /* guards data, head, len */
    uint8_t *data;
    size_t cap, head, len;
    /*
     * Written (eventfd) when len goes from 0 to non-zero, so the loop wakes
     * once per batch; the loop drains until empty before waiting again.
     */
    int notify_fd;
    /*
     * Where outbuf_put() may write straight away, on the producer's thread, while
     * nothing is queued (-1: never; outbuf_set_direct()). Guarded by lock, and
     * written holding it, so bytes keep their order with the loop's drain.
     */
    int direct_fd;
    /* Called on the loop after bytes were consumed (space appeared). */
    void (*on_space)(void *ctx);
    void *on_space_ctx;
};

int outbuf_init(struct outbuf *ob, size_t cap) MUST_CHECK;
void outbuf_destroy(struct outbuf *ob);

/*
 * Appends up to len bytes; returns how many were taken (any thread). With a direct
 * fd and nothing queued, first writes to it right here (it must be non-blocking);
 * what it does not take (a full pipe, an error) is queued for the loop as usual,
 * whose drain then waits for the fd or reports its error.
 */
size_t outbuf_put(struct outbuf *ob, const void *buf, size_t len);

/*
 * Lets outbuf_put() write to fd (non-blocking, never blocked on) while nothing is
 * queued, or stops it (fd -1). Why: a guest that prints a byte at a time (the UART)
 * otherwise costs a loop wake-up, two thread switches and the loop's syscalls per
 * byte; written by the vCPU, one write() (docs/architecture.md, start-up).
 */
void outbuf_set_direct(struct outbuf *ob, int fd);

/* Free space right now (any thread). */
size_t outbuf_space(struct outbuf *ob);

/* Bytes queued right now (any thread). */
size_t outbuf_len(struct outbuf *ob);

/*
 * Copies up to len queued bytes into buf without removing them; the consumer
 * calls outbuf_consume() with what it actually wrote. Returns the count.
 */
size_t outbuf_peek(struct outbuf *ob, void *buf, size_t len);

/* Drops n bytes from the front, then calls on_space. Consumer (loop) only. */
void outbuf_consume(struct outbuf *ob, size_t n);

/* Clears the eventfd's counter (the loop, on wake-up). */
void outbuf_ack_notify(struct outbuf *ob);

#endif
