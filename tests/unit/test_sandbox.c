/*
 * The seccomp filters (sandbox.h): each case runs in a child process, since a
 * filter cannot be taken off and the policy is the process's. A thread making a
 * call outside its role's list ends the process with a line naming the call and
 * the thread; in log mode the call goes through; a role's own calls work; a job
 * worker inside the loop's filter is held to both.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <seccomp.h>

#include "petrel/sandbox.h"

/* What a child did: its exit status (or 128 + signal) and what it wrote on stderr. */
struct outcome {
    int status;
    char err[512];
};

/* Runs fn(arg) in a child with stderr captured; fn's return value is its exit status. */
static struct outcome in_child(int (*fn)(void *), void *arg)
{
    struct outcome o = {0};
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        _exit(fn(arg));
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(p[0], o.err + n, sizeof(o.err) - 1 - n)) > 0)
        n += (size_t)r;
    close(p[0]);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    o.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    return o;
}

struct thread_case {
    enum sandbox_mode mode;
    enum sandbox_role role;
    int (*body)(void); /* runs in the sandboxed thread: 0 if what it did worked */
    unsigned flags;    /* SANDBOX_NET_* */
};

static void *thread_main(void *arg)
{
    const struct thread_case *c = arg;
    if (sandbox_enter(c->role))
        return (void *)(intptr_t)100;
    return (void *)(intptr_t)c->body();
}

/* The child: sets the policy up, runs body on a thread of the role. */
static int run_thread_case(void *arg)
{
    const struct thread_case *c = arg;
    struct errbuf eb = {{0}};
    if (sandbox_init(c->mode, c->flags, &eb)) {
        fprintf(stderr, "sandbox_init: %s\n", eb.msg);
        return 99;
    }
    pthread_t t;
    void *ret;
    if (pthread_create(&t, NULL, thread_main, (void *)c) || pthread_join(t, &ret))
        return 98;
    return (int)(intptr_t)ret;
}

static int make_socket(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return 1;
    close(fd);
    return 0;
}

static int terminal_ioctl(void)
{
    struct winsize ws;
    (void)ioctl(STDIN_FILENO, TIOCGWINSZ, &ws); /* any result: it is the call that counts */
    return 0;
}

static void expect_killed(struct outcome o, const char *words)
{
    assert_int_equal(o.status, 1);
    if (!strstr(o.err, words))
        fail_msg("stderr \"%s\" lacks \"%s\"", o.err, words);
}

static void test_forbidden_call_ends_petrel_naming_it(void **unused)
{
    (void)unused;
    struct thread_case blk = {SANDBOX_ON, SANDBOX_BLK, make_socket, 0};
    expect_killed(in_child(run_thread_case, &blk),
                  "petrel: seccomp: the blk thread made a forbidden system call: socket (41)");
    struct thread_case vcpu = {SANDBOX_ON, SANDBOX_VCPU, terminal_ioctl, 0};
    char words[96];
    snprintf(words, sizeof(words),
             "the vcpu thread made a forbidden system call: ioctl (16, "
             "request %lu)",
             (unsigned long)TIOCGWINSZ);
    expect_killed(in_child(run_thread_case, &vcpu), words);
}

static void test_log_and_off_let_the_call_through(void **unused)
{
    (void)unused;
    struct thread_case log = {SANDBOX_LOG, SANDBOX_BLK, make_socket, 0};
    struct outcome o = in_child(run_thread_case, &log);
    assert_int_equal(o.status, 0);
    assert_string_equal(o.err, "");
    struct thread_case off = {SANDBOX_OFF, SANDBOX_VCPU, terminal_ioctl, 0};
    o = in_child(run_thread_case, &off);
    assert_int_equal(o.status, 0);
    assert_string_equal(o.err, "");
}

/* The time through system calls, as where the host's clocksource has no vDSO. */
static int time_syscalls(void)
{
    struct timeval tv;
    struct timespec ts;
    if (syscall(SYS_gettimeofday, &tv, NULL) || syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts))
        return 1;
    return syscall(SYS_time, NULL) > 0 ? 0 : 2;
}

/* Every role may read the clock where the vDSO cannot (under QEMU's TCG it never can). */
static void test_every_role_reads_the_time_without_the_vdso(void **unused)
{
    (void)unused;
    for (int r = 0; r < SANDBOX_ROLES; r++) {
        struct thread_case c = {SANDBOX_ON, (enum sandbox_role)r, time_syscalls, 0};
        struct outcome o = in_child(run_thread_case, &c);
        if (o.status != 0)
            fail_msg("the %s thread: status %d, %s", sandbox_role_name(r), o.status, o.err);
    }
}

/* A block worker's request: read, write, flush, discard on its file. */
static int blk_fd = -1;

static int blk_request(void)
{
    char buf[4096];
    memset(buf, 0x5a, sizeof(buf));
    struct iovec iov = {buf, sizeof(buf)};
    if (pwritev(blk_fd, &iov, 1, 8192) != (ssize_t)sizeof(buf))
        return 1;
    if (preadv(blk_fd, &iov, 1, 8192) != (ssize_t)sizeof(buf))
        return 2;
    if (fdatasync(blk_fd))
        return 3;
    if (fallocate(blk_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 4096) &&
        errno != EOPNOTSUPP)
        return 4;
    return 0;
}

