/*
 * petrel's HTTP/1.1 server for the API socket (api_http.h says what it does and its
 * limits). Why not evhttp: per request it allocated and freed the request, its header
 * lists and buffers, parsed with sscanf and formatted with vfprintf, and made twice the
 * system calls; on the single CPU of a nested guest that was most of a pause's round
 * trip (docs/architecture.md, "The API's own HTTP server").
 *
 * A connection reads into its fixed buffer once per readiness, finds the head's end
 * where the last search stopped, parses the head in place once it is whole, waits for
 * the body (Content-Length) in the same buffer, then hands the request to the handler.
 * It serves one request at a time: the next one (pipelined, already in the buffer or
 * not) is parsed only once this one's reply has been written whole, so replies leave in
 * order, and a client that does not read holds at most one reply in petrel's memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>

#include "petrel/api_http.h"

struct api_conn {
    struct api_http *h;
    struct api_conn *prev, *next;
    int fd; /* -1 once closed; a connection whose reply is still owed lives on until it comes */
    struct event rd, wr, timer;
    bool rd_on, wr_on, timer_on;
    bool busy;        /* req is with the handler, not answered yet */
    bool stream;      /* the connection carries a stream (no more requests) */
    bool chunked;     /* ... in chunks (HTTP/1.1) */
    bool close_after; /* close once the reply has left */
    bool rd_eof;      /* the client will send nothing more */
    bool in_process;  /* api_conn_process() is on the stack: do not free */
    bool doomed;      /* closed while in_process: freed when it returns */
    bool continued;   /* 100 Continue sent for the request being read */
    struct api_req req;
    /* The request being read: its head once whole (head_len), its body to drop (skip). */
    size_t scan;
    size_t head_len;
    struct api_http_head head;
    uint64_t skip;
    bool dropping;  /* its body is over API_HTTP_BODY_KEEP: read and dropped */
    size_t req_len; /* the request's bytes at in_start, consumed when it is answered */
    /* Run once the reply has left (the request's after()). */
    void (*after)(void *arg);
    void *after_arg;
    api_http_close_fn *close_fn;
    void *close_arg;
    /* Bytes the socket has not taken yet: out[out_off, out_len). */
    char *out;
    size_t out_off, out_len, out_cap;
    size_t in_start, in_len;
    char in[API_HTTP_HEAD_MAX + API_HTTP_BODY_KEEP];
};

static void api_conn_process(struct api_conn *c);

/* The reason phrase of every status petrel sends. */
static const char *api_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* Appends a string (no NUL) at p. */
static char *api_put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* Appends a decimal number at p. */
static char *api_put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* ---- parsing ---- */

ssize_t api_http_head_end(const char *buf, size_t len, size_t *scan)
{
    size_t i = *scan;

    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl)
            break;
        size_t at = (size_t)(nl - buf);
        /* The '\n' of an empty line: right after another '\n', or after "\n\r". */
        if (at == 0 || buf[at - 1] == '\n' ||
            (buf[at - 1] == '\r' && (at == 1 || buf[at - 2] == '\n')))
            return at + 1 <= API_HTTP_HEAD_MAX ? (ssize_t)(at + 1) : -EMSGSIZE;
        i = at + 1;
    }
    /* Nothing before len ends the head: the next search starts there (it looks back). */
    *scan = len;
    return len >= API_HTTP_HEAD_MAX ? -EMSGSIZE : 0;
}

/* tchar of RFC 9110 5.6.2. */
static bool api_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static enum api_method api_method_of(const char *s, size_t n)
{
    static const struct {
        const char *name;
        enum api_method m;
    } methods[] = {
        {"GET", API_M_GET},     {"HEAD", API_M_HEAD},       {"POST", API_M_POST},
        {"PUT", API_M_PUT},     {"DELETE", API_M_DELETE},   {"OPTIONS", API_M_OPTIONS},
        {"TRACE", API_M_TRACE}, {"CONNECT", API_M_CONNECT}, {"PATCH", API_M_PATCH},
    };

    for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
        if (strlen(methods[i].name) == n && !memcmp(methods[i].name, s, n))
            return methods[i].m;
    return API_M_UNKNOWN;
}

