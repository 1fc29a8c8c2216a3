/* petrel stat | trace NAME: a running VM's counters (GET /stats) and its trace filter (/trace). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "petrel/api.h"
#include "petrel/exit.h"
#include "petrel/trace.h"

#define STAT_TIMEOUT_MS 10000

enum {
    STAT_API_SOCK = CMD_OPT_LONG,
    STAT_JSON,
    STAT_WATCH,
    STAT_ON,
    STAT_OFF,
    STAT_FILTER,
};

static const struct cmd_opt stat_opts[] = {
    {STAT_API_SOCK, "api-sock", "PATH", "the VM's API socket, instead of finding it by NAME"},
    {STAT_JSON, "json", NULL, "print the API's answer (GET /stats) as JSON"},
    {STAT_WATCH, "watch", "N",
     "redraw every N seconds (1 to 3600) with the rates since the last; ends on Ctrl-C or "
     "when the VM goes away"},
    {'h', "help", NULL, "show this help"},
};

static const struct cmd_opt trace_opts[] = {
    {STAT_API_SOCK, "api-sock", "PATH", "the VM's API socket, instead of finding it by NAME"},
    {STAT_ON, "on", "SPEC",
     "trace these too: kinds (pio, mmio, virtio, irq, control, all), KIND=LO-HI, dev=NAME"},
    {STAT_OFF, "off", "KINDS", "stop tracing these kinds (their address ranges go too)"},
    {STAT_FILTER, "filter", "SPEC", "replace the whole filter ('none' stops tracing)"},
    {STAT_JSON, "json", NULL, "print the API's answer (GET /trace) as JSON"},
    {'h', "help", NULL, "show this help"},
};

struct stat_args {
    const char *cmd;
    const char *label;
    char sock[API_PATH_MAX];
    bool json;
    unsigned watch;
    const char *on, *off, *filter;
};

static int stat_usage(const char *cmd, const struct cmd_opt *opts, size_t n, FILE *f)
{
    if (!strcmp(cmd, "petrel trace"))
        fprintf(f, "usage: petrel trace NAME [--on SPEC] [--off KINDS] [--filter SPEC] [--json]\n"
                   "\n"
                   "Changes what a running VM traces (PATCH or PUT /trace) and shows the filter,\n"
                   "the trace file and how many events were written and dropped. Without\n"
                   "--on, --off or --filter it only shows them. The trace goes to the VM's\n"
                   "--trace-file (default NAME.trace where the VM was started).\n\n");
    else
        fprintf(f, "usage: petrel stat NAME [--json] [--watch N]\n"
                   "\n"
                   "Shows a running VM's counters (GET /stats): exits by reason and time in\n"
                   "the guest per vCPU; accesses, interrupts, virtqueue requests, bytes and\n"
                   "errors per device; unclaimed accesses; the pause kick's histogram; the\n"
                   "trace's events and drops.\n\n");
    fprintf(f, "NAME is the --name the VM was started with (or --api-sock PATH).\n\noptions:\n");
    cmd_opts_print(f, opts, n);
    return f == stdout ? 0 : PETREL_STATUS_USAGE;
}

/* -1 when parsed, else an exit status. */
static int stat_parse(struct stat_args *a, const struct cmd_opt *opts, size_t n, int argc,
                      char **argv)
{
    struct cmd_getopt g;
    const char *sock = NULL;
    unsigned long v;
    int c;

    a->cmd = argv[0];
    if (cmd_opts_getopt(opts, n, &g)) {
        fprintf(stderr, "%s: bad option table\n", a->cmd);
        return PETREL_STATUS_ERROR;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case STAT_API_SOCK:
            sock = optarg;
            break;
        case STAT_JSON:
            a->json = true;
            break;
        case STAT_WATCH:
            if (parse_uint(optarg, 1, 3600, &v)) {
                fprintf(stderr, "%s: --watch '%s' must be 1 to 3600 seconds\n", a->cmd, optarg);
                return PETREL_STATUS_USAGE;
            }
            a->watch = (unsigned)v;
            break;
        case STAT_ON:
            a->on = optarg;
            break;
        case STAT_OFF:
            a->off = optarg;
            break;
        case STAT_FILTER:
            a->filter = optarg;
            break;
        case 'h':
            return stat_usage(a->cmd, opts, n, stdout);
        default:
            return stat_usage(a->cmd, opts, n, stderr);
        }
    }
    if (a->filter && (a->on || a->off)) {
        fprintf(stderr, "%s: --filter replaces the filter: it does not go with --on or --off\n",
                a->cmd);
        return PETREL_STATUS_USAGE;
    }
    if (sock && optind == argc) {
        if (strlen(sock) >= sizeof(a->sock)) {
            fprintf(stderr, "%s: --api-sock %s is too long\n", a->cmd, sock);
            return PETREL_STATUS_USAGE;
        }
        snprintf(a->sock, sizeof(a->sock), "%s", sock);
        a->label = sock;
        return -1;
    }
    if (sock || optind != argc - 1)
        return stat_usage(a->cmd, opts, n, stderr);
    a->label = argv[optind];
    if (!api_name_valid(a->label)) {
        fprintf(stderr, "%s: '%s' is not a VM name\n", a->cmd, a->label);
        return PETREL_STATUS_USAGE;
    }
    if (api_sock_path(a->label, a->sock, sizeof(a->sock))) {
        fprintf(stderr, "%s: the socket path for '%s' is too long\n", a->cmd, a->label);
        return PETREL_STATUS_USAGE;
    }
    char dir[API_PATH_MAX];
    struct errbuf eb;
    int fd = api_client_open_dir(dir, sizeof(dir), &eb);
    if (fd == -ENOENT) {
        fprintf(stderr, "%s: no VM named '%s' (no socket at %s)\n", a->cmd, a->label, a->sock);
        return PETREL_STATUS_ERROR;
    }
    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", a->cmd, eb.msg);
        return PETREL_STATUS_ERROR;
    }
    close(fd);
    return -1;
}

