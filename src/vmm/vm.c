/* VM lifecycle: KVM set-up, memory, kernel loading, vCPUs, devices, the loop. */
#include "petrel/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "petrel/exit_holder.h"
#include "petrel/machine.h"
#include "petrel/platform.h"
#include "petrel/sandbox.h"
#include "petrel/x86_boot.h"
#include "petrel/x86_cpu.h"

/* Where KVM's VMX real-mode helpers live: the top of the hole, as on a PC. */
#define VM_IDENTITY_MAP_GPA 0xfffbc000ULL
#define VM_TSS_GPA          0xfffbd000ULL

/* host.device_needs_reset (below). */
static void vm_device_needs_reset(void *arg, const char *device, const char *why);

static const struct {
    int cap;
    const char *name;
} vm_required_caps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
};

static void vm_exit_hook_fn(void *ctx, enum vm_exit_reason reason, int status)
{
    vm_request_exit(ctx, reason, status, -1, NULL);
}

struct exit_hook vm_exit_hook(struct vm *vm)
{
    return (struct exit_hook){.fn = vm_exit_hook_fn, .ctx = vm};
}

static int vm_open_kvm(struct vm *vm, struct errbuf *eb)
{
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        int err = errno;
        if (err == ENOENT || err == ENODEV || err == ENXIO)
            return err_set(eb, -err,
                           "/dev/kvm is not available (%s): this host has no KVM; load "
                           "kvm_intel or kvm_amd, or enable virtualization in the firmware",
                           strerror(err));
        if (err == EACCES || err == EPERM)
            return err_set(eb, -err,
                           "no permission to open /dev/kvm: run as root or join the group "
                           "that owns it (usually 'kvm')");
        return err_set(eb, -err, "cannot open /dev/kvm: %s", strerror(err));
    }
    int version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return err_set(eb, -ENOTSUP, "KVM API version %d, petrel needs %d", version,
                       KVM_API_VERSION);
    for (unsigned i = 0; i < ARRAY_SIZE(vm_required_caps); i++) {
        if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, vm_required_caps[i].cap) <= 0)
            return err_set(eb, -ENOTSUP, "this host's KVM lacks %s, which petrel needs",
                           vm_required_caps[i].name);
    }
    return 0;
}

/* The most vCPUs this KVM allows in one VM (KVM_CAP_MAX_VCPUS; NR_VCPUS is only advice). */
static unsigned vm_max_vcpus(int kvm_fd)
{
    int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (n <= 0)
        n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    return n > 0 ? (unsigned)n : 4; /* KVM's documented default when neither answers */
}

static int vm_check_config(struct vm *vm, struct errbuf *eb)
{
    char a[32], b[32];
    unsigned max = vm_max_vcpus(vm->kvm_fd);

    if (vm->cfg.cpus < 1 || vm->cfg.cpus > max)
        return err_set(eb, -EINVAL, "--cpus %u is out of range: this host's KVM allows 1 to %u",
                       vm->cfg.cpus, max);
    /* APIC IDs and the IOAPIC's must fit the MP table's 8 bits (docs/platform.md). */
    if (vm->cfg.cpus > PLAT_MAX_CPUS)
        return err_set(eb, -EINVAL, "--cpus %u is out of range: petrel supports 1 to %u",
                       vm->cfg.cpus, PLAT_MAX_CPUS);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && vm->cfg.memory > (uint64_t)pages * (uint64_t)page)
        return err_set(eb, -ENOMEM, "--memory %s is more than this host's RAM (%s)",
                       fmt_size(vm->cfg.memory, a, sizeof(a)),
                       fmt_size((uint64_t)pages * (uint64_t)page, b, sizeof(b)));
    return 0;
}

