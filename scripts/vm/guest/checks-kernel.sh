# Checks 5 (Debian's kernel against nft) and 6 (real connections through the enforced ruleset).
# Peers are network namespaces inside the guest; addresses from 198.18.0.0/15 and fd00::/8 only.

# ns NAME: a fresh network namespace with loopback up.
ns() { ip netns del "$1" 2>/dev/null; ip netns add "$1" && ip -n "$1" link set lo up; }
inns() { local n=$1; shift; ip netns exec "$n" "$@"; }

# The agents' namespace, joined to the guest by a veth pair: the guest is 198.18.43.1 / fd00:43::1,
# the agent 198.18.43.2 / fd00:43::2.
peer_up() {
    ns fwe-peer
    ip link del fwe-h 2>/dev/null
    ip link add fwe-h type veth peer name fwe-p netns fwe-peer
    ip addr add 198.18.43.1/24 dev fwe-h
    ip addr add fd00:43::1/64 dev fwe-h nodad
    ip link set fwe-h up
    inns fwe-peer ip addr add 198.18.43.2/24 dev fwe-p
    inns fwe-peer ip addr add fd00:43::2/64 dev fwe-p nodad
    inns fwe-peer ip link set fwe-p up
}
peer_down() { ip link del fwe-h 2>/dev/null; ip netns del fwe-peer 2>/dev/null; }

echo_server_start() { # ports...: an echo server in the guest's own namespace
    python3 "$guest/echo.py" serve "$@" >> "$results/guest.log" 2>&1 &
    echo_pid=$!
    sleep 1
}
echo_server_stop() { kill "$echo_pid" 2>/dev/null; wait "$echo_pid" 2>/dev/null; }
# probe HOST PORT: one connection from the agent, one line echoed within 2 s
probe() { inns fwe-peer python3 "$guest/echo.py" probe "$1" "$2" 2; }

