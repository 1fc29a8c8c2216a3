/*
 * The API server's socket directory and sockets, without KVM: api_server_start()
 * on a VM that is only an event loop; and that a reply leaves in the loop iteration
 * that read its request. The default directory must be the user's
 * alone (another user may have made /tmp/petrel-UID first), and every socket
 * must have mode 0600 from the moment it exists (no chmod() of a path after
 * bind(), which would follow a link put there). As root, the /tmp/petrel-UID
 * case also runs as a plain user, in a mount namespace with a /tmp of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "as_user.h"
#include "petrel/api.h"
#include "petrel/vm.h"

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(msg, len, __VA_ARGS__);                                                       \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* A VM that is only what the API server touches when it starts: a loop and a console mode. */
static struct vm *fake_vm_new(enum vm_console_mode console)
{
    struct vm *vm = calloc(1, sizeof(*vm));

    if (vm) {
        vm->cfg.console = console;
        vm->base = event_base_new();
    }
    return vm;
}

static void fake_vm_free(struct vm *vm)
{
    event_base_free(vm->base);
    free(vm);
}

/* The mode of path if it is a socket (lstat: a link is not followed), else -1. */
static int socket_mode(const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return -1;
    return (int)(st.st_mode & 07777);
}

/* Whether any queued inotify event is IN_ATTRIB (a chmod), naming it in what. */
static bool saw_attrib(int ifd, char *what, size_t len)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;

    while ((n = read(ifd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (e->mask & IN_ATTRIB) {
                snprintf(what, len, "%s", e->len ? e->name : "the directory");
                return true;
            }
            p += sizeof(*e) + e->len;
        }
    }
    return false;
}

/*
 * Starts a server named "t" (sock_path NULL: in the default directory, which
 * must exist) under umask 0, and checks its API socket, console socket and
 * lock file are 0600 and that nothing was chmod()ed after it was made.
 */
static int check_sockets(const char *dir, const char *sock_path, char *msg, size_t len)
{
    char sock[256], console[256], lock[256], what[256];
    struct api_server s;
    struct errbuf eb = {{0}};
    struct stat st;

    snprintf(sock, sizeof(sock), "%s/t.sock", dir);
    snprintf(console, sizeof(console), "%s/t.console", dir);
    snprintf(lock, sizeof(lock), "%s/t.sock.lock", dir);
    struct vm *vm = fake_vm_new(VM_CONSOLE_SOCKET);
    CHECK(vm && vm->base, "no event base");
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    CHECK(ifd >= 0, "inotify_init1: %s", strerror(errno));
    CHECK(inotify_add_watch(ifd, dir, IN_ATTRIB | IN_CREATE) >= 0, "inotify_add_watch %s: %s", dir,
          strerror(errno));

    mode_t old = umask(0);
    int ret = api_server_start(&s, vm, "t", sock_path, &eb);
    umask(old);
    CHECK(ret == 0, "api_server_start in %s: %d (%s)", dir, ret, eb.msg);
    int sock_mode = socket_mode(sock), console_mode = socket_mode(console);
    int lock_ok = lstat(lock, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600;
    bool attrib = saw_attrib(ifd, what, sizeof(what));
    api_server_stop(&s);
    close(ifd);
    fake_vm_free(vm);
    CHECK(sock_mode == 0600, "%s: mode %04o under umask 0, want a socket with 0600", sock,
          sock_mode);
    CHECK(console_mode == 0600, "%s: mode %04o under umask 0, want a socket with 0600", console,
          console_mode);
    CHECK(lock_ok, "%s is not a regular file with mode 0600", lock);
    CHECK(!attrib, "%s in %s was chmod()ed after it was made (IN_ATTRIB)", what, dir);
    CHECK(lstat(sock, &st) < 0 && lstat(console, &st) < 0 && lstat(lock, &st) < 0,
          "api_server_stop() left files in %s", dir);
    return 0;
}

/* api_server_start() must refuse the default directory with err, naming it and words. */
static int check_refused(const char *dir, int err, const char *words, char *msg, size_t len)
{
    struct api_server s;
    struct errbuf eb = {{0}};
    struct vm *vm = fake_vm_new(VM_CONSOLE_SOCKET);

    CHECK(vm && vm->base, "no event base");
    int ret = api_server_start(&s, vm, "t", NULL, &eb);
    if (ret == 0)
        api_server_stop(&s);
    fake_vm_free(vm);
    CHECK(ret == err && strstr(eb.msg, dir) && strstr(eb.msg, words),
          "api_server_start with the socket directory %s: %d \"%s\", want %d naming it and "
          "\"%s\"",
          dir, ret, eb.msg, err, words);
    return 0;
}

/* Whether dir holds nothing (no lock file, no socket was made in it). */
static bool dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool empty = d != NULL;

    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = false;
    if (d)
        closedir(d);
    return empty;
}

