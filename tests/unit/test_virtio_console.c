/*
 * virtio-console driven as a driver drives it (tests/support/fake_virtio_driver.h):
 * rings in fake guest memory, kicks through the loop, fake irqfds. Output
 * goes to a small outbuf the test drains by hand; input comes through
 * virtio_console_receive(), and through console_in from a pipe for the
 * queueing while the guest has posted nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <event2/event.h>

#include "petrel/console_in.h"
#include "petrel/virtio_console.h"
#include "fake_state.h"
#include "fake_virtio_driver.h"

#define RAM_SIZE (1 * MiB)
#define QSIZE    16
#define BUF_GPA  0x40000
#define OUT_CAP  64

#define VEC_CONFIG 0
#define VEC_RX     1
#define VEC_TX     2

/* Queue q's rings. */
#define DESC_GPA(q)  (0x10000 + 0x4000 * (q))
#define AVAIL_GPA(q) (DESC_GPA(q) + 0x1000)
#define USED_GPA(q)  (DESC_GPA(q) + 0x2000)

struct rig {
    struct fake_virtio_host h;
    struct virtio_console vc;
    struct outbuf out;
    uint16_t avail[2]; /* the driver's next available index per queue */
    uint16_t next_desc[2];
    uint16_t used_seen[2];
    uint16_t qsize[2];
    unsigned rooms; /* on_rx_room calls */
};

static void on_room(void *ctx)
{
    ((struct rig *)ctx)->rooms++;
}

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_int_equal(fake_virtio_host_init(&r->h, RAM_SIZE), 0);
    assert_int_equal(outbuf_init(&r->out, OUT_CAP), 0);
    r->out.on_space = virtio_console_tx_space;
    r->out.on_space_ctx = &r->vc;
    assert_int_equal(virtio_console_init(&r->vc, &r->h.sys, &r->out), 0);
    assert_int_equal(virtio_pci_add(&r->vc.vdev, &r->h.pci), 0);
    r->vc.on_rx_room = on_room;
    r->vc.on_rx_room_ctx = r;
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    virtio_console_destroy(&r->vc);
    outbuf_destroy(&r->out);
    fake_virtio_host_destroy(&r->h);
    free(r);
    return 0;
}

static struct virtio_dev *vdev(struct rig *r)
{
    return &r->vc.vdev;
}

static void run_loop(struct rig *r)
{
    event_base_loop(r->h.base, EVLOOP_NONBLOCK);
}

static uint8_t status(struct rig *r)
{
    return (uint8_t)fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_COMMON_STATUS, 1);
}

/* The driver's bring-up: features, both queues on their vectors, MSI-X, DRIVER_OK. */
static void bring_up_sized(struct rig *r, uint64_t features, uint16_t rx_size, uint16_t tx_size)
{
    r->qsize[0] = rx_size;
    r->qsize[1] = tx_size;
    memset(r->avail, 0, sizeof(r->avail));
    memset(r->next_desc, 0, sizeof(r->next_desc));
    memset(r->used_seen, 0, sizeof(r->used_seen));
    memset(r->h.ram + DESC_GPA(0), 0, 0x8000);
    fake_virtio_negotiate(&r->h.mmio, vdev(r), features | 1ULL << VIRTIO_F_VERSION_1);
    fake_virtio_bar_wr(&r->h.mmio, vdev(r), VIRTIO_COMMON_MSIX, VEC_CONFIG, 2);
    for (unsigned q = 0; q < 2; q++)
        fake_virtio_setup_queue(&r->h.mmio, vdev(r), q, r->qsize[q], q == 0 ? VEC_RX : VEC_TX,
                                DESC_GPA(q), AVAIL_GPA(q), USED_GPA(q));
    fake_virtio_msix_enable(vdev(r));
    for (unsigned v = 0; v < 3; v++)
        fake_virtio_msix_unmask(&r->h.mmio, vdev(r), v);
    fake_virtio_driver_ok(&r->h.mmio, vdev(r));
    run_loop(r);
    for (unsigned v = 0; v < 3; v++)
        (void)fake_virtio_irq_count(vdev(r), v);
}

