/* Port and MMIO buses: range registration and dispatch to device callbacks. */
#include "petrel/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void device_init(struct device *dev, const char *name, const struct dev_ops *ops)
{
    dev->name = name;
    dev->label = NULL;
    dev->ops = ops;
    atomic_init(&dev->accesses, 0);
    pthread_mutex_init(&dev->lock, NULL);
}

void device_destroy(struct device *dev)
{
    pthread_mutex_destroy(&dev->lock);
}

void bus_init(struct bus *bus, const char *name)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
    pthread_rwlock_init(&bus->lock, NULL);
}

void bus_destroy(struct bus *bus)
{
    free(bus->ranges);
    pthread_rwlock_destroy(&bus->lock);
    bus->ranges = NULL;
    bus->nr = bus->cap = 0;
}

/* Index of the first range whose end lies above addr (the only candidate). */
static unsigned bus_search(const struct bus *bus, uint64_t addr)
{
    unsigned lo = 0, hi = bus->nr;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const struct bus_range *r = &bus->ranges[mid];
        if (r->base + (r->len - 1) < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, struct device *dev)
{
    int ret = 0;

    if (!len || !dev || base + (len - 1) < base)
        return -EINVAL;
    pthread_rwlock_wrlock(&bus->lock);
    unsigned i = bus_search(bus, base);
    if (i < bus->nr && bus->ranges[i].base <= base + (len - 1)) {
        ret = -EEXIST;
        goto out;
    }
    if (bus->nr == bus->cap) {
        unsigned cap = bus->cap ? bus->cap * 2 : 16;
        struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));
        if (!r) {
            ret = -ENOMEM;
            goto out;
        }
        bus->ranges = r;
        bus->cap = cap;
    }
    memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->nr - i) * sizeof(bus->ranges[0]));
    bus->ranges[i] = (struct bus_range){.base = base, .len = len, .dev = dev};
    bus->nr++;
out:
    pthread_rwlock_unlock(&bus->lock);
    return ret;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
    int ret = -ENOENT;

    pthread_rwlock_wrlock(&bus->lock);
    unsigned i = bus_search(bus, base);
    if (i < bus->nr && bus->ranges[i].base == base) {
        memmove(&bus->ranges[i], &bus->ranges[i + 1], (bus->nr - i - 1) * sizeof(bus->ranges[0]));
        bus->nr--;
        ret = 0;
    }
    pthread_rwlock_unlock(&bus->lock);
    return ret;
}

static uint64_t bus_load(const void *data, unsigned size)
{
    uint64_t v = 0;
    memcpy(&v, data, size); /* x86 hosts only: little-endian like the guest */
    return v;
}

int bus_dispatch(struct bus *bus, uint64_t addr, void *data, unsigned size, bool is_write)
{
    struct device *dev;
    return bus_access(bus, addr, data, size, is_write, &dev);
}

void bus_for_each(struct bus *bus, void (*fn)(void *ctx, const struct bus_range *r), void *ctx)
{
    pthread_rwlock_rdlock(&bus->lock);
    for (unsigned i = 0; i < bus->nr; i++)
        fn(ctx, &bus->ranges[i]);
    pthread_rwlock_unlock(&bus->lock);
}

int bus_access(struct bus *bus, uint64_t addr, void *data, unsigned size, bool is_write,
               struct device **devp)
{
    struct device *dev = NULL;
    uint64_t offset = 0;

    *devp = NULL;
    if (size == 0 || size > 8)
        return -EINVAL;
    pthread_rwlock_rdlock(&bus->lock);
    unsigned i = bus_search(bus, addr);
    if (i < bus->nr && bus->ranges[i].base <= addr) {
        dev = bus->ranges[i].dev;
        offset = addr - bus->ranges[i].base;
    }
    /*
     * Devices live as long as the VM, so dev stays valid after the bus lock is
     * dropped; dropping it lets a callback re-register ranges (PCI BARs).
     */
    pthread_rwlock_unlock(&bus->lock);
    if (!dev) {
        if (is_write) {
            atomic_fetch_add_explicit(&bus->unhandled_writes, 1, memory_order_relaxed);
        } else {
            atomic_fetch_add_explicit(&bus->unhandled_reads, 1, memory_order_relaxed);
            memset(data, 0xff, size);
        }
        return -ENOENT;
    }
    *devp = dev;
    pthread_mutex_lock(&dev->lock);
    /* One writer (the lock holder): a plain load and store, no locked instruction. */
    atomic_store_explicit(&dev->accesses,
                          atomic_load_explicit(&dev->accesses, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (is_write) {
        if (dev->ops->write)
            dev->ops->write(dev, offset, bus_load(data, size), size);
    } else {
        uint64_t v = dev->ops->read ? dev->ops->read(dev, offset, size) : ~0ULL;
        memcpy(data, &v, size);
    }
    pthread_mutex_unlock(&dev->lock);
    return 0;
}
