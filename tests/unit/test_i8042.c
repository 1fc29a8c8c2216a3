/* i8042: the command sequences Linux's i8042/atkbd/psmouse drivers send, IRQs, reset. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "petrel/i8042.h"
#include "fake_irq.h"
#include "fake_state.h"

struct fixture {
    struct i8042 k;
    struct fake_irq kbd, aux;
    unsigned resets;
};

static void on_exit_request(void *ctx, enum vm_exit_reason reason, int status)
{
    struct fixture *f = ctx;
    assert_int_equal(reason, VM_EXIT_RESET);
    assert_int_equal(status, 0);
    f->resets++;
}

static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof(*f));
    f->kbd.line.set_level = fake_irq_set;
    f->aux.line.set_level = fake_irq_set;
    i8042_init(&f->k, (struct exit_hook){.fn = on_exit_request, .ctx = f}, &f->kbd.line,
               &f->aux.line);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    i8042_destroy(&f->k);
    test_free(f);
    return 0;
}

static uint8_t inb(struct fixture *f, uint16_t port)
{
    uint8_t v;
    assert_non_null(f->k.dev.ops->read);
    v = (uint8_t)f->k.dev.ops->read(&f->k.dev, port - I8042_DATA_PORT, 1);
    return v;
}

static void outb(struct fixture *f, uint16_t port, uint8_t v)
{
    f->k.dev.ops->write(&f->k.dev, port - I8042_DATA_PORT, v, 1);
}

/* Reads one byte the way Linux does: wait for OBF in the status, then read data. */
static uint8_t read_data(struct fixture *f, bool expect_aux)
{
    uint8_t st = inb(f, I8042_COMMAND_PORT);
    assert_true(st & I8042_STR_OBF);
    assert_int_equal(!!(st & I8042_STR_AUXDATA), expect_aux);
    return inb(f, I8042_DATA_PORT);
}

static void assert_empty(struct fixture *f)
{
    assert_false(inb(f, I8042_COMMAND_PORT) & I8042_STR_OBF);
}

static void controller_probe(void **state)
{
    struct fixture *f = *state;

    /* Linux: flush, read CTR, self-test, keyboard test, write CTR back. */
    assert_empty(f);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_READ_CTR);
    uint8_t ctr = read_data(f, false);
    assert_true(ctr & I8042_CTR_XLATE);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_SELF_TEST);
    assert_int_equal(read_data(f, false), 0x55);
    assert_true(inb(f, I8042_COMMAND_PORT) & I8042_STR_SYS);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_KBD_TEST);
    assert_int_equal(read_data(f, false), 0x00);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_WRITE_CTR);
    assert_true(inb(f, I8042_COMMAND_PORT) & I8042_STR_CMDDAT);
    outb(f, I8042_DATA_PORT, 0x47);
    assert_false(inb(f, I8042_COMMAND_PORT) & I8042_STR_CMDDAT);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_READ_CTR);
    assert_int_equal(read_data(f, false), 0x47);
    assert_empty(f);
}

static void aux_port_toggles_and_loops(void **state)
{
    struct fixture *f = *state;

    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_EN);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_READ_CTR);
    assert_false(read_data(f, false) & I8042_CTR_AUXDIS);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_DIS);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_READ_CTR);
    assert_true(read_data(f, false) & I8042_CTR_AUXDIS);
    /* AUX loopback comes back marked as mouse data. */
    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_LOOP);
    outb(f, I8042_DATA_PORT, 0x5a);
    assert_int_equal(read_data(f, true), 0x5a);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_TEST);
    assert_int_equal(read_data(f, false), 0x00);
}

static void keyboard_reset_identify_leds(void **state)
{
    struct fixture *f = *state;

    outb(f, I8042_DATA_PORT, 0xff);
    assert_int_equal(read_data(f, false), 0xfa);
    assert_int_equal(read_data(f, false), 0xaa);
    outb(f, I8042_DATA_PORT, 0xf2);
    assert_int_equal(read_data(f, false), 0xfa);
    assert_int_equal(read_data(f, false), 0xab);
    assert_int_equal(read_data(f, false), 0x83);
    outb(f, I8042_DATA_PORT, 0xed); /* LEDs take an argument: two ACKs */
    assert_int_equal(read_data(f, false), 0xfa);
    outb(f, I8042_DATA_PORT, 0x07);
    assert_int_equal(read_data(f, false), 0xfa);
    outb(f, I8042_DATA_PORT, 0xf0); /* get the scancode set */
    outb(f, I8042_DATA_PORT, 0x00);
    assert_int_equal(read_data(f, false), 0xfa);
    assert_int_equal(read_data(f, false), 0xfa);
    assert_int_equal(read_data(f, false), 0x02);
    outb(f, I8042_DATA_PORT, 0xee);
    assert_int_equal(read_data(f, false), 0xee);
    assert_empty(f);
}

