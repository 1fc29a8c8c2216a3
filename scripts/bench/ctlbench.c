/*
 * ctlbench: the measuring client of scripts/bench/pause. It connects once to a VMM's
 * control socket and times pause/resume cycles with CLOCK_MONOTONIC, from just before a
 * request is written to when its whole reply is parsed, so that the figures measure the
 * VMM and not the client (a Python client costs about 1 ms a request inside the nested
 * harness's emulated L1, more than the VMMs' difference).
 *
 * usage: ctlbench [--warmup N] [--timeout SECONDS] http|qmp SOCKET CYCLES
 *
 *   http  petrel's API (docs/api.md), one keep-alive HTTP/1.1 connection; per cycle:
 *         GET / (the floor), PATCH /vm Paused (204), GET /vm (untimed: checks the VM is
 *         Paused and its pause count went up by one, reads pause.last_kick_us),
 *         PATCH /vm Resumed (204).
 *   qmp   QEMU's QMP; qmp_capabilities once, then per cycle: query-status (the floor),
 *         stop, cont. Events (STOP, RESUME) are skipped while waiting for a "return".
 *
 * The first N cycles (--warmup, default 0) run the same requests and are not reported.
 * stdout: TSV, a header line, then one line per reported cycle, in microseconds:
 *   http: floor pause kick resume        qmp: floor stop cont
 * Any other reply (a status other than the one expected, an error, a malformed or
 * oversized reply, a closed connection, no reply within the timeout, default 30 s) ends
 * the run with one message on stderr and exit status 1; a bad command line exits 2.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Replies larger than these are refused rather than buffered. */
#define CTL_HEADER_MAX (16 * 1024)
#define CTL_BODY_MAX   (1024 * 1024)
#define CTL_BUF_SIZE   (CTL_HEADER_MAX + CTL_BODY_MAX)

/* One connection: the socket, the bytes received but not yet consumed, the last error. */
struct ctl_conn {
    int fd;
    int timeout_ms;
    struct timespec deadline; /* of the request in progress */
    char *buf;
    size_t len;
    size_t used; /* bytes of the last reply, dropped when the next request starts */
    char err[512];
};

/* An HTTP reply, pointing into the connection's buffer until the next request. */
struct ctl_reply {
    int status;
    const char *body;
    size_t body_len;
};

/* CLOCK_MONOTONIC in microseconds: the clock of every figure. */
static double ctl_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Records the error message of a failed step; returns -1 for the caller to pass on. */
__attribute__((format(printf, 2, 3))) static int ctl_fail(struct ctl_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return -1;
}

/* Starts the request's clock for the timeout (not the measurement). */
static void ctl_arm(struct ctl_conn *c)
{
    clock_gettime(CLOCK_MONOTONIC, &c->deadline);
    c->deadline.tv_sec += c->timeout_ms / 1000;
    c->deadline.tv_nsec += (long)(c->timeout_ms % 1000) * 1000000;
    if (c->deadline.tv_nsec >= 1000000000) {
        c->deadline.tv_sec++;
        c->deadline.tv_nsec -= 1000000000;
    }
}

/* Waits until fd is ready for events or the request's deadline passes. */
static int ctl_wait(struct ctl_conn *c, short events, const char *what)
{
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = (c->deadline.tv_sec - now.tv_sec) * 1000LL +
                         (c->deadline.tv_nsec - now.tv_nsec) / 1000000;
        if (left <= 0)
            return ctl_fail(c, "no %s within %d ms", what, c->timeout_ms);
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ctl_fail(c, "poll: %s", strerror(errno));
        if (n > 0)
            return 0;
    }
}

