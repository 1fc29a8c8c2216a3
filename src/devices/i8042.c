/* PC keyboard controller: for now, the reset line. */
#include "petrel/i8042.h"

#include <string.h>

static uint64_t i8042_read(struct device *dev, uint64_t offset, unsigned size)
{
    (void)dev, (void)offset, (void)size;
    return 0; /* status: output buffer empty, input buffer empty */
}

static void i8042_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct i8042 *k = container_of(dev, struct i8042, dev);
    (void)size;

    if (offset == I8042_COMMAND_PORT - I8042_DATA_PORT && (value & 0xff) == I8042_CMD_RESET)
        exit_hook_call(&k->hook, VM_EXIT_RESET, PETREL_STATUS_OK);
}

static const struct dev_ops i8042_ops = {
    .read = i8042_read,
    .write = i8042_write,
};

void i8042_init(struct i8042 *k, struct exit_hook hook)
{
    memset(k, 0, sizeof(*k));
    device_init(&k->dev, "i8042", &i8042_ops);
    k->hook = hook;
}

void i8042_destroy(struct i8042 *k)
{
    device_destroy(&k->dev);
}
