/* petrel: the command and its subcommand table. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "petrel/exit.h"
#include "petrel/util.h"

static const struct cmd cmds[] = {
    {"run", "boot a kernel with its console on this terminal", cmd_run},
    {"pause", "pause a running VM (returns once every vCPU is parked)", cmd_pause},
    {"resume", "resume a paused VM", cmd_resume},
    {"stop", "stop a VM (its console is drained; works when paused)", cmd_stop},
    {"status", "show a VM's state, vCPUs, memory, uptime", cmd_status},
    {"snapshot", "pause a VM and write its snapshot to a directory", cmd_snapshot},
    {"list", "list running VMs", cmd_list},
    {"console", "attach this terminal to a VM started with --console socket", cmd_console},
    {"stat", "show a VM's counters: exits per vCPU, accesses per device, kicks", cmd_stat},
    {"trace", "change what a running VM traces (--on, --off, --filter)", cmd_trace},
    {"events", "print what happens to a VM as it happens (paused, stopping, ...)", cmd_events},
    {"wait", "wait until a VM is Running, Paused or Stopped", cmd_wait},
    {"cache", "list, prune or clear the cache of decompressed kernels", cmd_cache},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: petrel COMMAND [OPTIONS]\n\n"
               "petrel is a virtual machine monitor for Linux KVM.\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
        fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\n'petrel COMMAND --help' describes a command.\n"
               "'petrel --version' prints the version.\n");
}

int main(int argc, char **argv)
{
    sigset_t kick;

    /* SIGRTMIN is the vCPU kick: only vCPU threads take it; everyone else blocks it. */
    sigemptyset(&kick);
    sigaddset(&kick, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &kick, NULL);
    /* A closed console pipe is reported by write(), not by killing petrel. */
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2) {
        usage(stderr);
        return PETREL_STATUS_USAGE;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("petrel %s\n", PETREL_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
        if (!strcmp(argv[1], cmds[i].name)) {
            /* getopt prefixes its messages with argv[0]: "petrel run: ...", like ours. */
            char prog[32];
            snprintf(prog, sizeof(prog), "petrel %s", cmds[i].name);
            argv[1] = prog;
            return cmds[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "petrel: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return PETREL_STATUS_USAGE;
}
