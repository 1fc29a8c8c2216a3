/* PC keyboard controller with a keyboard and a minimal PS/2 mouse. */
#include "petrel/i8042.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KBD_ACK       0xfa
#define KBD_BAT_OK    0xaa
#define KBD_ECHO      0xee
#define KBD_ID1       0xab
#define KBD_ID2       0x83 /* MF2 keyboard */
#define MOUSE_ID      0x00 /* plain PS/2 mouse */
#define OUTPORT_RESET 0x01 /* output port bit 0: 0 holds the CPU in reset */
#define OUTPORT_A20   0x02

static struct i8042 *to_i8042(struct device *dev)
{
    return container_of(dev, struct i8042, dev);
}

/*
 * ISA IRQs 1 and 12 are edge-triggered: the line is dropped when a byte is
 * read and raised again while another waits, so each byte is a fresh edge.
 */
static void i8042_update_irq(struct i8042 *k)
{
    bool kbd = false, aux = false;

    if (k->len) {
        if (k->queue[k->head].aux)
            aux = k->ctr & I8042_CTR_AUXINT;
        else
            kbd = k->ctr & I8042_CTR_KBDINT;
    }
    if (kbd != k->kbd_irq_level) {
        k->kbd_irq_level = kbd;
        irq_set(k->kbd_irq, kbd);
    }
    if (aux != k->aux_irq_level) {
        k->aux_irq_level = aux;
        irq_set(k->aux_irq, aux);
    }
}

static void i8042_push(struct i8042 *k, uint8_t data, bool aux)
{
    if (k->len == I8042_QUEUE)
        return; /* a real 8042 has a one-byte buffer; the guest lost this byte either way */
    unsigned tail = (k->head + k->len) % I8042_QUEUE;
    k->queue[tail].data = data;
    k->queue[tail].aux = aux;
    k->len++;
}

static void i8042_reset_machine(struct i8042 *k)
{
    exit_hook_call(&k->hook, VM_EXIT_RESET, PETREL_STATUS_OK);
}

/* A byte the guest sent to the keyboard (port 0x60 with no controller command pending). */
static void i8042_kbd_write(struct i8042 *k, uint8_t v)
{
    if (k->kbd_pending) {
        uint8_t cmd = k->kbd_pending;
        k->kbd_pending = 0;
        i8042_push(k, KBD_ACK, false);
        if (cmd == 0xf0 && v == 0)
            i8042_push(k, 0x02, false); /* "which scancode set?": set 2 */
        return;
    }
    switch (v) {
    case 0xed: /* set LEDs */
    case 0xf3: /* typematic rate */
    case 0xf0: /* scancode set */
        k->kbd_pending = v;
        i8042_push(k, KBD_ACK, false);
        break;
    case 0xee:
        i8042_push(k, KBD_ECHO, false);
        break;
    case 0xf2: /* identify */
        i8042_push(k, KBD_ACK, false);
        i8042_push(k, KBD_ID1, false);
        i8042_push(k, KBD_ID2, false);
        break;
    case 0xff: /* reset and self-test */
        i8042_push(k, KBD_ACK, false);
        i8042_push(k, KBD_BAT_OK, false);
        break;
    default: /* enable, disable, defaults, typematic modes: acknowledged */
        i8042_push(k, KBD_ACK, false);
        break;
    }
}

/* A byte the guest sent to the mouse (through command 0xD4). */
static void i8042_aux_write(struct i8042 *k, uint8_t v)
{
    if (k->aux_pending) {
        k->aux_pending = 0;
        i8042_push(k, KBD_ACK, true);
        return;
    }
    switch (v) {
    case 0xe8: /* set resolution */
    case 0xf3: /* set sample rate */
        k->aux_pending = v;
        i8042_push(k, KBD_ACK, true);
        break;
    case 0xe9: /* status request: stream mode, 4 counts/mm, 100 samples/s */
        i8042_push(k, KBD_ACK, true);
        i8042_push(k, 0x00, true);
        i8042_push(k, 0x02, true);
        i8042_push(k, 100, true);
        break;
    case 0xf2: /* identify */
        i8042_push(k, KBD_ACK, true);
        i8042_push(k, MOUSE_ID, true);
        break;
    case 0xff: /* reset */
        i8042_push(k, KBD_ACK, true);
        i8042_push(k, KBD_BAT_OK, true);
        i8042_push(k, MOUSE_ID, true);
        break;
    default:
        i8042_push(k, KBD_ACK, true);
        break;
    }
}