/* KVM's IOAPIC starts with ID 0; the tables give it the first ID no vCPU has. */
static int set_ioapic_id(struct vm *vm, struct errbuf *eb)
{
    struct kvm_irqchip chip = {.chip_id = KVM_IRQCHIP_IOAPIC};
    if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
        return err_set(eb, -errno, "KVM_GET_IRQCHIP: %s", strerror(errno));
    chip.chip.ioapic.id = plat_ioapic_id(vm->cfg.cpus);
    if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
        return err_set(eb, -errno, "KVM_SET_IRQCHIP: %s", strerror(errno));
    return 0;
}

/*
 * GSI routing as on a PC (irq_routing.c): KVM's default would route the PIT's
 * GSI 0 to IOAPIC pin 0, against the tables' IRQ 0 -> GSI 2 override.
 */
static int vm_setup_irqchip(struct vm *vm, struct errbuf *eb)
{
    int ret = irq_routing_init(&vm->routing, vm->vm_fd, NULL);
    if (ret)
        return err_set(eb, ret, "KVM_SET_GSI_ROUTING: %s", strerror(-ret));
    vm->routing_ready = true;
    return set_ioapic_id(vm, eb);
}

/*
 * KVM_CREATE_VM, on a thread of its own while petrel maps guest memory and loads the
 * kernel: KVM starts the VM's worker thread there and waits for it to join petrel's
 * cgroups, which waits for an RCU grace period (about 10 ms idle in the nested
 * harness's L1, the same for every VMM: sched_switch stacks in docs/architecture.md).
 */
static void *vm_creator(void *arg)
{
    struct vm *vm = arg;

    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    vm->create_err = vm->vm_fd < 0 ? errno : 0;
    return NULL;
}

