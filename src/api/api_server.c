/*
 * The API server: petrel's HTTP server (api_http.c) on a unix socket, on the VM's loop. Handlers
 * only translate between HTTP/JSON and vm_* calls; pause and resume answer when the VM's transition
 * completes (every vCPU acked).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/listener.h>
#include <jansson.h>

#include "petrel/api.h"
#include "petrel/api_http.h"
#include "petrel/i8042.h"
#include "petrel/vm.h"

/*
 * Sends a JSON body (stolen) with the status: dumped into a buffer on the stack, or
 * allocated when it does not fit (GET /stats of a VM with many devices).
 */
static void api_reply_json(struct api_req *req, int code, json_t *j)
{
    char buf[4096];
    size_t n = j ? json_dumpb(j, buf, sizeof(buf), JSON_COMPACT | JSON_REAL_PRECISION(10)) : 0;

    if (n <= sizeof(buf)) {
        json_decref(j);
        api_http_reply(req, code, "application/json", buf, n);
        return;
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(j);
    api_http_reply(req, code, "application/json", text ? text : "", text ? strlen(text) : 0);
    free(text);
}

/* Firecracker's error shape: {"fault_message": "..."}. */
static void api_fault(struct api_req *req, int code, const char *msg)
{
    api_reply_json(req, code, json_pack("{s:s}", "fault_message", msg));
}

static void api_no_content(struct api_req *req)
{
    api_http_reply(req, 204, NULL, NULL, 0);
}

/*
 * GET /: Firecracker's InstanceInfo. Only the state changes, so the body is made (by
 * jansson, as any other) once per state and kept: the API's floor does no JSON work.
 */
static void api_get_root(struct api_server *s, struct api_req *req, json_t *body)
{
    enum vm_state st = s->vm->state;
    (void)body;

    if ((unsigned)st >= ARRAY_SIZE(s->root)) {
        api_fault(req, 500, "unknown state");
        return;
    }
    if (!s->root[st].len) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "id", s->name, "state", vm_state_name(st),
                              "vmm_version", PETREL_VERSION, "app_name", "petrel");
        size_t n = j ? json_dumpb(j, s->root[st].text, sizeof(s->root[st].text), JSON_COMPACT) : 0;
        json_decref(j);
        if (!n || n > sizeof(s->root[st].text)) {
            api_fault(req, 500, "out of memory");
            return;
        }
        s->root[st].len = n;
    }
    api_http_reply(req, 200, "application/json", s->root[st].text, s->root[st].len);
}

/* GET /machine-config: Firecracker's machine configuration, as far as petrel has it. */
static void api_get_machine(struct api_server *s, struct api_req *req, json_t *body)
{
    (void)body;
    api_reply_json(req, 200,
                   json_pack("{s:i, s:I, s:b}", "vcpu_count", (int)s->vm->nr_vcpus, "mem_size_mib",
                             (json_int_t)(s->vm->cfg.memory / MiB), "smt", 0));
}

/* Microseconds from the request to a step, or -1 when it was not reached. */
static double api_step_us(const struct vm_steps *st, uint64_t ns)
{
    return ns && ns >= st->request_ns ? (double)(ns - st->request_ns) / 1000.0 : -1;
}

/*
 * The last pause's steps (struct vm_steps) as microseconds from its request: per vCPU i
 * kick<i>, out<i>, parked<i>, ack<i>; then woken, settled, replied, wakes (a count), and at,
 * the request's own time (CLOCK_MONOTONIC microseconds), for a client to put them on its clock.
 */