/* Whether the comma-separated list v (n bytes) holds token (case-insensitive). */
static bool api_list_has(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);

    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && !strncasecmp(v + s, token, tl))
            return true;
    }
    return false;
}

/* One header field (name n bytes, value v bytes, both trimmed) into h. 0 or -EINVAL. */
static int api_header(struct api_http_head *h, const char *name, size_t nl, const char *v,
                      size_t vl, bool *keep_alive)
{
#define IS(s) (nl == sizeof(s) - 1 && !strncasecmp(name, s, nl))
    if (IS("Content-Length")) {
        uint64_t x = 0;
        if (!vl || vl > 19)
            return -EINVAL; /* 19 digits: no overflow; a longer one is no length petrel takes */
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -EINVAL;
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        if (h->has_length && h->length != x)
            return -EINVAL; /* two different lengths: RFC 9112 6.3 */
        h->has_length = true;
        h->length = x;
    } else if (IS("Transfer-Encoding")) {
        h->has_te = true;
    } else if (IS("Connection")) {
        if (api_list_has(v, vl, "close"))
            h->close = true;
        if (api_list_has(v, vl, "keep-alive"))
            *keep_alive = true;
    } else if (IS("Expect")) {
        if (vl == 12 && !strncasecmp(v, "100-continue", 12))
            h->expect = h->expect ? h->expect : 1;
        else
            h->expect = -1;
    }
    return 0;
#undef IS
}

int api_http_parse_head(char *buf, size_t len, struct api_http_head *h)
{
    bool keep_alive = false;

    memset(h, 0, sizeof(*h));
    /* The request line: METHOD SP TARGET SP HTTP/1.x */
    char *end = memchr(buf, '\n', len);
    if (!end)
        return -EINVAL;
    char *line_end = end > buf && end[-1] == '\r' ? end - 1 : end;
    char *sp1 = memchr(buf, ' ', (size_t)(line_end - buf));
    if (!sp1 || sp1 == buf)
        return -EINVAL;
    for (char *p = buf; p < sp1; p++)
        if (!api_tchar((unsigned char)*p))
            return -EINVAL;
    h->method = api_method_of(buf, (size_t)(sp1 - buf));
    char *target = sp1 + 1;
    char *sp2 = memchr(target, ' ', (size_t)(line_end - target));
    if (!sp2 || sp2 == target)
        return -EINVAL;
    for (char *p = target; p < sp2; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return -EINVAL;
    char *ver = sp2 + 1;
    if (line_end - ver != 8 || memcmp(ver, "HTTP/1.", 7) || (ver[7] != '0' && ver[7] != '1'))
        return -EINVAL;
    h->minor = (unsigned)(ver[7] - '0');
    *sp2 = '\0';
    h->target = target;
    h->target_len = (size_t)(sp2 - target);

    /* Header fields, up to the empty line. */
    char *p = end + 1;
    for (;;) {
        size_t left = len - (size_t)(p - buf);
        char *nl = memchr(p, '\n', left);
        if (!nl)
            return -EINVAL;
        char *le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (le == p)
            break; /* the empty line */
        if (*p == ' ' || *p == '\t')
            return -EINVAL; /* obsolete line folding: RFC 9112 5.2 lets a server refuse it */
        char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return -EINVAL;
        for (char *q = p; q < colon; q++)
            if (!api_tchar((unsigned char)*q))
                return -EINVAL; /* no space before the colon either: RFC 9112 5.1 */
        char *v = colon + 1, *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (char *q = v; q < ve; q++)
            if (((unsigned char)*q < ' ' && *q != '\t') || *q == 0x7f)
                return -EINVAL;
        if (api_header(h, p, (size_t)(colon - p), v, (size_t)(ve - v), &keep_alive))
            return -EINVAL;
        p = nl + 1;
    }
    if (h->minor == 0 && !keep_alive)
        h->close = true;
    return 0;
}

/* ---- output ---- */

static bool api_conn_out_pending(const struct api_conn *c)
{
    return c->out_off < c->out_len;
}

static void api_conn_close(struct api_conn *c);

/* Queues the bytes of iov from byte skip on. 0, or -ENOBUFS past API_HTTP_OUT_MAX. */
static int api_conn_queue(struct api_conn *c, const struct iovec *iov, int n, size_t skip)
{
    size_t need = 0;

    for (int i = 0; i < n; i++)
        need += iov[i].iov_len;
    need -= skip;
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + need > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + need)
            cap *= 2;
        if (cap > API_HTTP_OUT_MAX)
            return -ENOBUFS;
        if (cap > c->out_cap) {
            char *o = realloc(c->out, cap);
            if (!o)
                return -ENOBUFS;
            c->out = o;
            c->out_cap = cap;
        }
    }
    for (int i = 0; i < n; i++) {
        size_t l = iov[i].iov_len;
        const char *b = iov[i].iov_base;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(c->out + c->out_len, b + skip, l - skip);
        c->out_len += l - skip;
        skip = 0;
    }
    return 0;
}

