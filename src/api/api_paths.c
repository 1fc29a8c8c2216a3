/* Where VM API sockets live, and what a VM name may be. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "petrel/api.h"

bool api_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > API_NAME_MAX || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

int api_runtime_dir(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;

    if (xdg && xdg[0] == '/')
        n = snprintf(buf, len, "%s/petrel", xdg);
    else if (geteuid() == 0)
        n = snprintf(buf, len, "/run/petrel");
    else
        n = snprintf(buf, len, "/tmp/petrel-%u", (unsigned)geteuid());
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int api_console_path(const char *sock_path, char *buf, size_t len)
{
    size_t n = strlen(sock_path);
    int w;

    if (n > 5 && !strcmp(sock_path + n - 5, ".sock"))
        w = snprintf(buf, len, "%.*s.console", (int)(n - 5), sock_path);
    else
        w = snprintf(buf, len, "%s.console", sock_path);
    return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

int api_sock_path(const char *name, char *buf, size_t len)
{
    char dir[256];
    int ret = api_runtime_dir(dir, sizeof(dir));

    if (ret)
        return ret;
    int n = snprintf(buf, len, "%s/%s.sock", dir, name);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
