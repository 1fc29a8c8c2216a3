/* The petrel command's subcommands: one file each, listed in main.c's table. */
#ifndef PETREL_CMD_H
#define PETREL_CMD_H

struct cmd {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);
};

int cmd_run(int argc, char **argv);

#endif
