/*
 * The gdb stub on the loop (gdb.h): the listening socket, one client, and
 * the target a gdb_session drives, made of the VM's pause and resume, the
 * vCPUs' registers and KVM_SET_GUEST_DEBUG, and guest memory.
 *
 * Stopping: a vCPU that takes a debug exit records it and waits
 * (vcpu_handle_debug() in vcpu_kvm.c); the stub, told through vm->debug_hook,
 * pauses the VM with vm_pause(), the same kick as petrel pause, so every vCPU
 * is out of the guest when gdb hears of the stop. Ctrl-C (0x03) is the same
 * pause without a debug exit. A vCPU's registers are read and written with
 * ioctls from the loop only while the VM is Paused: a vCPU ioctl waits for
 * that vCPU to leave KVM_RUN, which a spinning guest never would.
 */
#include "petrel/gdb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <event2/buffer.h>

#include "petrel/gdb_session.h"
#include "petrel/vm.h"
#include "petrel/x86_cpu.h"

enum gdb_stub_state {
    GDB_STUB_STOPPED,  /* the VM is paused for gdb (or was resumed behind its back) */
    GDB_STUB_RUNNING,  /* gdb resumed it and waits for a stop */
    GDB_STUB_STOPPING, /* a pause for a stop or Ctrl-C is on its way */
};

struct gdb_stub {
    struct vm *vm;
    int listen_fd;
    struct event *ev_listen;
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "": TCP */

    int fd; /* the client, or -1 */
    struct event *ev_read, *ev_write;
    struct evbuffer *out;
    struct gdb_session sess;

    enum gdb_stub_state state;
    bool detach_pending; /* the client left while the guest ran: detach once paused */
    bool exited;         /* the VM is stopping; gdb was told */
    int debug_cap;       /* KVM_CAP_SET_GUEST_DEBUG */
    /* What this host cannot do, and why (gdb_host_limits()); refused with an error. */
    bool no_sw_bp, no_hw_exec, no_watch, no_step;
    const char *limits_why;
    bool told_refusal; /* the refusal was explained on stderr once */
    uint32_t blockirq; /* KVM_GUESTDBG_BLOCKIRQ where KVM offers it, else 0 */
};

/* The parsed --gdb address. */
struct gdb_addr {
    bool is_unix;
    const char *path;
    unsigned port;
};

