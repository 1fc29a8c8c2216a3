/* Per-thread seccomp filters (sandbox.h): what each thread may call, and why. */
#include "petrel/sandbox.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <seccomp.h>

#include "petrel/exit.h"
#include "syscall_names.h"

struct sc {
    int nr;
    const char *why;
};

struct io {
    unsigned long req;
    const char *why;
};

#define SC(name, why)                                                                              \
    {                                                                                              \
        SCMP_SYS(name), why                                                                        \
    }
#define IO(req, why)                                                                               \
    {                                                                                              \
        req, why                                                                                   \
    }

/* Every thread: memory, locks, time, its own exit, and reporting an error. */
static const struct sc base_calls[] = {
    SC(futex, "pthread mutexes and condition variables"),
    SC(mmap, "malloc (large blocks, thread arenas)"),
    SC(munmap, "free"),
    SC(mremap, "realloc of a large block"),
    SC(mprotect, "malloc growing a thread arena"),
    SC(madvise, "free returning memory; a thread's exit releasing its stack"),
    SC(brk, "malloc"),
    SC(clock_gettime, "monotonic time where the vDSO cannot answer"),
    SC(gettid, "thread identity (pthread, messages)"),
    SC(getpid, "pthread_kill, abort"),
    SC(tgkill, "abort() and raise() on an internal error"),
    SC(rt_sigprocmask, "pthread_sigmask around thread work and exit; abort"),
    SC(rt_sigreturn, "returning from the kick (SIGRTMIN) and other handlers"),
    SC(restart_syscall, "a call interrupted by a signal"),
    SC(sched_yield, "spinning waits in pthread"),
    SC(write, "error messages on stderr; eventfd notifications to the loop"),
    SC(sigaltstack, "a sanitizer build's runtime, at a thread's start and end"),
    SC(exit, "the thread ends"),
    SC(exit_group, "petrel ends"),
};

/* A vCPU thread: KVM_RUN, and what a device emulated on its exit does. */
static const struct sc vcpu_calls[] = {
    SC(ioctl, "the KVM ioctls below only"),
    SC(read, "an eventfd or pipe a device drains on an exit"),
};

static const struct io vcpu_ioctls[] = {
    IO(KVM_RUN, "runs the guest"),
    IO(KVM_KVMCLOCK_CTRL, "tells the guest it was paused (at park)"),
    IO(KVM_IRQ_LINE, "a device raising or lowering a line on a port or MMIO exit"),
    IO(KVM_IRQ_LINE_STATUS, "the same, with the delivery status"),
    IO(KVM_SIGNAL_MSI, "an MSI raised on an exit"),
    IO(KVM_SET_GSI_ROUTING, "the guest writing an MSI-X table entry"),
    IO(KVM_IRQFD, "the guest enabling or moving an MSI-X vector"),
    IO(KVM_IOEVENTFD, "the guest enabling a virtqueue (its doorbell)"),
};

/* A block worker: one request's syscalls on its drive's fd. */
static const struct sc blk_calls[] = {
    SC(preadv, "a read request"),
    SC(pwritev, "a write request"),
    SC(pread64, "a read request of one segment"),
    SC(pwrite64, "a write request of one segment; write-zeroes written as zeros"),
    SC(fdatasync, "a flush request"),
    SC(fsync, "a flush request"),
    SC(fallocate, "discard (punch hole) and write-zeroes (zero range)"),
};

/* A job worker (started by the loop, so inside the loop's filter too): snapshot files. */
static const struct sc job_calls[] = {
    SC(openat, "creates the snapshot's memory and state files"),
    SC(close, "closes them"),
    SC(pwrite64, "writes guest memory"),
    SC(pread64, "compares a file with memory"),
    SC(lseek, "finds the data in a sparse file"),
    SC(fstat, "sizes a file"),
    SC(newfstatat, "sizes a file"),
    SC(ftruncate, "sizes the memory file"),
    SC(fallocate, "reserves the memory file's blocks"),
    SC(fdatasync, "makes the files durable before the rename"),
    SC(fsync, "makes the directory durable"),
    SC(renameat, "puts a file in place"),
    SC(rename, "puts a file in place"),
    SC(unlink, "removes a stale state file"),
    SC(unlinkat, "removes a stale state file"),
    SC(ioctl, "none but the terminal's (glibc's isatty on stdio)"),
};

