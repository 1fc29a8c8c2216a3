/* Draining guest output to a file descriptor from the event loop. */
#include "petrel/console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CONSOLE_CHUNK 4096

static void console_out_fail(struct console_out *c, int err)
{
    if (!c->broken)
        fprintf(stderr, "petrel: cannot write guest output to %s (%s): discarding it\n", c->what,
                strerror(err));
    c->broken = true;
}

/* Writes until the buffer is empty or the fd would block. */
static void console_out_drain(struct console_out *c)
{
    uint8_t chunk[CONSOLE_CHUNK];

    for (;;) {
        size_t n = outbuf_peek(&c->buf, chunk, sizeof(chunk));
        if (!n)
            break;
        if (c->broken) {
            outbuf_consume(&c->buf, n);
            continue;
        }
        ssize_t w = write(c->fd, chunk, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                event_add(c->ev_writable, NULL);
                return;
            }
            console_out_fail(c, errno);
            continue;
        }
        outbuf_consume(&c->buf, (size_t)w);
    }
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

int console_out_init(struct console_out *c, struct event_base *base, int fd, size_t cap,
                     const char *what)
{
    int ret;

    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->what = what;
    ret = outbuf_init(&c->buf, cap);
    if (ret)
        return ret;
    c->ev_notify =
        event_new(base, c->buf.notify_fd, EV_READ | EV_PERSIST, console_out_on_notify, c);
    c->ev_writable = event_new(base, fd, EV_WRITE, console_out_on_writable, c);
    if (!c->ev_notify || !c->ev_writable || event_add(c->ev_notify, NULL)) {
        ret = -ENOMEM;
        goto err_free_events;
    }
    /* Non-blocking so a slow reader never stalls the loop; put back at the end. */
    c->saved_flags = fcntl(fd, F_GETFL);
    if (c->saved_flags >= 0)
        fcntl(fd, F_SETFL, c->saved_flags | O_NONBLOCK);
    return 0;

err_free_events:
    if (c->ev_notify)
        event_free(c->ev_notify);
    if (c->ev_writable)
        event_free(c->ev_writable);
    outbuf_destroy(&c->buf);
    return ret;
}

void console_out_flush(struct console_out *c)
{
    uint8_t chunk[CONSOLE_CHUNK];

    for (;;) {
        size_t n = outbuf_peek(&c->buf, chunk, sizeof(chunk));
        if (!n)
            return;
        if (!c->broken) {
            int ret = write_all(c->fd, chunk, n);
            if (ret)
                console_out_fail(c, -ret);
        }
        outbuf_consume(&c->buf, n);
    }
}

void console_out_destroy(struct console_out *c)
{
    if (!c->ev_notify)
        return;
    event_free(c->ev_notify);
    event_free(c->ev_writable);
    if (c->saved_flags >= 0)
        fcntl(c->fd, F_SETFL, c->saved_flags);
    outbuf_destroy(&c->buf);
    c->ev_notify = NULL;
}
