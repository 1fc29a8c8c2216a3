/*
 * petrel's HTTP server for the API (api_http.c) without a VM: the head's end found and
 * the head parsed in place (what is refused, and why), then whole connections over a
 * socketpair on a loop of their own: requests split byte by byte, pipelined, with bodies
 * at and over the limits, refused ones (chunked bodies, bad lengths, garbage, an unknown
 * method or expectation), replies that come later, and hostile clients (a request that
 * never ends, a client that never reads, too many connections).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "petrel/api_http.h"

/* ---- the parser ---- */

static int parse(const char *text, struct api_http_head *h)
{
    static char buf[API_HTTP_HEAD_MAX + 64];
    size_t len = strlen(text), scan = 0;

    memcpy(buf, text, len);
    ssize_t end = api_http_head_end(buf, len, &scan);
    assert_int_equal(end, (ssize_t)len); /* the tests' heads end where their text does */
    return api_http_parse_head(buf, (size_t)end, h);
}

/* The head's end is found however the bytes come, at the same place as all at once. */
static void test_head_end_any_split(void **state)
{
    static const char *const heads[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT",
        "GET / HTTP/1.1\nHost: x\n\nNEXT",
        "GET / HTTP/1.1\r\nHost: x\n\r\nNEXT",
        "GET / HTTP/1.1\r\n\r\n",
    };
    (void)state;

    for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
        const char *t = heads[k];
        size_t len = strlen(t), scan = 0;
        ssize_t whole = api_http_head_end(t, len, &scan);
        size_t want = strstr(t, "NEXT") ? (size_t)(strstr(t, "NEXT") - t) : len;
        assert_int_equal(whole, (ssize_t)want);
        /* Byte by byte: 0 until the last byte of the empty line. */
        scan = 0;
        for (size_t n = 1; n <= want; n++) {
            ssize_t r = api_http_head_end(t, n, &scan);
            assert_int_equal(r, n == want ? (ssize_t)want : 0);
        }
    }
}

/* A head without its end is refused at 64 KiB, not read on forever. */
static void test_head_end_limit(void **state)
{
    char *buf = malloc(API_HTTP_HEAD_MAX + 16);
    size_t scan = 0;
    (void)state;

    assert_non_null(buf);
    memset(buf, 'a', API_HTTP_HEAD_MAX + 16);
    memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(api_http_head_end(buf, API_HTTP_HEAD_MAX - 1, &scan), 0);
    assert_int_equal(api_http_head_end(buf, API_HTTP_HEAD_MAX, &scan), -EMSGSIZE);
    /* An end just past the limit is refused too. */
    scan = 0;
    memcpy(buf + API_HTTP_HEAD_MAX - 2, "\r\n\r\n", 4);
    assert_int_equal(api_http_head_end(buf, API_HTTP_HEAD_MAX + 2, &scan), -EMSGSIZE);
    free(buf);
}

