/*
 * The control API: HTTP/1.1 + JSON on a unix socket, served on the VM's loop
 * by petrel's own HTTP server (api_http.h), following Firecracker's paths and bodies where the same
 * thing exists. docs/api.md is the reference. The CLI is a thin client of it
 * (api_client_call()).
 *
 * Names and paths: a VM named NAME has its socket at --api-sock PATH, else
 * $XDG_RUNTIME_DIR/petrel/NAME.sock, else /run/petrel/NAME.sock for root
 * (/tmp/petrel-UID/NAME.sock for others). PATH.lock, held with flock() while
 * the VM lives, makes names unique and tells live sockets from stale ones.
 * The default directory is trusted, by the server and the clients, only while
 * it is the user's alone (dir_open_private()); sockets are 0600 from birth.
 */
#ifndef PETREL_API_H
#define PETREL_API_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "petrel/api_http.h"
#include "petrel/util.h"

#define API_MAX_BODY (16 * 1024) /* petrel's own limit, answered in JSON */
#define API_NAME_MAX 64
#define API_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

struct vm;
struct evconnlistener;

/* Checks a VM name: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool api_name_valid(const char *name);

/*
 * The directory VM sockets live in (created on demand by api_server_start;
 * both it and the clients refuse one that is not this user's alone).
 */
int api_runtime_dir(char *buf, size_t len) MUST_CHECK;

/* The socket path for NAME. 0, or -ENAMETOOLONG. */
int api_sock_path(const char *name, char *buf, size_t len) MUST_CHECK;

/* The console socket next to an API socket: NAME.sock -> NAME.console. */
int api_console_path(const char *sock_path, char *buf, size_t len) MUST_CHECK;

/* GET /events (api_events.c): the clients listening, at most API_EVENTS_MAX_CLIENTS. */
#define API_EVENTS_MAX_CLIENTS 16
#define API_EVENTS_QUEUE_MAX   (16 * 1024) /* a client's lines not yet written, in bytes */
#define API_EVENTS_SNDBUF      (16 * 1024) /* its socket's send buffer (SO_SNDBUF) */
#define API_EVENT_LINE_MAX     512         /* one event's line */

struct api_events_client {
    struct api_conn *conn; /* NULL: a free slot */
    uint64_t dropped;      /* events dropped since the last one sent */
};

struct api_events {
    struct api_events_client clients[API_EVENTS_MAX_CLIENTS];
    size_t limit;     /* API_EVENTS_QUEUE_MAX (a test may set less) */
    uint64_t dropped; /* every client's, in all */
};

/*
 * One event as a line of JSON: {"event": EVENT, "time": CLOCK_MONOTONIC seconds} and,
 * when both are given, KEY: VALUE (a string), then '\n'. Returns the line's length, or
 * -ENOSPC when it does not fit in len, -ENOMEM.
 */
int api_event_format(char *buf, size_t len, const char *event, uint64_t time_ns, const char *key,
                     const char *value);

/* What to do with a line for a client (api_events_plan()). */
enum api_events_plan {
    API_EVENTS_DROP,        /* it does not fit: drop it and count it */
    API_EVENTS_SEND,        /* send it */
    API_EVENTS_SEND_NOTICE, /* send the "dropped" notice (notice bytes), then it */
};

/*
 * Whether a line of line bytes goes to a client that has queued bytes not yet
 * written, at most limit, and dropped events since its last line (then the
 * notice must fit too). Pure: the unit tests drive it.
 */
enum api_events_plan api_events_plan(uint64_t dropped, size_t queued, size_t line, size_t notice,
                                     size_t limit);

/* Hooks ev to the VM's events (vm->on_event). */
void api_events_init(struct api_events *ev, struct vm *vm, size_t limit);

/*
 * Answers GET /events: starts the chunked reply with a first line
 * {"event": "state", "state": STATE}. -EBUSY when every slot is taken.
 */
int api_events_open(struct api_events *ev, struct api_req *req, const char *state);

/* Ends every client's reply and writes what is left, without waiting (petrel exits). */
void api_events_close_all(struct api_events *ev);

