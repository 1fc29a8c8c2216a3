/*
 * Helpers shared by every module: error buffers, size parsing, full writes,
 * private directories.
 */
#include "petrel/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int err_set(struct errbuf *eb, int err, const char *fmt, ...)
{
    if (eb) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
        va_end(ap);
    }
    return err;
}

int parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *name;
        unsigned shift;
    } units[] = {
        {"", 20},    {"b", 0},  {"k", 10},  {"kb", 10},  {"kib", 10}, {"m", 20},  {"mb", 20},
        {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},   {"tb", 40}, {"tib", 40},
    };
    char *end;

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (strcasecmp(end, units[i].name) != 0)
            continue;
        if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
            return -ERANGE;
        *out = (uint64_t)v << units[i].shift;
        return 0;
    }
    return -EINVAL;
}

int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end)
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

/* "N UNIT" or "N.25/.5/.75 UNIT", exactly: no rounding, no exponent. */
static void fmt_quarters(char *buf, size_t len, uint64_t bytes, uint64_t unit, const char *name)
{
    static const char *const frac[] = {"", ".25", ".5", ".75"};

    snprintf(buf, len, "%llu%s %s", (unsigned long long)(bytes / unit),
             frac[(bytes % unit) / (unit / 4)], name);
}

const char *fmt_size(uint64_t bytes, char *buf, size_t len)
{
    if (bytes >= GiB && bytes % (GiB / 4) == 0)
        fmt_quarters(buf, len, bytes, GiB, "GiB");
    else if (bytes >= MiB && bytes % (MiB / 4) == 0)
        fmt_quarters(buf, len, bytes, MiB, "MiB");
    else if (bytes >= KiB && bytes % KiB == 0)
        snprintf(buf, len, "%llu KiB", (unsigned long long)(bytes / KiB));
    else
        snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
    return buf;
}

uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* poll()'s timeout until deadline_ns: -1 for none, rounded up to whole ms, 0 once past. */
static int write_poll_ms(uint64_t deadline_ns)
{
    if (deadline_ns == WRITE_NO_DEADLINE)
        return -1;
    uint64_t now = now_ns();
    if (now >= deadline_ns)
        return 0;
    uint64_t ms = (deadline_ns - now + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

int write_until(int fd, const void *buf, size_t len, uint64_t deadline_ns, size_t *done)
{
    const uint8_t *p = buf;

    *done = 0;
    while (*done < len) {
        ssize_t n = write(fd, p + *done, len - *done);
        if (n >= 0) {
            *done += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int ms = write_poll_ms(deadline_ns);
        if (ms == 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
            return -errno;
    }
    return 0;
}

/*
 * The checks are made on the open directory (fstat of an O_NOFOLLOW fd), not
 * on its path, so what is checked is what was opened. Once it passes, the
 * directory stays the caller's: only its owner (or root) can rename or remove
 * it in a sticky /tmp, and the other parents (/run, $XDG_RUNTIME_DIR) are
 * root's or the user's own.
 */
int dir_open_private(const char *what, const char *path, bool create, struct errbuf *eb)
{
    struct stat st;
    int fd, err;

    if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
        return err_set(eb, -errno, "cannot create %s %s: %s", what, path, strerror(errno));
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        err = errno;
        if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
            return err_set(eb, -ELOOP,
                           "%s %s is a symbolic link, not a directory: refusing it "
                           "(another user may have made it; remove it)",
                           what, path);
        if (err == ENOTDIR)
            return err_set(eb, -ENOTDIR, "%s %s is not a directory: remove it", what, path);
        return err_set(eb, -err, "cannot open %s %s: %s", what, path, strerror(err));
    }
    if (fstat(fd, &st) < 0) {
        err = errno;
        close(fd);
        return err_set(eb, -err, "cannot open %s %s: %s", what, path, strerror(err));
    }
    if (st.st_uid != geteuid()) {
        close(fd);
        return err_set(eb, -EPERM,
                       "%s %s is owned by uid %u, not by you (uid %u): refusing it "
                       "(another user may have made it first; remove it)",
                       what, path, (unsigned)st.st_uid, (unsigned)geteuid());
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        close(fd);
        return err_set(eb, -EPERM,
                       "%s %s is writable by others (mode %04o): refusing it "
                       "(they could replace what is in it; remove it, or chmod go-w it)",
                       what, path, (unsigned)(st.st_mode & 07777));
    }
    return fd;
}

int write_all(int fd, const void *buf, size_t len)
{
    size_t done;

    return write_until(fd, buf, len, WRITE_NO_DEADLINE, &done);
}
