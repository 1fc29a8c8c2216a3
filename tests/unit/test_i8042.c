/* i8042: the command sequences Linux's i8042/atkbd/psmouse drivers send, IRQs, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "petrel/i8042.h"
#include "fake_irq.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
