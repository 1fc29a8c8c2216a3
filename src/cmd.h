/* The petrel command's subcommands: one file each, listed in main.c's table. */
#ifndef PETREL_CMD_H
#define PETREL_CMD_H

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
int cmd_list(int argc, char **argv);
int cmd_console(int argc, char **argv);

#endif
