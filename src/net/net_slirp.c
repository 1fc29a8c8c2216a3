/*
 * --net user: libslirp (4.7, Debian's; the library QEMU uses) driven from
 * the loop, with no thread and no busy loop.
 *
 * libslirp 4.7 tells its user which fds to watch only through
 * slirp_pollfds_fill() (register_poll_fd carries no event mask), and runs
 * its TCP timers only inside slirp_pollfds_poll(). So, after every entry
 * into slirp (an fd event, the poll timer, one of slirp's timers,
 * slirp_input()), net_slirp_sync() runs slirp_pollfds_fill() and reconciles
 * one libevent event per fd with the mask slirp asked for, and arms one
 * timer for the timeout it returned, which calls slirp_pollfds_poll(). An fd
 * event calls slirp_pollfds_poll() with that fd's readiness (every other fd
 * reads as not ready). slirp's own timers (IPv6 router advertisements) are
 * libevent timers through timer_new_opaque and slirp_handle_timer().
 *
 * Frames for the guest (send_packet) wait in a bounded backlog and reach
 * the device from a deferred event: slirp may answer inside slirp_input(),
 * which the device calls with its lock held. While the backlog holds
 * NET_SLIRP_HIGH frames or more, sync watches no fd for reading, so data
 * from the host waits in the kernel's socket buffers instead of being
 * dropped (back-pressure); only frames slirp makes on its own past
 * NET_SLIRP_BACKLOG (ARP, DHCP, retransmissions, acks) are dropped and
 * counted.
 *
 * libslirp is loaded with dlopen() when a user network is made, not linked:
 * as a DT_NEEDED library it (with glib, pcre2 and libm) was mapped and
 * relocated at every start of petrel, though only --net user calls it
 * (docs/architecture.md, start-up). It is loaded before the loop enters its
 * seccomp filter (devices are made first) and never unloaded (RTLD_NODELETE:
 * glib does not support being unloaded).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <slirp/libslirp.h>

#include "petrel/net.h"
#include "petrel/net_slirp.h"

/* One fd slirp asked to watch, and the libevent event that watches it. */
struct slirp_watch {
    struct net_slirp *s;
    int fd;
    short armed;         /* EV_READ | EV_WRITE as added, 0: not added */
    short want;          /* what the current fill asks */
    struct event ev_buf; /* assigned in place: entries are never freed before destroy */
};

/* One of slirp's timers (timer_new_opaque). */
struct slirp_timer {
    struct net_slirp *s;
    SlirpTimerId id;
    void *cb_opaque;
    struct event *ev;
    struct slirp_timer *next;
};

/* What slirp_pollfds_fill() asked, by the index its add_poll callback returned. */
struct slirp_pollent {
    int fd;
    int events;
};

/* The libslirp calls petrel makes, from the dlopen()ed library. */
struct slirp_lib {
    void *handle;
    __typeof__(slirp_new) *new_;
    __typeof__(slirp_cleanup) *cleanup;
    __typeof__(slirp_input) *input;
    __typeof__(slirp_pollfds_fill) *pollfds_fill;
    __typeof__(slirp_pollfds_poll) *pollfds_poll;
    __typeof__(slirp_handle_timer) *handle_timer;
    __typeof__(slirp_add_hostfwd) *add_hostfwd;
};

struct net_slirp {
    struct net_backend be; /* first */
    struct slirp_lib lib;
    Slirp *slirp;
    struct event_base *base;
    struct net_port port;
    struct event *poll_timer; /* slirp_pollfds_poll() at fill's timeout */
    struct event *flush_ev;   /* deferred delivery of the backlog */

    struct slirp_watch **watches; /* by fd, reused: never freed before destroy */
    unsigned nr_watches, cap_watches;
    struct slirp_pollent *pt; /* the last fill */
    unsigned nr_pt, cap_pt;
    int cur_fd;       /* the fd whose readiness slirp_pollfds_poll() is told */
    int cur_revents;  /*   and that readiness (SLIRP_POLL_*) */
    bool fill_failed; /* out of memory in add_poll: the fill is incomplete */
    bool throttled;   /* the last sync left reading out (backlog high) */
    bool warned;      /* a guest error was logged */
    struct slirp_timer *timers;

