/*
 * Fuzz target: the console's escape keys (what a person at the terminal, or a
 * program piping into `petrel run`, types).
 *
 * Input format: byte 0 seeds the split points; the rest is the typed stream. The
 * stream is fed to escape_feed() in reads of 1 to 16 bytes (sizes taken from the
 * stream's own bytes, so every split is reachable), acting on each action and
 * feeding the rest, as the console does. A model that reads the whole stream at
 * once must agree on every byte for the guest and every action, in order: the
 * escape state machine may not depend on how the terminal's reads split.
 */
#include <string.h>

#include "fuzz.h"
#include "petrel/escape.h"

#define MAX_STREAM 4096

static enum escape_action model_key(uint8_t c)
{
    switch (c) {
    case 'x':
    case 'X':
        return ESCAPE_QUIT;
    case 'h':
    case 'H':
    case '?':
        return ESCAPE_HELP;
    case 'p':
    case 'P':
        return ESCAPE_PAUSE;
    case 'd':
    case 'D':
        return ESCAPE_DETACH;
    default:
        return ESCAPE_NONE;
    }
}

/* The whole stream at once: the guest's bytes and the actions, in order. */
static void model(const uint8_t *in, size_t len, uint8_t *out, size_t *out_len,
                  enum escape_action *acts, size_t *n_acts)
{
    bool armed = false;
    *out_len = *n_acts = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (!armed) {
            if (c == ESCAPE_CHAR)
                armed = true;
            else
                out[(*out_len)++] = c;
            continue;
        }
        armed = false;
        if (c == ESCAPE_CHAR)
            out[(*out_len)++] = c;
        else if (model_key(c) != ESCAPE_NONE)
            acts[(*n_acts)++] = model_key(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t want[MAX_STREAM], got[MAX_STREAM], chunk_out[16];
    static enum escape_action want_acts[MAX_STREAM], got_acts[MAX_STREAM];
    size_t want_len, n_want, got_len = 0, n_got = 0;

    if (size < 1 || size - 1 > MAX_STREAM)
        return 0;
    uint8_t split = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    model(in, len, want, &want_len, want_acts, &n_want);

    struct escape e = {0};
    size_t pos = 0;
    while (pos < len) {
        size_t n = 1 + ((split ^ in[pos]) & 15);
        if (n > len - pos)
            n = len - pos;
        split = (uint8_t)(split * 31 + 7);
        /* One read: fed until it is used up, acting on each action as the console does. */
        size_t off = 0;
        while (off < n) {
            size_t out_len = 0;
            enum escape_action act;
            size_t used = escape_feed(&e, in + pos + off, n - off, chunk_out, &out_len, &act);
            FUZZ_CHECK(used >= 1 && used <= n - off);
            FUZZ_CHECK(out_len <= used);
            FUZZ_CHECK(act == ESCAPE_NONE || off + used <= n);
            /* An action ends the call right after its key. */
            FUZZ_CHECK(act == ESCAPE_NONE || model_key(in[pos + off + used - 1]) == act);
            FUZZ_CHECK(got_len + out_len <= len);
            memcpy(got + got_len, chunk_out, out_len);
            got_len += out_len;
            if (act != ESCAPE_NONE)
                got_acts[n_got++] = act;
            off += used;
        }
        pos += n;
    }
    FUZZ_CHECK(got_len == want_len && memcmp(got, want, want_len) == 0);
    FUZZ_CHECK(n_got == n_want && memcmp(got_acts, want_acts, n_want * sizeof(*want_acts)) == 0);
    return 0;
}
