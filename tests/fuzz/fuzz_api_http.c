/*
 * Fuzz target: the API server's HTTP request handling (api_server.c behind petrel's own
 * HTTP server, api_http.c), what anyone who can reach the control socket sends: request lines,
 * methods, paths and query strings, headers (Content-Length, chunked bodies, Expect, Connection),
 * bodies at and over the limits, pipelined requests and requests split across reads, and the JSON
 * body of every route.
 *
 * The real server runs (api_server_start() on a socket in a private directory, once per
 * process) on a VM that is only an event loop; the vm_* calls the handlers make are
 * replaced at link time (ld --wrap, see meson.build) by a fake VM kept here: a state
 * machine of Running/Pausing/Paused/Resuming/Stopping whose transitions complete when
 * the input says (inside the call, between reads, or only after the client is gone),
 * a keyboard that fills, a power button, snapshots and trace filters that succeed or
 * fail. api_http_reply() and api_http_stream_start() are wrapped too, to see every
 * answer a handler gives, and the server's request handler (api_handle()) is wrapped in
 * the fixture's own, through the server's handler pointer, to know which request a
 * handler works for.
 *
 * Input format: byte 0 flags (bits 0-1: when the fake's transitions and snapshots
 * complete: 0 inside the call, 1 one per turn of the loop, 2 after the client's
 * shutdown(SHUT_WR), 3 after its close(); bit 2: the guest enabled the power button;
 * bit 3: there is a keyboard; bit 4: GET /stats runs out of memory; bit 5: a snapshot
 * fails to write; bit 6: the VM starts Paused; bit 7: every GET /events slot is taken),
 * byte 1 the size of each write (0: all at once; at most 32 writes; the loop turns
 * between writes), the
 * rest the bytes a client writes on one connection.
 *
 * Invariants:
 * - every status line the client reads has a status from docs/api.md's set (the HTTP
 *   server's own 400, 411, 413, 417, 501, 503 and 100 Continue included);
 * - petrel answers only requests its handler saw, each exactly once, and every one it
 *   saw is answered by the time the client is gone and the fake has settled;
 * - an independent model of the routing (path without query, method, body rules of
 *   docs/api.md) predicts 404, 405 or 400 exactly, and the answer to a request the model
 *   accepts is what the fake VM did (204 / 200 / 409 / 422 / 400 / 500 / 503);
 * - no fake VM call is reached by a request the model rejects, a rejected request
 *   changes nothing in the fake VM, and a stop happens only after a Stop's 204;
 * - once the client has closed and the loop has settled: no GET /events slot is held,
 *   no file descriptor leaked (the lowest free fd is what it was).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "fuzz.h"
#include "petrel/api.h"
#include "petrel/vm.h"

/* What the input's flags byte says. */
#define F_COMPLETE_MASK 3u
#define F_COMPLETE_SYNC 0u /* inside vm_pause() and friends */
#define F_COMPLETE_TURN 1u /* one per turn of the loop */
#define F_COMPLETE_SHUT 2u /* after the client's shutdown(SHUT_WR) */
#define F_COMPLETE_GONE 3u /* after the client's close() */
#define F_POWER         4u
#define F_KEYBOARD      8u
#define F_STATS_OOM     16u
#define F_SNAP_FAILS    32u
#define F_PAUSED        64u
#define F_EVENTS_FULL   128u

#define MAX_RECS    512
#define MAX_PENDING 128
#define CLIENT_MAX  (4u << 20) /* what the client keeps of the answers */
#define KEYS_MAX    3          /* the fake keyboard's buffer, in Ctrl-Alt-Del presses */
#define MAX_PIECES  32         /* writes of one input, at most */
#define QUIET_TURNS 4          /* turns of the loop with nothing happening: settled */

