/* Event tracing: the spec parser, the filter, the per-thread rings and the loop's writer. */
#include "petrel/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#define TRACE_OUT_SIZE  (64 * 1024)
#define TRACE_LINE_MAX  256
#define TRACE_TIMER_MS  50
#define TRACE_RING_MASK (TRACE_RING_SIZE - 1)

static const char *const trace_kind_names[TRACE_NR_KINDS] = {
    [TRACE_PIO] = "pio", [TRACE_MMIO] = "mmio",       [TRACE_VIRTIO] = "virtio",
    [TRACE_IRQ] = "irq", [TRACE_CONTROL] = "control",
};

static const char *const trace_op_names[TRACE_OP_NR] = {
    [TRACE_OP_READ] = "read",       [TRACE_OP_WRITE] = "write",   [TRACE_OP_POP] = "pop",
    [TRACE_OP_PUSH] = "push",       [TRACE_OP_STATUS] = "status", [TRACE_OP_RESET] = "reset",
    [TRACE_OP_BROKEN] = "broken",   [TRACE_OP_LINE] = "line",     [TRACE_OP_MSI] = "msi",
    [TRACE_OP_PAUSE] = "pause",     [TRACE_OP_RESUME] = "resume", [TRACE_OP_STOP] = "stop",
    [TRACE_OP_STOPPED] = "stopped",
};

const char *trace_kind_name(enum trace_kind k)
{
    return (unsigned)k < TRACE_NR_KINDS ? trace_kind_names[k] : "?";
}

/* ---- the spec ---- */

static int trace_kind_parse(const char *s, size_t n)
{
    for (int k = 0; k < TRACE_NR_KINDS; k++) {
        if (strlen(trace_kind_names[k]) == n && !strncmp(s, trace_kind_names[k], n))
            return k;
    }
    return -1;
}

/* A whole number (0x for hex) in s[0, n). */
static int trace_num(const char *s, size_t n, uint64_t *out)
{
    char buf[32];
    char *end;

    if (n == 0 || n >= sizeof(buf) || s[0] == '-' || s[0] == '+' || s[0] == ' ')
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 0);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

static int trace_add_range(struct trace_filter *f, int kind, const char *s, size_t n,
                           struct errbuf *eb)
{
    uint64_t lo, hi;
    const char *dash = memchr(s, '-', n);

    if (kind != TRACE_PIO && kind != TRACE_MMIO)
        return err_set(eb, -EINVAL, "--trace: only pio and mmio take an address range");
    if (dash) {
        if (trace_num(s, (size_t)(dash - s), &lo) ||
            trace_num(dash + 1, n - (size_t)(dash - s) - 1, &hi))
            return err_set(eb, -EINVAL, "--trace: '%.*s' is not a range LO-HI", (int)n, s);
    } else {
        if (trace_num(s, n, &lo))
            return err_set(eb, -EINVAL, "--trace: '%.*s' is not an address", (int)n, s);
        hi = lo;
    }
    if (lo > hi || (kind == TRACE_PIO && hi > 0xffff))
        return err_set(eb, -EINVAL, "--trace: the range '%.*s' is empty or not a port range",
                       (int)n, s);
    if (f->nr_ranges == TRACE_MAX_RANGES)
        return err_set(eb, -EINVAL, "--trace: at most %d address ranges", TRACE_MAX_RANGES);
    f->ranges[f->nr_ranges++] = (struct trace_range){.kind = (uint8_t)kind, .lo = lo, .hi = hi};
    f->kinds |= 1U << kind;
    return 0;
}

static int trace_add_device(struct trace_filter *f, const char *s, size_t n, struct errbuf *eb)
{
    if (n == 0 || n >= TRACE_DEV_NAME)
        return err_set(eb, -EINVAL, "--trace: dev= takes a device name of 1 to %d characters",
                       TRACE_DEV_NAME - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\')
            return err_set(eb, -EINVAL, "--trace: dev= takes a device name");
    }
    for (unsigned i = 0; i < f->nr_devices; i++) {
        if (strlen(f->devices[i]) == n && !strncmp(f->devices[i], s, n))
            return 0;
    }
    if (f->nr_devices == TRACE_MAX_DEVICES)
        return err_set(eb, -EINVAL, "--trace: at most %d devices", TRACE_MAX_DEVICES);
    memcpy(f->devices[f->nr_devices], s, n);
    f->devices[f->nr_devices][n] = '\0';
    f->nr_devices++;
    return 0;
}

