/*
 * Unit tests for the CLI's HTTP response parser (api_client.c) on inputs a
 * broken or hostile server could send: it must stay inside the bytes it was
 * given and reject a Content-Length that is not a number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "petrel/api.h"

/* Two pages, the second inaccessible: a buffer placed at the end of the first faults on overread.
 */
struct guarded {
    uint8_t *map;
    size_t page;
};

static int guarded_setup(void **state)
{
    static struct guarded g;
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    g.map = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g.map == MAP_FAILED)
        return -1;
    if (mprotect(g.map + g.page, g.page, PROT_NONE) != 0)
        return -1;
    *state = &g;
    return 0;
}

static int guarded_teardown(void **state)
{
    struct guarded *g = *state;
    munmap(g->map, 2 * g->page);
    return 0;
}

/* Copies s (without its NUL) so that its last byte is the last readable one. */
static const char *at_page_end(struct guarded *g, const char *s, size_t *len)
{
    *len = strlen(s);
    char *p = (char *)g->map + g->page - *len;
    memcpy(p, s, *len);
    return p;
}

static void test_guard_valid(void **state)
{
    struct guarded *g = *state;
    struct api_response r;
    size_t len;
    const char *buf = at_page_end(g, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", &len);

    assert_int_equal(api_parse_response(buf, len, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    api_response_free(&r);

    /* Optional whitespace after the value is allowed (RFC 9110, 5.5). */
    buf = at_page_end(g, "HTTP/1.1 200 OK\r\nContent-Length: 2 \r\n\r\n{}", &len);
    assert_int_equal(api_parse_response(buf, len, &r), 0);
    assert_string_equal(r.body, "{}");
    api_response_free(&r);
}

/*
 * A Content-Length of only white space is malformed. Parsing it with
 * strtoul() skips the spaces and the CR LF CR LF that follow as white space
 * and takes the body's digits for the length, reading on past the end of the
 * buffer: here the body is the last byte before an inaccessible page.
 */
static void test_content_length_blank_overread(void **state)
{
    struct guarded *g = *state;
    struct api_response r;
    size_t len;
    const char *buf = at_page_end(g, "HTTP/1.1 200 OK\r\nContent-Length:   \r\n\r\n12", &len);

    assert_int_equal(api_parse_response(buf, len, &r), -EPROTO);
}

/* An empty Content-Length value is malformed too (it is not silently ignored). */
static void test_content_length_empty(void **state)
{
    struct guarded *g = *state;
    struct api_response r;
    size_t len;
    const char *buf = at_page_end(g, "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n7", &len);

    int ret = api_parse_response(buf, len, &r);
    if (ret == 0)
        api_response_free(&r);
    assert_int_equal(ret, -EPROTO);
}

/* Content-Length is 1*DIGIT (RFC 9110, 8.6): signs and trailing junk are malformed. */
static void test_content_length_not_a_number(void **state)
{
    struct guarded *g = *state;
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct api_response r;
        size_t len;
        const char *buf = at_page_end(g, bad[i], &len);
        int ret = api_parse_response(buf, len, &r);
        if (ret == 0)
            api_response_free(&r);
        if (ret != -EPROTO)
            fail_msg("accepted \"%s\" (%d)", bad[i], ret);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_valid),
        cmocka_unit_test(test_content_length_blank_overread),
        cmocka_unit_test(test_content_length_empty),
        cmocka_unit_test(test_content_length_not_a_number),
    };
    return cmocka_run_group_tests(tests, guarded_setup, guarded_teardown);
}
