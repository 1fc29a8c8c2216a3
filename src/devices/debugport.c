/* Debug ports for test guests: debugcon output and debug-exit. */
#include "petrel/debugport.h"

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
