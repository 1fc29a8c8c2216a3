/*
 * Unit tests for the gdb stub's protocol: packet framing and checksums
 * (gdb_proto.c) and the commands of a session on a fake target
 * (gdb_session.c): registers, memory with breakpoints hidden, Z/z, threads,
 * resume and stop replies, qXfer of the target description.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "petrel/gdb_proto.h"
#include "petrel/gdb_session.h"
#include "fake_gdb_target.h"

/* Feeds a string to rx; returns the last event that was not NONE. */
static enum gdb_rx_event feed(struct gdb_rx *rx, const char *s, size_t len)
{
    enum gdb_rx_event last = GDB_RX_NONE;
    for (size_t i = 0; i < len; i++) {
        enum gdb_rx_event e = gdb_rx_feed(rx, (uint8_t)s[i]);
        if (e != GDB_RX_NONE)
            last = e;
    }
    return last;
}

static void test_rx_packets(void **state)
{
    struct gdb_rx rx;
    (void)state;

    gdb_rx_init(&rx);
    /* "g" sums to 0x67. */
    assert_int_equal(feed(&rx, "$g#67", 5), GDB_RX_PACKET);
    assert_string_equal(rx.buf, "g");
    assert_int_equal(feed(&rx, "$g#68", 5), GDB_RX_BAD_PACKET);
    assert_int_equal(feed(&rx, "$g#6G", 5), GDB_RX_BAD_PACKET);
    assert_int_equal(feed(&rx, "$g#G7", 5), GDB_RX_BAD_PACKET);
    /* Upper-case checksum digits are taken too. */
    assert_int_equal(feed(&rx, "$qC#B4", 6), GDB_RX_PACKET);
    assert_string_equal(rx.buf, "qC");
    assert_int_equal(feed(&rx, "+", 1), GDB_RX_ACK);
    assert_int_equal(feed(&rx, "-", 1), GDB_RX_NACK);
    assert_int_equal(feed(&rx, "\x03", 1), GDB_RX_INTERRUPT);
    /* Noise between packets is ignored; a '$' restarts a packet. */
    assert_int_equal(feed(&rx, "xyz$gar$g#67", 12), GDB_RX_PACKET);
    assert_string_equal(rx.buf, "g");
    /* Inside a packet 0x03 is data, not an interrupt. */
    assert_int_equal(feed(&rx, "$\x03#03", 5), GDB_RX_PACKET);
    assert_int_equal(rx.len, 1);
    /* The empty packet. */
    assert_int_equal(feed(&rx, "$#00", 4), GDB_RX_PACKET);
    assert_int_equal(rx.len, 0);
}

static void test_rx_overflow(void **state)
{
    struct gdb_rx rx;
    (void)state;

    gdb_rx_init(&rx);
    char *big = malloc(GDB_PACKET_MAX + 16);
    assert_non_null(big);
    uint8_t sum = 0;
    big[0] = '$';
    for (size_t i = 1; i <= GDB_PACKET_MAX + 1; i++) {
        big[i] = 'a';
        sum = (uint8_t)(sum + 'a');
    }
    size_t n = GDB_PACKET_MAX + 2;
    n += (size_t)snprintf(big + n, 4, "#%02x", sum);
    /* One byte too long: refused, even with the right checksum. */
    assert_int_equal(feed(&rx, big, n), GDB_RX_BAD_PACKET);
    /* Exactly the maximum: taken. */
    sum = (uint8_t)(sum - 'a');
    n = GDB_PACKET_MAX + 1;
    n += (size_t)snprintf(big + n, 4, "#%02x", sum);
    assert_int_equal(feed(&rx, big, n), GDB_RX_PACKET);
    assert_int_equal(rx.len, GDB_PACKET_MAX);
    free(big);
}

