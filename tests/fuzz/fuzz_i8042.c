/*
 * Fuzz target: the i8042 keyboard controller's register file, as a guest drives
 * it through ports 0x60-0x64 (and the API injects keys).
 *
 * Input format: ops, each starting with one byte OP:
 *   OP >> 5 == 0  write the data port (0x60) with the next byte
 *   OP >> 5 == 1  write the command port (0x64) with the next byte
 *   OP >> 5 == 2  read the data port
 *   OP >> 5 == 3  read the status port
 *   OP >> 5 == 4  inject OP & 31 scancodes (the next bytes)
 *   OP >> 5 == 5  access ports 0x61-0x63 (not the controller's)
 *   OP >> 5 == 6  device reset
 *   OP >> 5 == 7  save, and restore into a fresh controller that carries on
 *
 * Checked after every op: the output queue within its bounds; each IRQ line
 * high exactly when the byte at the head is the keyboard's (mouse's) and the
 * command byte enables its interrupt; the status register's OBF/AUXDATA bits
 * matching the queue; a byte read being the head that status described; a save
 * restoring to the same registers and queue. A machine reset (command 0xFE) is
 * counted, never fatal.
 */
#include <string.h>

#include "fuzz.h"
#include "petrel/i8042.h"
#include "fake_irq.h"
#include "fake_state.h"

struct rig {
    struct i8042 k;
    struct fake_irq kbd, aux;
    unsigned resets;
};

static void on_exit_request(void *ctx, enum vm_exit_reason reason, int status)
{
    struct rig *r = ctx;
    FUZZ_CHECK(reason == VM_EXIT_RESET && status == 0);
    r->resets++;
}

static void rig_init(struct rig *r)
{
    memset(&r->kbd, 0, sizeof(r->kbd));
    memset(&r->aux, 0, sizeof(r->aux));
    r->kbd.line.set_level = fake_irq_set;
    r->aux.line.set_level = fake_irq_set;
    i8042_init(&r->k, (struct exit_hook){.fn = on_exit_request, .ctx = r}, &r->kbd.line,
               &r->aux.line);
}

static uint8_t inb(struct rig *r, unsigned port)
{
    return (uint8_t)r->k.dev.ops->read(&r->k.dev, port - I8042_DATA_PORT, 1);
}

static void outb(struct rig *r, unsigned port, uint8_t v)
{
    r->k.dev.ops->write(&r->k.dev, port - I8042_DATA_PORT, v, 1);
}

static void check(struct rig *r)
{
    const struct i8042 *k = &r->k;
    FUZZ_CHECK(k->len <= I8042_QUEUE && k->head < I8042_QUEUE);
    bool aux_head = k->len && k->queue[k->head].aux;
    FUZZ_CHECK(r->kbd.level == (k->len && !aux_head && (k->ctr & I8042_CTR_KBDINT)));
    FUZZ_CHECK(r->aux.level == (aux_head && (k->ctr & I8042_CTR_AUXINT)));
    FUZZ_CHECK(r->kbd.level == k->kbd_irq_level && r->aux.level == k->aux_irq_level);
}

static void fill(struct state_out *out, void *ctx)
{
    state_begin(out, "i8042", I8042_STATE_COMPATIBLE);
    FUZZ_CHECK(i8042_save(ctx, out) == 0);
    state_end(out);
}

/* Saves r's controller and restores it into a fresh one that replaces it. */
static void save_restore(struct rig *r)
{
    static uint8_t tree[STATE_TEST_TREE];
    struct errbuf eb = {0};
    FUZZ_CHECK(state_test_write(tree, sizeof(tree), fill, &r->k) == 0);

    struct i8042 old = r->k;
    i8042_destroy(&r->k);
    unsigned resets = r->resets;
    rig_init(r);
    struct state_in root = state_test_root(tree, &eb), node;
    FUZZ_CHECK(state_open(&root, "i8042", I8042_STATE_COMPATIBLE, &node) == 0);
    FUZZ_CHECK(i8042_restore(&r->k, &node) == 0);
    r->resets = resets;
    FUZZ_CHECK(r->k.ctr == old.ctr && r->k.status == old.status && r->k.pending == old.pending);
    FUZZ_CHECK(r->k.kbd_pending == old.kbd_pending && r->k.aux_pending == old.aux_pending);
    FUZZ_CHECK(r->k.len == old.len);
    for (unsigned i = 0; i < old.len; i++) {
        unsigned a = (old.head + i) % I8042_QUEUE, b = (r->k.head + i) % I8042_QUEUE;
        FUZZ_CHECK(r->k.queue[b].data == old.queue[a].data);
        FUZZ_CHECK(r->k.queue[b].aux == old.queue[a].aux);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rig r;
    size_t i = 0;

    rig_init(&r);
    r.resets = 0;
    while (i < size) {
        uint8_t op = data[i++];
        uint8_t arg = i < size ? data[i] : 0;
        switch (op >> 5) {
        case 0:
            outb(&r, I8042_DATA_PORT, arg);
            i++;
            break;
        case 1:
            outb(&r, I8042_COMMAND_PORT, arg);
            i++;
            break;
        case 2: {
            uint8_t st = inb(&r, I8042_COMMAND_PORT);
            bool had = r.k.len != 0;
            uint8_t head = had ? r.k.queue[r.k.head].data : 0;
            FUZZ_CHECK(!!(st & I8042_STR_OBF) == had);
            uint8_t v = inb(&r, I8042_DATA_PORT);
            FUZZ_CHECK(!had || v == head);
            break;
        }
        case 3: {
            uint8_t st = inb(&r, I8042_COMMAND_PORT);
            FUZZ_CHECK(!!(st & I8042_STR_OBF) == (r.k.len != 0));
            FUZZ_CHECK(!!(st & I8042_STR_AUXDATA) == (r.k.len && r.k.queue[r.k.head].aux));
            break;
        }
        case 4: {
            size_t n = op & 31;
            if (n > size - i)
                n = size - i;
            unsigned before = r.k.len;
            size_t took = i8042_inject(&r.k, data + i, n);
            FUZZ_CHECK(took <= n && r.k.len == before + took);
            i += n;
            break;
        }
        case 5:
            FUZZ_CHECK(inb(&r, I8042_DATA_PORT + 1 + (op & 1)) == 0xff);
            outb(&r, I8042_DATA_PORT + 1 + (op & 1), arg);
            i++;
            break;
        case 6:
            r.k.dev.ops->reset(&r.k.dev);
            break;
        case 7:
            save_restore(&r);
            break;
        }
        check(&r);
    }
    i8042_destroy(&r.k);
    return 0;
}
