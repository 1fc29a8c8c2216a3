/* A gdb client's session: the remote protocol's commands on a target (gdb_session.h). */
#include "petrel/gdb_session.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Error replies: gdb shows the number; these are errno values. */
#define GDB_E_INVAL "E16" /* 22: a malformed packet or argument */
#define GDB_E_FAULT "E0e" /* 14: guest memory that is not there */
#define GDB_E_NOSPC "E1c" /* 28: no free breakpoint slot */
#define GDB_E_BUSY  "E10" /* 16: the guest is running */

/* Frames and sends a reply, keeping it for a resend. */
static void gdb_reply_len(struct gdb_session *s, const char *payload, size_t len)
{
    int n = gdb_frame(s->out, sizeof(s->out), payload, len);
    if (n < 0) {
        n = gdb_frame(s->out, sizeof(s->out), "E01", 3); /* cannot happen: replies are bounded */
        if (n < 0)
            return;
    }
    s->out_len = (size_t)n;
    s->ops->send(s->ctx, s->out, s->out_len);
}

static void gdb_reply(struct gdb_session *s, const char *payload)
{
    gdb_reply_len(s, payload, strlen(payload));
}

static void gdb_reply_err(struct gdb_session *s, int err)
{
    char e[8];
    snprintf(e, sizeof(e), "E%02x", (unsigned)(-err) & 0xff);
    gdb_reply(s, e);
}

void gdb_session_init(struct gdb_session *s, const struct gdb_target_ops *ops, void *ctx)
{
    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->ctx = ctx;
    s->c_cpu = -1;
    gdb_rx_init(&s->rx);
    snprintf(s->stop, sizeof(s->stop), "T05thread:01;");
}

void gdb_session_debug_state(const struct gdb_session *s, struct gdb_debug *d)
{
    memset(d, 0, sizeof(*d));
    for (unsigned i = 0; i < GDB_MAX_SW_BP; i++)
        d->sw |= s->sw[i].used;
    for (unsigned i = 0; i < 4; i++) {
        uint64_t bits;
        if (!s->hw[i].used ||
            x86_dr7_slot(i, s->hw[i].type, s->hw[i].addr, s->hw[i].len, &bits) != 0)
            continue;
        d->dr[i] = s->hw[i].addr;
        d->dr7 |= bits;
    }
}

/* Parses a thread id ("1", "-1", "0"): 0 any, -1 all, else the vCPU index + 1. */
static int gdb_parse_thread(const char *p, long *tid)
{
    uint64_t v;

    if (!strcmp(p, "-1")) {
        *tid = -1;
        return 0;
    }
    if (gdb_parse_hex(&p, &v) || *p || v > 0x10000)
        return -EINVAL;
    *tid = (long)v;
    return 0;
}

/* The cpu a thread id names, or -EINVAL. */
static int gdb_thread_cpu(struct gdb_session *s, long tid)
{
    if (tid < 1 || (unsigned long)tid > s->ops->nr_cpus(s->ctx))
        return -EINVAL;
    return (int)(tid - 1);
}

/* Bytes of planted breakpoints in [addr, addr + len) replaced by the original ones. */
static void gdb_hide_sw(struct gdb_session *s, uint64_t addr, uint8_t *buf, size_t len)
{
    if (s->phys)
        return; /* breakpoints are planted at virtual addresses */
    for (unsigned i = 0; i < GDB_MAX_SW_BP; i++) {
        if (s->sw[i].used && s->sw[i].addr - addr < len)
            buf[s->sw[i].addr - addr] = s->sw[i].orig;
    }
}

/* "addr,len" then *p at what follows. */
static int gdb_parse_addr_len(const char **p, uint64_t *addr, uint64_t *len)
{
    if (gdb_parse_hex(p, addr) || **p != ',')
        return -EINVAL;
    (*p)++;
    return gdb_parse_hex(p, len);
}