static void bring_up(struct rig *r, uint64_t features)
{
    bring_up_sized(r, features, QSIZE, QSIZE);
}

static void reset(struct rig *r)
{
    fake_virtio_bar_wr(&r->h.mmio, vdev(r), VIRTIO_COMMON_STATUS, 0, 1);
}

struct seg {
    uint64_t gpa;
    uint32_t len;
    uint16_t flags; /* VIRTQ_DESC_F_WRITE or 0 */
};

/* Makes a chain of n descriptors available on queue q (not kicked); returns its head. */
static uint16_t add_chain(struct rig *r, unsigned q, const struct seg *segs, unsigned n)
{
    uint8_t *desc = r->h.ram + DESC_GPA(q);
    uint16_t qs = r->qsize[q] ? r->qsize[q] : QSIZE;
    uint16_t head = r->next_desc[q] % qs;
    for (unsigned i = 0; i < n; i++) {
        uint16_t at = (uint16_t)((head + i) % qs);
        struct virtq_desc d = {
            .addr = segs[i].gpa,
            .len = segs[i].len,
            .flags = (uint16_t)(segs[i].flags | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
            .next = (uint16_t)((at + 1) % qs),
        };
        memcpy(desc + 16 * at, &d, sizeof(d));
    }
    r->next_desc[q] = (uint16_t)(r->next_desc[q] + n);
    struct virtq_avail *av = (struct virtq_avail *)(r->h.ram + AVAIL_GPA(q));
    av->ring[r->avail[q] % qs] = head;
    r->avail[q]++;
    __atomic_store_n(&av->idx, r->avail[q], __ATOMIC_RELEASE);
    return head;
}

/* One receive buffer of len bytes at gpa. */
static uint16_t add_rx(struct rig *r, uint64_t gpa, uint32_t len)
{
    struct seg s = {gpa, len, VIRTQ_DESC_F_WRITE};
    return add_chain(r, VIRTIO_CONSOLE_RX, &s, 1);
}

/* A transmit chain of the given bytes over one descriptor. */
static uint16_t add_tx(struct rig *r, uint64_t gpa, const char *bytes, uint32_t len)
{
    memcpy(r->h.ram + gpa, bytes, len);
    struct seg s = {gpa, len, 0};
    return add_chain(r, VIRTIO_CONSOLE_TX, &s, 1);
}

static void kick(struct rig *r, unsigned q)
{
    fake_virtio_bar_wr(&r->h.mmio, vdev(r), VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, q,
                       2);
    run_loop(r);
}

static struct virtq_used *used(struct rig *r, unsigned q)
{
    return (struct virtq_used *)(r->h.ram + USED_GPA(q));
}

static uint16_t used_idx(struct rig *r, unsigned q)
{
    return __atomic_load_n(&used(r, q)->idx, __ATOMIC_ACQUIRE);
}

/* The next used element of queue q (which must be there). */
static struct virtq_used_elem next_used(struct rig *r, unsigned q)
{
    assert_true(used_idx(r, q) != r->used_seen[q]);
    return used(r, q)->ring[r->used_seen[q]++ % (r->qsize[q] ? r->qsize[q] : QSIZE)];
}

/* Drains the outbuf into buf (as the console's reader would); returns the bytes. */
static size_t drain(struct rig *r, char *buf, size_t cap)
{
    size_t n = outbuf_peek(&r->out, buf, cap);
    outbuf_consume(&r->out, n);
    return n;
}

/* ---- tests ---- */

static void test_identity_and_config(void **state)
{
    struct rig *r = *state;
    struct pci_dev *p = &vdev(r)->pci;

    assert_int_equal(pci_config_read(p, PCI_VENDOR_ID, 2), VIRTIO_PCI_VENDOR);
    assert_int_equal(pci_config_read(p, PCI_DEVICE_ID, 2), 0x1043);
    assert_int_equal(pci_config_read(p, PCI_CLASS_REVISION, 4) >> 8, 0x078000);
    uint64_t f = fake_virtio_device_features(&r->h.mmio, vdev(r));
    assert_true(f & 1ULL << VIRTIO_F_VERSION_1);
    assert_int_equal(f & 0xffffff, 0); /* no SIZE, MULTIPORT, EMERG_WRITE */
    /* cols, rows 0; max_nr_ports 1; emerg_wr 0 */
    assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_PCI_DEVICE_OFF, 4), 0);
    assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_PCI_DEVICE_OFF + 4, 4), 1);
    assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_PCI_DEVICE_OFF + 8, 4), 0);
    assert_int_equal(fake_virtio_bar_rd(&r->h.mmio, vdev(r), VIRTIO_COMMON_NUMQ, 2), 2);
}