static const struct io job_ioctls[] = {
    IO(TCGETS, "isatty() on a file stdio opens"),
};

/* The main thread's loop: the API, the console, the devices, the control events. */
static const struct sc loop_calls[] = {
    SC(epoll_wait, "libevent's loop"),
    SC(epoll_pwait, "libevent's loop"),
    SC(epoll_ctl, "libevent adding and removing fds"),
    SC(read, "console input, eventfds, API requests"),
    SC(readv, "libevent's buffers"),
    SC(write, "console output, eventfds, API replies"),
    SC(writev, "libevent's buffers"),
    SC(recvfrom, "API and console sockets"),
    SC(recvmsg, "API and console sockets"),
    SC(sendto, "API and console sockets"),
    SC(sendmsg, "API and console sockets"),
    SC(accept, "API and console clients"),
    SC(accept4, "API and console clients"),
    SC(shutdown, "closing a client's connection"),
    SC(getsockopt, "libevent checks a socket's error"),
    SC(setsockopt, "libevent sets a client socket's options"),
    SC(getsockname, "libevent's HTTP server"),
    SC(getpeername, "libevent's HTTP server"),
    SC(fcntl, "non-blocking fds (libevent, the console)"),
    SC(close, "closing clients, files, eventfds"),
    SC(eventfd2, "a job's completion"),
    SC(poll, "the console's bounded flush at exit"),
    SC(ppoll, "the console's bounded flush at exit"),
    SC(openat, "snapshot files; naming a worker thread (/proc/self/task/N/comm)"),
    SC(newfstatat, "snapshot files"),
    SC(fstat, "snapshot files"),
    SC(lseek, "snapshot files"),
    SC(pread64, "snapshot files"),
    SC(pwrite64, "snapshot files"),
    SC(ftruncate, "snapshot files"),
    SC(fallocate, "snapshot files"),
    SC(fsync, "a snapshot's directory"),
    SC(fdatasync, "a snapshot's state file"),
    SC(renameat, "a snapshot's files put in place"),
    SC(rename, "a snapshot's files put in place"),
    SC(unlink, "a stale snapshot state file; the API socket at exit"),
    SC(unlinkat, "a stale snapshot state file; the API socket at exit"),
    SC(mkdir, "a snapshot's directory"),
    SC(mkdirat, "a snapshot's directory"),
    SC(clone, "a job's worker thread"),
    SC(clone3, "a job's worker thread"),
    SC(set_robust_list, "a new thread's start (glibc)"),
    SC(sched_getaffinity, "a new thread's start in a sanitizer build"),
    SC(rseq, "a new thread's start (glibc)"),
    SC(prctl, "pthread_setname_np on itself"),
    SC(ioctl, "the ioctls below only"),
    SC(rt_sigaction, "console signals restored at exit"),
    SC(getrandom, "virtio-rng's bytes; libevent's and jansson's hash seeds"),
    SC(setitimer, "the exit guard: SIGALRM interrupts a write blocked on stderr"),
    SC(getcwd, "a snapshot's paths made absolute (realpath)"),
    SC(readlink, "a snapshot's paths made absolute (realpath)"),
    SC(mincore, "--stats at exit: how much of guest RAM is resident"),
    SC(seccomp, "a job's worker narrows itself further (the loop's filter stays)"),
    SC(epoll_create1, "libevent"),
};

/* The loop with --net user: libslirp opens host sockets for the guest's traffic. */
static const struct sc loop_slirp_calls[] = {
    SC(socket, "a host socket for a guest's TCP connection, UDP flow or ping"),
    SC(connect, "a guest's TCP connection (or UDP flow) to the host's side"),
    SC(bind, "a UDP flow's or a forwarded port's socket"),
    SC(listen, "a forwarded port's socket"),
    SC(getpeername, "a connection's peer"),
};