/* What an API request asks for, by the model (oracle()). */
enum route {
    R_NONE,
    R_GET_ROOT,
    R_GET_MACHINE,
    R_GET_VM,
    R_GET_EVENTS,
    R_PATCH_VM,
    R_PUT_ACTIONS,
    R_GET_STATS,
    R_GET_TRACE,
    R_PUT_TRACE,
    R_PATCH_TRACE,
    R_PUT_SNAPSHOT,
};

/* A body's one meaningful value, by the model. */
enum arg {
    A_NONE,
    A_PAUSED,
    A_RESUMED,
    A_CAD,
    A_POWER,
    A_STOP,
};

enum outcome {
    O_NONE,     /* no fake call */
    O_ACCEPTED, /* the fake VM changed */
    O_NOOP,     /* already so (PATCH /vm) */
    O_REFUSED,  /* the fake said no, nothing changed */
};

/* One request that reached api_handle(). */
struct rec {
    struct api_req *req;
    enum route route;
    enum arg arg;
    int want;     /* the status the model expects (0: not known yet) */
    bool handler; /* the model says a handler is reached */
    enum outcome outcome;
    bool replied;
    unsigned gen; /* the fake's generation when the request came */
};

struct pending {
    vm_done_fn *fn;
    void *ctx;
    bool snapshot;
    enum vm_state goal; /* a transition's */
};

static struct {
    bool ready;
    char dir[64];
    char sock[128];
    struct vm *vm;
    struct api_server srv;
    int lowest_fd; /* the lowest free fd between inputs */

    /* The fake VM (reset per input). */
    uint8_t flags;
    unsigned gen; /* bumped by every change of the fake VM */
    unsigned keys;
    bool stopped;
    bool stop_replied;
    struct pending pending[MAX_PENDING];
    unsigned npending;
    void *events_sentinel[API_EVENTS_MAX_CLIENTS];

    /* This input's requests. */
    struct rec recs[MAX_RECS];
    unsigned nrecs;
    struct rec *cur;          /* the request api_handle() is working on */
    api_http_handler *handle; /* the server's own (api_handle()) */
    unsigned activity;

    /* The client's end. */
    char *in;
    size_t in_len;
} F;

/* The real functions, for the wrappers. */
void __real_api_http_reply(struct api_req *req, int status, const char *ctype, const char *body,
                           size_t len);
void __real_api_http_stream_start(struct api_req *req, const char *ctype,
                                  api_http_close_fn *close_fn, void *arg);

void __wrap_api_http_reply(struct api_req *req, int status, const char *ctype, const char *body,
                           size_t len);
void __wrap_api_http_stream_start(struct api_req *req, const char *ctype,
                                  api_http_close_fn *close_fn, void *arg);
void __wrap_vm_pause(struct vm *vm, vm_done_fn *done, void *ctx);
void __wrap_vm_resume(struct vm *vm, vm_done_fn *done, void *ctx);
int __wrap_vm_power_button(struct vm *vm, const char **msg);
int __wrap_vm_send_keys(struct vm *vm, const uint8_t *scancodes, size_t len);
void __wrap_vm_get_info(struct vm *vm, struct vm_info *info);
void __wrap_vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int status, int vcpu_id,
                            const char *detail);
json_t *__wrap_vm_stats_json(struct vm *vm);
json_t *__wrap_vm_trace_json(struct vm *vm);
int __wrap_vm_trace_set(struct vm *vm, const char *spec, const char *on, const char *off,
                        struct errbuf *eb);
void __wrap_vm_snapshot(struct vm *vm, const char *state_path, const char *mem_path,
                        vm_done_fn *done, void *ctx);

static struct rec *rec_find(const struct api_req *req)
{
    /* The latest first: a freed request's address may come back for a new one. */
    for (unsigned i = F.nrecs; i-- > 0;)
        if (F.recs[i].req == req && !F.recs[i].replied)
            return &F.recs[i];
    return NULL;
}

