/*
 * Unit tests for util.c: size and integer parsing, size formatting, errbuf,
 * private directories (as root, also as another user).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "as_user.h"
#include "petrel/util.h"

/* Parses s and checks it gives want. */
static void expect_size(const char *s, uint64_t want)
{
    uint64_t v = 0xdeadbeef;
    int ret = parse_size(s, &v);
    if (ret != 0)
        fail_msg("parse_size(\"%s\") = %d, want 0", s, ret);
    if (v != want)
        fail_msg("parse_size(\"%s\") gave %llu, want %llu", s, (unsigned long long)v,
                 (unsigned long long)want);
}

/* Parses s and checks it fails with err without touching the output. */
static void expect_size_error(const char *s, int err)
{
    uint64_t v = 0x1234;
    int ret = parse_size(s, &v);
    if (ret != err)
        fail_msg("parse_size(\"%s\") = %d, want %d", s ? s : "(null)", ret, err);
    assert_int_equal(v, 0x1234);
}

static void test_parse_size_units(void **state)
{
    (void)state;
    expect_size("512M", 512 * MiB);
    expect_size("512m", 512 * MiB);
    expect_size("512MB", 512 * MiB);
    expect_size("512MiB", 512 * MiB);
    expect_size("512mib", 512 * MiB);
    expect_size("64K", 64 * KiB);
    expect_size("64k", 64 * KiB);
    expect_size("64KB", 64 * KiB);
    expect_size("64KiB", 64 * KiB);
    expect_size("1G", GiB);
    expect_size("3g", 3 * GiB);
    expect_size("2GiB", 2 * GiB);
    expect_size("1T", 1024 * GiB);
    expect_size("2TiB", 2048 * GiB);
    expect_size("5tb", 5120 * GiB);
}

static void test_parse_size_bare_and_bytes(void **state)
{
    (void)state;
    /* A bare number is MiB. */
    expect_size("1536", 1536 * MiB);
    expect_size("1", MiB);
    expect_size("0", 0);
    expect_size("0G", 0);
    /* "b" means bytes, in either case. */
    expect_size("100b", 100);
    expect_size("4096B", 4096);
    expect_size("0b", 0);
    expect_size("18446744073709551615b", UINT64_MAX);
    /* Leading zeros are decimal, not octal. */
    expect_size("010M", 10 * MiB);
}

static void test_parse_size_overflow(void **state)
{
    (void)state;
    /* Largest values that still fit, then one more. */
    expect_size("17592186044415", (UINT64_MAX >> 20) << 20); /* 2^44 - 1 MiB */
    expect_size_error("17592186044416", -ERANGE);            /* 2^44 MiB = 2^64 */
    expect_size("16777215T", (UINT64_MAX >> 40) << 40);
    expect_size_error("16777216T", -ERANGE);
    expect_size_error("17179869184G", -ERANGE);
    expect_size_error("18014398509481984K", -ERANGE);
    /* Beyond what strtoull holds at all. */
    expect_size_error("18446744073709551616b", -ERANGE);
    expect_size_error("99999999999999999999999999", -ERANGE);
}

static void test_parse_size_junk(void **state)
{
    (void)state;
    expect_size_error(NULL, -EINVAL);
    expect_size_error("", -EINVAL);
    expect_size_error("M", -EINVAL);
    expect_size_error("abc", -EINVAL);
    expect_size_error("12X", -EINVAL);
    expect_size_error("1.5G", -EINVAL);
    expect_size_error("-1", -EINVAL);
    expect_size_error("+1", -EINVAL);
    expect_size_error(" 1", -EINVAL);
    expect_size_error("1 G", -EINVAL);
    expect_size_error("1G ", -EINVAL);
    expect_size_error("1GiBx", -EINVAL);
    expect_size_error("1GG", -EINVAL);
    expect_size_error("0x10", -EINVAL);
    expect_size_error("1e3", -EINVAL);
    expect_size_error("1P", -EINVAL);
}

