/*
 * The device model's list: steps run in machine order, teardown last first from
 * any point of a failed realize, save/restore through named state nodes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fake_state.h"
#include "petrel/hwdev.h"

/* Every call, as "step:name" lines, in order. */
static char calls[1024];

static void record(const char *step, const struct hwdev *d)
{
    size_t n = strlen(calls);
    snprintf(calls + n, sizeof(calls) - n, "%s:%s ", step, d->name);
}

struct toy {
    struct hwdev dev;
    uint32_t reg;
    int fail_realize; /* realize returns this */
    int was_realized; /* what destroy saw */
};

static int toy_realize(struct hwdev *dev, struct errbuf *eb)
{
    struct toy *t = container_of(dev, struct toy, dev);
    record("realize", dev);
    return t->fail_realize ? err_set(eb, t->fail_realize, "%s would not", dev->name) : 0;
}

static void toy_reset(struct hwdev *dev)
{
    record("reset", dev);
    container_of(dev, struct toy, dev)->reg = 0;
}

static void toy_pause(struct hwdev *dev)
{
    record("pause", dev);
}

static void toy_resume(struct hwdev *dev)
{
    record("resume", dev);
}

static int toy_save(struct hwdev *dev, struct state_out *out)
{
    record("save", dev);
    state_put_u32(out, "reg", container_of(dev, struct toy, dev)->reg);
    return out->err;
}

static int toy_restore(struct hwdev *dev, struct state_in *in)
{
    record("restore", dev);
    uint32_t v;
    state_get_u32(in, "reg", &v);
    if (!in->err && v > 1000)
        return state_invalid(in, "reg %u is more than 1000", v);
    if (!in->err)
        container_of(dev, struct toy, dev)->reg = v;
    return in->err;
}

static void toy_destroy(struct hwdev *dev)
{
    record(dev->realized ? "destroy-realized" : "destroy-created", dev);
}

static const struct hwdev_ops toy_ops = {
    .type = "toy",
    .compatible = "petrel,toy-v1",
    .realize = toy_realize,
    .reset = toy_reset,
    .pause = toy_pause,
    .resume = toy_resume,
    .save = toy_save,
    .restore = toy_restore,
    .destroy = toy_destroy,
};

/* A device with no state and no hooks: the list skips what it lacks. */
static const struct hwdev_ops bare_ops = {.type = "bare", .destroy = toy_destroy};

static struct toy *add(struct hwdev_list *l, const struct hwdev_ops *ops, const char *name)
{
    struct toy *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    hwdev_init(&t->dev, ops, NULL, name);
    hwdev_list_add(l, &t->dev);
    return t;
}

static void test_order(void **unused)
{
    (void)unused;
    struct hwdev_list l;
    struct errbuf eb = {0};
    calls[0] = 0;
    hwdev_list_init(&l);
    add(&l, &toy_ops, "a");
    add(&l, &bare_ops, "b");
    add(&l, &toy_ops, "c");
    assert_int_equal(l.count, 3);
    assert_ptr_equal(hwdev_list_find(&l, "c"), l.head->next->next);
    assert_null(hwdev_list_find(&l, "d"));
    assert_int_equal(hwdev_list_realize(&l, &eb), 0);
    hwdev_list_pause(&l);
    hwdev_list_resume(&l);
    hwdev_list_reset(&l);
    hwdev_list_destroy(&l);
    assert_string_equal(calls, "realize:a realize:c pause:a pause:c resume:a resume:c "
                               "reset:a reset:c destroy-realized:c destroy-realized:b "
                               "destroy-realized:a ");
    assert_null(l.head);
    assert_int_equal(l.count, 0);
}

/* A realize that fails midway: what was realized and what was only created both go, last first. */
static void test_failed_realize_tears_down(void **unused)
{
    (void)unused;
    struct hwdev_list l;
    struct errbuf eb = {0};
    calls[0] = 0;
    hwdev_list_init(&l);
    add(&l, &toy_ops, "a");
    add(&l, &toy_ops, "b")->fail_realize = -EBUSY;
    add(&l, &toy_ops, "c");
    assert_int_equal(hwdev_list_realize(&l, &eb), -EBUSY);
    assert_string_equal(eb.msg, "b would not");
    hwdev_list_destroy(&l);
    assert_string_equal(calls, "realize:a realize:b destroy-created:c destroy-created:b "
                               "destroy-realized:a ");
}

static void save_list(struct state_out *out, void *ctx)
{
    struct hwdev_list *l = ctx;
    assert_int_equal(hwdev_list_save(l, out), 0);
}