static json_t *api_steps(const struct vm_steps *st)
{
    json_t *o = json_object();
    char key[16];

    if (!o || !st->request_ns)
        return o;
    for (unsigned i = 0; i < st->nr_vcpus; i++) {
        static const char *const names[] = {"kick", "out", "ack"};
        const uint64_t *ns[] = {st->kick_ns, st->out_ns, st->ack_ns};
        for (unsigned k = 0; k < ARRAY_SIZE(names); k++) {
            snprintf(key, sizeof(key), "%s%u", names[k], i);
            json_object_set_new(o, key, json_real(api_step_us(st, ns[k][i])));
        }
    }
    json_object_set_new(o, "woken", json_real(api_step_us(st, st->woken_ns)));
    json_object_set_new(o, "settled", json_real(api_step_us(st, st->settled_ns)));
    json_object_set_new(o, "replied", json_real(api_step_us(st, st->replied_ns)));
    json_object_set_new(o, "wakes", json_integer(st->wakes));
    json_object_set_new(o, "at", json_real((double)st->request_ns / 1000.0));
    return o;
}

/* GET /vm: petrel's status, with the last pause's kick time and steps. */
static void api_get_vm(struct api_server *s, struct api_req *req, json_t *body)
{
    struct vm_info info;
    (void)body;

    vm_get_info(s->vm, &info);
    unsigned listeners = 0;
    for (unsigned i = 0; i < API_EVENTS_MAX_CLIENTS; i++)
        listeners += s->events.clients[i].conn != NULL;
    api_reply_json(req, 200,
                   json_pack("{s:s, s:s, s:i, s:I, s:f, s:{s:I, s:f, s:f, s:o}, s:{s:I, s:I, s:I}, "
                             "s:{s:i, s:I}}",
                             "id", s->name, "state", vm_state_name(info.state), "vcpu_count",
                             (int)info.vcpus, "mem_size_mib", (json_int_t)(info.memory / MiB),
                             "uptime_s", info.uptime_s, "pause", "count", (json_int_t)info.pauses,
                             "last_kick_us", (double)info.last_kick_ns / 1000.0, "last_resume_us",
                             (double)info.last_resume_ns / 1000.0, "steps", api_steps(&info.steps),
                             "console", "buffered", (json_int_t)info.console_buffered, "capacity",
                             (json_int_t)info.console_capacity, "dropped",
                             (json_int_t)info.console_dropped, "events", "clients", (int)listeners,
                             "dropped", (json_int_t)s->events.dropped));
}

/* Ends a deferred PATCH /vm when the VM's transition completes. */
static void api_vm_done(void *ctx, int err, const char *msg, const char *state)
{
    struct api_req *req = ctx;

    if (!err)
        api_no_content(req);
    else if (err == -EALREADY)
        api_reply_json(req, 200, json_pack("{s:s, s:s}", "state", state, "message", msg));
    else
        api_fault(req, 409, msg);
}

static void api_paused(void *ctx, int err, const char *msg)
{
    api_vm_done(ctx, err, msg, "Paused");
}

static void api_resumed(void *ctx, int err, const char *msg)
{
    api_vm_done(ctx, err, msg, "Running");
}

/* PATCH /vm's state (NULL: missing). */
static void api_patch_vm_state(struct api_server *s, struct api_req *req, const char *state)
{
    if (!state)
        api_fault(req, 400, "missing field \"state\"");
    else if (!strcmp(state, "Paused"))
        vm_pause(s->vm, api_paused, req);
    else if (!strcmp(state, "Resumed"))
        vm_resume(s->vm, api_resumed, req);
    else
        api_fault(req, 400, "\"state\" must be \"Paused\" or \"Resumed\"");
}

/* PATCH /vm {"state": "Paused" | "Resumed"}: 204 once every vCPU has acked. */
static void api_patch_vm(struct api_server *s, struct api_req *req, json_t *body)
{
    api_patch_vm_state(s, req, json_string_value(json_object_get(body, "state")));
}

/* Skips JSON whitespace (RFC 8259 2). */
static const char *api_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Matches tok at p (after whitespace); where it ends, or NULL. */
static const char *api_json_tok(const char *p, const char *end, const char *tok)
{
    size_t n = strlen(tok);

    p = api_json_ws(p, end);
    return (size_t)(end - p) >= n && !memcmp(p, tok, n) ? p + n : NULL;
}

