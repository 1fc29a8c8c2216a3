/* petrel run: boot a kernel with the console on this terminal. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cmd.h"
#include "petrel/api.h"
#include "petrel/vm.h"

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: petrel run --kernel KERNEL [OPTIONS]\n"
            "\n"
            "Boots an x86-64 Linux kernel (or a petrel guest-kit program) under KVM with\n"
            "the guest's console on this terminal: its serial port (COM1, ttyS0), or with\n"
            "--console virtio a virtio console (hvc0).\n"
            "\n"
            "options:\n"
            "  -k, --kernel FILE     the kernel to boot (required): a bzImage\n"
            "                        (/boot/vmlinuz-*), or an uncompressed ELF vmlinux,\n"
            "                        which skips the kernel's decompressor\n"
            "  -i, --initrd FILE     an initial ramdisk to load with it\n"
            "  -a, --cmdline TEXT    the kernel command line, passed exactly as given\n"
            "                        (default: \"%s\";\n"
            "                        with --console virtio: \"%s\")\n"
            "  -c, --cpus N          number of vCPUs (default 1; at most 254, or what KVM allows)\n"
            "  -m, --memory SIZE     guest RAM, e.g. 512M, 2G; a bare number is MiB\n"
            "                        (default 256M, at least 8M)\n"
            "      --debug-exit      a write of V to port 0xf4 ends petrel with status V\n"
            "      --debugcon FILE   write port 0xe9 output to FILE instead of the console\n"
            "      --console [DEVICE,]WHERE\n"
            "                        WHERE: stdio (default): this terminal or pipes; pty: a\n"
            "                        pseudo-terminal (its path is printed); socket: attach\n"
            "                        later with 'petrel console NAME'; file=PATH: output\n"
            "                        only. DEVICE: serial (default): COM1, the guest's\n"
            "                        ttyS0; virtio: a virtio console, the guest's hvc0,\n"
            "                        which gets the input (ttyS0 output still shows).\n"
            "                        'virtio' alone means virtio,stdio\n"
            "  -n, --name NAME       the VM's name for petrel pause/resume/stop/status\n"
            "                        (default: vm-PID); a name runs once at a time\n"
            "      --api-sock PATH   serve the control API here instead of\n"
            "                        $XDG_RUNTIME_DIR/petrel/NAME.sock (root: /run/petrel)\n"
            "      --rng             a virtio-rng device (the guest's /dev/hwrng, fed by\n"
            "                        the host's getrandom())\n"
            "      --drive path=FILE[,ro][,id=NAME]\n"
            "                        a virtio-blk disk backed by FILE, a raw image (its size\n"
            "                        a multiple of 512 bytes) or a block device; repeat for\n"
            "                        more (at most %d): the first is the guest's /dev/vda.\n"
            "                        ro: read-only. id: the serial the guest reads (at most\n"
            "                        20 bytes; default: the file's name). FILE is locked:\n"
            "                        one petrel writes it, or any number read it. Write ',,'\n"
            "                        for a comma in FILE or NAME\n"
            "      --stats           print counters at exit (guest RAM resident, unclaimed\n"
            "                        port and MMIO accesses, pauses, exits completed before\n"
            "                        parking, dropped output)\n"
            "  -h, --help            show this help\n"
            "\n"
            "At exit petrel waits at most %d ms for the console's reader (and --debugcon's)\n"
            "to take the output still queued; what it has not taken by then is dropped,\n"
            "and petrel says on standard error how many bytes were.\n"
            "\n"
            "exit status:\n"
            "  0       the guest reset or powered off, or petrel was asked to stop\n"
            "  V       the guest wrote V to the debug-exit port (with --debug-exit)\n"
            "  1       petrel failed: bad input, or a KVM or host error\n"
            "  2       bad command line\n"
            "  3       the guest crashed (triple fault, failed entry, emulation failure);\n"
            "          petrel prints the vCPU's registers on standard error\n"
            "  128+N   petrel was ended by signal N (SIGINT, SIGTERM, SIGHUP)\n",
            VM_DEFAULT_CMDLINE, VM_DEFAULT_CMDLINE_VIRTIO, VIRTIO_BLK_MAX_DRIVES,
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

int cmd_run(int argc, char **argv)
{
    enum {
        OPT_DEBUG_EXIT = 256,
        OPT_DEBUGCON,
        OPT_API_SOCK,
        OPT_CONSOLE,
        OPT_STATS,
        OPT_RNG,
        OPT_DRIVE
    };
    static const struct option opts[] = {
        {"kernel", required_argument, NULL, 'k'},
        {"initrd", required_argument, NULL, 'i'},
        {"cmdline", required_argument, NULL, 'a'},
        {"cpus", required_argument, NULL, 'c'},
        {"memory", required_argument, NULL, 'm'},
        {"debug-exit", no_argument, NULL, OPT_DEBUG_EXIT},
        {"debugcon", required_argument, NULL, OPT_DEBUGCON},
        {"name", required_argument, NULL, 'n'},
        {"api-sock", required_argument, NULL, OPT_API_SOCK},
        {"console", required_argument, NULL, OPT_CONSOLE},
        {"stats", no_argument, NULL, OPT_STATS},
        {"rng", no_argument, NULL, OPT_RNG},
        {"drive", required_argument, NULL, OPT_DRIVE},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct vm_config cfg = {
        .cpus = 1,
        .memory = VM_DEFAULT_MEMORY,
        .console = VM_CONSOLE_STDIO,
    };
    unsigned long n;
    char a[32], default_name[32];
    const char *name = NULL, *api_sock = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "k:i:a:c:m:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            cfg.kernel_path = optarg;
            break;
        case 'i':
            cfg.initrd_path = optarg;
            break;
        case 'a':
            cfg.cmdline = optarg;
            break;
        case 'c':
            if (parse_uint(optarg, 1, 4096, &n))
                return run_bad("--cpus '%s' must be a number from 1 up to what KVM allows", optarg);
            cfg.cpus = (unsigned)n;
            break;
        case 'm':
            if (parse_size(optarg, &cfg.memory))
                return run_bad("--memory '%s' is not a size (say 512M or 2G)", optarg);
            if (cfg.memory % (4 * KiB))
                return run_bad("--memory %s is not a whole number of 4 KiB pages", optarg);
            if (cfg.memory < VM_MIN_MEMORY)
                return run_bad("--memory %s is too small: petrel needs at least 8 MiB",
                               fmt_size(cfg.memory, a, sizeof(a)));
            if (cfg.memory > 1024 * GiB)
                return run_bad("--memory %s is too large: at most 1 TiB",
                               fmt_size(cfg.memory, a, sizeof(a)));
            break;
        case OPT_DEBUG_EXIT:
            cfg.debug_exit = true;
            break;
        case OPT_STATS:
            cfg.stats = true;
            break;
        case OPT_RNG:
            cfg.rng = true;
            break;
        case OPT_DRIVE: {
            struct errbuf eb = {{0}};
            if (cfg.nr_drives == VIRTIO_BLK_MAX_DRIVES) {
                snprintf(a, sizeof(a), "%d", VIRTIO_BLK_MAX_DRIVES);
                return run_bad("at most %s --drive options", a);
            }
            if (virtio_blk_spec_parse(optarg, &cfg.drives[cfg.nr_drives], &eb))
                return run_bad("%s", eb.msg);
            cfg.nr_drives++;
            break;
        }
        case OPT_DEBUGCON:
            cfg.debugcon_path = optarg;
            break;
        case 'n':
            if (!api_name_valid(optarg))
                return run_bad("--name '%s' must be 1-64 letters, digits, '.', '_' or '-'", optarg);
            name = optarg;
            break;
        case OPT_API_SOCK:
            api_sock = optarg;
            break;
        case OPT_CONSOLE:
            if (run_parse_console(optarg, &cfg))
                return PETREL_STATUS_USAGE;
            break;
        case 'h':
            run_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'petrel run --help'.\n");
            return PETREL_STATUS_USAGE;
        }
    }
    if (optind < argc)
        return run_bad("unexpected argument '%s'", argv[optind]);
    if (!cfg.kernel_path)
        return run_bad("%s", "--kernel FILE is required");

    /* A closed stdin just means no console input. */
    if (fcntl(STDIN_FILENO, F_GETFD) < 0)
        cfg.stdin_closed = true;

    struct errbuf eb = {{0}};
    struct vm *vm;
    if (vm_create(&cfg, &vm, &eb)) {
        fprintf(stderr, "petrel: %s\n", eb.msg);
        return PETREL_STATUS_ERROR;
    }
    if (!name) {
        snprintf(default_name, sizeof(default_name), "vm-%d", (int)getpid());
        name = default_name;
    }
    struct api_server api;
    if (api_server_start(&api, vm, name, api_sock, &eb)) {
        fprintf(stderr, "petrel: %s\n", eb.msg);
        vm_destroy(vm);
        return PETREL_STATUS_ERROR;
    }
    int status = vm_run(vm, &eb);
    run_exit_guard(true);
    api_server_stop(&api);
    vm_report_exit(vm, stderr);
    run_exit_guard(false);
    vm_destroy(vm);
    return status;
}
