/*
 * State trees for device save/restore tests: a device's save writes its node
 * under a root in a buffer, and the test reads it back as a restore would.
 *
 *   uint8_t tree[STATE_TEST_TREE];
 *   assert_int_equal(state_test_write(tree, sizeof(tree), save_fn, dev), 0);
 *   struct state_in root = state_test_root(tree, &eb);
 */
#ifndef PETREL_TEST_FAKE_STATE_H
#define PETREL_TEST_FAKE_STATE_H

#include <errno.h>

#include <libfdt.h>

#include "petrel/state.h"

#define STATE_TEST_TREE (64 * 1024)

/* Writes a finished tree whose root holds what fill writes. 0 or -errno. */
static inline int state_test_write(void *buf, size_t size,
                                   void (*fill)(struct state_out *out, void *ctx), void *ctx)
{
    struct state_out out = {.fdt = buf};
    if (fdt_create(buf, (int)size) < 0 || fdt_finish_reservemap(buf) < 0 ||
        fdt_begin_node(buf, "") < 0)
        return -ENOSPC;
    fill(&out, ctx);
    if (out.err)
        return out.err;
    if (fdt_end_node(buf) < 0 || fdt_finish(buf) < 0)
        return -ENOSPC;
    return fdt_check_full(buf, size) == 0 ? 0 : -EIO;
}

/* The root of a tree state_test_write() made, for state_open(). */
static inline struct state_in state_test_root(const void *buf, struct errbuf *eb)
{
    return (struct state_in){.fdt = buf, .node = 0, .eb = eb};
}

/*
 * A hostile edit of a finished tree: property prop of the node at path ("/com1")
 * as a writable pointer, and its length in *len (NULL if absent).
 */
static inline void *state_test_prop(void *buf, const char *path, const char *prop, int *len)
{
    int off = fdt_path_offset(buf, path);
    return off < 0 ? NULL : fdt_getprop_w(buf, off, prop, len);
}

/* Overwrites the u32 property prop of the node at path. 0 or a libfdt error. */
static inline int state_test_set_u32(void *buf, const char *path, const char *prop, uint32_t v)
{
    int off = fdt_path_offset(buf, path);
    return off < 0 ? off : fdt_setprop_inplace_u32(buf, off, prop, v);
}

/* Overwrites the u64 property prop of the node at path. 0 or a libfdt error. */
static inline int state_test_set_u64(void *buf, const char *path, const char *prop, uint64_t v)
{
    int off = fdt_path_offset(buf, path);
    return off < 0 ? off : fdt_setprop_inplace_u64(buf, off, prop, v);
}

#endif
