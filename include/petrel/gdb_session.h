/*
 * One gdb client's session: the remote protocol's commands on top of a
 * target (the VM, or a fake in tests), with no I/O of its own. Bytes from
 * the client go in through gdb_session_input(); replies leave through the
 * target's send(). The session keeps what gdb set: the selected threads
 * (one per vCPU, thread id = vCPU index + 1), software breakpoints (the
 * original bytes, hidden from memory reads) and the four debug-register
 * slots. A resume (c, s) is answered later, when the target reports a stop
 * with gdb_session_debug_exit(), gdb_session_interrupted() or
 * gdb_session_exited().
 */
#ifndef PETREL_GDB_SESSION_H
#define PETREL_GDB_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/gdb_proto.h"
#include "petrel/x86_gdb.h"

#define GDB_MAX_SW_BP 64

/* What the target applies to every vCPU (KVM_SET_GUEST_DEBUG). */
struct gdb_debug {
    bool sw;        /* software breakpoints are planted: int3 exits to the host */
    uint64_t dr[4]; /* hardware breakpoint addresses */
    uint64_t dr7;   /* their enables, kinds and lengths; 0: none */
};

struct gdb_target_ops {
    unsigned (*nr_cpus)(void *ctx);
    int (*get_regs)(void *ctx, unsigned cpu, struct x86_gdb_regs *r);
    int (*set_regs)(void *ctx, unsigned cpu, const struct x86_gdb_regs *r);
    /* Guest memory at a physical address, or a virtual one through cpu's page tables. */
    int (*read_mem)(void *ctx, unsigned cpu, bool phys, uint64_t addr, void *buf, size_t len);
    int (*write_mem)(void *ctx, unsigned cpu, bool phys, uint64_t addr, const void *buf,
                     size_t len);
    /* Applies breakpoints now (the VM is stopped): 0, or -errno when KVM refuses. */
    int (*set_debug)(void *ctx, const struct gdb_debug *d);
    /* Lets the guest run; step_cpu >= 0 single-steps that vCPU. 0 or -errno. */
    int (*resume)(void *ctx, int step_cpu, const struct gdb_debug *d);
    /* Stops every vCPU; the target then calls gdb_session_interrupted(). */
    void (*interrupt)(void *ctx);
    void (*kill)(void *ctx);
    void (*send)(void *ctx, const void *data, size_t len);
};

struct gdb_session {
    const struct gdb_target_ops *ops;
    void *ctx;
    struct gdb_rx rx;
    char out[2 * GDB_PACKET_MAX + 8]; /* the last reply, framed, for a '-' */
    size_t out_len;
    unsigned g_cpu; /* Hg: registers and memory */
    int c_cpu;      /* Hc: what s steps; -1: any (the current one) */
    bool running;   /* a c or s waits for its stop reply */
    bool phys;      /* memory packets use physical addresses (monitor phys) */
    char stop[96];  /* the last stop reply, for '?' */
    struct {
        uint64_t addr;
        uint8_t orig;
        bool used;
    } sw[GDB_MAX_SW_BP];
    struct {
        uint64_t addr;
        unsigned len;
        enum x86_hwbp_type type;
        bool used;
    } hw[4];
};

/* Starts a session; the guest is stopped (the first '?' answers T05 on thread 1). */
void gdb_session_init(struct gdb_session *s, const struct gdb_target_ops *ops, void *ctx);

/* Takes bytes from the client. */
void gdb_session_input(struct gdb_session *s, const uint8_t *data, size_t len);

/*
 * The target stopped on a KVM_EXIT_DEBUG of cpu: exception 1 (#DB, with
 * DR6) or 3 (#BP). Sends the stop reply if a resume waits for one.
 */
void gdb_session_debug_exit(struct gdb_session *s, unsigned cpu, unsigned exception, uint64_t dr6);

/* Every vCPU stopped after an interrupt (Ctrl-C); cpu is the thread to report. */
void gdb_session_interrupted(struct gdb_session *s, unsigned cpu);

/* The guest ended with status (W reply). */
void gdb_session_exited(struct gdb_session *s, int status);

/*
 * The client left: removes every breakpoint from the guest (original bytes
 * back, debug registers off). The target resumes the guest itself.
 */
void gdb_session_detach(struct gdb_session *s);

/* The debug state the session's breakpoints ask for. */
void gdb_session_debug_state(const struct gdb_session *s, struct gdb_debug *d);

#endif
