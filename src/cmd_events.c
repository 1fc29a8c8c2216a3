/* petrel events | wait NAME: clients of a running VM's event stream (GET /events). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "petrel/api.h"
#include "petrel/exit.h"

#define EVENTS_CONNECT_TIMEOUT_MS 10000
#define EVENTS_LINE_MAX           4096

enum {
    EVENTS_API_SOCK = CMD_OPT_LONG,
    EVENTS_JSON,
    EVENTS_FOR,
    EVENTS_TIMEOUT,
};

static const struct cmd_opt events_opts[] = {
    {EVENTS_API_SOCK, "api-sock", "PATH", "the VM's API socket, instead of finding it by NAME"},
    {EVENTS_JSON, "json", NULL, "print each event as the API's JSON line"},
    {'h', "help", NULL, "show this help"},
};

static const struct cmd_opt wait_opts[] = {
    {EVENTS_API_SOCK, "api-sock", "PATH", "the VM's API socket, instead of finding it by NAME"},
    {EVENTS_FOR, "for", "STATE", "what to wait for: Running, Paused or Stopped (required)"},
    {EVENTS_TIMEOUT, "timeout", "S", "give up after S seconds, 1 to 86400 (default: never)"},
    {'h', "help", NULL, "show this help"},
};

/* What a command was asked. */
struct events_cmd {
    const char *cmd;   /* "petrel events": the prefix of every message */
    const char *label; /* the name, or the socket path */
    char sock[API_PATH_MAX];
    bool json;
    const char *want;   /* petrel wait: Running, Paused, Stopped */
    unsigned timeout_s; /* petrel wait: 0 = none */
};

static int events_usage(const struct events_cmd *e, bool wait, FILE *f)
{
    if (wait)
        fprintf(f, "usage: petrel wait NAME --for STATE [--timeout S]\n"
                   "       petrel wait --api-sock PATH --for STATE [--timeout S]\n"
                   "\n"
                   "Returns once the VM is in STATE: Running, Paused, or Stopped (its process\n"
                   "has exited; a VM that is not running counts as stopped). Status 0 then;\n"
                   "1 if the timeout passes first (it says so), if the VM stops before it is\n"
                   "Running or Paused, or cannot be reached.\n\n");
    else
        fprintf(f, "usage: petrel events NAME [--json]\n"
                   "       petrel events --api-sock PATH [--json]\n"
                   "\n"
                   "Prints what happens to the VM as it happens, one line each (the first says\n"
                   "its state): paused, resumed, stopping, guest_poweroff, guest_reset,\n"
                   "guest_crash, console_attached, console_detached, device_needs_reset,\n"
                   "and dropped when this reader fell behind. Ends when the VM's process\n"
                   "exits.\n\n");
    fprintf(f, "NAME is the --name the VM was started with; its API socket is found in\n"
               "$XDG_RUNTIME_DIR/petrel, /run/petrel (root) or /tmp/petrel-UID.\n"
               "\n"
               "options:\n");
    if (wait)
        cmd_opts_print(f, wait_opts, ARRAY_SIZE(wait_opts));
    else
        cmd_opts_print(f, events_opts, ARRAY_SIZE(events_opts));
    (void)e;
    return f == stdout ? 0 : PETREL_STATUS_USAGE;
}