static void mouse_reset_and_identify(void **state)
{
    struct fixture *f = *state;

    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_SEND);
    outb(f, I8042_DATA_PORT, 0xff);
    assert_int_equal(read_data(f, true), 0xfa);
    assert_int_equal(read_data(f, true), 0xaa);
    assert_int_equal(read_data(f, true), 0x00);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_SEND);
    outb(f, I8042_DATA_PORT, 0xf3); /* sample rate + argument */
    assert_int_equal(read_data(f, true), 0xfa);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_SEND);
    outb(f, I8042_DATA_PORT, 200);
    assert_int_equal(read_data(f, true), 0xfa);
    assert_empty(f);
}

static void irq1_edge_per_byte(void **state)
{
    struct fixture *f = *state;

    /* Default CTR enables the keyboard interrupt. */
    uint8_t keys[] = {0x1e, 0x9e, 0x30};
    assert_int_equal(i8042_inject(&f->k, keys, 3), 3);
    assert_true(f->kbd.level);
    assert_int_equal(f->kbd.raises, 1);
    assert_int_equal(inb(f, I8042_DATA_PORT), 0x1e);
    assert_int_equal(f->kbd.raises, 2); /* dropped and raised again for the next byte */
    assert_int_equal(inb(f, I8042_DATA_PORT), 0x9e);
    assert_int_equal(inb(f, I8042_DATA_PORT), 0x30);
    assert_false(f->kbd.level);
    assert_int_equal(f->kbd.raises, 3);
    assert_false(f->aux.level);

    /* With the interrupt disabled in the CTR, no edge. */
    outb(f, I8042_COMMAND_PORT, I8042_CMD_WRITE_CTR);
    outb(f, I8042_DATA_PORT, 0x44);
    i8042_inject(&f->k, keys, 1);
    assert_false(f->kbd.level);
    assert_int_equal(f->kbd.raises, 3);
}

static void irq12_for_mouse_bytes(void **state)
{
    struct fixture *f = *state;

    outb(f, I8042_COMMAND_PORT, I8042_CMD_WRITE_CTR);
    outb(f, I8042_DATA_PORT, I8042_CTR_KBDINT | I8042_CTR_AUXINT | I8042_CTR_XLATE);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_SEND);
    outb(f, I8042_DATA_PORT, 0xf2);
    assert_true(f->aux.level);
    assert_false(f->kbd.level);
    assert_int_equal(read_data(f, true), 0xfa);
    assert_int_equal(read_data(f, true), 0x00);
    assert_false(f->aux.level);
    assert_int_equal(f->aux.raises, 2);
}

static void reset_paths(void **state)
{
    struct fixture *f = *state;

    outb(f, I8042_COMMAND_PORT, 0xff); /* pulse no line: nothing */
    assert_int_equal(f->resets, 0);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_RESET);
    assert_int_equal(f->resets, 1);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_WRITE_OUT);
    outb(f, I8042_DATA_PORT, 0x03); /* reset line kept high */
    assert_int_equal(f->resets, 1);
    outb(f, I8042_COMMAND_PORT, I8042_CMD_WRITE_OUT);
    outb(f, I8042_DATA_PORT, 0x02); /* reset line low */
    assert_int_equal(f->resets, 2);
}

static void queue_overflow_is_bounded(void **state)
{
    struct fixture *f = *state;
    uint8_t many[100];

    memset(many, 0x1c, sizeof(many));
    assert_int_equal(i8042_inject(&f->k, many, sizeof(many)), I8042_QUEUE);
    for (unsigned i = 0; i < I8042_QUEUE; i++)
        assert_int_equal(read_data(f, false), 0x1c);
    assert_empty(f);
    assert_int_equal(inb(f, I8042_DATA_PORT), 0x00); /* reading an empty buffer is harmless */
}

/* ---- save and restore ---- */

static uint8_t tree[STATE_TEST_TREE];

static void save_i8042(struct state_out *out, void *ctx)
{
    state_begin(out, "i8042", I8042_STATE_COMPATIBLE);
    assert_int_equal(i8042_save(ctx, out), 0);
    state_end(out);
}

static int restore_i8042(struct fixture *f, struct errbuf *eb)
{
    struct state_in root = state_test_root(tree, eb), in;
    if (state_open(&root, "i8042", I8042_STATE_COMPATIBLE, &in))
        return in.err;
    return i8042_restore(&f->k, &in);
}

static struct fixture *fixture_new(void)
{
    void *p = NULL;
    assert_int_equal(setup(&p), 0);
    return p;
}

static void fixture_free(struct fixture *f)
{
    void *p = f;
    assert_int_equal(teardown(&p), 0);
}

/* The same read on both controllers: the same byte and the same lines. */
static void same_inb(struct fixture *a, struct fixture *b, uint16_t port)
{
    assert_int_equal(inb(a, port), inb(b, port));
    assert_int_equal(a->kbd.level, b->kbd.level);
    assert_int_equal(a->aux.level, b->aux.level);
}

static void both_outb(struct fixture *a, struct fixture *b, uint16_t port, uint8_t v)
{
    outb(a, port, v);
    outb(b, port, v);
}

/*
 * Keyboard and mouse bytes queued around the ring's end, and a controller,
 * keyboard and mouse command each waiting for its byte: the restored
 * controller reads the same and answers the next bytes the same way.
 */