/* Parses s within [min, max] and checks the result. */
static void expect_uint(const char *s, unsigned long min, unsigned long max, int err,
                        unsigned long want)
{
    unsigned long v = 777;
    int ret = parse_uint(s, min, max, &v);
    if (ret != err)
        fail_msg("parse_uint(\"%s\", %lu, %lu) = %d, want %d", s ? s : "(null)", min, max, ret,
                 err);
    assert_int_equal(v, err ? 777 : want);
}

static void test_parse_uint_ranges(void **state)
{
    (void)state;
    expect_uint("0", 0, 10, 0, 0);
    expect_uint("10", 1, 10, 0, 10);
    expect_uint("1", 1, 10, 0, 1);
    expect_uint("11", 1, 10, -ERANGE, 0);
    expect_uint("0", 1, 10, -ERANGE, 0);
    expect_uint("4096", 1, 4096, 0, 4096);
    expect_uint("4097", 1, 4096, -ERANGE, 0);
    expect_uint("007", 1, 10, 0, 7);

    char max[32];
    snprintf(max, sizeof(max), "%lu", ULONG_MAX);
    expect_uint(max, 0, ULONG_MAX, 0, ULONG_MAX);
    expect_uint("99999999999999999999999", 0, ULONG_MAX, -ERANGE, 0);
}

static void test_parse_uint_junk(void **state)
{
    (void)state;
    expect_uint(NULL, 0, 10, -EINVAL, 0);
    expect_uint("", 0, 10, -EINVAL, 0);
    expect_uint("5x", 0, 10, -EINVAL, 0);
    expect_uint("-1", 0, 10, -EINVAL, 0);
    expect_uint("+1", 0, 10, -EINVAL, 0);
    expect_uint(" 5", 0, 10, -EINVAL, 0);
    expect_uint("5 ", 0, 10, -EINVAL, 0);
    expect_uint("0x5", 0, 10, -EINVAL, 0);
}

/* Formats bytes and compares with want. */
static void expect_fmt(uint64_t bytes, const char *want)
{
    char buf[64];
    memset(buf, 'z', sizeof(buf));
    const char *got = fmt_size(bytes, buf, sizeof(buf));
    assert_ptr_equal(got, buf);
    if (strcmp(got, want) != 0)
        fail_msg("fmt_size(%llu) = \"%s\", want \"%s\"", (unsigned long long)bytes, got, want);
}

static void test_fmt_size(void **state)
{
    (void)state;
    expect_fmt(0, "0 bytes");
    expect_fmt(1023, "1023 bytes");
    expect_fmt(1536, "1536 bytes");
    expect_fmt(KiB, "1 KiB");
    expect_fmt(4096, "4 KiB");
    expect_fmt(MiB - KiB, "1023 KiB");
    expect_fmt(MiB, "1 MiB");
    expect_fmt(MiB + 512 * KiB, "1.5 MiB");
    expect_fmt(MiB + KiB, "1025 KiB");
    expect_fmt(256 * MiB, "256 MiB");
    expect_fmt(GiB, "1 GiB");
    expect_fmt(GiB + GiB / 2, "1.5 GiB");
    expect_fmt(3 * GiB + GiB / 4, "3.25 GiB");
    expect_fmt(GiB + MiB, "1025 MiB");
    expect_fmt(1024 * GiB, "1024 GiB");
}

/*
 * Values that need more than four significant digits must still be printed
 * exactly: they appear in messages that compare two sizes ("needs X, only
 * Y"), where a rounded or exponent form is wrong or unreadable.
 */
static void test_fmt_size_exact(void **state)
{
    (void)state;
    expect_fmt(GiB + 256 * KiB, "1024.25 MiB");
    expect_fmt(2 * GiB - 256 * KiB, "2047.75 MiB");
    expect_fmt(10 * GiB + MiB, "10241 MiB");
}

static void test_fmt_size_truncates(void **state)
{
    (void)state;
    char buf[5];
    memset(buf, 'z', sizeof(buf));
    fmt_size(256 * MiB, buf, sizeof(buf));
    assert_string_equal(buf, "256 ");
}

