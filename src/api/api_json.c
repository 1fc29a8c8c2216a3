/* Strict JSON request bodies for the API (jansson). */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "petrel/api.h"

json_t *api_parse_body(const char *body, size_t len, const char *const *allowed, struct errbuf *eb)
{
    json_error_t jerr;
    const char *key;
    json_t *value;

    if (len == 0) {
        err_set(eb, -EINVAL, "the request needs a JSON body");
        return NULL;
    }
    if (len > API_MAX_BODY) {
        err_set(eb, -E2BIG, "the request body is %zu bytes; the limit is %d", len, API_MAX_BODY);
        return NULL;
    }
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_set(eb, -EINVAL, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        err_set(eb, -EINVAL, "the body must be a JSON object");
        goto err;
    }
    json_object_foreach(root, key, value)
    {
        bool known = false;
        for (const char *const *a = allowed; *a; a++)
            known = known || strcmp(*a, key) == 0;
        if (!known) {
            err_set(eb, -EINVAL, "unknown field \"%s\"", key);
            goto err;
        }
        if (!json_is_string(value)) {
            err_set(eb, -EINVAL, "field \"%s\" must be a string", key);
            goto err;
        }
    }
    return root;
err:
    json_decref(root);
    return NULL;
}
