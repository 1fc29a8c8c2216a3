/* GET /stats: the counters of the vCPUs, the devices, the kick and the trace, as JSON. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "petrel/vm.h"

/* The exit reasons petrel handles, by name; any other is "reason_N". */
static const char *vm_stats_exit_name(unsigned r)
{
    switch (r) {
    case KVM_EXIT_IO:
        return "io";
    case KVM_EXIT_MMIO:
        return "mmio";
    case KVM_EXIT_HLT:
        return "hlt";
    case KVM_EXIT_INTR:
        return "intr";
    case KVM_EXIT_SHUTDOWN:
        return "shutdown";
    case KVM_EXIT_SYSTEM_EVENT:
        return "system_event";
    case KVM_EXIT_FAIL_ENTRY:
        return "fail_entry";
    case KVM_EXIT_INTERNAL_ERROR:
        return "internal_error";
    default:
        return NULL;
    }
}

static json_t *vm_stats_vcpu(struct vcpu *v)
{
    json_t *exits = json_object();
    uint64_t total = 0;

    for (unsigned r = 0; r < VCPU_STAT_REASONS; r++) {
        uint64_t n = atomic_load_explicit(&v->stats.exits[r], memory_order_relaxed);
        if (!n)
            continue;
        char name[32];
        const char *known = vm_stats_exit_name(r);
        if (known)
            snprintf(name, sizeof(name), "%s", known);
        else
            snprintf(name, sizeof(name), "reason_%u", r);
        json_object_set_new(exits, name, json_integer((json_int_t)n));
        total += n;
    }
    uint64_t ns = atomic_load_explicit(&v->stats.guest_ns, memory_order_relaxed);
    return json_pack("{s:i, s:o, s:I, s:I, s:f}", "id", (int)v->id, "exits", exits, "exits_total",
                     (json_int_t)total, "interrupted",
                     (json_int_t)atomic_load_explicit(&v->stats.interrupted, memory_order_relaxed),
                     "guest_s", (double)ns / 1e9);
}

/* The devices' list being built: one object per name. */
struct vm_stats_devs {
    json_t *list;
    const struct device *seen[64];
    unsigned nr_seen;
};

static json_t *vm_stats_dev(struct vm_stats_devs *d, const char *name)
{
    size_t i;
    json_t *o;

    json_array_foreach(d->list, i, o)
    {
        if (!strcmp(json_string_value(json_object_get(o, "name")), name))
            return o;
    }
    o = json_pack("{s:s, s:I}", "name", name, "accesses", (json_int_t)0);
    json_array_append_new(d->list, o);
    return o;
}

static void vm_stats_add(json_t *o, const char *key, uint64_t n)
{
    json_int_t old = json_integer_value(json_object_get(o, key));
    json_object_set_new(o, key, json_integer(old + (json_int_t)n));
}

/* A bus range: its device's accesses, counted once per device. */
static void vm_stats_range(void *ctx, const struct bus_range *r)
{
    struct vm_stats_devs *d = ctx;

    for (unsigned i = 0; i < d->nr_seen; i++) {
        if (d->seen[i] == r->dev)
            return;
    }
    if (d->nr_seen < ARRAY_SIZE(d->seen))
        d->seen[d->nr_seen++] = r->dev;
    vm_stats_add(vm_stats_dev(d, device_label(r->dev)), "accesses",
                 atomic_load_explicit(&r->dev->accesses, memory_order_relaxed));
}

static json_t *vm_stats_devices(struct vm *vm)
{
    struct vm_stats_devs d = {.list = json_array()};

    bus_for_each(&vm->pio, vm_stats_range, &d);
    bus_for_each(&vm->mmio, vm_stats_range, &d);
    for (struct hwdev *h = vm->devices.head; h; h = h->next) {
        if (!h->ops->stats || !h->realized)
            continue;
        struct hwdev_stats st = {0};
        h->ops->stats(h, &st);
        json_t *o = vm_stats_dev(&d, h->name);
        static const char *const keys[] = {"interrupts", "requests", "bytes_out",
                                           "bytes_in",   "errors",   "reads",
                                           "writes",     "flushes",  "output_dropped"};
        const uint64_t vals[] = {st.interrupts, st.requests, st.bytes_out,
                                 st.bytes_in,   st.errors,   st.reads,
                                 st.writes,     st.flushes,  st.output_dropped};
        for (unsigned i = 0; i < ARRAY_SIZE(keys); i++) {
            if (vals[i] || !strcmp(keys[i], "interrupts"))
                vm_stats_add(o, keys[i], vals[i]);
        }
    }
    return d.list;
}

static json_t *vm_stats_kick(struct vm *vm)
{
    json_t *hist = json_array();

    for (unsigned b = 0; b < VM_KICK_BUCKETS; b++) {
        if (!vm->kick_hist[b])
            continue;
        /* Bucket b holds kicks below 2^b us (bucket 0: below 1 us); the last, all above. */
        json_t *o = json_pack("{s:I, s:I}", "below_us", (json_int_t)(1ULL << b), "count",
                              (json_int_t)vm->kick_hist[b]);
        if (b == VM_KICK_BUCKETS - 1)
            json_object_set_new(o, "below_us", json_null());
        json_array_append_new(hist, o);
    }
    return json_pack("{s:I, s:f, s:o}", "count", (json_int_t)vm->pauses, "last_kick_us",
                     (double)vm->last_kick_ns / 1000.0, "kick_histogram", hist);
}

json_t *vm_trace_json(struct vm *vm)
{
    char spec[TRACE_SPEC_MAX];
    struct trace *t = &vm->trace;

    trace_filter_format(&t->filter, spec, sizeof(spec));
    json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I}", "filter", spec, "file", t->path,
                          "compiled_in", PETREL_TRACE, "events", (json_int_t)t->events, "dropped",
                          (json_int_t)trace_dropped(t), "filtered", (json_int_t)t->filtered);
    if (o && t->write_err)
        json_object_set_new(o, "error", json_string(strerror(-t->write_err)));
    return o;
}

json_t *vm_stats_json(struct vm *vm)
{
    json_t *vcpus = json_array();

    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        json_array_append_new(vcpus, vm_stats_vcpu(&vm->vcpus[i]));
    return json_pack("{s:f, s:o, s:o, s:{s:{s:I, s:I}, s:{s:I, s:I}}, s:o, s:o}", "uptime_s",
                     vm->start_ns ? (double)(vm_now_ns() - vm->start_ns) / 1e9 : 0.0, "vcpus",
                     vcpus, "devices", vm_stats_devices(vm), "unclaimed", "pio", "reads",
                     (json_int_t)atomic_load(&vm->pio.unhandled_reads), "writes",
                     (json_int_t)atomic_load(&vm->pio.unhandled_writes), "mmio", "reads",
                     (json_int_t)atomic_load(&vm->mmio.unhandled_reads), "writes",
                     (json_int_t)atomic_load(&vm->mmio.unhandled_writes), "pause",
                     vm_stats_kick(vm), "trace", vm_trace_json(vm));
}

int vm_trace_set(struct vm *vm, const char *spec, const char *on, const char *off,
                 struct errbuf *eb)
{
    struct trace_filter f = vm->trace.filter;
    int ret;

    if (!PETREL_TRACE)
        return err_set(eb, -EOPNOTSUPP, "this petrel was built without tracing (-Dtrace=false)");
    if (spec)
        ret = trace_spec_parse(spec, &f, eb);
    else
        ret = trace_filter_change(&f, on, off, eb);
    if (!ret)
        ret = trace_set_filter(&vm->trace, &f, eb);
    return ret;
}