static void test_blk_calls_work(void **unused)
{
    (void)unused;
    char path[] = "/tmp/petrel-test-sandbox-XXXXXX";
    blk_fd = mkstemp(path);
    assert_true(blk_fd >= 0);
    unlink(path);
    struct thread_case blk = {SANDBOX_ON, SANDBOX_BLK, blk_request, 0};
    struct outcome o = in_child(run_thread_case, &blk);
    assert_string_equal(o.err, "");
    assert_int_equal(o.status, 0);
    close(blk_fd);
}

/* A job worker, started by a thread already in the loop's filter: both hold. */
static int job_inside_loop(int (*body)(void))
{
    struct thread_case job = {SANDBOX_ON, SANDBOX_JOB, body, 0};
    pthread_t t;
    void *ret;
    if (pthread_create(&t, NULL, thread_main, &job) || pthread_join(t, &ret))
        return 97;
    return (int)(intptr_t)ret;
}

static int job_socket(void)
{
    return job_inside_loop(make_socket);
}

/* What a snapshot's job does: write a file and make it durable. */
static int file_write(void)
{
    char buf[512] = {1};
    if (pwrite(blk_fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
        return 1;
    return fdatasync(blk_fd) ? 2 : 0;
}

static int job_file(void)
{
    return job_inside_loop(file_write);
}

static void test_job_inside_the_loop(void **unused)
{
    (void)unused;
    /* The loop may not make sockets (only accept them): its job worker neither. */
    struct thread_case loop = {SANDBOX_ON, SANDBOX_LOOP, job_socket, 0};
    expect_killed(in_child(run_thread_case, &loop),
                  "the job thread made a forbidden system call: socket (41)");
    char path[] = "/tmp/petrel-test-sandbox-XXXXXX";
    blk_fd = mkstemp(path);
    assert_true(blk_fd >= 0);
    unlink(path);
    struct thread_case ok = {SANDBOX_ON, SANDBOX_LOOP, job_file, 0};
    struct outcome o = in_child(run_thread_case, &ok);
    assert_string_equal(o.err, "");
    assert_int_equal(o.status, 0);
    close(blk_fd);
}

/* The loop makes sockets only with --net user (libslirp's), and never execs. */
static int exec_true(void)
{
    char *const argv[] = {"true", NULL};
    execv("/bin/true", argv);
    return 1;
}

static void test_loop_sockets_only_with_net_user(void **unused)
{
    (void)unused;
    struct thread_case plain = {SANDBOX_ON, SANDBOX_LOOP, make_socket, SANDBOX_NET_TAP};
    expect_killed(in_child(run_thread_case, &plain),
                  "the loop thread made a forbidden system call: socket (41)");
    struct thread_case user = {SANDBOX_ON, SANDBOX_LOOP, make_socket, SANDBOX_NET_USER};
    struct outcome o = in_child(run_thread_case, &user);
    assert_string_equal(o.err, "");
    assert_int_equal(o.status, 0);
    struct thread_case exec = {SANDBOX_ON, SANDBOX_LOOP, exec_true, SANDBOX_NET_USER};
    expect_killed(in_child(run_thread_case, &exec),
                  "the loop thread made a forbidden system call: execve (59)");
}

/*
 * The SIGSYS line's names come from a table the build makes (sandbox_policy.c, into
 * sandbox_bpf.h): it names every call libseccomp knows, as libseccomp does.
 */
static void test_syscall_names_match_libseccomp(void **unused)
{
    (void)unused;
    unsigned known = 0;
    for (int nr = 0; nr < 1024; nr++) {
        char *want = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        const char *got = sandbox_syscall_name(nr);
        if (want) {
            if (!got || strcmp(got, want))
                fail_msg("syscall %d: libseccomp says %s, the table %s", nr, want,
                         got ? got : "nothing");
            known++;
        }
        free(want);
    }
    assert_true(known > 300);
    assert_string_equal(sandbox_syscall_name(257), "openat");
    assert_null(sandbox_syscall_name(-1));
    assert_null(sandbox_syscall_name(100000));
}

static void test_mode_parse(void **unused)
{
    (void)unused;
    enum sandbox_mode m;
    assert_int_equal(sandbox_mode_parse("on", &m), 0);
    assert_int_equal(m, SANDBOX_ON);
    assert_int_equal(sandbox_mode_parse("log", &m), 0);
    assert_int_equal(m, SANDBOX_LOG);
    assert_int_equal(sandbox_mode_parse("off", &m), 0);
    assert_int_equal(m, SANDBOX_OFF);
    assert_int_equal(sandbox_mode_parse("yes", &m), -EINVAL);
    assert_int_equal(sandbox_mode_parse("", &m), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forbidden_call_ends_petrel_naming_it),
        cmocka_unit_test(test_log_and_off_let_the_call_through),
        cmocka_unit_test(test_blk_calls_work),
        cmocka_unit_test(test_job_inside_the_loop),
        cmocka_unit_test(test_loop_sockets_only_with_net_user),
        cmocka_unit_test(test_syscall_names_match_libseccomp),
        cmocka_unit_test(test_every_role_reads_the_time_without_the_vdso),
        cmocka_unit_test(test_mode_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