static int vm_create_start(struct vm *vm, struct errbuf *eb)
{
    sigset_t all, old;

    /* Signals stay with the threads that handle them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int ret = pthread_create(&vm->creator, NULL, vm_creator, vm);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret)
        return err_set(eb, -ret, "cannot start a thread: %s", strerror(ret));
    vm->creator_started = true;
    return 0;
}

/* Waits for vm_creator(); then vm_fd is the VM's, or -1 with create_err set. */
static void vm_create_join(struct vm *vm)
{
    if (vm->creator_started)
        pthread_join(vm->creator, NULL);
    vm->creator_started = false;
}

static int vm_setup_kvm(struct vm *vm, struct errbuf *eb)
{
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    uint64_t idmap = VM_IDENTITY_MAP_GPA;

    vm_create_join(vm);
    if (vm->vm_fd < 0)
        return err_set(eb, -vm->create_err, "KVM_CREATE_VM: %s", strerror(vm->create_err));
    if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
        return err_set(eb, -errno, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)VM_TSS_GPA) < 0)
        return err_set(eb, -errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return err_set(eb, -errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return err_set(eb, -errno, "KVM_CREATE_PIT2: %s", strerror(errno));
    return vm_setup_irqchip(vm, eb);
}

/* Guest RAM (a restore's: its memory file, mapped copy-on-write). */
static int vm_map_memory(struct vm *vm, struct errbuf *eb)
{
    char a[32];
    int ret;

    if (vm->cfg.restore)
        return vm_restore_memory(vm, eb);
    if ((ret = gm_init(&vm->mem, vm->cfg.memory)))
        return err_set(eb, ret, "cannot map %s of guest memory: %s",
                       fmt_size(vm->cfg.memory, a, sizeof(a)), strerror(-ret));
    return 0;
}

/* Guest RAM's KVM memory slots. */
static int vm_set_memory_slots(struct vm *vm, struct errbuf *eb)
{
    for (unsigned i = 0; i < vm->mem.nr; i++) {
        struct kvm_userspace_memory_region r = {
            .slot = i,
            .guest_phys_addr = vm->mem.regions[i].gpa,
            .memory_size = vm->mem.regions[i].size,
            .userspace_addr = (uintptr_t)vm->mem.regions[i].host,
        };
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
            return err_set(eb, -errno, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
    }
    return 0;
}

/* Puts the kernel, command line, zero page, initrd, page tables and firmware tables in guest
 * memory. */
static int vm_load_kernel(struct vm *vm, struct errbuf *eb)
{
    const char *cmdline = vm->cfg.cmdline          ? vm->cfg.cmdline
                          : vm->cfg.console_virtio ? VM_DEFAULT_CMDLINE_VIRTIO
                                                   : VM_DEFAULT_CMDLINE;
    uint64_t t = now_ns();
    int ret = loader_load(&vm->loader, &vm->mem, cmdline, eb);
    vm->kernel_ns[3] = now_ns() - t;
    if (ret)
        return ret;
    vm->entry = vm->loader.kernel.entry;
    ret = x86_boot_tables(&vm->mem);
    if (ret)
        return err_set(eb, ret, "guest memory is too small for the boot page tables");
    return vm_firmware_tables(vm, eb);
}

static int vm_create_vcpus(struct vm *vm, struct errbuf *eb)
{
    int mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_size < (int)sizeof(struct kvm_run))
        return err_set(eb, -EINVAL, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
    int ret = x86_cpuid_supported(vm->kvm_fd, &vm->cpuid);
    if (ret)
        return err_set(eb, ret, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-ret));

    vm->vcpus = calloc(vm->cfg.cpus, sizeof(*vm->vcpus));
    if (!vm->vcpus)
        return err_set(eb, -ENOMEM, "out of memory for %u vCPUs", vm->cfg.cpus);
    for (unsigned i = 0; i < vm->cfg.cpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        vcpu_init_common(v, i, &vcpu_kvm_ops, vm->vcpu_notify_fd);
        v->acks_pending = &vm->acks_pending;
        v->vm = vm;
        v->fd = -1;
        vm->nr_vcpus++;
        v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
        if (v->fd < 0)
            return err_set(eb, -errno, "KVM_CREATE_VCPU %u: %s", i, strerror(errno));
        v->run_size = (size_t)mmap_size;
        v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
        if (v->run == MAP_FAILED) {
            v->run = NULL;
            return err_set(eb, -errno, "mmap of vCPU %u: %s", i, strerror(errno));
        }
        if (vm->cfg.restore) {
            ret = vm_restore_vcpu(vm, i, eb);
        } else {
            /* The APIC ID is the vCPU index: KVM's default, and what the MADT will say. */
            x86_cpuid_patch(vm->cpuid, i, vm->cfg.cpus);
            ret = x86_vcpu_setup(v->fd, vm->cpuid, i == 0, vm->entry, eb);
        }
        if (ret)
            return ret;
    }
    return 0;
}

/*
 * What devices may use of the VM from realize on (hwdev.h), then the console
 * (which the console devices connect to) and every device in machine order.
 */
static int vm_setup_devices(struct vm *vm, struct errbuf *eb)
{
    vm->host.vm_fd = vm->vm_fd;
    vm->host.mem = &vm->mem;
    vm->host.pio = &vm->pio;
    vm->host.mmio = &vm->mmio;
    vm->host.routing = &vm->routing;
    vm->host.base = vm->base;
    vm->host.exit = vm_exit_hook(vm);
    vm->host.console_out = &vm->console.buf;
    vm->host.debugcon_out = vm->cfg.debugcon_path ? &vm->debugcon_file.buf : &vm->console.buf;
    vm->host.roles = &vm->roles;
    vm->host.trace = &vm->trace;
    vm->host.console_connect = vm_console_connect;
    vm->host.console_disconnect = vm_console_disconnect;
    vm->host.device_needs_reset = vm_device_needs_reset;
    vm->host.vm = vm;
    /* The PCI host bridge is always there: the DSDT describes it, stock kernels probe it. */
    pci_bus_init(&vm->pci, &vm->mmio);
    vm->pci.trace = &vm->trace;
    vm->pci_ready = true;
    vm->host.pci = &vm->pci;

    int ret = vm_console_setup(vm, eb);
    if (ret)
        return ret;
    return hwdev_list_realize(&vm->devices, eb);
}

static void vm_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    vm_request_exit(arg, VM_EXIT_SIGNAL, PETREL_STATUS_SIGNAL + (int)sig, -1, NULL);
}