/* docs/api.md's body rules: a JSON object of allowed fields, each a string. */
static json_t *oracle_body(struct api_req *req, const char *const *allowed)
{
    size_t len = req->body_len;
    json_t *j, *v;
    const char *key;

    if (len == 0 || len > 16 * 1024)
        return NULL;
    FUZZ_CHECK(req->body != NULL); /* a body within the limit is the handler's to see */
    j = json_loadb(req->body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!j || !json_is_object(j))
        goto bad;
    json_object_foreach(j, key, v)
    {
        bool known = false;
        for (const char *const *a = allowed; *a; a++)
            known = known || !strcmp(key, *a);
        if (!known || !json_is_string(v))
            goto bad;
    }
    return j;
bad:
    json_decref(j);
    return NULL;
}

static const char *str_field(json_t *j, const char *name)
{
    return json_string_value(json_object_get(j, name));
}

/* The model: what a request asks for and, when no handler is reached, the status. */
static void oracle(struct rec *r)
{
    static const struct {
        const char *path;
        enum api_method method;
        enum route route;
        const char *fields[4]; /* {NULL}: no body */
    } table[] = {
        {"/", API_M_GET, R_GET_ROOT, {NULL}},
        {"/machine-config", API_M_GET, R_GET_MACHINE, {NULL}},
        {"/vm", API_M_GET, R_GET_VM, {NULL}},
        {"/vm", API_M_PATCH, R_PATCH_VM, {"state", NULL}},
        {"/events", API_M_GET, R_GET_EVENTS, {NULL}},
        {"/actions", API_M_PUT, R_PUT_ACTIONS, {"action_type", NULL}},
        {"/stats", API_M_GET, R_GET_STATS, {NULL}},
        {"/trace", API_M_GET, R_GET_TRACE, {NULL}},
        {"/trace", API_M_PUT, R_PUT_TRACE, {"filter", NULL}},
        {"/trace", API_M_PATCH, R_PATCH_TRACE, {"on", "off", NULL}},
        {"/snapshot/create",
         API_M_PUT,
         R_PUT_SNAPSHOT,
         {"snapshot_path", "mem_file_path", "snapshot_type", NULL}},
    };
    const char *uri = r->req->target;
    enum api_method method = r->req->method;
    size_t plen = strcspn(uri, "?#");
    size_t body_len = r->req->body_len;
    bool known = false;

    r->want = 404;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]) && plen < 256; i++) {
        if (strlen(table[i].path) != plen || memcmp(table[i].path, uri, plen))
            continue;
        known = true;
        if (table[i].method != method)
            continue;
        r->route = table[i].route;
        r->want = 400;
        if (!table[i].fields[0]) {
            if (body_len)
                return;
            r->handler = true;
            if (r->route == R_GET_EVENTS) {
                unsigned used = 0;
                for (unsigned k = 0; k < API_EVENTS_MAX_CLIENTS; k++)
                    used += F.srv.events.clients[k].conn != NULL;
                r->want = used == API_EVENTS_MAX_CLIENTS ? 503 : 200;
            } else if (r->route == R_GET_STATS) {
                r->want = F.flags & F_STATS_OOM ? 500 : 200;
            } else {
                r->want = 200;
            }
            return;
        }
        json_t *j = oracle_body(r->req, table[i].fields);
        if (!j)
            return;
        const char *s;
        r->want = 0; /* the fake VM's outcome decides, if the values are right */
        switch (r->route) {
        case R_PATCH_VM:
            s = str_field(j, "state");
            if (s && !strcmp(s, "Paused"))
                r->arg = A_PAUSED;
            else if (s && !strcmp(s, "Resumed"))
                r->arg = A_RESUMED;
            else
                r->want = 400;
            break;
        case R_PUT_ACTIONS:
            s = str_field(j, "action_type");
            if (s && !strcmp(s, "SendCtrlAltDel"))
                r->arg = A_CAD;
            else if (s && !strcmp(s, "PowerButton"))
                r->arg = A_POWER;
            else if (s && !strcmp(s, "Stop"))
                r->arg = A_STOP, r->want = 204;
            else
                r->want = 400;
            break;
        case R_PUT_TRACE:
            if (!str_field(j, "filter"))
                r->want = 400;
            break;
        case R_PATCH_TRACE:
            if (!str_field(j, "on") && !str_field(j, "off"))
                r->want = 400;
            break;
        case R_PUT_SNAPSHOT:
            s = str_field(j, "snapshot_type");
            if (!str_field(j, "snapshot_path") || !str_field(j, "mem_file_path") ||
                (s && strcmp(s, "Full")))
                r->want = 400;
            break;
        default:
            break;
        }
        json_decref(j);
        r->handler = r->want != 400;
        return;
    }
    if (known)
        r->want = 405;
}