static void test_transmit_reaches_the_output(void **state)
{
    struct rig *r = *state;
    char buf[OUT_CAP];

    bring_up(r, 0);
    memcpy(r->h.ram + BUF_GPA, "hello ", 6);
    memcpy(r->h.ram + BUF_GPA + 0x100, "world", 5);
    struct seg s[2] = {{BUF_GPA, 6, 0}, {BUF_GPA + 0x100, 5, 0}};
    uint16_t head = add_chain(r, VIRTIO_CONSOLE_TX, s, 2);
    add_tx(r, BUF_GPA + 0x200, "!\r\n", 3);
    kick(r, VIRTIO_CONSOLE_TX);

    size_t n = drain(r, buf, sizeof(buf));
    assert_int_equal(n, 14);
    assert_memory_equal(buf, "hello world!\r\n", 14);
    struct virtq_used_elem e = next_used(r, VIRTIO_CONSOLE_TX);
    assert_int_equal(e.id, head);
    assert_int_equal(e.len, 0); /* nothing written into a transmit buffer */
    next_used(r, VIRTIO_CONSOLE_TX);
    assert_true(fake_virtio_irq_count(vdev(r), VEC_TX) >= 1);
    assert_int_equal(fake_virtio_irq_count(vdev(r), VEC_RX), 0);
    assert_int_equal(r->vc.tx_bytes, 14);
}

static void test_receive_fills_posted_buffers(void **state)
{
    struct rig *r = *state;

    bring_up(r, 0);
    uint16_t h0 = add_rx(r, BUF_GPA, 4);
    uint16_t h1 = add_rx(r, BUF_GPA + 0x100, 4);
    kick(r, VIRTIO_CONSOLE_RX);
    assert_int_equal(r->rooms, 0); /* nothing was waiting */

    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"abcdef", 6), 6);
    struct virtq_used_elem e = next_used(r, VIRTIO_CONSOLE_RX);
    assert_int_equal(e.id, h0);
    assert_int_equal(e.len, 4);
    e = next_used(r, VIRTIO_CONSOLE_RX);
    assert_int_equal(e.id, h1);
    assert_int_equal(e.len, 2);
    assert_memory_equal(r->h.ram + BUF_GPA, "abcd", 4);
    assert_memory_equal(r->h.ram + BUF_GPA + 0x100, "ef", 2);
    assert_true(fake_virtio_irq_count(vdev(r), VEC_RX) >= 1);

    /* No buffer left: nothing taken, and the next posted buffer calls for the rest. */
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"xyz", 3), 0);
    assert_true(r->vc.rx_wanted);
    add_rx(r, BUF_GPA + 0x200, 16);
    kick(r, VIRTIO_CONSOLE_RX);
    assert_int_equal(r->rooms, 1);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"xyz", 3), 3);
    e = next_used(r, VIRTIO_CONSOLE_RX);
    assert_int_equal(e.len, 3);
    assert_memory_equal(r->h.ram + BUF_GPA + 0x200, "xyz", 3);
    assert_false(r->vc.rx_wanted);
    assert_int_equal(r->vc.rx_bytes, 9);
}