    /* Frames for the guest, oldest first. */
    struct {
        uint8_t *data;
        size_t len;
    } q[NET_SLIRP_BACKLOG];
    unsigned qhead, qlen;
    uint32_t last_timeout; /* ms, UINT32_MAX: none (for tests) */
};

static struct net_slirp *to_slirp(struct net_backend *be)
{
    return container_of(be, struct net_slirp, be);
}

static int64_t slirp_clock_ns(void *opaque)
{
    struct timespec ts;
    (void)opaque;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void slirp_sync(struct net_slirp *s);

/* ---- frames for the guest ---- */

static ssize_t slirp_send_packet(const void *buf, size_t len, void *opaque)
{
    struct net_slirp *s = opaque;

    if (s->qlen == NET_SLIRP_BACKLOG || len > NET_MAX_FRAME) {
        s->be.rx_dropped++;
        return (ssize_t)len;
    }
    uint8_t *copy = malloc(len);
    if (!copy) {
        s->be.rx_dropped++;
        return (ssize_t)len;
    }
    memcpy(copy, buf, len);
    unsigned at = (s->qhead + s->qlen) % NET_SLIRP_BACKLOG;
    s->q[at].data = copy;
    s->q[at].len = len;
    s->qlen++;
    if (s->flush_ev)
        event_active(s->flush_ev, 0, 0);
    return (ssize_t)len;
}

static void slirp_q_pop(struct net_slirp *s)
{
    free(s->q[s->qhead].data);
    s->qhead = (s->qhead + 1) % NET_SLIRP_BACKLOG;
    s->qlen--;
}

/* The backlog into the device, oldest first, until it has no room (then rx_room). */
static void slirp_flush(evutil_socket_t fd, short what, void *arg)
{
    struct net_slirp *s = arg;
    (void)fd, (void)what;

    while (s->qlen) {
        int r = s->port.receive(s->port.dev, s->q[s->qhead].data, s->q[s->qhead].len);
        if (r == 0)
            break;      /* kept: the device calls rx_room when the driver posts buffers */
        slirp_q_pop(s); /* taken, or dropped and counted by the device */
    }
    if (s->throttled && s->qlen < NET_SLIRP_HIGH)
        slirp_sync(s); /* read from the host again */
}

/* The driver posted buffers (the device's lock held): deliver from the loop. */
static void slirp_rx_room(struct net_backend *be)
{
    struct net_slirp *s = to_slirp(be);
    if (s->flush_ev)
        event_active(s->flush_ev, 0, 0);
}

/* ---- fds: fill, reconcile, poll ---- */

static int slirp_add_poll(int fd, int events, void *opaque)
{
    struct net_slirp *s = opaque;

    if (s->nr_pt == s->cap_pt) {
        unsigned cap = s->cap_pt ? 2 * s->cap_pt : 16;
        struct slirp_pollent *pt = realloc(s->pt, cap * sizeof(*pt));
        if (!pt) {
            s->fill_failed = true;
            return -1; /* slirp reads it as "not polled" */
        }
        s->pt = pt;
        s->cap_pt = cap;
    }
    s->pt[s->nr_pt] = (struct slirp_pollent){fd, events};
    return (int)s->nr_pt++;
}

static int slirp_get_revents(int idx, void *opaque)
{
    struct net_slirp *s = opaque;

    if (idx < 0 || (unsigned)idx >= s->nr_pt || s->pt[idx].fd != s->cur_fd)
        return 0;
    return s->cur_revents & s->pt[idx].events;
}

static void slirp_fd_ready(evutil_socket_t fd, short what, void *arg)
{
    struct slirp_watch *w = arg;
    struct net_slirp *s = w->s;

    s->cur_fd = (int)fd;
    s->cur_revents = (what & EV_READ ? SLIRP_POLL_IN : 0) | (what & EV_WRITE ? SLIRP_POLL_OUT : 0);
    s->lib.pollfds_poll(s->slirp, 0, slirp_get_revents, s);
    s->cur_fd = -1;
    s->cur_revents = 0;
    slirp_sync(s);
}

/* The poll timer: slirp's TCP timers (fast and slow timeouts) run inside the poll. */
static void slirp_poll_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct net_slirp *s = arg;
    (void)fd, (void)what;

    s->cur_fd = -1;
    s->lib.pollfds_poll(s->slirp, 0, slirp_get_revents, s);
    slirp_sync(s);
}