static int gdb_addr_parse(const char *spec, struct gdb_addr *a, struct errbuf *eb)
{
    unsigned long port;

    memset(a, 0, sizeof(*a));
    if (!strncmp(spec, "unix:", 5)) {
        a->is_unix = true;
        a->path = spec + 5;
        if (!*a->path || strlen(a->path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return err_set(eb, -EINVAL, "--gdb '%s': the socket path must be 1-%zu bytes", spec,
                           sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return 0;
    }
    if (!strncmp(spec, "127.0.0.1:", 10)) {
        if (parse_uint(spec + 10, 1, 65535, &port))
            return err_set(eb, -EINVAL, "--gdb '%s': the port must be a number from 1 to 65535",
                           spec);
        a->port = (unsigned)port;
        return 0;
    }
    return err_set(eb, -EINVAL,
                   "--gdb '%s' must be unix:PATH or 127.0.0.1:PORT: whoever reaches a gdb stub "
                   "controls the guest, so petrel listens on no other address",
                   spec);
}

int gdb_addr_check(const char *spec, struct errbuf *eb)
{
    struct gdb_addr a;
    return gdb_addr_parse(spec, &a, eb);
}

/* --- the target a session drives ---------------------------------------- */

static unsigned gdb_nr_cpus(void *ctx)
{
    struct gdb_stub *g = ctx;
    return g->vm->nr_vcpus;
}

/* vCPU ioctls from the loop only while every vCPU is parked (see the top). */
static int gdb_vcpu_fd(struct gdb_stub *g, unsigned cpu)
{
    if (g->vm->state != VM_PAUSED)
        return -EBUSY;
    if (cpu >= g->vm->nr_vcpus)
        return -EINVAL;
    return g->vm->vcpus[cpu].fd;
}

static int gdb_get_regs(void *ctx, unsigned cpu, struct x86_gdb_regs *r)
{
    int fd = gdb_vcpu_fd(ctx, cpu);
    if (fd < 0)
        return fd;
    if (ioctl(fd, KVM_GET_REGS, &r->regs) < 0 || ioctl(fd, KVM_GET_SREGS, &r->sregs) < 0 ||
        ioctl(fd, KVM_GET_FPU, &r->fpu) < 0)
        return -errno;
    return 0;
}

static int gdb_set_regs(void *ctx, unsigned cpu, const struct x86_gdb_regs *r)
{
    struct x86_gdb_regs cur;
    int ret = gdb_get_regs(ctx, cpu, &cur);
    if (ret)
        return ret;
    int fd = ((struct gdb_stub *)ctx)->vm->vcpus[cpu].fd;
    /* Only what changed: KVM_SET_SREGS also resets state (the MMU context) for nothing. */
    if (memcmp(&cur.regs, &r->regs, sizeof(r->regs)) && ioctl(fd, KVM_SET_REGS, &r->regs) < 0)
        return -errno;
    if (memcmp(&cur.sregs, &r->sregs, sizeof(r->sregs)) && ioctl(fd, KVM_SET_SREGS, &r->sregs) < 0)
        return -errno;
    if (memcmp(&cur.fpu, &r->fpu, sizeof(r->fpu)) && ioctl(fd, KVM_SET_FPU, &r->fpu) < 0)
        return -errno;
    return 0;
}

/*
 * Copies between buf and guest memory at addr, page by page: physical
 * addresses straight through gm_ptr(), virtual ones translated with cpu's
 * page tables first. -EFAULT where nothing is mapped or the page is not RAM.
 */
static int gdb_mem(struct gdb_stub *g, unsigned cpu, bool phys, uint64_t addr, uint8_t *buf,
                   size_t len, bool write)
{
    struct x86_mmu mmu = {0};

    if (!phys) {
        struct kvm_sregs s;
        int fd = gdb_vcpu_fd(g, cpu);
        if (fd < 0)
            return fd;
        if (ioctl(fd, KVM_GET_SREGS, &s) < 0)
            return -errno;
        mmu = (struct x86_mmu){.cr0 = s.cr0, .cr3 = s.cr3, .cr4 = s.cr4, .efer = s.efer};
    }
    while (len) {
        uint64_t gpa = addr, span = 4096 - (addr & 4095);
        if (!phys) {
            int ret = x86_translate(&g->vm->mem, &mmu, addr, &gpa, &span);
            if (ret)
                return ret;
        }
        size_t n = span < len ? (size_t)span : len;
        uint8_t *p = gm_ptr(&g->vm->mem, gpa, n);
        if (!p)
            return -EFAULT;
        if (write)
            memcpy(p, buf, n);
        else
            memcpy(buf, p, n);
        addr += n;
        buf += n;
        len -= n;
    }
    return 0;
}

static int gdb_read_mem(void *ctx, unsigned cpu, bool phys, uint64_t addr, void *buf, size_t len)
{
    return gdb_mem(ctx, cpu, phys, addr, buf, len, false);
}

static int gdb_write_mem(void *ctx, unsigned cpu, bool phys, uint64_t addr, const void *buf,
                         size_t len)
{
    return gdb_mem(ctx, cpu, phys, addr, (uint8_t *)buf, len, true);
}

/* Whether DR7 enables a data breakpoint (R/W not 00), or with !data an execute one. */
static bool gdb_dr7_has(uint64_t dr7, bool data)
{
    for (unsigned i = 0; i < 4; i++)
        if ((dr7 & (3ULL << (2 * i))) && (((dr7 >> (16 + 4 * i)) & 3) != 0) == data)
            return true;
    return false;
}

/*
 * Hosts known to accept KVM_SET_GUEST_DEBUG and then not deliver what it
 * asks for. Measured (docs/gdb.md):
 *  - kvm_pvm runs kernel-mode guest code through an emulator that fails on
 *    int3 (the guest would crash) and never fires a data watchpoint; execute
 *    breakpoints and steps work (../shared/PVM.md);
 *  - kvm_amd on QEMU's TCG emulation of SVM (the nested harness; L1's CPUID
 *    hypervisor leaf says "TCGTCGTCGTCG"): no debug exit arrives at all, an
 *    int3 goes to the guest, a hardware breakpoint or watchpoint never fires.
 */
static void gdb_host_limits(struct gdb_stub *g)
{
    if (access("/sys/module/kvm_pvm", F_OK) == 0) {
        g->no_sw_bp = g->no_watch = true;
        g->limits_why = "this host's KVM (kvm_pvm) fails on int3 and never fires a data "
                        "watchpoint: software breakpoints and watchpoints are refused (hbreak, "
                        "stepping and Ctrl-C work)";
        return;
    }
    if (x86_host_is_tcg()) {
        g->no_sw_bp = g->no_hw_exec = g->no_watch = g->no_step = true;
        g->limits_why = "this host's CPU is QEMU's TCG emulation, whose SVM delivers no guest "
                        "debug exits to KVM: breakpoints, watchpoints and stepping are refused "
                        "(registers, memory and Ctrl-C work)";
    }
}

/* KVM_SET_GUEST_DEBUG on every vCPU; step_cpu (or -1) single-steps. */
static int gdb_apply(struct gdb_stub *g, const struct gdb_debug *d, int step_cpu)
{
    bool any = d->sw || d->dr7 || step_cpu >= 0;

    /* What this host cannot do is refused, so gdb says so: never a silent no-op. */
    const char *refused = NULL;
    if (any && g->debug_cap <= 0)
        refused = "this host's KVM has no guest debugging (KVM_CAP_SET_GUEST_DEBUG)";
    else if ((d->sw && g->no_sw_bp) || (gdb_dr7_has(d->dr7, true) && g->no_watch) ||
             (gdb_dr7_has(d->dr7, false) && g->no_hw_exec) || (step_cpu >= 0 && g->no_step))
        refused = g->limits_why;
    if (refused) {
        if (!g->told_refusal)
            fprintf(stderr, "petrel: gdb: %s\n", refused);
        g->told_refusal = true;
        return -EOPNOTSUPP;
    }
    for (unsigned i = 0; i < g->vm->nr_vcpus; i++) {
        int fd = gdb_vcpu_fd(g, i);
        if (fd < 0)
            return fd;
        struct kvm_guest_debug dbg;
        memset(&dbg, 0, sizeof(dbg));
        if (any) {
            dbg.control = KVM_GUESTDBG_ENABLE;
            if (d->sw)
                dbg.control |= KVM_GUESTDBG_USE_SW_BP;
            if (d->dr7) {
                dbg.control |= KVM_GUESTDBG_USE_HW_BP;
                for (unsigned j = 0; j < 4; j++)
                    dbg.arch.debugreg[j] = d->dr[j];
                dbg.arch.debugreg[7] = d->dr7;
            }
            if ((int)i == step_cpu)
                dbg.control |= KVM_GUESTDBG_SINGLESTEP | g->blockirq;
        }
        if (ioctl(fd, KVM_SET_GUEST_DEBUG, &dbg) < 0)
            return -errno;
    }
    return 0;
}

static int gdb_set_debug(void *ctx, const struct gdb_debug *d)
{
    return gdb_apply(ctx, d, -1);
}

static void gdb_resumed(void *ctx, int err, const char *msg)
{
    struct gdb_stub *g = ctx;

    if (err && err != -EALREADY && err != -ESHUTDOWN) {
        /* A snapshot being written holds the VM paused: report it stopped as it is. */
        fprintf(stderr, "petrel: gdb: cannot resume the guest: %s\n", msg ? msg : "");
        g->state = GDB_STUB_STOPPED;
        if (g->fd >= 0)
            gdb_session_interrupted(&g->sess, g->sess.g_cpu);
    }
}

static int gdb_resume(void *ctx, int step_cpu, const struct gdb_debug *d)
{
    struct gdb_stub *g = ctx;

    if (g->vm->state != VM_PAUSED)
        return -EBUSY;
    int ret = gdb_apply(g, d, step_cpu);
    if (ret)
        return ret;
    for (unsigned i = 0; i < g->vm->nr_vcpus; i++)
        atomic_store(&g->vm->vcpus[i].debug_stop, false);
    g->state = GDB_STUB_RUNNING;
    vm_resume(g->vm, gdb_resumed, g);
    return 0;
}

static void gdb_paused(void *ctx, int err, const char *msg);

/* Pauses the VM for a stop (a debug exit, Ctrl-C, a client that left). */
static void gdb_pause(struct gdb_stub *g)
{
    if (g->state == GDB_STUB_STOPPING)
        return; /* the pause on its way answers this too */
    g->state = GDB_STUB_STOPPING;
    vm_pause(g->vm, gdb_paused, g);
}

static void gdb_interrupt(void *ctx)
{
    gdb_pause(ctx);
}

static void gdb_kill(void *ctx)
{
    struct gdb_stub *g = ctx;
    vm_request_exit(g->vm, VM_EXIT_STOP, PETREL_STATUS_OK, -1, NULL);
}

static void gdb_on_write(evutil_socket_t fd, short what, void *arg);

static void gdb_send(void *ctx, const void *data, size_t len)
{
    struct gdb_stub *g = ctx;

    if (g->fd < 0)
        return;
    evbuffer_add(g->out, data, len);
    gdb_on_write(g->fd, EV_WRITE, g);
}

static const struct gdb_target_ops gdb_target = {
    .nr_cpus = gdb_nr_cpus,
    .get_regs = gdb_get_regs,
    .set_regs = gdb_set_regs,
    .read_mem = gdb_read_mem,
    .write_mem = gdb_write_mem,
    .set_debug = gdb_set_debug,
    .resume = gdb_resume,
    .interrupt = gdb_interrupt,
    .kill = gdb_kill,
    .send = gdb_send,
};

/* --- stops --------------------------------------------------------------- */

/* The client is gone (or went while the guest ran): breakpoints out, the guest runs on. */
static void gdb_detach_now(struct gdb_stub *g)
{
    g->detach_pending = false;
    gdb_session_detach(&g->sess);
    g->state = GDB_STUB_RUNNING; /* nobody waits for a stop; the next client pauses it */
    if (g->vm->state == VM_PAUSED)
        vm_resume(g->vm, gdb_resumed, g);
}

/*
 * Every vCPU is parked. The stop gdb hears of is the first vCPU's debug exit
 * (by index), or an interrupt; other vCPUs' debug exits of the same moment
 * are dropped: a breakpoint is hit again when that vCPU runs on (its RIP is
 * still there), a finished step or a watchpoint that fired is not.
 */
static void gdb_paused(void *ctx, int err, const char *msg)
{
    struct gdb_stub *g = ctx;
    int cpu = -1;
    (void)msg;

    if (err && err != -EALREADY)
        return; /* stopping: gdb hears W from the hook */
    bool was_running = g->state == GDB_STUB_STOPPING;
    g->state = GDB_STUB_STOPPED;
    for (unsigned i = 0; i < g->vm->nr_vcpus; i++) {
        struct vcpu *v = &g->vm->vcpus[i];
        if (atomic_load(&v->debug_stop) && cpu < 0)
            cpu = (int)i;
    }
    struct kvm_debug_exit_arch dbg = {0};
    if (cpu >= 0)
        dbg = g->vm->vcpus[cpu].debug;
    for (unsigned i = 0; i < g->vm->nr_vcpus; i++)
        atomic_store(&g->vm->vcpus[i].debug_stop, false);
    if (g->detach_pending || g->fd < 0) {
        if (g->detach_pending)
            gdb_detach_now(g);
        return; /* no client: the guest waits for one */
    }
    event_add(g->ev_read, NULL); /* a client that came while the guest ran is heard now */
    if (!was_running)
        return;
    if (cpu >= 0)
        gdb_session_debug_exit(&g->sess, (unsigned)cpu, dbg.exception, dbg.dr6);
    else
        gdb_session_interrupted(&g->sess, g->sess.g_cpu);
}

/* The VM is stopping: a client waiting for the guest hears its exit status (W), once. */
static void gdb_tell_exit(struct gdb_stub *g)
{
    if (g->exited)
        return;
    g->exited = true;
    pthread_mutex_lock(&g->vm->exit_lock);
    int status = g->vm->exit_status;
    pthread_mutex_unlock(&g->vm->exit_lock);
    if (g->fd >= 0)
        gdb_session_exited(&g->sess, status);
}

/* After every vCPU report (vm->debug_hook): a debug exit to stop for, or the VM's end. */
static void gdb_hook(void *ctx)
{
    struct gdb_stub *g = ctx;

    if (g->vm->state == VM_STOPPING) {
        gdb_tell_exit(g);
        return;
    }
    for (unsigned i = 0; i < g->vm->nr_vcpus; i++) {
        if (atomic_load(&g->vm->vcpus[i].debug_stop)) {
            gdb_pause(g);
            return;
        }
    }
}

/* --- the client ---------------------------------------------------------- */

static void gdb_close_client(struct gdb_stub *g)
{
    if (g->fd < 0)
        return;
    event_free(g->ev_read);
    event_free(g->ev_write);
    g->ev_read = g->ev_write = NULL;
    evbuffer_free(g->out);
    g->out = NULL;
    close(g->fd);
    g->fd = -1;
    if (g->exited)
        return;
    /* Breakpoints out with the guest stopped, then it runs on. */
    if (g->state == GDB_STUB_STOPPED && g->vm->state == VM_PAUSED) {
        gdb_detach_now(g);
    } else {
        g->detach_pending = true;
        gdb_pause(g);
    }
}

static void gdb_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct gdb_stub *g = arg;
    (void)what;

    while (evbuffer_get_length(g->out)) {
        int n = evbuffer_write(g->out, fd);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(g->ev_write, NULL);
            return;
        }
        if (n <= 0) {
            gdb_close_client(g);
            return;
        }
    }
}

static void gdb_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct gdb_stub *g = arg;
    uint8_t buf[4096];
    (void)what;

    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        gdb_close_client(g);
        return;
    }
    gdb_session_input(&g->sess, buf, (size_t)n);
}

