# Checks 1, 2, 3 and 7: the package and the unit as systemd runs them (sourced by run.sh).

deb=$share/fwenforcer.deb
upgrade_deb=$share/fwenforcer-upgrade.deb

# The guest's own config: a Cloudify manager (this host, eth0's addresses) whose agents are the
# peer namespace of check 6. ROLES is ["MANAGER"] or "auto"; AGENTS the agents' addresses;
# INGRESS "enforce" or "audit".
guest_config() { # guest_config ROLES AGENTS [INGRESS]
    write_config <<EOF
[host]
roles = $1
catalog = "cloudify"

[enforce]
ingress = "${3:-enforce}"
egress = "enforce"

[groups]
MANAGER = ["198.18.42.2", "fd00:42::2"]
AGENT = [$2]
admin_ssh = ["198.19.0.0/24", "fd00:19::/64"]
EOF
}
agents='"198.18.43.2", "fd00:43::2"'

# Monotonic timestamps (µs) of the unit, as systemd saw them.
usec() { prop "$1TimestampMonotonic"; }
seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e6 }'; }

check_package() {
    begin 1 package
    local t0 t1 start_job ready
    t0=$(now)
    expect "dpkg -i" dpkg -i "$deb"
    t1=$(now)
    figure "dpkg -i $(elapsed "$t0" "$t1") s"
    [[ $(systemctl is-enabled fwenforcerd) == enabled ]] || fail "the unit is not enabled after dpkg -i"
    # postinst started it; with no config the condition fails and the start is skipped, not failed.
    [[ $(prop ConditionResult) == no ]] || fail "the start without a config was not skipped (ConditionResult $(prop ConditionResult))"
    [[ $(prop ActiveState) == inactive ]] || fail "the unit is $(prop ActiveState) without a config"
    [[ -z $(nft list tables) ]] || fail "a table exists before any config: $(nft list tables)"
    figure "enabled, start skipped without a config"

    guest_config '["MANAGER"]' "$agents"
    t0=$(now)
    timeout 120 systemctl start fwenforcerd || fail "systemctl start failed: $(systemctl status fwenforcerd --no-pager 2>&1 | tail -5)"
    t1=$(now)
    [[ $(prop ActiveState) == active ]] || fail "not active after start"
    enforced || fail "started, but the kernel does not hold the plan"
    start_job=$(elapsed "$t0" "$t1")
    ready=$(seconds_between "$(usec ExecMainStart)" "$(usec ActiveEnter)")
    figure "start job $start_job s (exec to READY=1 $ready s)"
    # Where the start goes: the process's own start-up (to its first log line) and the first apply.
    figure "$(startup_breakdown)"
    ok
}

# "process start-up X s, plan and first apply Y s" from the journal's monotonic stamps.
startup_breakdown() {
    local exec_us first_us ready_us
    exec_us=$(usec ExecMainStart)
    ready_us=$(usec ActiveEnter)
    first_us=$(journalctl -u fwenforcerd -b -o json --output-fields=__MONOTONIC_TIMESTAMP,MESSAGE --no-pager 2>/dev/null \
        | grep 'fwenforcerd starting' | tail -1 | sed -n 's/.*"__MONOTONIC_TIMESTAMP":"\([0-9]*\)".*/\1/p')
    [[ -n $first_us ]] || { echo "start-up breakdown unavailable"; return; }
    echo "process start-up $(seconds_between "$exec_us" "$first_us") s, plan and first apply $(seconds_between "$first_us" "$ready_us") s"
}

check_unit() {
    begin 2 unit
    local pid status score m t0 t1 t2
    pid=$(prop MainPID)
    status=/proc/$pid/status
    # CAP_NET_ADMIN is capability 12: bit 0x1000, and nothing else, in the effective and bounding sets.
    [[ $(awk '/^CapEff:/ { print $2 }' "$status") == 0000000000001000 ]] || fail "CapEff $(awk '/^CapEff:/ { print $2 }' "$status")"
    [[ $(awk '/^CapBnd:/ { print $2 }' "$status") == 0000000000001000 ]] || fail "CapBnd $(awk '/^CapBnd:/ { print $2 }' "$status")"
    [[ $(awk '/^NoNewPrivs:/ { print $2 }' "$status") == 1 ]] || fail "NoNewPrivs is not set"
    [[ $(awk '/^Seccomp:/ { print $2 }' "$status") == 2 ]] || fail "no seccomp filter (Seccomp: $(awk '/^Seccomp:/ { print $2 }' "$status"))"
    figure "CapEff=CAP_NET_ADMIN, NoNewPrivs, seccomp filter"
    score=$(systemd-analyze security fwenforcerd --no-pager 2>/dev/null | sed -n 's/.*Overall exposure level for fwenforcerd.service: \([0-9.]*\).*/\1/p')
    [[ -n $score ]] || fail "systemd-analyze security printed no exposure level"
    awk -v s="$score" 'BEGIN { exit !(s <= 1.6) }' || fail "exposure $score is above 1.6"
    figure "systemd-analyze security $score"

    # systemctl reload: ExecReload goes through fwenforcerd itself (no /bin/kill on a minimal Debian).
    [[ ! -e /bin/kill ]] || log "  note: /bin/kill exists on this guest"
    m=$(mark)
    t0=$(now)
    timeout 60 systemctl reload fwenforcerd || fail "systemctl reload failed: $(since_mark "$m" | tail -3)"
    t1=$(now)
    wait_until 30 0.1 bash -c "journalctl -u fwenforcerd --after-cursor '$m' -o cat | grep -q 'reconcile (SIGHUP)'" \
        || fail "no 'reconcile (SIGHUP)' logged after systemctl reload"
    t2=$(now)
    [[ $(prop MainPID) == "$pid" ]] || fail "reload restarted the daemon"
    figure "reload $(elapsed "$t0" "$t1") s (reconcile logged after $(elapsed "$t0" "$t2") s)"

    systemctl status fwenforcerd --no-pager 2>&1 | grep -q '^ *Status: "' || fail "systemctl status shows no Status: line"
    figure "status: $(systemctl status fwenforcerd --no-pager | sed -n 's/^ *Status: "\(.*\)"$/\1/p' | cut -c1-60)"

    # Priorities: a foreign rule in the table is drift, logged as a warning; the reconcile that
    # repairs it is not.
    # (Counted over the boot: journalctl 252 shows nothing for --after-cursor together with -p.)
    local drifts
    drifts=$(priority_count warning '^drift: ')
    nft add rule $table input tcp dport 4444 accept
    wait_until 10 0.1 enforced || fail "the foreign rule was not removed"
    wait_until 10 0.2 bash -c "(( \$(journalctl -b -u fwenforcerd -p warning -o cat | grep -c '^drift: ') > $drifts ))" \
        || fail "journalctl -p warning does not show the drift warning: $(journalctl -b -u fwenforcerd -o cat | tail -3)"
    (( $(priority_count warning '^reconcile (') == 0 )) || fail "a reconcile line is logged at warning priority or above"
    (( $(priority_count info '^reconcile (drift repair)') > 0 )) || fail "the repairing reconcile is not in the journal at info priority"
    figure "journal priorities: drift at warning, reconcile at notice/info"
    ok
}