static void vm_on_vcpu_event(evutil_socket_t fd, short what, void *arg);

/*
 * The loop's event_base, with libevent's epoll changelist: the event changes made
 * while callbacks run are merged per fd and applied once, before the next epoll_wait,
 * so a change undone in the same iteration costs no syscall. (evhttp made four
 * epoll_ctl calls per API request without it; petrel's own HTTP server, api_http.c,
 * changes a connection's interest only when a reply must wait for the socket or a
 * request for the VM, and then the change often cancels out in the same iteration.)
 *
 * libevent warns that the changelist is unsafe with fds cloned by dup(): an fd closed
 * while its removal is still pending stays registered in epoll as long as another
 * descriptor of the same file is open. petrel closes no watched fd that has such a
 * twin: connections, eventfds, the pty and slirp's sockets are its alone, the filler
 * process (loader.c) closes everything it inherits, and stdio is closed only at exit.
 */
static struct event_base *vm_new_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base = NULL;

    /* IGNORE_ENV: event_base_new() reads libevent's EVENT_* variables, each behind four
     * set-id checks (getuid, geteuid, getgid, getegid: 16 syscalls at every start). */
    if (cfg && !event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) &&
        !event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV))
        base = event_base_new_with_config(cfg);
    if (cfg)
        event_config_free(cfg);
    return base;
}