static void save_restore_round_trip(void **state)
{
    struct fixture *f = *state;
    uint8_t keys[38];
    for (unsigned i = 0; i < sizeof(keys); i++)
        keys[i] = (uint8_t)(0x10 + i);

    outb(f, I8042_COMMAND_PORT, I8042_CMD_WRITE_CTR);
    outb(f, I8042_DATA_PORT, I8042_CTR_KBDINT | I8042_CTR_AUXINT | I8042_CTR_SYS);
    assert_int_equal(i8042_inject(&f->k, keys, 30), 30);
    for (unsigned i = 0; i < 28; i++)
        assert_int_equal(read_data(f, false), keys[i]);
    assert_int_equal(i8042_inject(&f->k, keys + 30, 8), 8); /* past the ring's end */
    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_SEND);
    outb(f, I8042_DATA_PORT, 0xf2); /* the mouse answers ACK and its ID */
    outb(f, I8042_DATA_PORT, 0xed); /* the keyboard waits for the LEDs */
    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_SEND);
    outb(f, I8042_DATA_PORT, 0xf3);                  /* the mouse waits for a sample rate */
    outb(f, I8042_COMMAND_PORT, I8042_CMD_AUX_SEND); /* the controller waits for its byte */
    assert_true(f->kbd.level);

    assert_int_equal(state_test_write(tree, sizeof(tree), save_i8042, &f->k), 0);
    struct fixture *n = fixture_new();
    struct errbuf eb = {0};
    assert_int_equal(restore_i8042(n, &eb), 0);
    assert_true(n->kbd.level); /* the first queued byte is the keyboard's */
    assert_false(n->aux.level);

    /* The queue: 2 + 8 keys, the mouse's ACK, ID and ACK, the keyboard's ACK; then empty. */
    for (unsigned i = 0; i < 15; i++) {
        same_inb(f, n, I8042_COMMAND_PORT);
        same_inb(f, n, I8042_DATA_PORT);
    }
    same_inb(f, n, I8042_COMMAND_PORT);
    assert_false(inb(n, I8042_COMMAND_PORT) & I8042_STR_OBF);
    /* The next bytes reach the commands that waited: the mouse's rate, then the LEDs. */
    both_outb(f, n, I8042_DATA_PORT, 100);
    assert_true(n->aux.level);
    same_inb(f, n, I8042_COMMAND_PORT);
    same_inb(f, n, I8042_DATA_PORT);
    both_outb(f, n, I8042_DATA_PORT, 0x07);
    assert_true(n->kbd.level);
    same_inb(f, n, I8042_COMMAND_PORT);
    same_inb(f, n, I8042_DATA_PORT);
    both_outb(f, n, I8042_COMMAND_PORT, I8042_CMD_READ_CTR);
    same_inb(f, n, I8042_DATA_PORT);
    same_inb(f, n, I8042_COMMAND_PORT);
    fixture_free(n);
}

/* Saves f, applies one hostile edit, and checks the refusal names want. */
static void expect_refused(struct fixture *f, const char *prop, uint32_t v, const char *want)
{
    assert_int_equal(state_test_write(tree, sizeof(tree), save_i8042, &f->k), 0);
    assert_int_equal(state_test_set_u32(tree, "/i8042", prop, v), 0);
    struct fixture *n = fixture_new();
    struct errbuf eb = {0};
    assert_int_equal(restore_i8042(n, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, want));
    /* Still the controller i8042_init() made, and it works. */
    assert_false(n->kbd.level);
    assert_int_equal(inb(n, I8042_COMMAND_PORT), I8042_STR_SYS | I8042_STR_KEYLOCK);
    outb(n, I8042_COMMAND_PORT, I8042_CMD_READ_CTR);
    assert_int_equal(read_data(n, false),
                     I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_XLATE | I8042_CTR_AUXDIS);
    fixture_free(n);
}

static void restore_refuses_hostile(void **state)
{
    struct fixture *f = *state;
    uint8_t keys[3] = {1, 2, 3};
    assert_int_equal(i8042_inject(&f->k, keys, 3), 3);

    expect_refused(f, "queue-count", I8042_QUEUE + 1, "'queue-count' is 33");
    expect_refused(f, "queue-count", 2, "property 'queue' has 3 bytes, not 2");
    expect_refused(f, "queue-aux", 0x8, "'queue-aux' is 0x8");
    expect_refused(f, "status-byte", I8042_STR_OBF, "'status-byte'");
    expect_refused(f, "pending", 0x42, "'pending' is 0x42");
    expect_refused(f, "kbd-pending", 0xff, "'kbd-pending'");
    expect_refused(f, "aux-pending", 0xed, "'aux-pending'");
    expect_refused(f, "ctr", 0x100, "'ctr'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(controller_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(aux_port_toggles_and_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(keyboard_reset_identify_leds, setup, teardown),
        cmocka_unit_test_setup_teardown(mouse_reset_and_identify, setup, teardown),
        cmocka_unit_test_setup_teardown(irq1_edge_per_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(irq12_for_mouse_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(queue_overflow_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(save_restore_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(restore_refuses_hostile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
