#!/usr/bin/env python3
"""virtio-net as a driver sees it: the guest kit's netcheck
(subprojects/petrel-kit/netcheck.c) asks slirp's gateway for its MAC (ARP) and for an
address (DHCP) through --net user; frames over several merged buffers; two NICs in
order; a tap in a network namespace whose kernel answers ARP; and --net's bad input
(keys, a taken hostfwd port, a missing, busy or non-tap device), refused in one line
before KVM is touched."""
import contextlib
import os
import re
import socket
import subprocess

from harness import PETREL, case, expect, kit, main, petrel, text

NET_FUNC = re.compile(r"pci: 00:([0-9a-f]{2})\.0 1af4:1041 class 020000 rev 01")


def netcheck(*options, nets=("user",)):
    args = ["run", "--kernel", kit("netcheck"), "--debug-exit", "--stats",
            "--cmdline", "console=ttyS0 " + " ".join(options)]
    for n in nets:
        args += ["--net", n]
    return petrel(*args)


def passed(p, mac="52:54:00:12:34:56"):
    out = text(p.stdout)
    expect(p.returncode == 0, "netcheck ends with ACPI poweroff (status 0)", p)
    expect("FAIL" not in out, "no check failed", p)
    expect(NET_FUNC.search(out), "virtio-net is a PCI function (1af4:1041, class 020000)", p)
    expect(re.search(r"netcheck: virtio-net 00:[0-9a-f]{2}\.0 mac %s link up " % mac, out),
           "the MAC from the configuration, the link up", p)
    expect("netcheck: arp 10.0.2.2 is at 52:55:0a:00:02:02\r\n" in out,
           "slirp's gateway answers ARP with its MAC", p)
    expect("netcheck: dhcp offer 10.0.2.15 from 10.0.2.2\r\n" in out,
           "slirp's DHCP server offers 10.0.2.15", p)
    expect("netcheck: PASS frames sent 2 received 2\r\n" in out, "nothing else came", p)
    expect("petrel: stats: network frames dropped 0" in text(p.stderr), "nothing dropped", p)
    return out


@case
def arp_and_dhcp_through_the_user_network():
    passed(netcheck())


@case
def frames_over_several_merged_buffers():
    # 100-byte buffers: the DHCP offer (about 600 bytes) takes seven of them.
    out = passed(netcheck("netcheck.mrg=1", "netcheck.bufsize=100"))
    expect(re.search(r"accepted 0x1[0-9a-f]*8[0-9a-f]{3}\r\n", out), "MRG_RXBUF accepted")


@case
def two_nics_in_command_line_order():
    p = netcheck(nets=("user,mac=52:54:00:00:00:0a", "user"))
    out = passed(p, mac="52:54:00:00:00:0a")
    funcs = NET_FUNC.findall(out)
    expect(len(funcs) == 2 and int(funcs[0], 16) < int(funcs[1], 16),
           "two virtio-net functions: %r" % funcs, p)


def one_line_error(p, status, *needles):
    err = text(p.stderr)
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("Try ")]
    expect(p.returncode == status, "status %d" % status, p)
    expect(len(lines) == 1, "exactly one error line", p)
    for n in needles:
        expect(n in err, "the error mentions %r" % n, p)


