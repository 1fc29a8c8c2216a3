/*
 * demo: a tiny serial shell, the guest `scripts/run` boots so a first-time
 * user sees a working console on any host. Prints a banner, then the prompt
 * "petrel-demo> ", and reads lines from COM1 with echo and simple editing:
 * Enter is '\r' (a raw terminal) or '\n' ("\r\n" counts once), Backspace
 * (0x7f or 0x08) erases, Ctrl-C drops the line, escape sequences (arrow keys)
 * are ignored.
 *
 * Commands (one file-local table below):
 *   help          lists the commands
 *   info          the `info` program's lines (include/kit/sysinfo.h)
 *   counter [n]   "counter: 0" .. "counter: n-1", one every 100 ms (default
 *                 n = 10; Ctrl-C stops it)
 *   echo          "echo: 0x61" for each key until Ctrl-D
 *   reset         resets through the i8042 (0xfe to port 0x64): petrel ends
 *                 with status 0, QEMU -no-reboot exits 0
 *   poweroff      "demo: powering off", then ACPI poweroff (\_S5 into PM1a_CNT,
 *                 include/kit/acpi.h): petrel and QEMU exit 0. Without the
 *                 tables or if the machine stays on, says so and returns
 *   exit [s]      ends through debug-exit with status s (default 0)
 * Anything else prints "demo: unknown command '<word>' (type help)".
 */
#include "kit/acpi.h"
#include "kit/io.h"
#include "kit/irq.h"
#include "kit/kit.h"
#include "kit/printf.h"
#include "kit/stdlib.h"
#include "kit/string.h"
#include "kit/sysinfo.h"
#include "kit/ticker.h"
#include "kit/uart.h"
#include "kit/uart_rx.h"

#define DEMO_PROMPT      "petrel-demo> "
#define DEMO_LINE_MAX    80
#define DEMO_COUNTER_MS  100
#define DEMO_COUNTER_DEF 10

#define KEY_CTRL_C 0x03
#define KEY_CTRL_D 0x04
#define KEY_BS     0x08
#define KEY_ESC    0x1b
#define KEY_DEL    0x7f

#define I8042_CMD   0x64
#define I8042_RESET 0xfe /* pulse output line 0: the CPU's reset */

/*
 * Keys typed while a command runs that the command did not want: kept for the
 * next prompt, so type-ahead (or a test that sends several lines at once)
 * survives a `counter`.
 */
static char demo_ahead[64];
static unsigned demo_ahead_len;

struct demo_cmd {
    const char *name;
    const char *usage;
    const char *help;
    void (*run)(const char *arg);
};

static void demo_help(const char *arg);

/* The next key: type-ahead first, then COM1 (sleeping until one comes). */
static int demo_getc(void)
{
    if (demo_ahead_len) {
        int c = (unsigned char)demo_ahead[0];
        memmove(demo_ahead, demo_ahead + 1, --demo_ahead_len);
        return c;
    }
    return kit_getc();
}

/* Parses arg as a decimal number; def if arg is empty. 0 on success. */
static int demo_number(const char *arg, unsigned long def, unsigned long *out)
{
    char *end;

    if (!*arg) {
        *out = def;
        return 0;
    }
    *out = strtoul(arg, &end, 10);
    return end != arg && !*end ? 0 : -1;
}

static void demo_info(const char *arg)
{
    (void)arg;
    sysinfo_print("info");
}

static void demo_counter(const char *arg)
{
    unsigned long n;

    if (demo_number(arg, DEMO_COUNTER_DEF, &n)) {
        printf("demo: counter: '%s' is not a number\n", arg);
        return;
    }
    ticker_start(DEMO_COUNTER_MS);
    for (unsigned long i = 0; i < n; i++) {
        uint64_t seen = ticker_count();

        /* Keys wake us too: Ctrl-C stops, others wait for the next prompt. */
        while (ticker_count() == seen) {
            /* With the type-ahead full, keys wait in the UART ring. */
            int c = demo_ahead_len < sizeof(demo_ahead) ? uart_rx_trygetc() : -1;
            if (c < 0) {
                kit_idle();
            } else if (c == KEY_CTRL_C) {
                puts("^C");
                demo_ahead_len = 0;
                ticker_stop();
                return;
            } else {
                demo_ahead[demo_ahead_len++] = (char)c;
            }
        }
        printf("counter: %lu\n", i);
    }
    ticker_stop();
}

static void demo_echo(const char *arg)
{
    (void)arg;
    puts("echo: each key as hex; Ctrl-D ends");
    for (;;) {
        int c = demo_getc();

        if (c == KEY_CTRL_D)
            return;
        printf("echo: 0x%02x\n", c);
    }
}