static const struct io loop_tap_ioctls[] = {
    IO(TUNSETOFFLOAD, "the tap's offloads, as the guest's driver negotiated them"),
};

static const struct io loop_ioctls[] = {
    /* The VM's interrupts and doorbells, as devices change them from the loop. */
    IO(KVM_IRQ_LINE, "a device's line (the UART, the RTC, virtio INTx)"),
    IO(KVM_IRQ_LINE_STATUS, "the same, with the delivery status"),
    IO(KVM_SIGNAL_MSI, "an MSI"),
    IO(KVM_SET_GSI_ROUTING, "MSI-X routes"),
    IO(KVM_IRQFD, "MSI-X vectors"),
    IO(KVM_IOEVENTFD, "virtqueue doorbells, removed at reset"),
    /* A snapshot reads the paused VM's state on the loop. */
    IO(KVM_CHECK_EXTENSION, "what KVM can save"),
    IO(KVM_GET_MSR_INDEX_LIST, "which MSRs to save"),
    IO(KVM_GET_REGS, "a vCPU's registers"),
    IO(KVM_GET_SREGS, "a vCPU's system registers"),
    IO(KVM_GET_SREGS2, "a vCPU's system registers and PDPTRs"),
    IO(KVM_GET_FPU, "a vCPU's FPU"),
    IO(KVM_GET_XSAVE, "a vCPU's XSAVE area"),
    IO(KVM_GET_XSAVE2, "a vCPU's XSAVE area"),
    IO(KVM_GET_XCRS, "a vCPU's XCRs"),
    IO(KVM_GET_MSRS, "a vCPU's MSRs"),
    IO(KVM_GET_LAPIC, "a vCPU's local APIC"),
    IO(KVM_GET_VCPU_EVENTS, "a vCPU's pending events"),
    IO(KVM_GET_MP_STATE, "a vCPU's run state"),
    IO(KVM_GET_DEBUGREGS, "a vCPU's debug registers"),
    IO(KVM_GET_CPUID2, "a vCPU's CPUID"),
    IO(KVM_GET_TSC_KHZ, "a vCPU's TSC frequency"),
    IO(KVM_GET_CLOCK, "the VM's clock"),
    IO(KVM_GET_IRQCHIP, "the PIC and IOAPIC"),
    IO(KVM_GET_PIT2, "the PIT"),
    /* The gdb stub (--gdb), with every vCPU paused. */
    IO(KVM_SET_REGS, "gdb writes a register"),
    IO(KVM_SET_SREGS, "gdb writes a control register"),
    IO(KVM_SET_FPU, "gdb writes an SSE register"),
    IO(KVM_SET_GUEST_DEBUG, "gdb's breakpoints, watchpoints and steps"),
    /* The terminal. */
    IO(TCGETS, "the console's terminal settings"),
    IO(TCSETS, "raw mode, restored at exit"),
    IO(TCSETSW, "raw mode, restored at exit"),
    IO(TCSETSF, "raw mode, restored at exit"),
    IO(TIOCGWINSZ, "the terminal's size"),
    IO(FIONBIO, "a non-blocking socket (libevent)"),
    IO(FIONREAD, "libevent sizing a read from a client"),
};

struct role {
    const char *name;
    const struct sc *calls;
    size_t nr_calls;
    const struct io *ioctls;
    size_t nr_ioctls;
};

#define ROLE(n, c, i)                                                                              \
    {                                                                                              \
        n, c, ARRAY_SIZE(c), i, ARRAY_SIZE(i)                                                      \
    }
static const struct io no_ioctls[1] = {{0, NULL}};