static void gdb_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct gdb_stub *g = arg;
    (void)what;

    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (g->fd >= 0 || g->exited || g->detach_pending) {
        close(fd); /* one client at a time (the last one's breakpoints may still be going) */
        return;
    }
    g->out = evbuffer_new();
    g->ev_read = event_new(g->vm->base, fd, EV_READ | EV_PERSIST, gdb_on_read, g);
    g->ev_write = event_new(g->vm->base, fd, EV_WRITE, gdb_on_write, g);
    /* While the guest runs, the client's packets wait in the socket until it is stopped. */
    bool stopped = g->state == GDB_STUB_STOPPED && g->vm->state == VM_PAUSED;
    if (!g->out || !g->ev_read || !g->ev_write || (stopped && event_add(g->ev_read, NULL))) {
        if (g->ev_read)
            event_free(g->ev_read);
        if (g->ev_write)
            event_free(g->ev_write);
        if (g->out)
            evbuffer_free(g->out);
        g->ev_read = g->ev_write = NULL;
        g->out = NULL;
        close(fd);
        return;
    }
    g->fd = fd;
    /* A new session: the guest is stopped (or stops now) and holds no breakpoint. */
    gdb_session_init(&g->sess, &gdb_target, g);
    /* The guest runs (gdb continued it before, or petrel resume did): stop it first. */
    if (!stopped)
        gdb_pause(g); /* gdb_paused() starts reading the client */
}