/*
 * Sends iov now (one sendmsg) if nothing waits before it, and queues what the socket did
 * not take. A connection that is gone, or whose client holds too much unread, is closed:
 * -EPIPE.
 */
static int api_conn_send(struct api_conn *c, const struct iovec *iov, int n)
{
    size_t done = 0;

    if (c->fd < 0)
        return -EPIPE;
    if (!api_conn_out_pending(c)) {
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            api_conn_close(c);
            return -EPIPE;
        }
        done = w > 0 ? (size_t)w : 0;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (done < total && api_conn_queue(c, iov, n, done)) {
        api_conn_close(c);
        return -EPIPE;
    }
    return 0;
}

/* Writes what is queued until the socket takes no more, without waiting. 0 or -errno. */
static int api_conn_flush(struct api_conn *c)
{
    while (c->fd >= 0 && api_conn_out_pending(c)) {
        ssize_t w =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        c->out_off += (size_t)w;
    }
    return 0;
}

/* ---- connection life ---- */

/* Watches for what the connection waits on: room to read, the socket taking output, a deadline. */
static void api_conn_watch(struct api_conn *c)
{
    bool room = c->in_len < sizeof(c->in) || (c->in_start && !c->busy);
    bool want_rd = c->fd >= 0 && !c->rd_eof && room;
    bool want_wr = c->fd >= 0 && api_conn_out_pending(c);
    bool want_timer =
        c->fd >= 0 && !c->stream && ((!c->busy && c->in_len > c->in_start) || want_wr);

    if (want_rd != c->rd_on) {
        if (want_rd)
            event_add(&c->rd, NULL);
        else
            event_del(&c->rd);
        c->rd_on = want_rd;
    }
    if (want_wr != c->wr_on) {
        if (want_wr)
            event_add(&c->wr, NULL);
        else
            event_del(&c->wr);
        c->wr_on = want_wr;
    }
    if (want_timer != c->timer_on) {
        struct timeval tv = {.tv_sec = c->h->timeout_ms / 1000,
                             .tv_usec = (c->h->timeout_ms % 1000) * 1000};
        if (want_timer)
            evtimer_add(&c->timer, &tv);
        else
            evtimer_del(&c->timer);
        c->timer_on = want_timer;
    }
}

static void api_conn_run_after(struct api_conn *c)
{
    void (*fn)(void *) = c->after;

    c->after = NULL;
    if (fn)
        fn(c->after_arg);
}

