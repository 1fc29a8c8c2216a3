/*
 * Fuzz target for what an API client controls: request bodies (through the
 * strict JSON validator every route uses) and, with the first byte choosing,
 * HTTP responses as the CLI parses them, or a chunked event stream (GET /events)
 * as the CLI decodes it, fed in pieces whose size the first byte also picks. Must
 * never crash, leak, decode more bytes than came in, or accept a body with fields
 * the route does not take.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "petrel/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const fields[] = {"state", "action_type", NULL};

    if (size == 0)
        return 0;
    if (data[0] & 1) {
        struct api_response resp;
        if (api_parse_response((const char *)data + 1, size - 1, &resp) == 0) {
            FUZZ_CHECK(resp.status >= 0 && resp.status <= 999);
            FUZZ_CHECK(resp.body != NULL);
            FUZZ_CHECK(strlen(resp.body) <= size - 1);
            api_response_free(&resp);
        }
        return 0;
    }
    if (data[0] & 2) {
        size_t step = (size_t)(data[0] >> 2) + 1;
        struct api_chunked c = {0};
        char *buf = malloc(size);
        FUZZ_CHECK(buf != NULL);
        for (size_t i = 1; i < size; i += step) {
            size_t n = size - i < step ? size - i : step;
            memcpy(buf, data + i, n);
            ssize_t r = api_chunked_decode(&c, buf, n);
            if (r < 0)
                break;
            FUZZ_CHECK((size_t)r <= n);
        }
        free(buf);
        return 0;
    }
    struct errbuf eb;
    json_t *j = api_parse_body((const char *)data + 1, size - 1, fields, &eb);
    if (!j) {
        FUZZ_CHECK(eb.msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(json_is_object(j));
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        FUZZ_CHECK(!strcmp(key, "state") || !strcmp(key, "action_type"));
        FUZZ_CHECK(json_is_string(v));
    }
    json_decref(j);
    return 0;
}
