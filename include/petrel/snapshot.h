/*
 * Snapshot files (docs/snapshot-format.md): the state file is a flattened
 * device tree whose root says what it is (SNAPSHOT_COMPATIBLE) and holds the
 * machine's configuration, the KVM VM's and each vCPU's state and each
 * device's node; the memory file is guest RAM (guest_mem.h).
 *
 * A state file is hostile input: it is read whole (at most SNAPSHOT_MAX_STATE
 * bytes), checked by libfdt from end to end, and every value is checked by
 * whoever takes it.
 */
#ifndef PETREL_SNAPSHOT_H
#define PETREL_SNAPSHOT_H

#include <stddef.h>

#include "petrel/config.h"
#include "petrel/state.h"
#include "petrel/util.h"

#define SNAPSHOT_COMPATIBLE "petrel,snapshot-v1"
#define SNAPSHOT_MAX_STATE  (64 * MiB)

/* Writes the configuration a restore rebuilds the machine from: the node "config". */
void snapshot_config_put(const struct vm_config *cfg, const char *mem_path, struct state_out *out);

/*
 * Reads the node "config" into cfg (its strings point into the tree, which must
 * outlive cfg) and the memory file's path. 0 or in->err with the message.
 */
int snapshot_config_take(struct state_in *root, struct vm_config *cfg, const char **mem_path);

/*
 * Builds a finished tree whose root fill writes (after the root's compatible),
 * growing the buffer until it fits. *buf is malloc()ed. 0 or -errno with eb (a
 * device that refuses to be saved says why there, in its own words).
 */
int snapshot_build(void (*fill)(struct state_out *out, void *ctx), void *ctx, void **buf,
                   size_t *len, struct errbuf *eb) MUST_CHECK;

/* Writes len bytes to a new file at path and syncs it (a failure removes it). 0 or -errno. */
int snapshot_write_file(const char *path, const void *buf, size_t len,
                        struct errbuf *eb) MUST_CHECK;

/* Syncs the directory path is in: a rename into it is on disk. 0 or -errno with eb. */
int snapshot_sync_dir(const char *path, struct errbuf *eb) MUST_CHECK;

/*
 * Checks a state file read whole into buf (len bytes): its size, the tree's
 * structure, the root's compatible. name is the file, for messages. 0 or
 * -errno with eb.
 */
int snapshot_check(const void *buf, size_t len, const char *name, struct errbuf *eb) MUST_CHECK;

/*
 * Reads a state file (path, or path/state for a directory) and checks it
 * (snapshot_check()). *buf is malloc()ed. 0 or -errno with eb.
 */
int snapshot_read(const char *path, void **buf, struct errbuf *eb) MUST_CHECK;

#endif