static void api_conn_free(struct api_conn *c)
{
    api_conn_run_after(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->h->nr_conns--;
    free(c->out);
    free(c);
}

/*
 * Closes the socket. The connection is freed now unless a reply is still owed (freed
 * when it comes) or api_conn_process() is on the stack (freed when it returns).
 */
static void api_conn_close(struct api_conn *c)
{
    if (c->fd >= 0) {
        event_del(&c->rd);
        event_del(&c->wr);
        evtimer_del(&c->timer);
        c->rd_on = c->wr_on = c->timer_on = false;
        close(c->fd);
        c->fd = -1;
        api_http_close_fn *fn = c->close_fn;
        c->close_fn = NULL;
        if (fn)
            fn(c, c->close_arg);
    }
    if (c->busy)
        return;
    if (c->in_process)
        c->doomed = true;
    else
        api_conn_free(c);
}

/* The request read so far is consumed: the next one starts after it. */
static void api_conn_consume(struct api_conn *c)
{
    c->in_start += c->req_len;
    if (c->in_start >= c->in_len)
        c->in_start = c->in_len = 0;
    c->req_len = 0;
    c->head_len = 0;
    c->scan = 0;
    c->dropping = false;
    c->continued = false;
}

/* Formats a reply's head into buf (at least 256 + strlen(ctype) bytes); its length. */
static size_t api_reply_head(char *buf, int status, const char *ctype, size_t len, bool close)
{
    char *p = api_put(buf, "HTTP/1.1 ");
    p = api_put_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = api_put(p, api_http_reason(status));
    p = api_put(p, "\r\n");
    if (ctype) {
        p = api_put(p, "Content-Type: ");
        p = api_put(p, ctype);
        p = api_put(p, "\r\n");
    }
    if (status != 204 && status != 100) {
        p = api_put(p, "Content-Length: ");
        p = api_put_u64(p, len);
        p = api_put(p, "\r\n");
    }
    if (close)
        p = api_put(p, "Connection: close\r\n");
    p = api_put(p, "\r\n");
    return (size_t)(p - buf);
}

/* Sends a reply on c for the request being answered (no_body: it was a HEAD). */
static void api_conn_reply(struct api_conn *c, int status, const char *ctype, const char *body,
                           size_t len, bool no_body)
{
    char head[384];

    if (c->fd < 0)
        return;
    if (ctype && strlen(ctype) > 64)
        ctype = "application/octet-stream";
    struct iovec iov[2] = {{head, api_reply_head(head, status, ctype, len, c->close_after)},
                           {(void *)body, no_body ? 0 : len}};
    (void)api_conn_send(c, iov, body && iov[1].iov_len ? 2 : 1);
}

/* petrel's own answer to a request no handler sees: {"fault_message": msg}, msg plain text. */
static void api_conn_fault(struct api_conn *c, int status, const char *msg, bool close)
{
    char body[256];
    char *p = api_put(body, "{\"fault_message\":\"");
    p = api_put(p, msg);
    p = api_put(p, "\"}");
    bool head = c->head_len && c->head.method == API_M_HEAD;

    c->close_after = c->close_after || close;
    api_conn_consume(c);
    api_conn_reply(c, status, "application/json", body, (size_t)(p - body), head);
}

/* Drops the body bytes of a request over API_HTTP_BODY_KEEP that have come in. */
static void api_conn_drop_body(struct api_conn *c)
{
    size_t at = c->in_start + c->head_len;
    size_t have = c->in_len - at;
    size_t n = have < c->skip ? have : (size_t)c->skip;

    memmove(c->in + at, c->in + at + n, have - n);
    c->in_len -= n;
    c->skip -= n;
}

/*
 * Takes the next request from the buffer: answers it at once (a malformed one) or hands
 * it to the handler. false while it is not whole.
 */
static bool api_conn_next(struct api_conn *c)
{
    if (!c->head_len) {
        /* Empty lines before a request are skipped (RFC 9112 2.2). */
        while (c->in_start < c->in_len) {
            const char *b = c->in + c->in_start;
            size_t n = b[0] == '\n'                                                  ? 1
                       : b[0] == '\r' && c->in_len - c->in_start > 1 && b[1] == '\n' ? 2
                                                                                     : 0;
            if (!n)
                break;
            c->in_start += n;
            c->scan = 0;
        }
    }
    char *start = c->in + c->in_start;
    size_t avail = c->in_len - c->in_start;

    if (!c->head_len) {
        ssize_t n = api_http_head_end(start, avail, &c->scan);
        if (n == 0)
            return false;
        if (n < 0) {
            api_conn_fault(c, 400, "the request's head is over 64 KiB", true);
            c->in_start = c->in_len = 0;
            return true;
        }
        c->head_len = (size_t)n;
        c->req_len = c->head_len;
        if (api_http_parse_head(start, c->head_len, &c->head)) {
            api_conn_fault(c, 400, "malformed request", true);
            c->in_start = c->in_len = 0;
            return true;
        }
        c->close_after = c->close_after || c->head.close;
        if (c->head.has_te) {
            api_conn_fault(
                c, 411, "Transfer-Encoding is not taken: send the body with Content-Length", true);
            c->in_start = c->in_len = 0;
            return true;
        }
        if (c->head.expect < 0) {
            api_conn_fault(c, 417, "the only expectation taken is 100-continue", true);
            c->in_start = c->in_len = 0;
            return true;
        }
        if (c->head.length > API_HTTP_BODY_LIMIT) {
            api_conn_fault(c, 413, "the body is over 1 MiB", true);
            c->in_start = c->in_len = 0;
            return true;
        }
        if (c->head.length > API_HTTP_BODY_KEEP) {
            c->dropping = true;
            c->skip = c->head.length;
        }
    }
    if (c->dropping) {
        api_conn_drop_body(c);
    } else if (avail - c->head_len >= c->head.length) {
        c->req_len = c->head_len + (size_t)c->head.length;
    }
    bool whole = c->dropping ? !c->skip : c->req_len == c->head_len + c->head.length;
    if (!whole) {
        if (c->head.expect > 0 && !c->continued) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            struct iovec iov = {(void *)cont, sizeof(cont) - 1};
            c->continued = true;
            (void)api_conn_send(c, &iov, 1);
        }
        return false;
    }
    /* The whole request is here: a new one's deadline will start from its first byte. */
    if (c->timer_on) {
        evtimer_del(&c->timer);
        c->timer_on = false;
    }
    if (c->head.method == API_M_UNKNOWN) {
        api_conn_fault(c, 501, "unknown method", false);
        return true;
    }
    c->req = (struct api_req){
        .method = c->head.method,
        .target = c->head.target,
        .body = c->dropping ? NULL : start + c->head_len,
        .body_len = (size_t)c->head.length,
        .conn = c,
    };
    c->busy = true;
    c->h->handle(c->h->arg, &c->req);
    return true;
}