/* Parses the command line. -1 when done, else an exit status. */
static int events_parse(struct events_cmd *e, bool wait, int argc, char **argv)
{
    const struct cmd_opt *opts = wait ? wait_opts : events_opts;
    size_t nr = wait ? ARRAY_SIZE(wait_opts) : ARRAY_SIZE(events_opts);
    const char *sock = NULL, *timeout = NULL;
    struct cmd_getopt g;
    int c;

    e->cmd = argv[0];
    if (cmd_opts_getopt(opts, nr, &g)) {
        fprintf(stderr, "%s: bad option table\n", e->cmd);
        return PETREL_STATUS_ERROR;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case EVENTS_API_SOCK:
            sock = optarg;
            break;
        case EVENTS_JSON:
            e->json = true;
            break;
        case EVENTS_FOR:
            e->want = optarg;
            break;
        case EVENTS_TIMEOUT:
            timeout = optarg;
            break;
        case 'h':
            return events_usage(e, wait, stdout);
        default:
            return events_usage(e, wait, stderr);
        }
    }
    if (wait) {
        if (!e->want) {
            fprintf(stderr, "%s: --for STATE is required (Running, Paused or Stopped)\n", e->cmd);
            return PETREL_STATUS_USAGE;
        }
        if (strcmp(e->want, "Running") && strcmp(e->want, "Paused") && strcmp(e->want, "Stopped")) {
            fprintf(stderr, "%s: --for '%s' must be Running, Paused or Stopped\n", e->cmd, e->want);
            return PETREL_STATUS_USAGE;
        }
    }
    if (timeout) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(timeout, &end, 10);
        if (errno || end == timeout || *end || v < 1 || v > 86400) {
            fprintf(stderr, "%s: --timeout '%s' must be 1 to 86400 seconds\n", e->cmd, timeout);
            return PETREL_STATUS_USAGE;
        }
        e->timeout_s = (unsigned)v;
    }
    if (sock && optind == argc) {
        if (strlen(sock) >= sizeof(e->sock)) {
            fprintf(stderr, "%s: --api-sock %s is too long\n", e->cmd, sock);
            return PETREL_STATUS_USAGE;
        }
        snprintf(e->sock, sizeof(e->sock), "%s", sock);
        e->label = sock;
        return -1;
    }
    if (sock || optind != argc - 1)
        return events_usage(e, wait, stderr);
    e->label = argv[optind];
    if (!api_name_valid(e->label)) {
        fprintf(stderr, "%s: '%s' is not a VM name\n", e->cmd, e->label);
        return PETREL_STATUS_USAGE;
    }
    if (api_sock_path(e->label, e->sock, sizeof(e->sock))) {
        fprintf(stderr, "%s: the socket path for '%s' is too long\n", e->cmd, e->label);
        return PETREL_STATUS_USAGE;
    }
    /* A socket found by name is trusted only in a directory that is this user's alone. */
    char dir[API_PATH_MAX];
    struct errbuf eb;
    int fd = api_client_open_dir(dir, sizeof(dir), &eb);
    if (fd >= 0) {
        close(fd);
    } else if (fd != -ENOENT) {
        fprintf(stderr, "%s: %s\n", e->cmd, eb.msg);
        return PETREL_STATUS_ERROR;
    }
    return -1;
}

/* Opens the stream; 0, -ENOENT/-ECONNREFUSED (no VM: the caller decides), or an exit status. */
static int events_open(struct events_cmd *e, struct api_stream *s)
{
    struct errbuf eb;
    int ret = api_stream_open(s, e->sock, "/events", EVENTS_CONNECT_TIMEOUT_MS, &eb);

    if (ret == -ENOENT || ret == -ECONNREFUSED)
        return ret;
    if (ret) {
        fprintf(stderr, "%s: %s: %s\n", e->cmd, e->label, eb.msg);
        return PETREL_STATUS_ERROR;
    }
    return 0;
}

/* Says why a stream failed; returns the exit status. */
static int events_failed(struct events_cmd *e, int err)
{
    if (err == -EPROTO)
        fprintf(stderr, "%s: %s: the event stream is not valid chunked HTTP\n", e->cmd, e->label);
    else if (err == -EMSGSIZE)
        fprintf(stderr, "%s: %s: an event line is too long\n", e->cmd, e->label);
    else
        fprintf(stderr, "%s: %s: reading events: %s\n", e->cmd, e->label, strerror(-err));
    return PETREL_STATUS_ERROR;
}