/* Adds one item of a spec to f. */
static int trace_item(struct trace_filter *f, const char *s, size_t n, struct errbuf *eb)
{
    const char *eq = memchr(s, '=', n);
    size_t key = eq ? (size_t)(eq - s) : n;

    if (key == 3 && !strncmp(s, "dev", 3) && eq)
        return trace_add_device(f, eq + 1, n - key - 1, eb);
    if (!eq && n == 3 && !strncmp(s, "all", 3)) {
        f->kinds = (1U << TRACE_NR_KINDS) - 1;
        return 0;
    }
    if (!eq && n == 4 && !strncmp(s, "none", 4))
        return 0;
    int kind = trace_kind_parse(s, key);
    if (kind < 0)
        return err_set(eb, -EINVAL,
                       "--trace: unknown kind '%.*s' (pio, mmio, virtio, irq, control, all, "
                       "none; KIND=LO-HI, dev=NAME)",
                       (int)(key > 32 ? 32 : key), s);
    if (eq)
        return trace_add_range(f, kind, eq + 1, n - key - 1, eb);
    f->kinds |= 1U << kind;
    return 0;
}

/* Adds every item of spec to f. */
static int trace_spec_add(struct trace_filter *f, const char *spec, struct errbuf *eb)
{
    size_t len = strlen(spec);

    if (len == 0 || len >= TRACE_SPEC_MAX)
        return err_set(eb, -EINVAL, "--trace: the spec must be 1 to %d characters",
                       TRACE_SPEC_MAX - 1);
    for (const char *p = spec;;) {
        size_t n = strcspn(p, ",");
        if (n == 0)
            return err_set(eb, -EINVAL, "--trace: an empty item in '%s'", spec);
        int ret = trace_item(f, p, n, eb);
        if (ret)
            return ret;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

int trace_spec_parse(const char *spec, struct trace_filter *f, struct errbuf *eb)
{
    struct trace_filter nf = {0};
    int ret = trace_spec_add(&nf, spec, eb);

    if (!ret)
        *f = nf;
    return ret;
}

int trace_filter_change(struct trace_filter *f, const char *on, const char *off, struct errbuf *eb)
{
    struct trace_filter nf = *f;

    if (on) {
        int ret = trace_spec_add(&nf, on, eb);
        if (ret)
            return ret;
    }
    if (off) {
        struct trace_filter o = {0};
        int ret = trace_spec_add(&o, off, eb);
        if (ret)
            return ret;
        if (o.nr_ranges || o.nr_devices)
            return err_set(eb, -EINVAL, "--off takes kinds only (pio, mmio, ...), no ranges");
        nf.kinds &= ~o.kinds;
        unsigned j = 0;
        for (unsigned i = 0; i < nf.nr_ranges; i++) {
            if (!(o.kinds & (1U << nf.ranges[i].kind)))
                nf.ranges[j++] = nf.ranges[i];
        }
        nf.nr_ranges = j;
    }
    *f = nf;
    return 0;
}

void trace_filter_format(const struct trace_filter *f, char *buf, size_t len)
{
    size_t n = 0;

#define TRACE_PUT(...)                                                                             \
    do {                                                                                           \
        int w = snprintf(buf + n, len - n, "%s" __VA_ARGS__);                                      \
        if (w < 0 || (size_t)w >= len - n)                                                         \
            return;                                                                                \
        n += (size_t)w;                                                                            \
    } while (0)

    if (!len)
        return;
    buf[0] = '\0';
    for (int k = 0; k < TRACE_NR_KINDS; k++) {
        if (!(f->kinds & (1U << k)))
            continue;
        bool ranged = false;
        for (unsigned i = 0; i < f->nr_ranges; i++) {
            if (f->ranges[i].kind != k)
                continue;
            ranged = true;
            TRACE_PUT("%s=%#" PRIx64 "-%#" PRIx64, n ? "," : "", trace_kind_names[k],
                      f->ranges[i].lo, f->ranges[i].hi);
        }
        if (!ranged)
            TRACE_PUT("%s", n ? "," : "", trace_kind_names[k]);
    }
    for (unsigned i = 0; i < f->nr_devices; i++)
        TRACE_PUT("dev=%s", n ? "," : "", f->devices[i]);
    if (!n)
        TRACE_PUT("none", "");
#undef TRACE_PUT
}

bool trace_filter_match(const struct trace_filter *f, const struct trace_event *e)
{
    if (e->kind >= TRACE_NR_KINDS || !(f->kinds & (1U << e->kind)))
        return false;
    if (e->kind == TRACE_PIO || e->kind == TRACE_MMIO) {
        bool ranged = false, hit = false;
        for (unsigned i = 0; i < f->nr_ranges; i++) {
            if (f->ranges[i].kind != e->kind)
                continue;
            ranged = true;
            hit |= e->addr >= f->ranges[i].lo && e->addr <= f->ranges[i].hi;
        }
        if (ranged && !hit)
            return false;
    }
    if (f->nr_devices && e->kind != TRACE_CONTROL) {
        for (unsigned i = 0; i < f->nr_devices; i++) {
            if (e->dev && !strcmp(e->dev, f->devices[i]))
                return true;
        }
        return false;
    }
    return true;
}

/* ---- formatting ---- */

static const char *trace_msi_result(int64_t r)
{
    switch (r) {
    case 0:
        return "sent";
    case 1:
        return "pending";
    case 2:
        return "dropped";
    default:
        return "error";
    }
}

/* A line that did not fit in len bytes: cut, still ending in a newline. */
static size_t trace_cut(char *buf, size_t len)
{
    if (len < 2) {
        buf[0] = '\0';
        return 0;
    }
    buf[len - 2] = '\n';
    buf[len - 1] = '\0';
    return len - 1;
}

size_t trace_format(const struct trace_event *e, char *buf, size_t len)
{
    char cpu[16];
    const char *dev = e->dev ? e->dev : "-";
    const char *op = e->op < TRACE_OP_NR && trace_op_names[e->op] ? trace_op_names[e->op] : "?";
    int n;

    if (len == 0)
        return 0;
    if (e->vcpu >= 0)
        snprintf(cpu, sizeof(cpu), "vcpu=%d", e->vcpu);
    else
        snprintf(cpu, sizeof(cpu), "vcpu=-");
    int h =
        snprintf(buf, len, "%" PRIu64 ".%09" PRIu64 " %s %s %s", (uint64_t)(e->ns / 1000000000U),
                 (uint64_t)(e->ns % 1000000000U), cpu, trace_kind_name(e->kind), op);
    if (h < 0 || (size_t)h >= len)
        return trace_cut(buf, len);
    char *p = buf + h;
    size_t room = len - (size_t)h;
    switch (e->kind) {
    case TRACE_PIO:
    case TRACE_MMIO:
        n = snprintf(p, room, " addr=%#" PRIx64 " size=%u value=%#" PRIx64 " dev=%s %s\n", e->addr,
                     e->size, e->value, dev, e->result ? "unclaimed" : "ok");
        break;
    case TRACE_VIRTIO:
        if (e->op == TRACE_OP_POP)
            n = snprintf(p, room, " dev=%s queue=%u head=%u chain=%u bytes=%" PRIu64 "\n", dev,
                         e->queue, e->head, e->chain, e->value);
        else if (e->op == TRACE_OP_PUSH)
            n = snprintf(p, room, " dev=%s queue=%u head=%u bytes=%" PRIu64 "\n", dev, e->queue,
                         e->head, e->value);
        else if (e->op == TRACE_OP_STATUS)
            n = snprintf(p, room, " dev=%s old=%#" PRIx64 " value=%#" PRIx64 "\n", dev, e->addr,
                         e->value);
        else if (e->op == TRACE_OP_BROKEN)
            n = snprintf(p, room, " dev=%s queue=%u\n", dev, e->queue);
        else
            n = snprintf(p, room, " dev=%s\n", dev);
        break;
    case TRACE_IRQ:
        if (e->op == TRACE_OP_MSI)
            n = snprintf(p, room, " dev=%s vector=%" PRIu64 " %s\n", dev, e->addr,
                         trace_msi_result((int64_t)e->value));
        else
            n = snprintf(p, room, " dev=%s gsi=%" PRIu64 " level=%" PRIu64 "\n", dev, e->addr,
                         e->value);
        break;
    case TRACE_CONTROL:
        n = snprintf(p, room, " kick_ns=%" PRIu64 "\n", e->value);
        break;
    default:
        n = snprintf(p, room, "\n");
        break;
    }
    if (n < 0 || (size_t)n >= room)
        return trace_cut(buf, len);
    return (size_t)h + (size_t)n;
}

/* ---- producers ---- */

/* Is addr in one of kind's published ranges? (A producer; the loop may be changing them.) */
static bool trace_in_range(struct trace *t, unsigned kind, uint64_t addr)
{
    for (;;) {
        unsigned s = atomic_load_explicit(&t->seq, memory_order_acquire);
        if (s & 1)
            continue; /* the loop is a few stores into its update */
        bool hit = false;
        unsigned n = atomic_load_explicit(&t->nr_pub, memory_order_relaxed);
        for (unsigned i = 0; i < n && i < TRACE_MAX_RANGES; i++) {
            if (atomic_load_explicit(&t->pub[i].kind, memory_order_relaxed) == kind &&
                addr >= atomic_load_explicit(&t->pub[i].lo, memory_order_relaxed) &&
                addr <= atomic_load_explicit(&t->pub[i].hi, memory_order_relaxed))
                hit = true;
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&t->seq, memory_order_relaxed) == s)
            return hit;
    }
}

/* Wakes the loop (a ring is half full, or began to drop). */
static void trace_wake(struct trace *t)
{
    uint64_t one = 1;
    ssize_t r = write(t->notify_fd, &one, sizeof(one));
    (void)r; /* EAGAIN: a wake-up is pending anyway */
}

static void trace_push(struct trace *t, struct trace_ring *r, struct trace_event *e)
{
    uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint32_t used = h - tail;

    if (used >= TRACE_RING_SIZE) {
        /* Wake the loop now and then while dropping: it says so in the trace. */
        if ((atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed) & 1023) == 0)
            trace_wake(t);
        return;
    }
    r->ev[h & TRACE_RING_MASK] = *e;
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    if (used + 1 == TRACE_RING_SIZE / 2)
        trace_wake(t);
}

