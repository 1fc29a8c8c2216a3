/*
 * ctlbench: the measuring client of scripts/bench/pause and scripts/bench/snapshot. It
 * connects once to a VMM's control socket and times requests with CLOCK_MONOTONIC, from
 * just before a request is written to when its whole reply is parsed, so that the figures
 * measure the VMM and not the client (a Python client costs about 1 ms a request inside
 * the nested harness's emulated L1, more than the VMMs' difference).
 *
 * usage: ctlbench [--warmup N] [--gap MS] [--timeout SECONDS] http|qmp|kvmtool SOCKET CYCLES
 *        ctlbench [--timeout SECONDS] http-snapshot SOCKET STATE MEM
 *        ctlbench [--timeout SECONDS] qmp-migrate SOCKET URI
 *        ctlbench exec -- ARGV...
 *        ctlbench [--timeout SECONDS] [--qmp-listen PATH] launch MATCH -- ARGV...
 *
 *   http  petrel's API (docs/api.md), one keep-alive HTTP/1.1 connection; per cycle:
 *         GET / (the floor), PATCH /vm Paused (204), GET /vm (untimed: checks the VM is
 *         Paused and its pause count went up by one, reads pause.last_kick_us),
 *         PATCH /vm Resumed (204).
 *   qmp   QEMU's QMP; qmp_capabilities once, then per cycle: query-status (the floor),
 *         stop, cont. Events (STOP, RESUME) are skipped while waiting for a "return".
 *   kvmtool  kvmtool's control socket ($HOME/.lkvm/NAME.sock); per cycle: VMSTATE (the
 *         floor), PAUSE + VMSTATE, RESUME + VMSTATE (PAUSE and RESUME get no reply).
 *   --gap MS: in these three modes, each cycle first lets the guest run MS milliseconds
 *         (after the previous cycle's resume, before its floor and pause).
 *   http-snapshot  PATCH /vm Paused (untimed; 204, or 200 when already paused), then
 *         PUT /snapshot/create {snapshot_path: STATE, mem_file_path: MEM}, timed to its 204.
 *   qmp-migrate  stop, migrate-set-capabilities events, migrate-set-parameters
 *         max-bandwidth 1 TB/s (all untimed), then migrate URI, timed until the MIGRATION
 *         event says "completed" (QEMU's exec: command may still be flushing its pipe).
 *   exec  runs ARGV (stdin and stdout /dev/null), timed from fork to its exit, which must
 *         be status 0.
 *   launch  starts ARGV with its stdout on a pipe, and times from just before the fork to
 *         the first whole line there; then reads on (untimed) to the first line starting
 *         with MATCH, and kills ARGV. With --qmp-listen, a unix socket listening at PATH
 *         is ARGV's fd 3 (QEMU: -chardev socket,id=qmp,fd=3,server=on,wait=off -mon
 *         chardev=qmp,mode=control, and -global migration.x-events=on) and this end is
 *         connected before the fork; the VM is taken out of its incoming migration:
 *         query-status, the MIGRATION event "completed" while "inmigrate", then cont.
 *
 * The first N cycles (--warmup, default 0) run the same requests and are not reported.
 * stdout: TSV, a header line, then one line per reported cycle (http, qmp) or one line,
 * in microseconds:
 *   http: floor pause kick resume steps (steps: GET /vm's pause.steps as compact JSON)
 *   qmp: floor stop cont                 kvmtool: floor pause resume
 *   http-snapshot, qmp-migrate: create   exec: exec
 *   launch: first loaded cont line (loaded: the migration completed, cont: its reply, both
 *           -1 without --qmp-listen; line: the first line starting with MATCH)
 * This process is a child subreaper: helpers a killed VMM leaves (QEMU's `cat`) are waited
 * for before it exits.
 * Any other reply (a status other than the one expected, an error, a malformed or
 * oversized reply, a closed connection, no reply within the timeout, default 30 s) ends
 * the run with one message on stderr and exit status 1; a bad command line exits 2.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
    size_t used;        /* bytes of the last reply, dropped when the next request starts */
    char migration[32]; /* the status of the last MIGRATION event seen */
    long gap_us;        /* cycle modes: the guest runs this long between resume and pause */
    double sent, got;   /* ctl_http(): the last request's send and its reply, CLOCK_MONOTONIC us */
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

