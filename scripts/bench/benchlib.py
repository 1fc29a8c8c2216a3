"""What every benchmark shares: where the tree is, whether /dev/kvm works, and
re-running the benchmark inside the nested harness when it does not."""
import fcntl
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NESTED = bool(os.environ.get("PETREL_BENCH_NESTED"))


def kvm_works():
    """True when this host's /dev/kvm opens and answers KVM_GET_API_VERSION with 12."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        try:
            return fcntl.ioctl(fd, 0xAE00) == 12
        finally:
            os.close(fd)
    except OSError:
        return False


def hw_virt():
    """Whether this host's KVM is hardware virtualization (kvm_intel, kvm_amd): another one
    (kvm_pvm) runs petrel's kit guests but not QEMU's q35 (it fails on MSR 0x10a)."""
    return os.path.isdir("/sys/module/kvm_intel") or os.path.isdir("/sys/module/kvm_amd")


def find_lkvm():
    """kvmtool's lkvm where it can run here, else None (with a note why its column is
    skipped). lkvm checks CPUID for VT-x/AMD-V before it opens /dev/kvm, so it refuses
    kvm_pvm's host even where petrel runs (PETREL_BENCH_NESTED=1 on such a host)."""
    lkvm = shutil.which("lkvm")
    if not lkvm:
        print("kvmtool: no lkvm on PATH (it is built by hand from its source, "
              "scripts/bench/build-kvmtool): its column is skipped", flush=True)
    elif not hw_virt():
        print("kvmtool: %s refuses a host without VT-x/AMD-V (this /dev/kvm is not "
              "kvm_intel or kvm_amd): its column is skipped" % lkvm, flush=True)
        lkvm = None
    return lkvm


def ensure_kvm(script, args, nested=False):
    """Returns when hardware-virtualization KVM is usable here (and nested is false);
    otherwise re-executes script with args inside tests/nested/run (where both VMMs use
    L1's kvm-amd) and never returns."""
    if NESTED or (kvm_works() and hw_virt() and not nested):
        return
    print("bench: %s: running inside the nested harness (QEMU TCG + kvm-amd; absolute "
          "times include two layers of emulation)" % (
              "asked to" if nested else "no hardware-virtualization /dev/kvm here"),
          flush=True)
    # L1 gets fresh /tmp and /run: a tree there must be shared explicitly.
    share = ["--rw", ROOT] if ROOT.startswith(("/tmp/", "/run/")) else []
    run = os.path.join(ROOT, "tests/nested/run")
    os.chdir(ROOT)
    os.execvp(run, [run, "--timeout", "3000", "--env", "PETREL_BENCH_NESTED=1"] + share +
              ["--", sys.executable, os.path.abspath(script)] + args)
