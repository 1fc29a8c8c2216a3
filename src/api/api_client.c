/*
 * The CLI's side of the API: one HTTP/1.1 request over a plain unix socket
 * (libevent 2.1's HTTP client cannot connect to one), read to the end.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "petrel/api.h"

#define API_RESPONSE_MAX (1024 * 1024)

void api_response_free(struct api_response *resp)
{
    free(resp->body);
    resp->body = NULL;
}

/*
 * A header's decimal value: optional blanks, 1-18 digits, optional blanks, the
 * line's end. Never reads at or past end (the end of the headers). -1 if bad.
 */
static long long api_header_number(const char *p, const char *end)
{
    long long n = 0;
    int digits = 0;

    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (p < end && isdigit((unsigned char)*p)) {
        if (++digits > 18)
            return -1;
        n = n * 10 + (*p++ - '0');
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (!digits || (p < end && *p != '\r' && *p != '\n'))
        return -1;
    return n;
}

int api_parse_response(const char *buf, size_t len, struct api_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    /* Status line: HTTP/1.x NNN reason */
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
        !isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) ||
        !isdigit((unsigned char)buf[11]))
        return -EPROTO;
    resp->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');

    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++) {
        if (!memcmp(buf + i, "\r\n\r\n", 4)) {
            end = buf + i;
            break;
        }
    }
    if (!end)
        return -EPROTO;
    const char *body = end + 4;
    size_t body_len = len - (size_t)(body - buf);

    /* Honour Content-Length when present: the body may not be cut short. */
    for (const char *line = memchr(buf, '\n', (size_t)(end - buf)); line && line < end;
         line = memchr(line, '\n', (size_t)(end - line))) {
        line++;
        static const char cl[] = "content-length:";
        if ((size_t)(end - line) >= sizeof(cl) - 1 && !strncasecmp(line, cl, sizeof(cl) - 1)) {
            long long n = api_header_number(line + sizeof(cl) - 1, end);
            if (n < 0 || (uint64_t)n > body_len)
                return -EPROTO;
            body_len = (size_t)n;
        }
    }
    resp->body = malloc(body_len + 1);
    if (!resp->body)
        return -ENOMEM;
    memcpy(resp->body, body, body_len);
    resp->body[body_len] = '\0';
    return 0;
}

static long long api_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to become ready for events; -ETIMEDOUT past the deadline. */
static int api_wait(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - api_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

int api_client_call(const char *sock_path, const char *method, const char *path, const char *body,
                    int timeout_ms, struct api_response *resp, struct errbuf *eb)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    long long deadline = api_now_ms() + timeout_ms;
    char *req = NULL, *buf = NULL;
    size_t len = 0;
    int ret;

    memset(resp, 0, sizeof(*resp));
    if (strlen(sock_path) >= sizeof(addr.sun_path))
        return err_set(eb, -ENAMETOOLONG, "socket path %s is too long", sock_path);
    memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(eb, -errno, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int err = errno;
        ret = err_set(eb, -err, "%s", strerror(err));
        goto out;
    }
    size_t blen = body ? strlen(body) : 0;
    int n;
    if (body)
        n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
                     "Connection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, blen, body);
    else
        n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
                     "Connection: close\r\n\r\n",
                     method, path);
    if (n < 0) {
        req = NULL;
        ret = err_set(eb, -ENOMEM, "out of memory");
        goto out;
    }
    ret = write_all(fd, req, (size_t)n);
    if (ret) {
        err_set(eb, ret, "sending the request: %s", strerror(-ret));
        goto out;
    }
    buf = malloc(API_RESPONSE_MAX);
    if (!buf) {
        ret = err_set(eb, -ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        ret = api_wait(fd, POLLIN, deadline);
        if (ret) {
            err_set(eb, ret, "no answer within %d ms", timeout_ms);
            goto out;
        }
        ssize_t r = read(fd, buf + len, API_RESPONSE_MAX - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ret = err_set(eb, -errno, "reading the answer: %s", strerror(errno));
            goto out;
        }
        if (r == 0 || (len += (size_t)r) == API_RESPONSE_MAX)
            break;
    }
    ret = api_parse_response(buf, len, resp);
    if (ret)
        err_set(eb, ret, "the answer is not valid HTTP (%zu bytes)", len);
out:
    free(req);
    free(buf);
    close(fd);
    return ret;
}

int api_client_open_dir(char *dir, size_t len, struct errbuf *eb)
{
    if (api_runtime_dir(dir, len))
        return err_set(eb, -ENAMETOOLONG, "the socket directory's path is too long");
    return dir_open_private("the socket directory", dir, false, eb);
}
