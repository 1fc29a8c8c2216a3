/*
 * A job: one long, blocking function run on a thread of its own, which then
 * completes back on the loop. For work the loop must not wait for (writing a
 * snapshot's memory file): the loop starts it and goes on; a done callback
 * runs on the loop thread once the function has returned, woken through an
 * eventfd.
 *
 * The worker starts with every signal blocked: SIGRTMIN (the vCPU kick) must
 * only ever reach vCPU threads, and the loop's signals stay the main thread's.
 *
 * Threads: job_start(), job_cancel() and the done callback are the loop
 * thread's (or any one thread's when no loop runs). The worker only calls run
 * and writes the eventfd; job_cancelled() is its one look at the job.
 * A zeroed struct job is idle.
 */
#ifndef PETREL_JOB_H
#define PETREL_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "petrel/util.h"

struct event_base;
struct event;

struct job {
    /* Set by job_start() before the worker exists (pthread_create orders it); then read-only. */
    void (*run)(struct job *job);
    void (*done)(struct job *job);
    int notify_fd; /* the worker writes it when run returned */
    /* Loop thread only. */
    struct event *ev;
    pthread_t thread;
    bool active; /* started, not completed nor cancelled */
    /* Set by job_cancel(); run may poll it through job_cancelled() and stop early. */
    atomic_bool cancel;
};

/*
 * Runs run(job) on a new thread; once it returns, done(job) runs on base's
 * loop (done may be NULL; it may start the job again or free it). Embed the
 * job in the caller's own struct and reach it with container_of(). 0, -EBUSY
 * (job still active) or -errno; on failure nothing was started. run may be
 * over before job_start returns: store its result in a local, never in a
 * field run writes, and once it returned 0 read no field run writes (nor
 * free the job) until done runs.
 */
int job_start(struct job *job, struct event_base *base, void (*run)(struct job *),
              void (*done)(struct job *)) MUST_CHECK;

/*
 * For teardown: if the job is active, asks run to stop (job_cancelled()),
 * waits for it to return, and releases the job without calling done. A
 * no-op on an idle job. Call it before freeing the job or the event_base.
 */
void job_cancel(struct job *job);

/* Whether the job was started and has neither completed nor been cancelled. */
bool job_active(const struct job *job);

/* For run: whether job_cancel() is waiting for it (stop early if it can). */
bool job_cancelled(struct job *job);

#endif
