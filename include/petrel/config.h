/*
 * A VM's configuration: what `petrel run` was asked for. The VM and every device
 * read their part of it; nothing writes it after vm_create().
 */
#ifndef PETREL_CONFIG_H
#define PETREL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "petrel/sandbox.h"
#include "petrel/net.h"
#include "petrel/util.h"
#include "petrel/virtio_blk.h"

#define VM_DEFAULT_MEMORY  (256 * MiB)
#define VM_MIN_MEMORY      (8 * MiB)
#define VM_DEFAULT_CMDLINE "console=ttyS0"
#define VM_CONSOLE_BUFFER  (16 * KiB) /* guest output not yet written; then THRE holds the guest */

/* The default command line with --console virtio. */
#define VM_DEFAULT_CMDLINE_VIRTIO "console=hvc0"

enum vm_console_mode {
    VM_CONSOLE_STDIO,  /* this terminal (raw, escape keys) or pipes */
    VM_CONSOLE_PTY,    /* a pseudo-terminal whose path petrel prints */
    VM_CONSOLE_SOCKET, /* a unix socket for `petrel console NAME` (see api.h) */
    VM_CONSOLE_FILE,   /* output only, to a file */
};

struct vm_config {
    const char *kernel_path;
    const char *initrd_path; /* NULL: none */
    bool kernel_entry_setup; /* --kernel-entry setup: a bzImage runs its own decompressor */
    const char *cmdline;     /* NULL: VM_DEFAULT_CMDLINE(_VIRTIO) */
    unsigned cpus;
    uint64_t memory;
    bool debug_exit;              /* port 0xf4 ends petrel with the value written */
    bool stats;                   /* print counters on stderr at exit */
    const char *debugcon_path;    /* NULL: debugcon joins the console output */
    enum vm_console_mode console; /* where the console goes */
    bool console_virtio;          /* the console is virtio-console (hvc0), not COM1 */
    const char *console_path;     /* VM_CONSOLE_FILE: the file */
    bool stdin_closed;            /* VM_CONSOLE_STDIO without input */
    bool rng;                     /* a virtio-rng device on PCI (--rng) */
    bool testdev;                 /* the example test device on PCI (--testdev, testdev.h) */
    struct virtio_blk_spec drives[VIRTIO_BLK_MAX_DRIVES]; /* --drive, in order: vda, vdb, ... */
    unsigned nr_drives;
    struct net_spec nets[NET_MAX_NICS]; /* --net, in order: eth0, eth1, ... */
    unsigned nr_nets;
    /* --restore: the machine above comes from this checked state tree (snapshot.h), which
     * outlives the VM; its memory file, and whether the guest clock stays where it stopped. */
    const void *restore;
    const char *restore_mem_path;
    bool restore_clock_frozen;
    enum sandbox_mode seccomp; /* the threads' seccomp filters (petrel run: on by default) */
    const char *trace_spec;    /* --trace: what to trace from the start (NULL: nothing) */
    const char *trace_path;    /* where the trace goes once on (--trace-file, or NAME.trace) */
};

#endif