static struct slirp_watch *slirp_watch_of(struct net_slirp *s, int fd)
{
    for (unsigned i = 0; i < s->nr_watches; i++)
        if (s->watches[i]->fd == fd)
            return s->watches[i];
    if (s->nr_watches == s->cap_watches) {
        unsigned cap = s->cap_watches ? 2 * s->cap_watches : 16;
        struct slirp_watch **w = realloc(s->watches, cap * sizeof(*w));
        if (!w)
            return NULL;
        s->watches = w;
        s->cap_watches = cap;
    }
    struct slirp_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->s = s;
    w->fd = fd;
    s->watches[s->nr_watches++] = w;
    return w;
}

/*
 * After every entry into slirp: what it wants watched now, as libevent
 * events (one per fd, changed only where the mask changed) and the poll
 * timer at its timeout.
 */
static void slirp_sync(struct net_slirp *s)
{
    uint32_t timeout = UINT32_MAX;

    if (!s->base)
        return; /* not attached yet: attach syncs */
    s->nr_pt = 0;
    s->fill_failed = false;
    s->lib.pollfds_fill(s->slirp, &timeout, slirp_add_poll, s);
    s->throttled = s->qlen >= NET_SLIRP_HIGH;
    for (unsigned i = 0; i < s->nr_watches; i++)
        s->watches[i]->want = 0;
    for (unsigned i = 0; i < s->nr_pt; i++) {
        struct slirp_watch *w = slirp_watch_of(s, s->pt[i].fd);
        if (!w) {
            s->fill_failed = true;
            continue;
        }
        int ev = s->pt[i].events;
        if ((ev & (SLIRP_POLL_IN | SLIRP_POLL_PRI | SLIRP_POLL_HUP)) && !s->throttled)
            w->want |= EV_READ;
        if (ev & SLIRP_POLL_OUT)
            w->want |= EV_WRITE;
    }
    for (unsigned i = 0; i < s->nr_watches; i++) {
        struct slirp_watch *w = s->watches[i];
        if (w->want == w->armed)
            continue;
        if (w->armed)
            event_del(&w->ev_buf);
        w->armed = 0;
        if (w->want &&
            !event_assign(&w->ev_buf, s->base, w->fd, w->want | EV_PERSIST, slirp_fd_ready, w) &&
            !event_add(&w->ev_buf, NULL))
            w->armed = w->want;
    }
    /* Out of memory: look again soon rather than never. */
    if (s->fill_failed && timeout > 10)
        timeout = 10;
    s->last_timeout = timeout;
    if (timeout == UINT32_MAX) {
        evtimer_del(s->poll_timer);
    } else {
        struct timeval tv = {timeout / 1000, (suseconds_t)(timeout % 1000) * 1000};
        evtimer_add(s->poll_timer, &tv);
    }
}

/* ---- slirp's timers ---- */

static void slirp_timer_fire(evutil_socket_t fd, short what, void *arg)
{
    struct slirp_timer *t = arg;
    (void)fd, (void)what;

    t->s->lib.handle_timer(t->s->slirp, t->id, t->cb_opaque);
    slirp_sync(t->s);
}

static void *slirp_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    struct net_slirp *s = opaque;
    struct slirp_timer *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->s = s;
    t->id = id;
    t->cb_opaque = cb_opaque;
    if (s->base && !(t->ev = evtimer_new(s->base, slirp_timer_fire, t))) {
        free(t);
        return NULL;
    }
    t->next = s->timers;
    s->timers = t;
    return t;
}

static void slirp_timer_free(void *timer, void *opaque)
{
    struct net_slirp *s = opaque;

    for (struct slirp_timer **p = &s->timers; *p; p = &(*p)->next) {
        if (*p == timer) {
            struct slirp_timer *t = *p;
            *p = t->next;
            if (t->ev)
                event_free(t->ev);
            free(t);
            return;
        }
    }
}