void trace_emit(struct trace *t, int vcpu, struct trace_event *e)
{
    if (!t->rings)
        return;
    if (vcpu >= 0 && (unsigned)vcpu + 1 < t->nr_rings) {
        e->vcpu = (int16_t)vcpu;
        e->ns = now_ns();
        trace_push(t, &t->rings[vcpu], e);
        return;
    }
    e->vcpu = -1;
    pthread_mutex_lock(&t->shared_lock);
    e->ns = now_ns(); /* under the lock: the shared ring stays in time order */
    trace_push(t, &t->rings[t->nr_rings - 1], e);
    pthread_mutex_unlock(&t->shared_lock);
}

void trace_access(struct trace *t, int vcpu, enum trace_kind kind, uint64_t addr, const void *data,
                  unsigned size, bool is_write, const char *dev)
{
    unsigned flags = atomic_load_explicit(&t->flags, memory_order_relaxed);

    if ((flags & (1U << (TRACE_RANGED + kind))) && !trace_in_range(t, kind, addr))
        return;
    struct trace_event e = {
        .addr = addr,
        .dev = dev,
        .kind = (uint8_t)kind,
        .op = is_write ? TRACE_OP_WRITE : TRACE_OP_READ,
        .size = (uint8_t)size,
        .result = dev ? 0 : -1,
    };
    memcpy(&e.value, data, size > 8 ? 8 : size);
    trace_emit(t, vcpu, &e);
}

