/*
 * The user backend's glue between libslirp and the loop (net_slirp.c): what
 * it asks libevent to watch after each entry into slirp, its timer, the
 * backlog of frames for the guest and its back-pressure, hostfwd. A fake
 * device port records frames; the loop runs one iteration at a time and
 * blocks only for an event the test made happen (a connect).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>

#include "petrel/net.h"
#include "petrel/net_slirp.h"

static const uint8_t GUEST_MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

struct rig {
    struct event_base *base;
    struct net_backend *be;
    struct net_port port;
    bool full; /* the fake device has no room */
    unsigned nr_frames;
    uint8_t last[2048];
    size_t last_len;
    uint16_t fwd_port;
};

static int fake_receive(void *dev, const void *frame, size_t len)
{
    struct rig *r = dev;
    if (r->full)
        return 0;
    r->nr_frames++;
    r->last_len = len < sizeof(r->last) ? len : sizeof(r->last);
    memcpy(r->last, frame, r->last_len);
    return 1;
}

/* A TCP port nothing listens on now (bound to port 0, then closed). */
static uint16_t free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &n), 0);
    close(s);
    return ntohs(a.sin_port);
}

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    struct errbuf eb = {{0}};
    struct net_spec spec;
    char arg[64];

    r->fwd_port = free_port();
    snprintf(arg, sizeof(arg), "user,hostfwd=tcp:127.0.0.1:%u-:22", r->fwd_port);
    assert_int_equal(net_spec_parse(arg, &spec, &eb), 0);
    if (net_slirp_create(&spec, &r->be, &eb))
        fail_msg("%s", eb.msg);
    r->base = event_base_new();
    r->port = (struct net_port){.dev = r, .receive = fake_receive};
    assert_int_equal(r->be->ops->attach(r->be, r->base, &r->port, &eb), 0);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    r->be->ops->destroy(r->be);
    event_base_free(r->base);
    free(r);
    return 0;
}

/* Runs what is ready now (deferred deliveries included), blocking for nothing. */
static void run_ready(struct rig *r)
{
    event_base_loop(r->base, EVLOOP_NONBLOCK);
}

/* The guest asks who has 10.0.2.2. */
static size_t arp_request(uint8_t *f)
{
    static const uint8_t ip_guest[4] = {10, 0, 2, 15}, ip_host[4] = {10, 0, 2, 2};
    memset(f, 0, 42);
    memset(f, 0xff, 6);
    memcpy(f + 6, GUEST_MAC, 6);
    f[12] = 0x08, f[13] = 0x06;                 /* ARP */
    f[14] = 0, f[15] = 1, f[16] = 8, f[17] = 0; /* Ethernet, IPv4 */
    f[18] = 6, f[19] = 4, f[20] = 0, f[21] = 1; /* request */
    memcpy(f + 22, GUEST_MAC, 6);
    memcpy(f + 28, ip_guest, 4);
    memcpy(f + 38, ip_host, 4);
    return 60; /* padded to the minimum frame */
}

/*
 * Idle with only a hostfwd listener: one fd watched, for reading, and the
 * poll timer at slirp's slow timeout (a listening TCP socket keeps TCP's
 * slow timer going: 499 ms, twice a second, no busy loop). Without any
 * socket, no fd and slirp's ceiling, once a second (slirp_pollfds_fill()
 * never asks for more than 1000 ms: UDP and DNS expiry run in the poll).
 */
static void test_idle_watches_the_listener(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    struct net_spec spec;
    struct net_backend *be;

    assert_int_equal(net_slirp_nr_watched(r->be), 1);
    assert_true(net_slirp_timeout(r->be) >= 400 && net_slirp_timeout(r->be) < 1000);
    run_ready(r);
    assert_int_equal(r->nr_frames, 0);

    assert_int_equal(net_spec_parse("user", &spec, &eb), 0);
    assert_int_equal(net_slirp_create(&spec, &be, &eb), 0);
    assert_int_equal(be->ops->attach(be, r->base, &r->port, &eb), 0);
    assert_int_equal(net_slirp_nr_watched(be), 0);
    assert_int_equal(net_slirp_timeout(be), 1000);
    be->ops->destroy(be);
}

