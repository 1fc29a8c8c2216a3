/* petrel list: the running VMs of this user, cleaning up sockets of dead ones. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "petrel/api.h"
#include "petrel/exit.h"

/* True when nobody holds the VM's lock: its process is gone. Removes its files then. */
static bool list_reap_if_stale(const char *sock)
{
    char lock[API_PATH_MAX + 8];
    bool stale = false;

    snprintf(lock, sizeof(lock), "%s.lock", sock);
    int fd = open(lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        stale = errno == ENOENT;
    } else if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        stale = true;
        unlink(lock);
    }
    if (stale)
        unlink(sock);
    if (fd >= 0)
        close(fd);
    return stale;
}

enum { LIST_JSON = CMD_OPT_LONG };

static const struct cmd_opt list_opts[] = {
    {LIST_JSON, "json", NULL, "print JSON: an array of {id, state, api_sock}"},
    {'h', "help", NULL, "show this help"},
};

/* --help on stdout (0), or after a bad option on stderr (usage error). */
static int list_usage(FILE *f)
{
    fprintf(f, "usage: petrel list [--json]\n\n"
               "Lists this user's running VMs (their sockets in $XDG_RUNTIME_DIR/petrel,\n"
               "/run/petrel for root or /tmp/petrel-UID), and removes the files of VMs\n"
               "that died without cleaning up.\n"
               "\n"
               "options:\n");
    cmd_opts_print(f, list_opts, ARRAY_SIZE(list_opts));
    return f == stdout ? 0 : PETREL_STATUS_USAGE;
}

int cmd_list(int argc, char **argv)
{
    struct cmd_getopt g;
    char dir[256];
    bool json = false;
    int c;

    if (cmd_opts_getopt(list_opts, ARRAY_SIZE(list_opts), &g)) {
        fprintf(stderr, "%s: bad option table\n", argv[0]); /* a bug, which test_cli finds */
        return PETREL_STATUS_ERROR;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        if (c == LIST_JSON)
            json = true;
        else
            return list_usage(c == 'h' ? stdout : stderr);
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return PETREL_STATUS_USAGE;
    }
    /* Only a directory that is this user's alone is listed (api_client_open_dir). */
    struct errbuf eb;
    int dfd = api_client_open_dir(dir, sizeof(dir), &eb);
    if (dfd < 0 && dfd != -ENOENT) {
        fprintf(stderr, "%s: %s\n", argv[0], eb.msg);
        return PETREL_STATUS_ERROR;
    }
    json_t *all = json_array();
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (dfd >= 0 && !d)
        close(dfd);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (len < 6 || strcmp(e->d_name + len - 5, ".sock") != 0)
                continue;
            char sock[API_PATH_MAX], name[API_NAME_MAX + 1];
            if (len - 5 > API_NAME_MAX ||
                (size_t)snprintf(sock, sizeof(sock), "%s/%s", dir, e->d_name) >= sizeof(sock))
                continue;
            snprintf(name, sizeof(name), "%.*s", (int)(len - 5), e->d_name);
            if (list_reap_if_stale(sock))
                continue;
            struct api_response resp;
            const char *state = "NotResponding";
            json_t *j = NULL;
            if (!api_client_call(sock, "GET", "/", NULL, 2000, &resp, &eb)) {
                j = json_loads(resp.body, 0, NULL);
                state = json_string_value(json_object_get(j, "state")) ?: "?";
                api_response_free(&resp);
            }
            json_array_append_new(
                all, json_pack("{s:s, s:s, s:s}", "id", name, "state", state, "api_sock", sock));
            json_decref(j);
        }
        closedir(d);
    }
    if (json) {
        char *text = json_dumps(all, JSON_COMPACT);
        printf("%s\n", text ? text : "[]");
        free(text);
    } else {
        size_t i;
        json_t *vm;
        if (json_array_size(all))
            printf("%-20s %-14s %s\n", "NAME", "STATE", "API SOCKET");
        json_array_foreach(all, i, vm)
        {
            printf("%-20s %-14s %s\n", json_string_value(json_object_get(vm, "id")),
                   json_string_value(json_object_get(vm, "state")),
                   json_string_value(json_object_get(vm, "api_sock")));
        }
    }
    json_decref(all);
    return 0;
}