/*
 * One call. 0 with the 2xx answer's JSON in *out, -ENOENT/-ECONNREFUSED when the VM is not
 * (or no longer) there (said unless quiet), else -1 after saying why.
 */
static int stat_call(struct stat_args *a, const char *method, const char *path, const char *body,
                     json_t **out, bool quiet)
{
    struct api_response resp;
    struct errbuf eb;
    int ret = api_client_call(a->sock, method, path, body, STAT_TIMEOUT_MS, &resp, &eb);

    if (ret == -ENOENT || ret == -ECONNREFUSED) {
        if (!quiet)
            fprintf(stderr, "%s: no VM '%s' is running (%s)\n", a->cmd, a->label, a->sock);
        return ret;
    }
    if (ret) {
        fprintf(stderr, "%s: %s: %s\n", a->cmd, a->label, eb.msg);
        return -1;
    }
    json_t *j = json_loads(resp.body, 0, NULL);
    if (resp.status / 100 != 2 || !j) {
        const char *msg = json_string_value(json_object_get(j, "fault_message"));
        fprintf(stderr, "%s: %s: %s (HTTP %d)\n", a->cmd, a->label, msg ? msg : "unexpected answer",
                resp.status);
        json_decref(j);
        api_response_free(&resp);
        return -1;
    }
    api_response_free(&resp);
    *out = j;
    return 0;
}

static long long stat_int(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* The value of key in the object of the same name in prev's array (0 if none). */
static long long stat_prev(json_t *prev_arr, const char *id_key, json_t *id, const char *key)
{
    size_t i;
    json_t *o;

    json_array_foreach(prev_arr, i, o)
    {
        if (json_equal(json_object_get(o, id_key), id))
            return stat_int(o, key);
    }
    return 0;
}

/* Prints a rate column when there is a previous sample. */
static void stat_rate(json_t *prev, long long now, long long before, double dt)
{
    if (prev && dt > 0)
        printf(" %10.1f", (double)(now - before) / dt);
    else if (prev)
        printf(" %10s", "-");
}

static void stat_print(struct stat_args *a, json_t *j, json_t *prev, double dt)
{
    size_t i;
    json_t *o;

    printf("%s: up %.1f s\n", a->label, json_real_value(json_object_get(j, "uptime_s")));
    printf("vCPU %12s%s %10s %10s %10s %10s %8s\n", "exits", prev ? "     exits/s" : "", "io",
           "mmio", "hlt", "kicked", "guest s");
    json_t *pv = json_object_get(prev, "vcpus");
    json_array_foreach(json_object_get(j, "vcpus"), i, o)
    {
        json_t *ex = json_object_get(o, "exits");
        long long total = stat_int(o, "exits_total");
        printf("%-4lld %12lld", stat_int(o, "id"), total);
        stat_rate(prev, total, stat_prev(pv, "id", json_object_get(o, "id"), "exits_total"), dt);
        printf(" %10lld %10lld %10lld %10lld %8.2f\n", stat_int(ex, "io"), stat_int(ex, "mmio"),
               stat_int(ex, "hlt"), stat_int(o, "interrupted"),
               json_real_value(json_object_get(o, "guest_s")));
    }
    printf("%-26s %12s%s %10s %10s %12s %12s %7s\n", "device", "accesses",
           prev ? "  accesses/s" : "", "interrupts", "requests", "bytes out", "bytes in", "errors");
    json_t *pd = json_object_get(prev, "devices");
    json_array_foreach(json_object_get(j, "devices"), i, o)
    {
        long long acc = stat_int(o, "accesses");
        printf("%-26.26s %12lld", json_string_value(json_object_get(o, "name")), acc);
        stat_rate(prev, acc, stat_prev(pd, "name", json_object_get(o, "name"), "accesses"), dt);
        if (prev)
            printf(" ");
        printf(" %10lld %10lld %12lld %12lld %7lld\n", stat_int(o, "interrupts"),
               stat_int(o, "requests"), stat_int(o, "bytes_out"), stat_int(o, "bytes_in"),
               stat_int(o, "errors"));
    }
    json_t *u = json_object_get(j, "unclaimed");
    printf("unclaimed: port reads %lld, writes %lld; MMIO reads %lld, writes %lld\n",
           stat_int(json_object_get(u, "pio"), "reads"),
           stat_int(json_object_get(u, "pio"), "writes"),
           stat_int(json_object_get(u, "mmio"), "reads"),
           stat_int(json_object_get(u, "mmio"), "writes"));
    json_t *p = json_object_get(j, "pause");
    printf("pauses: %lld, the last kick %.1f us", stat_int(p, "count"),
           json_real_value(json_object_get(p, "last_kick_us")));
    json_array_foreach(json_object_get(p, "kick_histogram"), i, o)
    {
        json_t *b = json_object_get(o, "below_us");
        if (json_is_integer(b))
            printf("%s <%lldus:%lld", i ? "" : ";", (long long)json_integer_value(b),
                   stat_int(o, "count"));
        else
            printf(" more:%lld", stat_int(o, "count"));
    }
    json_t *t = json_object_get(j, "trace");
    printf("\ntrace: %s -> %s, %lld events, %lld dropped\n",
           json_string_value(json_object_get(t, "filter")),
           json_string_value(json_object_get(t, "file")), stat_int(t, "events"),
           stat_int(t, "dropped"));
}

/* Waits up to s seconds for SIGINT/SIGTERM (blocked): true if one came. */
static bool stat_wait(const sigset_t *set, unsigned s)
{
    struct timespec ts = {.tv_sec = s};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return true;
        if (errno == EAGAIN)
            return false;
        /* EINTR (another signal): wait the whole interval again, simply. */
    }
}

