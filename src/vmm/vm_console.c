/*
 * Where the VM's console goes: this terminal or pipes (with the escape keys),
 * a pty, a console socket's client, or a file; which device it talks to (the
 * UART, or virtio-console with --console virtio); and what Ctrl-A p does.
 *
 * Output: the UART and virtio-console (and debugcon) all write the one
 * console outbuf, so with --console virtio whatever the guest still prints on
 * ttyS0 (early boot messages) shows in the same place. Input goes to one
 * device only: virtio-console when there is one, else the UART.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "petrel/vm.h"

/* Tells the person at the console what Ctrl-A p did. */
static void vm_console_note(void *ctx, int err, const char *msg, const char *done)
{
    struct vm *vm = ctx;
    char line[128];

    snprintf(line, sizeof(line), "\r\n[petrel: %s]\r\n", err && err != -EALREADY ? msg : done);
    outbuf_put(&vm->console.buf, line, strlen(line));
}

static void vm_console_paused(void *ctx, int err, const char *msg)
{
    /* A Ctrl-A p that came during the pause queued a resume and said "resuming" already. */
    if (!err && vm_control_goal(ctx) != VM_PAUSED)
        return;
    vm_console_note(ctx, err, msg, "paused; Ctrl-A p resumes");
}

static void vm_console_resumed(void *ctx, int err, const char *msg)
{
    if (err && err != -EALREADY)
        vm_console_note(ctx, err, msg, NULL);
}

static void vm_console_on_escape(void *ctx, enum escape_action action)
{
    struct vm *vm = ctx;

    if (action == ESCAPE_QUIT) {
        /* Leave the cursor on a fresh line for the shell that comes back. */
        outbuf_put(&vm->console.buf, "\r\n", 2);
        vm_request_exit(vm, VM_EXIT_QUIT, PETREL_STATUS_OK, -1, NULL);
    } else if (action == ESCAPE_PAUSE) {
        if (vm_control_goal(vm) == VM_PAUSED) {
            /* Said before the vCPUs run again, so it precedes what they print. */
            vm_console_note(vm, 0, NULL, "resuming");
            vm_resume(vm, vm_console_resumed, vm);
        } else {
            vm_pause(vm, vm_console_paused, vm);
        }
    }
}

/* A console client went away (its socket ended or failed). */
static void vm_console_client_gone(void *ctx)
{
    struct vm *vm = ctx;

    if (vm->client_fd < 0)
        return;
    console_in_detach(&vm->console_in);
    console_out_detach(&vm->console);
    close(vm->client_fd);
    vm->client_fd = -1;
    vm_emit(vm, VM_EVENT_CONSOLE_DETACHED, NULL);
}