static void i8042_command(struct i8042 *k, uint8_t cmd)
{
    switch (cmd) {
    case I8042_CMD_READ_CTR:
        i8042_push(k, k->ctr, false);
        break;
    case I8042_CMD_WRITE_CTR:
    case I8042_CMD_WRITE_OUT:
    case I8042_CMD_KBD_LOOP:
    case I8042_CMD_AUX_LOOP:
    case I8042_CMD_AUX_SEND:
        k->pending = cmd;
        break;
    case I8042_CMD_AUX_DIS:
        k->ctr |= I8042_CTR_AUXDIS;
        break;
    case I8042_CMD_AUX_EN:
        k->ctr &= ~I8042_CTR_AUXDIS;
        break;
    case I8042_CMD_AUX_TEST:
    case I8042_CMD_KBD_TEST:
        i8042_push(k, 0x00, false); /* no clock or data line stuck */
        break;
    case I8042_CMD_SELF_TEST:
        k->status |= I8042_STR_SYS;
        i8042_push(k, 0x55, false);
        break;
    case I8042_CMD_KBD_DIS:
        k->ctr |= I8042_CTR_KBDDIS;
        break;
    case I8042_CMD_KBD_EN:
        k->ctr &= ~I8042_CTR_KBDDIS;
        break;
    case I8042_CMD_READ_IN:
        i8042_push(k, 0x80, false); /* keyboard not inhibited */
        break;
    case I8042_CMD_READ_OUT:
        i8042_push(k, OUTPORT_RESET | OUTPORT_A20, false);
        break;
    default:
        /* 0xF0-0xFF pulse output lines low for the bits that are 0; bit 0 is reset. */
        if (cmd >= 0xf0 && !(cmd & OUTPORT_RESET))
            i8042_reset_machine(k);
        break;
    }
}

static void i8042_data(struct i8042 *k, uint8_t v)
{
    uint8_t cmd = k->pending;

    k->pending = 0;
    switch (cmd) {
    case I8042_CMD_WRITE_CTR:
        k->ctr = v;
        break;
    case I8042_CMD_WRITE_OUT:
        if (!(v & OUTPORT_RESET))
            i8042_reset_machine(k);
        break;
    case I8042_CMD_KBD_LOOP:
        i8042_push(k, v, false);
        break;
    case I8042_CMD_AUX_LOOP:
        i8042_push(k, v, true);
        break;
    case I8042_CMD_AUX_SEND:
        i8042_aux_write(k, v);
        break;
    default:
        i8042_kbd_write(k, v);
        break;
    }
}

static uint64_t i8042_read(struct device *dev, uint64_t offset, unsigned size)
{
    struct i8042 *k = to_i8042(dev);
    uint8_t v = 0;
    (void)size;

    if (offset == 0) {
        if (k->len) {
            v = k->queue[k->head].data;
            k->head = (k->head + 1) % I8042_QUEUE;
            k->len--;
        }
        /* Drop the line so the next byte (if any) raises a new edge. */
        if (k->kbd_irq_level) {
            k->kbd_irq_level = false;
            irq_set(k->kbd_irq, false);
        }
        if (k->aux_irq_level) {
            k->aux_irq_level = false;
            irq_set(k->aux_irq, false);
        }
    } else if (offset == I8042_COMMAND_PORT - I8042_DATA_PORT) {
        v = k->status | I8042_STR_KEYLOCK;
        if (k->len) {
            v |= I8042_STR_OBF;
            if (k->queue[k->head].aux)
                v |= I8042_STR_AUXDATA;
        }
    } else {
        return 0xff; /* 0x61-0x63: not ours */
    }
    i8042_update_irq(k);
    return v;
}