static int vm_setup_loop(struct vm *vm, struct errbuf *eb)
{
    static const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    int ret;

    vm->base = vm_new_base();
    if (!vm->base)
        return err_set(eb, -ENOMEM, "cannot create the event loop");
    vm->ev_vcpu =
        event_new(vm->base, vm->vcpu_notify_fd, EV_READ | EV_PERSIST, vm_on_vcpu_event, vm);
    if (!vm->ev_vcpu || event_add(vm->ev_vcpu, NULL))
        return err_set(eb, -ENOMEM, "cannot watch the vCPU eventfd");
    for (unsigned i = 0; i < ARRAY_SIZE(signals); i++) {
        vm->ev_signals[i] = evsignal_new(vm->base, signals[i], vm_on_signal, vm);
        if (!vm->ev_signals[i] || event_add(vm->ev_signals[i], NULL))
            return err_set(eb, -ENOMEM, "cannot watch signal %d", signals[i]);
    }
    ret = trace_start(&vm->trace, vm->base);
    if (ret)
        return err_set(eb, ret, "cannot set up tracing: %s", strerror(-ret));
    if (vm->cfg.trace_spec) {
        ret = vm_trace_set(vm, vm->cfg.trace_spec, NULL, NULL, eb);
        if (ret)
            return ret;
    }
    ret = console_out_init(&vm->console, vm->base, VM_CONSOLE_BUFFER);
    if (ret)
        return err_set(eb, ret, "cannot set up the console: %s", strerror(-ret));
    if (vm->cfg.debugcon_path) {
        vm->debugcon_fd =
            open(vm->cfg.debugcon_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (vm->debugcon_fd < 0)
            return err_set(eb, -errno, "cannot open --debugcon %s: %s", vm->cfg.debugcon_path,
                           strerror(errno));
        ret = console_out_init(&vm->debugcon_file, vm->base, VM_CONSOLE_BUFFER);
        if (!ret)
            ret = console_out_attach(&vm->debugcon_file, vm->debugcon_fd, vm->cfg.debugcon_path,
                                     true, false);
        if (!ret)
            console_out_direct(&vm->debugcon_file);
        if (ret)
            return err_set(eb, ret, "cannot set up debugcon output: %s", strerror(-ret));
    }
    return 0;
}

int vm_create(const struct vm_config *cfg, struct vm **out, struct errbuf *eb)
{
    int ret;
    struct vm *vm = calloc(1, sizeof(*vm));

    if (!vm)
        return err_set(eb, -ENOMEM, "out of memory");
    vm->cfg = *cfg;
    vm->kvm_fd = vm->vm_fd = vm->debugcon_fd = -1;
    atomic_init(&vm->acks_pending, 0);
    vm->loader.kernel_fd = vm->loader.initrd_fd = -1;
    vm->pty_master = vm->pty_slave = vm->console_file_fd = vm->client_fd = -1;
    vm->exit_vcpu = -1;
    vm->trace.fd = vm->trace.notify_fd = -1;
    pthread_mutex_init(&vm->exit_lock, NULL);
    pthread_mutex_init(&vm->notice_lock, NULL);
    hwdev_list_init(&vm->devices);
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    vm->vcpu_notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (vm->vcpu_notify_fd < 0) {
        ret = err_set(eb, -errno, "eventfd: %s", strerror(errno));
        goto err_destroy;
    }

    if (!cfg->restore) {
        struct loader_opts lo = {.entry = cfg->kernel_entry_setup ? LOADER_ENTRY_SETUP
                                                                  : LOADER_ENTRY_AUTO};
        ret = loader_open(&vm->loader, cfg->kernel_path, cfg->initrd_path, &lo, eb);
        if (ret)
            goto err_destroy;
        vm->kernel_via = vm->loader.via;
        vm->kernel_ns[0] = vm->loader.ns_key;
        vm->kernel_ns[1] = vm->loader.ns_cache;
        vm->kernel_ns[2] = vm->loader.ns_filler;
        if (vm->loader.note[0])
            fprintf(stderr, "petrel: kernel %s: %s\n", cfg->kernel_path, vm->loader.note);
    }
    vm->host.cfg = &vm->cfg;
    ret = machine_create(&vm->devices, &vm->host, eb);
    if (ret)
        goto err_destroy;
    ret = vm_open_kvm(vm, eb);
    if (ret)
        goto err_destroy;
    ret = vm_check_config(vm, eb);
    if (ret)
        goto err_destroy;
    /* After the check: the rings are per vCPU (allocated, not touched, until tracing is on). */
    ret = trace_init(&vm->trace, cfg->cpus, cfg->trace_path);
    if (ret) {
        err_set(eb, ret, "cannot set up tracing: %s", strerror(-ret));
        goto err_destroy;
    }
    /* While KVM makes the VM (vm_creator()): guest memory and what petrel puts there. */
    ret = vm_create_start(vm, eb);
    if (ret)
        goto err_destroy;
    ret = vm_map_memory(vm, eb);
    if (!ret && !cfg->restore)
        ret = vm_load_kernel(vm, eb);
    if (ret)
        goto err_destroy;
    loader_close(&vm->loader);
    ret = vm_setup_kvm(vm, eb);
    if (ret)
        goto err_destroy;
    ret = vm_set_memory_slots(vm, eb);
    if (ret)
        goto err_destroy;
    if (cfg->restore) {
        ret = vm_restore_kvm(vm, eb);
        if (ret)
            goto err_destroy;
    }
    ret = vm_create_vcpus(vm, eb);
    if (ret)
        goto err_destroy;
    ret = vm_setup_loop(vm, eb);
    if (ret)
        goto err_destroy;
    ret = vm_setup_devices(vm, eb);
    if (ret)
        goto err_destroy;
    if (cfg->restore) {
        ret = vm_restore_devices(vm, eb);
        if (ret)
            goto err_destroy;
    }
    *out = vm;
    return 0;

err_destroy:
    vm_destroy(vm);
    return ret;
}

/* host.device_needs_reset: any thread. Queued for the loop, which it wakes. */
static void vm_device_needs_reset(void *arg, const char *device, const char *why)
{
    struct vm *vm = arg;
    uint64_t one = 1;

    pthread_mutex_lock(&vm->notice_lock);
    if (vm->nr_notices < ARRAY_SIZE(vm->notices))
        snprintf(vm->notices[vm->nr_notices++], sizeof(vm->notices[0]), "%s: %s", device, why);
    else
        vm->notices_lost++;
    pthread_mutex_unlock(&vm->notice_lock);
    ssize_t n = write(vm->vcpu_notify_fd, &one, sizeof(one));
    (void)n; /* fails only on counter overflow: the loop is awake anyway */
}

/* The loop: tells the events' clients which devices asked for a reset. */
static void vm_tell_notices(struct vm *vm)
{
    char notices[ARRAY_SIZE(vm->notices)][sizeof(vm->notices[0])];
    char lost[64];

    pthread_mutex_lock(&vm->notice_lock);
    unsigned n = vm->nr_notices, nlost = vm->notices_lost;
    memcpy(notices, vm->notices, n * sizeof(notices[0]));
    vm->nr_notices = vm->notices_lost = 0;
    pthread_mutex_unlock(&vm->notice_lock);
    for (unsigned i = 0; i < n; i++)
        vm_emit(vm, VM_EVENT_DEVICE_NEEDS_RESET, notices[i]);
    if (nlost) {
        snprintf(lost, sizeof(lost), "%u more devices (not named: too many at once)", nlost);
        vm_emit(vm, VM_EVENT_DEVICE_NEEDS_RESET, lost);
    }
}

/* The loop's reaction to anything a vCPU (or vm_request_exit) reported. */
static void vm_on_vcpu_event(evutil_socket_t fd, short what, void *arg)
{
    uint64_t v;
    (void)what;

    struct vm *vm = arg;
    vm->wake_ns = vm_now_ns();
    vm->wakes++;
    ssize_t n = read(fd, &v, sizeof(v));
    (void)n; /* EAGAIN: another wake-up already took the count; the scan is what counts */
    vm_tell_notices(vm);
    vm_control_progress(vm);
    if (vm->debug_hook)
        vm->debug_hook(vm->debug_ctx);
}

int vm_run(struct vm *vm, struct errbuf *eb)
{
    sigset_t all, old;
    int ret = 0;

    vcpu_signal_setup();
    /* vCPU threads start with every signal blocked and unblock only SIGRTMIN. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 0; i < vm->nr_vcpus && !ret; i++) {
        ret = vcpu_start(&vm->vcpus[i]);
        if (ret)
            err_set(eb, ret, "cannot start vCPU %u: %s", i, strerror(-ret));
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!ret)
        ret = vm_console_start(vm, eb);
    /* Set-up is done: the loop takes guest and client input only from here on. */
    if (!ret && (ret = sandbox_enter(SANDBOX_LOOP)) != 0)
        err_set(eb, ret, "cannot enter the loop's seccomp filter: %s", strerror(-ret));
    if (ret)
        vm_request_exit(vm, VM_EXIT_ERROR, PETREL_STATUS_ERROR, -1, eb->msg);

    vm->start_ns = vm_now_ns();
    event_base_dispatch(vm->base);

    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vcpu_join(&vm->vcpus[i]);
    /*
     * What the loop answered just before it stopped goes out: a 204 to the power
     * button that ended the guest is still in its connection's buffer when the
     * guest's poweroff breaks the loop. One more pass, without waiting, writes what
     * the sockets take now (and finds the VM stopping, as every handler expects).
     */
    event_base_loop(vm->base, EVLOOP_NONBLOCK);
    /*
     * No producer is left: write out what the guest produced, then let the
     * terminal go. A reader that stopped reading (a pty nobody has open, a
     * console client, a pipe) gets CONSOLE_EXIT_WAIT_MS in all, not forever:
     * the loop that handled signals is gone, so only this limit ends the wait.
     */
    uint64_t deadline = now_ns() + CONSOLE_EXIT_WAIT_MS * 1000000ULL;
    trace_flush(&vm->trace, deadline);
    console_out_flush(&vm->console, deadline);
    vm_console_stop(vm);
    if (vm->cfg.debugcon_path)
        console_out_flush(&vm->debugcon_file, deadline);
    if (ret)
        return PETREL_STATUS_ERROR;
    return vm->exit_status;
}

/* Says how much of one output its reader did not take (nothing is lost silently). */
static void vm_report_dropped(const struct console_out *c, const char *output, FILE *f)
{
    if (!c->dropped)
        return;
    fprintf(f, "petrel: dropped %llu bytes of %s output that %s did not take",
            (unsigned long long)c->dropped, output, c->what ? c->what : "its reader");
    if (c->dropped_at_exit == c->dropped)
        fprintf(f, " within %d ms at exit\n", CONSOLE_EXIT_WAIT_MS);
    else if (c->dropped_at_exit)
        fprintf(f, " (%llu of them within %d ms at exit)\n", (unsigned long long)c->dropped_at_exit,
                CONSOLE_EXIT_WAIT_MS);
    else
        fprintf(f, "\n");
}

void vm_report_exit(struct vm *vm, FILE *f)
{
    vm_report_dropped(&vm->console, "console", f);
    vm_report_dropped(&vm->debugcon_file, "debugcon", f);
    switch (vm->exit_reason) {
    case VM_EXIT_CRASH:
        fprintf(f, "petrel: the guest crashed on vCPU %d: %s\n", vm->exit_vcpu, vm->exit_detail);
        if (vm->exit_vcpu >= 0 && (unsigned)vm->exit_vcpu < vm->nr_vcpus)
            x86_vcpu_dump(vm->vcpus[vm->exit_vcpu].fd, (unsigned)vm->exit_vcpu, f);
        break;
    case VM_EXIT_ERROR:
        fprintf(f, "petrel: %s\n", vm->exit_detail);
        break;
    default:
        break;
    }
    if (vm->cfg.stats) {
        char a[32];
        struct hwdev_stats st;
        hwdev_list_stats(&vm->devices, &st);
        unsigned long long kicks = 0, completing = 0, chained = 0;
        for (unsigned i = 0; i < vm->nr_vcpus; i++) {
            kicks += vm->vcpus[i].kicks_seen;
            completing += vm->vcpus[i].completing_runs;
            chained += vm->vcpus[i].completing_runs_chained;
        }
        fprintf(f,
                "petrel: stats: guest RAM resident %s; unclaimed port reads %llu, writes %llu; "
                "unclaimed MMIO reads %llu, writes %llu; pauses %llu (last kick %.1f us); "
                "KVM_RUNs cut short %llu; KVM_RUNs completing an exit before a park %llu "
                "(%llu ended in the next exit); console output dropped %llu\n",
                fmt_size(gm_resident(&vm->mem), a, sizeof(a)),
                (unsigned long long)vm->pio.unhandled_reads,
                (unsigned long long)vm->pio.unhandled_writes,
                (unsigned long long)vm->mmio.unhandled_reads,
                (unsigned long long)vm->mmio.unhandled_writes, (unsigned long long)vm->pauses,
                (double)vm->last_kick_ns / 1000.0, kicks, completing, chained,
                (unsigned long long)(st.output_dropped + vm->console.dropped +
                                     vm->debugcon_file.dropped));
        if (vm->cfg.nr_nets)
            fprintf(f, "petrel: stats: network frames dropped %llu\n",
                    (unsigned long long)st.net_dropped);
        if (vm->kernel_via)
            fprintf(f,
                    "petrel: stats: kernel booted as %s (key %.1f ms, cache read %.1f ms, "
                    "starting the filler %.1f ms; into guest memory %.1f ms)\n",
                    vm->kernel_via, vm->kernel_ns[0] / 1e6, vm->kernel_ns[1] / 1e6,
                    vm->kernel_ns[2] / 1e6, vm->kernel_ns[3] / 1e6);
    }
}

/* Whether vm_destroy_at_exit() frees everything (see vm.h). */
static bool vm_exit_frees(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true; /* the leak check reads what is still allocated at exit */
#else
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#endif
#endif
    const char *v = getenv("PETREL_EXIT_FREE");
    return v && *v && strcmp(v, "0") != 0;
#endif
}

/*
 * What KVM's teardown of the VM costs petrel's caller: closing the VM's last fd waits
 * for an RCU barrier and for the VM's worker thread to stop (about 20 ms idle in the
 * nested harness's L1, 14 ms on kvm_pvm), and unmapping guest RAM frees it. A holder
 * keeps the VM's and vCPUs' fds and the memory past petrel's exit (exit_holder.h).
 */
void vm_destroy_at_exit(struct vm *vm)
{
    if (vm && vm->vm_fd >= 0) {
        int keep[1 + PLAT_MAX_CPUS];
        unsigned nr = 0;
        keep[nr++] = vm->vm_fd;
        for (unsigned i = 0; i < vm->nr_vcpus && nr < ARRAY_SIZE(keep); i++)
            keep[nr++] = vm->vcpus[i].fd;
        vm->teardown_held = exit_holder_start(keep, nr) == 0;
    }
    if (!vm || vm_exit_frees()) {
        vm_destroy(vm);
        return;
    }
    /*
     * What the exit would cut short. The vCPUs are joined and the consoles and the
     * trace written out (vm_run()). A snapshot's worker ends and takes its temporary
     * files with it; every drive's requests, started or queued, leave the host's
     * syscalls (the workers that exit_group() ends are then idle). Nothing else
     * petrel made outlives it or says anything at its end: its memory, fds, loop and
     * threads are the exit's to free, about 10 ms of the nested harness's CPU in
     * frees and closes that change nothing (docs/architecture.md).
     */
    vm_snapshot_cancel(vm);
    hwdev_list_drain(&vm->devices);
}

void vm_destroy(struct vm *vm)
{
    if (!vm)
        return;
    vm_create_join(vm); /* a set-up that failed while KVM made the VM */
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        vcpu_join(v);
        if (v->run)
            munmap(v->run, v->run_size);
        if (v->fd >= 0)
            close(v->fd);
        vcpu_destroy_common(v);
    }
    free(vm->vcpus);
    free(vm->cpuid);
    loader_close(&vm->loader);
    vm_snapshot_cancel(vm); /* its worker drains the devices and reads guest memory */
    /* The devices first: they disconnect from the console and free their loop events. */
    hwdev_list_destroy(&vm->devices);
    if (vm->pci_ready)
        pci_bus_destroy(&vm->pci);
    vm->pci_ready = false;
    if (vm->routing_ready)
        irq_routing_destroy(&vm->routing);
    vm->routing_ready = false;
    for (unsigned i = 0; i < ARRAY_SIZE(vm->ev_signals); i++) {
        if (vm->ev_signals[i])
            event_free(vm->ev_signals[i]);
    }
    if (vm->ev_vcpu)
        event_free(vm->ev_vcpu);
    vm_console_destroy(vm);
    console_out_destroy(&vm->console);
    console_out_destroy(&vm->debugcon_file);
    if (vm->debugcon_fd >= 0)
        close(vm->debugcon_fd);
    trace_destroy(&vm->trace);
    if (vm->base)
        event_base_free(vm->base);
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
    if (vm->teardown_held) {
        /* The mappings stay: the holder's exit unmaps them (a restore's file: its own ref). */
        if (vm->mem.owned && vm->mem.fd >= 0)
            close(vm->mem.fd);
        memset(&vm->mem, 0, sizeof(vm->mem));
    } else {
        gm_destroy(&vm->mem);
    }
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    if (vm->vcpu_notify_fd >= 0)
        close(vm->vcpu_notify_fd);
    pthread_mutex_destroy(&vm->exit_lock);
    pthread_mutex_destroy(&vm->notice_lock);
    free(vm);
}
