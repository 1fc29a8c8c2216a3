#!/usr/bin/env python3
"""The petrel command where no VM and no KVM is needed: option errors, and the
socket directory the clients refuse to trust. Runs in the unit suite."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import case, expect, main, petrel, text  # noqa: E402

COMMANDS = ["run", "pause", "resume", "stop", "status", "console", "list"]


def first_line(p):
    lines = text(p.stderr).splitlines()
    return lines[0] if lines else ""


@case
def getopt_errors_name_the_command():
    # getopt's own messages start with argv[0]: "petrel CMD: ", like petrel's.
    for cmd in COMMANDS:
        p = petrel(cmd, "--frobnicate")
        expect(p.returncode == 2, "petrel %s --frobnicate: status 2" % cmd, p)
        expect(first_line(p) == "petrel %s: unrecognized option '--frobnicate'" % cmd,
               "petrel %s: getopt's message starts 'petrel %s: '" % (cmd, cmd), p)
        expect(text(p.stdout) == "", "nothing on stdout", p)
    p = petrel("run", "-Z")
    expect(first_line(p) == "petrel run: invalid option -- 'Z'", "a bad short option", p)
    p = petrel("run", "--kernel")
    expect(first_line(p) == "petrel run: option '--kernel' requires an argument",
           "a missing argument", p)
    p = petrel("status", "--json=yes", "x")
    expect(first_line(p) == "petrel status: option '--json' doesn't allow an argument",
           "an argument where none goes", p)
    p = petrel("console", "--api-sock")
    expect(first_line(p) == "petrel console: option '--api-sock' requires an argument",
           "console: a missing argument", p)


@case
def options_of_another_command_are_unknown():
    # --graceful and --timeout are petrel stop's; --json is pause/resume/status's.
    for cmd in ("pause", "resume", "status"):
        p = petrel(cmd, "--graceful", "x")
        expect(p.returncode == 2 and
               first_line(p) == "petrel %s: unrecognized option '--graceful'" % cmd,
               "petrel %s --graceful is refused by name" % cmd, p)
    p = petrel("stop", "--json", "x")
    expect(p.returncode == 2 and first_line(p) == "petrel stop: unrecognized option '--json'",
           "petrel stop --json is refused by name", p)


@case
def list_takes_options_like_the_others():
    p = petrel("list", "extra")
    expect(p.returncode == 2 and first_line(p) == "petrel list: unexpected argument 'extra'",
           "an extra argument", p)
    p = petrel("list", "--help")
    expect(p.returncode == 0 and text(p.stdout).startswith("usage: petrel list"), "--help", p)


@case
def unknown_command():
    p = petrel("frobnicate")
    expect(p.returncode == 2 and first_line(p) == "petrel: unknown command 'frobnicate'",
           "an unknown command", p)


if __name__ == "__main__":
    main()