static void gdb_cmd_read_mem(struct gdb_session *s, const char *p)
{
    uint8_t buf[GDB_PACKET_MAX / 2];
    char hex[GDB_PACKET_MAX];
    uint64_t addr, len;

    if (gdb_parse_addr_len(&p, &addr, &len) || *p) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    if (len > sizeof(buf) - 8)
        len = sizeof(buf) - 8; /* gdb asks again for the rest */
    int ret = s->ops->read_mem(s->ctx, s->g_cpu, s->phys, addr, buf, len);
    if (ret) {
        gdb_reply_err(s, ret);
        return;
    }
    gdb_hide_sw(s, addr, buf, len);
    gdb_tohex(hex, buf, len);
    gdb_reply_len(s, hex, 2 * len);
}

/*
 * Writes guest memory. Where a software breakpoint is planted, the new byte
 * becomes its original one and the int3 stays.
 */
static int gdb_write_mem(struct gdb_session *s, uint64_t addr, uint8_t *buf, size_t len)
{
    uint8_t saved[GDB_MAX_SW_BP];
    bool touched[GDB_MAX_SW_BP] = {false};

    if (!s->phys) {
        for (unsigned i = 0; i < GDB_MAX_SW_BP; i++) {
            if (s->sw[i].used && s->sw[i].addr - addr < len) {
                saved[i] = buf[s->sw[i].addr - addr];
                buf[s->sw[i].addr - addr] = 0xcc;
                touched[i] = true;
            }
        }
    }
    int ret = s->ops->write_mem(s->ctx, s->g_cpu, s->phys, addr, buf, len);
    if (ret)
        return ret;
    for (unsigned i = 0; i < GDB_MAX_SW_BP; i++)
        if (touched[i])
            s->sw[i].orig = saved[i];
    return 0;
}

static void gdb_cmd_write_mem(struct gdb_session *s, const char *p)
{
    uint8_t buf[GDB_PACKET_MAX / 2];
    uint64_t addr, len;

    if (gdb_parse_addr_len(&p, &addr, &len) || *p != ':' || len > sizeof(buf) ||
        strlen(p + 1) != 2 * len || gdb_fromhex(buf, p + 1, len)) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    int ret = gdb_write_mem(s, addr, buf, len);
    if (ret)
        gdb_reply_err(s, ret);
    else
        gdb_reply(s, "OK");
}

static void gdb_cmd_read_regs(struct gdb_session *s, int reg)
{
    struct x86_gdb_regs r;
    uint8_t buf[X86_GDB_REGS_BYTES];
    char hex[2 * X86_GDB_REGS_BYTES];
    size_t off = 0, size = sizeof(buf);

    if (reg >= 0 && x86_gdb_reg_slot((unsigned)reg, &off, &size)) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    int ret = s->ops->get_regs(s->ctx, s->g_cpu, &r);
    if (ret) {
        gdb_reply_err(s, ret);
        return;
    }
    x86_gdb_pack(&r, buf);
    gdb_tohex(hex, buf + off, size);
    gdb_reply_len(s, hex, 2 * size);
}

/* G (reg < 0: every register) or P (one). */
static void gdb_cmd_write_regs(struct gdb_session *s, int reg, const char *hex)
{
    struct x86_gdb_regs r;
    uint8_t buf[X86_GDB_REGS_BYTES];
    size_t off = 0, size = sizeof(buf);

    if (reg >= 0 && x86_gdb_reg_slot((unsigned)reg, &off, &size)) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    if (strlen(hex) != 2 * size) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    int ret = s->ops->get_regs(s->ctx, s->g_cpu, &r);
    if (ret) {
        gdb_reply_err(s, ret);
        return;
    }
    x86_gdb_pack(&r, buf);
    if (gdb_fromhex(buf + off, hex, size) || x86_gdb_unpack(&r, buf)) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    ret = s->ops->set_regs(s->ctx, s->g_cpu, &r);
    if (ret)
        gdb_reply_err(s, ret);
    else
        gdb_reply(s, "OK");
}