static void test_frame(void **state)
{
    char out[32];
    (void)state;

    assert_int_equal(gdb_frame(out, sizeof(out), "OK", 2), 6);
    assert_memory_equal(out, "$OK#9a", 6);
    assert_int_equal(gdb_frame(out, sizeof(out), "", 0), 4);
    assert_memory_equal(out, "$#00", 4);
    /* '#', '$', '}' and '*' are escaped: '}' then the byte xor 0x20. */
    int n = gdb_frame(out, sizeof(out), "a#$}*", 5);
    assert_int_equal(n, 1 + 9 + 3);
    assert_memory_equal(out, "$a}\x03}\x04}]}\x0a#", 11);
    /* The checksum covers the escaped bytes: a receiver's check passes. */
    struct gdb_rx rx;
    gdb_rx_init(&rx);
    assert_int_equal(feed(&rx, out, (size_t)n), GDB_RX_PACKET);
    assert_int_equal(gdb_frame(out, 6, "OK", 2), 6);
    assert_int_equal(gdb_frame(out, 5, "OK", 2), -ENOSPC);
}

static void test_hex(void **state)
{
    const char *p;
    uint64_t v;
    uint8_t b[4];
    char h[9] = {0};
    (void)state;

    p = "1f,";
    assert_int_equal(gdb_parse_hex(&p, &v), 0);
    assert_int_equal(v, 0x1f);
    assert_string_equal(p, ",");
    p = "ffffffffffffffff";
    assert_int_equal(gdb_parse_hex(&p, &v), 0);
    assert_true(v == UINT64_MAX);
    p = "00000000000000000001";
    assert_int_equal(gdb_parse_hex(&p, &v), 0);
    assert_int_equal(v, 1);
    p = "10000000000000000";
    assert_int_equal(gdb_parse_hex(&p, &v), -ERANGE);
    p = ",1";
    assert_int_equal(gdb_parse_hex(&p, &v), -EINVAL);
    assert_int_equal(gdb_fromhex(b, "deadBEEF", 4), 0);
    assert_int_equal(b[0], 0xde);
    assert_int_equal(b[3], 0xef);
    assert_int_equal(gdb_fromhex(b, "dexd", 2), -EINVAL);
    gdb_tohex(h, b, 4);
    assert_string_equal(h, "deadbeef");
}

/* A session on a fake target with two vCPUs. */
struct sess {
    struct fake_gdb f;
    struct gdb_session s;
};

static struct sess *sess_new(void)
{
    struct sess *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->f.nr_cpus = 2;
    t->f.regs[0].regs.rip = 0x1000;
    t->f.regs[1].regs.rip = 0x2000;
    t->f.regs[0].regs.rax = 0x1122334455667788ULL;
    t->f.regs[0].sregs.cr3 = 0x9000;
    t->f.regs[0].sregs.cs.selector = 0x10;
    for (unsigned i = 0; i < 256; i++)
        t->f.mem[0x1000 + i] = (uint8_t)i;
    gdb_session_init(&t->s, &fake_gdb_ops, &t->f);
    return t;
}

/* Sends one packet; returns the reply's payload (acks stripped, checksum checked). */
static const char *cmd(struct sess *t, const char *payload)
{
    static char reply[1 << 16];
    char framed[GDB_PACKET_MAX * 2 + 8];

    int n = gdb_frame(framed, sizeof(framed), payload, strlen(payload));
    assert_true(n > 0);
    t->f.sent_len = 0;
    t->f.sent[0] = '\0';
    gdb_session_input(&t->s, (const uint8_t *)framed, (size_t)n);
    if (t->f.sent_len == 0)
        return NULL;
    assert_int_equal(t->f.sent[0], '+');
    if (t->f.sent_len == 1)
        return NULL; /* acked, no reply (yet) */
    struct gdb_rx rx;
    gdb_rx_init(&rx);
    assert_int_equal(feed(&rx, t->f.sent + 1, t->f.sent_len - 1), GDB_RX_PACKET);
    memcpy(reply, rx.buf, rx.len + 1);
    return reply;
}