/* The server hands a request to api_handle() through this: a new request. */
static void fuzz_handle(void *arg, struct api_req *req)
{
    FUZZ_CHECK(F.nrecs < MAX_RECS);
    FUZZ_CHECK(req->method != API_M_UNKNOWN); /* the server answers those 501 itself */
    FUZZ_CHECK(strlen(req->target) > 0);
    FUZZ_CHECK(req->body || req->body_len > API_HTTP_BODY_KEEP);
    FUZZ_CHECK(req->body_len <= API_HTTP_BODY_LIMIT);
    struct rec *r = &F.recs[F.nrecs++];
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->gen = F.gen;
    oracle(r);
    F.cur = r;
    F.activity++;
    F.handle(arg, req);
}

/* Every answer petrel gives. */
static void check_reply(struct api_req *req, int code)
{
    struct rec *r = rec_find(req);

    F.activity++;
    FUZZ_CHECK(r != NULL); /* an answer to a request no handler saw, or a second one */
    r->replied = true;
    FUZZ_CHECK(r->want != 0); /* a valid request reached no fake call */
    if (code != r->want)
        fprintf(stderr, "fuzz_api_http: method %d %s (route %d) answered %d, the model wants %d\n",
                (int)req->method, req->target, r->route, code, r->want);
    FUZZ_CHECK(code == r->want);
    if (code >= 400)
        FUZZ_CHECK(r->outcome != O_ACCEPTED);
    if (!r->handler)
        FUZZ_CHECK(F.gen == r->gen); /* rejected at once: nothing changed meanwhile */
    if (r->arg == A_STOP && code == 204)
        F.stop_replied = true;
}

void __wrap_api_http_reply(struct api_req *req, int status, const char *ctype, const char *body,
                           size_t len)
{
    check_reply(req, status);
    FUZZ_CHECK((status == 204) == (ctype == NULL)); /* 204 alone has no body */
    FUZZ_CHECK(!body || !memchr(body, '\0', len));
    __real_api_http_reply(req, status, ctype, body, len);
}

void __wrap_api_http_stream_start(struct api_req *req, const char *ctype,
                                  api_http_close_fn *close_fn, void *arg)
{
    struct rec *r = rec_find(req);
    FUZZ_CHECK(r != NULL && r->route == R_GET_EVENTS);
    check_reply(req, 200);
    __real_api_http_stream_start(req, ctype, close_fn, arg);
}

/* The request a fake call works for, which the model must have let through to route/arg. */
static struct rec *fake_rec(struct api_req *req, enum route route, enum arg arg)
{
    struct rec *r = req ? rec_find(req) : F.cur;

    F.activity++;
    FUZZ_CHECK(r != NULL);
    if (!r->handler || r->route != route || r->arg != arg)
        fprintf(stderr,
                "fuzz_api_http: %s reached a fake call for route %d arg %d (the model: "
                "route %d arg %d, %s)\n",
                r->req->target, route, arg, r->route, r->arg, r->handler ? "valid" : "invalid");
    FUZZ_CHECK(r->handler && r->route == route && r->arg == arg);
    FUZZ_CHECK(r->outcome == O_NONE);
    return r;
}