/* Applies the breakpoints to the target; on a refusal the caller undoes its change. */
static int gdb_apply_debug(struct gdb_session *s)
{
    struct gdb_debug d;

    gdb_session_debug_state(s, &d);
    return s->ops->set_debug(s->ctx, &d);
}

static int gdb_sw_insert(struct gdb_session *s, uint64_t addr)
{
    int free_slot = -1;
    uint8_t orig, cc = 0xcc;

    for (unsigned i = 0; i < GDB_MAX_SW_BP; i++) {
        if (s->sw[i].used && s->sw[i].addr == addr)
            return 0; /* already planted: gdb may insert twice */
        if (!s->sw[i].used && free_slot < 0)
            free_slot = (int)i;
    }
    if (free_slot < 0)
        return -ENOSPC;
    int ret = s->ops->read_mem(s->ctx, s->g_cpu, false, addr, &orig, 1);
    if (ret)
        return ret;
    s->sw[free_slot].used = true;
    s->sw[free_slot].addr = addr;
    s->sw[free_slot].orig = orig;
    ret = gdb_apply_debug(s);
    if (!ret)
        ret = s->ops->write_mem(s->ctx, s->g_cpu, false, addr, &cc, 1);
    if (ret) {
        s->sw[free_slot].used = false;
        int undo = gdb_apply_debug(s);
        (void)undo; /* the refusal is what gdb hears about */
    }
    return ret;
}

static int gdb_sw_remove(struct gdb_session *s, uint64_t addr)
{
    for (unsigned i = 0; i < GDB_MAX_SW_BP; i++) {
        if (!s->sw[i].used || s->sw[i].addr != addr)
            continue;
        int ret = s->ops->write_mem(s->ctx, s->g_cpu, false, addr, &s->sw[i].orig, 1);
        s->sw[i].used = false;
        int dret = gdb_apply_debug(s);
        return ret ? ret : dret;
    }
    return 0; /* not planted: nothing to remove */
}

static int gdb_hw_insert(struct gdb_session *s, enum x86_hwbp_type type, uint64_t addr,
                         unsigned len)
{
    uint64_t bits;
    int slot = -1;

    for (unsigned i = 0; i < 4; i++) {
        if (!s->hw[i].used && slot < 0)
            slot = (int)i;
    }
    if (slot < 0)
        return -ENOSPC;
    int ret = x86_dr7_slot((unsigned)slot, type, addr, len, &bits);
    if (ret)
        return ret;
    s->hw[slot].used = true;
    s->hw[slot].addr = addr;
    s->hw[slot].len = len;
    s->hw[slot].type = type;
    ret = gdb_apply_debug(s);
    if (ret) {
        s->hw[slot].used = false;
        int undo = gdb_apply_debug(s);
        (void)undo;
    }
    return ret;
}

static int gdb_hw_remove(struct gdb_session *s, enum x86_hwbp_type type, uint64_t addr,
                         unsigned len)
{
    for (unsigned i = 0; i < 4; i++) {
        if (s->hw[i].used && s->hw[i].type == type && s->hw[i].addr == addr &&
            s->hw[i].len == len) {
            s->hw[i].used = false;
            return gdb_apply_debug(s);
        }
    }
    return 0;
}

/* Z/z type,addr,kind */
static void gdb_cmd_breakpoint(struct gdb_session *s, bool insert, const char *p)
{
    uint64_t type, addr, kind;
    int ret;

    if (gdb_parse_hex(&p, &type) || *p++ != ',' || gdb_parse_addr_len(&p, &addr, &kind) ||
        (*p && *p != ';') || type > 4) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    if (type == 0) {
        if (kind != 1) {
            gdb_reply(s, GDB_E_INVAL);
            return;
        }
        ret = insert ? gdb_sw_insert(s, addr) : gdb_sw_remove(s, addr);
    } else {
        if (kind > 8) {
            gdb_reply(s, GDB_E_INVAL);
            return;
        }
        ret = insert ? gdb_hw_insert(s, (enum x86_hwbp_type)type, addr, (unsigned)kind)
                     : gdb_hw_remove(s, (enum x86_hwbp_type)type, addr, (unsigned)kind);
    }
    if (ret)
        gdb_reply_err(s, ret);
    else
        gdb_reply(s, "OK");
}

