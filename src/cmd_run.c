/* petrel run: boot a kernel with the console on this terminal. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cmd.h"
#include "petrel/api.h"
#include "petrel/gdb.h"
#include "petrel/snapshot.h"
#include "petrel/vm.h"

#define RUN_STR(x)     RUN_STR_(x)
#define RUN_STR_(x)    #x
#define RUN_MAX_DRIVES RUN_STR(VIRTIO_BLK_MAX_DRIVES) /* "16", for --help */
#define RUN_MAX_NICS   RUN_STR(NET_MAX_NICS)

/* The keys of the options without a short form. */
enum {
    RUN_DEBUG_EXIT = CMD_OPT_LONG,
    RUN_KERNEL_ENTRY,
    RUN_DEBUGCON,
    RUN_CONSOLE,
    RUN_API_SOCK,
    RUN_RNG,
    RUN_TESTDEV,
    RUN_DRIVE,
    RUN_NET,
    RUN_STATS,
    RUN_RESTORE,
    RUN_RESTORE_CLOCK,
    RUN_SECCOMP,
    RUN_GDB,
    RUN_TRACE,
    RUN_TRACE_FILE,
};

/* petrel run's options, in the order --help lists them. */
static const struct cmd_opt run_opts[] = {
    {'k', "kernel", "FILE",
     "the kernel to boot (required): a bzImage (/boot/vmlinuz-*), or an uncompressed ELF "
     "vmlinux, which skips the kernel's decompressor. A bzImage's payload is decompressed "
     "by petrel once and kept in the kernel cache (petrel cache), and later boots start in "
     "its vmlinux, with no decompressor and so no KASLR (the kernel runs where it was "
     "linked)"},
    {RUN_KERNEL_ENTRY, "kernel-entry", "MODE",
     "auto (default): a bzImage boots its payload's vmlinux from the kernel cache; setup: it "
     "always runs its own decompressor (and KASLR)"},
    {'i', "initrd", "FILE", "an initial ramdisk to load with it"},
    {'a', "cmdline", "TEXT",
     "the kernel command line, passed exactly as given (default: \"" VM_DEFAULT_CMDLINE
     "\";\nwith --console virtio: \"" VM_DEFAULT_CMDLINE_VIRTIO "\")"},
    {'c', "cpus", "N", "vCPUs (default 1; at most 254, or what KVM allows)"},
    {'m', "memory", "SIZE",
     "guest RAM, e.g. 512M, 2G; a bare number is MiB\n(default 256M, at least 8M)"},
    {RUN_DEBUG_EXIT, "debug-exit", NULL, "a write of V to port 0xf4 ends petrel with status V"},
    {RUN_DEBUGCON, "debugcon", "FILE", "write port 0xe9 output to FILE instead of the console"},
    {RUN_CONSOLE, "console", "[DEVICE,]WHERE",
     "WHERE: stdio (default): this terminal or pipes; pty: a pseudo-terminal (its path is "
     "printed); socket: attach later with 'petrel console NAME'; file=PATH: output only.\n"
     "DEVICE: serial (default): COM1, the guest's ttyS0; virtio: a virtio console, the "
     "guest's hvc0, which gets the input (ttyS0 output still shows).\n"
     "'virtio' alone means virtio,stdio"},
    {'n', "name", "NAME",
     "the VM's name for petrel pause/resume/stop/status (default: vm-PID); a name runs once "
     "at a time"},
    {RUN_API_SOCK, "api-sock", "PATH",
     "serve the control API here instead of $XDG_RUNTIME_DIR/petrel/NAME.sock (root: "
     "/run/petrel)"},
    {RUN_RNG, "rng", NULL,
     "a virtio-rng device (the guest's /dev/hwrng, fed by the host's getrandom())"},
    {RUN_TESTDEV, "testdev", NULL,
     "the example PCI test device for device-model work (1234:7e57: a DMA engine between "
     "guest buffers, a doorbell, an MSI-X interrupt; docs/devices.md)"},
    {RUN_DRIVE, "drive", "path=FILE[,ro][,id=NAME]",
     "a virtio-blk disk backed by FILE, a raw image (its size a multiple of 512 bytes) or a "
     "block device; repeat for more (at most " RUN_MAX_DRIVES "): the first is the guest's "
     "/dev/vda.\n"
     "ro: read-only. id: the serial the guest reads (at most 20 bytes; default: the file's "
     "name). FILE is locked: one petrel writes it, or any number read it. Write ',,' for a "
     "comma in FILE or NAME"},
    {RUN_NET, "net", "user|tap=NAME[,...]",
     "a virtio-net NIC; repeat for more (at most " RUN_MAX_NICS "), in order: the first is the "
     "guest's eth0.\n"
     "user: no root, no set-up: NAT through libslirp, DHCP gives the guest 10.0.2.15, the "
     "host is 10.0.2.2 (its loopback too), DNS 10.0.2.3. "
     "hostfwd=tcp:[HOSTADDR]:HOSTPORT-:GUESTPORT (or udp:) forwards a host port to the "
     "guest, e.g. hostfwd=tcp:127.0.0.1:2222-:22; no HOSTADDR: every address.\n"
     "tap=NAME: an existing tap device (ip tuntap add dev NAME mode tap), with checksum and "
     "TSO offloads when the guest takes them.\n"
     "mac: the NIC's address (default 52:54:00:12:34:56, plus 1 for each NIC before)"},
    {RUN_STATS, "stats", NULL,
     "print counters at exit (guest RAM resident, unclaimed port and MMIO accesses, pauses, "
     "exits completed before parking, dropped output)"},
    {RUN_TRACE, "trace", "SPEC",
     "trace events from the start, one line each: SPEC is a comma-separated list of "
     "kinds (pio, mmio, virtio, irq, control, all), KIND=LO-HI to trace only those "
     "addresses of pio or mmio, dev=NAME for one device's events ('petrel trace' changes "
     "it while the VM runs)"},
    {RUN_TRACE_FILE, "trace-file", "FILE",
     "where the trace goes (default: NAME.trace in the current directory, opened when "
     "tracing first goes on)"},
    {RUN_RESTORE, "restore", "PATH",
     "bring back a snapshot (petrel snapshot; PATH: its directory, or its state file) "
     "instead of booting a kernel: the machine (vCPUs, memory, drives, devices) is the "
     "snapshot's, so --kernel, --initrd, --cmdline, --cpus, --memory, --drive, --net, --rng, "
     "--testdev and --debug-exit do not go with it; the console's WHERE, --name and --api-sock "
     "do"},
    {RUN_RESTORE_CLOCK, "restore-clock", "MODE",
     "with --restore: catch-up (default): the guest's clock moves on by the time the "
     "snapshot was away; frozen: it goes on from where it stopped (for a guest that runs "
     "NTP)"},
    {RUN_SECCOMP, "seccomp", "MODE",
     "on (default): each thread of petrel (the loop, the vCPUs, the block workers) may make "
     "only the system calls its work needs, and any other ends petrel with a message naming "
     "the call and the thread; log: such a call is allowed and the kernel logs it (dmesg, "
     "with audit on); off: no filter"},
    {RUN_GDB, "gdb", "unix:PATH|127.0.0.1:PORT",
     "serve a gdb stub there (gdb: target remote PATH or :PORT); the guest waits, paused, "
     "until gdb continues it (or petrel resume). No other address is taken: the stub controls "
     "the guest"},
    {'h', "help", NULL, "show this help"},
};

