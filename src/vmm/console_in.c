/* Console input: terminal raw mode, escape keys, and feeding the console device. */
#include "petrel/console_in.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * Whether epoll can watch fd. Regular files and /dev/null cannot be (EPERM):
 * they are always readable, so for them reading is driven by event_active().
 */
static bool console_in_pollable(int fd)
{
    struct epoll_event ev = {.events = EPOLLIN};
    int ep = epoll_create1(EPOLL_CLOEXEC);
    bool ok = true;

    if (ep < 0)
        return true;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 && errno == EPERM)
        ok = false;
    close(ep);
    return ok;
}

/* Turns reading on or off. */
static void console_in_reading(struct console_in *c, bool on)
{
    if (!c->ev_read)
        return;
    if (!on || c->eof)
        event_del(c->ev_read);
    else if (c->pollable)
        event_add(c->ev_read, NULL);
    else
        event_active(c->ev_read, EV_READ, 0);
}

/* Hands pending input to the device; reads on while there is room for more. */
static void console_in_push(struct console_in *c)
{
    size_t n = c->deliver ? c->deliver(c->sink, c->pending, c->pending_len) : c->pending_len;

    memmove(c->pending, c->pending + n, c->pending_len - n);
    c->pending_len -= n;
    console_in_reading(c, c->pending_len < CONSOLE_IN_PENDING);
}

static void console_in_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct console_in *c = arg;
    uint8_t buf[CONSOLE_IN_PENDING];
    (void)fd, (void)what;

    /* Reading is on only while pending has room; a read takes no more than that. */
    ssize_t n = read(c->fd, buf, sizeof(buf) - c->pending_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* End of input (or a hung-up terminal): the guest keeps running. */
        c->eof = true;
        event_del(c->ev_read);
        if (c->on_eof)
            c->on_eof(c->ctx);
        return;
    }
    size_t off = 0;
    while (off < (size_t)n) {
        size_t out_len;
        enum escape_action action;
        if (!c->escapes) {
            memcpy(c->pending + c->pending_len, buf, (size_t)n);
            c->pending_len += (size_t)n;
            break;
        }
        off += escape_feed(&c->esc, buf + off, (size_t)n - off, c->pending + c->pending_len,
                           &out_len, &action);
        c->pending_len += out_len;
        if (action == ESCAPE_HELP && c->echo)
            outbuf_put(c->echo, escape_help, strlen(escape_help));
        else if (action != ESCAPE_NONE && c->on_action)
            c->on_action(c->ctx, action);
    }
    console_in_push(c);
}

static void console_in_on_room(evutil_socket_t fd, short what, void *arg)
{
    struct console_in *c = arg;
    uint64_t v;
    (void)what;

    ssize_t n = read(fd, &v, sizeof(v));
    (void)n; /* EAGAIN: already consumed; pushing again is harmless */
    if (c->pending_len)
        console_in_push(c);
}

/* A device's room hook (a vCPU thread under the UART's lock, the loop under virtio's). */
void console_in_wake(void *ctx)
{
    struct console_in *c = ctx;
    uint64_t one = 1;

    ssize_t n = write(c->room_fd, &one, sizeof(one));
    (void)n;
}

int console_in_init(struct console_in *c, struct event_base *base, struct outbuf *echo)
{
    memset(c, 0, sizeof(*c));
    c->base = base;
    c->fd = -1;
    c->echo = echo;
    c->room_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->room_fd < 0)
        return -errno;
    c->ev_room = event_new(base, c->room_fd, EV_READ | EV_PERSIST, console_in_on_room, c);
    if (!c->ev_room || event_add(c->ev_room, NULL)) {
        console_in_destroy(c);
        return -ENOMEM;
    }
    return 0;
}

void console_in_set_sink(struct console_in *c,
                         size_t (*deliver)(void *sink, const uint8_t *buf, size_t len), void *sink)
{
    c->deliver = deliver;
    c->sink = sink;
}

/*
 * Puts a terminal in raw mode, as a serial line is: every key (Ctrl-C too)
 * goes to the guest, and output is not post-processed (the guest's own tty
 * layer already turns NL into CR NL; adding another would send CR CR NL).
 */
static int console_in_make_raw(struct console_in *c)
{
    struct termios t;

    if (tcgetattr(c->fd, &c->saved) < 0)
        return -errno;
    t = c->saved;
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(c->fd, TCSANOW, &t) < 0)
        return -errno;
    c->raw = true;
    return 0;
}

int console_in_attach(struct console_in *c, int fd, bool escapes)
{
    console_in_detach(c);
    c->fd = fd;
    c->escapes = escapes;
    c->eof = false;
    c->esc.armed = false;
    c->pollable = console_in_pollable(fd);
    if (c->pollable)
        c->ev_read = event_new(c->base, fd, EV_READ | EV_PERSIST, console_in_on_read, c);
    else
        c->ev_read = event_new(c->base, -1, 0, console_in_on_read, c);
    if (!c->ev_read) {
        c->fd = -1;
        return -ENOMEM;
    }
    if (escapes && isatty(fd)) {
        int ret = console_in_make_raw(c);
        if (ret) {
            console_in_detach(c);
            return ret;
        }
    }
    console_in_reading(c, c->pending_len < CONSOLE_IN_PENDING);
    return 0;
}

void console_in_detach(struct console_in *c)
{
    if (c->ev_read) {
        event_free(c->ev_read);
        c->ev_read = NULL;
    }
    if (c->raw) {
        tcsetattr(c->fd, TCSANOW, &c->saved);
        c->raw = false;
    }
    c->fd = -1;
}

void console_in_destroy(struct console_in *c)
{
    console_in_detach(c);
    if (c->ev_room)
        event_free(c->ev_room);
    if (c->room_fd > 0)
        close(c->room_fd);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}
