# Sourced by scripts/setup (and its test): the Debian packages petrel needs, and which
# of them this machine lacks.

# What petrel needs to build and test (Debian 12 packages).
PETREL_PACKAGES=(
    # build
    gcc libc6-dev meson ninja-build pkg-config python3
    libevent-dev libjansson-dev libfdt-dev liburing-dev libcmocka-dev libseccomp-dev
    libslirp-dev
    # a bzImage's payload decompressed on the host; the kernel cache's SHA-256
    zlib1g-dev liblzma-dev libzstd-dev liblz4-dev libbz2-dev liblzo2-dev libssl-dev
    # tests: formatting, the fuzz targets' libFuzzer builds (clang only recommends the
    # runtime, and setup installs without recommends), the nested KVM harness
    clang clang-format libclang-rt-14-dev qemu-system-x86 busybox-static cpio gzip xz-utils
    zstd lz4 lzop bzip2 kmod e2fsprogs util-linux
    # tests: ACPI table disassembly (iasl -d); snapshot state files shown as text (dtc)
    acpica-tools device-tree-compiler
    # tests: the gdb stub, driven by Debian's gdb in batch mode (integration-gdb, tests/linux)
    gdb
    # tests: a tap in a network namespace (ip netns, ip tuntap: integration-net, tests/linux
    # net_tap, scripts/bench/net); a minimal Debian image may lack it
    iproute2
)

# Prints, one a line, the packages among "$@" that dpkg does not list as installed.
# A name dpkg has never seen is missing, not an error: dpkg-query exits 1 for it (and
# still prints the others), which is exactly the fresh machine's case.
packages_missing() {
    local installed
    installed=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null |
        awk '$4 == "installed" { print $1 }' || true)
    local p
    for p in "$@"; do
        grep -qx -- "$p" <<<"$installed" || echo "$p"
    done
}