static void test_session_queries(void **state)
{
    struct sess *t = sess_new();
    (void)state;

    assert_non_null(strstr(cmd(t, "qSupported:multiprocess+;swbreak+"), "qXfer:features:read+"));
    assert_string_equal(cmd(t, "?"), "T05thread:01;");
    assert_string_equal(cmd(t, "qfThreadInfo"), "m1,2");
    assert_string_equal(cmd(t, "qsThreadInfo"), "l");
    assert_string_equal(cmd(t, "qC"), "QC01");
    assert_string_equal(cmd(t, "qAttached"), "1");
    assert_string_equal(cmd(t, "T2"), "OK");
    assert_string_equal(cmd(t, "T3"), "E16");
    assert_string_equal(cmd(t, "vMustReplyEmpty"), "");
    assert_string_equal(cmd(t, "X1000,0:"), ""); /* binary writes: gdb falls back to M */
    /* The target description, read in pieces as gdb does. */
    char xml[8192] = {0};
    size_t got = 0;
    for (;;) {
        char q[64];
        snprintf(q, sizeof(q), "qXfer:features:read:target.xml:%zx,100", got);
        const char *r = cmd(t, q);
        assert_true(r[0] == 'm' || r[0] == 'l');
        size_t n = strlen(r + 1);
        assert_true(n <= 0x100);
        memcpy(xml + got, r + 1, n);
        got += n;
        if (r[0] == 'l')
            break;
    }
    assert_int_equal(got, x86_gdb_target_xml_len);
    assert_string_equal(xml, x86_gdb_target_xml);
    assert_string_equal(cmd(t, "qXfer:features:read:other.xml:0,100"), "E00");
    /* A bad checksum is refused with '-'; a '-' from gdb resends the last reply. */
    assert_string_equal(cmd(t, "qC"), "QC01");
    t->f.sent_len = 0;
    gdb_session_input(&t->s, (const uint8_t *)"$qC#00", 6);
    assert_string_equal(t->f.sent, "-");
    t->f.sent_len = 0;
    gdb_session_input(&t->s, (const uint8_t *)"-", 1);
    assert_string_equal(t->f.sent, "$QC01#f5");
    free(t);
}

static void test_session_registers(void **state)
{
    struct sess *t = sess_new();
    (void)state;

    const char *g = cmd(t, "g");
    assert_int_equal(strlen(g), 2 * X86_GDB_REGS_BYTES);
    assert_memory_equal(g, "8877665544332211", 16);         /* rax, little-endian */
    assert_string_equal(cmd(t, "p10"), "0010000000000000"); /* rip is register 16 */
    assert_string_equal(cmd(t, "p3d"), "0090000000000000"); /* cr3 is register 61 */
    assert_string_equal(cmd(t, "p41"), "E16");              /* there are 65 */
    /* Hg selects the thread registers come from. */
    assert_string_equal(cmd(t, "Hg2"), "OK");
    assert_string_equal(cmd(t, "p10"), "0020000000000000");
    assert_string_equal(cmd(t, "Hg5"), "E16");
    assert_string_equal(cmd(t, "Hg1"), "OK");
    /* P writes one register; G all, and a selector change is refused. */
    assert_string_equal(cmd(t, "P0=efbeadde00000000"), "OK");
    assert_true(t->f.regs[0].regs.rax == 0xdeadbeef);
    char G[2 * X86_GDB_REGS_BYTES + 2];
    g = cmd(t, "g");
    G[0] = 'G';
    memcpy(G + 1, g, 2 * X86_GDB_REGS_BYTES + 1);
    memcpy(G + 1 + 2 * 8, "0100000000000000", 16); /* rbx = 1 */
    assert_string_equal(cmd(t, G), "OK");
    assert_int_equal(t->f.regs[0].regs.rbx, 1);
    size_t off, size;
    assert_int_equal(x86_gdb_reg_slot(18, &off, &size), 0); /* cs */
    memcpy(G + 1 + 2 * off, "08000000", 8);
    assert_string_equal(cmd(t, G), "E16");
    assert_int_equal(t->f.regs[0].sregs.cs.selector, 0x10);
    assert_string_equal(cmd(t, "Gabc"), "E16");
    free(t);
}