static void i8042_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct i8042 *k = to_i8042(dev);
    (void)size;

    if (offset == 0) {
        k->status &= ~I8042_STR_CMDDAT;
        i8042_data(k, (uint8_t)value);
    } else if (offset == I8042_COMMAND_PORT - I8042_DATA_PORT) {
        k->status |= I8042_STR_CMDDAT;
        i8042_command(k, (uint8_t)value);
    }
    i8042_update_irq(k);
}

static void i8042_reset(struct device *dev)
{
    struct i8042 *k = to_i8042(dev);

    k->ctr = I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_XLATE | I8042_CTR_AUXDIS;
    k->status = I8042_STR_SYS;
    k->pending = k->kbd_pending = k->aux_pending = 0;
    k->head = k->len = 0;
    i8042_update_irq(k);
}

static const struct dev_ops i8042_ops = {
    .read = i8042_read,
    .write = i8042_write,
    .reset = i8042_reset,
};

void i8042_init(struct i8042 *k, struct exit_hook hook, struct irq_line *kbd_irq,
                struct irq_line *aux_irq)
{
    memset(k, 0, sizeof(*k));
    device_init(&k->dev, "i8042", &i8042_ops);
    k->hook = hook;
    k->kbd_irq = kbd_irq;
    k->aux_irq = aux_irq;
    i8042_reset(&k->dev);
}

void i8042_destroy(struct i8042 *k)
{
    device_destroy(&k->dev);
}

size_t i8042_inject(struct i8042 *k, const uint8_t *bytes, size_t len)
{
    size_t n = 0;

    pthread_mutex_lock(&k->dev.lock);
    while (n < len && k->len < I8042_QUEUE)
        i8042_push(k, bytes[n++], false);
    i8042_update_irq(k);
    pthread_mutex_unlock(&k->dev.lock);
    return n;
}

/* The saved queue-aux is a bit per queued byte. */
_Static_assert(I8042_QUEUE <= 32, "queue-aux is one u32 cell");

int i8042_save(const struct i8042 *k, struct state_out *out)
{
    uint8_t data[I8042_QUEUE];
    uint32_t aux = 0; /* bit i: byte i is the mouse's */

    for (unsigned i = 0; i < k->len; i++) {
        unsigned at = (k->head + i) % I8042_QUEUE;
        data[i] = k->queue[at].data;
        aux |= (uint32_t)k->queue[at].aux << i;
    }
    state_put_u32(out, "ctr", k->ctr);
    state_put_u32(out, "status-byte", k->status);
    state_put_u32(out, "pending", k->pending);
    state_put_u32(out, "kbd-pending", k->kbd_pending);
    state_put_u32(out, "aux-pending", k->aux_pending);
    state_put_u32(out, "queue-count", k->len);
    state_put_bytes(out, "queue", data, k->len);
    state_put_u32(out, "queue-aux", aux);
    return out->err;
}

/* The commands that wait for a data byte (pending), and the keyboard's and mouse's. */
static const uint8_t data_cmds[] = {I8042_CMD_WRITE_CTR, I8042_CMD_WRITE_OUT, I8042_CMD_KBD_LOOP,
                                    I8042_CMD_AUX_LOOP, I8042_CMD_AUX_SEND};
static const uint8_t kbd_arg_cmds[] = {0xed, 0xf3, 0xf0};
static const uint8_t aux_arg_cmds[] = {0xe8, 0xf3};

/* Reads a command that must be 0 (none) or one of the n in valid. */
static uint8_t get_pending(struct state_in *in, const char *name, const uint8_t *valid, size_t n)
{
    uint8_t v;

    state_get_u8(in, name, &v);
    if (v && !memchr(valid, v, n))
        state_invalid(in, "property '%s' is %#x, not a command that waits for a byte", name, v);
    return v;
}

