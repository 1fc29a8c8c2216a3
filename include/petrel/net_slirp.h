/*
 * The user backend's limits and what its unit test looks at (net_slirp.c
 * explains the glue between libslirp and the loop).
 */
#ifndef PETREL_NET_SLIRP_H
#define PETREL_NET_SLIRP_H

#include <stdint.h>

#include "petrel/net.h"

#define NET_SLIRP_BACKLOG 256 /* frames for the guest waiting for its buffers, at most */
#define NET_SLIRP_HIGH    64  /* from this many on, nothing is read from host sockets */

/* The library --net user loads (dlopen()) when it makes a user network. */
#define NET_SLIRP_SONAME "libslirp.so.0"

/* net_slirp_create() with libslirp loaded from soname (tests name one that is missing). */
int net_slirp_create_from(const char *soname, const struct net_spec *spec, struct net_backend **be,
                          struct errbuf *eb) MUST_CHECK;

/* The libevent mask (EV_READ, EV_WRITE) watching fd now, 0: not watched. */
short net_slirp_watched(struct net_backend *be, int fd);

/* How many fds are watched. */
unsigned net_slirp_nr_watched(struct net_backend *be);

/* The poll timer's timeout from the last sync, in ms (UINT32_MAX: not armed). */
uint32_t net_slirp_timeout(struct net_backend *be);

/* Frames waiting for the guest. */
unsigned net_slirp_backlog(struct net_backend *be);

#endif
