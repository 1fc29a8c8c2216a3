/* Console escape keys: a byte-at-a-time state machine. */
#include "petrel/escape.h"

const char escape_help[] = "\r\n"
                           "petrel console keys:\r\n"
                           "  Ctrl-A x       quit petrel (the VM stops; status 0)\r\n"
                           "  Ctrl-A p       pause or resume the VM\r\n"
                           "  Ctrl-A h       show these keys\r\n"
                           "  Ctrl-A Ctrl-A  send Ctrl-A to the guest\r\n";

size_t escape_feed(struct escape *e, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len,
                   enum escape_action *action)
{
    size_t i;

    *out_len = 0;
    *action = ESCAPE_NONE;
    for (i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (!e->armed) {
            if (c == ESCAPE_CHAR)
                e->armed = true;
            else
                out[(*out_len)++] = c;
            continue;
        }
        e->armed = false;
        switch (c) {
        case ESCAPE_CHAR:
            out[(*out_len)++] = ESCAPE_CHAR;
            break;
        case 'x':
        case 'X':
            *action = ESCAPE_QUIT;
            return i + 1;
        case 'h':
        case 'H':
        case '?':
            *action = ESCAPE_HELP;
            return i + 1;
        case 'p':
        case 'P':
            *action = ESCAPE_PAUSE;
            return i + 1;
        case 'd':
        case 'D':
            *action = ESCAPE_DETACH;
            return i + 1;
        default:
            break; /* unknown key: dropped with its Ctrl-A */
        }
    }
    return i;
}