static void test_receive_waits_for_driver_ok(void **state)
{
    struct rig *r = *state;

    /* Before the driver is there at all. */
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"early", 5), 0);
    assert_true(r->vc.rx_wanted);
    /* Queues set up and buffers posted, but no DRIVER_OK yet: still nothing (3.1.1). */
    fake_virtio_negotiate(&r->h.mmio, vdev(r), 1ULL << VIRTIO_F_VERSION_1);
    for (unsigned q = 0; q < 2; q++)
        fake_virtio_setup_queue(&r->h.mmio, vdev(r), q, QSIZE, VIRTIO_NO_VECTOR, DESC_GPA(q),
                                AVAIL_GPA(q), USED_GPA(q));
    add_rx(r, BUF_GPA, 8);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"early", 5), 0);
    assert_int_equal(r->rooms, 0);
    /* DRIVER_OK: the device looks at its queues, and the waiting input is called for. */
    fake_virtio_driver_ok(&r->h.mmio, vdev(r));
    run_loop(r);
    assert_int_equal(r->rooms, 1);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"early", 5), 5);
    assert_memory_equal(r->h.ram + BUF_GPA, "early", 5);
}

/* While the VM is paused the device takes nothing: no input written, no output read. */
static void test_paused_takes_nothing(void **state)
{
    struct rig *r = *state;
    char buf[OUT_CAP];

    bring_up(r, 0);
    add_rx(r, BUF_GPA, 8);
    kick(r, VIRTIO_CONSOLE_RX);
    virtio_pci_pause(vdev(r));
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"typed", 5), 0);
    assert_true(r->vc.rx_wanted);
    add_tx(r, BUF_GPA + 0x200, "out", 3);
    kick(r, VIRTIO_CONSOLE_TX);
    assert_int_equal(drain(r, buf, sizeof(buf)), 0);
    assert_memory_equal(r->h.ram + BUF_GPA, "\0\0\0\0\0", 5);
    unsigned rooms = r->rooms;

    virtio_pci_resume(vdev(r));
    run_loop(r);
    assert_int_equal(r->rooms, rooms + 1); /* the resume's look at receiveq calls for it */
    assert_int_equal(drain(r, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "out", 3);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"typed", 5), 5);
    assert_memory_equal(r->h.ram + BUF_GPA, "typed", 5);
}

static void test_transmit_waits_for_the_reader(void **state)
{
    struct rig *r = *state;
    char text[150], got[200], buf[OUT_CAP];
    size_t have = 0;

    for (unsigned i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 26);
    bring_up(r, 0);
    add_tx(r, BUF_GPA, text, 100);
    add_tx(r, BUF_GPA + 0x100, text + 100, 50);
    kick(r, VIRTIO_CONSOLE_TX);
    /* The outbuf (64 bytes) is full and the first chain is held, not given back. */
    assert_int_equal(outbuf_len(&r->out), OUT_CAP);
    assert_int_equal(used_idx(r, VIRTIO_CONSOLE_TX), 0);
    assert_true(r->vc.tx_waiting);
    /* Kicks while waiting change nothing. */
    kick(r, VIRTIO_CONSOLE_TX);
    assert_int_equal(outbuf_len(&r->out), OUT_CAP);

    /* The reader drains; each drain lets the device go on, in order, nothing lost. */
    for (unsigned round = 0; round < 10 && have < sizeof(text); round++) {
        size_t n = drain(r, buf, sizeof(buf));
        memcpy(got + have, buf, n);
        have += n;
        run_loop(r);
    }
    assert_int_equal(have, sizeof(text));
    assert_memory_equal(got, text, sizeof(text));
    assert_int_equal(used_idx(r, VIRTIO_CONSOLE_TX), 2);
    assert_false(r->vc.tx_waiting);
}