static void run_usage(FILE *f)
{
    fprintf(f, "usage: petrel run --kernel KERNEL [OPTIONS]\n"
               "       petrel run --restore PATH [--console WHERE] [--name NAME] [...]\n"
               "\n"
               "Boots an x86-64 Linux kernel (or a petrel guest-kit program) under KVM with\n"
               "the guest's console on this terminal: its serial port (COM1, ttyS0), or with\n"
               "--console virtio a virtio console (hvc0).\n"
               "\n"
               "options:\n");
    cmd_opts_print(f, run_opts, ARRAY_SIZE(run_opts));
    fprintf(f,
            "\n"
            "At exit petrel waits at most %d ms for the console's reader (and\n"
            "--debugcon's) to take the output still queued; what it has not taken by\n"
            "then is dropped, and petrel says on standard error how many bytes were.\n"
            "\n"
            "exit status:\n"
            "  0       the guest reset or powered off, or petrel was asked to stop\n"
            "  V       the guest wrote V to the debug-exit port (with --debug-exit)\n"
            "  1       petrel failed: bad input, or a KVM or host error\n"
            "  2       bad command line\n"
            "  3       the guest crashed (triple fault, failed entry, emulation failure);\n"
            "          petrel prints the vCPU's registers on standard error\n"
            "  128+N   petrel was ended by signal N (SIGINT, SIGTERM, SIGHUP)\n",
            CONSOLE_EXIT_WAIT_MS);
}

