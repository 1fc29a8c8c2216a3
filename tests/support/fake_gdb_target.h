/*
 * A fake target for gdb_session (unit tests and the fuzz target): 64 KiB of
 * memory at address 0 (virtual = physical), N vCPUs' registers in memory,
 * what the session applied (breakpoints, resumes) recorded, and everything
 * it sent kept in one buffer.
 */
#ifndef PETREL_FAKE_GDB_TARGET_H
#define PETREL_FAKE_GDB_TARGET_H

#include <errno.h>
#include <string.h>

#include "petrel/gdb_session.h"

#define FAKE_GDB_MEM  65536
#define FAKE_GDB_CPUS 4

struct fake_gdb {
    uint8_t mem[FAKE_GDB_MEM];
    struct x86_gdb_regs regs[FAKE_GDB_CPUS];
    unsigned nr_cpus;
    struct gdb_debug debug; /* the last set_debug or resume */
    int refuse_debug;       /* set_debug and resume fail with this (-errno), or 0 */
    int resumes, step_cpu, interrupts, kills, set_debugs;
    char sent[1 << 16];
    size_t sent_len;
};

static inline unsigned fake_gdb_nr_cpus(void *ctx)
{
    return ((struct fake_gdb *)ctx)->nr_cpus;
}

static inline int fake_gdb_get_regs(void *ctx, unsigned cpu, struct x86_gdb_regs *r)
{
    struct fake_gdb *f = ctx;
    if (cpu >= f->nr_cpus)
        return -EINVAL;
    *r = f->regs[cpu];
    return 0;
}

static inline int fake_gdb_set_regs(void *ctx, unsigned cpu, const struct x86_gdb_regs *r)
{
    struct fake_gdb *f = ctx;
    if (cpu >= f->nr_cpus)
        return -EINVAL;
    f->regs[cpu] = *r;
    return 0;
}

static inline int fake_gdb_read_mem(void *ctx, unsigned cpu, bool phys, uint64_t addr, void *buf,
                                    size_t len)
{
    struct fake_gdb *f = ctx;
    (void)cpu;
    (void)phys;
    if (addr > FAKE_GDB_MEM || len > FAKE_GDB_MEM - addr)
        return -EFAULT;
    memcpy(buf, f->mem + addr, len);
    return 0;
}

static inline int fake_gdb_write_mem(void *ctx, unsigned cpu, bool phys, uint64_t addr,
                                     const void *buf, size_t len)
{
    struct fake_gdb *f = ctx;
    (void)cpu;
    (void)phys;
    if (addr > FAKE_GDB_MEM || len > FAKE_GDB_MEM - addr)
        return -EFAULT;
    memcpy(f->mem + addr, buf, len);
    return 0;
}

static inline int fake_gdb_set_debug(void *ctx, const struct gdb_debug *d)
{
    struct fake_gdb *f = ctx;
    f->set_debugs++;
    if (f->refuse_debug && (d->sw || d->dr7))
        return f->refuse_debug;
    f->debug = *d;
    return 0;
}

static inline int fake_gdb_resume(void *ctx, int step_cpu, const struct gdb_debug *d)
{
    struct fake_gdb *f = ctx;
    if (f->refuse_debug && step_cpu >= 0)
        return f->refuse_debug;
    f->resumes++;
    f->step_cpu = step_cpu;
    f->debug = *d;
    return 0;
}

static inline void fake_gdb_interrupt(void *ctx)
{
    ((struct fake_gdb *)ctx)->interrupts++;
}

static inline void fake_gdb_kill(void *ctx)
{
    ((struct fake_gdb *)ctx)->kills++;
}

static inline void fake_gdb_send(void *ctx, const void *data, size_t len)
{
    struct fake_gdb *f = ctx;
    if (len > sizeof(f->sent) - f->sent_len - 1)
        f->sent_len = 0; /* a long run: keep the latest */
    if (len > sizeof(f->sent) - 1)
        return;
    memcpy(f->sent + f->sent_len, data, len);
    f->sent_len += len;
    f->sent[f->sent_len] = '\0';
}

static const struct gdb_target_ops fake_gdb_ops = {
    .nr_cpus = fake_gdb_nr_cpus,
    .get_regs = fake_gdb_get_regs,
    .set_regs = fake_gdb_set_regs,
    .read_mem = fake_gdb_read_mem,
    .write_mem = fake_gdb_write_mem,
    .set_debug = fake_gdb_set_debug,
    .resume = fake_gdb_resume,
    .interrupt = fake_gdb_interrupt,
    .kill = fake_gdb_kill,
    .send = fake_gdb_send,
};

#endif
