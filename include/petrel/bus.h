/*
 * Address buses (one for port I/O, one for MMIO) and the device interface.
 *
 * A device embeds a struct device and registers address ranges on a bus.
 * bus_dispatch(), called on a vCPU thread for a port or MMIO exit, finds the
 * range and calls the device's read or write with the offset relative to the
 * range's base, holding the device's lock. Code on the event loop that touches
 * device state takes the same lock.
 */
#ifndef PETREL_BUS_H
#define PETREL_BUS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "petrel/util.h"

struct device;

struct dev_ops {
    /* Returns the value of a size-byte read at offset (size is 1, 2, 4 or 8). */
    uint64_t (*read)(struct device *dev, uint64_t offset, unsigned size);
    void (*write)(struct device *dev, uint64_t offset, uint64_t value, unsigned size);
    /* Puts the device in its power-on state. */
    void (*reset)(struct device *dev);
};

struct device {
    const char *name;
    const char *label; /* the instance ("vda") in traces and stats; NULL: name (device_label) */
    const struct dev_ops *ops;
    pthread_mutex_t lock; /* guards the embedding device's state */
    /* Accesses dispatched to it: written under lock, read by anyone (GET /stats). */
    _Atomic uint64_t accesses;
};

/* The name traces and GET /stats give the device. */
static inline const char *device_label(const struct device *dev)
{
    return dev->label ? dev->label : dev->name;
}

/* Initialises dev; the embedding device calls this before registering. */
void device_init(struct device *dev, const char *name, const struct dev_ops *ops);
void device_destroy(struct device *dev);

struct bus_range {
    uint64_t base;
    uint64_t len;
    struct device *dev;
};

struct bus {
    const char *name;
    pthread_rwlock_t lock;    /* guards ranges/nr/cap; held for reading during dispatch */
    struct bus_range *ranges; /* sorted by base, never overlapping */
    unsigned nr, cap;
    /* Accesses no device claimed: reads return all-ones, writes are dropped. */
    atomic_ullong unhandled_reads, unhandled_writes;
};

void bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);

/* Claims [base, base + len) for dev. 0, -EEXIST on overlap, -EINVAL, -ENOMEM. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, struct device *dev) MUST_CHECK;

/* Releases the range starting at base. 0 or -ENOENT. */
int bus_unregister(struct bus *bus, uint64_t base);

/*
 * Performs one access of size bytes (1, 2, 4 or 8) at addr. data is read from
 * for writes and filled for reads (little-endian, size bytes). Returns 0, or
 * -ENOENT when no device claims addr (a read then yields all-ones).
 */
int bus_dispatch(struct bus *bus, uint64_t addr, void *data, unsigned size, bool is_write);

/* bus_dispatch() that also says which device took the access (*devp NULL: none). */
int bus_access(struct bus *bus, uint64_t addr, void *data, unsigned size, bool is_write,
               struct device **devp);

/*
 * Calls fn once for each device with a range on bus (in address order; a device
 * with several ranges once per range). Takes the bus lock for reading.
 */
void bus_for_each(struct bus *bus, void (*fn)(void *ctx, const struct bus_range *r), void *ctx);

#endif
