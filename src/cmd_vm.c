/* petrel pause | resume | stop | status | snapshot NAME: thin clients of a running VM's API. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "petrel/api.h"
#include "petrel/exit.h"

#define CMD_TIMEOUT_MS          10000
#define CMD_SNAPSHOT_TIMEOUT_MS (30 * 60 * 1000) /* writing guest RAM: minutes for a large one */
#define CMD_GRACEFUL_TIMEOUT_S  30

#define CMD_STR(x)               CMD_STR_(x)
#define CMD_STR_(x)              #x
#define CMD_GRACEFUL_TIMEOUT_STR CMD_STR(CMD_GRACEFUL_TIMEOUT_S) /* "30", for --help */

/* The keys of the options without a short form. */
enum {
    TARGET_API_SOCK = CMD_OPT_LONG,
    TARGET_JSON,
    TARGET_GRACEFUL,
    TARGET_TIMEOUT,
    TARGET_RESUME,
};

#define TARGET_API_SOCK_HELP "the VM's API socket, instead of finding it by NAME"

/* Each command's own options, so that getopt names one that is not its own. */
static const struct cmd_opt pause_opts[] = {
    {TARGET_API_SOCK, "api-sock", "PATH", TARGET_API_SOCK_HELP},
    {TARGET_JSON, "json", NULL, "no effect here (petrel status prints JSON with it)"},
    {'h', "help", NULL, "show this help"},
};

static const struct cmd_opt status_opts[] = {
    {TARGET_API_SOCK, "api-sock", "PATH", TARGET_API_SOCK_HELP},
    {TARGET_JSON, "json", NULL, "print the API's answer (GET /vm) as JSON"},
    {'h', "help", NULL, "show this help"},
};

static const struct cmd_opt stop_opts[] = {
    {TARGET_API_SOCK, "api-sock", "PATH", TARGET_API_SOCK_HELP},
    {TARGET_GRACEFUL, "graceful", NULL, "first ask the guest to power off (ACPI power button)"},
    {TARGET_TIMEOUT, "timeout", "S",
     "with --graceful: how long the guest gets to power off, 1 to 86400 seconds "
     "(default " CMD_GRACEFUL_TIMEOUT_STR ")"},
    {'h', "help", NULL, "show this help"},
};

static const struct cmd_opt snapshot_opts[] = {
    {TARGET_API_SOCK, "api-sock", "PATH", TARGET_API_SOCK_HELP},
    {TARGET_RESUME, "resume", NULL, "resume the VM once the snapshot is written (or failed)"},
    {'h', "help", NULL, "show this help"},
};

struct target {
    const char *cmd;   /* "petrel pause": the prefix of every message */
    const char *label; /* the name, or the socket path */
    char sock[API_PATH_MAX];
    const struct cmd_opt *opts; /* the command's: pause_opts, status_opts, stop_opts */
    size_t nr_opts;
    bool json;
    bool is_stop;       /* petrel stop: --graceful and --timeout */
    bool is_snapshot;   /* petrel snapshot: DIR after NAME, --resume */
    bool resume;        /* resume after the snapshot */
    const char *dir;    /* the snapshot's directory */
    bool graceful;      /* ask the guest to power off first */
    unsigned timeout_s; /* how long the guest gets to power off */
};

#define TARGET_OPTS(o) .opts = (o), .nr_opts = ARRAY_SIZE(o)

static int target_usage(const struct target *t, FILE *f)
{
    if (t->is_snapshot)
        fprintf(f, "usage: petrel snapshot NAME DIR [--resume]\n"
                   "       petrel snapshot --api-sock PATH DIR [--resume]\n"
                   "\n"
                   "Pauses the VM (through the kick: every vCPU parked) and writes its snapshot:\n"
                   "DIR/state (every register and device; dtc -I dtb -O dts shows it) and\n"
                   "DIR/mem (guest RAM, sparse). DIR is made if missing. The VM stays paused\n"
                   "unless --resume. 'petrel run --restore DIR' brings it back.\n\n");
    else if (t->is_stop)
        fprintf(f,
                "usage: petrel stop NAME [--graceful [--timeout S]]\n"
                "       petrel stop --api-sock PATH [--graceful [--timeout S]]\n"
                "\n"
                "Stops the VM: its console output is drained and petrel exits with status 0,\n"
                "paused or not. With --graceful the guest is first asked to power off (the\n"
                "ACPI power button); if it has not within S seconds (default %u), or has\n"
                "not enabled the button at all, petrel says so and stops it. A VM that is\n"
                "not Running cannot answer the button: that is an error.\n\n",
                CMD_GRACEFUL_TIMEOUT_S);
    else
        fprintf(f,
                "usage: %s NAME [--json]\n"
                "       %s --api-sock PATH [--json]\n\n",
                t->cmd, t->cmd);
    fprintf(f, "NAME is the --name the VM was started with; its API socket is found in\n"
               "$XDG_RUNTIME_DIR/petrel, /run/petrel (root) or /tmp/petrel-UID.\n"
               "\n"
               "options:\n");
    cmd_opts_print(f, t->opts, t->nr_opts);
    return f == stdout ? 0 : PETREL_STATUS_USAGE;
}