/*
 * Lets the guest run gap_us (--gap) before a cycle's pause: from the previous resume's
 * reply to the floor request; a signal only cuts it short by being retried.
 */
static void ctl_gap(const struct ctl_conn *c)
{
    struct timespec ts = {.tv_sec = c->gap_us / 1000000, .tv_nsec = (c->gap_us % 1000000) * 1000};

    while (c->gap_us && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
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
 * Sends one prepared request and reads its reply, which must have status want (0: any 2xx).
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
    c->got = ctl_now_us();
    c->sent = t0;
    *us = c->got - t0;
    c->used = (size_t)used;
    if (want ? r->status != want : r->status / 100 != 2)
        return ctl_fail(c, "%s: status %d (expected %d): %s", what, r->status, want,
                        ctl_excerpt(r->body, r->body_len, ex, sizeof(ex)));
    if (c->len != (size_t)used)
        return ctl_fail(c, "%s: %zu unexpected bytes after the reply", what, c->len - (size_t)used);
    return 0;
}

/* Checks GET /vm's body: the VM is Paused and its pause count is *count + 1. */
static int ctl_check_paused(struct ctl_conn *c, const struct ctl_reply *r, long long *count,
                            double *kick_us, char **steps, double sent, double got)
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
    if (steps) {
        /* petrel's per-step timestamps of this pause (docs/api.md), when it has them. */
        json_t *st = json_object_get(json_object_get(o, "pause"), "steps");
        /*
         * With the request's own time ("at", CLOCK_MONOTONIC, as this clock), the pause's
         * send and its reply's arrival become steps too: "sent" (negative: before the
         * request reached petrel's loop) and "got".
         */
        json_t *at = st ? json_object_get(st, "at") : NULL;
        if (json_is_number(at)) {
            json_object_set_new(st, "sent", json_real(sent - json_number_value(at)));
            json_object_set_new(st, "got", json_real(got - json_number_value(at)));
        }
        *steps = st ? json_dumps(st, JSON_COMPACT) : strdup("{}");
        if (!*steps) {
            ctl_fail(c, "out of memory");
            goto err_put;
        }
    }
    json_decref(o);
    return 0;

err_put:
    json_decref(o);
    return -1;
}

