/* Small helpers shared by every module: error buffers, sizes, attributes. */
#ifndef PETREL_UTIL_H
#define PETREL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MUST_CHECK    __attribute__((warn_unused_result))
#define PRINTF(f, a)  __attribute__((format(printf, f, a)))

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/*
 * A user-facing error message, filled in where the problem is understood and
 * printed once at the boundary (the CLI or an API reply).
 */
struct errbuf {
    char msg[512];
};

/* Records a message in eb (if eb is not NULL) and returns err, a negative errno. */
int err_set(struct errbuf *eb, int err, const char *fmt, ...) PRINTF(3, 4);

/*
 * Parses a size such as "512M", "1G", "1536" (MiB when no unit is given),
 * "64KiB". Returns 0 or -EINVAL, -ERANGE.
 */
int parse_size(const char *s, uint64_t *out) MUST_CHECK;

/* Parses a decimal unsigned integer in [min, max]. Returns 0, -EINVAL or -ERANGE. */
int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out) MUST_CHECK;

/* Formats a byte count for humans, exactly ("256 MiB", "1.5 GiB", "4 KiB", "1536 bytes"). */
const char *fmt_size(uint64_t bytes, char *buf, size_t len);

/*
 * Opens a directory that must be this user's alone, as OpenSSH and tmux check
 * theirs: a real directory (a symbolic link is refused, never followed), owned
 * by the effective uid and writable by nobody else. With create, a missing one
 * is made with mode 0700. what names it in messages ("the socket directory").
 * Returns an O_DIRECTORY fd, or -errno with a message naming the directory and
 * what is wrong: -ENOENT if missing (and !create), -ELOOP a symbolic link,
 * -ENOTDIR not a directory, -EPERM another owner or writable by others.
 */
int dir_open_private(const char *what, const char *path, bool create, struct errbuf *eb) MUST_CHECK;

/* CLOCK_MONOTONIC in nanoseconds: the clock of write_until()'s deadline. */
uint64_t now_ns(void);

#define WRITE_NO_DEADLINE UINT64_MAX

/*
 * Writes buf to fd, retrying on EINTR. When fd would block (it is
 * non-blocking and full) waits for room, but not past deadline_ns (a now_ns()
 * time, or WRITE_NO_DEADLINE). *done is the count written. Returns 0 when all
 * of buf was written, -ETIMEDOUT when the deadline came first, or -errno. A
 * blocking fd that is full blocks inside write(): only O_NONBLOCK bounds it.
 */
int write_until(int fd, const void *buf, size_t len, uint64_t deadline_ns, size_t *done) MUST_CHECK;

/* write_until() without a deadline, for blocking fds (the CLI's). 0 or -errno. */
int write_all(int fd, const void *buf, size_t len) MUST_CHECK;

#endif