static void test_parse_request(void **state)
{
    struct api_http_head h;
    (void)state;

    assert_int_equal(parse("PATCH /vm?x=1 HTTP/1.1\r\nHost: x\r\ncontent-length:  18 \r\n"
                           "Connection: keep-alive, Close\r\n\r\n",
                           &h),
                     0);
    assert_int_equal(h.method, API_M_PATCH);
    assert_string_equal(h.target, "/vm?x=1");
    assert_int_equal(h.minor, 1);
    assert_true(h.has_length);
    assert_int_equal(h.length, 18);
    assert_true(h.close);
    assert_false(h.has_te);
    assert_int_equal(h.expect, 0);

    /* HTTP/1.0 closes unless asked not to; bare LF line ends. */
    assert_int_equal(parse("GET / HTTP/1.0\n\n", &h), 0);
    assert_true(h.close);
    assert_int_equal(parse("GET / HTTP/1.0\nConnection: keep-alive\n\n", &h), 0);
    assert_false(h.close);

    /* A method petrel does not know parses (501 is the server's); so do the same length twice. */
    assert_int_equal(
        parse("BREW /pot HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", &h), 0);
    assert_int_equal(h.method, API_M_UNKNOWN);
    assert_int_equal(h.length, 2);

    assert_int_equal(parse("PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &h), 0);
    assert_true(h.has_te);
    assert_int_equal(parse("PUT /a HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n", &h), 0);
    assert_int_equal(h.expect, 1);
    assert_int_equal(parse("PUT /a HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", &h), 0);
    assert_int_equal(h.expect, -1);
}

/* What is refused as malformed (the server answers 400 and closes). */
static void test_parse_refuses(void **state)
{
    static const char *const bad[] = {
        "GET /\r\n\r\n",                                  /* no version */
        "GET / HTTP/2.0\r\n\r\n",                         /* not 1.x */
        "GET / HTTP/1.1 \r\n\r\n",                        /* a space too many */
        "GET  / HTTP/1.1\r\n\r\n",                        /* an empty target */
        "G(T / HTTP/1.1\r\n\r\n",                         /* not a token */
        " GET / HTTP/1.1\r\n\r\n",                        /* no method */
        "GET /\x01 HTTP/1.1\r\n\r\n",                     /* a control byte in the target */
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",             /* a space before the colon */
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",              /* no colon */
        "GET / HTTP/1.1\r\n: x\r\n\r\n",                  /* no name */
        "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",      /* obsolete folding */
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",             /* a control byte in a value */
        "PUT / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",   /* not digits */
        "PUT / HTTP/1.1\r\nContent-Length: 5a\r\n\r\n",   /* not digits */
        "PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",   /* not digits */
        "PUT / HTTP/1.1\r\nContent-Length:\r\n\r\n",      /* empty */
        "PUT / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", /* a list */
        "PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",   /* 20 digits */
        "PUT / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", /* two lengths */
        "\r\n",                                                             /* nothing */
    };
    struct api_http_head h;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(bad[i], &h) != -EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
}

/* ---- connections ---- */

enum mode { M_SYNC, M_DEFER, M_BIG };

static void fx_after(void *arg);

struct seen {
    enum api_method method;
    char target[128];
    char body[64];
    size_t body_len;
    bool body_null;
};

static struct fx {
    struct event_base *base;
    struct api_http h;
    int cfd; /* the client's end */
    enum mode mode;
    struct seen seen[64];
    unsigned nseen;
    struct api_req *deferred[8];
    unsigned ndeferred;
    unsigned after_at; /* nseen when a reply's after() ran (0: not yet) */
    char got[1 << 20]; /* what the client read */
    size_t got_len;
    bool eof;
} * F;

static void fx_handle(void *arg, struct api_req *req)
{
    struct seen *s = &F->seen[F->nseen < 64 ? F->nseen : 63];
    (void)arg;

    F->nseen++;
    s->method = req->method;
    snprintf(s->target, sizeof(s->target), "%s", req->target);
    s->body_len = req->body_len;
    s->body_null = req->body == NULL;
    if (req->body)
        memcpy(s->body, req->body, req->body_len < 63 ? req->body_len : 63);
    if (F->mode == M_DEFER) {
        F->deferred[F->ndeferred++] = req;
        return;
    }
    if (!strcmp(req->target, "/after")) {
        req->after = fx_after;
        req->after_arg = s;
        api_http_reply(req, 204, NULL, NULL, 0);
        return;
    }
    if (F->mode == M_BIG) {
        static char big[256 * 1024];
        memset(big, 'b', sizeof(big));
        api_http_reply(req, 200, "text/plain", big, sizeof(big));
        return;
    }
    /* The reply's body: the target, then the body. */
    char body[256];
    int n = snprintf(body, sizeof(body), "%s|%.*s", req->target,
                     (int)(req->body ? req->body_len : 0), req->body ? req->body : "");
    api_http_reply(req, 200, "text/plain", body, (size_t)n);
}

static void fx_after(void *arg)
{
    (void)arg;
    F->after_at = F->nseen;
}

static int fx_setup(void **state)
{
    int sv[2];
    (void)state;

    F = calloc(1, sizeof(*F));
    if (!F || !(F->base = event_base_new()))
        return -1;
    if (api_http_start(&F->h, F->base, -1, fx_handle, NULL))
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    F->cfd = sv[0];
    return api_http_adopt(&F->h, sv[1]);
}

static int fx_teardown(void **state)
{
    (void)state;
    api_http_stop(&F->h);
    close(F->cfd);
    event_base_free(F->base);
    free(F);
    return 0;
}

/* Turns the loop until nothing happens, reading what the client is sent. */
static void fx_settle(void)
{
    for (int quiet = 0, guard = 0; quiet < 3 && guard < 100000; guard++) {
        size_t before = F->got_len;
        unsigned seen = F->nseen;
        event_base_loop(F->base, EVLOOP_NONBLOCK);
        ssize_t n = -1;
        while (F->got_len < sizeof(F->got) - 1 &&
               (n = recv(F->cfd, F->got + F->got_len, sizeof(F->got) - 1 - F->got_len,
                         MSG_DONTWAIT)) > 0)
            F->got_len += (size_t)n;
        if (n == 0)
            F->eof = true;
        F->got[F->got_len] = '\0';
        quiet = F->got_len == before && F->nseen == seen ? quiet + 1 : 0;
    }
}

static void fx_send(const char *data, size_t len)
{
    assert_int_equal(send(F->cfd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void fx_sends(const char *text)
{
    fx_send(text, strlen(text));
}

/* How many times s occurs in what the client got. */
static unsigned fx_count(const char *s)
{
    unsigned n = 0;
    for (const char *p = F->got; (p = strstr(p, s)); p++)
        n++;
    return n;
}

/* A request with a body, sent a byte at a time with the loop turning: one request, whole. */
static void test_byte_by_byte(void **state)
{
    static const char req[] = "PUT /trace HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n"
                              "{\"filter\":\"x\"}";
    (void)state;

    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        fx_send(req + i, 1);
        fx_settle();
        assert_int_equal(F->nseen, i == sizeof(req) - 2 ? 1 : 0);
    }
    assert_int_equal(F->seen[0].method, API_M_PUT);
    assert_string_equal(F->seen[0].target, "/trace");
    assert_int_equal(F->seen[0].body_len, 14);
    assert_memory_equal(F->seen[0].body, "{\"filter\":\"x\"}", 14);
    assert_non_null(strstr(F->got, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(F->got, "Content-Length: 21\r\n\r\n/trace|{\"filter\":\"x\"}"));
    assert_false(F->eof);
}

/* Pipelined requests in one write: each served once, the replies in order, keep-alive. */
static void test_pipelined(void **state)
{
    static const char reqs[] = "GET /a HTTP/1.1\r\n\r\n"
                               "\r\n" /* an empty line between requests is skipped */
                               "PATCH /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
                               "GET /c HTTP/1.1\r\n\r\n";
    (void)state;

    fx_send(reqs, sizeof(reqs) - 1);
    fx_settle();
    assert_int_equal(F->nseen, 3);
    char *a = strstr(F->got, "/a|"), *b = strstr(F->got, "/b|xyz"), *c = strstr(F->got, "/c|");
    assert_true(a && b && c && a < b && b < c);
    assert_int_equal(fx_count("HTTP/1.1 200 OK"), 3);
    assert_false(F->eof);
}

/* Replies that come later leave in order, and the next request waits for them. */
static void test_deferred_in_order(void **state)
{
    (void)state;

    F->mode = M_DEFER;
    fx_sends("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    fx_settle();
    assert_int_equal(F->nseen, 1); /* /2 waits for /1's answer */
    assert_int_equal(F->got_len, 0);
    api_http_reply(F->deferred[0], 204, NULL, NULL, 0);
    fx_settle();
    assert_int_equal(F->nseen, 2);
    assert_string_equal(F->seen[1].target, "/2");
    api_http_reply(F->deferred[1], 409, "application/json", "{}", 2);
    fx_settle();
    char *r1 = strstr(F->got, "HTTP/1.1 204 No Content\r\n\r\n");
    char *r2 = strstr(F->got, "HTTP/1.1 409 Conflict\r\n");
    assert_true(r1 && r2 && r1 < r2);
    assert_null(memmem(r1, (size_t)(r2 - r1), "Content-Length", 14)); /* none on a 204 */
}

/* A client that leaves while its reply is owed: the reply, when it comes, goes nowhere. */
static void test_deferred_client_gone(void **state)
{
    (void)state;

    F->mode = M_DEFER;
    fx_sends("GET /1 HTTP/1.1\r\n\r\n");
    fx_settle();
    assert_int_equal(F->nseen, 1);
    close(F->cfd);
    F->cfd = -1;
    event_base_loop(F->base, EVLOOP_NONBLOCK);
    assert_int_equal(F->h.nr_conns, 1); /* kept for the reply */
    api_http_reply(F->deferred[0], 204, NULL, NULL, 0);
    event_base_loop(F->base, EVLOOP_NONBLOCK);
    assert_int_equal(F->h.nr_conns, 0);
}

/* A body over 16 KiB is read and dropped: the handler sees its length only; the connection goes on.
 */
static void test_body_over_keep(void **state)
{
    char *big = malloc(20000);
    (void)state;

    assert_non_null(big);
    memset(big, 'z', 20000);
    fx_sends("PUT /x HTTP/1.1\r\nContent-Length: 20000\r\n\r\n");
    for (size_t i = 0; i < 20000; i += 5000) {
        fx_send(big + i, 5000);
        fx_settle();
    }
    fx_sends("GET /next HTTP/1.1\r\n\r\n");
    fx_settle();
    assert_int_equal(F->nseen, 2);
    assert_true(F->seen[0].body_null);
    assert_int_equal(F->seen[0].body_len, 20000);
    assert_string_equal(F->seen[1].target, "/next");
    assert_false(F->eof);
    free(big);
}

/* Refused before any handler: the status, a JSON fault, and the connection closed. */
static void check_refused_len(const char *req, size_t len, const char *status, bool closes)
{
    fx_send(req, len);
    fx_settle();
    assert_int_equal(F->nseen, 0);
    if (strncmp(F->got, status, strlen(status)))
        fail_msg("\"%s\" got \"%.80s\", want \"%s\"", req, F->got, status);
    assert_non_null(strstr(F->got, "{\"fault_message\":\""));
    assert_int_equal(F->eof, closes);
}

static void check_refused(const char *req, const char *status, bool closes)
{
    check_refused_len(req, strlen(req), status, closes);
}

static void test_chunked_body_refused(void **state)
{
    (void)state;
    check_refused("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                  "HTTP/1.1 411 Length Required\r\n", true);
}

static void test_body_over_limit_refused(void **state)
{
    (void)state;
    check_refused("PUT /x HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n",
                  "HTTP/1.1 413 Content Too Large\r\n", true);
}

static void test_bad_length_refused(void **state)
{
    (void)state;
    check_refused("PUT /x HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n",
                  true);
}

static void test_garbage_refused(void **state)
{
    (void)state;
    static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n";
    check_refused_len(tls, sizeof(tls) - 1, "HTTP/1.1 400 Bad Request\r\n", true);
}

static void test_expectation_refused(void **state)
{
    (void)state;
    check_refused("PUT /x HTTP/1.1\r\nExpect: tea\r\nContent-Length: 2\r\n\r\n",
                  "HTTP/1.1 417 Expectation Failed\r\n", true);
}

/* A head over 64 KiB: 400 and closed, however long the client goes on. */
static void test_head_too_long(void **state)
{
    char chunk[4096];
    (void)state;

    memset(chunk, 'h', sizeof(chunk));
    fx_sends("GET / HTTP/1.1\r\nX-Big: ");
    for (int i = 0; i < 17 && !F->eof; i++) {
        if (send(F->cfd, chunk, sizeof(chunk), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            break;
        fx_settle();
    }
    fx_settle();
    assert_int_equal(F->nseen, 0);
    assert_int_equal(strncmp(F->got, "HTTP/1.1 400 Bad Request\r\n", 26), 0);
    assert_true(F->eof);
}

/* An unknown method: 501, and the connection serves the next request. */
static void test_unknown_method(void **state)
{
    (void)state;
    fx_sends("BREW /pot HTTP/1.1\r\nContent-Length: 3\r\n\r\nteaGET /after HTTP/1.1\r\n\r\n");
    fx_settle();
    assert_int_equal(strncmp(F->got, "HTTP/1.1 501 Not Implemented\r\n", 30), 0);
    assert_int_equal(F->nseen, 1);
    assert_string_equal(F->seen[0].target, "/after");
    assert_false(F->eof);
}

/* Expect: 100-continue: the interim answer once the head is read, then the reply. */
static void test_100_continue(void **state)
{
    (void)state;
    fx_sends("PUT /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    fx_settle();
    assert_string_equal(F->got, "HTTP/1.1 100 Continue\r\n\r\n");
    fx_sends("ok");
    fx_settle();
    assert_non_null(strstr(F->got, "\r\n\r\nHTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(F->got, "/c|ok"));
}

/* Connection: close, and HTTP/1.0: the reply, then the end of the stream. */
static void test_connection_close(void **state)
{
    (void)state;
    fx_sends("GET /1 HTTP/1.0\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    fx_settle();
    assert_int_equal(F->nseen, 1);
    assert_non_null(strstr(F->got, "Connection: close\r\n"));
    assert_true(F->eof);
}

/* HEAD: the head of the reply, with its length, but no body (RFC 9110 9.3.2). */
static void test_head_has_no_body(void **state)
{
    (void)state;
    fx_sends("HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n");
    fx_settle();
    assert_int_equal(F->nseen, 2);
    assert_null(strstr(F->got, "/h|"));
    assert_non_null(strstr(F->got, "Content-Length: 3\r\n\r\nHTTP/1.1 200 OK"));
}

/*
 * A reply's after() (a stop after its 204) runs once the reply has left and before the
 * request pipelined behind it is taken (fuzz_api_http found it run later, from where a
 * reply it made on the same connection could free it).
 */
static void test_after_runs_before_the_next_request(void **state)
{
    (void)state;
    fx_sends("GET /after HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
    fx_settle();
    assert_int_equal(F->nseen, 2);
    assert_int_equal(F->after_at, 1); /* /next not seen yet when it ran */
}

/* A request that never ends (slowloris): the connection closes at the deadline. */
static void test_partial_request_times_out(void **state)
{
    (void)state;
    F->h.timeout_ms = 20;
    fx_sends("GET / HTTP/1.1\r\nHost:");
    fx_settle();
    assert_int_equal(F->h.nr_conns, 1);
    /* Waits for the deadline's event itself, not a time of the test's choosing. */
    while (F->h.nr_conns && event_base_loop(F->base, EVLOOP_ONCE) == 0)
        ;
    assert_int_equal(F->h.nr_conns, 0);
    assert_int_equal(recv(F->cfd, F->got, sizeof(F->got), MSG_DONTWAIT), 0);
}

/* A client that sends requests and never reads: one reply waits, no more are made, then it closes.
 */
static void test_client_never_reads(void **state)
{
    static const char get[] = "GET /big HTTP/1.1\r\n\r\n";
    int small = 4096;
    (void)state;

    F->mode = M_BIG;
    F->h.timeout_ms = 20;
    setsockopt(F->cfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    for (int i = 0; i < 50; i++)
        fx_send(get, sizeof(get) - 1);
    for (int i = 0; i < 10; i++)
        event_base_loop(F->base, EVLOOP_NONBLOCK);
    assert_int_equal(F->nseen, 1); /* the rest wait behind the reply the client does not take */
    while (F->h.nr_conns && event_base_loop(F->base, EVLOOP_ONCE) == 0)
        ;
    assert_int_equal(F->h.nr_conns, 0);
    assert_int_equal(F->nseen, 1);
}

/* At most API_HTTP_CONNS_MAX connections. */
static void test_connection_bound(void **state)
{
    int fds[API_HTTP_CONNS_MAX][2];
    (void)state;

    for (unsigned i = 1; i < API_HTTP_CONNS_MAX; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[i]), 0);
        assert_int_equal(api_http_adopt(&F->h, fds[i][1]), 0);
    }
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[0]), 0);
    assert_int_equal(api_http_adopt(&F->h, fds[0][1]), -EMFILE);
    close(fds[0][0]);
    close(fds[0][1]);
    for (unsigned i = 1; i < API_HTTP_CONNS_MAX; i++)
        close(fds[i][0]);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_end_any_split),
        cmocka_unit_test(test_head_end_limit),
        cmocka_unit_test(test_parse_request),
        cmocka_unit_test(test_parse_refuses),
        T(test_byte_by_byte),
        T(test_pipelined),
        T(test_deferred_in_order),
        T(test_deferred_client_gone),
        T(test_body_over_keep),
        T(test_chunked_body_refused),
        T(test_body_over_limit_refused),
        T(test_bad_length_refused),
        T(test_garbage_refused),
        T(test_expectation_refused),
        T(test_head_too_long),
        T(test_unknown_method),
        T(test_100_continue),
        T(test_connection_close),
        T(test_head_has_no_body),
        T(test_after_runs_before_the_next_request),
        T(test_partial_request_times_out),
        T(test_client_never_reads),
        T(test_connection_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
