# shellcheck shell=bash disable=SC2034  # the DEBKERNEL_* results are read by the callers
# scripts/lib/debkernel.sh: Debian's own kernel, taken as a package, for the machines
# petrel boots in its tests and for its users. Sourced (bash) by tests/nested/prepare
# (the nested harness's L1 machine) and scripts/mkguest (the default Linux guest).
# Nothing is installed on the host: the package is fetched with `apt-get download` and
# unpacked with `dpkg-deb -x`.
#
# The caller defines say MESSAGE... and die MESSAGE... (stderr; die exits). The functions
# return their results in DEBKERNEL_* variables rather than on stdout, so that a `die`
# inside them ends the script and not just a command substitution.
#
#   debkernel_busybox          DEBKERNEL_BUSYBOX: the host's static busybox (dies if the
#                              one on PATH is dynamically linked or missing)
#   debkernel_resolve          DEBKERNEL_PKG: NAME=VERSION of the versioned kernel package
#                              that linux-image-amd64 depends on (runs apt-get update
#                              once if apt-cache does not know it)
#   debkernel_fetch PKG DIR [CACHE...]
#                              DEBKERNEL_DEB: PKG's .deb; one of that exact name already
#                              in DIR or a CACHE directory is used as it is, otherwise it
#                              is downloaded into DIR (older linux-image-*.deb there go)
#   debkernel_unpack DEB DIR   unpacks DEB into DIR; DEBKERNEL_RELEASE (uname -r),
#                              DEBKERNEL_IMAGE (the bzImage), DEBKERNEL_CONFIG (its
#                              .config), DEBKERNEL_MODDIR (lib/modules/RELEASE)
#   debkernel_modules DEST ROOT...
#                              writes each ROOT module and everything it depends on
#                              (each module's own `depends` field), uncompressed, as
#                              DEST/NAME.ko; DEBKERNEL_ORDER: their names in load order
#                              (dependencies first); DEBKERNEL_BUILTIN: roots or
#                              dependencies built into the kernel (nothing to load). A
#                              ROOT written as ?NAME is optional: if the kernel has it
#                              neither as a module nor built in, it is listed in
#                              DEBKERNEL_ABSENT instead of being an error.
#   debkernel_cpio DIR OUT     packs DIR as a gzip'd newc cpio archive owned by root
#   debkernel_vmlinux BZ OUT   writes the ELF vmlinux a bzImage carries (its payload,
#                              decompressed); returns 1 if the payload is not gzip, xz
#                              or zstd or does not decompress to an ELF file

debkernel_busybox() {
    local b
    b=$(command -v busybox || true)
    [ -n "$b" ] || die "busybox not found (apt-get install busybox-static)"
    b=$(readlink -f "$b")
    # A dynamically linked busybox would not run in an initramfs.
    if LC_ALL=C file -b "$b" 2>/dev/null | grep -q 'dynamically linked'; then
        die "$b is dynamically linked; install busybox-static"
    fi
    DEBKERNEL_BUSYBOX=$b
}

