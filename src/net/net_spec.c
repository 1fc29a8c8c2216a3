/* --net's argument: which backend, its options, the NIC's MAC. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petrel/net.h"

/* A port number 1..65535 spelled in decimal, the whole of s. */
static int port_parse(const char *s, uint16_t *port)
{
    unsigned long n;

    if (parse_uint(s, 1, 65535, &n))
        return -EINVAL;
    *port = (uint16_t)n;
    return 0;
}

/* hostfwd=tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, as QEMU writes it. */
static int hostfwd_parse(char *v, struct net_hostfwd *f, struct errbuf *eb)
{
    char *proto = v, *haddr, *hport, *gaddr, *gport;

    if (!(haddr = strchr(proto, ':')))
        goto bad;
    *haddr++ = '\0';
    if (!(hport = strchr(haddr, ':')))
        goto bad;
    *hport++ = '\0';
    if (!(gaddr = strchr(hport, '-')))
        goto bad;
    *gaddr++ = '\0';
    if (!(gport = strchr(gaddr, ':')))
        goto bad;
    *gport++ = '\0';
    if (strcmp(proto, "tcp") && strcmp(proto, "udp"))
        return err_set(eb, -EINVAL, "--net user: hostfwd protocol '%s' must be tcp or udp", proto);
    f->udp = !strcmp(proto, "udp");
    struct in_addr a = {0};
    if (*haddr && inet_pton(AF_INET, haddr, &a) != 1)
        return err_set(eb, -EINVAL, "--net user: hostfwd host address '%s' is not an IPv4 address",
                       haddr);
    f->host_addr = a.s_addr;
    if (*gaddr && strcmp(gaddr, "10.0.2.15"))
        return err_set(eb, -EINVAL,
                       "--net user: hostfwd guest address '%s': the guest is 10.0.2.15", gaddr);
    if (port_parse(hport, &f->host_port) || port_parse(gport, &f->guest_port))
        return err_set(eb, -EINVAL, "--net user: hostfwd ports '%s' and '%s' must be 1-65535",
                       hport, gport);
    return 0;
bad:
    return err_set(eb, -EINVAL, "--net user: hostfwd must be tcp:[HOSTADDR]:HOSTPORT-:GUESTPORT");
}

/* mac=52:54:00:12:34:56: six hex bytes, a unicast address. */
static int mac_parse(const char *v, uint8_t mac[6], struct errbuf *eb)
{
    unsigned b[6];
    char end;

    if (sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) !=
            6 ||
        strlen(v) != 17)
        return err_set(eb, -EINVAL, "mac '%s' must be six hex bytes: 52:54:00:12:34:56", v);
    if (b[0] & 1)
        return err_set(eb, -EINVAL, "mac '%s' is a multicast address", v);
    for (unsigned i = 0; i < 6; i++)
        mac[i] = (uint8_t)b[i];
    return 0;
}

int net_spec_parse(const char *arg, struct net_spec *spec, struct errbuf *eb)
{
    char buf[NET_SPEC_MAX];
    int ret;

    memset(spec, 0, sizeof(*spec));
    if (strlen(arg) >= NET_SPEC_MAX)
        return err_set(eb, -EINVAL, "--net: the argument is longer than %d bytes", NET_SPEC_MAX);
    strcpy(spec->text, arg);
    strcpy(buf, arg);
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    if (!tok)
        return err_set(eb, -EINVAL, "--net '%s' must be user[,...] or tap=NAME[,...]", arg);
    if (!strcmp(tok, "user")) {
        spec->kind = NET_USER;
    } else if (!strncmp(tok, "tap=", 4)) {
        spec->kind = NET_TAP;
        if (!tok[4] || strlen(tok + 4) >= NET_IFNAME_MAX)
            return err_set(eb, -EINVAL, "--net tap=NAME: NAME must be 1-%d bytes",
                           NET_IFNAME_MAX - 1);
        strcpy(spec->tap, tok + 4);
    } else {
        return err_set(eb, -EINVAL, "--net '%s' must be user[,...] or tap=NAME[,...]", arg);
    }
    while ((tok = strtok_r(NULL, ",", &save))) {
        char *v = strchr(tok, '=');
        if (v)
            *v++ = '\0';
        if (v && !strcmp(tok, "mac")) {
            if ((ret = mac_parse(v, spec->mac, eb)))
                return ret;
            spec->mac_given = true;
        } else if (v && !strcmp(tok, "hostfwd") && spec->kind == NET_USER) {
            if (spec->nr_fwd == NET_MAX_HOSTFWD)
                return err_set(eb, -EINVAL, "--net user: at most %d hostfwd rules",
                               NET_MAX_HOSTFWD);
            if ((ret = hostfwd_parse(v, &spec->fwd[spec->nr_fwd], eb)))
                return ret;
            spec->nr_fwd++;
        } else {
            return err_set(eb, -EINVAL, "--net '%s': unknown key '%s' (%s takes %s)", arg, tok,
                           spec->kind == NET_USER ? "user" : "tap",
                           spec->kind == NET_USER ? "hostfwd= and mac=" : "mac=");
        }
    }
    return 0;
}

void net_spec_mac(const struct net_spec *spec, unsigned index, uint8_t mac[6])
{
    static const uint8_t base[6] = NET_DEFAULT_MAC0;

    if (spec->mac_given) {
        memcpy(mac, spec->mac, 6);
        return;
    }
    memcpy(mac, base, 6);
    mac[5] = (uint8_t)(base[5] + index);
}

int net_backend_create(const struct net_spec *spec, struct net_backend **be, struct errbuf *eb)
{
    if (spec->kind == NET_USER)
        return net_slirp_create(spec, be, eb);
    return net_tap_create(spec, be, eb);
}