static int gdb_listen(struct gdb_stub *g, const struct gdb_addr *a, const char *spec,
                      struct errbuf *eb)
{
    int fd;

    if (a->is_unix) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        struct stat st;
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->path);
        if (lstat(a->path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode))
                return err_set(eb, -EEXIST, "--gdb %s: the file exists and is not a socket", spec);
            unlink(a->path); /* a stale socket from an earlier run */
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return err_set(eb, -errno, "--gdb: socket: %s", strerror(errno));
        if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            int err = errno;
            close(fd);
            return err_set(eb, -err, "--gdb %s: cannot listen there: %s", spec, strerror(err));
        }
        snprintf(g->unix_path, sizeof(g->unix_path), "%s", a->path);
    } else {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->port)};
        int one = 1;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return err_set(eb, -errno, "--gdb: socket: %s", strerror(errno));
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
            int err = errno;
            close(fd);
            return err_set(eb, -err, "--gdb %s: cannot listen there: %s", spec, strerror(err));
        }
    }
    if (listen(fd, 1) < 0) {
        int err = errno;
        close(fd);
        return err_set(eb, -err, "--gdb %s: listen: %s", spec, strerror(err));
    }
    g->listen_fd = fd;
    return 0;
}

static void gdb_initial_pause(void *ctx, int err, const char *msg)
{
    (void)ctx;
    (void)err;
    (void)msg;
}