/* c [addr] or s [addr]: no reply now; the stop reply comes with the stop. */
static void gdb_cmd_resume(struct gdb_session *s, bool step, const char *p)
{
    struct gdb_debug d;
    int cpu = step ? (s->c_cpu >= 0 ? s->c_cpu : (int)s->g_cpu) : -1;

    if (*p) {
        struct x86_gdb_regs r;
        uint64_t addr;
        unsigned rc = step ? (unsigned)cpu : s->g_cpu;
        if (gdb_parse_hex(&p, &addr) || *p) {
            gdb_reply(s, GDB_E_INVAL);
            return;
        }
        int ret = s->ops->get_regs(s->ctx, rc, &r);
        if (!ret) {
            r.regs.rip = addr;
            ret = s->ops->set_regs(s->ctx, rc, &r);
        }
        if (ret) {
            gdb_reply_err(s, ret);
            return;
        }
    }
    gdb_session_debug_state(s, &d);
    int ret = s->ops->resume(s->ctx, cpu, &d);
    if (ret) {
        gdb_reply_err(s, ret);
        return;
    }
    s->running = true;
}

/* Sends a stop reply and records it for '?'. */
static void gdb_stopped(struct gdb_session *s, unsigned cpu, const char *reason)
{
    snprintf(s->stop, sizeof(s->stop), "%sthread:%02x;", reason, cpu + 1);
    s->g_cpu = cpu;
    s->c_cpu = -1;
    if (!s->running)
        return;
    s->running = false;
    gdb_reply(s, s->stop);
}

void gdb_session_debug_exit(struct gdb_session *s, unsigned cpu, unsigned exception, uint64_t dr6)
{
    char reason[64];

    snprintf(reason, sizeof(reason), "T05");
    if (exception == 3) {
        snprintf(reason, sizeof(reason), "T05swbreak:;");
    } else {
        for (unsigned i = 0; i < 4; i++) {
            if (!(dr6 & (1ULL << i)) || !s->hw[i].used)
                continue;
            static const char *const kinds[] = {"", "hwbreak:", "watch:", "rwatch:", "awatch:"};
            if (s->hw[i].type == X86_HWBP_EXEC)
                snprintf(reason, sizeof(reason), "T05hwbreak:;");
            else
                snprintf(reason, sizeof(reason), "T05%s%llx;", kinds[s->hw[i].type],
                         (unsigned long long)s->hw[i].addr);
            break;
        }
    }
    gdb_stopped(s, cpu, reason);
}

void gdb_session_interrupted(struct gdb_session *s, unsigned cpu)
{
    gdb_stopped(s, cpu, "T02");
}

void gdb_session_exited(struct gdb_session *s, int status)
{
    char w[8];

    snprintf(w, sizeof(w), "W%02x", (unsigned)status & 0xff);
    snprintf(s->stop, sizeof(s->stop), "%s", w);
    if (!s->running)
        return;
    s->running = false;
    gdb_reply(s, w);
}

void gdb_session_detach(struct gdb_session *s)
{
    for (unsigned i = 0; i < GDB_MAX_SW_BP; i++) {
        if (!s->sw[i].used)
            continue;
        int ret = s->ops->write_mem(s->ctx, s->g_cpu, false, s->sw[i].addr, &s->sw[i].orig, 1);
        (void)ret; /* memory that went away (page tables changed) has no int3 left to remove */
        s->sw[i].used = false;
    }
    for (unsigned i = 0; i < 4; i++)
        s->hw[i].used = false;
    int ret = gdb_apply_debug(s);
    (void)ret; /* nothing to tell: the client is gone */
}