/*
 * A socket found by name is trusted only in a directory that is this user's
 * alone (another user could have made /tmp/petrel-UID and put a socket of
 * their own in it). -1 when it is, else an exit status.
 */
static int target_check_dir(const struct target *t)
{
    char dir[API_PATH_MAX];
    struct errbuf eb;
    int fd = api_client_open_dir(dir, sizeof(dir), &eb);

    if (fd == -ENOENT)
        fprintf(stderr, "%s: no VM named '%s' (no socket at %s)\n", t->cmd, t->label, t->sock);
    else if (fd < 0)
        fprintf(stderr, "%s: %s\n", t->cmd, eb.msg);
    else
        close(fd);
    return fd < 0 ? PETREL_STATUS_ERROR : -1;
}

/*
 * Parses NAME / --api-sock PATH / --json (and checks the directory of a socket
 * found by NAME). Returns -1 when done, else an exit status.
 */
static int target_parse(struct target *t, int argc, char **argv)
{
    struct cmd_getopt g;
    const char *sock = NULL, *timeout = NULL;
    int c;

    t->cmd = argv[0];
    t->timeout_s = CMD_GRACEFUL_TIMEOUT_S;
    if (cmd_opts_getopt(t->opts, t->nr_opts, &g)) {
        fprintf(stderr, "%s: bad option table\n", t->cmd); /* a bug, which test_cli finds */
        return PETREL_STATUS_ERROR;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case TARGET_API_SOCK:
            sock = optarg;
            break;
        case TARGET_JSON:
            t->json = true;
            break;
        case TARGET_GRACEFUL:
            t->graceful = true;
            break;
        case TARGET_TIMEOUT:
            timeout = optarg;
            break;
        case TARGET_RESUME:
            t->resume = true;
            break;
        case 'h':
            return target_usage(t, stdout);
        default:
            return target_usage(t, stderr);
        }
    }
    if (timeout) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(timeout, &end, 10);
        if (!t->graceful) {
            fprintf(stderr, "petrel stop: --timeout goes with --graceful\n");
            return PETREL_STATUS_USAGE;
        }
        if (errno || end == timeout || *end || v < 1 || v > 86400) {
            fprintf(stderr, "petrel stop: --timeout '%s' must be 1 to 86400 seconds\n", timeout);
            return PETREL_STATUS_USAGE;
        }
        t->timeout_s = (unsigned)v;
    }
    if (t->is_snapshot) { /* DIR comes last */
        if (optind >= argc)
            return target_usage(t, stderr);
        t->dir = argv[--argc];
    }
    if (sock && optind == argc) {
        if (strlen(sock) >= sizeof(t->sock)) {
            fprintf(stderr, "%s: --api-sock %s is too long\n", t->cmd, sock);
            return PETREL_STATUS_USAGE;
        }
        snprintf(t->sock, sizeof(t->sock), "%s", sock);
        t->label = sock;
        return -1;
    }
    if (sock || optind != argc - 1)
        return target_usage(t, stderr);
    t->label = argv[optind];
    if (!api_name_valid(t->label)) {
        fprintf(stderr, "%s: '%s' is not a VM name\n", t->cmd, t->label);
        return PETREL_STATUS_USAGE;
    }
    if (api_sock_path(t->label, t->sock, sizeof(t->sock))) {
        fprintf(stderr, "%s: the socket path for '%s' is too long\n", t->cmd, t->label);
        return PETREL_STATUS_USAGE;
    }
    return target_check_dir(t);
}

/* One API call with the errors a user can act on. 0 with resp filled, or 1. */
static int target_call(struct target *t, const char *method, const char *path, const char *body,
                       struct api_response *resp)
{
    struct errbuf eb;
    int ret = api_client_call(t->sock, method, path, body, CMD_TIMEOUT_MS, resp, &eb);

    if (ret == -ENOENT)
        fprintf(stderr, "%s: no VM named '%s' (no socket at %s)\n", t->cmd, t->label, t->sock);
    else if (ret == -ECONNREFUSED)
        fprintf(stderr, "%s: VM '%s' is not running (%s is stale; 'petrel list' cleans up)\n",
                t->cmd, t->label, t->sock);
    else if (ret == -ETIMEDOUT)
        fprintf(stderr, "%s: VM '%s' is not responding (%s)\n", t->cmd, t->label, eb.msg);
    else if (ret)
        fprintf(stderr, "%s: %s: %s\n", t->cmd, t->label, eb.msg);
    return ret ? PETREL_STATUS_ERROR : 0;
}