static int run_bad(const char *fmt, const char *arg);

/* SIGALRM at exit: does nothing; arriving interrupts a write() blocked on stderr. */
static void run_on_alarm(int sig)
{
    (void)sig;
}

/*
 * What petrel says at exit goes to stderr, which can be the very pipe or
 * stopped terminal that stalled the console (2>&1), blocking again once the
 * console is detached. From CONSOLE_EXIT_WAIT_MS on, SIGALRM every 100 ms
 * (no SA_RESTART) makes a write() blocked there fail with EINTR: a message is
 * cut short rather than petrel kept forever. Only this thread takes it: the
 * vCPUs have been joined and every worker blocks all signals.
 */
static void run_exit_guard(bool on)
{
    struct sigaction sa = {.sa_handler = on ? run_on_alarm : SIG_DFL};
    struct itimerval t = {{0, 0}, {0, 0}};

    if (on) {
        t.it_value.tv_sec = CONSOLE_EXIT_WAIT_MS / 1000;
        t.it_value.tv_usec = CONSOLE_EXIT_WAIT_MS % 1000 * 1000;
        t.it_interval.tv_usec = 100 * 1000;
        sigaction(SIGALRM, &sa, NULL);
        setitimer(ITIMER_REAL, &t, NULL);
    } else {
        setitimer(ITIMER_REAL, &t, NULL);
        sigaction(SIGALRM, &sa, NULL);
    }
}

/* Whether word is one of arg's comma-separated words. */
static bool run_console_word(const char *arg, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = arg; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, word, n) && (!p[n] || p[n] == ','))
            return true;
    return false;
}

/*
 * --console [DEVICE,]WHERE, or DEVICE alone (on stdio). The device comes
 * first so that file=PATH, last, may hold commas.
 */
static int run_parse_console(const char *arg, struct vm_config *cfg)
{
    const char *where = arg;

    cfg->console_virtio = false;
    if (!strncmp(arg, "virtio", 6) && (!arg[6] || arg[6] == ',')) {
        cfg->console_virtio = true;
        where = arg[6] ? arg + 7 : "stdio";
    } else if (!strncmp(arg, "serial", 6) && (!arg[6] || arg[6] == ',')) {
        where = arg[6] ? arg + 7 : "stdio";
    }
    if (!strcmp(where, "stdio")) {
        cfg->console = VM_CONSOLE_STDIO;
    } else if (!strcmp(where, "pty")) {
        cfg->console = VM_CONSOLE_PTY;
    } else if (!strcmp(where, "socket")) {
        cfg->console = VM_CONSOLE_SOCKET;
    } else if (!strncmp(where, "file=", 5) && where[5]) {
        cfg->console = VM_CONSOLE_FILE;
        cfg->console_path = where + 5;
    } else if (run_console_word(where, "virtio") || run_console_word(where, "serial")) {
        return run_bad("--console '%s': name one device (serial or virtio), first: virtio,pty",
                       arg);
    } else {
        return run_bad("--console '%s' must be [serial,|virtio,]stdio, pty, socket or file=PATH",
                       arg);
    }
    return 0;
}

static int run_bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "petrel run: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'petrel run --help'.\n");
    return PETREL_STATUS_USAGE;
}