check_watchdog() {
    begin 3 watchdog
    local pid before t0 t1 n=0 changed=0
    before=$(listing)
    pid=$(prop MainPID)
    t0=$(now)
    kill -STOP "$pid"
    # Meanwhile the ruleset stays in the kernel, unchanged (nothing repairs it, nothing removes it).
    until [[ $(prop MainPID) != "$pid" && $(prop ActiveState) == active ]]; do
        [[ $(listing) == "$before" ]] || changed=1
        n=$((n + 1))
        awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 120) }' && fail "no restart 120 s after SIGSTOP"
        sleep 1
    done
    t1=$(now)
    ((changed == 0)) || fail "the ruleset changed while the daemon was stopped"
    enforced || fail "the restarted daemon does not enforce the plan"
    [[ $(prop NRestarts) -ge 1 ]] || fail "NRestarts $(prop NRestarts)"
    figure "SIGSTOP: restarted after $(elapsed "$t0" "$t1") s (WatchdogSec=30 counts from the last ping, sent every 15 s; RestartSec=2), ruleset unchanged in $n probes"

    pid=$(prop MainPID)
    t0=$(now)
    kill -KILL "$pid"
    wait_until 120 0.2 bash -c "[[ \$(systemctl show -p MainPID --value fwenforcerd) != $pid && \$(systemctl show -p ActiveState --value fwenforcerd) == active ]]" \
        || fail "no restart 120 s after SIGKILL"
    t1=$(now)
    [[ $(listing) == "$before" ]] || fail "the ruleset after the SIGKILL restart differs"
    enforced || fail "half-applied state after SIGKILL: the kernel does not hold the plan"
    figure "SIGKILL: restarted after $(elapsed "$t0" "$t1") s, the same ruleset"
    ok
}

check_upgrade() {
    begin 7 upgrade-remove-purge
    local before gaps=/tmp/fwe-gaps probes=/tmp/fwe-probes watcher pid t0 t1 version
    enforced || fail "not enforced before the upgrade"
    before=$(listing)
    pid=$(prop MainPID)
    version=$(dpkg-query -W -f '${Version}' fwenforcer)
    # A watcher reads the table as fast as nft can while dpkg works: no probe may find it missing.
    : > "$gaps"; : > "$probes"
    ( while :; do nft list table $table > /dev/null 2>&1 || echo "$(now)" >> "$gaps"; echo . >> "$probes"; done ) &
    watcher=$!
    t0=$(now)
    dpkg -i "$upgrade_deb" >> "$results/guest.log" 2>&1 || { kill "$watcher"; fail "dpkg -i of the rebuilt package failed"; }
    t1=$(now)
    wait_until 60 0.2 bash -c "[[ \$(systemctl show -p ActiveState --value fwenforcerd) == active ]]" || { kill "$watcher"; fail "not active after the upgrade"; }
    sleep 1
    kill "$watcher"; wait "$watcher" 2>/dev/null
    [[ -s $gaps ]] && fail "the table was missing during the upgrade at uptime $(head -1 "$gaps") ($(wc -l < "$gaps") probes)"
    [[ $(prop MainPID) != "$pid" ]] || fail "the upgrade did not restart the daemon"
    enforced || fail "not enforced after the upgrade"
    figure "upgrade $version -> $(dpkg-query -W -f '${Version}' fwenforcer) in $(elapsed "$t0" "$t1") s, daemon restarted, table present in all $(wc -l < "$probes") probes"

    dpkg -r fwenforcer >> "$results/guest.log" 2>&1 || fail "dpkg -r failed"
    [[ $(systemctl show -p ActiveState --value fwenforcerd) != active ]] || fail "still running after remove"
    [[ $(listing) == "$before" ]] || fail "remove changed or removed the enforced table"
    [[ -f $conf ]] || fail "remove deleted the config"
    figure "remove: daemon stopped, table stays enforced"
    dpkg -P fwenforcer >> "$results/guest.log" 2>&1 || fail "dpkg -P failed"
    [[ -f $conf ]] || fail "purge deleted the config"
    [[ ! -e /etc/systemd/system/sysinit.target.wants/fwenforcerd.service ]] || fail "purge left the unit enabled"
    figure "purge: config kept, enablement gone"
    ok
}
