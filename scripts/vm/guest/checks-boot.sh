# Check 4: the firewall at boot, before the network, with roles = "auto" (sourced by run.sh).
# The image's ifupdown pre-up hook (/usr/local/sbin/fwe-vm-preup) records what nf_tables held at
# the moment eth0 was about to get its addresses; with roles = "auto" the daemon cannot know its
# roles then (they come from eth0's address), so what it holds is the fail-closed baseline.

boot_prepare() {
    guest_config '"auto"' "$agents"
    wait_until 20 0.2 enforced || fail "roles = \"auto\" is not enforced before the reboot"
    listing > "$state/ruleset-boot1"; cp "$state/ruleset-boot1" "$results/"
    [[ $(systemctl is-enabled fwenforcerd) == enabled ]] || fail "not enabled before the reboot"
    log "rebooting with roles = \"auto\""
}

# "A.BC s" from two monotonic µs stamps of this boot.
us_to_s() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1e6 }'; }

boot_first() {
    begin 4 boot
    local hook=/run/fwe-vm/preup-eth0 start_us ready_us net_us
    [[ -f $hook ]] || fail "the ifupdown pre-up hook did not run (no $hook)"
    grep -q '^table inet fwenforcer$' "$hook" || fail "no table in the kernel when eth0 came up: $(cat "$hook")"
    # The baseline (no valid plan yet) or the plan itself: either way a policy-drop input chain.
    grep -q 'policy drop' "$hook.table" || fail "the table at pre-up does not drop by default: $(head -20 "$hook.table")"
    if grep -q 'no valid plan yet' "$hook.table"; then
        echo "the fail-closed baseline" > "$state/preup-kind"
    elif grep -q 'AGENT_v4' "$hook.table"; then
        echo "the plan" > "$state/preup-kind"
    else
        fail "the table at pre-up is neither the baseline nor the plan: $(head -20 "$hook.table")"
    fi
    # systemd's own order: fwenforcerd active (READY=1) before networking.service started.
    ready_us=$(usec ActiveEnter)
    start_us=$(usec InactiveExit)
    net_us=$(systemctl show -p ExecMainStartTimestampMonotonic --value networking.service)
    [[ -n $net_us && $net_us != 0 ]] || net_us=$(systemctl show -p InactiveExitTimestampMonotonic --value networking.service)
    ((ready_us > 0 && ready_us <= net_us)) || fail "fwenforcerd was ready at $(us_to_s "$ready_us") s, networking started at $(us_to_s "$net_us") s"
    echo "start job at boot $(seconds_between "$start_us" "$ready_us") s (ready at $(us_to_s "$ready_us") s of boot, networking at $(us_to_s "$net_us") s), $(startup_breakdown)" > "$state/boot2-figures"
    wait_until 30 0.2 enforced || fail "after boot, roles = \"auto\" did not resolve to the plan"
    listing > "$state/ruleset-boot2"; cp "$state/ruleset-boot2" "$results/"
    cmp -s "$state/ruleset-boot1" "$state/ruleset-boot2" || fail "boot 2 enforces a different ruleset than boot 1 had: $(diff "$state/ruleset-boot1" "$state/ruleset-boot2" | head -5 | tr '\n' ' ')"
    log "boot 2: $(cat "$state/boot2-figures")"
}

boot_second() {
    begin 4 boot
    [[ -f /run/fwe-vm/preup-eth0 ]] && grep -q '^table inet fwenforcer$' /run/fwe-vm/preup-eth0 \
        || fail "second boot: no table in the kernel when eth0 came up"
    wait_until 30 0.2 enforced || fail "second boot: the plan is not enforced"
    listing > "$state/ruleset-boot3"; cp "$state/ruleset-boot3" "$results/"
    cmp -s "$state/ruleset-boot1" "$state/ruleset-boot3" || fail "the second boot enforces a different ruleset: $(diff "$state/ruleset-boot1" "$state/ruleset-boot3" | head -5 | tr '\n' ' ')"
    figure "table in the kernel before eth0 was configured on both boots (roles = \"auto\": $(cat "$state/preup-kind") at pre-up)"
    figure "$(cat "$state/boot2-figures")"
    figure "second boot: same ruleset, start job $(seconds_between "$(usec InactiveExit)" "$(usec ActiveEnter)") s"
    ok
}
