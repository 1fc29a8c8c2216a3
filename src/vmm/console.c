/* Draining guest output to an attached fd from the event loop, with a history. */
#include "petrel/console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONSOLE_CHUNK 4096

/* Remembers output for the next client (the oldest bytes fall out). */
static void console_out_remember(struct console_out *c, const uint8_t *p, size_t n)
{
    if (n >= CONSOLE_HISTORY) {
        p += n - CONSOLE_HISTORY;
        n = CONSOLE_HISTORY;
    }
    for (size_t i = 0; i < n; i++) {
        c->hist[(c->hist_head + c->hist_len) % CONSOLE_HISTORY] = p[i];
        if (c->hist_len < CONSOLE_HISTORY)
            c->hist_len++;
        else
            c->hist_head = (c->hist_head + 1) % CONSOLE_HISTORY;
    }
}

static void console_out_fail(struct console_out *c, int err)
{
    if (c->warn_on_error && !c->warned) {
        fprintf(stderr, "petrel: cannot write guest output to %s (%s): discarding it\n", c->what,
                strerror(err));
        c->warned = true;
    }
    console_out_detach(c);
    if (c->on_detach)
        c->on_detach(c->on_detach_ctx);
}

/* Writes until the buffer is empty or the fd would block. */
static void console_out_drain(struct console_out *c)
{
    uint8_t chunk[CONSOLE_CHUNK];

    for (;;) {
        size_t n = outbuf_peek(&c->buf, chunk, sizeof(chunk));
        if (!n)
            break;
        if (c->fd < 0) {
            console_out_remember(c, chunk, n);
            outbuf_consume(&c->buf, n);
            continue;
        }
        ssize_t w = write(c->fd, chunk, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN && c->lossy) {
                console_out_remember(c, chunk, n);
                outbuf_consume(&c->buf, n);
                c->dropped += n;
                continue;
            }
            if (errno == EAGAIN) {
                event_add(c->ev_writable, NULL);
                return;
            }
            console_out_fail(c, errno);
            continue;
        }
        console_out_remember(c, chunk, (size_t)w);
        outbuf_consume(&c->buf, (size_t)w);
    }
    if (c->ev_writable)
        event_del(c->ev_writable);
}

static void console_out_on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct console_out *c = arg;
    (void)fd, (void)what;

    outbuf_ack_notify(&c->buf);
    console_out_drain(c);
}

static void console_out_on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    console_out_drain(arg);
}

int console_out_init(struct console_out *c, struct event_base *base, size_t cap)
{
    int ret;

    memset(c, 0, sizeof(*c));
    c->base = base;
    c->fd = -1;
    c->hist = malloc(CONSOLE_HISTORY);
    if (!c->hist)
        return -ENOMEM;
    ret = outbuf_init(&c->buf, cap);
    if (ret)
        goto err_free_hist;
    c->ev_notify =
        event_new(base, c->buf.notify_fd, EV_READ | EV_PERSIST, console_out_on_notify, c);
    if (!c->ev_notify || event_add(c->ev_notify, NULL)) {
        ret = -ENOMEM;
        goto err_free_buf;
    }
    return 0;

err_free_buf:
    if (c->ev_notify)
        event_free(c->ev_notify);
    c->ev_notify = NULL;
    outbuf_destroy(&c->buf);
err_free_hist:
    free(c->hist);
    c->hist = NULL;
    return ret;
}

int console_out_attach(struct console_out *c, int fd, const char *what, bool warn_on_error,
                       bool replay)
{
    console_out_detach(c);
    c->ev_writable = event_new(c->base, fd, EV_WRITE, console_out_on_writable, c);
    if (!c->ev_writable)
        return -ENOMEM;
    c->fd = fd;
    c->what = what;
    c->warn_on_error = warn_on_error;
    /* Non-blocking so a slow reader never stalls the loop; put back on detach. */
    c->saved_flags = fcntl(fd, F_GETFL);
    if (c->saved_flags >= 0)
        fcntl(fd, F_SETFL, c->saved_flags | O_NONBLOCK);
    if (replay) {
        for (size_t done = 0; done < c->hist_len;) {
            size_t at = (c->hist_head + done) % CONSOLE_HISTORY;
            size_t n = c->hist_len - done;
            if (n > CONSOLE_HISTORY - at)
                n = CONSOLE_HISTORY - at;
            ssize_t w = write(fd, c->hist + at, n);
            if (w <= 0)
                break; /* a client that does not read misses the rest of the history */
            done += (size_t)w;
        }
    }
    console_out_drain(c);
    return 0;
}

void console_out_direct(struct console_out *c)
{
    /* Only an fd petrel made non-blocking: a producer must never wait in write(). */
    if (c->fd >= 0 && c->saved_flags >= 0 && !c->lossy)
        outbuf_set_direct(&c->buf, c->fd);
}

void console_out_detach(struct console_out *c)
{
    if (c->fd < 0)
        return;
    /* First: no producer writes the fd once it is back to blocking (or closed). */
    outbuf_set_direct(&c->buf, -1);
    if (c->saved_flags >= 0)
        fcntl(c->fd, F_SETFL, c->saved_flags);
    event_free(c->ev_writable);
    c->ev_writable = NULL;
    c->fd = -1;
    c->lossy = false;
}

uint64_t console_out_flush(struct console_out *c, uint64_t deadline_ns)
{
    uint8_t chunk[CONSOLE_CHUNK];
    uint64_t dropped = 0;

    for (;;) {
        size_t n = outbuf_peek(&c->buf, chunk, sizeof(chunk)), done = 0;
        if (!n)
            break;
        if (c->fd < 0) {
            /* Nothing attached, or the fd failed (said once): as while running. */
            outbuf_consume(&c->buf, n);
            continue;
        }
        int ret = write_until(c->fd, chunk, n, deadline_ns, &done);
        outbuf_consume(&c->buf, done);
        if (ret == -ETIMEDOUT) {
            /* No producer is left, so what is queued now is all there will be. */
            dropped = outbuf_len(&c->buf);
            outbuf_consume(&c->buf, dropped);
            break;
        }
        if (ret)
            console_out_fail(c, -ret);
    }
    c->dropped += dropped;
    c->dropped_at_exit += dropped;
    return dropped;
}

void console_out_destroy(struct console_out *c)
{
    if (!c->ev_notify)
        return;
    console_out_detach(c);
    event_free(c->ev_notify);
    c->ev_notify = NULL;
    outbuf_destroy(&c->buf);
    free(c->hist);
    c->hist = NULL;
}