static void test_transmit_budget_per_call(void **state)
{
    struct rig *r = *state;
    struct outbuf big;
    enum { N = 128 };

    /* A queue of N one-byte chains and room for all of them: one kick, N / budget calls. */
    assert_int_equal(outbuf_init(&big, 4096), 0);
    virtio_lock(vdev(r));
    r->vc.out = &big;
    virtio_unlock(vdev(r));
    bring_up_sized(r, 0, QSIZE, N);
    for (unsigned i = 0; i < N; i++)
        add_tx(r, BUF_GPA + i, "x", 1);
    uint64_t calls = vdev(r)->queues[VIRTIO_CONSOLE_TX].kicks;
    kick(r, VIRTIO_CONSOLE_TX);
    assert_int_equal(used_idx(r, VIRTIO_CONSOLE_TX), N);
    assert_int_equal(outbuf_len(&big), N);
    /*
     * The guest kicked once; the device came back for the rest through the loop:
     * N / budget full batches, and one look that found the queue empty.
     */
    calls = vdev(r)->queues[VIRTIO_CONSOLE_TX].kicks - calls;
    assert_int_equal(calls, N / VIRTIO_CONSOLE_TX_BUDGET + 1);
    virtio_lock(vdev(r));
    r->vc.out = &r->out;
    virtio_unlock(vdev(r));
    outbuf_destroy(&big);
}

/* The driver up, and a 100-byte transmit chain held: the 64-byte outbuf is full. */
static void hold_a_chain(struct rig *r)
{
    char text[100];

    memset(text, 'q', sizeof(text));
    bring_up(r, 0);
    add_tx(r, BUF_GPA, text, sizeof(text));
    kick(r, VIRTIO_CONSOLE_TX);
    assert_true(r->vc.tx_held);
}

static void test_reset_forgets_a_held_chain(void **state)
{
    struct rig *r = *state;
    char buf[OUT_CAP];

    hold_a_chain(r);
    reset(r);
    assert_false(r->vc.tx_held);
    assert_int_equal(status(r), 0);
    /* Room appears: nothing is pushed into the reset queue. */
    drain(r, buf, sizeof(buf));
    run_loop(r);
    assert_int_equal(used_idx(r, VIRTIO_CONSOLE_TX), 0);
    assert_int_equal(outbuf_len(&r->out), 0);

    /* A new driver: output and input work from a clean state. */
    bring_up(r, 0);
    add_tx(r, BUF_GPA, "new", 3);
    kick(r, VIRTIO_CONSOLE_TX);
    assert_int_equal(drain(r, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "new", 3);
    add_rx(r, BUF_GPA + 0x100, 8);
    kick(r, VIRTIO_CONSOLE_RX);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"in", 2), 2);
}

static void test_input_waiting_across_a_reset(void **state)
{
    struct rig *r = *state;

    bring_up(r, 0);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"k", 1), 0);
    reset(r);
    assert_true(r->vc.rx_wanted); /* still waiting for a driver's buffers */
    bring_up(r, 0);
    add_rx(r, BUF_GPA, 8);
    kick(r, VIRTIO_CONSOLE_RX);
    assert_true(r->rooms >= 1);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"k", 1), 1);
}

static void test_event_idx_asks_for_kicks_on_receiveq(void **state)
{
    struct rig *r = *state;

    bring_up(r, 1ULL << VIRTIO_F_EVENT_IDX);
    for (unsigned i = 0; i < 3; i++)
        add_rx(r, BUF_GPA + 0x100 * i, 1);
    kick(r, VIRTIO_CONSOLE_RX);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"abcd", 4), 3);
    /* avail_event (after the used ring) asks for a kick at the next new buffer. */
    uint16_t avail_event;
    memcpy(&avail_event, r->h.ram + USED_GPA(0) + 4 + 8 * QSIZE, 2);
    assert_int_equal(avail_event, 3);
}

/* ---- hostile chains ---- */

static void test_writable_buffer_on_transmitq_breaks_it(void **state)
{
    struct rig *r = *state;
    char buf[OUT_CAP];

    bring_up(r, 0);
    memcpy(r->h.ram + BUF_GPA, "leak", 4);
    struct seg s[2] = {{BUF_GPA, 4, 0}, {BUF_GPA + 0x100, 4, VIRTQ_DESC_F_WRITE}};
    add_chain(r, VIRTIO_CONSOLE_TX, s, 2);
    kick(r, VIRTIO_CONSOLE_TX);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(drain(r, buf, sizeof(buf)), 0);
    assert_int_equal(used_idx(r, VIRTIO_CONSOLE_TX), 0);
    assert_true(vdev(r)->warned);
    assert_true(fake_virtio_irq_count(vdev(r), VEC_CONFIG) >= 1);
    /* Input is refused too, until a reset. */
    add_rx(r, BUF_GPA + 0x200, 8);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"x", 1), 0);
    reset(r);
    bring_up(r, 0);
    assert_false(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    add_tx(r, BUF_GPA, "ok", 2);
    kick(r, VIRTIO_CONSOLE_TX);
    assert_int_equal(drain(r, buf, sizeof(buf)), 2);
}

