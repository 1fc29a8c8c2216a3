/* The GDB remote protocol's framing: packets in, framed replies out (gdb_proto.h). */
#include "petrel/gdb_proto.h"

#include <errno.h>
#include <string.h>

void gdb_rx_init(struct gdb_rx *rx)
{
    memset(rx, 0, sizeof(*rx));
}

int gdb_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * A '$' inside a packet starts the packet again: gdb resends a whole packet
 * after a '-', and a byte lost on the way must not make the next one look
 * bad. '#' ends the payload; the two checksum digits follow.
 */
enum gdb_rx_event gdb_rx_feed(struct gdb_rx *rx, uint8_t c)
{
    switch (rx->state) {
    case GDB_RX_IDLE:
        if (c == '$') {
            rx->state = GDB_RX_DATA;
            rx->len = 0;
            rx->sum = 0;
            rx->overflow = rx->bad_digit = false;
            return GDB_RX_NONE;
        }
        if (c == '+')
            return GDB_RX_ACK;
        if (c == '-')
            return GDB_RX_NACK;
        if (c == 0x03)
            return GDB_RX_INTERRUPT;
        return GDB_RX_NONE;
    case GDB_RX_DATA:
        if (c == '$') {
            rx->len = 0;
            rx->sum = 0;
            rx->overflow = false;
            return GDB_RX_NONE;
        }
        if (c == '#') {
            rx->state = GDB_RX_CSUM1;
            return GDB_RX_NONE;
        }
        rx->sum = (uint8_t)(rx->sum + c);
        if (rx->len < GDB_PACKET_MAX)
            rx->buf[rx->len++] = (char)c;
        else
            rx->overflow = true;
        return GDB_RX_NONE;
    case GDB_RX_CSUM1:
        rx->bad_digit = gdb_hexval(c) < 0;
        rx->csum_hi = (uint8_t)(rx->bad_digit ? 0 : gdb_hexval(c));
        rx->state = GDB_RX_CSUM2;
        return GDB_RX_NONE;
    case GDB_RX_CSUM2: {
        rx->state = GDB_RX_IDLE;
        int lo = gdb_hexval(c);
        if (rx->bad_digit || lo < 0 || rx->overflow || (uint8_t)(rx->csum_hi << 4 | lo) != rx->sum)
            return GDB_RX_BAD_PACKET;
        rx->buf[rx->len] = '\0';
        return GDB_RX_PACKET;
    }
    }
    rx->state = GDB_RX_IDLE;
    return GDB_RX_NONE;
}

int gdb_frame(char *out, size_t cap, const void *payload, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = payload;
    size_t n = 0;
    uint8_t sum = 0;

    if (cap < 1)
        return -ENOSPC;
    out[n++] = '$';
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        bool esc = c == '$' || c == '#' || c == '}' || c == '*';
        if (cap - n < (esc ? 2U : 1U) + 3U)
            return -ENOSPC;
        if (esc) {
            out[n++] = '}';
            sum = (uint8_t)(sum + '}');
            c ^= 0x20;
        }
        out[n++] = (char)c;
        sum = (uint8_t)(sum + c);
    }
    if (cap - n < 3)
        return -ENOSPC;
    out[n++] = '#';
    out[n++] = hex[sum >> 4];
    out[n++] = hex[sum & 15];
    return (int)n;
}

void gdb_tohex(char *out, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = data;

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
}

int gdb_fromhex(void *out, const char *s, size_t len)
{
    uint8_t *p = out;

    for (size_t i = 0; i < len; i++) {
        int hi = gdb_hexval((unsigned char)s[2 * i]);
        if (hi < 0)
            return -EINVAL;
        int lo = gdb_hexval((unsigned char)s[2 * i + 1]);
        if (lo < 0)
            return -EINVAL;
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int gdb_parse_hex(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    int d;

    while ((d = gdb_hexval((unsigned char)*p)) >= 0) {
        if (v >> 60)
            return -ERANGE; /* leading zeros are free; a 17th significant digit is not */
        v = v << 4 | (uint64_t)d;
        p++;
    }
    if (p == *s)
        return -EINVAL;
    *s = p;
    *out = v;
    return 0;
}
