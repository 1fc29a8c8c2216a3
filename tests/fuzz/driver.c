/*
 * A standalone driver for the fuzz targets, for builds without libFuzzer (and
 * for the test suite, so the targets run in every build, sanitizers included).
 *
 * usage: fuzz_<target>_driver CORPUS [ITERATIONS]
 *
 * CORPUS is a directory of seed inputs or one input file. Every seed runs
 * once, then ITERATIONS (default 20000) deterministic pseudo-random mutations
 * of them: the same build always runs the same inputs, so a failure
 * reproduces. Each input sits in a heap block of exactly its size, so that
 * AddressSanitizer sees a read one byte past the end. When an input crashes
 * the target, it is written to fuzz-crash-<pid> in the current directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define FUZZ_MAX_INPUT (1u << 20)

struct seed {
    uint8_t *data;
    size_t len;
};

/* The input being run, for the crash handler. */
static const uint8_t *volatile cur_data;
static volatile size_t cur_len;

/* Saves the current input (async-signal-safe: only open/write/close). */
static void save_crash(void)
{
    static const char prefix[] = "fuzz-crash-";
    char name[64];
    size_t n = sizeof(prefix) - 1;
    memcpy(name, prefix, n);
    char digits[20];
    size_t d = 0;
    for (unsigned long pid = (unsigned long)getpid(); pid || d == 0; pid /= 10)
        digits[d++] = (char)('0' + pid % 10);
    while (d)
        name[n++] = digits[--d];
    name[n] = '\0';
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    const uint8_t *p = cur_data;
    size_t left = cur_len;
    while (p && left) {
        ssize_t w = write(fd, p, left);
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    close(fd);
    static const char msg[] = "fuzz driver: crashing input saved to fuzz-crash-<pid>\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
}

static void on_fatal_signal(int sig)
{
    save_crash();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Sanitizers report through their own path; they call this before exiting. */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static uint64_t rng_state = 0x6a09e667f3bcc909ULL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* Runs the target on a copy of buf in a block of exactly len bytes. */
static void run_one(const uint8_t *buf, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        perror("malloc");
        exit(1);
    }
    memcpy(copy, buf, len);
    cur_data = copy;
    cur_len = len;
    LLVMFuzzerTestOneInput(copy, len);
    cur_data = NULL;
    free(copy);
}

static int load_file(const char *path, struct seed *s)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    s->data = malloc(FUZZ_MAX_INPUT);
    if (!s->data) {
        fclose(f);
        return -ENOMEM;
    }
    s->len = fread(s->data, 1, FUZZ_MAX_INPUT, f);
    fclose(f);
    uint8_t *fit = realloc(s->data, s->len ? s->len : 1);
    if (fit)
        s->data = fit;
    return 0;
}

static int load_seeds(const char *path, struct seed **out, size_t *nr)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode)) {
        *out = calloc(1, sizeof(**out));
        *nr = 1;
        return *out ? load_file(path, *out) : -ENOMEM;
    }
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort); /* sorted: the same order every run */
    if (n < 0)
        return -errno;
    *out = calloc((size_t)n + 1, sizeof(**out));
    *nr = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(file, &st) == 0 && S_ISREG(st.st_mode) && *out &&
            load_file(file, &(*out)[*nr]) == 0)
            (*nr)++;
        free(names[i]);
    }
    free(names);
    return *out ? 0 : -ENOMEM;
}

static const uint32_t interesting[] = {
    0,      1,      2,      0x7f,    0x80,       0xff,       0x100,      0x200,      0x1000,
    0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
};
#define ARRAY_LEN (sizeof(interesting) / sizeof(interesting[0]))

/* A position to mutate: formats keep their headers near the front, so favour it. */
static size_t rnd_pos(size_t len)
{
    if (len > 1024 && rnd() % 2)
        return rnd_below(1024);
    return rnd_below(len);
}

