/*
 * The CLI's side of GET /events: one request over a plain unix socket whose answer is
 * a chunked body of JSON lines that stays open (petrel events, petrel wait). The
 * chunked decoding is a small state machine fed whatever arrives (api_chunked_decode()),
 * so the unit tests and the fuzz target drive it without a socket.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "petrel/api.h"

enum {
    CH_SIZE,         /* the first hex digit of a chunk's size */
    CH_SIZE_MORE,    /* more digits, an extension, or the line's end */
    CH_EXT,          /* a chunk extension (";name=value"), skipped to the line's end */
    CH_SIZE_LF,      /* '\n' after the size line's '\r' */
    CH_DATA,         /* the chunk's bytes */
    CH_DATA_CR,      /* the CRLF after them */
    CH_DATA_LF,      /* ... its '\n' */
    CH_TRAILER,      /* the start of a trailer line, or the empty line that ends it all */
    CH_TRAILER_LINE, /* a trailer field, skipped */
    CH_TRAILER_LF,   /* '\n' of the last empty line */
    CH_DONE,
};

/* A hex digit's value, or -1. */
static int api_hex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

ssize_t api_chunked_decode(struct api_chunked *c, char *buf, size_t len)
{
    size_t out = 0;

    for (size_t i = 0; i < len;) {
        char ch = buf[i];
        int h;
        switch (c->state) {
        case CH_SIZE:
            if ((h = api_hex(ch)) < 0)
                return -EPROTO;
            c->left = (uint64_t)h;
            c->digits = 1;
            c->state = CH_SIZE_MORE;
            i++;
            break;
        case CH_SIZE_MORE:
            if ((h = api_hex(ch)) >= 0) {
                if (++c->digits > 15) /* 2^60: no chunk is that long, and no overflow */
                    return -EPROTO;
                c->left = c->left * 16 + (uint64_t)h;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = CH_EXT;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (ch == '\n') {
                c->state = c->left ? CH_DATA : CH_TRAILER;
            } else {
                return -EPROTO;
            }
            i++;
            break;
        case CH_EXT:
            if (ch == '\n')
                c->state = c->left ? CH_DATA : CH_TRAILER;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return -EPROTO;
            c->state = c->left ? CH_DATA : CH_TRAILER;
            i++;
            break;
        case CH_DATA: {
            size_t n = len - i;
            if (n > c->left)
                n = (size_t)c->left;
            memmove(buf + out, buf + i, n);
            out += n;
            i += n;
            c->left -= n;
            if (!c->left)
                c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (ch == '\r')
                c->state = CH_DATA_LF;
            else if (ch == '\n')
                c->state = CH_SIZE;
            else
                return -EPROTO;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return -EPROTO;
            c->state = CH_SIZE;
            i++;
            break;
        case CH_TRAILER:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (ch == '\n')
                c->state = CH_DONE;
            else
                c->state = CH_TRAILER_LINE;
            i++;
            break;
        case CH_TRAILER_LINE:
            if (ch == '\n')
                c->state = CH_TRAILER;
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                return -EPROTO;
            c->state = CH_DONE;
            i++;
            break;
        default: /* CH_DONE: nothing may follow the last chunk on this connection */
            return -EPROTO;
        }
    }
    return (ssize_t)out;
}

bool api_chunked_done(const struct api_chunked *c)
{
    return c->state == CH_DONE;
}

static long long api_stream_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what the socket has, waiting until deadline_ms (-1: forever). >0, 0 at EOF, -errno. */
static ssize_t api_stream_read(int fd, char *buf, size_t len, long long deadline_ms)
{
    for (;;) {
        int wait = -1;
        if (deadline_ms >= 0) {
            long long left = deadline_ms - api_stream_now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            wait = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, wait);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0)
            continue;
        ssize_t r = read(fd, buf, len);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return r < 0 ? -errno : r;
    }
}

/*
 * Checks the answer's head (head_len bytes, up to the empty line): status 200 and a
 * chunked body. 0, or -EPROTO with the reason in eb (the status of another answer).
 */
static int api_stream_head(const char *head, size_t head_len, struct errbuf *eb)
{
    if (head_len < 12 || memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ' ||
        !isdigit((unsigned char)head[9]) || !isdigit((unsigned char)head[10]) ||
        !isdigit((unsigned char)head[11]))
        return err_set(eb, -EPROTO, "the answer is not HTTP");
    int status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    if (status != 200)
        return err_set(eb, -EPROTO, "the VM answered HTTP %d", status);
    static const char te[] = "\ntransfer-encoding:";
    for (const char *p = head; p + sizeof(te) - 1 <= head + head_len; p++) {
        if (strncasecmp(p, te, sizeof(te) - 1) != 0)
            continue;
        const char *v = p + sizeof(te) - 1;
        while (v < head + head_len && (*v == ' ' || *v == '\t'))
            v++;
        if (head + head_len - v >= 7 && !strncasecmp(v, "chunked", 7))
            return 0;
    }
    return err_set(eb, -EPROTO, "the answer is not a stream (no chunked body)");
}

int api_stream_open(struct api_stream *s, const char *sock_path, const char *path, int timeout_ms,
                    struct errbuf *eb)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    long long deadline = api_stream_now_ms() + timeout_ms;
    char req[256];
    int ret;

    memset(s, 0, sizeof(*s));
    if (strlen(sock_path) >= sizeof(addr.sun_path))
        return err_set(eb, -ENAMETOOLONG, "socket path %s is too long", sock_path);
    memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return err_set(eb, -errno, "socket: %s", strerror(errno));
    if (connect(s->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        ret = err_set(eb, -errno, "%s", strerror(errno));
        goto err_close;
    }
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    if (n < 0 || (size_t)n >= sizeof(req)) {
        ret = err_set(eb, -ENAMETOOLONG, "the path %s is too long", path);
        goto err_close;
    }
    ret = write_all(s->fd, req, (size_t)n);
    if (ret) {
        err_set(eb, ret, "sending the request: %s", strerror(-ret));
        goto err_close;
    }
    /* The head, then whatever of the body came with it. */
    char *end;
    while (!(end = memmem(s->buf, s->len, "\r\n\r\n", 4))) {
        if (s->len == sizeof(s->buf)) {
            ret = err_set(eb, -EPROTO, "the answer's head is over %zu bytes", sizeof(s->buf));
            goto err_close;
        }
        ssize_t r = api_stream_read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, deadline);
        if (r == -ETIMEDOUT) {
            ret = err_set(eb, -ETIMEDOUT, "no answer within %d ms", timeout_ms);
            goto err_close;
        }
        if (r <= 0) {
            ret = err_set(eb, r ? (int)r : -EPROTO, "the VM closed the connection");
            goto err_close;
        }
        s->len += (size_t)r;
    }
    size_t head = (size_t)(end - s->buf) + 4;
    ret = api_stream_head(s->buf, head, eb);
    if (ret)
        goto err_close;
    memmove(s->buf, s->buf + head, s->len - head);
    s->len -= head;
    s->raw = s->len; /* not decoded yet */
    s->len = 0;
    return 0;

err_close:
    close(s->fd);
    s->fd = -1;
    return ret;
}

int api_stream_line(struct api_stream *s, char *line, size_t size, long long deadline_ms)
{
    for (;;) {
        /* Decode what came in (raw bytes sit after the decoded ones). */
        if (s->raw) {
            ssize_t n = api_chunked_decode(&s->ch, s->buf + s->len, s->raw);
            if (n < 0)
                return (int)n;
            s->len += (size_t)n;
            s->raw = 0;
        }
        char *nl = memchr(s->buf, '\n', s->len);
        if (nl) {
            size_t n = (size_t)(nl - s->buf);
            if (n >= size)
                return -EMSGSIZE;
            memcpy(line, s->buf, n);
            line[n] = '\0';
            s->len -= n + 1;
            memmove(s->buf, nl + 1, s->len);
            return 1;
        }
        if (api_chunked_done(&s->ch))
            return 0;
        if (s->len == sizeof(s->buf))
            return -EMSGSIZE;
        ssize_t r = api_stream_read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, deadline_ms);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return 0; /* petrel exited without ending the stream: it ended all the same */
        s->raw = (size_t)r;
    }
}

void api_stream_close(struct api_stream *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}