/* expire_time is in ms of slirp_clock_ns()'s clock. */
static void slirp_timer_mod(void *timer, int64_t expire_time, void *opaque)
{
    struct slirp_timer *t = timer;
    (void)opaque;

    if (!t || !t->ev)
        return; /* not attached: slirp makes no timers before (IPv6 is off) */
    int64_t ms = expire_time - slirp_clock_ns(NULL) / 1000000;
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(t->ev, &tv);
}

/* Legacy timers: not used with timer_new_opaque (libslirp 4.7 calls the opaque one). */
static void *slirp_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
    (void)cb, (void)cb_opaque, (void)opaque;
    return NULL;
}

static void slirp_guest_error(const char *msg, void *opaque)
{
    struct net_slirp *s = opaque;
    if (!s->warned)
        fprintf(stderr, "petrel: net: the guest sent slirp something wrong: %s\n", msg);
    s->warned = true;
}

/* register_poll_fd has no mask in 4.7: the fill after each entry is what counts. */
static void slirp_register_fd(int fd, void *opaque)
{
    (void)fd, (void)opaque;
}

/* slirp's socket can take data again: the sync that follows every entry sees it. */
static void slirp_notify(void *opaque)
{
    (void)opaque;
}

static const SlirpCb slirp_cb = {
    .send_packet = slirp_send_packet,
    .guest_error = slirp_guest_error,
    .clock_get_ns = slirp_clock_ns,
    .timer_new = slirp_timer_new,
    .timer_free = slirp_timer_free,
    .timer_mod = slirp_timer_mod,
    .register_poll_fd = slirp_register_fd,
    .unregister_poll_fd = slirp_register_fd,
    .notify = slirp_notify,
    .timer_new_opaque = slirp_timer_new_opaque,
};

/* ---- the backend ---- */

/* A frame from the guest (the device lock held): slirp may answer into the backlog. */
static int slirp_be_send(struct net_backend *be, const void *frame, size_t len)
{
    struct net_slirp *s = to_slirp(be);

    s->lib.input(s->slirp, frame, (int)len);
    slirp_sync(s);
    return 0;
}

static int slirp_be_attach(struct net_backend *be, struct event_base *base,
                           const struct net_port *port, struct errbuf *eb)
{
    struct net_slirp *s = to_slirp(be);

    s->port = *port;
    s->poll_timer = evtimer_new(base, slirp_poll_timeout, s);
    s->flush_ev = event_new(base, -1, 0, slirp_flush, s);
    if (!s->poll_timer || !s->flush_ev)
        return err_set(eb, -ENOMEM, "net: out of memory for the user network's events");
    for (struct slirp_timer *t = s->timers; t; t = t->next)
        if (!t->ev && !(t->ev = evtimer_new(base, slirp_timer_fire, t)))
            return err_set(eb, -ENOMEM, "net: out of memory for the user network's timers");
    s->base = base;
    slirp_sync(s);
    if (s->qlen)
        event_active(s->flush_ev, 0, 0);
    return 0;
}

static void slirp_be_destroy(struct net_backend *be)
{
    struct net_slirp *s = to_slirp(be);

    if (s->slirp)
        s->lib.cleanup(s->slirp); /* frees its timers through timer_free */
    while (s->timers)
        slirp_timer_free(s->timers, s);
    for (unsigned i = 0; i < s->nr_watches; i++) {
        if (s->watches[i]->armed)
            event_del(&s->watches[i]->ev_buf);
        free(s->watches[i]);
    }
    free(s->watches);
    free(s->pt);
    while (s->qlen)
        slirp_q_pop(s);
    if (s->poll_timer)
        event_free(s->poll_timer);
    if (s->flush_ev)
        event_free(s->flush_ev);
    if (s->lib.handle)
        dlclose(s->lib.handle); /* a reference less: RTLD_NODELETE keeps it mapped */
    free(s);
}

static const struct net_backend_ops slirp_ops = {
    .send = slirp_be_send,
    .rx_room = slirp_rx_room,
    .attach = slirp_be_attach,
    .destroy = slirp_be_destroy,
};