/*
 * The pause's and resume's own body, {"state": "Paused"} or {"state": "Resumed"} with
 * any whitespace, read without jansson (the pause's hot path): "Paused", "Resumed", or
 * NULL for any other body, which then goes through api_parse_body() as usual. Both are
 * bodies api_parse_body() accepts with that value, so the answer is the same.
 */
static const char *api_patch_vm_quick(const char *body, size_t len)
{
    static const char *const states[] = {"Paused", "Resumed"};
    const char *end = body + len, *p;

    if (!body || !(p = api_json_tok(body, end, "{")) || !(p = api_json_tok(p, end, "\"state\"")) ||
        !(p = api_json_tok(p, end, ":")) || !(p = api_json_tok(p, end, "\"")))
        return NULL;
    for (size_t i = 0; i < ARRAY_SIZE(states); i++) {
        size_t n = strlen(states[i]);
        const char *q;
        if ((size_t)(end - p) > n && !memcmp(p, states[i], n) && p[n] == '"' &&
            (q = api_json_tok(p + n + 1, end, "}")) && api_json_ws(q, end) == end)
            return states[i];
    }
    return NULL;
}

/* GET /events: JSON lines, one per event, until petrel exits (api_events.c). */
static void api_get_events(struct api_server *s, struct api_req *req, json_t *body)
{
    (void)body;
    if (api_events_open(&s->events, req, vm_state_name(s->vm->state)) < 0)
        api_fault(req, 503, "too many clients are listening to events (16): close one");
}

/* Ends a deferred PUT /snapshot/create. */
static void api_snapshot_done(void *ctx, int err, const char *msg)
{
    struct api_req *req = ctx;

    if (!err)
        api_no_content(req);
    else if (err == -EBUSY)
        api_fault(req, 409, msg);
    else
        api_fault(req, 400, msg);
}

/*
 * PUT /snapshot/create {"snapshot_path", "mem_file_path"} (Firecracker's body; its
 * "snapshot_type" may only be "Full"): 204 once both files are on disk; the VM must be
 * Paused and stays so.
 */
static void api_put_snapshot(struct api_server *s, struct api_req *req, json_t *body)
{
    const char *state = json_string_value(json_object_get(body, "snapshot_path"));
    const char *mem = json_string_value(json_object_get(body, "mem_file_path"));
    json_t *type = json_object_get(body, "snapshot_type");

    if (!state || !mem)
        api_fault(req, 400, "\"snapshot_path\" and \"mem_file_path\" must be strings");
    else if (type && (!json_is_string(type) || strcmp(json_string_value(type), "Full")))
        api_fault(req, 400, "\"snapshot_type\" must be \"Full\"");
    else
        vm_snapshot(s->vm, state, mem, api_snapshot_done, req);
}

/* Stops the VM once the 204 has been written out. */
static void api_stop_after_reply(void *arg)
{
    vm_request_exit(arg, VM_EXIT_STOP, PETREL_STATUS_OK, -1, NULL);
}