static void test_err_set(void **state)
{
    (void)state;
    struct errbuf eb;
    memset(&eb, 0, sizeof(eb));
    assert_int_equal(err_set(&eb, -ENOENT, "no %s at %d", "thing", 42), -ENOENT);
    assert_string_equal(eb.msg, "no thing at 42");
    /* A NULL errbuf is allowed: only the error comes back. */
    assert_int_equal(err_set(NULL, -EIO, "ignored %d", 1), -EIO);

    /* Long messages are cut, always terminated. */
    char big[1024];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(err_set(&eb, -E2BIG, "%s", big), -E2BIG);
    assert_int_equal(strlen(eb.msg), sizeof(eb.msg) - 1);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(msg, len, __VA_ARGS__);                                                       \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

struct dir_case {
    const char *scratch;         /* a directory this user may write */
    const char *foreign;         /* another user's directory, mode 0755 */
    uid_t foreign_uid;           /* its owner */
    const char *foreign_private; /* another user's directory, mode 0700 (or NULL) */
};

/*
 * What dir_open_private() must do for whoever runs it. A plain function (no
 * cmocka assertions), so that it can run in a child as another user.
 */
static int dir_battery(void *arg, char *msg, size_t len)
{
    static const mode_t unsafe[] = {0777, 0770, 0720, 0702, 01777};
    const struct dir_case *c = arg;
    char path[256], link[256], file[256], mode[16];
    struct errbuf eb;
    struct stat st;
    int fd;

    snprintf(path, sizeof(path), "%s/dir", c->scratch);
    snprintf(link, sizeof(link), "%s/link", c->scratch);
    snprintf(file, sizeof(file), "%s/file", c->scratch);

    fd = dir_open_private("the test directory", path, false, &eb);
    CHECK(fd == -ENOENT, "a missing directory without create: %d, want -ENOENT", fd);

    /* Made with mode 0700 whatever the umask. */
    mode_t old = umask(0);
    fd = dir_open_private("the test directory", path, true, &eb);
    umask(old);
    CHECK(fd >= 0, "creating %s: %d (%s)", path, fd, eb.msg);
    CHECK(fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 &&
              st.st_uid == geteuid(),
          "%s was made with mode %04o, owner %u", path, (unsigned)(st.st_mode & 07777),
          (unsigned)st.st_uid);
    close(fd);
    fd = dir_open_private("the test directory", path, true, &eb);
    CHECK(fd >= 0, "an existing private directory: %d (%s)", fd, eb.msg);
    close(fd);

    /* Writable by the group or by others: refused, naming the directory and its mode. */
    for (size_t i = 0; i < ARRAY_SIZE(unsafe); i++) {
        CHECK(chmod(path, unsafe[i]) == 0, "chmod %s: %s", path, strerror(errno));
        fd = dir_open_private("the test directory", path, false, &eb);
        snprintf(mode, sizeof(mode), "mode %04o", (unsigned)unsafe[i]);
        CHECK(fd == -EPERM && strstr(eb.msg, path) && strstr(eb.msg, "writable by others") &&
                  strstr(eb.msg, mode),
              "mode %04o: %d, \"%s\"", (unsigned)unsafe[i], fd, eb.msg);
        if (fd >= 0)
            close(fd);
    }
    /* Readable by others is fine: the sockets in it are 0600. */
    CHECK(chmod(path, 0755) == 0, "chmod %s: %s", path, strerror(errno));
    fd = dir_open_private("the test directory", path, false, &eb);
    CHECK(fd >= 0, "mode 0755: %d (%s)", fd, eb.msg);
    close(fd);

    /* A symbolic link, even to a good directory, is refused, not followed. */
    CHECK(symlink(path, link) == 0, "symlink: %s", strerror(errno));
    fd = dir_open_private("the test directory", link, true, &eb);
    CHECK(fd == -ELOOP && strstr(eb.msg, link) && strstr(eb.msg, "symbolic link"),
          "a symbolic link: %d, \"%s\"", fd, eb.msg);

    fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0, "creating %s: %s", file, strerror(errno));
    close(fd);
    fd = dir_open_private("the test directory", file, true, &eb);
    CHECK(fd == -ENOTDIR && strstr(eb.msg, file) && strstr(eb.msg, "not a directory"),
          "a file: %d, \"%s\"", fd, eb.msg);

    /* Another user's: refused, naming both owners. */
    char owners[96];
    snprintf(owners, sizeof(owners), "owned by uid %u, not by you (uid %u)",
             (unsigned)c->foreign_uid, (unsigned)geteuid());
    for (int create = 0; create < 2; create++) {
        fd = dir_open_private("the test directory", c->foreign, create, &eb);
        CHECK(fd == -EPERM && strstr(eb.msg, c->foreign) && strstr(eb.msg, owners),
              "%s (another user's): %d, \"%s\"", c->foreign, fd, eb.msg);
    }
    if (c->foreign_private) {
        fd = dir_open_private("the test directory", c->foreign_private, true, &eb);
        CHECK(fd == -EACCES && strstr(eb.msg, c->foreign_private),
              "%s (another user's, 0700): %d, \"%s\"", c->foreign_private, fd, eb.msg);
    }

    unlink(link);
    unlink(file);
    rmdir(path);
    return 0;
}