static void test_readable_buffer_on_receiveq_breaks_it(void **state)
{
    struct rig *r = *state;

    bring_up(r, 0);
    struct seg s[2] = {{BUF_GPA, 4, 0}, {BUF_GPA + 0x100, 4, VIRTQ_DESC_F_WRITE}};
    add_chain(r, VIRTIO_CONSOLE_RX, s, 2);
    kick(r, VIRTIO_CONSOLE_RX);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"abc", 3), 0);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(used_idx(r, VIRTIO_CONSOLE_RX), 0);
    assert_true(fake_virtio_irq_count(vdev(r), VEC_CONFIG) >= 1);
    assert_int_equal(r->h.ram[BUF_GPA + 0x100], 0);
}

static void test_broken_rings_on_either_queue(void **state)
{
    struct rig *r = *state;

    /* A transmit buffer outside guest RAM. */
    bring_up(r, 0);
    struct seg s = {RAM_SIZE - 2, 4, 0};
    add_chain(r, VIRTIO_CONSOLE_TX, &s, 1);
    kick(r, VIRTIO_CONSOLE_TX);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(outbuf_len(&r->out), 0);
    reset(r);

    /* An available index far ahead of what was posted, on receiveq. */
    bring_up(r, 0);
    struct virtq_avail *av = (struct virtq_avail *)(r->h.ram + AVAIL_GPA(0));
    __atomic_store_n(&av->idx, (uint16_t)(QSIZE + 5), __ATOMIC_RELEASE);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"abc", 3), 0);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);

    /* A receive chain that loops on itself. */
    reset(r);
    bring_up(r, 0);
    struct virtq_desc d = {.addr = BUF_GPA, .len = 4, .flags = VIRTQ_DESC_F_WRITE | 1, .next = 0};
    memcpy(r->h.ram + DESC_GPA(0), &d, sizeof(d));
    av->ring[0] = 0;
    __atomic_store_n(&av->idx, (uint16_t)1, __ATOMIC_RELEASE);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"abc", 3), 0);
    assert_true(status(r) & VIRTIO_STATUS_NEEDS_RESET);
}

/* ---- console_in in front: input queued in petrel, bounded, in order ---- */

static size_t to_vc(void *sink, const uint8_t *buf, size_t len)
{
    return virtio_console_receive(sink, buf, len);
}