/* Runs warmup + cycles pause/resume cycles against petrel's API; out gets 4 per cycle. */
static int ctl_run_http(struct ctl_conn *c, int warmup, int cycles, double *out, char **steps)
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
        double untimed, sent, got;
        ctl_gap(c);
        if (ctl_http(c, get_root, "GET /", 200, &r, &o[0]) < 0 ||
            ctl_http(c, pause, "PATCH /vm Paused", 204, &r, &o[1]) < 0)
            return -1;
        sent = c->sent;
        got = c->got;
        if (ctl_http(c, get_vm, "GET /vm", 200, &r, &untimed) < 0)
            return -1;
        if (ctl_check_paused(c, &r, &count, &o[2], i < warmup ? NULL : &steps[i - warmup], sent,
                             got) < 0 ||
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

/* Notes the status a MIGRATION event carries (any other event is skipped). */
static void ctl_qmp_event(struct ctl_conn *c, json_t *msg)
{
    const char *event = json_string_value(json_object_get(msg, "event"));
    const char *status = json_string_value(json_object_get(json_object_get(msg, "data"), "status"));

    if (event && !strcmp(event, "MIGRATION") && status)
        snprintf(c->migration, sizeof(c->migration), "%s", status);
}

/*
 * Sends one QMP command (arguments: a JSON object, or NULL) and reads up to its "return",
 * noting events; an "error" or any other message fails. *us is the elapsed time; *ret,
 * when asked for, the "return" value (the caller's reference).
 */
static int ctl_qmp_call(struct ctl_conn *c, const char *cmd, json_t *args, double *us, json_t **ret)
{
    json_t *req = args ? json_pack("{s:s, s:O}", "execute", cmd, "arguments", args)
                       : json_pack("{s:s}", "execute", cmd);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    size_t len = text ? strlen(text) : 0;

    json_decref(req);
    if (!text)
        return ctl_fail(c, "QMP %s: out of memory", cmd);
    text = realloc(text, len + 2);
    if (!text)
        return ctl_fail(c, "QMP %s: out of memory", cmd);
    text[len++] = '\n';
    text[len] = '\0';

    ctl_arm(c);
    double t0 = ctl_now_us();
    int sent = ctl_send(c, text, len);
    free(text);
    if (sent < 0)
        goto err_prefix;
    for (;;) {
        json_t *msg = ctl_qmp_line(c, "QMP reply");
        if (!msg)
            goto err_prefix;
        json_t *r = json_object_get(msg, "return");
        if (r) {
            if (ret)
                *ret = json_incref(r);
            json_decref(msg);
            break;
        }
        if (json_object_get(msg, "event")) {
            ctl_qmp_event(c, msg);
            json_decref(msg);
            continue;
        }
        char *reply = json_dumps(msg, JSON_COMPACT);
        ctl_fail(c, "QMP %s: %s", cmd, reply ? reply : "(unprintable reply)");
        free(reply);
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

/* A QMP command without arguments. */
static int ctl_qmp(struct ctl_conn *c, const char *cmd, double *us)
{
    return ctl_qmp_call(c, cmd, NULL, us, NULL);
}

/* Reads the greeting and leaves capabilities negotiation (qmp_capabilities). */
static int ctl_qmp_open(struct ctl_conn *c)
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
    return ctl_qmp(c, "qmp_capabilities", &unused);
}

/*
 * Waits for a MIGRATION event saying "completed" (the VMM must have the events
 * capability on); "failed" or "cancelled", a reply or the timeout fail.
 */
static int ctl_qmp_migration_done(struct ctl_conn *c)
{
    ctl_arm(c);
    while (strcmp(c->migration, "completed") != 0) {
        if (!strcmp(c->migration, "failed") || !strcmp(c->migration, "cancelled"))
            return ctl_fail(c, "the migration %s", c->migration);
        json_t *msg = ctl_qmp_line(c, "MIGRATION event");
        if (!msg)
            return -1;
        if (!json_object_get(msg, "event")) {
            char *text = json_dumps(msg, JSON_COMPACT);
            ctl_fail(c, "waiting for the migration: %s", text ? text : "(unprintable message)");
            free(text);
            json_decref(msg);
            return -1;
        }
        ctl_qmp_event(c, msg);
        json_decref(msg);
    }
    return 0;
}

/* Runs warmup + cycles stop/cont cycles against QEMU's QMP; out gets 3 per cycle. */
static int ctl_run_qmp(struct ctl_conn *c, int warmup, int cycles, double *out)
{
    if (ctl_qmp_open(c) < 0)
        return -1;
    for (int i = 0; i < warmup + cycles; i++) {
        double scratch[3];
        double *o = i < warmup ? scratch : out + 3 * (i - warmup);
        ctl_gap(c);
        if (ctl_qmp(c, "query-status", &o[0]) < 0 || ctl_qmp(c, "stop", &o[1]) < 0 ||
            ctl_qmp(c, "cont", &o[2]) < 0)
            return -1;
    }
    return 0;
}

/*
 * kvmtool's control socket ($HOME/.lkvm/NAME.sock, kvm-ipc.c): a message is a header of
 * two native u32 (type, payload length) and the payload. PAUSE (4) and RESUME (5) get no
 * reply; VMSTATE (8) is answered with the state as a native int (0 running, 1 paused).
 */
enum { CTL_LKVM_PAUSE = 4, CTL_LKVM_RESUME = 5, CTL_LKVM_VMSTATE = 8 };

/* Sends kvmtool message type with no payload. */
static int ctl_lkvm_send(struct ctl_conn *c, uint32_t type)
{
    uint32_t head[2] = {type, 0};

    return ctl_send(c, (const char *)head, sizeof(head));
}

/* Asks kvmtool for its VM state and checks it is want. */
static int ctl_lkvm_state(struct ctl_conn *c, int want, const char *what)
{
    int state;

    if (ctl_lkvm_send(c, CTL_LKVM_VMSTATE) < 0)
        return -1;
    while (c->len < sizeof(state))
        if (ctl_fill(c, sizeof(state), what) < 0)
            return -1;
    memcpy(&state, c->buf, sizeof(state));
    ctl_consume(c, sizeof(state));
    if (state != want)
        return ctl_fail(c, "%s: kvmtool's VM state is %d, not %d", what, state, want);
    return 0;
}

/*
 * Runs warmup + cycles pause/resume cycles against kvmtool; out gets 3 per cycle: the
 * floor (a VMSTATE query), the pause and the resume, each followed by a VMSTATE query
 * on the same connection (their only way to be answered).
 */
static int ctl_run_lkvm(struct ctl_conn *c, int warmup, int cycles, double *out)
{
    for (int i = 0; i < warmup + cycles; i++) {
        double scratch[3];
        double *o = i < warmup ? scratch : out + 3 * (i - warmup);
        double t0;
        ctl_gap(c);
        ctl_arm(c);
        t0 = ctl_now_us();
        if (ctl_lkvm_state(c, 0, "VMSTATE (floor)") < 0)
            return -1;
        o[0] = ctl_now_us() - t0;
        ctl_arm(c);
        t0 = ctl_now_us();
        if (ctl_lkvm_send(c, CTL_LKVM_PAUSE) < 0 || ctl_lkvm_state(c, 1, "PAUSE + VMSTATE") < 0)
            return -1;
        o[1] = ctl_now_us() - t0;
        ctl_arm(c);
        t0 = ctl_now_us();
        if (ctl_lkvm_send(c, CTL_LKVM_RESUME) < 0 || ctl_lkvm_state(c, 0, "RESUME + VMSTATE") < 0)
            return -1;
        o[2] = ctl_now_us() - t0;
    }
    return 0;
}

/*
 * http-snapshot: PATCH /vm Paused (untimed), then PUT /snapshot/create with the two
 * paths, timed until its 204.
 */
static int ctl_run_http_snapshot(struct ctl_conn *c, const char *state, const char *mem, double *us)
{
    static const char pause[] = "PATCH /vm HTTP/1.1\r\nHost: localhost\r\n"
                                "Content-Type: application/json\r\n"
                                "Content-Length: 18\r\n\r\n{\"state\":\"Paused\"}";
    struct ctl_reply r;
    double untimed;

    json_t *j = json_pack("{s:s, s:s}", "snapshot_path", state, "mem_file_path", mem);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body)
        return ctl_fail(c, "out of memory");
    size_t size = strlen(body) + 256;
    char *req = malloc(size);
    if (req)
        snprintf(req, size,
                 "PUT /snapshot/create HTTP/1.1\r\nHost: localhost\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
    free(body);
    if (!req)
        return ctl_fail(c, "out of memory");
    /* 204, or 200 "the VM was already paused". */
    int ret = ctl_http(c, pause, "PATCH /vm Paused", 0, &r, &untimed);
    if (!ret)
        ret = ctl_http(c, req, "PUT /snapshot/create", 204, &r, us);
    free(req);
    return ret;
}

/*
 * qmp-migrate: stop, the events capability and an unlimited bandwidth (untimed), then
 * migrate to uri, timed until the MIGRATION event says "completed".
 */
static int ctl_run_qmp_migrate(struct ctl_conn *c, const char *uri, double *us)
{
    double untimed;
    int ret;

    if (ctl_qmp_open(c) < 0 || ctl_qmp(c, "stop", &untimed) < 0)
        return -1;
    json_t *caps =
        json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "events", "state", 1);
    ret = caps ? ctl_qmp_call(c, "migrate-set-capabilities", caps, &untimed, NULL)
               : ctl_fail(c, "out of memory");
    json_decref(caps);
    if (ret < 0)
        return -1;
    /* The default limit is 32 MiB/s; 1 TB/s is within what QEMU accepts. */
    json_t *params = json_pack("{s:I}", "max-bandwidth", (json_int_t)1000000000000LL);
    ret = params ? ctl_qmp_call(c, "migrate-set-parameters", params, &untimed, NULL)
                 : ctl_fail(c, "out of memory");
    json_decref(params);
    if (ret < 0)
        return -1;

    json_t *args = json_pack("{s:s}", "uri", uri);
    double t0 = ctl_now_us();
    ret = args ? ctl_qmp_call(c, "migrate", args, &untimed, NULL) : ctl_fail(c, "out of memory");
    json_decref(args);
    if (ret < 0 || ctl_qmp_migration_done(c) < 0)
        return -1;
    *us = ctl_now_us() - t0;
    return 0;
}

/* A child's wait status in words, for an error message. */
static const char *ctl_status_text(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, size, "ended with wait status %#x", status);
    return buf;
}