static void fake_settle_one(void)
{
    struct pending p = F.pending[0];
    memmove(F.pending, F.pending + 1, --F.npending * sizeof(F.pending[0]));
    if (!p.snapshot) {
        F.vm->state = p.goal;
        F.gen++;
        if (F.npending && !F.pending[0].snapshot)
            F.vm->state = F.pending[0].goal == VM_PAUSED ? VM_PAUSING : VM_RESUMING;
    }
    p.fn(p.ctx, 0, NULL);
}

/* Completes what the fake VM has in progress. */
static void fake_settle(void)
{
    while (F.npending)
        fake_settle_one();
}

static void fake_transition(enum vm_state goal, enum arg arg, vm_done_fn *done, void *ctx)
{
    struct rec *r = fake_rec(ctx, R_PATCH_VM, arg);
    bool transition = F.vm->state == VM_PAUSING || F.vm->state == VM_RESUMING;

    if (F.stopped) {
        r->outcome = O_REFUSED, r->want = 409;
        done(ctx, -ESHUTDOWN, "the VM is stopping");
        return;
    }
    if (!transition && F.vm->state == goal) {
        r->outcome = O_NOOP, r->want = 200;
        done(ctx, -EALREADY,
             goal == VM_PAUSED ? "the VM was already paused" : "the VM was not paused");
        return;
    }
    if (F.npending >= VM_MAX_WAITERS) {
        r->outcome = O_REFUSED, r->want = 409;
        done(ctx, -EBUSY, "too many requests are waiting");
        return;
    }
    r->outcome = O_ACCEPTED, r->want = 204;
    F.gen++;
    if (!transition)
        F.vm->state = goal == VM_PAUSED ? VM_PAUSING : VM_RESUMING;
    F.pending[F.npending++] = (struct pending){.fn = done, .ctx = ctx, .goal = goal};
    if ((F.flags & F_COMPLETE_MASK) == F_COMPLETE_SYNC)
        fake_settle();
}

void __wrap_vm_pause(struct vm *vm, vm_done_fn *done, void *ctx)
{
    FUZZ_CHECK(vm == F.vm);
    fake_transition(VM_PAUSED, A_PAUSED, done, ctx);
}

void __wrap_vm_resume(struct vm *vm, vm_done_fn *done, void *ctx)
{
    FUZZ_CHECK(vm == F.vm);
    fake_transition(VM_RUNNING, A_RESUMED, done, ctx);
}

int __wrap_vm_power_button(struct vm *vm, const char **msg)
{
    struct rec *r = fake_rec(NULL, R_PUT_ACTIONS, A_POWER);

    FUZZ_CHECK(vm == F.vm);
    r->outcome = O_REFUSED, r->want = 409;
    if (F.stopped) {
        *msg = "the VM is stopping";
        return -ESHUTDOWN;
    }
    if (F.vm->state != VM_RUNNING) {
        *msg = "the VM is not Running";
        return -EBUSY;
    }
    if (!(F.flags & F_POWER)) {
        r->want = 422;
        *msg = "the guest has not enabled the ACPI power button";
        return -EOPNOTSUPP;
    }
    r->outcome = O_ACCEPTED, r->want = 204;
    F.gen++;
    *msg = NULL;
    return 0;
}

int __wrap_vm_send_keys(struct vm *vm, const uint8_t *scancodes, size_t len)
{
    struct rec *r = fake_rec(NULL, R_PUT_ACTIONS, A_CAD);

    FUZZ_CHECK(vm == F.vm && scancodes && len == 8);
    r->outcome = O_REFUSED, r->want = 409;
    if (F.stopped)
        return -ESHUTDOWN;
    if (!(F.flags & F_KEYBOARD))
        return -ENODEV;
    if (F.keys >= KEYS_MAX)
        return -ENOSPC;
    F.keys++;
    F.gen++;
    r->outcome = O_ACCEPTED, r->want = 204;
    return 0;
}