/* Prints an API error body's fault_message. Returns 1. */
static int target_fault(struct target *t, struct api_response *resp)
{
    json_t *j = json_loads(resp->body, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "fault_message"));

    fprintf(stderr, "%s: %s: %s (HTTP %d)\n", t->cmd, t->label, msg ? msg : "unexpected answer",
            resp->status);
    json_decref(j);
    return PETREL_STATUS_ERROR;
}

/* pause / resume: PATCH /vm; a no-op answers 200 with a message. */
static int cmd_set_state(int argc, char **argv, const char *state, const char *done)
{
    struct target t = {TARGET_OPTS(pause_opts)};
    struct api_response resp;
    char body[64];
    int ret = target_parse(&t, argc, argv);

    if (ret >= 0)
        return ret;
    snprintf(body, sizeof(body), "{\"state\":\"%s\"}", state);
    if (target_call(&t, "PATCH", "/vm", body, &resp))
        return PETREL_STATUS_ERROR;
    if (resp.status == 204) {
        printf("%s: %s\n", t.label, done);
    } else if (resp.status == 200) {
        json_t *j = json_loads(resp.body, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "message"));
        printf("%s: %s\n", t.label, msg ? msg : done);
        json_decref(j);
    } else {
        ret = target_fault(&t, &resp);
    }
    api_response_free(&resp);
    return ret < 0 ? 0 : ret;
}

/* Makes DIR (one level) and names the two files in it, absolute: the VM writes them. */
static int snapshot_paths(const struct target *t, char *state, char *mem, size_t len)
{
    char dir[PATH_MAX];

    if (mkdir(t->dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot make %s: %s\n", t->cmd, t->dir, strerror(errno));
        return PETREL_STATUS_ERROR;
    }
    if (!realpath(t->dir, dir)) {
        fprintf(stderr, "%s: %s: %s\n", t->cmd, t->dir, strerror(errno));
        return PETREL_STATUS_ERROR;
    }
    if (snprintf(state, len, "%s/state", dir) >= (int)len ||
        snprintf(mem, len, "%s/mem", dir) >= (int)len) {
        fprintf(stderr, "%s: %s: the path is too long\n", t->cmd, dir);
        return PETREL_STATUS_USAGE;
    }
    return -1;
}

/* One PATCH /vm; 0, or an exit status after saying why. */
static int snapshot_set_state(struct target *t, const char *state)
{
    struct api_response resp;
    char body[64];
    snprintf(body, sizeof(body), "{\"state\":\"%s\"}", state);
    if (target_call(t, "PATCH", "/vm", body, &resp))
        return PETREL_STATUS_ERROR;
    int ret = resp.status == 204 || resp.status == 200 ? 0 : target_fault(t, &resp);
    api_response_free(&resp);
    return ret;
}

int cmd_snapshot(int argc, char **argv)
{
    struct target t = {TARGET_OPTS(snapshot_opts), .is_snapshot = true};
    char state[PATH_MAX], mem[PATH_MAX];
    struct api_response resp;
    struct errbuf eb;
    int ret = target_parse(&t, argc, argv);

    if (ret >= 0)
        return ret;
    ret = snapshot_paths(&t, state, mem, sizeof(state));
    if (ret >= 0)
        return ret;
    ret = snapshot_set_state(&t, "Paused");
    if (ret)
        return ret;
    json_t *j = json_pack("{s:s, s:s}", "snapshot_path", state, "mem_file_path", mem);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) {
        fprintf(stderr, "%s: out of memory\n", t.cmd);
        return PETREL_STATUS_ERROR;
    }
    ret = api_client_call(t.sock, "PUT", "/snapshot/create", body, CMD_SNAPSHOT_TIMEOUT_MS, &resp,
                          &eb);
    free(body);
    if (ret) {
        fprintf(stderr, "%s: %s: %s\n", t.cmd, t.label, eb.msg);
        ret = PETREL_STATUS_ERROR;
    } else if (resp.status != 204) {
        ret = target_fault(&t, &resp);
        api_response_free(&resp);
    } else {
        printf("%s: snapshot written to %s and %s\n", t.label, state, mem);
        api_response_free(&resp);
    }
    if (t.resume) {
        int r = snapshot_set_state(&t, "Resumed");
        if (!r)
            printf("%s: resumed\n", t.label);
        return ret ? ret : r;
    }
    if (ret)
        fprintf(stderr, "%s: %s is still paused ('petrel resume' goes on)\n", t.cmd, t.label);
    return ret;
}

int cmd_pause(int argc, char **argv)
{
    return cmd_set_state(argc, argv, "Paused", "paused");
}

int cmd_resume(int argc, char **argv)
{
    return cmd_set_state(argc, argv, "Resumed", "resumed");
}

