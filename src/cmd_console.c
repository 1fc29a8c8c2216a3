/*
 * petrel console NAME: attaches this terminal to a VM started with
 * --console socket. Ctrl-A d detaches (the VM runs on), Ctrl-A p pauses or
 * resumes it through the API, Ctrl-A h lists the keys.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "petrel/api.h"
#include "petrel/escape.h"
#include "petrel/exit.h"

static const char console_help[] = "\r\n"
                                   "petrel console keys:\r\n"
                                   "  Ctrl-A d       detach (the VM keeps running)\r\n"
                                   "  Ctrl-A p       pause or resume the VM\r\n"
                                   "  Ctrl-A h       show these keys\r\n"
                                   "  Ctrl-A Ctrl-A  send Ctrl-A to the guest\r\n";

static void console_say(const char *msg)
{
    int ret = write_all(STDOUT_FILENO, msg, strlen(msg));
    (void)ret;
}

/* Ctrl-A p: asks the API for the state and flips it. */
static void console_toggle_pause(const char *sock)
{
    struct api_response resp;
    struct errbuf eb;
    char line[sizeof(eb.msg) + 64];

    if (api_client_call(sock, "GET", "/", NULL, 5000, &resp, &eb)) {
        snprintf(line, sizeof(line), "\r\n[petrel: cannot reach the VM: %s]\r\n", eb.msg);
        console_say(line);
        return;
    }
    json_t *j = json_loads(resp.body, 0, NULL);
    const char *state = json_string_value(json_object_get(j, "state"));
    bool paused = state && (!strcmp(state, "Paused") || !strcmp(state, "Pausing"));
    json_decref(j);
    api_response_free(&resp);

    const char *body = paused ? "{\"state\":\"Resumed\"}" : "{\"state\":\"Paused\"}";
    if (api_client_call(sock, "PATCH", "/vm", body, 5000, &resp, &eb)) {
        snprintf(line, sizeof(line), "\r\n[petrel: %s]\r\n", eb.msg);
    } else {
        snprintf(line, sizeof(line), "\r\n[petrel: %s]\r\n",
                 resp.status < 300 ? (paused ? "resumed" : "paused; Ctrl-A p resumes")
                                   : "the VM refused");
        api_response_free(&resp);
    }
    console_say(line);
}

/* Copies the console to the terminal and keys to the console until detach or EOF. */
static int console_bridge(int fd, const char *sock, const char *name)
{
    struct escape esc = {0};
    uint8_t buf[4096], out[4096];
    bool input = true;

    for (;;) {
        struct pollfd p[2] = {{.fd = input ? STDIN_FILENO : -1, .events = POLLIN},
                              {.fd = fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return PETREL_STATUS_ERROR;
        }
        if (p[1].revents) {
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0) {
                char line[128];
                snprintf(line, sizeof(line), "\r\n[petrel: the console of %s closed]\r\n", name);
                console_say(line);
                return 0;
            }
            if (write_all(STDOUT_FILENO, buf, (size_t)n))
                return PETREL_STATUS_ERROR;
        }
        if (p[0].revents) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n <= 0) {
                input = false; /* end of input: keep showing output until the VM ends */
                continue;
            }
            size_t off = 0;
            while (off < (size_t)n) {
                size_t len;
                enum escape_action a;
                off += escape_feed(&esc, buf + off, (size_t)n - off, out, &len, &a);
                if (len && write_all(fd, out, len))
                    return PETREL_STATUS_ERROR;
                if (a == ESCAPE_DETACH || a == ESCAPE_QUIT) {
                    char line[160];
                    snprintf(line, sizeof(line),
                             "\r\n[petrel: detached from %s; it keeps running]\r\n", name);
                    console_say(line);
                    return 0;
                }
                if (a == ESCAPE_HELP)
                    console_say(console_help);
                if (a == ESCAPE_PAUSE)
                    console_toggle_pause(sock);
            }
        }
    }
}

enum { CONSOLE_API_SOCK = CMD_OPT_LONG };

static const struct cmd_opt console_opts[] = {
    {CONSOLE_API_SOCK, "api-sock", "PATH", "the VM's API socket, instead of finding it by NAME"},
    {'h', "help", NULL, "show this help"},
};

/* --help on stdout (0), or after a bad option on stderr (usage error). */
static int console_usage(FILE *f)
{
    fprintf(f, "usage: petrel console NAME | --api-sock PATH\n\n"
               "Attaches this terminal to a VM started with --console socket.\n"
               "Ctrl-A d detaches (the VM keeps running), Ctrl-A p pauses or resumes,\n"
               "Ctrl-A h lists the keys.\n"
               "\n"
               "options:\n");
    cmd_opts_print(f, console_opts, ARRAY_SIZE(console_opts));
    return f == stdout ? 0 : PETREL_STATUS_USAGE;
}

int cmd_console(int argc, char **argv)
{
    struct cmd_getopt g;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char sock[API_PATH_MAX], path[API_PATH_MAX];
    const char *name = NULL;
    int c;

    if (cmd_opts_getopt(console_opts, ARRAY_SIZE(console_opts), &g)) {
        fprintf(stderr, "petrel console: bad option table\n"); /* a bug, which test_cli finds */
        return PETREL_STATUS_ERROR;
    }
    sock[0] = '\0';
    optind = 1;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        if (c == CONSOLE_API_SOCK) {
            snprintf(sock, sizeof(sock), "%s", optarg);
            name = optarg;
        } else {
            return console_usage(c == 'h' ? stdout : stderr);
        }
    }
    if (!sock[0]) {
        if (optind != argc - 1 || !api_name_valid(argv[optind])) {
            fprintf(stderr, "usage: petrel console NAME | --api-sock PATH\n");
            return PETREL_STATUS_USAGE;
        }
        name = argv[optind];
        if (api_sock_path(name, sock, sizeof(sock)))
            return PETREL_STATUS_USAGE;
        /* Trusted only in a directory that is this user's alone (api_client_open_dir). */
        char dir[API_PATH_MAX];
        struct errbuf eb;
        int dfd = api_client_open_dir(dir, sizeof(dir), &eb);
        if (dfd == -ENOENT) {
            fprintf(stderr, "petrel console: no VM named '%s' (no socket at %s)\n", name, sock);
            return PETREL_STATUS_ERROR;
        }
        if (dfd < 0) {
            fprintf(stderr, "petrel console: %s\n", eb.msg);
            return PETREL_STATUS_ERROR;
        }
        close(dfd);
    }
    if (api_console_path(sock, path, sizeof(path)))
        return PETREL_STATUS_USAGE;

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memcpy(addr.sun_path, path, strlen(path) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (errno == ENOENT)
            fprintf(stderr,
                    "petrel console: %s has no console socket (%s): is it running, "
                    "started with --console socket?\n",
                    name, path);
        else
            fprintf(stderr, "petrel console: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return PETREL_STATUS_ERROR;
    }

    struct termios saved, raw;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        raw = saved;
        cfmakeraw(&raw); /* a serial line: the guest sends CR NL itself */
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    fprintf(stderr, "[petrel: attached to %s; Ctrl-A d detaches, Ctrl-A h lists the keys]\r\n",
            name);
    int status = console_bridge(fd, sock, name);
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    close(fd);
    return status;
}