static void test_session_memory(void **state)
{
    struct sess *t = sess_new();
    (void)state;

    assert_string_equal(cmd(t, "m1000,4"), "00010203");
    assert_string_equal(cmd(t, "M1002,2:abcd"), "OK");
    assert_string_equal(cmd(t, "m1000,4"), "0001abcd");
    assert_string_equal(cmd(t, "mffff,2"), "E0e"); /* leaves memory */
    assert_string_equal(cmd(t, "m1000"), "E16");
    assert_string_equal(cmd(t, "M1000,2:ab"), "E16");
    /* A long read is cut to what one reply holds; gdb asks for the rest. */
    assert_true(strlen(cmd(t, "m0,10000")) <= GDB_PACKET_MAX);
    /* monitor phys / virt switch the address kind and say so. */
    const char *r = cmd(t, "qRcmd,70687973"); /* "phys" */
    assert_non_null(r);
    assert_true(t->s.phys);
    cmd(t, "qRcmd,76697274");
    assert_false(t->s.phys);
    free(t);
}

static void test_session_breakpoints(void **state)
{
    struct sess *t = sess_new();
    (void)state;

    assert_string_equal(cmd(t, "Z0,1010,1"), "OK");
    assert_int_equal(t->f.mem[0x1010], 0xcc);
    assert_true(t->f.debug.sw);
    /* Reads see the original byte, writes under it change the original. */
    assert_string_equal(cmd(t, "m100f,3"), "0f1011");
    assert_string_equal(cmd(t, "M1010,1:77"), "OK");
    assert_int_equal(t->f.mem[0x1010], 0xcc);
    assert_string_equal(cmd(t, "m1010,1"), "77");
    assert_string_equal(cmd(t, "Z0,1010,1"), "OK"); /* twice: still one */
    assert_string_equal(cmd(t, "z0,1010,1"), "OK");
    assert_int_equal(t->f.mem[0x1010], 0x77);
    assert_false(t->f.debug.sw);
    assert_string_equal(cmd(t, "Z0,1010,2"), "E16"); /* x86's kind is 1 */
    assert_string_equal(cmd(t, "Z0,fffff,1"), "E0e");

    /* Hardware: four slots, DR7 built from them. */
    assert_string_equal(cmd(t, "Z1,1020,1"), "OK");
    assert_true(t->f.debug.dr[0] == 0x1020);
    assert_true(t->f.debug.dr7 == 0x1); /* L0, execute, length 1 */
    assert_string_equal(cmd(t, "Z2,1028,8"), "OK");
    assert_true(t->f.debug.dr[1] == 0x1028);
    assert_true(t->f.debug.dr7 == (0x1 | 0x4 | (0x1ULL << 20) | (0x2ULL << 22)));
    assert_string_equal(cmd(t, "Z2,1029,4"), "E16"); /* unaligned */
    assert_string_equal(cmd(t, "Z4,1030,4"), "OK");
    assert_string_equal(cmd(t, "Z3,1040,2"), "OK");
    assert_string_equal(cmd(t, "Z1,1050,1"), "E1c"); /* no fifth slot */
    assert_string_equal(cmd(t, "z2,1028,8"), "OK");
    assert_string_equal(cmd(t, "Z1,1050,1"), "OK"); /* its slot is free again */
    assert_string_equal(cmd(t, "Z5,1050,1"), "E16");

    /* A KVM that refuses guest debugging: an error reply, nothing kept. */
    t->f.refuse_debug = -EOPNOTSUPP;
    assert_string_equal(cmd(t, "Z0,1018,1"), "E5f");
    assert_int_equal(t->f.mem[0x1018], 0x18);
    assert_string_equal(cmd(t, "s"), "E5f");
    t->f.refuse_debug = 0;

    /* Detach takes every breakpoint out. */
    assert_string_equal(cmd(t, "Z0,1011,1"), "OK");
    assert_string_equal(cmd(t, "D"), "OK");
    assert_int_equal(t->f.mem[0x1011], 0x11);
    assert_false(t->f.debug.sw);
    assert_true(t->f.debug.dr7 == 0);
    free(t);
}