/* qXfer:features:read:target.xml:offset,length */
static void gdb_cmd_xfer(struct gdb_session *s, const char *p)
{
    static const char prefix[] = "target.xml:";
    char buf[GDB_PACKET_MAX];
    uint64_t off, len;

    if (strncmp(p, prefix, sizeof(prefix) - 1)) {
        gdb_reply(s, "E00"); /* no such annex */
        return;
    }
    p += sizeof(prefix) - 1;
    if (gdb_parse_addr_len(&p, &off, &len) || *p) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    size_t total = x86_gdb_target_xml_len;
    if (off >= total) {
        gdb_reply(s, "l");
        return;
    }
    if (len > sizeof(buf) / 2 - 1)
        len = sizeof(buf) / 2 - 1; /* escapes may double it */
    size_t n = total - off < len ? total - off : len;
    buf[0] = off + n < total ? 'm' : 'l';
    memcpy(buf + 1, x86_gdb_target_xml + off, n);
    gdb_reply_len(s, buf, n + 1);
}

/* monitor commands (qRcmd): output as an O packet, then OK. */
static void gdb_cmd_monitor(struct gdb_session *s, const char *hex)
{
    char cmd[64], msg[160], out[2 * sizeof(msg) + 2];
    size_t n = strlen(hex) / 2;

    if (strlen(hex) % 2 || n >= sizeof(cmd) || gdb_fromhex(cmd, hex, n)) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    cmd[n] = '\0';
    if (!strcmp(cmd, "phys")) {
        s->phys = true;
        snprintf(msg, sizeof(msg), "memory addresses are guest-physical\n");
    } else if (!strcmp(cmd, "virt")) {
        s->phys = false;
        snprintf(msg, sizeof(msg), "memory addresses are virtual (the thread's page tables)\n");
    } else {
        snprintf(msg, sizeof(msg),
                 "petrel monitor commands: phys (memory by guest-physical address), virt "
                 "(by virtual address, the default)\n");
    }
    out[0] = 'O';
    gdb_tohex(out + 1, msg, strlen(msg));
    gdb_reply_len(s, out, 1 + 2 * strlen(msg));
    gdb_reply(s, "OK");
}

static void gdb_cmd_query(struct gdb_session *s, const char *p)
{
    char buf[GDB_PACKET_MAX];

    if (!strncmp(p, "qSupported", 10)) {
        snprintf(buf, sizeof(buf), "PacketSize=%x;qXfer:features:read+;swbreak+;hwbreak+",
                 GDB_PACKET_MAX);
        gdb_reply(s, buf);
    } else if (!strncmp(p, "qXfer:features:read:", 20)) {
        gdb_cmd_xfer(s, p + 20);
    } else if (!strcmp(p, "qAttached")) {
        gdb_reply(s, "1");
    } else if (!strcmp(p, "qC")) {
        snprintf(buf, sizeof(buf), "QC%02x", s->g_cpu + 1);
        gdb_reply(s, buf);
    } else if (!strcmp(p, "qfThreadInfo")) {
        unsigned n = s->ops->nr_cpus(s->ctx);
        size_t len = 0;
        buf[len++] = 'm';
        for (unsigned i = 0; i < n && len + 12 < sizeof(buf); i++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, i ? ",%x" : "%x", i + 1);
        gdb_reply_len(s, buf, len);
    } else if (!strcmp(p, "qsThreadInfo")) {
        gdb_reply(s, "l");
    } else if (!strncmp(p, "qThreadExtraInfo,", 17)) {
        long tid;
        char name[32];
        if (gdb_parse_thread(p + 17, &tid) || gdb_thread_cpu(s, tid) < 0) {
            gdb_reply(s, GDB_E_INVAL);
            return;
        }
        snprintf(name, sizeof(name), "vCPU %ld", tid - 1);
        gdb_tohex(buf, name, strlen(name));
        gdb_reply_len(s, buf, 2 * strlen(name));
    } else if (!strncmp(p, "qRcmd,", 6)) {
        gdb_cmd_monitor(s, p + 6);
    } else {
        gdb_reply(s, ""); /* not supported */
    }
}