/* PUT /actions {"action_type": "SendCtrlAltDel" | "PowerButton" | "Stop"}. */
static void api_put_actions(struct api_server *s, struct api_req *req, json_t *body)
{
    /* Set-1 make and break codes (the i8042 translates, as Linux sets it up). */
    static const uint8_t ctrl_alt_del[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
    const char *type = json_string_value(json_object_get(body, "action_type"));

    if (!type) {
        api_fault(req, 400, "missing field \"action_type\"");
    } else if (!strcmp(type, "SendCtrlAltDel")) {
        int err = vm_send_keys(s->vm, ctrl_alt_del, sizeof(ctrl_alt_del));
        if (!err)
            api_no_content(req);
        else if (err == -ESHUTDOWN)
            api_fault(req, 409, "the VM is stopping");
        else if (err == -ENOSPC)
            api_fault(req, 409, "the keyboard buffer is full");
        else
            api_fault(req, 409, "this VM has no keyboard");
    } else if (!strcmp(type, "PowerButton")) {
        /* A press the guest cannot answer is refused: a graceful stop need not time out. */
        const char *msg;
        int err = vm_power_button(s->vm, &msg);
        if (!err)
            api_no_content(req);
        else if (err == -EOPNOTSUPP)
            api_fault(req, 422, msg);
        else
            api_fault(req, 409, msg);
    } else if (!strcmp(type, "Stop")) {
        req->after = api_stop_after_reply;
        req->after_arg = s->vm;
        api_no_content(req);
    } else {
        api_fault(req, 400,
                  "\"action_type\" must be \"SendCtrlAltDel\", \"PowerButton\" or \"Stop\"");
    }
}

/* GET /stats: every counter (docs/api.md). */
static void api_get_stats(struct api_server *s, struct api_req *req, json_t *body)
{
    (void)body;
    json_t *j = vm_stats_json(s->vm);
    if (j)
        api_reply_json(req, 200, j);
    else
        api_fault(req, 500, "out of memory");
}

/* GET /trace: the filter, the file and the counts. */
static void api_get_trace(struct api_server *s, struct api_req *req, json_t *body)
{
    (void)body;
    json_t *j = vm_trace_json(s->vm);
    if (j)
        api_reply_json(req, 200, j);
    else
        api_fault(req, 500, "out of memory");
}

/* PUT /trace {"filter": SPEC} replaces the filter; PATCH /trace {"on": SPEC, "off": KINDS} changes
 * it. */
static void api_set_trace(struct api_server *s, struct api_req *req, json_t *body)
{
    struct errbuf eb;
    json_t *spec = json_object_get(body, "filter"), *on = json_object_get(body, "on"),
           *off = json_object_get(body, "off");
    bool put = req->method == API_M_PUT;

    if (put && !json_is_string(spec)) {
        api_fault(req, 400, "\"filter\" must be a string");
        return;
    }
    if (!put && ((on && !json_is_string(on)) || (off && !json_is_string(off)) || (!on && !off))) {
        api_fault(req, 400, "\"on\" and \"off\" must be strings (one at least)");
        return;
    }
    int err = vm_trace_set(s->vm, json_string_value(spec), json_string_value(on),
                           json_string_value(off), &eb);
    if (err == -EINVAL)
        api_fault(req, 400, eb.msg);
    else if (err)
        api_fault(req, 409, eb.msg);
    else
        api_get_trace(s, req, NULL);
}

typedef void api_handler(struct api_server *s, struct api_req *req, json_t *body);

static const struct api_route {
    enum api_method method;
    const char *path;
    api_handler *fn;
    const char *const *fields; /* NULL: no body */
} api_routes[] = {
    {API_M_GET, "/", api_get_root, NULL},
    {API_M_GET, "/machine-config", api_get_machine, NULL},
    {API_M_GET, "/vm", api_get_vm, NULL},
    {API_M_GET, "/events", api_get_events, NULL},
    {API_M_PATCH, "/vm", api_patch_vm, (const char *const[]){"state", NULL}},
    {API_M_PUT, "/actions", api_put_actions, (const char *const[]){"action_type", NULL}},
    {API_M_GET, "/stats", api_get_stats, NULL},
    {API_M_GET, "/trace", api_get_trace, NULL},
    {API_M_PUT, "/trace", api_set_trace, (const char *const[]){"filter", NULL}},
    {API_M_PATCH, "/trace", api_set_trace, (const char *const[]){"on", "off", NULL}},
    {API_M_PUT, "/snapshot/create", api_put_snapshot,
     (const char *const[]){"snapshot_path", "mem_file_path", "snapshot_type", NULL}},
};

/* Routes a request (api_http.c parsed it) to its handler, or answers 404, 405 or 400. */
static void api_handle(void *arg, struct api_req *req)
{
    struct api_server *s = arg;
    size_t plen = strcspn(req->target, "?#"); /* the path without a query string */
    bool path_known = false;

    if (plen >= 256) {
        api_fault(req, 404, "no such path");
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(api_routes); i++) {
        const struct api_route *r = &api_routes[i];
        if (strlen(r->path) != plen || memcmp(r->path, req->target, plen) != 0)
            continue;
        path_known = true;
        if (r->method != req->method)
            continue;
        json_t *body = NULL;
        const char *quick;
        if (r->fn == api_patch_vm && (quick = api_patch_vm_quick(req->body, req->body_len))) {
            api_patch_vm_state(s, req, quick);
            return;
        }
        if (r->fields) {
            struct errbuf eb;
            body = api_parse_body(req->body, req->body_len, r->fields, &eb);
            if (!body) {
                api_fault(req, 400, eb.msg);
                return;
            }
        } else if (req->body_len) {
            api_fault(req, 400, "this request takes no body");
            return;
        }
        r->fn(s, req, body);
        json_decref(body);
        return;
    }
    if (path_known)
        api_fault(req, 405, "this path does not take that method");
    else
        api_fault(req, 404, "no such path");
}

static int api_mkdir_parent(const char *path)
{
    char dir[API_PATH_MAX];

    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/*
 * A listening unix socket at path whose file has mode 0600 from the moment it
 * exists: the mode goes on the socket's inode before bind(), which creates the
 * file with it (less the umask: Linux's unix_bind()), never by a chmod() of
 * the path afterwards, which would follow whatever was put at that path.
 */
static int api_listen(const char *what, const char *path, int backlog, struct errbuf *eb)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return err_set(eb, -errno, "socket: %s", strerror(errno));
    memcpy(addr.sun_path, path, strlen(path) + 1);
    if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, backlog) < 0) {
        int err = errno;
        close(fd);
        return err_set(eb, -err, "cannot serve %s %s: %s", what, path, strerror(err));
    }
    return fd;
}