def without_dev_kvm(*args):
    """petrel run in a mount namespace where /dev is empty: an error other than
    /dev/kvm's came before KVM was touched."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           'mount -t tmpfs none /dev && exec "$0" "$@"', PETREL, "run",
                           "--kernel", kit("hello"), *args], capture_output=True, timeout=60)


@case
def bad_net_options_are_usage_errors():
    for arg, needle in [("slirp", "must be user[,...] or tap=NAME"),
                        ("user,frob=1", "unknown key 'frob'"),
                        ("user,hostfwd=tcp:1.2.3:22-:22", "not an IPv4 address"),
                        ("user,mac=01:00:5e:00:00:01", "multicast")]:
        one_line_error(without_dev_kvm("--net", arg), 2, needle)
    p = without_dev_kvm(*["--net", "user"] * 5)
    one_line_error(p, 2, "at most 4 --net options")


@case
def taken_hostfwd_port_refused_before_kvm():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        p = without_dev_kvm("--net", "user,hostfwd=tcp:127.0.0.1:%d-:22" % port)
        one_line_error(p, 1, "hostfwd tcp 127.0.0.1:%d: cannot listen there" % port,
                       "Address already in use")
    finally:
        s.close()


@case
def missing_tap_refused_before_kvm():
    one_line_error(without_dev_kvm("--net", "tap=petrelnotap0"), 1,
                   "--net tap=petrelnotap0: there is no such network device",
                   "ip tuntap add dev petrelnotap0 mode tap")


@contextlib.contextmanager
def netns(*setup):
    """A network namespace (root) with lo up and the setup commands (ip ... lines) run in
    it; deleted after."""
    name = "petrel-t%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in ("ip link set lo up",) + setup:
            subprocess.run(["ip", "netns", "exec", name] + cmd.split(), check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name])


def in_ns(ns, *args):
    return subprocess.run(["ip", "netns", "exec", ns, PETREL, "run", *args],
                          capture_output=True, timeout=120)


TAP_SETUP = ("ip tuntap add dev ptap0 mode tap", "ip link set ptap0 up",
             "ip addr add 10.9.0.1/24 dev ptap0")


@case
def tap_in_a_namespace_reaches_the_kernel_behind_it():
    # The guest asks who has 10.9.0.1 (the tap's address on the host side): the host's
    # kernel answers through the tap, with the tap's MAC.
    with netns(*TAP_SETUP) as ns:
        tap_mac = subprocess.run(["ip", "netns", "exec", ns, "cat",
                                  "/sys/class/net/ptap0/address"],
                                 capture_output=True, text=True).stdout.strip()
        p = in_ns(ns, "--kernel", kit("netcheck"), "--debug-exit", "--net",
                  "tap=ptap0,mac=52:54:00:00:00:99", "--cmdline",
                  "console=ttyS0 netcheck.ip=10.9.0.2 netcheck.gw=10.9.0.1 netcheck.dhcp=0")
        out = text(p.stdout)
        expect(p.returncode == 0 and "FAIL" not in out, "netcheck passes through the tap", p)
        expect("mac 52:54:00:00:00:99 link up" in out, "the MAC given", p)
        expect("netcheck: arp 10.9.0.1 is at %s\r\n" % tap_mac in out,
               "the host's kernel answered ARP (%s)" % tap_mac, p)
        # The tap's offloads are offered (CSUM, GUEST_CSUM, TSO), not forced: netcheck
        # takes none of them.
        m = re.search(r"features 0x([0-9a-f]+) accepted 0x([0-9a-f]+)", out)
        offered, accepted = int(m.group(1), 16), int(m.group(2), 16)
        expect(offered & 0x1983 == 0x1983 and accepted & 0x1983 == 0,
               "offloads offered %#x, accepted %#x" % (offered, accepted), p)


@case
def tap_that_is_busy_or_not_a_tap_is_refused():
    with netns(*TAP_SETUP, "ip tuntap add dev ptun0 mode tun") as ns:
        one_line_error(in_ns(ns, "--kernel", kit("hello"), "--net", "tap=ptun0"), 1,
                       "--net tap=ptun0: cannot attach: it is not a tap device")
        holder = subprocess.Popen(
            ["ip", "netns", "exec", ns, "python3", "-c",
             "import fcntl, struct, sys\n"
             "fd = open('/dev/net/tun', 'rb', buffering=0)\n"
             "fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', b'ptap0', 0x1002))\n"
             "print('held', flush=True)\n"
             "sys.stdin.read()\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            expect(holder.stdout.readline() == b"held\n", "a process holds ptap0")
            one_line_error(in_ns(ns, "--kernel", kit("hello"), "--net", "tap=ptap0"), 1,
                           "--net tap=ptap0: cannot attach: it is in use")
        finally:
            holder.stdin.close()
            holder.wait()


if __name__ == "__main__":
    main()
