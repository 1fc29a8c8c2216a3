#!/bin/bash
# Tests l1state_where (tests/nested/l1state.sh) on CPU states QEMU's monitor gave for L1:
#   frozen-lost-timer.state  a frozen L1 (freeze-check, 1 ms tick): halted in default_idle
#                            with IF set, timer vector 236 in IRR above PPR 0x10
#   stopped-idle.state       an idle L1 stopped by hand (monitor `stop`): halted, IRR empty
#   spinning.state           the kit's spin guest under plain QEMU: running, IF clear
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/l1state.sh"
failed=0
expect() {   # expect STATE WANTED [UNWANTED]
    local got
    got=$(l1state_where "$here/testdata/$1")
    if [[ $got != *"$2"* ]] || { [ -n "${3:-}" ] && [[ $got == *"$3"* ]]; }; then
        echo "FAIL $1: got '$got', want '$2'${3:+ and not '$3'}"
        failed=1
    else
        echo "ok $1: $got"
    fi
}
expect frozen-lost-timer.state \
    "CPU at RIP ffffffff81a592eb (the same 1 s later), halted, RFLAGS 00000206, interrupt 236 pending in the APIC (PPR 0x10) but not taken"
expect stopped-idle.state "CPU at RIP ffffffff81a592eb (the same 1 s later), halted, RFLAGS 00000206" "not taken"
expect spinning.state "CPU at RIP 0000000000100327 (the same 1 s later), running, RFLAGS 00000006" "not taken"
# No state (the monitor could not be reached): nothing at all.
out=$(l1state_where "$here/testdata/none.state")
[ -z "$out" ] || { echo "FAIL no state: got '$out'"; failed=1; }
exit "$failed"