int cmd_events(int argc, char **argv)
{
    struct events_cmd e = {0};
    struct api_stream *s = malloc(sizeof(*s));
    char line[EVENTS_LINE_MAX];
    int ret = s ? events_parse(&e, false, argc, argv) : PETREL_STATUS_ERROR;

    if (ret >= 0)
        goto out;
    ret = events_open(&e, s);
    if (ret == -ENOENT || ret == -ECONNREFUSED) {
        fprintf(stderr, "%s: no VM named '%s' is running (no socket at %s)\n", e.cmd, e.label,
                e.sock);
        ret = PETREL_STATUS_ERROR;
        goto out;
    }
    if (ret)
        goto out;
    while ((ret = api_stream_line(s, line, sizeof(line), -1)) > 0) {
        if (e.json) {
            printf("%s\n", line);
        } else {
            json_t *j = json_loads(line, 0, NULL);
            const char *ev = json_string_value(json_object_get(j, "event"));
            const char *detail = json_string_value(json_object_get(j, "detail"));
            if (!detail)
                detail = json_string_value(json_object_get(j, "state"));
            if (!detail)
                detail = json_string_value(json_object_get(j, "count"));
            printf("%.6f %s%s%s\n", json_real_value(json_object_get(j, "time")), ev ? ev : "?",
                   detail ? " " : "", detail ? detail : "");
            json_decref(j);
        }
        fflush(stdout);
    }
    ret = ret < 0 ? events_failed(&e, ret) : 0;
    api_stream_close(s);
out:
    free(s);
    return ret;
}

/* The state an event line puts the VM in, or NULL if it changes none. */
static const char *wait_state_of(const char *line)
{
    json_t *j = json_loads(line, 0, NULL);
    const char *ev = json_string_value(json_object_get(j, "event"));
    const char *state = NULL;

    if (!ev)
        state = NULL;
    else if (!strcmp(ev, "state"))
        state = json_string_value(json_object_get(j, "state"));
    else if (!strcmp(ev, "paused"))
        state = "Paused";
    else if (!strcmp(ev, "resumed"))
        state = "Running";
    else if (!strcmp(ev, "stopping"))
        state = "Stopping";
    /* The names are the API's constants: the static strings below outlive j. */
    static const char *const known[] = {"Running", "Pausing", "Paused", "Resuming", "Stopping"};
    const char *ret = NULL;
    for (size_t i = 0; state && i < ARRAY_SIZE(known); i++)
        if (!strcmp(state, known[i]))
            ret = known[i];
    json_decref(j);
    return ret;
}

static long long wait_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cmd_wait(int argc, char **argv)
{
    struct events_cmd e = {0};
    struct api_stream *s = malloc(sizeof(*s));
    char line[EVENTS_LINE_MAX];
    const char *state = NULL;
    int ret = s ? events_parse(&e, true, argc, argv) : PETREL_STATUS_ERROR;

    if (ret >= 0)
        goto out;
    long long deadline = e.timeout_s ? wait_now_ms() + e.timeout_s * 1000LL : -1;
    bool stopped = !strcmp(e.want, "Stopped");
    ret = events_open(&e, s);
    if (ret == -ENOENT || ret == -ECONNREFUSED) {
        if (stopped) {
            printf("%s: stopped (not running)\n", e.label);
            ret = 0;
        } else {
            fprintf(stderr, "%s: no VM named '%s' is running (no socket at %s)\n", e.cmd, e.label,
                    e.sock);
            ret = PETREL_STATUS_ERROR;
        }
        goto out;
    }
    if (ret)
        goto out;
    for (;;) {
        ret = api_stream_line(s, line, sizeof(line), deadline);
        if (ret == -ETIMEDOUT) {
            fprintf(stderr, "%s: %s did not reach %s within %u s (it is %s)\n", e.cmd, e.label,
                    e.want, e.timeout_s, state ? state : "unknown");
            ret = PETREL_STATUS_ERROR;
            break;
        }
        if (ret < 0) {
            ret = events_failed(&e, ret);
            break;
        }
        if (ret == 0) { /* the stream ended: petrel exited */
            if (stopped) {
                printf("%s: stopped\n", e.label);
                ret = 0;
            } else {
                fprintf(stderr, "%s: %s stopped before it was %s\n", e.cmd, e.label, e.want);
                ret = PETREL_STATUS_ERROR;
            }
            break;
        }
        const char *now = wait_state_of(line);
        if (now)
            state = now;
        if (state && !strcmp(state, e.want)) {
            printf("%s: %s\n", e.label, state);
            ret = 0;
            break;
        }
    }
    api_stream_close(s);
out:
    free(s);
    return ret;
}