void trace_control(struct trace *t, enum trace_op op, uint64_t ns)
{
    if (!TRACE_ON(t, TRACE_CONTROL))
        return;
    struct trace_event e = {.kind = TRACE_CONTROL, .op = (uint8_t)op, .value = ns};
    trace_emit(t, -1, &e);
}

uint64_t trace_dropped(struct trace *t)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < t->nr_rings; i++)
        n += atomic_load_explicit(&t->rings[i].dropped, memory_order_relaxed);
    return n;
}

/* ---- the loop's side ---- */

/* Writes what the file takes now. 0, -EAGAIN (the rest waits), or -errno (the file failed). */
static int trace_write_out(struct trace *t)
{
    size_t off = 0;

    while (off < t->out_len) {
        ssize_t w = write(t->fd, t->out + off, t->out_len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        int err = w < 0 ? -errno : -EIO;
        memmove(t->out, t->out + off, t->out_len - off);
        t->out_len -= off;
        if (err == -EAGAIN)
            return err;
        /* The file failed: tracing goes off, and GET /stats says why. */
        t->write_err = err;
        atomic_store(&t->flags, 0);
        t->out_len = 0;
        return err;
    }
    t->out_len = 0;
    return 0;
}

/* Appends a line about drops on ring i (never lost: dropped only grows). */
static void trace_note_drops(struct trace *t, unsigned i)
{
    struct trace_ring *r = &t->rings[i];
    uint64_t d = atomic_load_explicit(&r->dropped, memory_order_relaxed);

    if (d == r->dropped_seen || t->out_len + TRACE_LINE_MAX > TRACE_OUT_SIZE)
        return;
    uint64_t ns = now_ns();
    char cpu[16];
    if (i + 1 < t->nr_rings)
        snprintf(cpu, sizeof(cpu), "vcpu=%u", i);
    else
        snprintf(cpu, sizeof(cpu), "vcpu=-");
    int n = snprintf(t->out + t->out_len, TRACE_OUT_SIZE - t->out_len,
                     "%" PRIu64 ".%09" PRIu64 " %s trace dropped=%" PRIu64 " total=%" PRIu64
                     " (the ring was full: the file could not keep up)\n",
                     (uint64_t)(ns / 1000000000U), (uint64_t)(ns % 1000000000U), cpu,
                     d - r->dropped_seen, d);
    if (n > 0 && (size_t)n < TRACE_OUT_SIZE - t->out_len)
        t->out_len += (size_t)n;
    t->dropped += d - r->dropped_seen;
    r->dropped_seen = d;
}

uint64_t trace_drain(struct trace *t)
{
    uint32_t heads[TRACE_MAX_RINGS];
    uint64_t written = 0;

    if (!t->rings || t->fd < 0)
        return 0;
    if (t->out_len && trace_write_out(t))
        return 0;
    for (unsigned i = 0; i < t->nr_rings; i++) {
        heads[i] = atomic_load_explicit(&t->rings[i].head, memory_order_acquire);
        trace_note_drops(t, i);
    }
    /* Merge the rings by time, up to the heads seen, while the output has room. */
    for (;;) {
        if (t->out_len + TRACE_LINE_MAX > TRACE_OUT_SIZE && trace_write_out(t))
            break;
        int best = -1;
        uint64_t best_ns = UINT64_MAX;
        for (unsigned i = 0; i < t->nr_rings; i++) {
            struct trace_ring *r = &t->rings[i];
            uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
            if (tail == heads[i])
                continue;
            uint64_t ns = r->ev[tail & TRACE_RING_MASK].ns;
            if (best < 0 || ns < best_ns) {
                best = (int)i;
                best_ns = ns;
            }
        }
        if (best < 0)
            break;
        struct trace_ring *r = &t->rings[best];
        uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        struct trace_event e = r->ev[tail & TRACE_RING_MASK];
        atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
        if (!trace_filter_match(&t->filter, &e)) {
            t->filtered++;
            continue;
        }
        t->out_len += trace_format(&e, t->out + t->out_len, TRACE_OUT_SIZE - t->out_len);
        t->events++;
        written++;
    }
    if (t->out_len)
        (void)trace_write_out(t);
    return written;
}

void trace_flush(struct trace *t, uint64_t deadline_ns)
{
    if (!t->rings || t->fd < 0)
        return;
    for (;;) {
        trace_drain(t);
        bool empty = !t->out_len;
        for (unsigned i = 0; i < t->nr_rings && empty; i++)
            empty = atomic_load(&t->rings[i].head) == atomic_load(&t->rings[i].tail);
        if (empty || t->write_err)
            return;
        uint64_t now = now_ns();
        if (now >= deadline_ns)
            return;
        struct pollfd p = {.fd = t->fd, .events = POLLOUT};
        poll(&p, 1, (int)((deadline_ns - now) / 1000000ULL) + 1);
    }
}

static void trace_on_notify(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    (void)what;
    ssize_t r = read(fd, &n, sizeof(n));
    (void)r;
    trace_drain(arg);
}

static void trace_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    trace_drain(arg);
}