static void demo_reset(const char *arg)
{
    (void)arg;
    puts("demo: resetting");
    uart_flush();
    outb(I8042_RESET, I8042_CMD);
    kit_halt(); /* no i8042: nothing else to do */
}

static void demo_poweroff(const char *arg)
{
    static struct acpi_info acpi; /* ~4 KiB: not on the 16 KiB stack */

    (void)arg;
    int r = acpi_init(&acpi);
    if (r == -1) {
        puts("demo: poweroff: no ACPI tables");
        return;
    }
    if (r < 0)
        printf("demo: poweroff: the ACPI tables are broken (%s); trying anyway\n", acpi.error);
    if (!acpi_can_poweroff(&acpi)) {
        puts("demo: poweroff: the ACPI tables give no \\_S5 or no PM1a_CNT");
        return;
    }
    puts("demo: powering off");
    acpi_poweroff(&acpi);
    puts("demo: poweroff: the machine is still on");
}

static void demo_exit(const char *arg)
{
    unsigned long s;

    if (demo_number(arg, 0, &s) || s > 255) {
        printf("demo: exit: '%s' is not a status (0 to 255)\n", arg);
        return;
    }
    kit_exit((int)s);
}

static const struct demo_cmd demo_cmds[] = {
    {"help", "help", "this list", demo_help},
    {"info", "info", "memory, command line, initrd and APIC ID from the boot", demo_info},
    {"counter", "counter [n]", "count n ticks of 100 ms (default 10; Ctrl-C stops)", demo_counter},
    {"echo", "echo", "show each key in hex until Ctrl-D", demo_echo},
    {"reset", "reset", "reset the machine through the keyboard controller", demo_reset},
    {"poweroff", "poweroff", "power the machine off through ACPI", demo_poweroff},
    {"exit", "exit [s]", "end the VM with status s through debug-exit", demo_exit},
    {NULL, NULL, NULL, NULL},
};

/* Lists the commands with their usage. */
static void demo_help(const char *arg)
{
    (void)arg;
    for (const struct demo_cmd *c = demo_cmds; c->name; c++)
        printf("  %-12s %s\n", c->usage, c->help);
}

/* Runs one command line (edited in place: the command word is cut off). */
static void demo_run(char *line)
{
    while (*line == ' ')
        line++;
    if (!*line)
        return;
    char *arg = line;
    while (*arg && *arg != ' ')
        arg++;
    if (*arg)
        *arg++ = '\0';
    while (*arg == ' ')
        arg++;
    for (char *e = arg + strlen(arg); e > arg && e[-1] == ' ';)
        *--e = '\0';
    for (const struct demo_cmd *c = demo_cmds; c->name; c++) {
        if (!strcmp(line, c->name)) {
            c->run(arg);
            return;
        }
    }
    printf("demo: unknown command '%s' (type help)\n", line);
}

/* Reads a line with echo and editing into buf; returns when Enter comes. */
static void demo_readline(char *buf, size_t size)
{
    static int after_cr; /* the last key was '\r': a '\n' right after is the same Enter */
    size_t len = 0;
    int esc = 0; /* 1 after ESC, 2 inside "ESC [" or "ESC O" */

    for (;;) {
        int c = demo_getc();
        int was_cr = after_cr;

        after_cr = c == '\r';
        if (esc == 1) {
            esc = (c == '[' || c == 'O') ? 2 : 0;
            continue;
        }
        if (esc == 2) {
            if (c >= 0x40 && c <= 0x7e)
                esc = 0;
            continue;
        }
        if (c == '\n' && was_cr)
            continue;
        if (c == '\r' || c == '\n') {
            putchar('\n');
            buf[len] = '\0';
            return;
        }
        if (c == KEY_DEL || c == KEY_BS) {
            if (len) {
                len--;
                printf("\b \b");
            }
        } else if (c == KEY_CTRL_C) {
            printf("^C\n%s", DEMO_PROMPT);
            len = 0;
        } else if (c == KEY_ESC) {
            esc = 1;
        } else if (c >= 0x20 && c < 0x7f && len + 1 < size) {
            buf[len++] = (char)c;
            putchar(c);
        }
    }
}

int kit_main(void)
{
    char line[DEMO_LINE_MAX];

    uart_rx_init();
    puts("petrel demo: a tiny serial shell, running as a guest kit program");
    puts("type help for the commands");
    for (;;) {
        printf("%s", DEMO_PROMPT);
        demo_readline(line, sizeof(line));
        demo_run(line);
    }
}
