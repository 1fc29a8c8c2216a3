#!/usr/bin/env bash
# scripts/setup on a machine that lacks packages (issue 13, item 1): dpkg-query exits 1
# for a name it has never seen, which once ended setup silently under `set -e` on
# exactly the fresh machine README.md is written for. Checks the package logic with a
# name no archive has, then the whole install path: setup must try to install it and
# fail with a line saying what failed, never silently.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
bogus=petrel-no-such-package-$$
passed=0 failed=0
check() {   # check NAME CONDITION-STATUS
    if [ "$2" -eq 0 ]; then echo "ok: $1"; passed=$((passed + 1))
    else echo "FAIL: $1"; failed=$((failed + 1)); fi
}

# 1. The package logic: an installed package is not missing, an unknown one is.
out=$(bash -euo pipefail -c '. scripts/lib/packages.sh; packages_missing bash "$1" dpkg' _ "$bogus")
rc=$?
echo "packages_missing bash $bogus dpkg -> status $rc, [$out]"
check "packages_missing succeeds with a name dpkg has never seen" "$rc"
[ "$out" = "$bogus" ]; check "only the unknown package is reported missing" $?

# 2. Every package setup needs is known to this machine's dpkg now (setup has run).
. scripts/lib/packages.sh
out=$(packages_missing "${PETREL_PACKAGES[@]}")
[ -z "$out" ]; check "setup's packages are all installed (missing: ${out:-none})" $?

# 3. The install path: setup asked to install a package that does not exist.
log=$(mktemp)
PETREL_SETUP_EXTRA_PACKAGES=$bogus scripts/setup </dev/null >"$log" 2>&1
rc=$?
sed 's/^/  setup| /' "$log" | tail -n 15
[ "$rc" -ne 0 ]; check "setup fails (status $rc)" $?
grep -q "^setup: installing .*$bogus" "$log"; check "setup says what it installs" $?
grep -qE "^setup: (apt-get install of .*$bogus.* failed|run as root to install: .*$bogus)" "$log"
check "setup's last word names the failed step" $?
rm -f "$log"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