void __wrap_vm_get_info(struct vm *vm, struct vm_info *info)
{
    FUZZ_CHECK(vm == F.vm);
    F.activity++;
    memset(info, 0, sizeof(*info));
    info->state = vm->state;
    info->vcpus = 2;
    info->memory = 64 * MiB;
    info->pauses = F.gen;
}

void __wrap_vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int status, int vcpu_id,
                            const char *detail)
{
    (void)status, (void)vcpu_id, (void)detail;
    F.activity++;
    FUZZ_CHECK(vm == F.vm && reason == VM_EXIT_STOP);
    FUZZ_CHECK(F.stop_replied); /* only once a Stop's 204 is out */
    if (F.stopped)
        return;
    F.stopped = true;
    F.gen++;
    /* Transitions still waiting end with -ESHUTDOWN (snapshots are let finish). */
    for (unsigned i = 0; i < F.npending;) {
        struct pending p = F.pending[i];
        if (p.snapshot) {
            i++;
            continue;
        }
        memmove(F.pending + i, F.pending + i + 1, (--F.npending - i) * sizeof(F.pending[0]));
        struct rec *r = rec_find(p.ctx);
        FUZZ_CHECK(r != NULL);
        r->outcome = O_REFUSED, r->want = 409;
        p.fn(p.ctx, -ESHUTDOWN, "the VM is stopping");
    }
    vm->state = VM_STOPPING;
}

json_t *__wrap_vm_stats_json(struct vm *vm)
{
    fake_rec(NULL, R_GET_STATS, A_NONE);
    FUZZ_CHECK(vm == F.vm);
    return F.flags & F_STATS_OOM ? NULL : json_pack("{s:i}", "exits", 1);
}

json_t *__wrap_vm_trace_json(struct vm *vm)
{
    F.activity++;
    FUZZ_CHECK(vm == F.vm && F.cur != NULL);
    FUZZ_CHECK(F.cur->route == R_GET_TRACE || F.cur->outcome == O_ACCEPTED);
    return json_pack("{s:s}", "filter", "none");
}

int __wrap_vm_trace_set(struct vm *vm, const char *spec, const char *on, const char *off,
                        struct errbuf *eb)
{
    bool put = spec != NULL;
    struct rec *r = fake_rec(NULL, put ? R_PUT_TRACE : R_PATCH_TRACE, A_NONE);
    const char *first = put ? spec : on ? on : off;

    FUZZ_CHECK(vm == F.vm && first != NULL);
    FUZZ_CHECK(!put || (!on && !off));
    /* The fake's rules: a spec starting with 'x' is bad, with 'n' cannot be opened. */
    if (first[0] == 'x') {
        r->outcome = O_REFUSED, r->want = 400;
        return err_set(eb, -EINVAL, "bad spec");
    }
    if (first[0] == 'n') {
        r->outcome = O_REFUSED, r->want = 409;
        return err_set(eb, -EOPNOTSUPP, "cannot open the trace file");
    }
    r->outcome = O_ACCEPTED, r->want = 200;
    F.gen++;
    return 0;
}

void __wrap_vm_snapshot(struct vm *vm, const char *state_path, const char *mem_path,
                        vm_done_fn *done, void *ctx)
{
    struct rec *r = fake_rec(ctx, R_PUT_SNAPSHOT, A_NONE);

    FUZZ_CHECK(vm == F.vm && state_path && mem_path);
    if (F.vm->state != VM_PAUSED || F.stopped) {
        r->outcome = O_REFUSED, r->want = 409;
        done(ctx, -EBUSY, "the VM is not Paused: pause it first");
        return;
    }
    if (F.flags & F_SNAP_FAILS) {
        r->outcome = O_REFUSED, r->want = 400;
        done(ctx, -ENOSPC, "cannot write the snapshot: no space");
        return;
    }
    /* A snapshot leaves the VM as it is: no generation change. */
    r->outcome = O_NOOP, r->want = 204;
    F.pending[F.npending++] = (struct pending){.fn = done, .ctx = ctx, .snapshot = true};
    if ((F.flags & F_COMPLETE_MASK) == F_COMPLETE_SYNC)
        fake_settle();
}