static void test_console_in_queues_bounded_and_in_order(void **state)
{
    struct rig *r = *state;
    struct console_in in;
    int p[2];
    enum { TOTAL = 6000, BUFS = 8, BUFLEN = 128 };
    static uint8_t data[TOTAL], got[TOTAL];
    size_t have = 0;

    for (unsigned i = 0; i < TOTAL; i++)
        data[i] = (uint8_t)(i * 7 + i / 256);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(console_in_init(&in, r->h.base, NULL), 0);
    console_in_set_sink(&in, to_vc, &r->vc);
    r->vc.on_rx_room = console_in_wake;
    r->vc.on_rx_room_ctx = &in;
    assert_int_equal(console_in_attach(&in, p[0], false), 0);

    /* No driver yet: petrel keeps CONSOLE_IN_PENDING bytes and leaves the rest in the pipe. */
    assert_int_equal(write(p[1], data, TOTAL), TOTAL);
    for (unsigned i = 0; i < 5; i++)
        run_loop(r);
    assert_int_equal(in.pending_len, CONSOLE_IN_PENDING);
    int left = 0;
    assert_int_equal(ioctl(p[0], FIONREAD, &left), 0);
    assert_int_equal(left, TOTAL - CONSOLE_IN_PENDING);

    /* The driver comes, posting BUFS buffers and reposting each one it gets back. */
    bring_up(r, 0);
    uint16_t heads[BUFS];
    for (unsigned i = 0; i < BUFS; i++)
        heads[i] = add_rx(r, BUF_GPA + BUFLEN * i, BUFLEN);
    kick(r, VIRTIO_CONSOLE_RX);
    for (unsigned round = 0; round < 200 && have < TOTAL; round++) {
        while (used_idx(r, VIRTIO_CONSOLE_RX) != r->used_seen[0]) {
            struct virtq_used_elem e = next_used(r, VIRTIO_CONSOLE_RX);
            unsigned b = 0;
            while (b < BUFS && heads[b] != e.id)
                b++;
            assert_true(b < BUFS);
            assert_true(e.len <= BUFLEN && have + e.len <= TOTAL);
            memcpy(got + have, r->h.ram + BUF_GPA + BUFLEN * b, e.len);
            have += e.len;
            heads[b] = add_rx(r, BUF_GPA + BUFLEN * b, BUFLEN);
        }
        kick(r, VIRTIO_CONSOLE_RX);
    }
    assert_int_equal(have, TOTAL);
    assert_memory_equal(got, data, TOTAL);
    assert_int_equal(in.pending_len, 0);

    console_in_destroy(&in);
    close(p[0]);
    close(p[1]);
}

/* ---- save and restore ---- */

static uint8_t tree[STATE_TEST_TREE], edited[STATE_TEST_TREE];

static void save_vcons(struct state_out *out, void *ctx)
{
    state_begin(out, "vcons", VIRTIO_CONSOLE_STATE_COMPATIBLE);
    if (virtio_console_save(ctx, out) == 0)
        state_end(out);
}

/* A new process: a fresh device (as setup() makes it) with a copy of r's RAM and driver. */
static struct rig *twin(struct rig *r)
{
    void *p;
    setup(&p);
    struct rig *w = p;
    memcpy(w->h.ram, r->h.ram, RAM_SIZE);
    memcpy(w->avail, r->avail, sizeof(r->avail));
    memcpy(w->next_desc, r->next_desc, sizeof(r->next_desc));
    memcpy(w->used_seen, r->used_seen, sizeof(r->used_seen));
    memcpy(w->qsize, r->qsize, sizeof(r->qsize));
    return w;
}

static int restore_vcons(const void *t, struct rig *w, struct errbuf *eb)
{
    struct state_in root = state_test_root(t, eb), in;
    if (state_open(&root, "vcons", VIRTIO_CONSOLE_STATE_COMPATIBLE, &in))
        return in.err;
    return virtio_console_restore(&w->vc, &in);
}

/*
 * Input delivered, and output stopped mid-chain by a full outbuf (the chain
 * held, a second one waiting): saved, restored into a fresh device with an
 * empty outbuf. The registers read the same; the held chain goes on from the
 * byte it stopped at, then the next; input fills the next posted buffer.
 */