/* A frame from the guest is answered through the deferred delivery, not inside send(). */
static void test_arp_answered_from_the_loop(void **state)
{
    struct rig *r = *state;
    uint8_t f[64];

    size_t n = arp_request(f);
    assert_int_equal(r->be->ops->send(r->be, f, n), 0);
    assert_int_equal(r->nr_frames, 0); /* not from inside send() */
    assert_int_equal(net_slirp_backlog(r->be), 1);
    run_ready(r);
    assert_int_equal(r->nr_frames, 1);
    assert_int_equal(net_slirp_backlog(r->be), 0);
    assert_true(r->last_len >= 42);
    assert_memory_equal(r->last, GUEST_MAC, 6);
    assert_int_equal(r->last[21], 2); /* a reply */
    static const uint8_t ip_host[4] = {10, 0, 2, 2};
    assert_memory_equal(r->last + 28, ip_host, 4);
}

/*
 * A device without room keeps frames in the backlog; from NET_SLIRP_HIGH
 * frames on, the glue stops reading host sockets; rx_room delivers them
 * and reading starts again.
 */
static void test_backlog_back_pressure(void **state)
{
    struct rig *r = *state;
    uint8_t f[64];

    r->full = true;
    size_t n = arp_request(f);
    for (unsigned i = 0; i < NET_SLIRP_HIGH; i++)
        assert_int_equal(r->be->ops->send(r->be, f, n), 0);
    run_ready(r);
    assert_int_equal(r->nr_frames, 0);
    assert_int_equal(net_slirp_backlog(r->be), NET_SLIRP_HIGH);
    assert_int_equal(net_slirp_nr_watched(r->be), 0); /* the listener is not read */

    r->full = false;
    r->be->ops->rx_room(r->be);
    assert_int_equal(r->nr_frames, 0); /* deferred: rx_room runs with the device lock held */
    run_ready(r);
    assert_int_equal(r->nr_frames, NET_SLIRP_HIGH);
    assert_int_equal(net_slirp_backlog(r->be), 0);
    assert_int_equal(net_slirp_nr_watched(r->be), 1);
    assert_int_equal(r->be->rx_dropped, 0);

    /* Past NET_SLIRP_BACKLOG, frames are dropped and counted. */
    r->full = true;
    for (unsigned i = 0; i < NET_SLIRP_BACKLOG + 3; i++)
        assert_int_equal(r->be->ops->send(r->be, f, n), 0);
    assert_int_equal(net_slirp_backlog(r->be), NET_SLIRP_BACKLOG);
    assert_int_equal(r->be->rx_dropped, 3);
}

/*
 * A client connects to the hostfwd port: the loop wakes for the listener
 * (the one blocking iteration), slirp accepts and sends the guest a SYN to
 * port 22. The accepted socket is not read until the guest answers; the
 * listener is still watched.
 */