static int vm_console_open_pty(struct vm *vm, struct errbuf *eb)
{
    struct termios t;

    vm->pty_master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (vm->pty_master < 0 || grantpt(vm->pty_master) || unlockpt(vm->pty_master) ||
        ptsname_r(vm->pty_master, vm->pty_path, sizeof(vm->pty_path)))
        return err_set(eb, -errno, "cannot create a pseudo-terminal: %s", strerror(errno));
    /*
     * petrel keeps the slave open, so the master never hangs up while no one
     * has the pty open; the slave is raw so a client sees the guest's bytes.
     */
    vm->pty_slave = open(vm->pty_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (vm->pty_slave < 0 || tcgetattr(vm->pty_slave, &t))
        return err_set(eb, -errno, "cannot open %s: %s", vm->pty_path, strerror(errno));
    cfmakeraw(&t);
    tcsetattr(vm->pty_slave, TCSANOW, &t);
    return 0;
}

/* The console outbuf has room again (on the loop): every device writing it may go on. */
static void vm_console_on_space(void *ctx)
{
    struct vm *vm = ctx;

    for (unsigned i = 0; i < vm->nr_console_ports; i++)
        vm->console_ports[i]->tx_space(vm->console_ports[i]->dev);
}

/* Typed input goes to port (NULL: nowhere, it is read and dropped). */
static void vm_console_input_to(struct vm *vm, const struct console_port *port)
{
    if (vm->console_input)
        vm->console_input->set_room_hook(vm->console_input->dev, NULL, NULL);
    vm->console_input = port;
    if (!port) {
        console_in_set_sink(&vm->console_in, NULL, NULL);
        return;
    }
    console_in_set_sink(&vm->console_in, port->receive, port->dev);
    port->set_room_hook(port->dev, console_in_wake, &vm->console_in);
}

void vm_console_connect(void *ctx, const struct console_port *port, bool input)
{
    struct vm *vm = ctx;

    if (vm->nr_console_ports < ARRAY_SIZE(vm->console_ports))
        vm->console_ports[vm->nr_console_ports++] = port;
    if (input)
        vm_console_input_to(vm, port);
}

void vm_console_disconnect(void *ctx, const struct console_port *port)
{
    struct vm *vm = ctx;

    if (vm->console_input == port)
        vm_console_input_to(vm, NULL);
    for (unsigned i = 0; i < vm->nr_console_ports; i++) {
        if (vm->console_ports[i] == port) {
            vm->console_ports[i] = vm->console_ports[--vm->nr_console_ports];
            break;
        }
    }
}

int vm_console_setup(struct vm *vm, struct errbuf *eb)
{
    int ret = console_in_init(&vm->console_in, vm->base, &vm->console.buf);

    if (ret)
        return err_set(eb, ret, "cannot set up console input: %s", strerror(-ret));
    vm->console.buf.on_space = vm_console_on_space;
    vm->console.buf.on_space_ctx = vm;
    /* Input goes to the console device that connects last (vm_console_connect()). */
    vm->console_in.on_action = vm_console_on_escape;
    vm->console_in.ctx = vm;
    vm->console.on_detach_ctx = vm;
    switch (vm->cfg.console) {
    case VM_CONSOLE_PTY:
        return vm_console_open_pty(vm, eb);
    case VM_CONSOLE_FILE:
        vm->console_file_fd =
            open(vm->cfg.console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (vm->console_file_fd < 0)
            return err_set(eb, -errno, "cannot open --console file=%s: %s", vm->cfg.console_path,
                           strerror(errno));
        return 0;
    case VM_CONSOLE_SOCKET:
        vm->console_in.on_eof = vm_console_client_gone;
        vm->console.on_detach = vm_console_client_gone;
        return 0;
    case VM_CONSOLE_STDIO:
        return 0;
    }
    return 0;
}

int vm_console_start(struct vm *vm, struct errbuf *eb)
{
    int ret = 0;

    switch (vm->cfg.console) {
    case VM_CONSOLE_STDIO: {
        /* Escape keys on a terminal only: through pipes every byte passes untouched. */
        bool escapes = !vm->cfg.stdin_closed && isatty(STDIN_FILENO);
        ret = console_out_attach(&vm->console, STDOUT_FILENO, "standard output", true, false);
        /*
         * The vCPUs write output themselves (one write() a byte, not a loop wake-up and
         * two thread switches) where the loop adds nothing of its own to it: without the
         * escape keys, whose notes (Ctrl-A p) must not land inside a guest line
         * (docs/architecture.md, "Start-up and teardown").
         */
        if (!ret && !escapes)
            console_out_direct(&vm->console);
        if (!ret && !vm->cfg.stdin_closed)
            ret = console_in_attach(&vm->console_in, STDIN_FILENO, escapes);
        break;
    }
    case VM_CONSOLE_PTY:
        fprintf(stderr, "petrel: the console is on %s\n", vm->pty_path);
        /* A pty nobody reads must not stall the guest: its output is then dropped. */
        ret = console_out_attach(&vm->console, vm->pty_master, vm->pty_path, false, false);
        vm->console.lossy = true;
        if (!ret)
            ret = console_in_attach(&vm->console_in, vm->pty_master, false);
        break;
    case VM_CONSOLE_FILE:
        ret = console_out_attach(&vm->console, vm->console_file_fd, vm->cfg.console_path, true,
                                 false);
        if (!ret)
            console_out_direct(&vm->console);
        break;
    case VM_CONSOLE_SOCKET:
        break;
    }
    if (ret)
        return err_set(eb, ret, "cannot attach the console: %s", strerror(-ret));
    return 0;
}

void vm_console_stop(struct vm *vm)
{
    console_in_detach(&vm->console_in);
    console_out_detach(&vm->console);
}

void vm_console_destroy(struct vm *vm)
{
    vm_console_client_gone(vm);
    /* The devices disconnected first (their destroy): no hook reaches console_in's eventfd. */
    if (vm->console_in.ev_room)
        console_in_destroy(&vm->console_in);
    if (vm->pty_slave >= 0)
        close(vm->pty_slave);
    if (vm->pty_master >= 0)
        close(vm->pty_master);
    if (vm->console_file_fd >= 0)
        close(vm->console_file_fd);
    vm->pty_slave = vm->pty_master = vm->console_file_fd = -1;
}

int vm_console_attach(struct vm *vm, int fd)
{
    int ret;

    if (vm->cfg.console != VM_CONSOLE_SOCKET)
        return -ENOTSUP;
    if (vm->client_fd >= 0)
        return -EBUSY;
    vm->client_fd = fd;
    ret = console_out_attach(&vm->console, fd, "the console client", false, true);
    if (!ret)
        ret = console_in_attach(&vm->console_in, fd, false);
    vm_emit(vm, VM_EVENT_CONSOLE_ATTACHED, NULL);
    if (ret) {
        vm_console_client_gone(vm);
        return ret;
    }
    return 0;
}
