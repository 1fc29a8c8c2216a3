/*
 * The PC keyboard controller (8042) with a keyboard and a minimal PS/2 mouse,
 * enough for Linux's i8042, atkbd and psmouse drivers to probe cleanly: the
 * controller self-test, the command byte, the interface tests, AUX loopback,
 * keyboard and mouse reset/identify, IRQ 1 and IRQ 12.
 *
 * Command 0xFE (pulse the reset line), or clearing the reset bit through the
 * output port, resets the machine: petrel ends with status 0.
 * i8042_inject() queues keyboard scancodes (the API's SendCtrlAltDel).
 */
#ifndef PETREL_I8042_H
#define PETREL_I8042_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/bus.h"
#include "petrel/hwdev.h"
#include "petrel/exit.h"
#include "petrel/irq.h"
#include "petrel/state.h"

#define I8042_DATA_PORT    0x60
#define I8042_COMMAND_PORT 0x64
/* One range 0x60-0x64; 0x61 (port B) is the in-kernel PIT's and never reaches it. */
#define I8042_RANGE_LEN 5
#define I8042_KBD_IRQ   1
#define I8042_AUX_IRQ   12

/* Status register bits. */
#define I8042_STR_OBF     0x01 /* output buffer full */
#define I8042_STR_SYS     0x04 /* system flag: self-test passed */
#define I8042_STR_CMDDAT  0x08 /* last write was to the command port */
#define I8042_STR_KEYLOCK 0x10 /* 1 = keyboard not inhibited */
#define I8042_STR_AUXDATA 0x20 /* the output byte is from the mouse */

/* Command byte (CTR) bits. */
#define I8042_CTR_KBDINT 0x01
#define I8042_CTR_AUXINT 0x02
#define I8042_CTR_SYS    0x04
#define I8042_CTR_KBDDIS 0x10
#define I8042_CTR_AUXDIS 0x20
#define I8042_CTR_XLATE  0x40

#define I8042_CMD_READ_CTR  0x20
#define I8042_CMD_WRITE_CTR 0x60
#define I8042_CMD_AUX_DIS   0xa7
#define I8042_CMD_AUX_EN    0xa8
#define I8042_CMD_AUX_TEST  0xa9
#define I8042_CMD_SELF_TEST 0xaa
#define I8042_CMD_KBD_TEST  0xab
#define I8042_CMD_KBD_DIS   0xad
#define I8042_CMD_KBD_EN    0xae
#define I8042_CMD_READ_IN   0xc0
#define I8042_CMD_READ_OUT  0xd0
#define I8042_CMD_WRITE_OUT 0xd1
#define I8042_CMD_KBD_LOOP  0xd2
#define I8042_CMD_AUX_LOOP  0xd3
#define I8042_CMD_AUX_SEND  0xd4
#define I8042_CMD_RESET     0xfe

#define I8042_QUEUE 32

struct i8042 {
    struct device dev; /* dev.lock guards everything below */
    struct exit_hook hook;
    struct irq_line *kbd_irq;
    struct irq_line *aux_irq;

    uint8_t ctr;         /* controller command byte */
    uint8_t status;      /* SYS and CMDDAT bits; OBF/AUXDATA come from the queue */
    uint8_t pending;     /* controller command waiting for its data byte, or 0 */
    uint8_t kbd_pending; /* keyboard command waiting for its argument, or 0 */
    uint8_t aux_pending; /* mouse command waiting for its argument, or 0 */
    bool kbd_irq_level, aux_irq_level;

    /* Output buffer: bytes for the guest, each from the keyboard or the mouse. */
    struct {
        uint8_t data;
        bool aux;
    } queue[I8042_QUEUE];
    unsigned head, len;
};

void i8042_init(struct i8042 *k, struct exit_hook hook, struct irq_line *kbd_irq,
                struct irq_line *aux_irq);
void i8042_destroy(struct i8042 *k);

/* Queues keyboard bytes (scancodes) for the guest. Returns how many fit. */
size_t i8042_inject(struct i8042 *k, const uint8_t *bytes, size_t len);

#define I8042_STATE_COMPATIBLE "petrel,i8042-v1"

/*
 * Writes the command byte, status, the commands waiting for their data byte
 * and the output queue into a node the caller began (I8042_STATE_COMPATIBLE),
 * with the VM paused. Returns out->err.
 */
int i8042_save(const struct i8042 *k, struct state_out *out) MUST_CHECK;

/*
 * Loads what i8042_save() wrote into a controller set up by i8042_init(),
 * refusing (in->err, with the property named) any value it cannot hold, in
 * which case k is unchanged. The IRQ lines follow the restored queue.
 */
int i8042_restore(struct i8042 *k, struct state_in *in) MUST_CHECK;

/* The i8042 (0x60-0x64, IRQs 1 and 12) in the machine table (machine.c). */
extern const struct hwdev_ops i8042_kbc;

#endif