static void target_alarm(int sig)
{
    (void)sig; /* only interrupts flock() */
}

/*
 * Blocks until the VM's process has released its lock, i.e. has exited, or
 * timeout_s seconds have passed. 0 or -ETIMEDOUT.
 */
static int target_wait_gone(struct target *t, unsigned timeout_s)
{
    struct sigaction sa = {.sa_handler = target_alarm}; /* no SA_RESTART: flock gets EINTR */
    char lock[API_PATH_MAX + 8];
    int ret = 0;

    snprintf(lock, sizeof(lock), "%s.lock", t->sock);
    int fd = open(lock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0; /* already removed: the VM is gone */
    /* flock() sleeps until the owner exits; the alarm is only a guard. */
    sigaction(SIGALRM, &sa, NULL);
    alarm(timeout_s);
    if (flock(fd, LOCK_SH) < 0 && errno == EINTR)
        ret = -ETIMEDOUT;
    alarm(0);
    close(fd);
    return ret;
}

/*
 * Presses the power button and waits for the guest to power off. 0, or -1 to
 * stop it: it did not power off in time, or it never enabled the button (422:
 * waiting would only run out the timeout).
 */
static int stop_graceful(struct target *t)
{
    struct api_response resp;
    int ret;

    if (target_call(t, "PUT", "/actions", "{\"action_type\":\"PowerButton\"}", &resp))
        return PETREL_STATUS_ERROR;
    if (resp.status == 422) {
        json_t *j = json_loads(resp.body, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "fault_message"));
        fprintf(stderr, "petrel stop: %s: %s; stopping it\n", t->label,
                msg ? msg : "the guest cannot be asked to power off");
        json_decref(j);
        api_response_free(&resp);
        return -1;
    }
    if (resp.status != 204) {
        ret = target_fault(t, &resp);
        api_response_free(&resp);
        return ret;
    }
    api_response_free(&resp);
    if (target_wait_gone(t, t->timeout_s) == 0) {
        printf("%s: powered off\n", t->label);
        return 0;
    }
    fprintf(stderr, "petrel stop: %s did not power off within %u s; stopping it\n", t->label,
            t->timeout_s);
    return -1;
}

int cmd_stop(int argc, char **argv)
{
    struct target t = {.is_stop = true, TARGET_OPTS(stop_opts)};
    struct api_response resp;
    int ret = target_parse(&t, argc, argv);

    if (ret >= 0)
        return ret;
    if (t.graceful) {
        ret = stop_graceful(&t);
        if (ret >= 0)
            return ret;
    }
    if (target_call(&t, "PUT", "/actions", "{\"action_type\":\"Stop\"}", &resp))
        return PETREL_STATUS_ERROR;
    if (resp.status == 204) {
        if (target_wait_gone(&t, CMD_TIMEOUT_MS / 1000 * 3)) {
            fprintf(stderr, "petrel stop: %s accepted the stop but is still running after %d s\n",
                    t.label, CMD_TIMEOUT_MS / 1000 * 3);
            ret = PETREL_STATUS_ERROR;
        } else {
            printf("%s: stopped\n", t.label);
            ret = 0;
        }
    } else {
        ret = target_fault(&t, &resp);
    }
    api_response_free(&resp);
    return ret;
}

int cmd_status(int argc, char **argv)
{
    struct target t = {TARGET_OPTS(status_opts)};
    struct api_response resp;
    int ret = target_parse(&t, argc, argv);

    if (ret >= 0)
        return ret;
    if (target_call(&t, "GET", "/vm", NULL, &resp))
        return PETREL_STATUS_ERROR;
    if (resp.status != 200) {
        ret = target_fault(&t, &resp);
        api_response_free(&resp);
        return ret;
    }
    if (t.json) {
        printf("%s\n", resp.body);
    } else {
        json_t *j = json_loads(resp.body, 0, NULL);
        json_t *p = json_object_get(j, "pause");
        printf("%s: %s, %lld vCPU%s, %lld MiB, up %.1f s",
               json_string_value(json_object_get(j, "id")) ?: t.label,
               json_string_value(json_object_get(j, "state")) ?: "?",
               (long long)json_integer_value(json_object_get(j, "vcpu_count")),
               json_integer_value(json_object_get(j, "vcpu_count")) == 1 ? "" : "s",
               (long long)json_integer_value(json_object_get(j, "mem_size_mib")),
               json_real_value(json_object_get(j, "uptime_s")));
        long long pauses = json_integer_value(json_object_get(p, "count"));
        if (pauses)
            printf("; %lld pause%s, the last took %.1f us", pauses, pauses == 1 ? "" : "s",
                   json_real_value(json_object_get(p, "last_kick_us")));
        printf("\n");
        json_decref(j);
    }
    api_response_free(&resp);
    return 0;
}