/* Moves the unread bytes to the buffer's start (not while a request is with its handler). */
static void api_conn_compact(struct api_conn *c)
{
    if (!c->in_start || c->busy)
        return;
    memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
    if (c->head_len)
        c->head.target -= c->in_start;
    c->in_len -= c->in_start;
    c->in_start = 0;
}

/* Frees c if it was closed meanwhile; else serves what it holds. After leaving in_process. */
static void api_conn_resume(struct api_conn *c)
{
    if (c->doomed || c->fd < 0) {
        api_conn_free(c);
        return;
    }
    api_conn_process(c);
}

/*
 * Serves what the buffer holds, one request at a time, then watches for what comes next.
 * A reply's after() runs once the reply has left and before the next request is taken
 * (a stop after its 204 comes before the requests pipelined behind it), with in_process
 * still set: what it does (answering requests, even on this connection) cannot free c
 * under this loop.
 */
static void api_conn_process(struct api_conn *c)
{
    c->in_process = true;
    for (;;) {
        if (!api_conn_out_pending(c))
            api_conn_run_after(c);
        if (c->fd < 0 || c->busy || c->stream || api_conn_out_pending(c))
            break;
        if (c->close_after) {
            api_conn_close(c);
            break;
        }
        if (!api_conn_next(c)) {
            if (c->rd_eof)
                api_conn_close(c); /* nothing whole is left, and nothing more comes */
            break;
        }
    }
    if (c->stream && c->rd_eof && c->fd >= 0)
        api_conn_close(c); /* a stream's client that has closed its end has left */
    c->in_process = false;
    if (c->doomed) {
        api_conn_free(c);
        return;
    }
    if (c->fd < 0)
        return; /* closed with a reply owed: freed when it comes */
    api_conn_watch(c);
}