/* What petrel run's command line says: the VM's configuration, and how to reach it. */
struct run_args {
    struct vm_config cfg;
    const char *name;         /* NULL: vm-PID */
    const char *api_sock;     /* NULL: found by name */
    const char *restore;      /* --restore PATH */
    const char *gdb;          /* --gdb ADDRESS */
    const char *machine_opt;  /* the first option that shapes the machine ("--cpus") */
    bool console_device;      /* --console named its device (serial or virtio) */
    bool restore_clock_given; /* --restore-clock */
};

/* Takes one option (a key of run_opts) into a. 0, or an exit status. */
static int run_option(int key, char *arg, struct run_args *a)
{
    struct vm_config *cfg = &a->cfg;
    unsigned long n;
    char s[32];

    static const struct {
        int key;
        const char *name;
    } machine_opts[] = {{'k', "--kernel"},
                        {RUN_KERNEL_ENTRY, "--kernel-entry"},
                        {'i', "--initrd"},
                        {'a', "--cmdline"},
                        {'c', "--cpus"},
                        {'m', "--memory"},
                        {RUN_DRIVE, "--drive"},
                        {RUN_RNG, "--rng"},
                        {RUN_TESTDEV, "--testdev"},
                        {RUN_DEBUG_EXIT, "--debug-exit"},
                        {RUN_NET, "--net"}};
    for (unsigned i = 0; i < ARRAY_SIZE(machine_opts); i++) {
        if (key == machine_opts[i].key && !a->machine_opt)
            a->machine_opt = machine_opts[i].name;
    }
    switch (key) {
    case RUN_RESTORE:
        a->restore = arg;
        break;
    case RUN_RESTORE_CLOCK:
        if (strcmp(arg, "catch-up") && strcmp(arg, "frozen"))
            return run_bad("--restore-clock '%s' must be catch-up or frozen", arg);
        cfg->restore_clock_frozen = !strcmp(arg, "frozen");
        a->restore_clock_given = true;
        break;
    case 'k':
        cfg->kernel_path = arg;
        break;
    case RUN_KERNEL_ENTRY:
        if (strcmp(arg, "auto") && strcmp(arg, "setup"))
            return run_bad("--kernel-entry '%s' must be auto or setup", arg);
        cfg->kernel_entry_setup = !strcmp(arg, "setup");
        break;
    case 'i':
        cfg->initrd_path = arg;
        break;
    case 'a':
        cfg->cmdline = arg;
        break;
    case 'c':
        if (parse_uint(arg, 1, 4096, &n))
            return run_bad("--cpus '%s' must be a number from 1 up to what KVM allows", arg);
        cfg->cpus = (unsigned)n;
        break;
    case 'm':
        if (parse_size(arg, &cfg->memory))
            return run_bad("--memory '%s' is not a size (say 512M or 2G)", arg);
        if (cfg->memory % (4 * KiB))
            return run_bad("--memory %s is not a whole number of 4 KiB pages", arg);
        if (cfg->memory < VM_MIN_MEMORY)
            return run_bad("--memory %s is too small: petrel needs at least 8 MiB",
                           fmt_size(cfg->memory, s, sizeof(s)));
        if (cfg->memory > 1024 * GiB)
            return run_bad("--memory %s is too large: at most 1 TiB",
                           fmt_size(cfg->memory, s, sizeof(s)));
        break;
    case RUN_DEBUG_EXIT:
        cfg->debug_exit = true;
        break;
    case RUN_STATS:
        cfg->stats = true;
        break;
    case RUN_SECCOMP:
        if (sandbox_mode_parse(arg, &cfg->seccomp))
            return run_bad("--seccomp '%s' must be on, log or off", arg);
        break;
    case RUN_RNG:
        cfg->rng = true;
        break;
    case RUN_TESTDEV:
        cfg->testdev = true;
        break;
    case RUN_TRACE: {
        struct errbuf eb = {{0}};
        struct trace_filter f;
        if (!PETREL_TRACE)
            return run_bad("%s", "--trace: this petrel was built without tracing (-Dtrace=false)");
        if (trace_spec_parse(arg, &f, &eb))
            return run_bad("%s", eb.msg);
        cfg->trace_spec = arg;
        break;
    }
    case RUN_TRACE_FILE:
        cfg->trace_path = arg;
        break;
    case RUN_DRIVE: {
        struct errbuf eb = {{0}};
        if (cfg->nr_drives == VIRTIO_BLK_MAX_DRIVES)
            return run_bad("at most %s --drive options", RUN_MAX_DRIVES);
        if (virtio_blk_spec_parse(arg, &cfg->drives[cfg->nr_drives], &eb))
            return run_bad("%s", eb.msg);
        cfg->nr_drives++;
        break;
    }
    case RUN_NET: {
        struct errbuf eb = {{0}};
        if (cfg->nr_nets == NET_MAX_NICS)
            return run_bad("at most %s --net options", RUN_MAX_NICS);
        if (net_spec_parse(arg, &cfg->nets[cfg->nr_nets], &eb))
            return run_bad("%s", eb.msg);
        cfg->nr_nets++;
        break;
    }
    case RUN_DEBUGCON:
        cfg->debugcon_path = arg;
        break;
    case 'n':
        if (!api_name_valid(arg))
            return run_bad("--name '%s' must be 1-64 letters, digits, '.', '_' or '-'", arg);
        a->name = arg;
        break;
    case RUN_API_SOCK:
        a->api_sock = arg;
        break;
    case RUN_GDB: {
        struct errbuf eb = {{0}};
        if (gdb_addr_check(arg, &eb))
            return run_bad("%s", eb.msg);
        a->gdb = arg;
        break;
    }
    case RUN_CONSOLE:
        if (run_parse_console(arg, cfg))
            return PETREL_STATUS_USAGE;
        a->console_device = !strncmp(arg, "virtio", 6) || !strncmp(arg, "serial", 6);
        break;
    default: /* in run_opts, but not here: a bug, which test_cli finds */
        fprintf(stderr, "petrel run: option key %d is not handled\n", key);
        return PETREL_STATUS_ERROR;
    }
    return 0;
}