/* H[gc]thread */
static void gdb_cmd_thread(struct gdb_session *s, const char *p)
{
    long tid;
    char op = *p++;

    if ((op != 'g' && op != 'c') || gdb_parse_thread(p, &tid)) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    if (tid <= 0) { /* any or all: keep the current thread */
        if (op == 'c')
            s->c_cpu = -1;
        gdb_reply(s, "OK");
        return;
    }
    int cpu = gdb_thread_cpu(s, tid);
    if (cpu < 0) {
        gdb_reply(s, GDB_E_INVAL);
        return;
    }
    if (op == 'g')
        s->g_cpu = (unsigned)cpu;
    else
        s->c_cpu = cpu;
    gdb_reply(s, "OK");
}

static void gdb_packet(struct gdb_session *s, const char *p)
{
    long tid;
    uint64_t reg;
    const char *q;

    if (s->running) {
        gdb_reply(s, GDB_E_BUSY); /* all-stop: gdb sends only 0x03 while the guest runs */
        return;
    }
    switch (p[0]) {
    case '?':
        gdb_reply(s, s->stop);
        break;
    case 'g':
        gdb_cmd_read_regs(s, -1);
        break;
    case 'G':
        gdb_cmd_write_regs(s, -1, p + 1);
        break;
    case 'p':
        q = p + 1;
        if (gdb_parse_hex(&q, &reg) || *q || reg >= X86_GDB_NR_REGS)
            gdb_reply(s, GDB_E_INVAL);
        else
            gdb_cmd_read_regs(s, (int)reg);
        break;
    case 'P':
        q = p + 1;
        if (gdb_parse_hex(&q, &reg) || *q != '=' || reg >= X86_GDB_NR_REGS)
            gdb_reply(s, GDB_E_INVAL);
        else
            gdb_cmd_write_regs(s, (int)reg, q + 1);
        break;
    case 'm':
        gdb_cmd_read_mem(s, p + 1);
        break;
    case 'M':
        gdb_cmd_write_mem(s, p + 1);
        break;
    case 'c':
        gdb_cmd_resume(s, false, p + 1);
        break;
    case 's':
        gdb_cmd_resume(s, true, p + 1);
        break;
    case 'H':
        gdb_cmd_thread(s, p + 1);
        break;
    case 'T':
        if (gdb_parse_thread(p + 1, &tid) || gdb_thread_cpu(s, tid) < 0)
            gdb_reply(s, GDB_E_INVAL);
        else
            gdb_reply(s, "OK");
        break;
    case 'Z':
    case 'z':
        gdb_cmd_breakpoint(s, p[0] == 'Z', p + 1);
        break;
    case 'q':
        gdb_cmd_query(s, p);
        break;
    case 'D':
        gdb_session_detach(s);
        gdb_reply(s, "OK");
        break;
    case 'k':
        gdb_session_detach(s);
        s->ops->kill(s->ctx);
        break;
    default:
        gdb_reply(s, ""); /* X, vCont, v..., Q...: not supported; gdb falls back */
        break;
    }
}

void gdb_session_input(struct gdb_session *s, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        switch (gdb_rx_feed(&s->rx, data[i])) {
        case GDB_RX_PACKET:
            s->ops->send(s->ctx, "+", 1);
            gdb_packet(s, s->rx.buf);
            break;
        case GDB_RX_BAD_PACKET:
            s->ops->send(s->ctx, "-", 1);
            break;
        case GDB_RX_NACK:
            if (s->out_len)
                s->ops->send(s->ctx, s->out, s->out_len);
            break;
        case GDB_RX_INTERRUPT:
            if (s->running)
                s->ops->interrupt(s->ctx);
            break;
        case GDB_RX_ACK:
        case GDB_RX_NONE:
            break;
        }
    }
}
