/* The API's parsers: strict request bodies, HTTP responses, names and socket paths. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "petrel/api.h"

static const char *const state_only[] = {"state", NULL};

static void expect_body_error(const char *body, const char *words)
{
    struct errbuf eb = {{0}};
    json_t *j = api_parse_body(body, strlen(body), state_only, &eb);
    assert_null(j);
    if (!strstr(eb.msg, words))
        fail_msg("body %s: message \"%s\" lacks \"%s\"", body, eb.msg, words);
}

static void good_body(void **state)
{
    struct errbuf eb;
    const char *body = "{\"state\": \"Paused\"}";
    (void)state;

    json_t *j = api_parse_body(body, strlen(body), state_only, &eb);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "Paused");
    json_decref(j);
}

static void bad_bodies(void **state)
{
    (void)state;
    expect_body_error("", "needs a JSON body");
    expect_body_error("{\"state\": \"Paused\"", "malformed JSON");
    expect_body_error("[\"Paused\"]", "JSON object");
    expect_body_error("\"Paused\"", "malformed JSON"); /* jansson wants an object or array */
    expect_body_error("{\"state\": 1}", "must be a string");
    expect_body_error("{\"state\": null}", "must be a string");
    expect_body_error("{\"state\": \"Paused\", \"extra\": \"x\"}", "unknown field \"extra\"");
    expect_body_error("{\"state\": \"a\", \"state\": \"b\"}", "malformed JSON");
    expect_body_error("{\"state\": \"a\"} trailing", "malformed JSON");
}

static void oversized_body(void **state)
{
    struct errbuf eb;
    size_t len = API_MAX_BODY + 1;
    char *body = malloc(len);
    (void)state;

    memset(body, ' ', len);
    assert_null(api_parse_body(body, len, state_only, &eb));
    assert_non_null(strstr(eb.msg, "limit"));
    free(body);
}

static void responses(void **state)
{
    struct api_response r;
    const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      "Content-Length: 4\r\n\r\n{}  extra";
    const char nc[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
    const char eof[] = "HTTP/1.0 400 Bad Request\r\n\r\n{\"fault_message\":\"x\"}";
    (void)state;

    assert_int_equal(api_parse_response(ok, sizeof(ok) - 1, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}  "); /* Content-Length bounds the body */
    api_response_free(&r);
    assert_int_equal(api_parse_response(nc, sizeof(nc) - 1, &r), 0);
    assert_int_equal(r.status, 204);
    assert_string_equal(r.body, "");
    api_response_free(&r);
    assert_int_equal(api_parse_response(eof, sizeof(eof) - 1, &r), 0);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"fault_message\":\"x\"}");
    api_response_free(&r);
}

static void bad_responses(void **state)
{
    struct api_response r;
    const char *bad[] = {
        "",
        "HTTP/1.1",
        "SMTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno end of headers",
        "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(api_parse_response(bad[i], strlen(bad[i]), &r), -EPROTO);
}

static void names_and_paths(void **state)
{
    char buf[API_PATH_MAX], con[API_PATH_MAX];
    char long_name[API_NAME_MAX + 2];
    (void)state;

    assert_true(api_name_valid("web1"));
    assert_true(api_name_valid("a.b_c-d"));
    assert_false(api_name_valid(""));
    assert_false(api_name_valid(".hidden"));
    assert_false(api_name_valid("-opt"));
    assert_false(api_name_valid("a/b"));
    assert_false(api_name_valid("a b"));
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_false(api_name_valid(long_name));

    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    assert_int_equal(api_sock_path("web1", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/run/user/1000/petrel/web1.sock");
    assert_int_equal(api_console_path(buf, con, sizeof(con)), 0);
    assert_string_equal(con, "/run/user/1000/petrel/web1.console");
    assert_int_equal(api_console_path("/x/my-api", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/x/my-api.console");
    unsetenv("XDG_RUNTIME_DIR");
    assert_int_equal(api_sock_path("web1", buf, sizeof(buf)), 0);
    assert_true(!strcmp(buf, "/run/petrel/web1.sock") || !strncmp(buf, "/tmp/petrel-", 12));
    assert_int_equal(api_sock_path("web1", buf, 10), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_body),      cmocka_unit_test(bad_bodies),
        cmocka_unit_test(oversized_body), cmocka_unit_test(responses),
        cmocka_unit_test(bad_responses),  cmocka_unit_test(names_and_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