/* Parses the command line into a. -1 when the VM is to run, else an exit status. */
static int run_parse(int argc, char **argv, struct run_args *a)
{
    struct cmd_getopt g;
    int c, ret;

    if (cmd_opts_getopt(run_opts, ARRAY_SIZE(run_opts), &g)) {
        fprintf(stderr, "petrel run: bad option table\n"); /* a bug, which test_cli finds */
        return PETREL_STATUS_ERROR;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        if (c == 'h') {
            run_usage(stdout);
            return 0;
        }
        if (c == '?') {
            fprintf(stderr, "Try 'petrel run --help'.\n");
            return PETREL_STATUS_USAGE;
        }
        ret = run_option(c, optarg, a);
        if (ret)
            return ret;
    }
    if (optind < argc)
        return run_bad("unexpected argument '%s'", argv[optind]);
    if (a->restore && a->machine_opt)
        return run_bad("%s does not go with --restore: the machine is the snapshot's",
                       a->machine_opt);
    if (!a->restore && a->restore_clock_given)
        return run_bad("%s", "--restore-clock goes with --restore");
    if (!a->restore && !a->cfg.kernel_path)
        return run_bad("%s", "--kernel FILE (or --restore PATH) is required");
    return -1;
}

/*
 * --restore: the machine's configuration from the snapshot's state file (its
 * tree, which *tree keeps, outlives the VM), the console's WHERE and the rest
 * from the command line. 0, or an exit status after saying why.
 */