/* Removes the fixture's directory at exit (libFuzzer ends with exit()). */
static void fixture_cleanup(void)
{
    if (!F.ready)
        return;
    api_server_stop(&F.srv);
    rmdir(F.dir);
}

/*
 * Removes the directories of earlier runs that ended without their atexit() (a crash, a
 * libFuzzer timeout or leak report): a directory whose lock file no process holds.
 */
static void fixture_sweep(void)
{
    DIR *d = opendir("/tmp");
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char path[512];
        if (strncmp(e->d_name, "petrel-fuzz-http.", 17))
            continue;
        snprintf(path, sizeof(path), "/tmp/%s/api.sock.lock", e->d_name);
        int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
            close(fd); /* a live run's */
            continue;
        }
        unlink(path);
        if (fd >= 0)
            close(fd);
        snprintf(path, sizeof(path), "/tmp/%s/api.sock", e->d_name);
        unlink(path);
        snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
        rmdir(path);
    }
    if (d)
        closedir(d);
}

static void fixture_init(void)
{
    struct errbuf eb;

    signal(SIGPIPE, SIG_IGN); /* as petrel's main() does: a gone client is an error, not a kill */
    fixture_sweep();
    snprintf(F.dir, sizeof(F.dir), "/tmp/petrel-fuzz-http.XXXXXX");
    FUZZ_CHECK(mkdtemp(F.dir) != NULL);
    snprintf(F.sock, sizeof(F.sock), "%s/api.sock", F.dir);
    F.vm = calloc(1, sizeof(*F.vm));
    FUZZ_CHECK(F.vm != NULL);
    F.vm->cfg.console = VM_CONSOLE_STDIO;
    F.vm->base = event_base_new();
    FUZZ_CHECK(F.vm->base != NULL);
    FUZZ_CHECK(api_server_start(&F.srv, F.vm, "fuzz", F.sock, &eb) == 0);
    F.handle = F.srv.http.handle;
    F.srv.http.handle = fuzz_handle;
    F.in = malloc(CLIENT_MAX);
    FUZZ_CHECK(F.in != NULL);
    F.ready = true;
    atexit(fixture_cleanup);
    int fd = dup(0);
    FUZZ_CHECK(fd >= 0);
    close(fd);
    F.lowest_fd = fd;
}

/* Reads what the client has (it keeps at most CLIENT_MAX bytes). 1: something came. */
static int client_read(int fd, bool *eof)
{
    int got = 0;

    for (;;) {
        char tmp[8192];
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n == 0)
            *eof = true;
        if (n <= 0)
            return got;
        got = 1;
        size_t keep = (size_t)n < CLIENT_MAX - F.in_len ? (size_t)n : CLIENT_MAX - F.in_len;
        memcpy(F.in + F.in_len, tmp, keep);
        F.in_len += keep;
    }
}

/* One turn of the loop; in F_COMPLETE_TURN, the fake completes one thing first. */
static void turn(int fd, bool *eof)
{
    if ((F.flags & F_COMPLETE_MASK) == F_COMPLETE_TURN && F.npending)
        fake_settle_one();
    event_base_loop(F.vm->base, EVLOOP_NONBLOCK);
    if (fd >= 0)
        client_read(fd, eof);
}

/* Turns the loop until QUIET_TURNS in a row bring nothing (or the client sees EOF). */
static void settle(int fd, bool *eof)
{
    for (unsigned quiet = 0, guard = 0; quiet < QUIET_TURNS && guard < 10000; guard++) {
        unsigned before = F.activity;
        size_t got = F.in_len;
        turn(fd, eof);
        if (F.activity != before || F.in_len != got)
            quiet = 0;
        else
            quiet++;
        if (eof && *eof && !F.npending)
            break;
    }
}

