#!/usr/bin/env python3
"""virtio-net with the user backend (libslirp) as a driver sees it: the guest kit's
netcheck (subprojects/petrel-kit/netcheck.c) asks slirp's gateway for its MAC (ARP)
and for an address (DHCP); frames over several merged buffers; two NICs in order;
and --net's bad input, refused in one line before KVM is touched."""
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
                   "--net tap=petrelnotap0: there is no such network device")


if __name__ == "__main__":
    main()