struct api_server {
    struct vm *vm;
    struct api_events events;
    char name[API_NAME_MAX + 1];
    char sock_path[API_PATH_MAX];
    char lock_path[API_PATH_MAX + 8];
    int lock_fd;
    int sock_fd; /* until the HTTP server takes it */
    struct api_http http;
    bool serving;
    /* GET /'s body for each enum vm_state, made on first use (len 0: not yet). */
    struct {
        char text[256];
        size_t len;
    } root[5];
    /* VM_CONSOLE_SOCKET: clients of `petrel console NAME` connect here. */
    char console_path[API_PATH_MAX];
    struct evconnlistener *console_listener;
};

/*
 * Takes the name's lock, binds the socket (mode 0600) and serves the API on
 * the VM's loop. sock_path NULL means the default for name.
 */
int api_server_start(struct api_server *s, struct vm *vm, const char *name, const char *sock_path,
                     struct errbuf *eb) MUST_CHECK;

/* Stops serving and removes the socket and the lock file. Idempotent. */
void api_server_stop(struct api_server *s);

/* A parsed HTTP response from the API. */
struct api_response {
    int status;
    char *body; /* NUL-terminated, malloc()ed (may be empty) */
};

/*
 * One request to the API socket at sock_path, over a plain socket (libevent
 * 2.1's HTTP client cannot reach a unix socket). body may be NULL. Waits at
 * most timeout_ms for the answer. 0 or -errno with a message in eb.
 */
int api_client_call(const char *sock_path, const char *method, const char *path, const char *body,
                    int timeout_ms, struct api_response *resp, struct errbuf *eb) MUST_CHECK;

void api_response_free(struct api_response *resp);

/*
 * Opens the default socket directory for a client (copying its path to dir),
 * which must be this user's alone, as api_server_start() requires: a socket in
 * a directory another user made or can write may be theirs. Returns the
 * directory's fd, or -errno with a message naming it (-ENOENT: it does not
 * exist, so no VM is running).
 */
int api_client_open_dir(char *dir, size_t len, struct errbuf *eb) MUST_CHECK;

/* A chunked body being decoded (api_chunked_decode()); zero it to start. */
struct api_chunked {
    int state;
    uint64_t left; /* the chunk's bytes still to come, or its size being read */
    unsigned digits;
};

/*
 * Decodes the next len bytes of a chunked body, in place: the payload they hold is
 * moved to the start of buf. Returns its length, or -EPROTO when they are not valid
 * chunked encoding (or anything follows the last chunk). Exposed for the unit tests
 * and the fuzz target.
 */
ssize_t api_chunked_decode(struct api_chunked *c, char *buf, size_t len);

/* Whether the last chunk (and its trailer) has been decoded. */
bool api_chunked_done(const struct api_chunked *c);

/* A stream of lines from the API (GET /events). */
struct api_stream {
    int fd;
    struct api_chunked ch;
    char buf[16384]; /* decoded bytes not yet returned (len), then raw ones (raw) */
    size_t len, raw;
};

/*
 * GET path on the API socket at sock_path, waiting at most timeout_ms for the head of
 * the answer, which must be 200 with a chunked body. 0, or -errno with a message in eb
 * (-ENOENT, -ECONNREFUSED from connect()).
 */
int api_stream_open(struct api_stream *s, const char *sock_path, const char *path, int timeout_ms,
                    struct errbuf *eb) MUST_CHECK;

/*
 * The stream's next line into line (NUL-terminated, without its '\n'): 1; 0 when the
 * stream ended (petrel exited); -ETIMEDOUT once CLOCK_MONOTONIC passes deadline_ms (-1:
 * no deadline); -EMSGSIZE for a line of size bytes or more; -EPROTO, -errno.
 */
int api_stream_line(struct api_stream *s, char *line, size_t size, long long deadline_ms);

void api_stream_close(struct api_stream *s);

/*
 * Parses a raw HTTP response (status line, headers, body). Exposed for the
 * unit tests and the fuzz target. 0 or -EPROTO.
 */
int api_parse_response(const char *buf, size_t len, struct api_response *resp) MUST_CHECK;

/*
 * Validates a request body for a route: body must be a JSON object whose
 * fields are all in allowed (NULL-terminated) and are strings. Returns a
 * jansson object (to json_decref) or NULL with a fault message in eb.
 */
struct json_t;
struct json_t *api_parse_body(const char *body, size_t len, const char *const *allowed,
                              struct errbuf *eb);

#endif