static void test_save_restore(void **unused)
{
    (void)unused;
    static uint8_t tree[STATE_TEST_TREE];
    struct hwdev_list l, l2;
    struct errbuf eb = {0};
    hwdev_list_init(&l);
    add(&l, &toy_ops, "a")->reg = 7;
    add(&l, &bare_ops, "b");
    add(&l, &toy_ops, "c")->reg = 9;
    assert_int_equal(state_test_write(tree, sizeof(tree), save_list, &l), 0);
    assert_true(fdt_subnode_offset(tree, 0, "b") < 0); /* no state, no node */

    hwdev_list_init(&l2);
    struct toy *a = add(&l2, &toy_ops, "a"),
               *c = (add(&l2, &bare_ops, "b"), add(&l2, &toy_ops, "c"));
    struct state_in root = state_test_root(tree, &eb);
    assert_int_equal(hwdev_list_restore(&l2, &root), 0);
    assert_int_equal(a->reg, 7);
    assert_int_equal(c->reg, 9);
    hwdev_list_destroy(&l2);

    /* A machine without c: the state has a device it would lose. */
    hwdev_list_init(&l2);
    add(&l2, &toy_ops, "a");
    root = state_test_root(tree, &eb);
    assert_int_equal(hwdev_list_restore(&l2, &root), -EINVAL);
    assert_non_null(strstr(eb.msg, "a device 'c' this machine does not have"));
    hwdev_list_destroy(&l2);

    /* A machine with a device the state lacks. */
    hwdev_list_init(&l2);
    add(&l2, &toy_ops, "a");
    add(&l2, &toy_ops, "z");
    root = state_test_root(tree, &eb);
    assert_int_equal(hwdev_list_restore(&l2, &root), -ENOENT);
    assert_non_null(strstr(eb.msg, "no subnode 'z'"));
    hwdev_list_destroy(&l2);
    hwdev_list_destroy(&l);
}

static void save_twice(struct state_out *out, void *ctx)
{
    (void)ctx;
    for (int i = 0; i < 2; i++) {
        state_begin(out, "a", "petrel,toy-v1");
        state_put_u32(out, "reg", 1);
        state_end(out);
    }
}

/* A device's node twice: one would be ignored, so the state is refused. */
static void test_restore_refuses_a_device_twice(void **unused)
{
    (void)unused;
    static uint8_t tree[STATE_TEST_TREE];
    struct hwdev_list l;
    struct errbuf eb = {0};
    assert_int_equal(state_test_write(tree, sizeof(tree), save_twice, NULL), 0);
    hwdev_list_init(&l);
    add(&l, &toy_ops, "a");
    struct state_in root = state_test_root(tree, &eb);
    assert_int_equal(hwdev_list_restore(&l, &root), -EINVAL);
    assert_non_null(strstr(eb.msg, "holds the device 'a' twice"));
    hwdev_list_destroy(&l);
}

/* A device's own refusal stops the restore with its message. */
static void test_restore_refusal(void **unused)
{
    (void)unused;
    static uint8_t tree[STATE_TEST_TREE];
    struct hwdev_list l;
    struct errbuf eb = {0};
    hwdev_list_init(&l);
    add(&l, &toy_ops, "a")->reg = 5000;
    assert_int_equal(state_test_write(tree, sizeof(tree), save_list, &l), 0);
    hwdev_list_destroy(&l);
    hwdev_list_init(&l);
    struct toy *a = add(&l, &toy_ops, "a");
    struct state_in root = state_test_root(tree, &eb);
    assert_int_equal(hwdev_list_restore(&l, &root), -EINVAL);
    assert_non_null(strstr(eb.msg, "state node 'a': reg 5000 is more than 1000"));
    assert_int_equal(a->reg, 0);
    hwdev_list_destroy(&l);
}

static int toy_create(struct hwdev *dev, unsigned index, struct errbuf *eb)
{
    snprintf(dev->name, sizeof(dev->name), "toy%u", index);
    record("create", dev);
    return index == 1 ? err_set(eb, -ENOENT, "toy%u has no file", index) : 0;
}

static const struct hwdev_ops made_ops = {
    .type = "toy",
    .size = sizeof(struct toy),
    .name = "toy",
    .create = toy_create,
    .realize = toy_realize,
    .destroy = toy_destroy,
};

/* Instances come zeroed, named by create; one whose create failed is still torn down. */
static void test_list_create(void **unused)
{
    (void)unused;
    struct hwdev_list l;
    struct errbuf eb = {0};
    calls[0] = 0;
    hwdev_list_init(&l);
    assert_int_equal(hwdev_list_create(&l, &made_ops, NULL, 0, &eb), 0);
    struct toy *t = container_of(l.head, struct toy, dev);
    assert_int_equal(t->reg, 0);
    assert_ptr_equal(t->dev.ops, &made_ops);
    assert_int_equal(hwdev_list_create(&l, &made_ops, NULL, 1, &eb), -ENOENT);
    assert_string_equal(eb.msg, "toy1 has no file");
    assert_int_equal(l.count, 2);
    hwdev_list_destroy(&l);
    assert_string_equal(calls, "create:toy0 create:toy1 destroy-created:toy1 "
                               "destroy-created:toy0 ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_failed_realize_tears_down),
        cmocka_unit_test(test_save_restore),
        cmocka_unit_test(test_restore_refusal),
        cmocka_unit_test(test_restore_refuses_a_device_twice),
        cmocka_unit_test(test_list_create),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
