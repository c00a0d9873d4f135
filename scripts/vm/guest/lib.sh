# Helpers for the checks that run inside the guest (sourced by run.sh). Every check ends in exactly
# one line in $results/checks.txt: "check N ok   NAME: figures" or "check N FAIL NAME: why".
share=/mnt/fwe
results=$share/results
conf=/etc/fwenforcer/fwenforcer.conf
table="inet fwenforcer"

now() { cut -d' ' -f1 /proc/uptime; }
# seconds between two now() readings, 2 decimals
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
log() { echo "fwe-vm: $*" | tee -a "$results/guest.log" >&2; }

# The check in progress: its number and name, and the figures it has collected so far.
check_number=""; check_name=""; figures=()
begin() { check_number=$1; check_name=$2; figures=(); log "check $1 ($2) begins"; }
figure() { figures+=("$*"); log "  $*"; }
ok() {
    local joined
    joined=$(printf '%s; ' "${figures[@]}")
    echo "check $check_number ok   $check_name: ${joined%; }" >> "$results/checks.txt"
    log "check $check_number ok"
}
# A failed check ends the run: its line, then every boot's journal for the host to print.
fail() {
    echo "check $check_number FAIL $check_name: $*" >> "$results/checks.txt"
    log "check $check_number FAILED: $*"
    finish 1
}
# expect WHAT COMMAND...: fail the check unless the command succeeds.
expect() {
    local what=$1; shift
    "$@" >> "$results/guest.log" 2>&1 || fail "$what (command: $*)"
}

finish() {
    handled=1
    ip netns del $verdict_ns 2> /dev/null || true
    journalctl --no-pager -o short-monotonic --list-boots > "$results/boots.txt" 2>&1 || true
    journalctl --no-pager -o short-monotonic > "$results/journal.txt" 2>&1 || true
    echo "${1:-0}" > "$results/status"
    sync
    systemctl poweroff --no-block
    exit "${1:-0}"
}

# The service's property, e.g. prop MainPID.
prop() { systemctl show -p "$1" --value fwenforcerd; }

# Enforced: the kernel holds what nft itself makes of the plan. The plan's nft text is loaded by
# `nft -f` into a scratch namespace, and the two tables, both listed by nft, must be equal. The
# daemon's own `plan --diff` would be the program judging itself. (kernel_ns: the namespace whose
# table is judged, the guest's own when unset; set only to try this function outside the guest.)
verdict_ns=fwe-verdict
enforced() {
    local plan
    plan=$(fwenforcerd plan --config "$conf" 2> /dev/null) || return 1
    ip netns add $verdict_ns 2> /dev/null || true
    ip netns exec $verdict_ns nft flush ruleset || return 1
    ip netns exec $verdict_ns nft -f - <<< "$plan" || return 1
    local kernel
    kernel=$(listing "${kernel_ns:-}")
    [[ -n "$kernel" && "$kernel" == "$(listing $verdict_ns)" ]]
}

# The table as nft lists it (in network namespace $1 if given), by content: counter values left
# out, and its sets and chains sorted by name (nft lists them in the order they were created).
listing() {
    ${1:+ip netns exec "$1"} nft list table $table 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/' \
        | awk '/^\t(set|chain) / { block = $0; inblock = 1; next }
               inblock { block = block "\x01" $0; if ($0 == "\t}") { print block; inblock = 0 }; next }
               NF { print }' | LC_ALL=C sort | tr '\001' '\n'
}

# wait_until TIMEOUT_S INTERVAL_S COMMAND...: true once the command succeeds, false after TIMEOUT_S.
wait_until() {
    local deadline interval=$2 limit=$1; shift 2
    deadline=$(awk -v n="$(now)" -v t="$limit" 'BEGIN { print n + t }')
    until "$@"; do
        awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }' && return 1
        sleep "$interval"
    done
}

# A point in the journal (mark), and the unit's lines after it (since_mark CURSOR), for "did it
# log X after I did Y". Not with -p: journalctl 252 shows nothing for --after-cursor with -p.
mark() { journalctl -n 0 --show-cursor 2>/dev/null | sed -n 's/^-- cursor: //p'; }
since_mark() { journalctl --no-pager -u fwenforcerd --after-cursor "$1" -o cat 2>/dev/null; }
# The number of the unit's lines this boot at PRIORITY or above that match PATTERN.
priority_count() { journalctl --no-pager -b -u fwenforcerd -p "$1" -o cat 2>/dev/null | grep -c "$2"; }

# Writes the config the daemon reads (root-owned, mode 600: the daemon refuses anything else).
write_config() { install -m 0600 -o root -g root /dev/stdin "$conf.tmp" && mv "$conf.tmp" "$conf"; }
