/* Device state nodes for snapshots: the writing and checked reading of properties. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libfdt.h>

#include "petrel/state.h"

/* libfdt's error for a full buffer becomes -ENOSPC, the others -EIO. */
static int fdt_errno(int fdt_err)
{
    return fdt_err == -FDT_ERR_NOSPACE ? -ENOSPC : -EIO;
}

static void out_check(struct state_out *out, int r)
{
    if (r < 0 && out->err == 0)
        out->err = fdt_errno(r);
}

void state_begin(struct state_out *out, const char *name, const char *compatible)
{
    if (out->err)
        return;
    out_check(out, fdt_begin_node(out->fdt, name));
    state_put_string(out, "compatible", compatible);
}

void state_end(struct state_out *out)
{
    if (!out->err)
        out_check(out, fdt_end_node(out->fdt));
}

void state_put_u32(struct state_out *out, const char *name, uint32_t v)
{
    if (!out->err)
        out_check(out, fdt_property_u32(out->fdt, name, v));
}

void state_put_u64(struct state_out *out, const char *name, uint64_t v)
{
    if (!out->err)
        out_check(out, fdt_property_u64(out->fdt, name, v));
}

void state_put_bool(struct state_out *out, const char *name, bool v)
{
    state_put_u32(out, name, v ? 1 : 0);
}

void state_put_bytes(struct state_out *out, const char *name, const void *buf, size_t len)
{
    if (out->err)
        return;
    if (len > INT32_MAX) {
        out->err = -E2BIG;
        return;
    }
    out_check(out, fdt_property(out->fdt, name, buf, (int)len));
}

void state_put_string(struct state_out *out, const char *name, const char *s)
{
    if (!out->err)
        out_check(out, fdt_property_string(out->fdt, name, s));
}

void state_put_u32_array(struct state_out *out, const char *name, const uint32_t *v, size_t n)
{
    void *cells;

    if (out->err)
        return;
    if (n > INT32_MAX / sizeof(fdt32_t)) {
        out->err = -E2BIG;
        return;
    }
    out_check(out, fdt_property_placeholder(out->fdt, name, (int)(n * sizeof(fdt32_t)), &cells));
    for (size_t i = 0; i < n && !out->err; i++) {
        fdt32_t c = cpu_to_fdt32(v[i]);
        memcpy((char *)cells + i * sizeof(c), &c, sizeof(c));
    }
}

int state_refuse(struct state_out *out, int err, const char *fmt, ...)
{
    if (out->err)
        return out->err;
    out->err = err;
    if (out->eb) {
        char what[384];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        err_set(out->eb, err, "%s", what);
    }
    return out->err;
}

/* The node's name for messages ("?" if the tree cannot say). */
static const char *node_name(const struct state_in *in)
{
    const char *name = fdt_get_name(in->fdt, in->node, NULL);
    return name && name[0] ? name : "/";
}

static void in_fail(struct state_in *in, int err, const char *fmt, ...) PRINTF(3, 4);

/* Records the first failure with "NODE: message". */
static void in_fail(struct state_in *in, int err, const char *fmt, ...)
{
    if (in->err)
        return;
    in->err = err;
    if (!in->eb)
        return;
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    err_set(in->eb, err, "state node '%s': %s", node_name(in), what);
}

int state_open(const struct state_in *parent, const char *name, const char *compatible,
               struct state_in *child)
{
    *child = (struct state_in){.fdt = parent->fdt, .node = parent->node, .eb = parent->eb};
    if (parent->err) {
        child->err = parent->err;
        return child->err;
    }
    int off = fdt_subnode_offset(parent->fdt, parent->node, name);
    if (off < 0) {
        in_fail(child, -ENOENT, "no subnode '%s'", name);
        return child->err;
    }
    child->node = off;
    if (fdt_node_check_compatible(parent->fdt, off, compatible) != 0) {
        const char *have = fdt_getprop(parent->fdt, off, "compatible", NULL);
        in_fail(child, -EPROTO, "is not '%s' (compatible: %s)", compatible, have ? have : "none");
    }
    return child->err;
}