/*
 * The default socket directory ($XDG_RUNTIME_DIR/petrel, /run/petrel,
 * /tmp/petrel-UID), made if missing and refused unless it is this user's
 * alone: another local user could have made /tmp/petrel-UID first and would
 * then own every socket and lock file made in it. (A --api-sock path is the
 * user's own choice and is not checked.)
 */
static int api_server_dir(struct errbuf *eb)
{
    char dir[API_PATH_MAX];

    if (api_runtime_dir(dir, sizeof(dir)))
        return err_set(eb, -ENAMETOOLONG, "the socket directory's path is too long");
    int fd = dir_open_private("the socket directory", dir, true, eb);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

/* A `petrel console` client connected: attach it, or tell it why not. */
static void api_console_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                               int socklen, void *arg)
{
    struct api_server *s = arg;
    static const char busy[] = "petrel: another client is attached to this console\r\n";
    (void)l, (void)sa, (void)socklen;

    int ret = vm_console_attach(s->vm, fd);
    if (ret) {
        if (ret == -EBUSY)
            send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        close(fd);
    }
}

static int api_console_start(struct api_server *s, struct errbuf *eb)
{
    if (api_console_path(s->sock_path, s->console_path, sizeof(s->console_path)))
        return err_set(eb, -ENAMETOOLONG, "the console socket path for %s is too long",
                       s->sock_path);
    unlink(s->console_path);
    int fd = api_listen("the console socket", s->console_path, 4, eb);
    if (fd < 0)
        return fd;
    s->console_listener = evconnlistener_new(s->vm->base, api_console_accept, s,
                                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (!s->console_listener) {
        close(fd);
        return err_set(eb, -ENOMEM, "cannot serve the console socket");
    }
    return 0;
}

/*
 * Takes NAME.sock.lock. A lock file is unlinked by its owner on exit while
 * still locked, so after flock() succeeds the path must still name the file
 * we locked; if not, the old owner just left and we try again.
 */
static int api_lock(struct api_server *s, struct errbuf *eb)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        struct stat a, b;
        s->lock_fd = open(s->lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (s->lock_fd < 0)
            return err_set(eb, -errno, "cannot create %s: %s", s->lock_path, strerror(errno));
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
            close(s->lock_fd);
            s->lock_fd = -1;
            return err_set(eb, -EADDRINUSE,
                           "a VM named \"%s\" is already running (its API socket is %s): "
                           "choose another --name",
                           s->name, s->sock_path);
        }
        if (fstat(s->lock_fd, &a) == 0 && stat(s->lock_path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev)
            return 0;
        close(s->lock_fd);
        s->lock_fd = -1;
    }
    return err_set(eb, -EAGAIN, "cannot take the lock %s", s->lock_path);
}

