/*
 * A command's option table (src/cmd_opts.c): getopt_long's tables made from
 * it take every option it lists and no other, and its --help part lists every
 * option, aligned and wrapped at 79 columns.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/cmd.h"
#include "petrel/util.h"

enum { T_DEBUG_EXIT = CMD_OPT_LONG, T_DRIVE, T_CONSOLE };

static const struct cmd_opt table[] = {
    {'k', "kernel", "FILE",
     "the kernel to boot (required): a bzImage (/boot/vmlinuz-*), or an uncompressed ELF "
     "vmlinux, which skips the kernel's decompressor"},
    {T_DEBUG_EXIT, "debug-exit", NULL, "a write of V to port 0xf4 ends petrel with status V"},
    {T_DRIVE, "drive", "path=FILE[,ro][,id=NAME]", "a disk\nro: read-only"},
    {T_CONSOLE, "console", "WHERE", "where the console goes"},
    {'h', "help", NULL, "show this help"},
};

/* What cmd_opts_print() prints for opts. The caller frees it. */
static char *print_table(const struct cmd_opt *opts, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    cmd_opts_print(f, opts, n);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* Runs getopt_long with g over argv; records the keys and arguments it returns. */
static int parse(struct cmd_getopt *g, int argc, char **argv, int *keys, const char **args)
{
    int c, n = 0;

    optind = 0; /* glibc: 0 reinitializes, so each call starts afresh */
    opterr = 0;
    while ((c = getopt_long(argc, argv, g->shortopts, g->longopts, NULL)) != -1) {
        keys[n] = c;
        args[n++] = optarg;
    }
    return n;
}

static void getopt_tables_follow_the_table(void **state)
{
    struct cmd_getopt g;

    (void)state;
    assert_int_equal(cmd_opts_getopt(table, ARRAY_SIZE(table), &g), 0);
    assert_string_equal(g.shortopts, "k:h");
    for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
        assert_string_equal(g.longopts[i].name, table[i].name);
        assert_int_equal(g.longopts[i].has_arg, table[i].arg ? required_argument : no_argument);
        assert_null(g.longopts[i].flag);
        assert_int_equal(g.longopts[i].val, table[i].key);
    }
    assert_null(g.longopts[ARRAY_SIZE(table)].name);
}

static void every_option_is_taken_and_no_other(void **state)
{
    char *argv[] = {"petrel run",
                    "--kernel",
                    "bzImage",
                    "-k",
                    "vmlinux",
                    "--debug-exit",
                    "--drive=path=a.img,ro",
                    "--console",
                    "pty",
                    "-h",
                    "--help",
                    NULL};
    const int want[] = {'k', 'k', T_DEBUG_EXIT, T_DRIVE, T_CONSOLE, 'h', 'h'};
    const char *want_args[] = {"bzImage", "vmlinux", NULL, "path=a.img,ro", "pty", NULL, NULL};
    struct cmd_getopt g;
    int keys[16];
    const char *args[16];

    (void)state;
    assert_int_equal(cmd_opts_getopt(table, ARRAY_SIZE(table), &g), 0);
    assert_int_equal(parse(&g, (int)ARRAY_SIZE(argv) - 1, argv, keys, args), ARRAY_SIZE(want));
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        assert_int_equal(keys[i], want[i]);
        if (want_args[i])
            assert_string_equal(args[i], want_args[i]);
        else
            assert_null(args[i]);
    }

    /* Long-only options have no short form; what is not in the table is refused. */
    char *bad[][3] = {{"p", "-d", NULL},       {"p", "--frobnicate", NULL},
                      {"p", "--kernel", NULL}, {"p", "--debug-exit=1", NULL},
                      {"p", "-\x01", NULL},    {"p", "-k", NULL}};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(parse(&g, 2, bad[i], keys, args), 1);
        assert_int_equal(keys[0], '?');
    }
}