/* Sends all of data. */
static int ctl_send(struct ctl_conn *c, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (ctl_wait(c, POLLOUT, "room to send the request") < 0)
                return -1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ctl_fail(c, "send: %s", strerror(errno));
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Appends what the peer has sent to the buffer, waiting for at least one byte. */
static int ctl_fill(struct ctl_conn *c, size_t limit, const char *what)
{
    if (c->len >= limit)
        return ctl_fail(c, "%s is over %zu bytes", what, limit);
    for (;;) {
        if (ctl_wait(c, POLLIN, what) < 0)
            return -1;
        ssize_t n = recv(c->fd, c->buf + c->len, limit - c->len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (n < 0)
            return ctl_fail(c, "recv: %s", strerror(errno));
        if (n == 0)
            return ctl_fail(c, "the VMM closed the connection before the end of the %s", what);
        c->len += (size_t)n;
        return 0;
    }
}

/* Drops the first n buffered bytes (a consumed reply or line). */
static void ctl_consume(struct ctl_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Copies up to 200 bytes of s into out, printable, for an error message. */
static const char *ctl_excerpt(const char *s, size_t len, char *out, size_t size)
{
    size_t j = 0;

    for (size_t i = 0; i < len && i < 200 && j + 5 < size; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isprint(ch))
            out[j++] = (char)ch;
        else
            j += (size_t)snprintf(out + j, size - j, "\\x%02x", ch);
    }
    if (len > 200 && j + 4 < size)
        j += (size_t)snprintf(out + j, size - j, "...");
    out[j] = '\0';
    return out;
}

/*
 * A header's decimal value after the colon: blanks, 1-9 digits, blanks, the line's end.
 * -1 if it is anything else.
 */
static long ctl_header_number(const char *p, const char *eol)
{
    long n = 0;
    int digits = 0;

    while (p < eol && (*p == ' ' || *p == '\t'))
        p++;
    while (p < eol && isdigit((unsigned char)*p)) {
        if (++digits > 9)
            return -1;
        n = n * 10 + (*p++ - '0');
    }
    while (p < eol && (*p == ' ' || *p == '\t'))
        p++;
    return digits && p == eol ? n : -1;
}

/*
 * Reads one HTTP/1.1 reply: status line, headers, and a body framed by Content-Length
 * (none for 1xx, 204 and 304). Chunked bodies and a server closing after the reply are
 * refused: petrel's API answers neither way on a keep-alive connection.
 */
static int ctl_http_reply(struct ctl_conn *c, struct ctl_reply *r)
{
    char *end;
    char ex[1024];

    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (ctl_fill(c, CTL_HEADER_MAX, "reply header") < 0)
            return -1;
    size_t head = (size_t)(end - c->buf) + 4;

    const char *p = c->buf;
    if (head < 16 || memcmp(p, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)p[7]) || p[8] != ' ' ||
        !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
        !isdigit((unsigned char)p[11]) || (p[12] != ' ' && p[12] != '\r'))
        return ctl_fail(c, "malformed status line: %s", ctl_excerpt(p, head, ex, sizeof(ex)));
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

    long length = -1;
    bool closing = p[7] == '0';
    p = memchr(p, '\n', head) + 1;
    while (p < end + 2) {
        const char *eol = memchr(p, '\n', (size_t)(end + 2 - p));
        const char *stop = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        const char *colon = memchr(p, ':', (size_t)(stop - p));
        if (!colon)
            return ctl_fail(c, "malformed header line: %s",
                            ctl_excerpt(p, (size_t)(stop - p), ex, sizeof(ex)));
        size_t name = (size_t)(colon - p);
        if (name == 14 && !strncasecmp(p, "Content-Length", 14)) {
            long n = ctl_header_number(colon + 1, stop);
            if (n < 0 || (length >= 0 && n != length))
                return ctl_fail(c, "bad Content-Length: %s",
                                ctl_excerpt(p, (size_t)(stop - p), ex, sizeof(ex)));
            length = n;
        } else if (name == 17 && !strncasecmp(p, "Transfer-Encoding", 17)) {
            return ctl_fail(c, "unsupported reply framing: %s",
                            ctl_excerpt(p, (size_t)(stop - p), ex, sizeof(ex)));
        } else if (name == 10 && !strncasecmp(p, "Connection", 10)) {
            const char *v = colon + 1;
            while (v < stop && (*v == ' ' || *v == '\t'))
                v++;
            if ((size_t)(stop - v) >= 5 && !strncasecmp(v, "close", 5))
                closing = true;
        }
        p = eol + 1;
    }
    if (closing)
        return ctl_fail(c, "the VMM closes the connection after this reply (status %d)", r->status);

    if (r->status < 200 || r->status == 204 || r->status == 304) {
        length = 0;
    } else if (length < 0) {
        return ctl_fail(c, "status %d reply without Content-Length", r->status);
    } else if (length > CTL_BODY_MAX) {
        return ctl_fail(c, "reply body of %ld bytes is over %d", length, CTL_BODY_MAX);
    }
    while (c->len < head + (size_t)length)
        if (ctl_fill(c, head + (size_t)length, "reply body") < 0)
            return -1;
    r->body = c->buf + head;
    r->body_len = (size_t)length;
    return (int)(head + (size_t)length);
}

/*
 * Sends one prepared request and reads its reply, which must have status want.
 * Returns the elapsed microseconds in *us; the reply stays valid until the next request.
 */
static int ctl_http(struct ctl_conn *c, const char *req, const char *what, int want,
                    struct ctl_reply *r, double *us)
{
    char ex[1024];

    ctl_consume(c, c->used);
    c->used = 0;
    ctl_arm(c);
    double t0 = ctl_now_us();
    int used;
    if (ctl_send(c, req, strlen(req)) < 0 || (used = ctl_http_reply(c, r)) < 0) {
        char msg[sizeof(c->err)];
        memcpy(msg, c->err, sizeof(msg));
        return ctl_fail(c, "%s: %s", what, msg);
    }
    *us = ctl_now_us() - t0;
    c->used = (size_t)used;
    if (r->status != want)
        return ctl_fail(c, "%s: status %d (expected %d): %s", what, r->status, want,
                        ctl_excerpt(r->body, r->body_len, ex, sizeof(ex)));
    if (c->len != (size_t)used)
        return ctl_fail(c, "%s: %zu unexpected bytes after the reply", what, c->len - (size_t)used);
    return 0;
}

/* Checks GET /vm's body: the VM is Paused and its pause count is *count + 1. */
static int ctl_check_paused(struct ctl_conn *c, const struct ctl_reply *r, long long *count,
                            double *kick_us)
{
    char ex[1024];
    json_error_t jerr;
    json_t *o = json_loadb(r->body, r->body_len, 0, &jerr);
    const char *state = NULL;
    json_int_t n = -1;
    double kick = -1;

    if (!o || json_unpack_ex(o, &jerr, 0, "{s:s, s:{s:I, s:F}}", "state", &state, "pause", "count",
                             &n, "last_kick_us", &kick) < 0) {
        ctl_fail(c, "GET /vm: unexpected body (%s): %s", jerr.text,
                 ctl_excerpt(r->body, r->body_len, ex, sizeof(ex)));
        goto err_put;
    }
    if (strcmp(state, "Paused") != 0) {
        ctl_fail(c, "GET /vm after a 204 to Paused: state is %s", state);
        goto err_put;
    }
    if (*count >= 0 && n != *count + 1) {
        ctl_fail(c, "GET /vm: pause count %lld after %lld (expected one more)", (long long)n,
                 *count);
        goto err_put;
    }
    *count = n;
    *kick_us = kick;
    json_decref(o);
    return 0;

err_put:
    json_decref(o);
    return -1;
}

/* Runs warmup + cycles pause/resume cycles against petrel's API; out gets 4 per cycle. */
static int ctl_run_http(struct ctl_conn *c, int warmup, int cycles, double *out)
{
    static const char get_root[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    static const char get_vm[] = "GET /vm HTTP/1.1\r\nHost: localhost\r\n\r\n";
    static const char pause[] = "PATCH /vm HTTP/1.1\r\nHost: localhost\r\n"
                                "Content-Type: application/json\r\n"
                                "Content-Length: 18\r\n\r\n{\"state\":\"Paused\"}";
    static const char resume[] = "PATCH /vm HTTP/1.1\r\nHost: localhost\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Content-Length: 19\r\n\r\n{\"state\":\"Resumed\"}";
    struct ctl_reply r;
    long long count = -1;

    for (int i = 0; i < warmup + cycles; i++) {
        double scratch[4];
        double *o = i < warmup ? scratch : out + 4 * (i - warmup);
        double untimed;
        if (ctl_http(c, get_root, "GET /", 200, &r, &o[0]) < 0 ||
            ctl_http(c, pause, "PATCH /vm Paused", 204, &r, &o[1]) < 0 ||
            ctl_http(c, get_vm, "GET /vm", 200, &r, &untimed) < 0)
            return -1;
        if (ctl_check_paused(c, &r, &count, &o[2]) < 0 ||
            ctl_http(c, resume, "PATCH /vm Resumed", 204, &r, &o[3]) < 0)
            return -1;
    }
    return 0;
}

/* Reads one line of QMP (one JSON object) and consumes it; NULL with c->err set if bad. */
static json_t *ctl_qmp_line(struct ctl_conn *c, const char *what)
{
    char ex[1024];
    char *nl;
    json_error_t jerr;

    while (!(nl = memchr(c->buf, '\n', c->len)))
        if (ctl_fill(c, CTL_BUF_SIZE, what) < 0)
            return NULL;
    size_t n = (size_t)(nl - c->buf) + 1;
    json_t *msg = json_loadb(c->buf, n - 1, 0, &jerr);
    if (!msg || !json_is_object(msg)) {
        ctl_fail(c, "%s: not a JSON object (%s): %s", what, msg ? "" : jerr.text,
                 ctl_excerpt(c->buf, n, ex, sizeof(ex)));
        json_decref(msg);
        return NULL;
    }
    ctl_consume(c, n);
    return msg;
}

/*
 * Sends one QMP command and reads up to its "return", skipping events; an "error" or
 * any other message fails. *us is the elapsed time.
 */
static int ctl_qmp(struct ctl_conn *c, const char *cmd, double *us)
{
    char req[128];
    int len = snprintf(req, sizeof(req), "{\"execute\":\"%s\"}\n", cmd);

    ctl_arm(c);
    double t0 = ctl_now_us();
    if (ctl_send(c, req, (size_t)len) < 0)
        goto err_prefix;
    for (;;) {
        json_t *msg = ctl_qmp_line(c, "QMP reply");
        if (!msg)
            goto err_prefix;
        if (json_object_get(msg, "return")) {
            json_decref(msg);
            break;
        }
        if (json_object_get(msg, "event")) {
            json_decref(msg);
            continue;
        }
        char *text = json_dumps(msg, JSON_COMPACT);
        ctl_fail(c, "QMP %s: %s", cmd, text ? text : "(unprintable reply)");
        free(text);
        json_decref(msg);
        return -1;
    }
    *us = ctl_now_us() - t0;
    return 0;

err_prefix : {
    char msg[sizeof(c->err)];
    memcpy(msg, c->err, sizeof(msg));
    return ctl_fail(c, "QMP %s: %s", cmd, msg);
}
}

/* Runs warmup + cycles stop/cont cycles against QEMU's QMP; out gets 3 per cycle. */
static int ctl_run_qmp(struct ctl_conn *c, int warmup, int cycles, double *out)
{
    double unused;

    ctl_arm(c);
    json_t *greeting = ctl_qmp_line(c, "QMP greeting");
    if (!greeting)
        return -1;
    bool qmp = json_object_get(greeting, "QMP") != NULL;
    json_decref(greeting);
    if (!qmp)
        return ctl_fail(c, "the socket's first line is not a QMP greeting");
    if (ctl_qmp(c, "qmp_capabilities", &unused) < 0)
        return -1;

    for (int i = 0; i < warmup + cycles; i++) {
        double scratch[3];
        double *o = i < warmup ? scratch : out + 3 * (i - warmup);
        if (ctl_qmp(c, "query-status", &o[0]) < 0 || ctl_qmp(c, "stop", &o[1]) < 0 ||
            ctl_qmp(c, "cont", &o[2]) < 0)
            return -1;
    }
    return 0;
}

/* A whole decimal number in [min, max], or -1. */
static long ctl_arg_number(const char *s, long min, long max)
{
    char *end;

    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < min || n > max)
        return -1;
    return n;
}

/* Connects to the VMM's unix socket at path. */
static int ctl_connect(struct ctl_conn *c, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    if (strlen(path) >= sizeof(sa.sun_path))
        return ctl_fail(c, "socket path too long: %s", path);
    strcpy(sa.sun_path, path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return ctl_fail(c, "socket: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        ctl_fail(c, "connect %s: %s", path, strerror(errno));
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

/* Prints the usage line; returns the bad-command-line exit status. */
static int ctl_usage(void)
{
    fprintf(stderr, "usage: ctlbench [--warmup N] [--timeout SECONDS] http|qmp SOCKET CYCLES\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct ctl_conn c = {.fd = -1, .timeout_ms = 30000};
    long warmup = 0;
    int i = 1;

    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        long n;
        if (!strcmp(argv[i], "--warmup") && (n = ctl_arg_number(argv[i + 1], 0, 1000000)) >= 0)
            warmup = n;
        else if (!strcmp(argv[i], "--timeout") && (n = ctl_arg_number(argv[i + 1], 1, 3600)) > 0)
            c.timeout_ms = (int)n * 1000;
        else
            return ctl_usage();
    }
    if (argc - i != 3)
        return ctl_usage();
    const char *mode = argv[i], *path = argv[i + 1];
    long cycles = ctl_arg_number(argv[i + 2], 1, 10000000);
    bool http = !strcmp(mode, "http");
    if (cycles < 0 || (!http && strcmp(mode, "qmp")))
        return ctl_usage();
    int cols = http ? 4 : 3;

    double *out = calloc((size_t)cycles * (size_t)cols, sizeof(*out));
    c.buf = malloc(CTL_BUF_SIZE);
    int ret = out && c.buf ? ctl_connect(&c, path) : ctl_fail(&c, "out of memory");
    if (!ret)
        ret = http ? ctl_run_http(&c, (int)warmup, (int)cycles, out)
                   : ctl_run_qmp(&c, (int)warmup, (int)cycles, out);
    if (c.fd >= 0)
        close(c.fd);
    if (!ret) {
        puts(http ? "floor\tpause\tkick\tresume" : "floor\tstop\tcont");
        for (long n = 0; n < cycles; n++)
            for (int k = 0; k < cols; k++)
                printf("%.1f%c", out[n * cols + k], k + 1 < cols ? '\t' : '\n');
        if (fflush(stdout) != 0)
            ret = ctl_fail(&c, "writing the results: %s", strerror(errno));
    }
    if (ret < 0)
        fprintf(stderr, "ctlbench: %s\n", c.err);
    free(out);
    free(c.buf);
    return ret < 0 ? 1 : 0;
}