debkernel__resolve_once() {
    local dep ver
    dep=$(apt-cache depends linux-image-amd64 2>/dev/null |
          sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
    [ -n "$dep" ] || return 1
    ver=$(apt-cache show --no-all-versions "$dep" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
    [ -n "$ver" ] || return 1
    DEBKERNEL_PKG=$dep=$ver
}

debkernel_resolve() {
    debkernel__resolve_once && return 0
    say "apt-cache cannot resolve linux-image-amd64; running apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    debkernel__resolve_once || die "cannot resolve linux-image-amd64 to a versioned kernel package"
}

debkernel_fetch() {
    local pkg=$1 dir=$2 name ver file d
    shift 2
    name=${pkg%%=*}
    ver=${pkg#*=}
    # apt-get download names the file <name>_<version with ':' as %3a>_amd64.deb
    file=${name}_${ver//:/%3a}_amd64.deb
    for d in "$dir" "$@"; do
        if [ -s "$d/$file" ]; then
            DEBKERNEL_DEB=$d/$file
            return 0
        fi
    done
    rm -f "$dir"/linux-image-*.deb
    say "downloading $pkg"
    (cd "$dir" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$pkg" >&2) ||
        die "apt-get download $pkg failed"
    DEBKERNEL_DEB=$dir/$file
    [ -s "$DEBKERNEL_DEB" ] || DEBKERNEL_DEB=$(ls -t "$dir/$name"_*.deb 2>/dev/null | head -n1)
    [ -s "$DEBKERNEL_DEB" ] || die "downloaded package not found in $dir"
}

debkernel_unpack() {
    local deb=$1 dir=$2
    dpkg-deb -x "$deb" "$dir" || die "dpkg-deb -x $deb failed"
    DEBKERNEL_RELEASE=$(ls "$dir/lib/modules" 2>/dev/null | head -n1)
    [ -n "$DEBKERNEL_RELEASE" ] && [ -f "$dir/boot/vmlinuz-$DEBKERNEL_RELEASE" ] ||
        die "no kernel image in $deb"
    DEBKERNEL_IMAGE=$dir/boot/vmlinuz-$DEBKERNEL_RELEASE
    DEBKERNEL_CONFIG=$dir/boot/config-$DEBKERNEL_RELEASE
    DEBKERNEL_MODDIR=$dir/lib/modules/$DEBKERNEL_RELEASE
}

# modules.builtin lists kernel/path/name.ko for every module built into the kernel.
debkernel__builtin() {
    local n
    [ -f "$DEBKERNEL_MODDIR/modules.builtin" ] || return 1
    while IFS= read -r n; do
        n=${n##*/}
        n=${n%.ko}
        [ "${n//-/_}" = "$1" ] && return 0
    done < "$DEBKERNEL_MODDIR/modules.builtin"
    return 1
}

# Writes module $1 (a path in the package) uncompressed to $2.
debkernel__decompress() {
    case $1 in
        *.ko) cp "$1" "$2" ;;
        *.ko.xz) xz -dc "$1" > "$2" ;;
        *.ko.zst) zstd -qdc "$1" > "$2" ;;
        *.ko.gz) gzip -dc "$1" > "$2" ;;
    esac
}

# The `depends` field of an (uncompressed) module: kmod's modinfo if there is one
# (busybox's modinfo only looks modules up through /lib/modules), else the .modinfo
# section read directly (NUL-separated key=value strings).
debkernel__depends() {
    if command -v modinfo >/dev/null && modinfo -F depends "$1" 2>/dev/null; then
        return 0
    fi
    if command -v objcopy >/dev/null; then
        objcopy -O binary --only-section=.modinfo "$1" "$1.modinfo" 2>/dev/null &&
            tr '\0' '\n' < "$1.modinfo" | sed -n 's/^depends=//p' | head -n1
        rm -f "$1.modinfo"
    else
        tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | head -n1
    fi
}

# Adds module $1 (optional if $2 is 1) after its dependencies, depth first. It works on
# the locals of debkernel_modules (dest, file, state), which bash's dynamic scoping
# makes visible here.
debkernel__visit() {
    local m=$1 optional=$2 f deps d
    case ${state[$m]:-} in
        done) return 0 ;;
        visiting) die "module dependency cycle at $m" ;;
    esac
    state[$m]=visiting
    f=${file[$m]:-}
    if [ -n "$f" ]; then
        debkernel__decompress "$DEBKERNEL_MODDIR/$f" "$dest/$m.ko" || die "cannot unpack $f"
        deps=$(debkernel__depends "$dest/$m.ko")
        for d in ${deps//,/ }; do
            debkernel__visit "${d//-/_}" 0
        done
        DEBKERNEL_ORDER+=("$m")
    elif debkernel__builtin "$m"; then
        DEBKERNEL_BUILTIN+=("$m")
    elif [ "$optional" = 1 ]; then
        DEBKERNEL_ABSENT+=("$m")
    else
        die "module $m is neither in the kernel package nor built in"
    fi
    state[$m]="done"
}

debkernel_modules() {
    local dest=$1 root f b
    shift
    # Index the package's modules by name: the file name without .ko*, with '_' for '-'
    # as the kernel names modules (virtio-rng.ko is virtio_rng).
    local -A file=() state=()
    while IFS= read -r f; do
        b=${f##*/}
        b=${b%%.ko*}
        file[${b//-/_}]=$f
    done < <(cd "$DEBKERNEL_MODDIR" &&
             find kernel -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
    DEBKERNEL_ORDER=()
    DEBKERNEL_BUILTIN=()
    DEBKERNEL_ABSENT=()
    mkdir -p "$dest"
    for root in "$@"; do
        case $root in
            \?*) debkernel__visit "${root#?}" 1 ;;
            *) debkernel__visit "$root" 0 ;;
        esac
    done
}

debkernel_cpio() {
    local dir=$1 out=$2
    # newc, owned by root; the kernel's own built-in initramfs supplies /dev/console.
    (
        cd "$dir" || exit 1
        if command -v cpio >/dev/null; then
            find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet
        else
            find . | LC_ALL=C sort | "${DEBKERNEL_BUSYBOX:-busybox}" cpio -o -H newc
        fi
    ) | gzip -6 > "$out"
}

# The bzImage's payload is the compressed ELF vmlinux. Setup header fields
# (Documentation/arch/x86/boot.rst): setup_sects at 0x1f1, payload_offset at 0x248 and
# payload_length at 0x24c, the offset counting from the protected-mode code at
# (setup_sects + 1) * 512. The build appends the uncompressed size after the stream:
# decompress one stream (gzip says "trailing garbage ignored" and exits 2 for that).
debkernel_vmlinux() {
    local bz=$1 out=$2 ss po pl off magic rc=0
    ss=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
    po=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
    pl=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
    [ "$ss" = 0 ] && ss=4
    off=$(((ss + 1) * 512 + po))
    magic=$(od -An -tx1 -j "$off" -N4 "$bz" | tr -d ' ')
    debkernel__payload() {
        dd if="$bz" iflag=skip_bytes,count_bytes skip="$off" count="$pl" bs=1M status=none
    }
    case $magic in
        fd377a58) debkernel__payload | xz -dc --single-stream > "$out" || rc=$? ;;
        28b52ffd) debkernel__payload | zstd -qdc > "$out" || rc=$? ;;
        1f8b*) debkernel__payload | gzip -dc > "$out" 2>/dev/null || rc=$?
               [ "$rc" = 2 ] && rc=0 ;;
        *) return 1 ;;
    esac
    [ "$rc" = 0 ] && [ "$(od -An -tx1 -N4 "$out" | tr -d ' ')" = 7f454c46 ]
}