static void test_save_restore(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    char text[100], buf[OUT_CAP], got[OUT_CAP];
    uint32_t va, vb;

    for (unsigned i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 26);
    bring_up(r, 1ULL << VIRTIO_F_EVENT_IDX);
    add_rx(r, BUF_GPA + 0x1000, 8);
    add_rx(r, BUF_GPA + 0x1100, 8);
    kick(r, VIRTIO_CONSOLE_RX);
    assert_int_equal(virtio_console_receive(&r->vc, (const uint8_t *)"ab", 2), 2);
    add_tx(r, BUF_GPA, text, sizeof(text));
    add_tx(r, BUF_GPA + 0x200, "zz", 2);
    kick(r, VIRTIO_CONSOLE_TX);
    assert_true(r->vc.tx_held);
    assert_int_equal(r->vc.tx_off, OUT_CAP);
    assert_int_equal(drain(r, buf, sizeof(buf)), OUT_CAP);

    assert_int_equal(state_test_write(tree, sizeof(tree), save_vcons, &r->vc), 0);
    struct rig *w = twin(r);
    int ret = restore_vcons(tree, w, &eb);
    if (ret)
        fail_msg("%s", eb.msg);
    int i = fake_virtio_regs_differ(&r->h.mmio, vdev(r), &w->h.mmio, vdev(w), &va, &vb);
    if (i >= 0)
        fail_msg("register read %d: %#x, then %#x", i, va, vb);
    assert_true(w->vc.tx_held);
    assert_false(w->vc.tx_waiting);

    /* The restore looks at the queues: the rest of the held chain, then the next one. */
    run_loop(w);
    size_t n = drain(w, got, sizeof(got));
    assert_int_equal(n, sizeof(text) - OUT_CAP + 2);
    assert_memory_equal(got, text + OUT_CAP, sizeof(text) - OUT_CAP);
    assert_memory_equal(got + sizeof(text) - OUT_CAP, "zz", 2);
    assert_int_equal(used_idx(w, VIRTIO_CONSOLE_TX), 2);
    assert_int_equal(fake_virtio_irq_count(vdev(w), VEC_TX), 1);
    assert_int_equal(virtio_console_receive(&w->vc, (const uint8_t *)"cd", 2), 2);
    assert_int_equal(used_idx(w, VIRTIO_CONSOLE_RX), 2);
    assert_memory_equal(w->h.ram + BUF_GPA + 0x1100, "cd", 2);
    teardown((void **)&w);
}

/*
 * Hostile nodes: refused with the property named. What the checks catch
 * leaves the fresh device as it was; a held chain that does not walk is
 * found after the transport is in, and breaks the transmit queue so the
 * driver resets the device, which then works.
 */
static void test_restore_refuses_hostile(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    char buf[OUT_CAP];

    hold_a_chain(r);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_vcons, &r->vc), 0);
    struct rig *w = twin(r);

    memcpy(edited, tree, sizeof(tree));
    assert_int_equal(state_test_set_u32(edited, "/vcons", "tx-head", 300), 0);
    assert_int_equal(restore_vcons(edited, w, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "property 'tx-head' is 300, beyond the queue's 256 entries"));

    memcpy(edited, tree, sizeof(tree));
    assert_int_equal(state_test_set_u32(edited, "/vcons", "tx-held", 0), 0);
    assert_int_equal(restore_vcons(edited, w, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "'tx-head' and 'tx-off' are not 0 without 'tx-held'"));

    memcpy(edited, tree, sizeof(tree));
    assert_int_equal(state_test_set_u32(edited, "/vcons", "tx-held", 0), 0);
    assert_int_equal(state_test_set_u64(edited, "/vcons", "tx-off", 0), 0);
    assert_int_equal(restore_vcons(edited, w, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "have 1 chains in flight; the device holds 0"));
    assert_int_equal(status(w), 0);
    assert_false(w->vc.tx_held);

    /* More bytes written than the chain has: found once the transport is restored. */
    memcpy(edited, tree, sizeof(tree));
    assert_int_equal(state_test_set_u64(edited, "/vcons", "tx-off", 101), 0);
    assert_int_equal(restore_vcons(edited, w, &eb), -EINVAL);
    assert_non_null(strstr(eb.msg, "'tx-head' 0 and 'tx-off' 101: the held chain is shorter"));
    assert_false(w->vc.tx_held);
    assert_true(status(w) & VIRTIO_STATUS_NEEDS_RESET);

    /* The driver resets it and starts over: it works. */
    reset(w);
    bring_up(w, 0);
    add_tx(w, BUF_GPA, "ok", 2);
    kick(w, VIRTIO_CONSOLE_TX);
    assert_int_equal(drain(w, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "ok", 2);
    teardown((void **)&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_and_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit_reaches_the_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_fills_posted_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_waits_for_driver_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_takes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit_waits_for_the_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit_budget_per_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_forgets_a_held_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_waiting_across_a_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_idx_asks_for_kicks_on_receiveq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_buffer_on_transmitq_breaks_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_readable_buffer_on_receiveq_breaks_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broken_rings_on_either_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_console_in_queues_bounded_and_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refuses_hostile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
