/*
 * The seccomp policy: what each of petrel's threads may call, and why (sandbox.h).
 *
 * This is a build-time program, not part of petrel: it builds every BPF program
 * petrel can load (each role; the loop's for every combination of the
 * SANDBOX_NET_* flags; each for mode on, which traps, and log) with libseccomp and
 * writes them as C arrays into the header named by its argument, which sandbox.c
 * includes. petrel used to build its four programs with libseccomp at every start
 * (gen_bpf_generate, db_rule_add: a large part of its own start-up CPU in the nested
 * harness, and libseccomp's pages); now it loads constant data.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <seccomp.h>

#include "petrel/sandbox.h"

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
    /* Where the host's clocksource has no vDSO (hpet or acpi_pm, as under QEMU's TCG),
     * every time call is a system call: libslirp's gettimeofday() killed petrel there. */
    SC(gettimeofday, "wall-clock time where the vDSO cannot answer (libslirp, libevent)"),
    SC(time, "time() where the vDSO cannot answer"),
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
    /* vm_destroy_at_exit()'s holder (clone, prctl and ppoll above; futex in base_calls). */
    SC(getppid, "the exit's holder checks that petrel is still there"),
    SC(close_range, "the exit's holder keeps only the VM's fds"),
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

static const char *const mode_names[] = {[SANDBOX_ON] = "on", [SANDBOX_LOG] = "log"};

/* One program as a C array named name. */
static void put_prog(FILE *out, const char *name, const struct sock_fprog *p)
{
    fprintf(out, "static const struct sock_filter %s[%u] = {\n", name, p->len);
    for (unsigned i = 0; i < p->len; i++) {
        const struct sock_filter *f = &p->filter[i];
        fprintf(out, "    {0x%04x, %u, %u, 0x%08x},\n", f->code, f->jt, f->jf, f->k);
    }
    fprintf(out, "};\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT.h\n", argv[0]);
        return 2;
    }
    _Static_assert((SANDBOX_NET_USER | SANDBOX_NET_TAP) == SANDBOX_VARIANTS - 1,
                   "a program for every combination of the flags");
    const struct scmp_version *v = seccomp_version();
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        perror(tmp);
        return 1;
    }
    fprintf(out,
            "/* Made at build time by src/base/sandbox_policy.c with libseccomp %u.%u.%u: the\n"
            " * policy's BPF programs, by mode, role and SANDBOX_NET_* flags, and the system\n"
            " * calls' names for the SIGSYS line. Do not edit. */\n",
            v->major, v->minor, v->micro);
    for (int m = SANDBOX_ON; m <= SANDBOX_LOG; m++)
        for (int r = 0; r < SANDBOX_ROLES; r++)
            for (unsigned fl = 0; fl < SANDBOX_VARIANTS; fl++) {
                if (r != SANDBOX_LOOP && fl)
                    continue; /* the flags change the loop's program alone */
                struct sock_fprog p;
                int ret = build((enum sandbox_mode)m, fl, &roles[r], &p);
                if (ret) {
                    fprintf(stderr, "%s: the %s thread's program: %s\n", argv[0], roles[r].name,
                            strerror(-ret));
                    fclose(out);
                    return 1;
                }
                char name[64];
                snprintf(name, sizeof(name), "bpf_%s_%s_%u", mode_names[m], roles[r].name, fl);
                put_prog(out, name, &p);
                free(p.filter);
            }
    fprintf(out,
            "static const struct sock_fprog sandbox_bpf[2][SANDBOX_ROLES][SANDBOX_VARIANTS] = {\n");
    for (int m = SANDBOX_ON; m <= SANDBOX_LOG; m++) {
        fprintf(out, "    [SANDBOX_%s] = {\n", m == SANDBOX_ON ? "ON" : "LOG");
        for (int r = 0; r < SANDBOX_ROLES; r++) {
            fprintf(out, "        [%d] = {", r);
            for (unsigned fl = 0; fl < SANDBOX_VARIANTS; fl++) {
                char name[64];
                snprintf(name, sizeof(name), "bpf_%s_%s_%u", mode_names[m], roles[r].name,
                         r == SANDBOX_LOOP ? fl : 0);
                fprintf(out, "{ARRAY_SIZE(%s), (struct sock_filter *)%s}, ", name, name);
            }
            fprintf(out, "},\n");
        }
        fprintf(out, "    },\n");
    }
    fprintf(out, "};\n");
    /* The SIGSYS line's names: libseccomp's, as a table (no lookup at run time). */
    int max = 0;
    for (int nr = 0; nr < 1024; nr++) {
        char *n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (n)
            max = nr + 1;
        free(n);
    }
    fprintf(out, "#define SYSCALL_NAMES_MAX %d\n", max);
    fprintf(out, "static const char *const syscall_names[SYSCALL_NAMES_MAX] = {\n");
    for (int nr = 0; nr < max; nr++) {
        char *n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (n)
            fprintf(out, "    [%d] = \"%s\",\n", nr, n);
        free(n);
    }
    fprintf(out, "};\n");
    if (fclose(out) || rename(tmp, argv[1])) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
