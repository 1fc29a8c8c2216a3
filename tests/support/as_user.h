/*
 * Test helpers for what another user sees: CI runs the unit tests as root,
 * and checks of ownership and permissions must be seen from a plain user too.
 *
 * as_user() forks; the child becomes uid (gid uid, no supplementary groups)
 * and runs fn, which returns 0 or 1 and says in msg what went wrong. Root
 * only. The child ends with _exit(): nothing of the test runner's state
 * (cmocka's jump buffers, stdio buffers) runs twice.
 *
 * scratch_remove() removes a test's scratch tree, whoever owns what is in it.
 */
#ifndef PETREL_TEST_AS_USER_H
#define PETREL_TEST_AS_USER_H

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Users that no test host is expected to have: one plays the victim, one the other user. */
#define AS_USER_VICTIM 65533u
#define AS_USER_OTHER  65534u

typedef int as_user_fn(void *arg, char *msg, size_t len);

/* Runs fn(arg) as uid in a child process. Its status (0 = passed), or 125 if it could not. */
static inline int as_user(uid_t uid, as_user_fn *fn, void *arg, char *msg, size_t len)
{
    int p[2];

    msg[0] = '\0';
    if (pipe(p) < 0) {
        snprintf(msg, len, "pipe: %s", strerror(errno));
        return 125;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(msg, len, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return 125;
    }
    if (pid == 0) {
        char m[1024] = "";
        int ret;
        close(p[0]);
        if (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0) {
            snprintf(m, sizeof(m), "cannot become uid %u: %s", (unsigned)uid, strerror(errno));
            ret = 125;
        } else {
            ret = fn(arg, m, sizeof(m));
        }
        if (write(p[1], m, strlen(m)) < 0)
            ret = 125;
        _exit(ret);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < len && (n = read(p[0], msg + got, len - 1 - got)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        got += (size_t)n;
    }
    msg[got] = '\0';
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static inline int scratch_remove_one(const char *path, const struct stat *st, int flag,
                                     struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* rm -rf path (symbolic links are removed, never followed). */
static inline void scratch_remove(const char *path)
{
    nftw(path, scratch_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
