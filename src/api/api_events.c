/*
 * GET /events: a chunked response of JSON lines that stays open until petrel exits,
 * one line per thing that happened to the VM (vm_emit()), so that a script waits for
 * it instead of polling GET /vm.
 *
 * Neither a slow nor a dead client holds the loop up or makes petrel's memory grow:
 * each client's lines wait in its connection's output queue (api_http.c), at most
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
    switch (api_events_plan(c->dropped, api_http_queued(c->conn), len, (size_t)nlen, ev->limit)) {
    case API_EVENTS_DROP:
        c->dropped++;
        ev->dropped++;
        return;
    case API_EVENTS_SEND_NOTICE:
        /* A connection that fails is closed, and api_events_closed() empties the slot. */
        if (api_http_stream_send(c->conn, notice, (size_t)nlen) < 0)
            return;
        c->dropped = 0;
        break;
    case API_EVENTS_SEND:
        break;
    }
    (void)api_http_stream_send(c->conn, line, len);
}

/* Forgets a client whose connection is closing. */
static void api_events_closed(struct api_conn *conn, void *arg)
{
    struct api_events_client *c = arg;

    (void)conn;
    c->conn = NULL;
}

/* The VM's hook: one line to every client. */
static void api_events_on_vm(void *ctx, enum vm_event e, const char *detail)
{
    struct api_events *ev = ctx;
    char line[API_EVENT_LINE_MAX];
    unsigned listening = 0;

    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS; i++)
        listening += ev->clients[i].conn != NULL;
    if (!listening)
        return; /* nobody to tell: no JSON made (every pause and resume comes here) */
    uint64_t now = vm_now_ns();
    int len = api_event_format(line, sizeof(line), vm_event_name(e), now, "detail", detail);
    if (len < 0)
        return;
    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS; i++)
        if (ev->clients[i].conn)
            api_events_put(ev, &ev->clients[i], line, (size_t)len, now);
}

void api_events_init(struct api_events *ev, struct vm *vm, size_t limit)
{
    memset(ev, 0, sizeof(*ev));
    ev->limit = limit;
    vm->on_event = api_events_on_vm;
    vm->on_event_ctx = ev;
}

int api_events_open(struct api_events *ev, struct api_req *req, const char *state)
{
    char line[API_EVENT_LINE_MAX];
    struct api_events_client *c = NULL;

    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS && !c; i++)
        if (!ev->clients[i].conn)
            c = &ev->clients[i];
    if (!c)
        return -EBUSY;
    int len = api_event_format(line, sizeof(line), "state", vm_now_ns(), "state", state);
    if (len < 0)
        return len;
    /*
     * The kernel's default send buffer would hold a few thousand events behind the
     * queue's bound (a unix socket's is about 200 KiB): keep it small, so the bound is
     * mostly the queue's, which drops and says so. Best effort.
     */
    int sndbuf = API_EVENTS_SNDBUF;
    struct api_conn *conn = req->conn;
    setsockopt(api_http_fd(conn), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    memset(c, 0, sizeof(*c));
    c->conn = conn;
    api_http_stream_start(req, "application/x-ndjson", api_events_closed, c);
    /* The first line says where the VM is, so that a waiter cannot miss a change. */
    if (c->conn)
        (void)api_http_stream_send(c->conn, line, (size_t)len);
    return 0;
}

void api_events_close_all(struct api_events *ev)
{
    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS; i++) {
        struct api_events_client *c = &ev->clients[i];
        struct api_conn *conn = c->conn;
        if (!conn)
            continue;
        c->conn = NULL;
        /*
         * The loop has ended: the last chunk, and what the client has not had yet (the
         * stopping event), written now, once and without waiting; then the connection closes.
         */
        api_http_stream_end(conn);
    }
}