/* Makes path as another user's directory (root only). */
static void make_foreign(const char *path, mode_t mode, uid_t uid)
{
    assert_int_equal(mkdir(path, mode), 0);
    assert_int_equal(chown(path, uid, uid), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/*
 * dir_open_private() as this user, and when that is root, also as a plain
 * user (AS_USER_VICTIM) facing directories another user (AS_USER_OTHER) made.
 */
static void test_dir_open_private(void **state)
{
    char scratch[] = "/tmp/petrel-test-util.XXXXXX", mine[64], other[64], other_private[64];
    char msg[1024] = "";
    (void)state;

    assert_non_null(mkdtemp(scratch));
    if (geteuid() != 0) {
        /* A plain user: a directory another user owns is one root made. */
        struct dir_case c = {.scratch = scratch, .foreign = "/", .foreign_uid = 0};
        int ret = dir_battery(&c, msg, sizeof(msg));
        scratch_remove(scratch);
        if (ret)
            fail_msg("as uid %u: %s", (unsigned)geteuid(), msg);
        return;
    }
    assert_int_equal(chmod(scratch, 0711), 0);
    snprintf(mine, sizeof(mine), "%s/mine", scratch);
    snprintf(other, sizeof(other), "%s/other", scratch);
    snprintf(other_private, sizeof(other_private), "%s/other-private", scratch);
    make_foreign(other, 0755, AS_USER_OTHER);
    make_foreign(other_private, 0700, AS_USER_OTHER);

    struct dir_case root = {.scratch = scratch, .foreign = other, .foreign_uid = AS_USER_OTHER};
    int ret = dir_battery(&root, msg, sizeof(msg));
    if (ret) {
        scratch_remove(scratch);
        fail_msg("as root: %s", msg);
    }
    make_foreign(mine, 0700, AS_USER_VICTIM);
    struct dir_case user = {.scratch = mine,
                            .foreign = other,
                            .foreign_uid = AS_USER_OTHER,
                            .foreign_private = other_private};
    ret = as_user(AS_USER_VICTIM, dir_battery, &user, msg, sizeof(msg));
    scratch_remove(scratch);
    if (ret)
        fail_msg("as uid %u: %s (status %d)", AS_USER_VICTIM, msg, ret);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size_units),
        cmocka_unit_test(test_parse_size_bare_and_bytes),
        cmocka_unit_test(test_parse_size_overflow),
        cmocka_unit_test(test_parse_size_junk),
        cmocka_unit_test(test_parse_uint_ranges),
        cmocka_unit_test(test_parse_uint_junk),
        cmocka_unit_test(test_fmt_size),
        cmocka_unit_test(test_fmt_size_exact),
        cmocka_unit_test(test_fmt_size_truncates),
        cmocka_unit_test(test_err_set),
        cmocka_unit_test(test_dir_open_private),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
