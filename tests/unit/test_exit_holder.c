/* Unit tests for exit_holder.c: what the holder keeps, what it closes, and when it ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "petrel/exit_holder.h"

/* Whether a pipe's read end sees its writers gone, right now (no waiting). */
static bool hung_up(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_true(poll(&pfd, 1, 0) >= 0);
    return (pfd.revents & POLLHUP) != 0;
}

/*
 * A maker (a child of the test) starts a holder keeping two pipes' write ends (given
 * out of order, with a third pipe's between them), then closes its own copies of all
 * three and waits. Meanwhile the kept pipes have a writer (the holder) and the third
 * has none (the holder closed its copy before exit_holder_start() returned). When the
 * maker exits, the holder is killed (SIGKILL) and the kept pipes lose their writer.
 */
static void test_keeps_only_its_fds_until_its_maker_exits(void **state)
{
    (void)state;
    int held_a[2], other[2], held_b[2], ready[2], go[2];

    /* The orphaned holder comes to this process, which can then wait for it. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    assert_int_equal(pipe(held_a), 0);
    assert_int_equal(pipe(other), 0);
    assert_int_equal(pipe(held_b), 0);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    assert_true(held_a[1] < other[1] && other[1] < held_b[1]);

    pid_t maker = fork();
    assert_true(maker >= 0);
    if (maker == 0) {
        int keep[] = {held_b[1], held_a[1]};
        char c = 0;
        close(ready[0]);
        close(go[1]); /* a failed test's exit ends the wait below */
        close(held_a[0]);
        close(other[0]);
        close(held_b[0]);
        int ret = exit_holder_start(keep, 2);
        close(held_a[1]);
        close(held_b[1]);
        close(other[1]);
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(20);
        _exit(ret == 0 ? 0 : 10);
    }
    close(held_a[1]);
    close(other[1]);
    close(held_b[1]);
    close(ready[1]);
    close(go[0]);

    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_true(hung_up(other[0]));   /* the holder did not keep it */
    assert_false(hung_up(held_a[0])); /* the holder keeps these */
    assert_false(hung_up(held_b[0]));

    int status;
    assert_int_equal(write(go[1], &c, 1), 1);
    assert_int_equal(waitpid(maker, &status, 0), maker);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* The holder, killed by its maker's exit, then reaped here (the subreaper). */
    pid_t holder = waitpid(-1, &status, 0);
    assert_true(holder > 0 && holder != maker);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_int_equal(read(held_a[0], &c, 1), 0);
    assert_int_equal(read(held_b[0], &c, 1), 0);
    assert_int_equal(waitpid(-1, &status, WNOHANG), -1); /* nothing else was left behind */
    assert_int_equal(errno, ECHILD);

    close(held_a[0]);
    close(other[0]);
    close(held_b[0]);
    close(ready[0]);
    close(go[1]);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

static void test_refuses_too_many_fds(void **state)
{
    (void)state;
    static int keep[2048];
    assert_int_equal(exit_holder_start(keep, 2048), -E2BIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keeps_only_its_fds_until_its_maker_exits),
        cmocka_unit_test(test_refuses_too_many_fds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