int i8042_restore(struct i8042 *k, struct state_in *in)
{
    uint8_t ctr, data[I8042_QUEUE];
    uint32_t status, count, aux;

    state_get_u8(in, "ctr", &ctr);
    state_get_bits(in, "status-byte", I8042_STR_SYS | I8042_STR_CMDDAT, &status);
    uint8_t pending = get_pending(in, "pending", data_cmds, sizeof(data_cmds));
    uint8_t kbd_pending = get_pending(in, "kbd-pending", kbd_arg_cmds, sizeof(kbd_arg_cmds));
    uint8_t aux_pending = get_pending(in, "aux-pending", aux_arg_cmds, sizeof(aux_arg_cmds));
    state_get_u32(in, "queue-count", &count);
    if (count > I8042_QUEUE) {
        state_invalid(in, "property 'queue-count' is %u, more than %u", count, I8042_QUEUE);
        count = 0;
    }
    state_get_bytes(in, "queue", data, count);
    state_get_bits(in, "queue-aux", count < 32 ? (1u << count) - 1 : UINT32_MAX, &aux);
    if (in->err)
        return in->err;

    pthread_mutex_lock(&k->dev.lock);
    k->ctr = ctr;
    k->status = (uint8_t)status;
    k->pending = pending;
    k->kbd_pending = kbd_pending;
    k->aux_pending = aux_pending;
    for (unsigned i = 0; i < count; i++) {
        k->queue[i].data = data[i];
        k->queue[i].aux = aux >> i & 1;
    }
    k->head = 0;
    k->len = count;
    i8042_update_irq(k);
    pthread_mutex_unlock(&k->dev.lock);
    return 0;
}

/* The machine's i8042 (hwdev.h): keyboard IRQ 1, mouse IRQ 12, the keyboard role. */
struct i8042_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct kvm_irq_gsi kbd_irq, aux_irq;
    struct i8042 kbc;
};

static int i8042_keys(void *dev, const uint8_t *scancodes, size_t len)
{
    return i8042_inject(dev, scancodes, len) == len ? 0 : -ENOSPC;
}

static int i8042_hw_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct i8042_hw *d = container_of(hw, struct i8042_hw, hw);
    const struct hwdev_host *host = hw->host;

    kvm_irq_gsi_init(&d->kbd_irq, host->vm_fd, I8042_KBD_IRQ);
    kvm_irq_gsi_init(&d->aux_irq, host->vm_fd, I8042_AUX_IRQ);
    i8042_init(&d->kbc, host->exit, &d->kbd_irq.line, &d->aux_irq.line);
    int ret = bus_register(host->pio, I8042_DATA_PORT, I8042_RANGE_LEN, &d->kbc.dev);
    if (ret) {
        i8042_destroy(&d->kbc);
        return err_set(eb, ret, "cannot register the i8042: %s", strerror(-ret));
    }
    host->roles->keys = i8042_keys;
    host->roles->keys_dev = &d->kbc;
    return 0;
}

static int i8042_hw_save(struct hwdev *hw, struct state_out *out)
{
    return i8042_save(&container_of(hw, struct i8042_hw, hw)->kbc, out);
}

static int i8042_hw_restore(struct hwdev *hw, struct state_in *in)
{
    return i8042_restore(&container_of(hw, struct i8042_hw, hw)->kbc, in);
}

static void i8042_hw_destroy(struct hwdev *hw)
{
    struct i8042_hw *d = container_of(hw, struct i8042_hw, hw);
    if (hw->realized) {
        hw->host->roles->keys = NULL;
        (void)bus_unregister(hw->host->pio, I8042_DATA_PORT);
        i8042_destroy(&d->kbc);
    }
}

const struct hwdev_ops i8042_kbc = {
    .type = "i8042",
    .compatible = I8042_STATE_COMPATIBLE,
    .size = sizeof(struct i8042_hw),
    .name = "i8042",
    .realize = i8042_hw_realize,
    .save = i8042_hw_save,
    .restore = i8042_hw_restore,
    .destroy = i8042_hw_destroy,
};
