/*
 * petrel run --gdb: a gdb stub for the VM, served from the loop on a unix
 * socket or a 127.0.0.1 port (never another address: whoever reaches the
 * stub controls the guest). The guest starts paused, waiting for gdb, as
 * QEMU's -s -S does; gdb's continue starts it (so does petrel resume). One
 * client at a time; when it leaves, its breakpoints are removed and the
 * guest runs on. docs/gdb.md describes it.
 */
#ifndef PETREL_GDB_H
#define PETREL_GDB_H

#include "petrel/util.h"

struct vm;
struct gdb_stub;

/* Checks a --gdb address: "unix:PATH" or "127.0.0.1:PORT". 0, or -EINVAL with a message. */
int gdb_addr_check(const char *spec, struct errbuf *eb) MUST_CHECK;

/*
 * Listens on spec and pauses the VM (before vm_run(): its vCPUs then park at
 * once). 0, or -errno with a message.
 */
int gdb_stub_start(struct vm *vm, const char *spec, struct gdb_stub **out,
                   struct errbuf *eb) MUST_CHECK;

/* Closes the sockets (a unix socket's file is removed). After vm_run(). */
void gdb_stub_stop(struct gdb_stub *g);

#endif
