# shellcheck shell=bash
# tests/nested/l1state.sh: reading what QEMU's monitor said about L1's CPU (sourced by
# tests/nested/run; tested by l1state_test.sh on the states in testdata/).
#
# l1state_where FILE: one line from the output of `info registers` (twice) and
# `info lapic` in FILE: where the CPU was ("CPU at RIP R (the same 1 s later)" or
# ", then R2"), halted or running, RFLAGS, and, if it was halted with interrupts on while
# a vector above the processor priority waited in the APIC's IRR, "interrupt V pending
# in the APIC (PPR P) but not taken": a lost wake-up, never a legitimate state.
# Prints nothing for a missing or empty FILE.
l1state_where() {
    [ -s "$1" ] || return 0
    awk '
        function hex(h,   v, i) {
            h = tolower(h); sub(/^0x/, "", h); v = 0
            for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
            return v
        }
        { gsub(/\r/, "") }
        /RIP=[0-9a-f]+ RFL=/ {
            n++
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^RIP=/) rip[n] = substr($i, 5)
                if ($i ~ /^RFL=/) rfl[n] = substr($i, 5)
                if ($i ~ /^HLT=/) hlt[n] = substr($i, 5)
            }
        }
        # The first "info lapic": the highest vector waiting in IRR, and the PPR.
        /^IRR[ \t]/ && irr == "" { irr = 0; for (i = 2; i <= NF; i++) if ($i + 0 > irr) irr = $i + 0 }
        /PPR 0x/ && ppr == "" { for (i = 1; i < NF; i++) if ($i == "PPR") ppr = hex($(i + 1)) }
        END {
            if (n < 1) exit
            s = "CPU at RIP " rip[1]
            if (n > 1) s = s (rip[2] == rip[1] ? " (the same 1 s later)" : ", then " rip[2])
            s = s (hlt[n] == 1 ? ", halted" : ", running") ", RFLAGS " rfl[n]
            # Halted, interrupts on, and a vector above the processor priority waiting:
            # the APIC raised an interrupt nobody woke the CPU for.
            if (hlt[n] == 1 && int(hex(rfl[n]) / 512) % 2 == 1 && irr != "" && irr > 0 &&
                int(irr / 16) > int(ppr / 16))
                s = s ", interrupt " irr " pending in the APIC (PPR " sprintf("0x%02x", ppr) ") but not taken"
            print s
        }' "$1"
}
