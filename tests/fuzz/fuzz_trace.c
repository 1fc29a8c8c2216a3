/*
 * Fuzz target for the trace filter spec, which a client sends (PUT /trace's "filter",
 * PATCH /trace's "on" and "off", petrel run --trace). The first byte chooses: 0, the
 * rest is a spec; 1, the rest is "ON\nOFF" applied to a filter with every kind on; 2,
 * the rest is a PUT/PATCH /trace body, through the API's validator first. Must never
 * crash; what parses must print as a spec that parses back to the same filter.
 */
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "petrel/api.h"
#include "petrel/trace.h"

/* The filter's invariants, and its printed form reading back the same. */
static void check(const struct trace_filter *f)
{
    char out[TRACE_SPEC_MAX * 4];
    struct trace_filter g;
    struct errbuf eb;

    FUZZ_CHECK((f->kinds & ~((1U << TRACE_NR_KINDS) - 1)) == 0);
    FUZZ_CHECK(f->nr_ranges <= TRACE_MAX_RANGES && f->nr_devices <= TRACE_MAX_DEVICES);
    for (unsigned i = 0; i < f->nr_ranges; i++) {
        FUZZ_CHECK(f->ranges[i].lo <= f->ranges[i].hi);
        FUZZ_CHECK(f->ranges[i].kind == TRACE_PIO || f->ranges[i].kind == TRACE_MMIO);
        FUZZ_CHECK(f->kinds & (1U << f->ranges[i].kind));
    }
    for (unsigned i = 0; i < f->nr_devices; i++)
        FUZZ_CHECK(memchr(f->devices[i], '\0', TRACE_DEV_NAME) != NULL);
    trace_filter_format(f, out, sizeof(out));
    if (strlen(out) < TRACE_SPEC_MAX) {
        FUZZ_CHECK(trace_spec_parse(out, &g, &eb) == 0);
        FUZZ_CHECK(g.kinds == f->kinds && g.nr_ranges == f->nr_ranges &&
                   g.nr_devices == f->nr_devices);
    }
}

static void spec(const char *s)
{
    struct trace_filter f;
    struct errbuf eb;

    if (trace_spec_parse(s, &f, &eb) == 0)
        check(&f);
    else
        FUZZ_CHECK(eb.msg[0] != '\0');
}

static void change(const char *on, const char *off)
{
    struct trace_filter f, before;
    struct errbuf eb;

    FUZZ_CHECK(trace_spec_parse("all,pio=0x3f8-0x3ff,dev=com1", &f, &eb) == 0);
    before = f;
    if (trace_filter_change(&f, on, off, &eb) == 0)
        check(&f);
    else
        FUZZ_CHECK(!memcmp(&f, &before, sizeof(f))); /* a failed change changes nothing */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const fields[] = {"filter", "on", "off", NULL};

    if (size == 0 || size > 4096)
        return 0;
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (data[0] == 0) {
        spec(s);
    } else if (data[0] == 1) {
        char *nl = strchr(s, '\n');
        if (nl)
            *nl = '\0';
        change(s[0] ? s : NULL, nl ? nl + 1 : NULL);
    } else {
        struct errbuf eb;
        json_t *j = api_parse_body((const char *)data + 1, size - 1, fields, &eb);
        if (j) {
            const char *f = json_string_value(json_object_get(j, "filter"));
            if (f)
                spec(f);
            change(json_string_value(json_object_get(j, "on")),
                   json_string_value(json_object_get(j, "off")));
            json_decref(j);
        }
    }
    free(s);
    return 0;
}