static int run_restore_config(struct run_args *a, void **tree)
{
    struct errbuf eb = {{0}};
    struct vm_config *cfg = &a->cfg;
    struct vm_config saved = {0};
    const char *mem;

    if (snapshot_read(a->restore, tree, &eb)) {
        fprintf(stderr, "petrel run: %s\n", eb.msg);
        return PETREL_STATUS_ERROR;
    }
    struct state_in root = {.fdt = *tree, .node = 0, .eb = &eb};
    if (snapshot_config_take(&root, &saved, &mem)) {
        fprintf(stderr, "petrel run: %s: %s\n", a->restore, eb.msg);
        return PETREL_STATUS_ERROR;
    }
    if (a->console_device && cfg->console_virtio != saved.console_virtio) {
        fprintf(stderr,
                "petrel run: the snapshot's console device is %s, not %s (give --console "
                "WHERE alone)\n",
                saved.console_virtio ? "virtio" : "serial",
                cfg->console_virtio ? "virtio" : "serial");
        return PETREL_STATUS_USAGE;
    }
    cfg->kernel_path = saved.kernel_path;
    cfg->cpus = saved.cpus;
    cfg->memory = saved.memory;
    cfg->console_virtio = saved.console_virtio;
    cfg->rng = saved.rng;
    cfg->testdev = saved.testdev;
    cfg->debug_exit = saved.debug_exit;
    memcpy(cfg->drives, saved.drives, sizeof(cfg->drives));
    cfg->nr_drives = saved.nr_drives;
    memcpy(cfg->nets, saved.nets, sizeof(cfg->nets));
    cfg->nr_nets = saved.nr_nets;
    cfg->restore = *tree;
    cfg->restore_mem_path = mem;
    return 0;
}

int cmd_run(int argc, char **argv)
{
    struct run_args a = {
        .cfg = {.cpus = 1,
                .memory = VM_DEFAULT_MEMORY,
                .console = VM_CONSOLE_STDIO,
                .seccomp = SANDBOX_ON},
    };
    char default_name[32];
    int ret = run_parse(argc, argv, &a);
    void *tree = NULL;

    if (ret >= 0)
        return ret;
    if (a.restore && (ret = run_restore_config(&a, &tree)) != 0) {
        free(tree);
        return ret;
    }
    /* A closed stdin just means no console input. */
    if (fcntl(STDIN_FILENO, F_GETFD) < 0)
        a.cfg.stdin_closed = true;

    if (!a.name) {
        snprintf(default_name, sizeof(default_name), "vm-%d", (int)getpid());
        a.name = default_name;
    }
    char trace_path[300];
    if (!a.cfg.trace_path) {
        snprintf(trace_path, sizeof(trace_path), "%s.trace", a.name);
        a.cfg.trace_path = trace_path;
    }

    struct errbuf eb = {{0}};
    /* Before any thread exists: each applies its filter as its set-up ends. */
    unsigned sandbox_flags = 0;
    for (unsigned i = 0; i < a.cfg.nr_nets; i++)
        sandbox_flags |= a.cfg.nets[i].kind == NET_USER ? SANDBOX_NET_USER : SANDBOX_NET_TAP;
    if (sandbox_init(a.cfg.seccomp, sandbox_flags, &eb)) {
        fprintf(stderr, "petrel: %s\n", eb.msg);
        free(tree);
        return PETREL_STATUS_ERROR;
    }
    struct vm *vm;
    if (vm_create(&a.cfg, &vm, &eb)) {
        fprintf(stderr, "petrel: %s\n", eb.msg);
        free(tree);
        return PETREL_STATUS_ERROR;
    }
    if (a.cfg.trace_spec)
        fprintf(stderr, "petrel: tracing %s to %s\n", a.cfg.trace_spec, a.cfg.trace_path);
    struct api_server api;
    if (api_server_start(&api, vm, a.name, a.api_sock, &eb)) {
        fprintf(stderr, "petrel: %s\n", eb.msg);
        vm_destroy(vm);
        free(tree);
        return PETREL_STATUS_ERROR;
    }
    struct gdb_stub *gdb = NULL;
    if (a.gdb && gdb_stub_start(vm, a.gdb, &gdb, &eb)) {
        fprintf(stderr, "petrel: %s\n", eb.msg);
        api_server_stop(&api);
        vm_destroy(vm);
        free(tree);
        return PETREL_STATUS_ERROR;
    }
    int status = vm_run(vm, &eb);
    run_exit_guard(true);
    gdb_stub_stop(gdb);
    api_server_stop(&api);
    vm_report_exit(vm, stderr);
    run_exit_guard(false);
    vm_destroy_at_exit(vm);
    free(tree);
    return status;
}