static void api_conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct api_conn *c = arg;
    (void)what;

    if (c->in_len == sizeof(c->in))
        api_conn_compact(c);
    if (c->in_len == sizeof(c->in)) {
        api_conn_watch(c); /* no room until the request being served is answered */
        return;
    }
    ssize_t n = recv(fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            api_conn_close(c);
        return;
    }
    if (n == 0)
        c->rd_eof = true;
    c->in_len += (size_t)n;
    if (c->stream) {
        c->in_start = c->in_len = 0; /* a stream's client has nothing more to ask */
        if (c->rd_eof)
            api_conn_close(c);
        return;
    }
    if (c->busy) {
        api_conn_watch(c);
        return;
    }
    api_conn_process(c);
}

static void api_conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct api_conn *c = arg;
    (void)fd, (void)what;

    size_t before = c->out_off;
    if (api_conn_flush(c) < 0) {
        api_conn_close(c); /* the client is gone */
        return;
    }
    if (c->out_off == before)
        return;
    /* Progress: the stalled-output deadline starts again. */
    if (c->timer_on) {
        evtimer_del(&c->timer);
        c->timer_on = false;
    }
    if (api_conn_out_pending(c) || c->stream) {
        api_conn_watch(c);
        return;
    }
    api_conn_process(c);
}

/* A request not whole in time, or a reply the client takes none of: the connection ends. */
static void api_conn_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct api_conn *c = arg;
    (void)fd, (void)what;

    c->timer_on = false;
    api_conn_close(c);
}

int api_http_adopt(struct api_http *h, int fd)
{
    if (h->nr_conns >= API_HTTP_CONNS_MAX)
        return -EMFILE;
    struct api_conn *c = malloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    memset(c, 0, offsetof(struct api_conn, in));
    c->h = h;
    c->fd = fd;
    event_assign(&c->rd, h->base, fd, EV_READ | EV_PERSIST, api_conn_on_read, c);
    event_assign(&c->wr, h->base, fd, EV_WRITE | EV_PERSIST, api_conn_on_write, c);
    evtimer_assign(&c->timer, h->base, api_conn_on_timeout, c);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nr_conns++;
    api_conn_watch(c);
    return 0;
}

static void api_http_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct api_http *h = arg;
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Content-Length: 73\r\nConnection: close\r\n\r\n"
        "{\"fault_message\":\"too many connections to the API (64): close one first\"}";
    (void)what;

    _Static_assert(sizeof("{\"fault_message\":\"too many connections to the API (64): close one "
                          "first\"}") -
                           1 ==
                       73,
                   "the 503's Content-Length");
    for (int i = 0; i < 8; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (api_http_adopt(h, fd) < 0) {
            (void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
        }
    }
}

int api_http_start(struct api_http *h, struct event_base *base, int fd, api_http_handler *handle,
                   void *arg)
{
    memset(h, 0, sizeof(*h));
    h->base = base;
    h->fd = fd;
    h->handle = handle;
    h->arg = arg;
    h->timeout_ms = API_HTTP_TIMEOUT_S * 1000;
    if (fd < 0)
        return 0;
    if (event_assign(&h->accept_ev, base, fd, EV_READ | EV_PERSIST, api_http_on_accept, h) ||
        event_add(&h->accept_ev, NULL)) {
        h->fd = -1;
        return -ENOMEM;
    }
    h->accepting = true;
    return 0;
}

