/* Jobs: a blocking function on a worker thread, completed back on the loop. */
#include "petrel/job.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "petrel/sandbox.h"
/* The worker: runs the job, then wakes the loop. It never touches the job afterwards. */
static void *job_thread(void *arg)
{
    struct job *job = arg;
    uint64_t one = 1;

    sandbox_enter_or_die(SANDBOX_JOB);
    job->run(job);
    /* Only EINTR can fail this (the counter cannot reach its maximum with one write). */
    while (write(job->notify_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* Joins the worker (which has returned from run, or is about to) and frees the job's loop state. */
static void job_release(struct job *job)
{
    pthread_join(job->thread, NULL);
    event_free(job->ev);
    close(job->notify_fd);
    job->ev = NULL;
    job->notify_fd = -1;
    job->active = false;
}

/* The eventfd fired: run has returned. Release first, so that done may restart or free the job. */
static void job_on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct job *job = arg;
    uint64_t v;
    (void)what;

    ssize_t n = read(fd, &v, sizeof(v));
    (void)n; /* the worker wrote once; the event is not persistent */
    void (*done)(struct job *) = job->done;
    job_release(job);
    if (done)
        done(job);
}

int job_start(struct job *job, struct event_base *base, void (*run)(struct job *),
              void (*done)(struct job *))
{
    sigset_t all, old;
    int ret;

    if (job->active)
        return -EBUSY;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct event *ev = event_new(base, fd, EV_READ, job_on_notify, job);
    if (!ev) {
        ret = -ENOMEM;
        goto err_close_fd;
    }
    if (event_add(ev, NULL) < 0) {
        ret = -ENOMEM;
        goto err_free_event;
    }
    job->run = run;
    job->done = done;
    job->notify_fd = fd;
    job->ev = ev;
    atomic_store(&job->cancel, false);

    /* The worker inherits this mask: every signal blocked (SIGRTMIN above all). */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    ret = -pthread_create(&job->thread, NULL, job_thread, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret)
        goto err_free_event;
    pthread_setname_np(job->thread, "petrel-job");
    job->active = true;
    return 0;

err_free_event:
    event_free(ev);
err_close_fd:
    close(fd);
    job->ev = NULL;
    job->notify_fd = -1;
    return ret;
}

void job_cancel(struct job *job)
{
    if (!job->active)
        return;
    atomic_store(&job->cancel, true);
    /* run may still be going: this waits for it, as a teardown must (RAM stays mapped till then).
     */
    job_release(job);
}

bool job_active(const struct job *job)
{
    return job->active;
}

bool job_cancelled(struct job *job)
{
    return atomic_load(&job->cancel);
}