/* The property name of exactly len bytes, or NULL with the failure recorded. */
static const void *get_exact(struct state_in *in, const char *name, size_t len)
{
    if (in->err)
        return NULL;
    int have;
    const void *p = fdt_getprop(in->fdt, in->node, name, &have);
    if (!p) {
        in_fail(in, -EINVAL, "no property '%s'", name);
        return NULL;
    }
    if ((size_t)have != len) {
        in_fail(in, -EINVAL, "property '%s' has %d bytes, not %zu", name, have, len);
        return NULL;
    }
    return p;
}

void state_get_u32(struct state_in *in, const char *name, uint32_t *v)
{
    const fdt32_t *p = get_exact(in, name, sizeof(*p));
    *v = p ? fdt32_ld(p) : 0; /* byte loads: a tree's cells are only 4-byte aligned */
}

void state_get_u64(struct state_in *in, const char *name, uint64_t *v)
{
    const fdt64_t *p = get_exact(in, name, sizeof(*p));
    *v = p ? fdt64_ld(p) : 0;
}

/* A u32 cell that must be at most max. */
static uint32_t get_bounded(struct state_in *in, const char *name, uint32_t max)
{
    uint32_t v;
    state_get_u32(in, name, &v);
    if (v > max) {
        in_fail(in, -EINVAL, "property '%s' is %#x, more than %#x", name, v, max);
        v = 0;
    }
    return v;
}

void state_get_bool(struct state_in *in, const char *name, bool *v)
{
    *v = get_bounded(in, name, 1) != 0;
}

void state_get_u8(struct state_in *in, const char *name, uint8_t *v)
{
    *v = (uint8_t)get_bounded(in, name, UINT8_MAX);
}

void state_get_u16(struct state_in *in, const char *name, uint16_t *v)
{
    *v = (uint16_t)get_bounded(in, name, UINT16_MAX);
}

void state_get_bytes(struct state_in *in, const char *name, void *buf, size_t len)
{
    const void *p = get_exact(in, name, len);
    if (p)
        memcpy(buf, p, len);
    else
        memset(buf, 0, len);
}

void state_get_string(struct state_in *in, const char *name, char *buf, size_t size)
{
    int len = 0;
    const char *p = in->err ? NULL : fdt_getprop(in->fdt, in->node, name, &len);

    buf[0] = '\0';
    if (in->err)
        return;
    if (!p)
        in_fail(in, -EINVAL, "no property '%s'", name);
    else if (len < 1 || memchr(p, '\0', (size_t)len) != p + len - 1)
        in_fail(in, -EINVAL, "property '%s' is not a string", name);
    else if ((size_t)len > size)
        in_fail(in, -EINVAL, "property '%s' has %d bytes, more than %zu", name, len, size);
    else
        memcpy(buf, p, (size_t)len);
}

void state_get_u32_array(struct state_in *in, const char *name, uint32_t *v, size_t n)
{
    const char *p =
        n <= SIZE_MAX / sizeof(fdt32_t) ? get_exact(in, name, n * sizeof(fdt32_t)) : NULL;

    for (size_t i = 0; i < n; i++)
        v[i] = p ? fdt32_ld((const fdt32_t *)(p + i * sizeof(fdt32_t))) : 0;
}

void state_get_bits(struct state_in *in, const char *name, uint32_t mask, uint32_t *v)
{
    state_get_u32(in, name, v);
    if (*v & ~mask) {
        in_fail(in, -EINVAL, "property '%s' is %#x, with bits %#x the register does not hold", name,
                *v, *v & ~mask);
        *v = 0;
    }
}

int state_invalid(struct state_in *in, const char *fmt, ...)
{
    if (in->err)
        return in->err;
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    in_fail(in, -EINVAL, "%s", what);
    return in->err;
}