int api_server_start(struct api_server *s, struct vm *vm, const char *name, const char *sock_path,
                     struct errbuf *eb)
{
    int ret;

    memset(s, 0, sizeof(*s));
    s->vm = vm;
    s->lock_fd = s->sock_fd = -1;
    snprintf(s->name, sizeof(s->name), "%s", name);
    if (sock_path) {
        if (strlen(sock_path) >= sizeof(s->sock_path))
            return err_set(eb, -ENAMETOOLONG, "--api-sock %s is too long for a unix socket",
                           sock_path);
        snprintf(s->sock_path, sizeof(s->sock_path), "%s", sock_path);
    } else if (api_sock_path(name, s->sock_path, sizeof(s->sock_path))) {
        return err_set(eb, -ENAMETOOLONG, "the API socket path for \"%s\" is too long", name);
    }
    snprintf(s->lock_path, sizeof(s->lock_path), "%s.lock", s->sock_path);

    if (sock_path) {
        ret = api_mkdir_parent(s->sock_path);
        if (ret)
            return err_set(eb, ret, "cannot create the directory of %s: %s", s->sock_path,
                           strerror(-ret));
    } else {
        ret = api_server_dir(eb);
        if (ret)
            return ret;
    }
    ret = api_lock(s, eb);
    if (ret)
        return ret;
    /* We hold the lock, so a socket file left here belongs to a VM that died. */
    unlink(s->sock_path);
    s->sock_fd = api_listen("the API socket", s->sock_path, 16, eb);
    if (s->sock_fd < 0) {
        ret = s->sock_fd;
        goto err_stop;
    }
    api_events_init(&s->events, vm, API_EVENTS_QUEUE_MAX);
    ret = api_http_start(&s->http, vm->base, s->sock_fd, api_handle, s);
    if (ret) {
        err_set(eb, ret, "cannot serve the API socket");
        goto err_stop;
    }
    s->serving = true;
    s->sock_fd = -1; /* the HTTP server's now */
    if (vm->cfg.console == VM_CONSOLE_SOCKET) {
        ret = api_console_start(s, eb);
        if (ret)
            goto err_stop;
        fprintf(stderr, "petrel: the console is at %s ('petrel console %s' attaches)\n",
                s->console_path, name);
    }
    return 0;

err_stop:
    api_server_stop(s);
    return ret;
}

void api_server_stop(struct api_server *s)
{
    if (s->console_listener) {
        evconnlistener_free(s->console_listener);
        s->console_listener = NULL;
        unlink(s->console_path);
    }
    if (s->serving) {
        api_events_close_all(&s->events);
        if (s->vm->on_event_ctx == &s->events)
            s->vm->on_event = NULL;
        /* Writes what each connection has left, without waiting, and closes the socket. */
        api_http_stop(&s->http);
        s->serving = false;
    }
    if (s->sock_fd >= 0) {
        close(s->sock_fd);
        s->sock_fd = -1;
    }
    if (s->lock_fd >= 0) {
        /* Unlink while still holding the lock, so no new owner's files are removed. */
        unlink(s->sock_path);
        unlink(s->lock_path);
        close(s->lock_fd);
        s->lock_fd = -1;
    }
}