check_kernel() {
    begin 5 kernel
    local catalog role n=0 t0 t1 failed=()
    # (a) Every role of both catalogs: applied over netlink in one namespace, the same plan loaded
    # by nft -f in another (the host rendered it with fwenforcerd plan), listed by nft: equal.
    ns fwe-ours; ns fwe-nft
    t0=$(now)
    for plan in "$share"/kernel/*.nft; do
        catalog=$(basename "$plan" .nft); role=${catalog#*--}; catalog=${catalog%%--*}
        install -m 0600 "$share/kernel/$catalog.conf" "/tmp/fwe-$catalog.conf"
        # Both sides from an empty kernel: nft lists sets in the order they were created.
        inns fwe-ours nft flush ruleset
        inns fwe-ours fwenforcerd apply --config "/tmp/fwe-$catalog.conf" --role "$role" > /dev/null 2>> "$results/guest.log" \
            || { failed+=("$catalog/$role: apply failed"); continue; }
        inns fwe-nft nft flush ruleset
        inns fwe-nft nft -f "$plan" 2>> "$results/guest.log" || { failed+=("$catalog/$role: nft -f failed"); continue; }
        if ! diff <(inns fwe-ours nft list table $table) <(inns fwe-nft nft list table $table) > "/tmp/fwe-diff-$catalog-$role"; then
            failed+=("$catalog/$role: listings differ")
            cat "/tmp/fwe-diff-$catalog-$role" >> "$results/guest.log"
        fi
        n=$((n + 1))
    done
    t1=$(now)
    ip netns del fwe-ours; ip netns del fwe-nft
    ((${#failed[@]} == 0)) || fail "${failed[*]}"
    ((n > 0)) || fail "no plans on the share"
    figure "$n roles: netlink == nft -f ($(elapsed "$t0" "$t1") s)"

    # (b) Drift: nft flush ruleset in the guest's own namespace, under the running daemon.
    local before
    enforced || fail "not enforced before the drift test"
    before=$(listing)
    t0=$(now)
    nft flush ruleset
    wait_until 5 0.02 bash -c "nft list table $table > /dev/null 2>&1" || fail "the table did not come back after nft flush ruleset"
    t1=$(now)
    wait_until 5 0.1 enforced || fail "the restored table is not the plan"
    awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a <= 1.0) }' || fail "drift repaired after $(elapsed "$t0" "$t1") s (more than 1 s)"
    figure "flush ruleset repaired in $(elapsed "$t0" "$t1") s"

    # (c) Compare-and-swap: a change of 2,000 set elements lands while another writer commits as
    # fast as it can for 3 s (a new generation every few ms, so some commit falls between the
    # daemon's read of the generation and its batch); the kernel answers the stale generation with ERESTART, the daemon re-reads and
    # recomputes, the change lands whole, and the other writer's table is untouched.
    local m writer restarts retries many=""
    nft add table inet bystander
    nft add chain inet bystander keep
    nft add rule inet bystander keep counter
    for third in 100 101 102 103 104 105 106 107; do
        for fourth in $(seq 1 250); do many+="\"198.18.$third.$fourth\", "; done
    done
    m=$(mark)
    # nft -i commits each line on its own: hundreds of generations a second, from one process.
    timeout 3 bash -c 'while :; do echo "add table inet fwe_racer"; echo "delete table inet fwe_racer"; done | nft -i' > /dev/null 2>&1 &
    writer=$!
    t0=$(now)
    guest_config '["MANAGER"]' "$many$agents"
    wait "$writer"
    nft delete table inet fwe_racer 2>/dev/null
    wait_until 60 0.2 enforced || fail "the 2,000-element change is not enforced after the concurrent writer: $(since_mark "$m" | tail -3)"
    t1=$(now)
    nft list table inet bystander | grep -q 'counter' || fail "the other writer's table was changed"
    restarts=$(since_mark "$m" | grep -o '[0-9]* compare-and-swap restart' | awk '{ s += $1 } END { print s + 0 }')
    retries=$(since_mark "$m" | grep -c '^reconcile (.*) failed: ')
    ((restarts + retries > 0)) || fail "the concurrent writer never collided with the daemon's commit: compare-and-swap not exercised"
    figure "2,000 elements under a concurrent writer: enforced after $(elapsed "$t0" "$t1") s, $restarts compare-and-swap restarts, $retries passes retried"
    guest_config '["MANAGER"]' "$agents"
    wait_until 30 0.2 enforced || fail "not enforced after removing the 2,000 elements"
    nft delete table inet bystander

    # (d) Audit mode: the agent knocks on a port the catalog does not allow; the daemon, in audit
    # mode, lets it through, and the NFLOG packet reaches the report.
    peer_up
    echo_server_start 5671 8080
    guest_config '["MANAGER"]' "$agents" audit
    wait_until 20 0.2 bash -c "nft list chain $table input | grep -q 'policy accept'" || fail "audit mode not applied"
    probe 198.18.43.1 8080 || fail "audit mode dropped a connection to 8080"
    wait_until 20 0.5 bash -c "fwenforcerd report 2>/dev/null | grep -q '198.18.43.2.*8080\|8080.*198.18.43.2'" \
        || fail "the audit report does not list 198.18.43.2 -> 8080: $(fwenforcerd report 2>&1 | head -5)"
    figure "audit: NFLOG report lists 198.18.43.2 -> tcp/8080"
    guest_config '["MANAGER"]' "$agents"
    wait_until 20 0.2 enforced || fail "not enforced after leaving audit mode"
    echo_server_stop
    peer_down

    # (e) Provisional apply rolled back, as an operator does it: the daemon stopped (its table
    # stays), `apply --confirm-within 3` of a changed config, never confirmed; the waiter (a
    # transient systemd unit) restores the table as it was. Then the daemon starts again.
    local keep provisional
    expect "systemctl stop" systemctl stop fwenforcerd
    keep=$(listing)
    sed 's/"198.18.43.2"/"198.18.43.2", "198.18.43.77"/' "$conf" > /tmp/fwe-prov-b.conf; chmod 600 /tmp/fwe-prov-b.conf
    t0=$(now)
    fwenforcerd apply --config /tmp/fwe-prov-b.conf --confirm-within 3 >> "$results/guest.log" 2>&1 || fail "provisional apply failed"
    nft list table $table | grep -q 198.18.43.77 || fail "the provisional change is not in the kernel"
    wait_until 30 0.2 bash -c "[[ \"\$(source $guest/lib.sh; listing)\" == \"\$1\" ]]" _ "$keep" \
        || fail "the provisional change was not rolled back within 30 s"
    t1=$(now)
    figure "provisional apply (3 s window) rolled back after $(elapsed "$t0" "$t1") s"
    expect "systemctl start" systemctl start fwenforcerd
    wait_until 20 0.2 enforced || fail "not enforced after the daemon started again"
    ok
}

check_connections() {
    begin 6 connections
    local t0 t1 hold=/tmp/fwe-hold
    peer_up
    echo_server_start 5671 8080
    probe 198.18.43.1 5671 || fail "the agent cannot reach the allowed port 5671 (IPv4)"
    probe fd00:43::1 5671 || fail "the agent cannot reach the allowed port 5671 (IPv6)"
    figure "agent -> 5671 allowed (IPv4, IPv6)"
    probe 198.18.43.1 8080 && fail "the agent reached 8080, which the catalog does not allow"
    probe fd00:43::1 8080 && fail "the agent reached 8080 over IPv6"
    figure "agent -> 8080 refused"

    # A held connection: pings every 0.1 s; it must stop once the agent leaves the group.
    : > "$hold"
    inns fwe-peer python3 "$guest/echo.py" hold 198.18.43.1 5671 "$hold" &
    local holder=$!
    wait_until 10 0.2 grep -q '^connected' "$hold" || fail "the held connection did not start"
    sleep 1
    grep -q '^stopped' "$hold" && fail "the held connection stopped before the change: $(cat "$hold")"
    t0=$(now)
    guest_config '["MANAGER"]' '"198.18.43.99"'
    wait_until 15 0.1 grep -q '^stopped' "$hold" || fail "the removed agent's connection still passes data 15 s after the change"
    t1=$(awk '/^stopped/ { print $2 }' "$hold")
    figure "removed agent's established connection stopped passing data $(elapsed "$t0" "$t1") s after the config write"
    kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
    guest_config '["MANAGER"]' "$agents"
    wait_until 20 0.2 enforced || fail "not enforced after restoring the agent"
    echo_server_stop
    peer_down
    ok
}
