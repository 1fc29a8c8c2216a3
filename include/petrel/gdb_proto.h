/*
 * The GDB remote serial protocol's framing, without I/O: what a client sends
 * ("$payload#cs", acks '+'/'-', the interrupt byte 0x03) turned into events,
 * and replies framed with their checksums. Everything here reads bytes a
 * client controls: lengths are bounded, nothing is trusted.
 */
#ifndef PETREL_GDB_PROTO_H
#define PETREL_GDB_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/util.h"

/* The largest packet petrel takes or sends (qSupported's PacketSize). */
#define GDB_PACKET_MAX 4096

enum gdb_rx_event {
    GDB_RX_NONE,       /* the byte was taken; nothing complete yet */
    GDB_RX_PACKET,     /* rx->buf holds a packet (NUL-terminated, rx->len bytes), checksum good */
    GDB_RX_BAD_PACKET, /* a packet ended with a bad checksum or was too long: send '-' */
    GDB_RX_ACK,        /* '+' */
    GDB_RX_NACK,       /* '-': resend the last reply */
    GDB_RX_INTERRUPT,  /* 0x03 outside a packet (gdb's Ctrl-C) */
};

struct gdb_rx {
    enum { GDB_RX_IDLE, GDB_RX_DATA, GDB_RX_CSUM1, GDB_RX_CSUM2 } state;
    char buf[GDB_PACKET_MAX + 1];
    size_t len;
    uint8_t sum;     /* running checksum of the payload */
    uint8_t csum_hi; /* first checksum digit */
    bool overflow;   /* the payload did not fit: the packet is refused */
    bool bad_digit;  /* a checksum digit was not hex */
};

void gdb_rx_init(struct gdb_rx *rx);

/* Takes one byte from the client. Bytes outside a packet other than + - 0x03 are ignored. */
enum gdb_rx_event gdb_rx_feed(struct gdb_rx *rx, uint8_t c);

/*
 * Frames payload as "$payload#cs" into out (cap bytes), escaping '$', '#',
 * '}' and '*' with '}' (binary replies). Returns the framed length, or
 * -ENOSPC if it does not fit.
 */
int gdb_frame(char *out, size_t cap, const void *payload, size_t len) MUST_CHECK;

/* The value of a hex digit, or -1. */
int gdb_hexval(int c);

/* Writes len bytes as 2*len lowercase hex digits (no NUL). */
void gdb_tohex(char *out, const void *data, size_t len);

/* Reads exactly 2*len hex digits from s into out: 0, or -EINVAL. */
int gdb_fromhex(void *out, const char *s, size_t len) MUST_CHECK;

/*
 * Parses a hex number at *s (at least one digit, at most 64 bits), advancing
 * *s past it: 0, or -EINVAL (no digit) or -ERANGE (too long).
 */
int gdb_parse_hex(const char **s, uint64_t *out) MUST_CHECK;

#endif