int gdb_stub_start(struct vm *vm, const char *spec, struct gdb_stub **out, struct errbuf *eb)
{
    struct gdb_addr a;
    int ret = gdb_addr_parse(spec, &a, eb);
    if (ret)
        return ret;
    struct gdb_stub *g = calloc(1, sizeof(*g));
    if (!g)
        return err_set(eb, -ENOMEM, "out of memory");
    g->vm = vm;
    g->fd = g->listen_fd = -1;
    g->debug_cap = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG);
    int flags = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG2);
    if (flags > 0 && (flags & KVM_GUESTDBG_BLOCKIRQ))
        g->blockirq = KVM_GUESTDBG_BLOCKIRQ;
    gdb_host_limits(g);
    ret = gdb_listen(g, &a, spec, eb);
    if (ret) {
        free(g);
        return ret;
    }
    g->ev_listen = event_new(vm->base, g->listen_fd, EV_READ | EV_PERSIST, gdb_on_accept, g);
    if (!g->ev_listen || event_add(g->ev_listen, NULL)) {
        ret = err_set(eb, -ENOMEM, "--gdb: cannot watch the socket");
        gdb_stub_stop(g);
        return ret;
    }
    vm->debug_hook = gdb_hook;
    vm->debug_ctx = g;
    /* The guest waits for gdb: paused before any vCPU runs (vm_run() starts them parked). */
    g->state = GDB_STUB_STOPPED;
    vm_pause(vm, gdb_initial_pause, g);
    fprintf(stderr, "petrel: gdb: the guest waits for gdb: target remote %s%s\n",
            a.is_unix ? "" : ":", a.is_unix ? a.path : spec + 10);
    *out = g;
    return 0;
}