static void bad_tables_are_refused(void **state)
{
    const struct cmd_opt no_help[] = {{'k', "kernel", "FILE", NULL}};
    const struct cmd_opt empty_help[] = {{'k', "kernel", "FILE", ""}};
    const struct cmd_opt no_name[] = {{'k', NULL, "FILE", "x"}};
    const struct cmd_opt empty_arg[] = {{'k', "kernel", "", "x"}};
    const struct cmd_opt bad_short[] = {{'?', "what", NULL, "x"}};
    const struct cmd_opt colon[] = {{':', "what", NULL, "x"}};
    const struct cmd_opt zero[] = {{0, "what", NULL, "x"}};
    const struct cmd_opt same_name[] = {{'a', "one", NULL, "x"}, {'b', "one", NULL, "y"}};
    const struct cmd_opt same_key[] = {{'a', "one", NULL, "x"}, {'a', "two", NULL, "y"}};
    const struct cmd_opt same_long_key[] = {{CMD_OPT_LONG, "one", NULL, "x"},
                                            {CMD_OPT_LONG, "two", NULL, "y"}};
    struct cmd_opt many[CMD_OPTS_MAX + 1];
    char names[CMD_OPTS_MAX + 1][8];
    struct cmd_getopt g;

    (void)state;
    assert_int_equal(cmd_opts_getopt(no_help, 1, &g), -EINVAL);
    assert_int_equal(cmd_opts_getopt(empty_help, 1, &g), -EINVAL);
    assert_int_equal(cmd_opts_getopt(no_name, 1, &g), -EINVAL);
    assert_int_equal(cmd_opts_getopt(empty_arg, 1, &g), -EINVAL);
    assert_int_equal(cmd_opts_getopt(bad_short, 1, &g), -EINVAL);
    assert_int_equal(cmd_opts_getopt(colon, 1, &g), -EINVAL);
    assert_int_equal(cmd_opts_getopt(zero, 1, &g), -EINVAL);
    assert_int_equal(cmd_opts_getopt(same_name, 2, &g), -EEXIST);
    assert_int_equal(cmd_opts_getopt(same_key, 2, &g), -EEXIST);
    assert_int_equal(cmd_opts_getopt(same_long_key, 2, &g), -EEXIST);

    /* CMD_OPTS_MAX options fit, as many of them short ones taking an argument as can be. */
    for (int i = 0; i <= CMD_OPTS_MAX; i++) {
        int key = i < 26 ? 'a' + i : i < 52 ? 'A' + i - 26 : CMD_OPT_LONG + i;
        snprintf(names[i], sizeof(names[i]), "o%d", i);
        many[i] = (struct cmd_opt){key, names[i], "X", "x"};
    }
    assert_int_equal(cmd_opts_getopt(many, CMD_OPTS_MAX, &g), 0);
    assert_int_equal(strlen(g.shortopts), 2 * (CMD_OPTS_MAX < 52 ? CMD_OPTS_MAX : 52));
    assert_null(g.longopts[CMD_OPTS_MAX].name);
    assert_int_equal(cmd_opts_getopt(many, CMD_OPTS_MAX + 1, &g), -E2BIG);
}

static void help_is_aligned_and_wrapped(void **state)
{
    char *out = print_table(table, ARRAY_SIZE(table));

    (void)state;
    assert_string_equal(
        out, "  -k, --kernel FILE     the kernel to boot (required): a bzImage\n"
             "                        (/boot/vmlinuz-*), or an uncompressed ELF vmlinux,\n"
             "                        which skips the kernel's decompressor\n"
             "      --debug-exit      a write of V to port 0xf4 ends petrel with status V\n"
             "      --drive path=FILE[,ro][,id=NAME]\n"
             "                        a disk\n"
             "                        ro: read-only\n"
             "      --console WHERE   where the console goes\n"
             "  -h, --help            show this help\n");
    free(out);
}

/* Every line of out is at most 79 columns and ends in no blank. */
static void assert_lines_fit(const char *out)
{
    for (const char *p = out; *p;) {
        size_t len = strcspn(p, "\n");
        assert_true(len <= 79);
        assert_true(len == 0 || p[len - 1] != ' ');
        p += len + (p[len] == '\n');
    }
}

static void help_edge_cases(void **state)
{
    /* 22 columns of option fit beside the help; 23 push it to the next line. */
    const struct cmd_opt widths[] = {
        {CMD_OPT_LONG, "abcdefghijklmn", NULL, "fits"},
        {CMD_OPT_LONG + 1, "abcdefghijklmno", NULL, "next line"},
        /* A word wider than a line gets one of its own; blanks and breaks fold. */
        {CMD_OPT_LONG + 2, "long", "X",
         "a\n\n  b   c\n"
         "0123456789012345678901234567890123456789012345678901234567890123456789 d\n"},
    };
    char *out = print_table(widths, ARRAY_SIZE(widths));

    (void)state;
    assert_string_equal(out,
                        "      --abcdefghijklmn  fits\n"
                        "      --abcdefghijklmno\n"
                        "                        next line\n"
                        "      --long X          a\n"
                        "                        b c\n"
                        "                        "
                        "0123456789012345678901234567890123456789012345678901234567890123456789\n"
                        "                        d\n");
    free(out);

    /* Words fill each line to 79 columns exactly, never 80. */
    const struct cmd_opt fill[] = {
        {'x', "x", NULL,
         /* 24 + 55 = 79 | 24 + 51 + 4 = 79 | 24 + 2 + 54 = 80 | 24 + 53 + 3 = 80 */
         "1234567890123456789012345678901234567890123456789012345 "
         "123456789012345678901234567890123456789012345678901 abc de "
         "12345678901234567890123456789012345678901234567890123 xy"},
    };
    out = print_table(fill, ARRAY_SIZE(fill));
    assert_string_equal(
        out, "  -x, --x               1234567890123456789012345678901234567890123456789012345\n"
             "                        123456789012345678901234567890123456789012345678901 abc\n"
             "                        de\n"
             "                        12345678901234567890123456789012345678901234567890123\n"
             "                        xy\n");
    assert_lines_fit(out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(getopt_tables_follow_the_table),
        cmocka_unit_test(every_option_is_taken_and_no_other),
        cmocka_unit_test(bad_tables_are_refused),
        cmocka_unit_test(help_is_aligned_and_wrapped),
        cmocka_unit_test(help_edge_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
