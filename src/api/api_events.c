/*
 * GET /events: a chunked response of JSON lines that stays open until petrel exits,
 * one line per thing that happened to the VM (vm_emit()), so that a script waits for
 * it instead of polling GET /vm.
 *
 * Neither a slow nor a dead client holds the loop up or makes petrel's memory grow:
 * each client's lines wait in its connection's output buffer, at most
 * API_EVENTS_QUEUE_MAX bytes of them (behind a socket send buffer of
 * API_EVENTS_SNDBUF); an event that does not fit is dropped and
 * counted, and the next one that fits is preceded by {"event": "dropped", "count": N}.
 * A client that goes away is forgotten when its connection closes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <jansson.h>

#include "petrel/api.h"
#include "petrel/vm.h"

int api_event_format(char *buf, size_t len, const char *event, uint64_t time_ns, const char *key,
                     const char *value)
{
    json_t *o = json_pack("{s:s, s:f}", "event", event, "time", (double)time_ns / 1e9);

    if (!o)
        return -ENOMEM;
    if (key && value && json_object_set_new(o, key, json_string(value)) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    /* The size json_dumpb() needs, whether or not it fits; +1 for the newline. */
    size_t n = json_dumpb(o, buf, len, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(o);
    if (n == 0)
        return -EINVAL;
    if (n + 1 > len)
        return -ENOSPC;
    buf[n] = '\n';
    return (int)(n + 1);
}

enum api_events_plan api_events_plan(uint64_t dropped, size_t queued, size_t line, size_t notice,
                                     size_t limit)
{
    size_t need = line + (dropped ? notice : 0);

    if (queued > limit || need > limit - queued)
        return API_EVENTS_DROP;
    return dropped ? API_EVENTS_SEND_NOTICE : API_EVENTS_SEND;
}

/* The bytes a client's connection has not written yet. */
static size_t api_events_queued(struct api_events_client *c)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn);

    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* Sends len bytes of text to a client as one chunk. */
static void api_events_send(struct api_events_client *c, const char *text, size_t len)
{
    struct evbuffer *b = evbuffer_new();

    if (!b)
        return;
    if (!evbuffer_add(b, text, len))
        evhttp_send_reply_chunk(c->req, b);
    evbuffer_free(b);
}

/* Puts one line to a client, or drops it (counted) when its queue is full. */
static void api_events_put(struct api_events *ev, struct api_events_client *c, const char *line,
                           size_t len, uint64_t now_ns)
{
    char notice[128];
    char count[24];
    int nlen = 0;

    if (c->dropped) {
        snprintf(count, sizeof(count), "%llu", (unsigned long long)c->dropped);
        nlen = api_event_format(notice, sizeof(notice), "dropped", now_ns, "count", count);
        if (nlen < 0)
            nlen = 0;
    }
    switch (api_events_plan(c->dropped, api_events_queued(c), len, (size_t)nlen, ev->limit)) {
    case API_EVENTS_DROP:
        c->dropped++;
        ev->dropped++;
        return;
    case API_EVENTS_SEND_NOTICE:
        api_events_send(c, notice, (size_t)nlen);
        c->dropped = 0;
        break;
    case API_EVENTS_SEND:
        break;
    }
    api_events_send(c, line, len);
}

/*
 * Forgets a client whose connection is closing. A client that went away (EOF) leaves its
 * request detached from the connection and not freed: libevent 2.1 waits for the reply's
 * end (evhttp_connection_incoming_fail()), which a stream never reaches, so it is freed
 * here (fuzz_api_http found ~850 bytes leaked per GET /events client that left). A request
 * still attached is freed with its connection.
 */
static void api_events_closed(struct evhttp_connection *conn, void *arg)
{
    struct api_events_client *c = arg;

    (void)conn;
    if (c->req && !evhttp_request_get_connection(c->req))
        evhttp_request_free(c->req);
    c->req = NULL;
    c->conn = NULL;
}

/* The VM's hook: one line to every client. */
static void api_events_on_vm(void *ctx, enum vm_event e, const char *detail)
{
    struct api_events *ev = ctx;
    char line[API_EVENT_LINE_MAX];
    unsigned listening = 0;

    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS; i++)
        listening += ev->clients[i].req != NULL;
    if (!listening)
        return; /* nobody to tell: no JSON made (every pause and resume comes here) */
    uint64_t now = vm_now_ns();
    int len = api_event_format(line, sizeof(line), vm_event_name(e), now, "detail", detail);
    if (len < 0)
        return;
    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS; i++)
        if (ev->clients[i].req)
            api_events_put(ev, &ev->clients[i], line, (size_t)len, now);
}

void api_events_init(struct api_events *ev, struct vm *vm, size_t limit)
{
    memset(ev, 0, sizeof(*ev));
    ev->limit = limit;
    vm->on_event = api_events_on_vm;
    vm->on_event_ctx = ev;
}

int api_events_open(struct api_events *ev, struct evhttp_request *req, const char *state)
{
    char line[API_EVENT_LINE_MAX];
    struct api_events_client *c = NULL;

    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS && !c; i++)
        if (!ev->clients[i].req)
            c = &ev->clients[i];
    if (!c)
        return -EBUSY;
    int len = api_event_format(line, sizeof(line), "state", vm_now_ns(), "state", state);
    if (len < 0)
        return len;
    memset(c, 0, sizeof(*c));
    c->req = req;
    c->conn = evhttp_request_get_connection(req);
    /*
     * The kernel's default send buffer would hold a few thousand events behind the
     * queue's bound (a unix socket's is about 200 KiB): keep it small, so the bound is
     * mostly the queue's, which drops and says so. Best effort.
     */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn);
    int sndbuf = API_EVENTS_SNDBUF;
    if (bev)
        setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    evhttp_connection_set_closecb(c->conn, api_events_closed, c);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/x-ndjson");
    evhttp_send_reply_start(req, 200, "OK");
    /* The first line says where the VM is, so that a waiter cannot miss a change. */
    api_events_send(c, line, (size_t)len);
    return 0;
}

/*
 * Writes out, without waiting, what out holds (a bufferevent's output, whose start
 * libevent keeps frozen: it is read in place, not drained; the connection is freed
 * next), until the socket takes no more.
 */
static void api_events_flush(struct evbuffer *out, int fd)
{
    size_t done = 0, len = evbuffer_get_length(out);

    while (fd >= 0 && done < len) {
        struct evbuffer_ptr pos;
        struct evbuffer_iovec v[16];
        struct iovec iov[16];
        if (evbuffer_ptr_set(out, &pos, done, EVBUFFER_PTR_SET) < 0)
            return;
        int n = evbuffer_peek(out, -1, &pos, v, 16);
        if (n <= 0)
            return;
        if (n > 16)
            n = 16;
        for (int i = 0; i < n; i++)
            iov[i] = (struct iovec){.iov_base = v[i].iov_base, .iov_len = v[i].iov_len};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0)
            return; /* a client that cannot take it now loses the end of its stream */
        done += (size_t)w;
    }
}

void api_events_close_all(struct api_events *ev)
{
    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS; i++) {
        struct api_events_client *c = &ev->clients[i];
        if (!c->req)
            continue;
        evhttp_connection_set_closecb(c->conn, NULL, NULL);
        evhttp_send_reply_end(c->req);
        /*
         * The loop has ended: write what the client has not had yet (the stopping event,
         * the last chunk) now, once and without waiting, before the connection is freed.
         */
        struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn);
        if (bev)
            api_events_flush(bufferevent_get_output(bev), bufferevent_getfd(bev));
        c->req = NULL;
        c->conn = NULL;
    }
}