/* Loads libslirp (soname) and the calls petrel makes into *lib. */
static int slirp_lib_load(const char *soname, struct slirp_lib *lib, struct errbuf *eb)
{
    lib->handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!lib->handle) {
        const char *why = dlerror();
        return err_set(eb, -ENOENT,
                       "--net user needs libslirp, which cannot be loaded (%s; Debian's package "
                       "is libslirp0)",
                       why ? why : soname);
    }
    struct {
        const char *name;
        void **fn;
    } syms[] = {
        {"slirp_new", (void **)&lib->new_},
        {"slirp_cleanup", (void **)&lib->cleanup},
        {"slirp_input", (void **)&lib->input},
        {"slirp_pollfds_fill", (void **)&lib->pollfds_fill},
        {"slirp_pollfds_poll", (void **)&lib->pollfds_poll},
        {"slirp_handle_timer", (void **)&lib->handle_timer},
        {"slirp_add_hostfwd", (void **)&lib->add_hostfwd},
    };
    for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
        if (!(*syms[i].fn = dlsym(lib->handle, syms[i].name))) {
            dlclose(lib->handle);
            lib->handle = NULL;
            return err_set(eb, -ENOENT, "--net user: %s has no %s: libslirp 4.7 or later is needed",
                           soname, syms[i].name);
        }
    }
    return 0;
}

int net_slirp_create(const struct net_spec *spec, struct net_backend **out, struct errbuf *eb)
{
    return net_slirp_create_from(NET_SLIRP_SONAME, spec, out, eb);
}

int net_slirp_create_from(const char *soname, const struct net_spec *spec, struct net_backend **out,
                          struct errbuf *eb)
{
    struct net_slirp *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (!s)
        return err_set(eb, -ENOMEM, "net: out of memory");
    int ret = slirp_lib_load(soname, &s->lib, eb);
    if (ret) {
        free(s);
        return ret;
    }
    s->be.ops = &slirp_ops;
    s->cur_fd = -1;
    s->last_timeout = UINT32_MAX;
    SlirpConfig cfg = {
        .version = 4,
        .in_enabled = true,
        .vnetwork.s_addr = htonl(0x0a000200),    /* 10.0.2.0 */
        .vnetmask.s_addr = htonl(0xffffff00),    /* /24 */
        .vhost.s_addr = htonl(0x0a000202),       /* 10.0.2.2: the host (its loopback too) */
        .vdhcp_start.s_addr = htonl(0x0a00020f), /* 10.0.2.15: the guest */
        .vnameserver.s_addr = htonl(0x0a000203), /* 10.0.2.3: DNS, forwarded */
    };
    s->slirp = s->lib.new_(&cfg, &slirp_cb, s);
    if (!s->slirp) {
        slirp_be_destroy(&s->be);
        return err_set(eb, -ENOMEM, "net: cannot start the user network (libslirp)");
    }
    for (unsigned i = 0; i < spec->nr_fwd; i++) {
        const struct net_hostfwd *f = &spec->fwd[i];
        struct in_addr host = {f->host_addr}, guest = {htonl(0x0a00020f)};
        errno = 0;
        if (s->lib.add_hostfwd(s->slirp, f->udp, host, f->host_port, guest, f->guest_port) < 0) {
            int err = errno ? errno : EADDRINUSE;
            char a[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &host, a, sizeof(a));
            slirp_be_destroy(&s->be);
            return err_set(eb, -err, "--net user: hostfwd %s %s:%u: cannot listen there: %s",
                           f->udp ? "udp" : "tcp", a, f->host_port, strerror(err));
        }
    }
    *out = &s->be;
    return 0;
}

short net_slirp_watched(struct net_backend *be, int fd)
{
    struct net_slirp *s = to_slirp(be);
    for (unsigned i = 0; i < s->nr_watches; i++)
        if (s->watches[i]->fd == fd)
            return s->watches[i]->armed;
    return 0;
}

unsigned net_slirp_nr_watched(struct net_backend *be)
{
    struct net_slirp *s = to_slirp(be);
    unsigned n = 0;
    for (unsigned i = 0; i < s->nr_watches; i++)
        n += s->watches[i]->armed != 0;
    return n;
}

uint32_t net_slirp_timeout(struct net_backend *be)
{
    return to_slirp(be)->last_timeout;
}

unsigned net_slirp_backlog(struct net_backend *be)
{
    return to_slirp(be)->qlen;
}