int trace_init(struct trace *t, unsigned nr_vcpus, const char *path)
{
    memset(t, 0, sizeof(*t));
    t->fd = t->notify_fd = -1;
    snprintf(t->path, sizeof(t->path), "%s", path ? path : "");
    pthread_mutex_init(&t->shared_lock, NULL);
    if (nr_vcpus + 1 > TRACE_MAX_RINGS)
        return -EINVAL;
    t->nr_rings = nr_vcpus + 1;
    t->rings = calloc(t->nr_rings, sizeof(*t->rings));
    t->out = malloc(TRACE_OUT_SIZE);
    if (!t->rings || !t->out)
        goto err;
    for (unsigned i = 0; i < t->nr_rings; i++) {
        t->rings[i].ev = calloc(TRACE_RING_SIZE, sizeof(struct trace_event));
        if (!t->rings[i].ev)
            goto err;
    }
    t->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->notify_fd < 0)
        goto err;
    return 0;
err:
    trace_destroy(t);
    return -ENOMEM;
}

int trace_start(struct trace *t, struct event_base *base)
{
    t->base = base;
    t->ev_notify = event_new(base, t->notify_fd, EV_READ | EV_PERSIST, trace_on_notify, t);
    t->ev_timer = event_new(base, -1, EV_PERSIST, trace_on_timer, t);
    if (!t->ev_notify || !t->ev_timer || event_add(t->ev_notify, NULL))
        return -ENOMEM;
    return 0;
}

