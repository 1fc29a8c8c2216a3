/*
 * petrel's own HTTP/1.1 server for the API socket (api_http.c), on the VM's loop: plain
 * libevent events on the fds, no evhttp. Per connection a fixed input buffer read once
 * per readiness, the request parsed in place (no allocation, no scanf), one request at
 * a time in the order they came (keep-alive, pipelining), each reply formatted and
 * written with one system call; what the socket does not take waits for EV_WRITE.
 * A request's reply may come later (a pause answers when every vCPU has parked): the
 * connection reads on but serves its next request only after it.
 *
 * Limits (docs/api.md): a head of API_HTTP_HEAD_MAX bytes (then 400 and close), a body
 * of API_MAX_BODY kept for the handler, a longer one up to API_HTTP_BODY_LIMIT read and
 * dropped (the handler sees its length, no bytes), a longer one 413 and close; bodies
 * only by Content-Length (Transfer-Encoding: 411 and close); an unknown method 501;
 * Expect other than 100-continue 417 and close. Hostile clients: a request not whole
 * API_HTTP_TIMEOUT_S seconds after its first byte, or a reply the client has not taken
 * any of for as long, closes the connection; at most API_HTTP_CONNS_MAX connections
 * (one more gets 503 and is closed).
 */
#ifndef PETREL_API_HTTP_H
#define PETREL_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event_struct.h>

#include "petrel/util.h"

#define API_HTTP_HEAD_MAX   (64 * 1024)   /* request line and headers */
#define API_HTTP_BODY_KEEP  (16 * 1024)   /* a body kept for the handler (API_MAX_BODY) */
#define API_HTTP_BODY_LIMIT (1024 * 1024) /* a longer body: 413 */
#define API_HTTP_CONNS_MAX  64
#define API_HTTP_TIMEOUT_S  10
#define API_HTTP_OUT_MAX    (4 * 1024 * 1024) /* a reply or stream waiting for the client */

/* The methods petrel knows; API_M_UNKNOWN is answered 501. */
enum api_method {
    API_M_UNKNOWN,
    API_M_GET,
    API_M_HEAD,
    API_M_POST,
    API_M_PUT,
    API_M_DELETE,
    API_M_OPTIONS,
    API_M_TRACE,
    API_M_CONNECT,
    API_M_PATCH,
};

/* A request's head as api_http_parse_head() found it. */
struct api_http_head {
    enum api_method method;
    char *target; /* NUL-terminated in place (the buffer is written to) */
    size_t target_len;
    unsigned minor;  /* HTTP/1.minor */
    uint64_t length; /* Content-Length (0 without) */
    bool has_length;
    bool has_te; /* a Transfer-Encoding header: not taken */
    bool close;  /* Connection: close, or HTTP/1.0 without keep-alive */
    int expect;  /* 0 none, 1 100-continue, -1 another expectation */
};

/*
 * Looks for the end of a head (the empty line) in buf[0, len), resuming at *scan (0 at
 * first; kept between calls so that a head that comes a byte at a time costs linear
 * time). Returns the head's length with its empty line, 0 while it is not whole, or
 * -EMSGSIZE once API_HTTP_HEAD_MAX bytes hold no end.
 */
ssize_t api_http_head_end(const char *buf, size_t len, size_t *scan);

/*
 * Parses a whole head (len bytes from api_http_head_end()) in place: 0, or -EINVAL for a
 * malformed one (400). Lines may end in CRLF or a bare LF. Exposed for the unit tests.
 */
int api_http_parse_head(char *buf, size_t len, struct api_http_head *h);

struct api_conn;
struct api_http;

/* One request, handed to the server's handler. */
struct api_req {
    enum api_method method;
    const char *target; /* NUL-terminated: the path and any query string */
    const char *body;   /* body_len bytes, or NULL when the body was over API_HTTP_BODY_KEEP */
    size_t body_len;
    struct api_conn *conn;
    /* Run once the reply has left (or the connection is gone), e.g. a stop after its 204. */
    void (*after)(void *arg);
    void *after_arg;
};

typedef void api_http_handler(void *arg, struct api_req *req);
typedef void api_http_close_fn(struct api_conn *c, void *arg);

struct api_http {
    struct event_base *base;
    int fd; /* the listening socket (owned) */
    struct event accept_ev;
    bool accepting;
    api_http_handler *handle;
    void *arg;
    struct api_conn *conns; /* a list */
    unsigned nr_conns;
    unsigned timeout_ms; /* API_HTTP_TIMEOUT_S (a test may set less) */
};

/*
 * Serves the listening socket fd (taken over; -1: none, connections come only through
 * api_http_adopt()) on base, handing requests to handle(arg, req).
 */
int api_http_start(struct api_http *h, struct event_base *base, int fd, api_http_handler *handle,
                   void *arg) MUST_CHECK;

/* Serves a connected socket (taken over), as if accepted. 0, -EMFILE at the bound, -ENOMEM. */
int api_http_adopt(struct api_http *h, int fd);

/* Writes what each connection has queued, once and without waiting; closes them all. */
void api_http_stop(struct api_http *h);

/*
 * Answers req (once): status, and a body of len bytes of content type ctype (NULL: no
 * body, as for 204). The request's connection goes on with its next request, or closes
 * if the client asked it to.
 */
void api_http_reply(struct api_req *req, int status, const char *ctype, const char *body,
                    size_t len);

/*
 * Answers req with status 200 and a body that goes on (chunked; HTTP/1.0: until the
 * connection closes): the connection serves no more requests. close_fn(c, arg) runs when
 * it closes.
 */
void api_http_stream_start(struct api_req *req, const char *ctype, api_http_close_fn *close_fn,
                           void *arg);

/* Sends len bytes on a stream (one chunk). 0, or -EPIPE when the connection is gone. */
int api_http_stream_send(struct api_conn *c, const char *data, size_t len);

/* Ends a stream (the last chunk), writes it without waiting, and closes the connection. */
void api_http_stream_end(struct api_conn *c);

/* The bytes a connection has queued and not written yet. */
size_t api_http_queued(const struct api_conn *c);

/* The connection's socket (to set its send buffer). */
int api_http_fd(const struct api_conn *c);

#endif
