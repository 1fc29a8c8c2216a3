/* Debug ports for test guests: debugcon output and debug-exit. */
#include "petrel/debugport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t debugcon_read(struct device *dev, uint64_t offset, unsigned size)
{
    (void)dev, (void)offset, (void)size;
    return DEBUGCON_PORT;
}

static void debugcon_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct debugcon *d = container_of(dev, struct debugcon, dev);
    uint8_t byte = (uint8_t)value;
    (void)offset, (void)size;

    /* A port write cannot be held back like the UART's THRE; count what is lost. */
    if (d->out && outbuf_put(d->out, &byte, 1) == 0)
        d->dropped++;
}

static const struct dev_ops debugcon_ops = {
    .read = debugcon_read,
    .write = debugcon_write,
};

void debugcon_init(struct debugcon *d, struct outbuf *out)
{
    memset(d, 0, sizeof(*d));
    device_init(&d->dev, "debugcon", &debugcon_ops);
    d->out = out;
}

void debugcon_destroy(struct debugcon *d)
{
    device_destroy(&d->dev);
}

static uint64_t debugexit_read(struct device *dev, uint64_t offset, unsigned size)
{
    (void)dev, (void)offset, (void)size;
    return 0;
}

static void debugexit_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct debugexit *d = container_of(dev, struct debugexit, dev);
    (void)size;

    if (offset == 0)
        exit_hook_call(&d->hook, VM_EXIT_DEBUG, (int)(value & 0xff));
}

static const struct dev_ops debugexit_ops = {
    .read = debugexit_read,
    .write = debugexit_write,
};

void debugexit_init(struct debugexit *d, struct exit_hook hook)
{
    memset(d, 0, sizeof(*d));
    device_init(&d->dev, "debug-exit", &debugexit_ops);
    d->hook = hook;
}

void debugexit_destroy(struct debugexit *d)
{
    device_destroy(&d->dev);
}

/* The machine's debug ports (hwdev.h): debugcon always, debug-exit with --debug-exit. */
struct debugcon_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct debugcon con;
};

static int debugcon_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct debugcon *d = &container_of(hw, struct debugcon_hw, hw)->con;
    debugcon_init(d, hw->host->debugcon_out);
    int ret = bus_register(hw->host->pio, DEBUGCON_PORT, 1, &d->dev);
    if (ret) {
        debugcon_destroy(d);
        return err_set(eb, ret, "cannot register debugcon: %s", strerror(-ret));
    }
    return 0;
}

static void debugcon_stats(struct hwdev *hw, struct hwdev_stats *st)
{
    struct debugcon *d = &container_of(hw, struct debugcon_hw, hw)->con;
    pthread_mutex_lock(&d->dev.lock);
    st->output_dropped += d->dropped;
    pthread_mutex_unlock(&d->dev.lock);
}

static void debugcon_hw_destroy(struct hwdev *hw)
{
    struct debugcon *d = &container_of(hw, struct debugcon_hw, hw)->con;
    if (hw->realized) {
        (void)bus_unregister(hw->host->pio, DEBUGCON_PORT);
        debugcon_destroy(d);
    }
}

const struct hwdev_ops debugcon_port = {
    .type = "debugcon",
    .size = sizeof(struct debugcon_hw),
    .name = "debugcon",
    .realize = debugcon_realize,
    .stats = debugcon_stats,
    .destroy = debugcon_hw_destroy,
};

struct debugexit_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct debugexit port;
};

static int debugexit_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct debugexit *d = &container_of(hw, struct debugexit_hw, hw)->port;
    debugexit_init(d, hw->host->exit);
    int ret = bus_register(hw->host->pio, DEBUGEXIT_PORT, DEBUGEXIT_LEN, &d->dev);
    if (ret) {
        debugexit_destroy(d);
        return err_set(eb, ret, "cannot register debug-exit: %s", strerror(-ret));
    }
    return 0;
}

static void debugexit_hw_destroy(struct hwdev *hw)
{
    struct debugexit *d = &container_of(hw, struct debugexit_hw, hw)->port;
    if (hw->realized) {
        (void)bus_unregister(hw->host->pio, DEBUGEXIT_PORT);
        debugexit_destroy(d);
    }
}

const struct hwdev_ops debugexit_port = {
    .type = "debug-exit",
    .size = sizeof(struct debugexit_hw),
    .name = "debugexit",
    .realize = debugexit_realize,
    .destroy = debugexit_hw_destroy,
};