/* Applies one random mutation to buf[0, *len) (capacity FUZZ_MAX_INPUT). */
static void mutate(uint8_t *buf, size_t *len, const struct seed *seeds, size_t nr)
{
    size_t n = *len;
    switch (rnd() % 9) {
    case 0: /* flip a bit */
        if (n)
            buf[rnd_pos(n)] ^= (uint8_t)(1u << (rnd() % 8));
        break;
    case 1: /* a random byte */
        if (n)
            buf[rnd_pos(n)] = (uint8_t)rnd();
        break;
    case 2: /* an interesting byte */
        if (n)
            buf[rnd_pos(n)] = (uint8_t)interesting[rnd_below(ARRAY_LEN)];
        break;
    case 3: { /* an interesting 16- or 32-bit little-endian value */
        size_t w = rnd() % 2 ? 4 : 2;
        if (n >= w) {
            size_t at = rnd_pos(n - w + 1);
            uint32_t v = interesting[rnd_below(ARRAY_LEN)];
            if (rnd() % 4 == 0)
                v += (uint32_t)(rnd() % 33) - 16;
            for (size_t i = 0; i < w; i++)
                buf[at + i] = (uint8_t)(v >> (8 * i));
        }
        break;
    }
    case 4: { /* insert random bytes */
        size_t k = 1 + rnd_below(16);
        if (n + k <= FUZZ_MAX_INPUT) {
            size_t at = rnd_below(n + 1);
            memmove(buf + at + k, buf + at, n - at);
            for (size_t i = 0; i < k; i++)
                buf[at + i] = (uint8_t)rnd();
            *len = n + k;
        }
        break;
    }
    case 5: { /* delete a range */
        if (n) {
            size_t at = rnd_below(n);
            size_t k = 1 + rnd_below(n - at < 64 ? n - at : 64);
            memmove(buf + at, buf + at + k, n - at - k);
            *len = n - k;
        }
        break;
    }
    case 6: /* truncate */
        *len = rnd_below(n + 1);
        break;
    case 7: { /* splice a piece of another seed over this one */
        const struct seed *o = &seeds[rnd_below(nr)];
        if (o->len && n) {
            size_t from = rnd_below(o->len);
            size_t at = rnd_pos(n);
            size_t k = 1 + rnd_below(o->len - from);
            if (k > n - at)
                k = n - at;
            memcpy(buf + at, o->data + from, k);
        }
        break;
    }
    case 8: { /* repeat a piece of this input at its end */
        if (n) {
            size_t from = rnd_below(n);
            size_t k = 1 + rnd_below(n - from < 256 ? n - from : 256);
            if (n + k <= FUZZ_MAX_INPUT) {
                memmove(buf + n, buf + from, k);
                *len = n + k;
            }
        }
        break;
    }
    }
}

int main(int argc, char **argv)
{
    struct seed *seeds = NULL;
    size_t nr = 0;
    unsigned long iterations = 20000;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s CORPUS [ITERATIONS]\n", argv[0]);
        return 2;
    }
    if (argc == 3)
        iterations = strtoul(argv[2], NULL, 10);
    int err = load_seeds(argv[1], &seeds, &nr);
    if (err) {
        fprintf(stderr, "%s: %s\n", argv[1], strerror(-err));
        return 1;
    }
    if (nr == 0) {
        fprintf(stderr, "%s: no seed inputs\n", argv[1]);
        return 1;
    }

    signal(SIGABRT, on_fatal_signal);
    signal(SIGSEGV, on_fatal_signal);
    signal(SIGBUS, on_fatal_signal);
    signal(SIGFPE, on_fatal_signal);
    signal(SIGILL, on_fatal_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(save_crash);

    for (size_t i = 0; i < nr; i++)
        run_one(seeds[i].data, seeds[i].len);

    uint8_t *buf = malloc(FUZZ_MAX_INPUT);
    if (!buf)
        return 1;
    size_t total = 0;
    for (unsigned long it = 0; it < iterations; it++) {
        const struct seed *s = &seeds[rnd_below(nr)];
        size_t len = s->len;
        memcpy(buf, s->data, len);
        unsigned k = 1 + (unsigned)(rnd() % 8);
        for (unsigned m = 0; m < k; m++)
            mutate(buf, &len, seeds, nr);
        run_one(buf, len);
        total += len;
    }
    printf("%zu seeds and %lu mutated inputs (%zu bytes) ran cleanly\n", nr, iterations, total);
    free(buf);
    for (size_t i = 0; i < nr; i++)
        free(seeds[i].data);
    free(seeds);
    return 0;
}