/*
 * Starts argv with stdin /dev/null and stdout out (-1: /dev/null), and fd3 (-1: none) as
 * its fd 3; the pid, or -1.
 */
static pid_t ctl_spawn(struct ctl_conn *c, char **argv, int out, int fd3)
{
    pid_t pid = fork();

    if (pid < 0)
        return ctl_fail(c, "fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out >= 0 ? out : null, 1) < 0)
            _exit(127);
        if (fd3 >= 0 && (fd3 == 3 ? fcntl(3, F_SETFD, 0) : dup2(fd3, 3)) < 0)
            _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "ctlbench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Waits for the children left over (a VMM's helpers, reparented to this subreaper). */
static void ctl_reap_all(void)
{
    while (wait(NULL) > 0 || errno == EINTR)
        ;
}

/* exec: runs argv (stdout to /dev/null), timed from fork to its exit, which must be 0. */
static int ctl_run_exec(struct ctl_conn *c, char **argv, double *us)
{
    char text[64];
    int status;

    double t0 = ctl_now_us();
    pid_t pid = ctl_spawn(c, argv, -1, -1);
    if (pid < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return ctl_fail(c, "waitpid: %s", strerror(errno));
    *us = ctl_now_us() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ctl_fail(c, "%s %s", argv[0], ctl_status_text(status, text, sizeof(text)));
    return 0;
}

/* The VMM's stdout, read line by line. */
struct ctl_lines {
    int fd;
    size_t len;
    char buf[4096];
};

/*
 * The next whole line of l (the rest of a line cut short by a snapshot counts), '\r' and
 * '\n' dropped, into line (cut to size).
 */
static int ctl_next_line(struct ctl_conn *c, struct ctl_lines *l, char *line, size_t size)
{
    ctl_arm(c);
    for (;;) {
        char *nl = memchr(l->buf, '\n', l->len);
        if (nl) {
            size_t n = (size_t)(nl - l->buf);
            size_t keep = n && l->buf[n - 1] == '\r' ? n - 1 : n;
            if (keep >= size)
                keep = size - 1;
            memcpy(line, l->buf, keep);
            line[keep] = '\0';
            l->len -= n + 1;
            memmove(l->buf, nl + 1, l->len);
            return 0;
        }
        if (l->len == sizeof(l->buf))
            l->len = 0; /* an overlong line: its start is dropped */
        int saved = c->fd;
        c->fd = l->fd;
        int ready = ctl_wait(c, POLLIN, "guest output");
        c->fd = saved;
        if (ready < 0)
            return -1;
        ssize_t n = read(l->fd, l->buf + l->len, sizeof(l->buf) - l->len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return ctl_fail(c, "reading the VMM's output: %s", strerror(errno));
        if (n == 0)
            return ctl_fail(c, "the VMM's output ended");
        l->len += (size_t)n;
    }
}

/*
 * launch: starts argv and times, from just before the fork, until its stdout has a whole
 * line (t[0]: the guest's first output; the rest of a line the snapshot cut counts), then
 * reads on, untimed, to the first line starting with match, which it copies to line. With qmp_path,
 * a listening socket bound there is the child's fd 3 (QEMU: -chardev socket,fd=3,server=on) and
 * this end connects to it before the fork; then the VM is brought out of an incoming migration:
 * query-status, and while "inmigrate" the wait for the MIGRATION event "completed" (t[1]), then
 * cont unless it already runs (t[2]). The child is killed once its line is there.
 */
static int ctl_run_launch(struct ctl_conn *c, const char *match, const char *qmp_path, char **argv,
                          double *t, char *line, size_t size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int listener = -1, out[2] = {-1, -1}, ret = -1;
    pid_t pid = -1;

    t[1] = t[2] = -1;
    if (qmp_path) {
        if (strlen(qmp_path) >= sizeof(sa.sun_path))
            return ctl_fail(c, "socket path too long: %s", qmp_path);
        strcpy(sa.sun_path, qmp_path);
        unlink(qmp_path);
        listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(listener, 1) < 0) {
            ctl_fail(c, "listening on %s: %s", qmp_path, strerror(errno));
            goto out;
        }
        if (ctl_connect(c, qmp_path) < 0)
            goto out;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        ctl_fail(c, "pipe: %s", strerror(errno));
        goto out;
    }

    double t0 = ctl_now_us();
    pid = ctl_spawn(c, argv, out[1], listener);
    if (pid < 0)
        goto out;
    close(out[1]);
    out[1] = -1;
    if (listener >= 0) {
        close(listener);
        listener = -1;
    }
    if (qmp_path) {
        double untimed;
        json_t *st = NULL;
        if (ctl_qmp_open(c) < 0 || ctl_qmp_call(c, "query-status", NULL, &untimed, &st) < 0)
            goto out;
        const char *status = json_string_value(json_object_get(st, "status"));
        char status_copy[32];
        snprintf(status_copy, sizeof(status_copy), "%s", status ? status : "");
        json_decref(st);
        if (!strcmp(status_copy, "inmigrate") && ctl_qmp_migration_done(c) < 0)
            goto out;
        t[1] = ctl_now_us() - t0;
        if (strcmp(status_copy, "running") != 0) {
            if (ctl_qmp(c, "cont", &untimed) < 0)
                goto out;
            t[2] = ctl_now_us() - t0;
        }
    }
    struct ctl_lines lines = {.fd = out[0]};
    if (ctl_next_line(c, &lines, line, size) < 0)
        goto out;
    t[0] = ctl_now_us() - t0;
    while (strncmp(line, match, strlen(match)) != 0)
        if (ctl_next_line(c, &lines, line, size) < 0)
            goto out;
    ret = 0;

out:
    if (pid > 0) {
        int status;
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        ctl_reap_all();
    }
    if (listener >= 0)
        close(listener);
    if (out[0] >= 0)
        close(out[0]);
    if (out[1] >= 0)
        close(out[1]);
    if (qmp_path)
        unlink(qmp_path);
    return ret;
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

/* Prints the usage; returns the bad-command-line exit status. */
static int ctl_usage(void)
{
    fprintf(stderr, "usage: ctlbench [--warmup N] [--gap MS] [--timeout SECONDS] http|qmp|kvmtool "
                    "SOCKET CYCLES\n"
                    "       ctlbench [--timeout SECONDS] http-snapshot SOCKET STATE MEM\n"
                    "       ctlbench [--timeout SECONDS] qmp-migrate SOCKET URI\n"
                    "       ctlbench exec -- ARGV...\n"
                    "       ctlbench [--timeout SECONDS] [--qmp-listen PATH] launch MATCH -- "
                    "ARGV...\n");
    return 2;
}

/* The cycle modes (http, qmp, kvmtool): TSV of every reported cycle. */
static int ctl_main_cycles(struct ctl_conn *c, const char *mode, const char *path, long warmup,
                           long cycles)
{
    bool http = !strcmp(mode, "http"), qmp = !strcmp(mode, "qmp");
    int cols = http ? 4 : 3;
    double *out = calloc((size_t)cycles * (size_t)cols, sizeof(*out));
    char **steps = http ? calloc((size_t)cycles, sizeof(*steps)) : NULL;
    int ret = out && (steps || !http) ? ctl_connect(c, path) : ctl_fail(c, "out of memory");

    if (!ret)
        ret = http  ? ctl_run_http(c, (int)warmup, (int)cycles, out, steps)
              : qmp ? ctl_run_qmp(c, (int)warmup, (int)cycles, out)
                    : ctl_run_lkvm(c, (int)warmup, (int)cycles, out);
    if (!ret) {
        puts(http  ? "floor\tpause\tkick\tresume\tsteps"
             : qmp ? "floor\tstop\tcont"
                   : "floor\tpause\tresume");
        for (long n = 0; n < cycles; n++) {
            for (int k = 0; k < cols; k++)
                printf("%.1f%c", out[n * cols + k], k + 1 < cols || http ? '\t' : '\n');
            if (http)
                printf("%s\n", steps[n]);
        }
    }
    for (long n = 0; steps && n < cycles; n++)
        free(steps[n]);
    free(steps);
    free(out);
    return ret;
}

int main(int argc, char **argv)
{
    struct ctl_conn c = {.fd = -1, .timeout_ms = 30000};
    const char *qmp_listen = NULL;
    long warmup = 0;
    int i = 1, ret;

    for (; i + 1 < argc && !strncmp(argv[i], "--", 2) && argv[i][2]; i += 2) {
        long n;
        if (!strcmp(argv[i], "--warmup") && (n = ctl_arg_number(argv[i + 1], 0, 1000000)) >= 0)
            warmup = n;
        else if (!strcmp(argv[i], "--timeout") && (n = ctl_arg_number(argv[i + 1], 1, 3600)) > 0)
            c.timeout_ms = (int)n * 1000;
        else if (!strcmp(argv[i], "--gap") && (n = ctl_arg_number(argv[i + 1], 0, 10000)) >= 0)
            c.gap_us = n * 1000;
        else if (!strcmp(argv[i], "--qmp-listen"))
            qmp_listen = argv[i + 1];
        else
            return ctl_usage();
    }
    if (i >= argc)
        return ctl_usage();
    const char *mode = argv[i++];
    int left = argc - i;
    c.buf = malloc(CTL_BUF_SIZE);
    if (!c.buf) {
        fprintf(stderr, "ctlbench: out of memory\n");
        return 1;
    }
    /* A VMM's helpers (QEMU's exec: migration commands) become this process's children
     * when the VMM is killed, so that they can be waited for. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    if (!strcmp(mode, "http") || !strcmp(mode, "qmp") || !strcmp(mode, "kvmtool")) {
        long cycles = left == 2 ? ctl_arg_number(argv[i + 1], 1, 10000000) : -1;
        if (cycles < 0 || qmp_listen)
            return ctl_usage();
        ret = ctl_main_cycles(&c, mode, argv[i], warmup, cycles);
    } else if (!strcmp(mode, "http-snapshot") || !strcmp(mode, "qmp-migrate")) {
        bool http = !strcmp(mode, "http-snapshot");
        double us = 0;
        if (left != (http ? 3 : 2) || qmp_listen || warmup)
            return ctl_usage();
        ret = ctl_connect(&c, argv[i]);
        if (!ret)
            ret = http ? ctl_run_http_snapshot(&c, argv[i + 1], argv[i + 2], &us)
                       : ctl_run_qmp_migrate(&c, argv[i + 1], &us);
        if (!ret)
            printf("create\n%.1f\n", us);
    } else if (!strcmp(mode, "exec")) {
        double us = 0;
        if (left < 2 || strcmp(argv[i], "--") != 0 || qmp_listen || warmup)
            return ctl_usage();
        ret = ctl_run_exec(&c, argv + i + 1, &us);
        if (!ret)
            printf("exec\n%.1f\n", us);
    } else if (!strcmp(mode, "launch")) {
        double t[3] = {-1, -1, -1};
        char line[256] = "";
        if (left < 3 || strcmp(argv[i + 1], "--") != 0 || warmup)
            return ctl_usage();
        ret = ctl_run_launch(&c, argv[i], qmp_listen, argv + i + 2, t, line, sizeof(line));
        if (!ret)
            printf("first\tloaded\tcont\tline\n%.1f\t%.1f\t%.1f\t%s\n", t[0], t[1], t[2], line);
    } else {
        return ctl_usage();
    }
    if (c.fd >= 0)
        close(c.fd);
    if (!ret && fflush(stdout) != 0)
        ret = ctl_fail(&c, "writing the results: %s", strerror(errno));
    if (ret < 0)
        fprintf(stderr, "ctlbench: %s\n", c.err);
    free(c.buf);
    return ret < 0 ? 1 : 0;
}
