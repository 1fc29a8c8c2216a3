/*
 * Device state for snapshots: each device saves itself into a node of a flattened
 * device tree (libfdt's sequential-write API) and restores itself from that node
 * (libfdt's read-only API), so that `dtc -I dtb -O dts` shows every register.
 *
 * Both sides keep a sticky error: a device writes or reads all its properties and
 * checks the result once. A node identifies its format with a versioned
 * `compatible` ("petrel,uart8250-v1"); a reader refuses any other.
 *
 * A state node comes from a file: it is hostile input. A missing property, one of
 * the wrong size, or a compatible of another version fails with a message naming
 * the node and the property; a device also checks that every value it reads is one
 * its registers can hold before it uses it.
 *
 * Integers are stored big-endian as FDT cells (u32: one cell, u64: two), byte
 * strings as they are.
 */
#ifndef PETREL_STATE_H
#define PETREL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/util.h"

/* A node being written. fdt is a libfdt sequential-write tree (fdt_create()). */
struct state_out {
    void *fdt;
    int err;           /* the first failure, -errno (-ENOSPC: the buffer is full) */
    struct errbuf *eb; /* NULL, or where a device says why it refuses (state_refuse()) */
};

/* Opens a subnode named name (a device: its instance name) with its compatible. */
void state_begin(struct state_out *out, const char *name, const char *compatible);
/* Closes the node state_begin() opened. */
void state_end(struct state_out *out);
void state_put_u32(struct state_out *out, const char *name, uint32_t v);
void state_put_u64(struct state_out *out, const char *name, uint64_t v);
void state_put_bool(struct state_out *out, const char *name, bool v);
void state_put_bytes(struct state_out *out, const char *name, const void *buf, size_t len);
void state_put_string(struct state_out *out, const char *name, const char *s);
/* n u32 cells (a table of registers, shown as <...> by dtc). */
void state_put_u32_array(struct state_out *out, const char *name, const uint32_t *v, size_t n);

/*
 * A device that cannot be saved as it is (work in flight that the snapshot
 * should have let finish): records err with the message in out->eb, unless an
 * error is already recorded. Returns out->err.
 */
int state_refuse(struct state_out *out, int err, const char *fmt, ...) PRINTF(3, 4);

/* A node being read. */
struct state_in {
    const void *fdt; /* a checked tree (fdt_check_full() by whoever loaded it) */
    int node;        /* the node's offset */
    int err;         /* the first failure, -errno; eb says what */
    struct errbuf *eb;
};

/*
 * Opens the subnode name of parent, checking its compatible. On failure (no such
 * node, another compatible) returns -ENOENT / -EPROTO with a message in eb, and
 * child->err holds it too, so a caller may read on and check once.
 */
int state_open(const struct state_in *parent, const char *name, const char *compatible,
               struct state_in *child);

/* Each reads one property of exactly its size; on failure *v is 0 and in->err set. */
void state_get_u32(struct state_in *in, const char *name, uint32_t *v);
void state_get_u64(struct state_in *in, const char *name, uint64_t *v);
void state_get_bool(struct state_in *in, const char *name, bool *v);
void state_get_u8(struct state_in *in, const char *name, uint8_t *v);   /* a u32 cell <= 0xff */
void state_get_u16(struct state_in *in, const char *name, uint16_t *v); /* a u32 cell <= 0xffff */
/* Exactly len bytes. */
void state_get_bytes(struct state_in *in, const char *name, void *buf, size_t len);
/* A string with its NUL, in at most size bytes (size >= 1); "" on failure. */
void state_get_string(struct state_in *in, const char *name, char *buf, size_t size);
/* Exactly n u32 cells. */
void state_get_u32_array(struct state_in *in, const char *name, uint32_t *v, size_t n);
/* A u32 cell with no bit outside mask (the bits a register can hold). */
void state_get_bits(struct state_in *in, const char *name, uint32_t mask, uint32_t *v);

/*
 * Records a device's own objection to a value it read (a register a device cannot
 * hold, an index out of range): -EINVAL with "NODE: what", unless an error is
 * already recorded. Returns in->err.
 */
int state_invalid(struct state_in *in, const char *fmt, ...) PRINTF(2, 3);

#endif