int trace_set_filter(struct trace *t, const struct trace_filter *f, struct errbuf *eb)
{
    if (f->kinds && t->fd < 0) {
        if (!t->path[0])
            return err_set(eb, -EINVAL, "no trace file");
        t->fd = open(t->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644);
        if (t->fd < 0)
            return err_set(eb, -errno, "cannot open the trace file %s: %s", t->path,
                           strerror(errno));
    }
    if (f->kinds && t->write_err)
        return err_set(eb, t->write_err, "the trace file %s failed: %s", t->path,
                       strerror(-t->write_err));
    /* Producers see the new kinds only once the ranges they check are in place. */
    atomic_store(&t->flags, 0);
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    unsigned flags = f->kinds;
    for (unsigned i = 0; i < f->nr_ranges; i++) {
        atomic_store_explicit(&t->pub[i].lo, f->ranges[i].lo, memory_order_relaxed);
        atomic_store_explicit(&t->pub[i].hi, f->ranges[i].hi, memory_order_relaxed);
        atomic_store_explicit(&t->pub[i].kind, f->ranges[i].kind, memory_order_relaxed);
        flags |= 1U << (TRACE_RANGED + f->ranges[i].kind);
    }
    atomic_store_explicit(&t->nr_pub, f->nr_ranges, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_release);
    t->filter = *f;
    atomic_store(&t->flags, flags);
    if (t->ev_timer) {
        struct timeval tv = {0, TRACE_TIMER_MS * 1000};
        if (flags)
            event_add(t->ev_timer, &tv);
        else
            event_del(t->ev_timer);
    }
    return 0;
}

void trace_destroy(struct trace *t)
{
    if (t->ev_notify)
        event_free(t->ev_notify);
    if (t->ev_timer)
        event_free(t->ev_timer);
    t->ev_notify = t->ev_timer = NULL;
    if (t->rings) {
        for (unsigned i = 0; i < t->nr_rings; i++)
            free(t->rings[i].ev);
        free(t->rings);
    }
    t->rings = NULL;
    t->nr_rings = 0;
    free(t->out);
    t->out = NULL;
    if (t->notify_fd >= 0)
        close(t->notify_fd);
    if (t->fd >= 0)
        close(t->fd);
    t->notify_fd = t->fd = -1;
    pthread_mutex_destroy(&t->shared_lock);
}