static char scratch[64];

static int scratch_setup(void **state)
{
    (void)state;
    snprintf(scratch, sizeof(scratch), "/tmp/petrel-test-api.XXXXXX");
    if (!mkdtemp(scratch))
        return -1;
    return setenv("XDG_RUNTIME_DIR", scratch, 1);
}

static int scratch_teardown(void **state)
{
    (void)state;
    scratch_remove(scratch);
    return unsetenv("XDG_RUNTIME_DIR");
}

/* $XDG_RUNTIME_DIR/petrel is made 0700; the sockets in it are 0600 from the start. */
static void test_default_dir_made_private(void **state)
{
    char dir[128], msg[1024];
    struct stat st;
    (void)state;

    snprintf(dir, sizeof(dir), "%s/petrel", scratch);
    struct vm *vm = fake_vm_new(VM_CONSOLE_STDIO);
    struct api_server s;
    struct errbuf eb = {{0}};
    assert_non_null(vm);
    assert_int_equal(api_server_start(&s, vm, "t", NULL, &eb), 0);
    api_server_stop(&s);
    fake_vm_free(vm);
    assert_int_equal(lstat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(st.st_uid, geteuid());
    if (check_sockets(dir, NULL, msg, sizeof(msg)))
        fail_msg("%s", msg);
}

/* --api-sock PATH: the same socket modes, with no chmod() after bind(). */
static void test_api_sock_path_mode(void **state)
{
    char dir[128], sock[160], msg[1024];
    (void)state;

    snprintf(dir, sizeof(dir), "%s/elsewhere", scratch);
    snprintf(sock, sizeof(sock), "%s/t.sock", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    if (check_sockets(dir, sock, msg, sizeof(msg)))
        fail_msg("%s", msg);
}

/* A socket directory others can write, or a link, is refused and left untouched. */
static void test_unsafe_dir_refused(void **state)
{
    char dir[128], target[128], msg[1024];
    (void)state;

    snprintf(dir, sizeof(dir), "%s/petrel", scratch);
    snprintf(target, sizeof(target), "%s/target", scratch);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    if (check_refused(dir, -EPERM, "writable by others (mode 0777)", msg, sizeof(msg)))
        fail_msg("%s", msg);
    assert_true(dir_empty(dir));
    assert_int_equal(chmod(dir, 0720), 0);
    if (check_refused(dir, -EPERM, "writable by others (mode 0720)", msg, sizeof(msg)))
        fail_msg("%s", msg);
    assert_true(dir_empty(dir));
    assert_int_equal(rmdir(dir), 0);

    /* A link to a directory that would pass is refused, not followed. */
    assert_int_equal(mkdir(target, 0700), 0);
    assert_int_equal(symlink(target, dir), 0);
    if (check_refused(dir, -ELOOP, "symbolic link", msg, sizeof(msg)))
        fail_msg("%s", msg);
    assert_true(dir_empty(target));
    assert_int_equal(unlink(dir), 0);

    if (geteuid() == 0) {
        /* Root facing another user's directory (the /tmp case runs below). */
        char words[64];
        assert_int_equal(mkdir(dir, 0755), 0);
        assert_int_equal(chown(dir, AS_USER_OTHER, AS_USER_OTHER), 0);
        snprintf(words, sizeof(words), "owned by uid %u, not by you (uid 0)", AS_USER_OTHER);
        if (check_refused(dir, -EPERM, words, msg, sizeof(msg)))
            fail_msg("%s", msg);
        assert_true(dir_empty(dir));
    }
}

struct refusal {
    int err;
    const char *words;
};

/* As the victim, without XDG_RUNTIME_DIR: /tmp/petrel-UID was made by another user. */
static int victim_refuses(void *arg, char *msg, size_t len)
{
    const struct refusal *r = arg;
    char dir[64];

    unsetenv("XDG_RUNTIME_DIR");
    snprintf(dir, sizeof(dir), "/tmp/petrel-%u", (unsigned)geteuid());
    return check_refused(dir, r->err, r->words, msg, len);
}

/* As the victim, without XDG_RUNTIME_DIR and nothing in the way: the server starts. */
static int victim_starts(void *arg, char *msg, size_t len)
{
    char dir[64];
    struct stat st;
    (void)arg;

    unsetenv("XDG_RUNTIME_DIR");
    snprintf(dir, sizeof(dir), "/tmp/petrel-%u", (unsigned)geteuid());
    struct vm *vm = fake_vm_new(VM_CONSOLE_STDIO);
    struct api_server s;
    struct errbuf eb = {{0}};
    CHECK(vm && vm->base, "no event base");
    int ret = api_server_start(&s, vm, "t", NULL, &eb);
    if (ret == 0)
        api_server_stop(&s);
    fake_vm_free(vm);
    CHECK(ret == 0, "api_server_start as uid %u: %d (%s)", (unsigned)geteuid(), ret, eb.msg);
    CHECK(lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
              (st.st_mode & 07777) == 0700,
          "%s is not a 0700 directory of uid %u", dir, (unsigned)geteuid());
    return check_sockets(dir, NULL, msg, len);
}

/* In a child with a private /tmp (root): the other user's traps, then a clean start. */
static int private_tmp_scenario(char *msg, size_t len)
{
    char dir[64], other[64], words[96];
    int ret;

    CHECK(unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS): %s", strerror(errno));
    CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "making / private: %s",
          strerror(errno));
    CHECK(mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777") == 0, "a tmpfs on /tmp: %s",
          strerror(errno));
    snprintf(dir, sizeof(dir), "/tmp/petrel-%u", AS_USER_VICTIM);
    snprintf(other, sizeof(other), "/tmp/other-%u", AS_USER_OTHER);

    /*
     * The other user made the victim's directory first, writable by all so
     * that the victim's server would work in it (and its sockets be theirs).
     */
    CHECK(mkdir(dir, 0777) == 0 && chown(dir, AS_USER_OTHER, AS_USER_OTHER) == 0 &&
              chmod(dir, 0777) == 0,
          "making %s: %s", dir, strerror(errno));
    snprintf(words, sizeof(words), "owned by uid %u, not by you (uid %u)", AS_USER_OTHER,
             AS_USER_VICTIM);
    ret = as_user(AS_USER_VICTIM, victim_refuses, &(struct refusal){-EPERM, words}, msg, len);
    if (ret)
        return ret;
    CHECK(dir_empty(dir), "the server made files in %s", dir);
    /* ... or a link to a directory of theirs. */
    CHECK(rmdir(dir) == 0 && mkdir(other, 0777) == 0 && chmod(other, 0777) == 0 &&
              chown(other, AS_USER_OTHER, AS_USER_OTHER) == 0 && symlink(other, dir) == 0 &&
              lchown(dir, AS_USER_OTHER, AS_USER_OTHER) == 0,
          "making the link %s: %s", dir, strerror(errno));
    ret = as_user(AS_USER_VICTIM, victim_refuses, &(struct refusal){-ELOOP, "symbolic link"}, msg,
                  len);
    if (ret)
        return ret;
    CHECK(dir_empty(other), "the server made files in %s through the link", other);
    /* Nothing in the way: the victim's own server starts. */
    CHECK(unlink(dir) == 0, "unlink %s: %s", dir, strerror(errno));
    return as_user(AS_USER_VICTIM, victim_starts, NULL, msg, len);
}

static void test_tmp_dir_as_plain_user(void **state)
{
    char msg[1024] = "";
    int p[2];
    (void)state;

    if (geteuid() != 0) {
        print_message("not root: the other-user cases of /tmp/petrel-UID need root (CI runs "
                      "them); this user's own cases ran above\n");
        skip();
    }
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        int ret = private_tmp_scenario(msg, sizeof(msg));
        if (write(p[1], msg, strlen(msg)) < 0)
            ret = 125;
        _exit(ret);
    }
    close(p[1]);
    ssize_t n = read(p[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("as uid %u with /tmp/petrel-%u: %s (status 0x%x)", AS_USER_VICTIM, AS_USER_VICTIM,
                 msg, status);
}

/* Whatever the client has been sent so far, appended to buf (NUL-terminated); its length. */
static size_t client_take(int fd, char *buf, size_t size, size_t have)
{
    ssize_t n;

    while (have + 1 < size && (n = recv(fd, buf + have, size - 1 - have, MSG_DONTWAIT)) > 0)
        have += (size_t)n;
    buf[have] = '\0';
    return have;
}

/*
 * A reply is written in the loop iteration that read its request, not one later (evhttp
 * queued it and waited for EPOLLOUT: the client, on a single CPU, waited for that extra
 * epoll_wait): with the client's request sent first, one iteration accepts the
 * connection, the next reads the request, and the whole reply must be there after it.
 * The connection then serves the next request the same way (keep-alive), and
 * "Connection: close" still ends it after the reply.
 */
static void test_reply_in_the_iteration_of_its_request(void **state)
{
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char get_close[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct api_server s;
    struct errbuf eb = {{0}};
    char buf[4096];
    (void)state;

    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/r.sock", scratch);
    struct vm *vm = fake_vm_new(VM_CONSOLE_STDIO);
    assert_non_null(vm);
    assert_int_equal(api_server_start(&s, vm, "r", addr.sun_path, &eb), 0);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(send(fd, get, strlen(get), 0), (ssize_t)strlen(get));

    /* The accept, then the request. */
    assert_int_equal(event_base_loop(vm->base, EVLOOP_ONCE), 0);
    assert_int_equal(client_take(fd, buf, sizeof(buf), 0), 0);
    assert_int_equal(event_base_loop(vm->base, EVLOOP_ONCE), 0);
    size_t len = client_take(fd, buf, sizeof(buf), 0);
    if (!strstr(buf, "HTTP/1.1 200 OK\r\n") || !strstr(buf, "\"app_name\":\"petrel\"}"))
        fail_msg("after the iteration that read GET /, the client has %zu bytes: \"%s\"", len, buf);

    /* The same connection, the next request: one iteration. */
    assert_int_equal(send(fd, get, strlen(get), 0), (ssize_t)strlen(get));
    assert_int_equal(event_base_loop(vm->base, EVLOOP_ONCE), 0);
    len = client_take(fd, buf, sizeof(buf), 0);
    if (!strstr(buf, "HTTP/1.1 200 OK\r\n") || !strstr(buf, "\"app_name\":\"petrel\"}"))
        fail_msg("the second GET / on the connection: the client has %zu bytes: \"%s\"", len, buf);

    /* Connection: close: the reply, then the end of the stream. */
    assert_int_equal(send(fd, get_close, strlen(get_close), 0), (ssize_t)strlen(get_close));
    assert_int_equal(event_base_loop(vm->base, EVLOOP_ONCE), 0);
    len = client_take(fd, buf, sizeof(buf), 0);
    if (!strstr(buf, "HTTP/1.1 200 OK\r\n") || !strstr(buf, "\"app_name\":\"petrel\"}"))
        fail_msg("GET / with Connection: close: the client has %zu bytes: \"%s\"", len, buf);
    assert_int_equal(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0);

    close(fd);
    api_server_stop(&s);
    fake_vm_free(vm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_dir_made_private, scratch_setup,
                                        scratch_teardown),
        cmocka_unit_test_setup_teardown(test_api_sock_path_mode, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_unsafe_dir_refused, scratch_setup, scratch_teardown),
        cmocka_unit_test(test_tmp_dir_as_plain_user),
        cmocka_unit_test_setup_teardown(test_reply_in_the_iteration_of_its_request, scratch_setup,
                                        scratch_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
