/*
 * Fuzz target: a gdb client (hostile: any bytes) drives a session of the gdb
 * stub (gdb_session.c, gdb_proto.c) on a fake target while the target stops
 * in every way it can.
 *
 * Input format (tests/fuzz/gen_corpus.py writes seeds in it):
 *   byte 0       bits 0-1: vCPUs - 1; bit 7: the target refuses guest debugging
 *   then bytes from the client, except 0xfe, which makes the next byte E a
 *   target event: E & 3 == 0 a debug exit on vCPU (E >> 2) % vCPUs, exception 3;
 *   1 the same with exception 1 and DR6 = E >> 4; 2 an interrupt's stop;
 *   3 the guest exits with status E >> 2.
 *
 * Checked after every byte: every reply the session sent is a well-framed
 * packet with a good checksum (or an ack); each planted software breakpoint
 * holds int3 in memory; the debug state has a DR7 enable bit only for a used
 * slot. At the end, a detach leaves no breakpoint and DR7 clear, and every
 * byte of memory gdb never wrote holds its original value.
 */
#include <string.h>

#include "fuzz.h"
#include "fake_gdb_target.h"
#include "petrel/gdb_session.h"

static struct fake_gdb fuzz_fake;
static struct gdb_session fuzz_sess;
static uint8_t fuzz_orig[FAKE_GDB_MEM];
static uint8_t fuzz_written[FAKE_GDB_MEM]; /* 1: a write packet may have changed it */
static bool fuzz_phys_written;             /* a write in monitor phys mode */

/* The session's replies parse as packets with good checksums. */
static void fuzz_check_sent(void)
{
    struct gdb_rx rx;

    gdb_rx_init(&rx);
    for (size_t i = 0; i < fuzz_fake.sent_len; i++)
        FUZZ_CHECK(gdb_rx_feed(&rx, (uint8_t)fuzz_fake.sent[i]) != GDB_RX_BAD_PACKET);
    FUZZ_CHECK(rx.state == 0); /* nothing half-sent */
    fuzz_fake.sent_len = 0;
}

static void fuzz_check_state(void)
{
    struct gdb_debug d;

    /* The fake's physical and virtual addresses are one: a physical write may overwrite. */
    for (unsigned i = 0; i < GDB_MAX_SW_BP; i++)
        if (fuzz_sess.sw[i].used && !fuzz_phys_written)
            FUZZ_CHECK(fuzz_fake.mem[fuzz_sess.sw[i].addr] == 0xcc);
    gdb_session_debug_state(&fuzz_sess, &d);
    for (unsigned i = 0; i < 4; i++)
        if (d.dr7 & (3ULL << (2 * i)))
            FUZZ_CHECK(fuzz_sess.hw[i].used);
}

/* Marks what a write packet (M, G, P) in the session's last packet may touch. */
static void fuzz_note_write(void)
{
    const char *p = fuzz_sess.rx.buf;
    uint64_t addr, len;

    if (p[0] != 'M')
        return;
    fuzz_phys_written |= fuzz_sess.phys;
    p++;
    if (gdb_parse_hex(&p, &addr) || *p++ != ',' || gdb_parse_hex(&p, &len))
        return;
    for (uint64_t i = 0; i < len && addr + i < FAKE_GDB_MEM; i++)
        fuzz_written[addr + i] = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    memset(&fuzz_fake, 0, sizeof(fuzz_fake));
    fuzz_fake.nr_cpus = (data[0] & 3) + 1;
    fuzz_fake.refuse_debug = (data[0] & 0x80) ? -EOPNOTSUPP : 0;
    for (unsigned i = 0; i < FAKE_GDB_MEM; i++)
        fuzz_fake.mem[i] = (uint8_t)(i * 7 + (i >> 8));
    for (unsigned c = 0; c < FAKE_GDB_CPUS; c++)
        fuzz_fake.regs[c].regs.rip = 0x1000 + c;
    memcpy(fuzz_orig, fuzz_fake.mem, sizeof(fuzz_orig));
    memset(fuzz_written, 0, sizeof(fuzz_written));
    fuzz_phys_written = false;
    gdb_session_init(&fuzz_sess, &fake_gdb_ops, &fuzz_fake);

    for (size_t i = 1; i < size; i++) {
        if (data[i] == 0xfe && i + 1 < size) {
            uint8_t e = data[++i];
            unsigned cpu = (unsigned)(e >> 2) % fuzz_fake.nr_cpus;
            switch (e & 3) {
            case 0:
                gdb_session_debug_exit(&fuzz_sess, cpu, 3, 0);
                break;
            case 1:
                gdb_session_debug_exit(&fuzz_sess, cpu, 1, (uint64_t)(e >> 4));
                break;
            case 2:
                gdb_session_interrupted(&fuzz_sess, cpu);
                break;
            default:
                gdb_session_exited(&fuzz_sess, e >> 2);
                break;
            }
        } else {
            bool was_packet = fuzz_sess.rx.state == 3; /* the last checksum digit */
            gdb_session_input(&fuzz_sess, &data[i], 1);
            if (was_packet)
                fuzz_note_write();
        }
        fuzz_check_sent();
        fuzz_check_state();
    }

    gdb_session_detach(&fuzz_sess);
    struct gdb_debug d;
    gdb_session_debug_state(&fuzz_sess, &d);
    FUZZ_CHECK(!d.sw && d.dr7 == 0);
    FUZZ_CHECK(!fuzz_fake.debug.sw && fuzz_fake.debug.dr7 == 0);
    for (unsigned i = 0; i < FAKE_GDB_MEM; i++)
        FUZZ_CHECK(fuzz_written[i] || fuzz_fake.mem[i] == fuzz_orig[i]);
    return 0;
}