static const struct role roles[SANDBOX_ROLES] = {
    [SANDBOX_LOOP] = ROLE("loop", loop_calls, loop_ioctls),
    [SANDBOX_VCPU] = ROLE("vcpu", vcpu_calls, vcpu_ioctls),
    [SANDBOX_BLK] = {"blk", blk_calls, ARRAY_SIZE(blk_calls), no_ioctls, 0},
    [SANDBOX_JOB] = ROLE("job", job_calls, job_ioctls),
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
    return role < SANDBOX_ROLES ? roles[role].name : "?";
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
    if (nr == SCMP_SYS(ioctl)) {
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

static int add_calls(scmp_filter_ctx ctx, const struct sc *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (calls[i].nr == SCMP_SYS(ioctl))
            continue;
        /* A role may name a base call again (with its own reason). */
        int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i].nr, 0);
        if (ret < 0 && ret != -EEXIST)
            return ret;
    }
    return 0;
}

/* ioctl: the request numbers listed, compared as the kernel does (32 bits). */
static int add_ioctls(scmp_filter_ctx ctx, const struct io *ioctls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                   SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, ioctls[i].req));
        if (ret < 0 && ret != -EEXIST)
            return ret;
    }
    return 0;
}

static int add_role(scmp_filter_ctx ctx, const struct role *r, unsigned flags)
{
    int ret;
    for (size_t i = 0; i < ARRAY_SIZE(base_calls); i++)
        if ((ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, base_calls[i].nr, 0)) < 0)
            return ret;
    if ((ret = add_calls(ctx, r->calls, r->nr_calls)) < 0 ||
        (ret = add_ioctls(ctx, r->ioctls, r->nr_ioctls)) < 0)
        return ret;
    if (r != &roles[SANDBOX_LOOP])
        return 0;
    if ((flags & SANDBOX_NET_USER) &&
        (ret = add_calls(ctx, loop_slirp_calls, ARRAY_SIZE(loop_slirp_calls))) < 0)
        return ret;
    if ((flags & SANDBOX_NET_TAP) &&
        (ret = add_ioctls(ctx, loop_tap_ioctls, ARRAY_SIZE(loop_tap_ioctls))) < 0)
        return ret;
    return 0;
}

/* Builds role r's BPF program into *prog (malloc()ed). */
static int build(enum sandbox_mode mode, unsigned flags, const struct role *r,
                 struct sock_fprog *prog)
{
    uint32_t deny = mode == SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP;
    scmp_filter_ctx ctx = seccomp_init(deny);
    int ret, fd = -1;

    if (!ctx)
        return -ENOMEM;
    /* petrel sets no_new_privs itself, per thread, when it loads the program. */
    ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (!ret)
        ret = add_role(ctx, r, flags);
    if (!ret) {
        fd = memfd_create("petrel-seccomp", MFD_CLOEXEC);
        ret = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
    }
    seccomp_release(ctx);
    if (ret)
        goto out;
    off_t len = lseek(fd, 0, SEEK_END);
    if (len <= 0 || len % sizeof(struct sock_filter) || len > 65536 * 8) {
        ret = -EIO;
        goto out;
    }
    struct sock_filter *f = malloc((size_t)len);
    if (!f) {
        ret = -ENOMEM;
        goto out;
    }
    if (pread(fd, f, (size_t)len, 0) != len) {
        free(f);
        ret = -EIO;
        goto out;
    }
    prog->filter = f;
    prog->len = (unsigned short)(len / sizeof(struct sock_filter));
out:
    if (fd >= 0)
        close(fd);
    return ret;
}

int sandbox_init(enum sandbox_mode mode, unsigned flags, struct errbuf *eb)
{
    if (policy.ready)
        return err_set(eb, -EALREADY, "the seccomp filters are already set up");
    policy.mode = mode;
    if (mode == SANDBOX_OFF) {
        policy.ready = true;
        return 0;
    }
    for (int i = 0; i < SANDBOX_ROLES; i++) {
        int ret = build(mode, flags, &roles[i], &policy.prog[i]);
        if (ret)
            return err_set(eb, ret, "cannot build the %s thread's seccomp filter: %s",
                           roles[i].name, strerror(-ret));
    }
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
    thread_role = roles[role].name;
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