static void test_session_resume_stop(void **state)
{
    struct sess *t = sess_new();
    (void)state;

    assert_string_equal(cmd(t, "Z1,1020,1"), "OK");
    assert_string_equal(cmd(t, "Z2,1028,8"), "OK");
    /* c: no reply until the target stops. */
    assert_null(cmd(t, "c"));
    assert_int_equal(t->f.resumes, 1);
    assert_int_equal(t->f.step_cpu, -1);
    assert_true(t->s.running);
    /* Packets while running are refused; 0x03 interrupts. */
    t->f.sent_len = 0;
    gdb_session_input(&t->s, (const uint8_t *)"\x03", 1);
    assert_int_equal(t->f.interrupts, 1);
    /* The execute breakpoint in slot 0 fires on vCPU 1. */
    t->f.sent_len = 0;
    gdb_session_debug_exit(&t->s, 1, 1, 0x1);
    assert_string_equal(t->f.sent, "$T05hwbreak:;thread:02;#61");
    assert_string_equal(cmd(t, "qC"), "QC02");
    /* s steps the thread gdb names with Hc, else the stopped one. */
    assert_null(cmd(t, "s"));
    assert_int_equal(t->f.step_cpu, 1);
    gdb_session_debug_exit(&t->s, 1, 1, 0x4000); /* BS: a finished step */
    assert_non_null(strstr(t->f.sent, "T05thread:02;"));
    assert_string_equal(cmd(t, "Hc1"), "OK");
    assert_null(cmd(t, "s"));
    assert_int_equal(t->f.step_cpu, 0);
    /* The watchpoint in slot 1. */
    gdb_session_debug_exit(&t->s, 0, 1, 0x2);
    assert_non_null(strstr(t->f.sent, "T05watch:1028;thread:01;"));
    /* A software breakpoint, a Ctrl-C, then the guest ends. */
    assert_null(cmd(t, "c"));
    gdb_session_debug_exit(&t->s, 0, 3, 0);
    assert_non_null(strstr(t->f.sent, "T05swbreak:;thread:01;"));
    assert_null(cmd(t, "c"));
    t->f.sent_len = 0;
    gdb_session_interrupted(&t->s, 1);
    assert_non_null(strstr(t->f.sent, "T02thread:02;"));
    assert_string_equal(cmd(t, "?"), "T02thread:02;");
    /* c with an address sets rip first. */
    assert_null(cmd(t, "c1234"));
    assert_int_equal(t->f.regs[1].regs.rip, 0x1234);
    t->f.sent_len = 0;
    gdb_session_exited(&t->s, 0);
    assert_string_equal(t->f.sent, "$W00#b7");
    /* A stop nobody waits for is not sent. */
    t->f.sent_len = 0;
    gdb_session_interrupted(&t->s, 0);
    assert_int_equal(t->f.sent_len, 0);
    assert_null(cmd(t, "k"));
    assert_int_equal(t->f.kills, 1);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rx_packets),
        cmocka_unit_test(test_rx_overflow),
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_session_queries),
        cmocka_unit_test(test_session_registers),
        cmocka_unit_test(test_session_memory),
        cmocka_unit_test(test_session_breakpoints),
        cmocka_unit_test(test_session_resume_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
