/* The petrel command's subcommands: one file each, listed in main.c's table. */
#ifndef PETREL_CMD_H
#define PETREL_CMD_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

/*
 * A command's fn gets argv[0] = "petrel NAME" (e.g. "petrel run"), the prefix
 * of its messages, which getopt uses for its own too.
 */
struct cmd {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);
};

int cmd_run(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_console(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_wait(int argc, char **argv);
int cmd_cache(int argc, char **argv);

/*
 * One option of a command. A command lists its options once, in a const
 * table, and both getopt_long's tables (cmd_opts_getopt) and the options part
 * of its --help (cmd_opts_print) are made from that table, in its order: an
 * option cannot be accepted and undocumented, or documented and refused.
 */
struct cmd_opt {
    int key;          /* what getopt_long returns for it: a letter is also its short
                         option (-k); an option without one uses CMD_OPT_LONG + n */
    const char *name; /* the long option, without "--" */
    const char *arg;  /* its argument as --help names it ("FILE"); NULL: takes none */
    const char *help; /* wrapped to 79 columns by cmd_opts_print; '\n' breaks a line */
};

#define CMD_OPT_LONG 256 /* the first key of the options that have no short form */
#define CMD_OPTS_MAX 32  /* options in one table */

/* getopt_long's arguments, as cmd_opts_getopt() makes them from a table. */
struct cmd_getopt {
    struct option longopts[CMD_OPTS_MAX + 1];
    char shortopts[2 * CMD_OPTS_MAX + 1];
};

int cmd_opts_getopt(const struct cmd_opt *opts, size_t n, struct cmd_getopt *g)
    __attribute__((warn_unused_result));
void cmd_opts_print(FILE *f, const struct cmd_opt *opts, size_t n);

#endif
