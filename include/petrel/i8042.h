/*
 * The PC keyboard controller (ports 0x60 data, 0x64 status/command), as much
 * as petrel needs: command 0xFE (pulse the reset line) resets the machine,
 * which ends petrel with status 0. The console issue grows the keyboard port.
 */
#ifndef PETREL_I8042_H
#define PETREL_I8042_H

#include <stdint.h>

#include "petrel/bus.h"
#include "petrel/exit.h"

#define I8042_DATA_PORT    0x60
#define I8042_COMMAND_PORT 0x64

/* One range 0x60-0x64; 0x61 (port B) is the in-kernel PIT's and never reaches it. */
#define I8042_RANGE_LEN 5

#define I8042_CMD_RESET 0xfe

struct i8042 {
    struct device dev;
    struct exit_hook hook;
};

void i8042_init(struct i8042 *k, struct exit_hook hook);
void i8042_destroy(struct i8042 *k);

#endif