/*
 * The VM is gone and its W reply sent: close gracefully. gdb acknowledges the
 * reply ('+') and then closes its end; a socket closed under it first makes gdb
 * report "Remote communication error ... Broken pipe" instead of the exit status.
 * So: no more from us (shutdown), then the client's last bytes until it closes,
 * for GDB_LINGER_MS at most (the loop is gone; a client that keeps the connection
 * open does not keep petrel).
 */
#define GDB_LINGER_MS 1000

static void gdb_linger(int fd)
{
    char buf[256];
    struct timespec t0, t;

    if (shutdown(fd, SHUT_WR) < 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left =
            GDB_LINGER_MS - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return; /* gdb closed its end (or the connection failed): done */
    }
}

void gdb_stub_stop(struct gdb_stub *g)
{
    if (!g)
        return;
    if (g->vm->debug_ctx == g) {
        g->vm->debug_hook = NULL;
        g->vm->debug_ctx = NULL;
    }
    /*
     * The hook may not have seen the stop: a resume that finds every vCPU
     * already gone (the guest ran to its end before the loop looked) stops the
     * loop before the vCPUs' report is read. The W goes out here then.
     */
    gdb_tell_exit(g);
    if (g->fd >= 0) {
        if (evbuffer_get_length(g->out))
            gdb_on_write(g->fd, EV_WRITE, g); /* a last W reply */
        gdb_linger(g->fd);
        gdb_close_client(g);
    }
    if (g->ev_listen)
        event_free(g->ev_listen);
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    if (g->unix_path[0])
        unlink(g->unix_path);
    free(g);
}