static void test_hostfwd_connect_reaches_the_guest(void **state)
{
    struct rig *r = *state;
    uint8_t f[64];

    /* slirp learns the guest's MAC from its ARP request. */
    size_t n = arp_request(f);
    assert_int_equal(r->be->ops->send(r->be, f, n), 0);
    run_ready(r);
    r->nr_frames = 0;

    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(r->fwd_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ret = connect(c, (struct sockaddr *)&a, sizeof(a));
    assert_true(ret == 0 || errno == EINPROGRESS);
    while (!r->nr_frames)
        event_base_loop(r->base, EVLOOP_ONCE);
    assert_int_equal(r->last[12], 0x08); /* IPv4 */
    assert_int_equal(r->last[13], 0x00);
    assert_int_equal(r->last[14 + 9], 6); /* TCP */
    const uint8_t *tcp = r->last + 14 + 4 * (r->last[14] & 0xf);
    assert_int_equal(tcp[2] << 8 | tcp[3], 22);
    assert_true(tcp[13] & 0x02); /* SYN */
    assert_int_equal(net_slirp_nr_watched(r->be), 1);
    close(c);
}

/* Parsing: each bad argument one line naming the problem. */
static void test_spec_parse(void **state)
{
    struct net_spec s;
    struct errbuf eb = {{0}};
    uint8_t mac[6];
    (void)state;

    assert_int_equal(net_spec_parse("user", &s, &eb), 0);
    assert_int_equal(s.kind, NET_USER);
    net_spec_mac(&s, 1, mac);
    assert_int_equal(mac[5], 0x57);
    assert_int_equal(net_spec_parse("user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-"
                                    "10.0.2.15:53,mac=52:54:00:00:00:09",
                                    &s, &eb),
                     0);
    assert_int_equal(s.nr_fwd, 2);
    assert_int_equal(s.fwd[0].host_addr, 0);
    assert_int_equal(s.fwd[0].host_port, 2222);
    assert_int_equal(s.fwd[0].guest_port, 22);
    assert_true(s.fwd[1].udp);
    assert_int_equal(s.fwd[1].host_addr, htonl(INADDR_LOOPBACK));
    net_spec_mac(&s, 1, mac);
    assert_int_equal(mac[5], 9);
    assert_int_equal(net_spec_parse("tap=tap0,mac=52:54:00:00:00:01", &s, &eb), 0);
    assert_int_equal(s.kind, NET_TAP);
    assert_string_equal(s.tap, "tap0");

    static const struct {
        const char *arg, *msg;
    } bad[] = {
        {"", "must be user[,...] or tap=NAME"},
        {"slirp", "must be user[,...] or tap=NAME"},
        {"user,frob=1", "unknown key 'frob' (user takes hostfwd= and mac=)"},
        {"tap=t0,hostfwd=tcp::1-:2", "unknown key 'hostfwd' (tap takes mac=)"},
        {"tap=", "NAME must be 1-15 bytes"},
        {"tap=abcdefghijklmnop", "NAME must be 1-15 bytes"},
        {"user,hostfwd=sctp::1-:2", "protocol 'sctp' must be tcp or udp"},
        {"user,hostfwd=tcp:1.2.3:1-:2", "'1.2.3' is not an IPv4 address"},
        {"user,hostfwd=tcp::0-:22", "must be 1-65535"},
        {"user,hostfwd=tcp::22-:70000", "must be 1-65535"},
        {"user,hostfwd=tcp::22", "hostfwd must be tcp:"},
        {"user,hostfwd=tcp::22-10.0.2.16:22", "the guest is 10.0.2.15"},
        {"user,mac=01:00:00:00:00:01", "multicast"},
        {"user,mac=52:54:00:00:00", "six hex bytes"},
        {"user,mac=52:54:00:00:00:001", "six hex bytes"},
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        eb.msg[0] = '\0';
        assert_int_equal(net_spec_parse(bad[i].arg, &s, &eb), -EINVAL);
        if (!strstr(eb.msg, bad[i].msg))
            fail_msg("--net '%s': '%s' does not say '%s'", bad[i].arg, eb.msg, bad[i].msg);
        assert_null(strchr(eb.msg, '\n'));
    }
}

/* A hostfwd port already taken: refused at create, one line naming it. */
static void test_hostfwd_port_taken(void **state)
{
    struct rig *r = *state;
    struct errbuf eb = {{0}};
    struct net_spec spec;
    struct net_backend *be;
    char arg[64];

    snprintf(arg, sizeof(arg), "user,hostfwd=tcp:127.0.0.1:%u-:22", r->fwd_port);
    assert_int_equal(net_spec_parse(arg, &spec, &eb), 0);
    int ret = net_slirp_create(&spec, &be, &eb);
    assert_int_equal(ret, -EADDRINUSE);
    assert_null(be);
    char want[80];
    snprintf(want, sizeof(want), "hostfwd tcp 127.0.0.1:%u: cannot listen there", r->fwd_port);
    if (!strstr(eb.msg, want))
        fail_msg("'%s' does not say '%s'", eb.msg, want);
}

/*
 * libslirp is loaded when a user network is made: a library that is not there is a
 * clear error naming it, nothing is made, and a later attempt with the real one works.
 */
static void test_missing_library_is_a_clear_error(void **unused)
{
    (void)unused;
    struct errbuf eb = {{0}};
    struct net_spec spec;
    struct net_backend *be = (struct net_backend *)&eb;

    assert_int_equal(net_spec_parse("user", &spec, &eb), 0);
    assert_int_equal(net_slirp_create_from("libpetrel-no-such-slirp.so.0", &spec, &be, &eb),
                     -ENOENT);
    assert_null(be);
    if (!strstr(eb.msg, "--net user needs libslirp") ||
        !strstr(eb.msg, "libpetrel-no-such-slirp.so.0") || !strstr(eb.msg, "libslirp0"))
        fail_msg("message: %s", eb.msg);

    /* A library without libslirp's calls (libc) is refused by name too. */
    assert_int_equal(net_slirp_create_from("libc.so.6", &spec, &be, &eb), -ENOENT);
    assert_null(be);
    if (!strstr(eb.msg, "libc.so.6 has no slirp_new"))
        fail_msg("message: %s", eb.msg);

    assert_int_equal(net_slirp_create(&spec, &be, &eb), 0);
    assert_non_null(be);
    be->ops->destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_watches_the_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arp_answered_from_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_back_pressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostfwd_connect_reaches_the_guest, setup, teardown),
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_missing_library_is_a_clear_error),
        cmocka_unit_test_setup_teardown(test_hostfwd_port_taken, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
