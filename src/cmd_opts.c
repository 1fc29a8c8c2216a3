/*
 * A command's options as one table (struct cmd_opt): getopt_long's arguments
 * and the options part of --help are both made from it, the way kvmtool's
 * option parser and clap make theirs.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "cmd.h"

#define CMD_OPTS_COLUMN 24 /* where the help text starts, as in kvmtool and git */
#define CMD_OPTS_WIDTH  79 /* no line is wider: an 80-column terminal wraps none */

/* Whether key makes a short option of its own: a letter or a digit. */
static bool cmd_opts_is_short(int key)
{
    return (key >= 'a' && key <= 'z') || (key >= 'A' && key <= 'Z') || (key >= '0' && key <= '9');
}

/* Checks entry i of a table against itself and the entries before it. */
static int cmd_opts_check(const struct cmd_opt *opts, size_t i)
{
    const struct cmd_opt *o = &opts[i];

    if (!o->name || !o->name[0] || !o->help || !o->help[0] || (o->arg && !o->arg[0]))
        return -EINVAL;
    if (o->key < CMD_OPT_LONG && !cmd_opts_is_short(o->key))
        return -EINVAL;
    for (size_t j = 0; j < i; j++)
        if (opts[j].key == o->key || !strcmp(opts[j].name, o->name))
            return -EEXIST;
    return 0;
}

/*
 * Fills g with getopt_long's long options and short-option string for the
 * table opts[0..n). -EINVAL for an entry without a name or help, or a key
 * below CMD_OPT_LONG that is not a letter or digit; -EEXIST for two entries
 * with one name or key; -E2BIG for more than CMD_OPTS_MAX entries.
 */
int cmd_opts_getopt(const struct cmd_opt *opts, size_t n, struct cmd_getopt *g)
{
    char *s = g->shortopts;

    if (n > CMD_OPTS_MAX)
        return -E2BIG;
    for (size_t i = 0; i < n; i++) {
        int ret = cmd_opts_check(opts, i);
        if (ret)
            return ret;
        g->longopts[i] = (struct option){
            .name = opts[i].name,
            .has_arg = opts[i].arg ? required_argument : no_argument,
            .val = opts[i].key,
        };
        if (opts[i].key < CMD_OPT_LONG) {
            *s++ = (char)opts[i].key;
            if (opts[i].arg)
                *s++ = ':';
        }
    }
    g->longopts[n] = (struct option){0};
    *s = '\0';
    return 0;
}

/*
 * Prints text from column CMD_OPTS_COLUMN on, the cursor being there already:
 * words fill each line up to CMD_OPTS_WIDTH (a longer word gets a line of its
 * own), and '\n' starts a new line.
 */
static void cmd_opts_wrap(FILE *f, const char *text)
{
    int x = CMD_OPTS_COLUMN;
    bool fresh = true;   /* nothing printed on this line yet */
    bool broken = false; /* a '\n' came since the last word */

    for (const char *p = text; *p;) {
        if (*p == ' ' || *p == '\n') {
            broken |= *p == '\n';
            p++;
            continue;
        }
        int len = (int)strcspn(p, " \n");
        if (!fresh && (broken || x + 1 + len > CMD_OPTS_WIDTH)) {
            fprintf(f, "\n%*s", CMD_OPTS_COLUMN, "");
            x = CMD_OPTS_COLUMN;
            fresh = true;
        }
        fprintf(f, "%s%.*s", fresh ? "" : " ", len, p);
        x += len + !fresh;
        fresh = broken = false;
        p += len;
    }
    fputc('\n', f);
}

/*
 * Prints the options of a table, one entry after another in its order:
 * "  -k, --kernel FILE     help..." with the help in a column of its own,
 * starting on the next line when the option is too wide for its column.
 */
void cmd_opts_print(FILE *f, const struct cmd_opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct cmd_opt *o = &opts[i];
        int w;

        if (o->key < CMD_OPT_LONG)
            w = fprintf(f, "  -%c, --%s", o->key, o->name);
        else
            w = fprintf(f, "      --%s", o->name);
        if (o->arg)
            w += fprintf(f, " %s", o->arg);
        if (w > CMD_OPTS_COLUMN - 2)
            fprintf(f, "\n%*s", CMD_OPTS_COLUMN, "");
        else
            fprintf(f, "%*s", CMD_OPTS_COLUMN - w, "");
        cmd_opts_wrap(f, o->help);
    }
}