void api_http_stop(struct api_http *h)
{
    if (h->accepting) {
        event_del(&h->accept_ev);
        h->accepting = false;
    }
    if (h->fd >= 0) {
        close(h->fd);
        h->fd = -1;
    }
    while (h->conns) {
        struct api_conn *c = h->conns;
        (void)api_conn_flush(c);
        c->busy = false; /* no reply can come any more */
        c->in_process = false;
        c->close_fn = NULL;
        api_conn_close(c);
    }
}

/* ---- what handlers call ---- */

void api_http_reply(struct api_req *req, int status, const char *ctype, const char *body,
                    size_t len)
{
    struct api_conn *c = req->conn;
    bool outer = !c->in_process;

    if (!c->busy || req != &c->req)
        return;
    c->in_process = true; /* a failed write closes c: not freed under us */
    c->busy = false;
    c->after = req->after;
    c->after_arg = req->after_arg;
    api_conn_consume(c);
    api_conn_reply(c, status, ctype, body, len, req->method == API_M_HEAD);
    if (!outer)
        return; /* api_conn_process() goes on */
    c->in_process = false;
    api_conn_resume(c);
}

void api_http_stream_start(struct api_req *req, const char *ctype, api_http_close_fn *close_fn,
                           void *arg)
{
    struct api_conn *c = req->conn;
    bool outer = !c->in_process;
    char head[256];

    if (!c->busy || req != &c->req)
        return;
    c->in_process = true;
    c->busy = false;
    c->stream = true;
    c->chunked = c->head.minor >= 1;
    c->close_fn = close_fn;
    c->close_arg = arg;
    api_conn_consume(c);
    c->in_start = c->in_len = 0;
    if (strlen(ctype) > 64)
        ctype = "application/octet-stream";
    char *p = api_put(head, "HTTP/1.1 200 OK\r\nContent-Type: ");
    p = api_put(p, ctype);
    p = api_put(p, c->chunked ? "\r\nTransfer-Encoding: chunked\r\n\r\n"
                              : "\r\nConnection: close\r\n\r\n");
    struct iovec iov = {head, (size_t)(p - head)};
    (void)api_conn_send(c, &iov, 1);
    if (!outer)
        return;
    c->in_process = false;
    api_conn_resume(c);
}

int api_http_stream_send(struct api_conn *c, const char *data, size_t len)
{
    char size[24], *p = size;
    static const char hex[] = "0123456789abcdef";

    if (c->fd < 0 || !c->stream)
        return -EPIPE;
    if (!len)
        return 0;
    if (!c->chunked) {
        struct iovec iov = {(void *)data, len};
        int ret = api_conn_send(c, &iov, 1);
        if (!ret && !c->in_process)
            api_conn_watch(c);
        return ret;
    }
    int shift = 60;
    while (shift > 0 && !((len >> shift) & 0xf))
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        *p++ = hex[(len >> shift) & 0xf];
    p = api_put(p, "\r\n");
    struct iovec iov[3] = {{size, (size_t)(p - size)}, {(void *)data, len}, {(void *)"\r\n", 2}};
    int ret = api_conn_send(c, iov, 3); /* on failure c is closed and may be freed */
    if (!ret && !c->in_process)
        api_conn_watch(c);
    return ret;
}

void api_http_stream_end(struct api_conn *c)
{
    c->close_fn = NULL;
    if (c->fd >= 0 && c->chunked) {
        struct iovec iov = {(void *)"0\r\n\r\n", 5};
        (void)api_conn_send(c, &iov, 1);
    }
    if (c->fd >= 0)
        (void)api_conn_flush(c);
    api_conn_close(c);
}

size_t api_http_queued(const struct api_conn *c)
{
    return c->out_len - c->out_off;
}

int api_http_fd(const struct api_conn *c)
{
    return c->fd;
}
