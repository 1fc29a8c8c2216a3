/* The exit's holder (exit_holder.h). */
#include "petrel/exit_holder.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HOLDER_STACK (64 * 1024)
#define HOLDER_MAX   1024 /* fds kept: a VM's and its vCPUs' (at most 255) */

struct holder {
    pid_t maker;
    atomic_int state; /* 0 until the holder has closed what it does not keep */
    int err;          /* then: 0, or why it does not hold (-errno) */
    unsigned nr;
    int keep[]; /* ascending */
};

/*
 * The holder runs on a stack of its own but with its maker's thread pointer and
 * memory: it makes system calls only, through syscall(), whose one write to shared
 * memory is errno, on a failure. Not instrumented: a sanitizer's runtime does not
 * know this stack.
 */
__attribute__((no_sanitize("address"))) static void holder_say(struct holder *h, int err)
{
    h->err = err;
    atomic_store(&h->state, 1);
    syscall(SYS_futex, &h->state, FUTEX_WAKE, 1, NULL, NULL, 0);
}

__attribute__((no_sanitize("address"))) static int holder_main(void *arg)
{
    struct holder *h = arg;
    unsigned lo = 0;

    /* Killed when the thread that made it ends; that may have happened already. */
    if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
        holder_say(h, -EPERM);
        return 0;
    }
    if (syscall(SYS_getppid) != h->maker) {
        holder_say(h, -ESRCH);
        return 0;
    }
    /* Every fd but the kept ones, between them: [lo, keep[i] - 1], then the rest. */
    for (unsigned i = 0; i <= h->nr; i++) {
        unsigned next = i < h->nr ? (unsigned)h->keep[i] : ~0U;
        if ((i == h->nr || next > lo) &&
            syscall(SYS_close_range, lo, i < h->nr ? next - 1 : ~0U, 0) < 0) {
            /* It would keep its maker's stdio open past the maker's exit: it does not hold. */
            holder_say(h, -ENOSYS);
            return 0;
        }
        lo = next + 1;
    }
    holder_say(h, 0);
    for (;;)
        syscall(SYS_ppoll, NULL, 0, NULL, NULL, 0); /* every signal is blocked but SIGKILL */
}

int exit_holder_start(const int *keep, unsigned nr)
{
    if (nr > HOLDER_MAX)
        return -E2BIG;
    /* Never unmapped here: the holder's exit frees it with the rest of the memory. */
    uint8_t *stack = mmap(NULL, HOLDER_STACK, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return -errno;
    struct holder *h = (struct holder *)(void *)stack; /* at the bottom: the stack grows down */
    h->maker = getpid();
    atomic_init(&h->state, 0);
    h->nr = 0;
    for (unsigned i = 0; i < nr; i++) {
        /* Ascending and without repeats (an insertion sort), for close_range() between. */
        unsigned k = h->nr;
        for (; k > 0 && h->keep[k - 1] > keep[i]; k--)
            ;
        if (keep[i] < 0 || (k > 0 && h->keep[k - 1] == keep[i]))
            continue;
        for (unsigned m = h->nr++; m > k; m--)
            h->keep[m] = h->keep[m - 1];
        h->keep[k] = keep[i];
    }

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* No exit signal: nobody here waits for it; whoever inherits it reaps it. */
    pid_t pid = clone(holder_main, stack + HOLDER_STACK, CLONE_VM, h);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        munmap(stack, HOLDER_STACK);
        return -err;
    }
    /* Until it has closed its copies of stdio: readers of ours see EOF at our exit. */
    while (atomic_load(&h->state) == 0)
        syscall(SYS_futex, &h->state, FUTEX_WAIT, 0, NULL, NULL, 0);
    return h->err;
}