int cmd_stat(int argc, char **argv)
{
    struct stat_args a = {0};
    int ret = stat_parse(&a, stat_opts, ARRAY_SIZE(stat_opts), argc, argv);
    json_t *prev = NULL;
    struct timespec tprev = {0};

    if (ret >= 0)
        return ret;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (a.watch)
        sigprocmask(SIG_BLOCK, &set, NULL);
    bool tty = isatty(STDOUT_FILENO);
    for (unsigned round = 0;; round++) {
        json_t *j;
        ret = stat_call(&a, "GET", "/stats", NULL, &j, round > 0);
        if (ret == -ENOENT || ret == -ECONNREFUSED) {
            if (round == 0) {
                ret = PETREL_STATUS_ERROR;
                break;
            }
            printf("%s: the VM has gone away\n", a.label);
            ret = 0;
            break;
        }
        if (ret) {
            ret = PETREL_STATUS_ERROR;
            break;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double dt =
            (double)(now.tv_sec - tprev.tv_sec) + (double)(now.tv_nsec - tprev.tv_nsec) / 1e9;
        if (a.json) {
            char *text = json_dumps(j, JSON_COMPACT);
            printf("%s\n", text ? text : "{}");
            free(text);
        } else {
            if (a.watch && tty)
                printf("\033[H\033[2J");
            else if (round)
                printf("\n");
            stat_print(&a, j, prev, dt);
        }
        fflush(stdout);
        json_decref(prev);
        prev = j;
        tprev = now;
        if (!a.watch || stat_wait(&set, a.watch)) {
            ret = 0;
            break;
        }
    }
    json_decref(prev);
    return ret;
}

int cmd_trace(int argc, char **argv)
{
    struct stat_args a = {0};
    int ret = stat_parse(&a, trace_opts, ARRAY_SIZE(trace_opts), argc, argv);
    json_t *j = NULL, *body = NULL;

    if (ret >= 0)
        return ret;
    if (a.filter)
        body = json_pack("{s:s}", "filter", a.filter);
    else if (a.on || a.off) {
        body = json_object();
        if (a.on)
            json_object_set_new(body, "on", json_string(a.on));
        if (a.off)
            json_object_set_new(body, "off", json_string(a.off));
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (body && !text) {
        fprintf(stderr, "%s: out of memory\n", a.cmd);
        return PETREL_STATUS_ERROR;
    }
    ret = stat_call(&a, a.filter ? "PUT" : text ? "PATCH" : "GET", "/trace", text, &j, false);
    free(text);
    if (ret)
        return PETREL_STATUS_ERROR;
    if (a.json) {
        char *out = json_dumps(j, JSON_COMPACT);
        printf("%s\n", out ? out : "{}");
        free(out);
    } else {
        printf("%s: tracing %s to %s (%lld events written, %lld dropped)\n", a.label,
               json_string_value(json_object_get(j, "filter")),
               json_string_value(json_object_get(j, "file")),
               (long long)json_integer_value(json_object_get(j, "events")),
               (long long)json_integer_value(json_object_get(j, "dropped")));
    }
    json_decref(j);
    return 0;
}
