/*
 * Per-thread seccomp filters (sandbox.h): which BPF program each thread loads. What
 * each thread may call, and why, is listed in sandbox_policy.c, which builds the
 * programs at build time.
 */
#include "petrel/sandbox.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "petrel/exit.h"

/* The BPF programs, made at build time from sandbox_policy.c's lists. */
#include "sandbox_bpf.h"

static const char *const role_names[SANDBOX_ROLES] = {
    [SANDBOX_LOOP] = "loop",
    [SANDBOX_VCPU] = "vcpu",
    [SANDBOX_BLK] = "blk",
    [SANDBOX_JOB] = "job",
};

/* The process's policy: set by sandbox_init() before any other thread exists. */
static struct {
    bool ready;
    enum sandbox_mode mode;
    struct sock_fprog prog[SANDBOX_ROLES];
} policy;

/* For the SIGSYS handler: the thread's role (the names are a constant table). */
static __thread const char *thread_role;

const char *sandbox_syscall_name(int nr)
{
    return nr >= 0 && nr < SYSCALL_NAMES_MAX ? syscall_names[nr] : NULL;
}

const char *sandbox_role_name(enum sandbox_role role)
{
    return role < SANDBOX_ROLES ? role_names[role] : "?";
}

int sandbox_mode_parse(const char *s, enum sandbox_mode *mode)
{
    if (!strcmp(s, "on"))
        *mode = SANDBOX_ON;
    else if (!strcmp(s, "log"))
        *mode = SANDBOX_LOG;
    else if (!strcmp(s, "off"))
        *mode = SANDBOX_OFF;
    else
        return -EINVAL;
    return 0;
}

/* Appends s to buf at *n (async-signal-safe). */
static void put(char *buf, size_t size, size_t *n, const char *s)
{
    while (*s && *n + 1 < size)
        buf[(*n)++] = *s++;
}

static void put_uint(char *buf, size_t size, size_t *n, unsigned long v)
{
    char d[24];
    size_t k = 0;
    do
        d[k++] = (char)('0' + v % 10);
    while ((v /= 10) && k < sizeof(d));
    while (k && *n + 1 < size)
        buf[(*n)++] = d[--k];
}

/* A forbidden call: one line, then petrel ends. Only async-signal-safe calls. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    char line[200];
    size_t n = 0;
    (void)sig;

    int nr = si->si_syscall;
    put(line, sizeof(line), &n, "petrel: seccomp: the ");
    put(line, sizeof(line), &n, thread_role ? thread_role : "unsandboxed");
    put(line, sizeof(line), &n, " thread made a forbidden system call: ");
    const char *name = sandbox_syscall_name(nr);
    put(line, sizeof(line), &n, name ? name : "?");
    put(line, sizeof(line), &n, " (");
    put_uint(line, sizeof(line), &n, (unsigned long)nr);
    if (nr == SYS_ioctl) {
        /* Which request: the second argument, in rsi at the call. */
        const ucontext_t *ctx = uc;
        put(line, sizeof(line), &n, ", request ");
        put_uint(line, sizeof(line), &n, (unsigned long)ctx->uc_mcontext.gregs[REG_RSI]);
    }
    put(line, sizeof(line), &n, "); stopping (--seccomp log finds every such call)\n");
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
    _exit(PETREL_STATUS_ERROR);
}

int sandbox_init(enum sandbox_mode mode, unsigned flags, struct errbuf *eb)
{
    if (policy.ready)
        return err_set(eb, -EALREADY, "the seccomp filters are already set up");
    if (mode != SANDBOX_ON && mode != SANDBOX_LOG && mode != SANDBOX_OFF)
        return err_set(eb, -EINVAL, "no such seccomp mode: %d", (int)mode);
    policy.mode = mode;
    if (mode == SANDBOX_OFF) {
        policy.ready = true;
        return 0;
    }
    /* Made at build time (sandbox_policy.c): nothing to build, only to choose. */
    for (int i = 0; i < SANDBOX_ROLES; i++)
        policy.prog[i] = sandbox_bpf[mode][i][flags & (SANDBOX_VARIANTS - 1)];
    /* Only `on` traps (SIGSYS); with `log` the kernel logs and no handler runs. */
    struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0)
        return err_set(eb, -errno, "cannot install the SIGSYS handler: %s", strerror(errno));
    policy.ready = true;
    return 0;
}

int sandbox_enter(enum sandbox_role role)
{
    if (!policy.ready || policy.mode == SANDBOX_OFF)
        return 0;
    if (role >= SANDBOX_ROLES)
        return -EINVAL;
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &policy.prog[role]) < 0)
        return -errno;
    thread_role = role_names[role];
    return 0;
}

void sandbox_enter_or_die(enum sandbox_role role)
{
    int ret = sandbox_enter(role);
    if (ret) {
        fprintf(stderr, "petrel: a %s thread cannot enter its seccomp filter: %s\n",
                sandbox_role_name(role), strerror(-ret));
        _exit(PETREL_STATUS_ERROR);
    }
}