/* Every status line the client got must carry a status from docs/api.md's set. */
static void check_statuses(void)
{
    static const int allowed[] = {100, 200, 204, 400, 404, 405, 409,
                                  411, 413, 417, 422, 500, 501, 503};

    for (size_t i = 0; i + 12 <= F.in_len; i++) {
        if (i && F.in[i - 1] != '\n')
            continue;
        if (memcmp(F.in + i, "HTTP/", 5) || F.in[i + 6] != '.' || F.in[i + 8] != ' ')
            continue;
        int code = (F.in[i + 9] - '0') * 100 + (F.in[i + 10] - '0') * 10 + (F.in[i + 11] - '0');
        bool ok = false;
        for (size_t k = 0; k < sizeof(allowed) / sizeof(allowed[0]); k++)
            ok = ok || code == allowed[k];
        if (!ok)
            fprintf(stderr, "fuzz_api_http: status %d is not in docs/api.md's set\n", code);
        FUZZ_CHECK(ok);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!F.ready)
        fixture_init();

    /* The fake VM and this input's records start afresh. */
    F.flags = data[0];
    F.gen = F.keys = F.npending = F.nrecs = 0;
    F.stopped = F.stop_replied = false;
    F.cur = NULL;
    F.in_len = 0;
    F.vm->state = F.flags & F_PAUSED ? VM_PAUSED : VM_RUNNING;
    if (F.flags & F_EVENTS_FULL) {
        for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS; i++) {
            FUZZ_CHECK(F.srv.events.clients[i].conn == NULL);
            F.srv.events.clients[i].conn = (struct api_conn *)&F.events_sentinel[i];
        }
    }

    /* At most MAX_PIECES writes, so that a long input costs no more turns than a short one. */
    size_t step = data[1] ? data[1] : size;
    if (step < (size - 2) / MAX_PIECES + 1)
        step = (size - 2) / MAX_PIECES + 1;
    const uint8_t *p = data + 2;
    size_t left = size - 2;
    bool eof = false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, F.sock, strlen(F.sock) + 1);
    FUZZ_CHECK(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);

    /* The client writes its bytes in pieces, the loop turning between them. */
    for (unsigned stuck = 0; left && stuck < 64 && !eof;) {
        size_t n = left < step ? left : step;
        ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w, left -= (size_t)w, stuck = 0;
        } else {
            FUZZ_CHECK(w < 0 && (errno == EAGAIN || errno == EPIPE || errno == ECONNRESET));
            if (errno != EAGAIN)
                break;
            stuck++;
            if ((F.flags & F_COMPLETE_MASK) == F_COMPLETE_SHUT ||
                (F.flags & F_COMPLETE_MASK) == F_COMPLETE_GONE)
                fake_settle(); /* the server waits on the fake: let it go on */
        }
        settle(fd, &eof);
    }
    shutdown(fd, SHUT_WR);
    settle(fd, &eof);
    if ((F.flags & F_COMPLETE_MASK) == F_COMPLETE_SHUT)
        fake_settle();
    settle(fd, &eof);
    client_read(fd, &eof);
    check_statuses();
    close(fd);
    settle(-1, NULL);
    fake_settle();
    settle(-1, NULL);

    /* Every request a handler saw is answered; nothing is left behind. */
    for (unsigned i = 0; i < F.nrecs; i++)
        FUZZ_CHECK(F.recs[i].replied);
    FUZZ_CHECK(F.npending == 0);
    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS; i++) {
        if (F.srv.events.clients[i].conn == (struct api_conn *)&F.events_sentinel[i])
            F.srv.events.clients[i].conn = NULL;
        FUZZ_CHECK(F.srv.events.clients[i].conn == NULL); /* a gone client's slot is free */
    }
    int probe = dup(0);
    FUZZ_CHECK(probe >= 0);
    close(probe);
    FUZZ_CHECK(probe == F.lowest_fd); /* no connection's fd is left open */
    return 0;
}
