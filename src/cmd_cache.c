/* petrel cache: see and bound the cache of decompressed kernels (kernel_cache.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "petrel/exit.h"
#include "petrel/kernel_cache.h"

enum { CACHE_OLDER_THAN = CMD_OPT_LONG, CACHE_MAX_SIZE };

static const struct cmd_opt cache_opts[] = {
    {CACHE_OLDER_THAN, "older-than", "AGE",
     "prune: remove the entries no boot has used for AGE (30d, 12h, 90m, 60s; a bare number "
     "is days)"},
    {CACHE_MAX_SIZE, "max-size", "SIZE",
     "prune: then remove the least recently used until at most SIZE remain (default: 1G, "
     "the bound petrel keeps after each new entry)"},
    {'h', "help", NULL, "show this help"},
};

static int cache_usage(FILE *f)
{
    fprintf(f, "usage: petrel cache list\n"
               "       petrel cache prune [--older-than AGE] [--max-size SIZE]\n"
               "       petrel cache clear\n"
               "\n"
               "petrel run decompresses a bzImage's payload (its vmlinux) once and keeps it\n"
               "here, named by the SHA-256 of the bzImage, so that later boots of the same\n"
               "bzImage skip the kernel's decompressor: in $XDG_CACHE_HOME/petrel/kernels\n"
               "(root: /var/cache/petrel/kernels; else ~/.cache/petrel/kernels).\n"
               "list: each entry, most recently used first. prune: remove what is old or\n"
               "over the size. clear: remove every entry.\n"
               "\n"
               "options:\n");
    cmd_opts_print(f, cache_opts, ARRAY_SIZE(cache_opts));
    return f == stdout ? 0 : PETREL_STATUS_USAGE;
}

/* "30d", "12h", "90m", "60s", "7" (days) into seconds. 0 or -EINVAL. */
static int cache_parse_age(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    int64_t unit = 86400;

    if (end == s || errno || s[0] == '-')
        return -EINVAL;
    if (*end) {
        if (end[1])
            return -EINVAL;
        switch (*end) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -EINVAL;
        }
    }
    if (n > (unsigned long long)(INT64_MAX / unit))
        return -EINVAL;
    *out = (int64_t)n * unit;
    return 0;
}

static int cache_list(struct kcache *c)
{
    struct errbuf eb = {{0}};
    struct kcache_info *v;
    size_t n;
    uint64_t total = 0;
    char a[32], when[32];

    if (kcache_list(c, &v, &n, &eb)) {
        fprintf(stderr, "petrel cache: %s\n", eb.msg);
        return PETREL_STATUS_ERROR;
    }
    printf("%s: %zu entr%s\n", c->path, n, n == 1 ? "y" : "ies");
    for (size_t i = 0; i < n; i++) {
        struct tm tm;
        localtime_r(&v[i].used, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
        printf("  %s  %10s  used %s\n", v[i].name, fmt_size(v[i].size, a, sizeof(a)), when);
        total += v[i].size;
    }
    printf("total %s\n", fmt_size(total, a, sizeof(a)));
    free(v);
    return 0;
}

int cmd_cache(int argc, char **argv)
{
    struct cmd_getopt g;
    struct errbuf eb = {{0}};
    struct kcache c = {.dir_fd = -1};
    char path[sizeof(c.path)], a[32];
    int64_t older = -1;
    uint64_t max = UINT64_MAX;
    bool max_given = false;
    int ch;

    if (cmd_opts_getopt(cache_opts, ARRAY_SIZE(cache_opts), &g)) {
        fprintf(stderr, "%s: bad option table\n", argv[0]); /* a bug, which test_cli finds */
        return PETREL_STATUS_ERROR;
    }
    optind = 1;
    while ((ch = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (ch) {
        case CACHE_OLDER_THAN:
            if (cache_parse_age(optarg, &older)) {
                fprintf(stderr, "%s: --older-than '%s' is not an age (say 30d or 12h)\n", argv[0],
                        optarg);
                return PETREL_STATUS_USAGE;
            }
            break;
        case CACHE_MAX_SIZE:
            if (parse_size(optarg, &max)) {
                fprintf(stderr, "%s: --max-size '%s' is not a size (say 512M or 2G)\n", argv[0],
                        optarg);
                return PETREL_STATUS_USAGE;
            }
            max_given = true;
            break;
        default:
            return cache_usage(ch == 'h' ? stdout : stderr);
        }
    }
    const char *what = optind < argc ? argv[optind] : NULL;
    if (!what || (strcmp(what, "list") && strcmp(what, "prune") && strcmp(what, "clear"))) {
        fprintf(stderr, "%s: say list, prune or clear\n", argv[0]);
        return PETREL_STATUS_USAGE;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind + 1]);
        return PETREL_STATUS_USAGE;
    }
    if ((older >= 0 || max_given) && strcmp(what, "prune")) {
        fprintf(stderr, "%s: --older-than and --max-size go with prune\n", argv[0]);
        return PETREL_STATUS_USAGE;
    }
    if (kcache_default_path(path, sizeof(path), &eb)) {
        fprintf(stderr, "%s: %s\n", argv[0], eb.msg);
        return PETREL_STATUS_ERROR;
    }
    int ret = kcache_open(&c, path, false, &eb);
    if (ret == -ENOENT) { /* nothing was ever cached */
        if (!strcmp(what, "list"))
            printf("%s: 0 entries\ntotal 0 bytes\n", path);
        return 0;
    }
    if (ret) {
        fprintf(stderr, "%s: %s\n", argv[0], eb.msg);
        return PETREL_STATUS_ERROR;
    }
    if (!strcmp(what, "list")) {
        ret = cache_list(&c);
    } else {
        unsigned removed;
        uint64_t freed;
        if (!strcmp(what, "clear"))
            older = 0, max = 0;
        else if (!max_given && older < 0)
            max = KCACHE_MAX_BYTES;
        ret = kcache_prune(&c, older, max, NULL, &removed, &freed, &eb);
        if (ret) {
            fprintf(stderr, "%s: %s\n", argv[0], eb.msg);
            ret = PETREL_STATUS_ERROR;
        } else {
            printf("removed %u entr%s (%s)\n", removed, removed == 1 ? "y" : "ies",
                   fmt_size(freed, a, sizeof(a)));
        }
    }
    kcache_close(&c);
    return ret;
}
