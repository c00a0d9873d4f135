# Check 8, only on an older suite's kernel (VM_KERNEL_SUITE=bullseye: Debian 11's 5.10 under the
# same bookworm userland): fwenforcerd refuses the kernel at start, naming what it lacks, and with
# the refusal overridden shows why (sourced by run.sh).

check_old_kernel() {
    begin 8 old-kernel
    local out m
    expect "dpkg -i" dpkg -i "$deb"
    guest_config '["MANAGER"]' "$agents"
    # The unit: the start fails, and the journal says why.
    m=$(mark)
    timeout 120 systemctl start fwenforcerd && fail "systemctl start succeeded on kernel $(uname -r)"
    since_mark "$m" | grep -q "is too old for fwenforcer" || fail "no refusal in the journal: $(since_mark "$m" | tail -3)"
    since_mark "$m" | grep -q "NFTA_TABLE_USERDATA" || fail "the refusal does not name table userdata: $(since_mark "$m" | grep 'too old')"
    [[ -z $(nft list tables) ]] || fail "a table was created on a refused kernel"
    figure "systemctl start refused: $(since_mark "$m" | grep -o 'kernel [^ ]* is too old[^;]*' | head -1)"
    systemctl reset-failed fwenforcerd 2>/dev/null
    # The command line: apply refuses in the same words.
    ns fwe-old
    out=$(inns fwe-old fwenforcerd apply --config "$conf" 2>&1) && fail "apply succeeded on kernel $(uname -r)"
    grep -q "is too old for fwenforcer (needs 5.13 or later)" <<<"$out" || fail "apply: $out"
    figure "apply refused, exit 1"

    # What the refusal is for: on a kernel without table userdata the ownership marker is dropped
    # without an error and the next apply finds an unmarked table it must not adopt. Overridden,
    # this shows whether this kernel has the feature despite its version (a backport).
    local first second
    first=$(FWENFORCERD_IGNORE_KERNEL_VERSION=1 inns fwe-old fwenforcerd apply --config "$conf" 2>&1); local s1=$?
    second=$(FWENFORCERD_IGNORE_KERNEL_VERSION=1 inns fwe-old fwenforcerd apply --config "$conf" 2>&1); local s2=$?
    log "  overridden apply 1 (exit $s1): $first"
    log "  overridden apply 2 (exit $s2): $second"
    log "  table: $(inns fwe-old nft list table $table 2>&1 | head -3 | tr '\n' ' ')"
    local marker="dropped by the kernel"
    inns fwe-old nft list table $table 2>/dev/null | grep -q '^	comment "managed by fwenforcerd' && marker="kept by the kernel"
    figure "overridden: the ownership marker (table userdata) is $marker; first apply exit $s1, second apply exit $s2 ($(tail -1 <<<"$second" | cut -c1-100))"

    # The rest of check 5's kernel comparison, overridden, for the record.
    local n=0 same=0 plan catalog role
    for plan in "$share"/kernel/*.nft; do
        catalog=$(basename "$plan" .nft); role=${catalog#*--}; catalog=${catalog%%--*}
        install -m 0600 "$share/kernel/$catalog.conf" "/tmp/fwe-$catalog.conf"
        ns fwe-ours; ns fwe-nft
        FWENFORCERD_IGNORE_KERNEL_VERSION=1 inns fwe-ours fwenforcerd apply --config "/tmp/fwe-$catalog.conf" --role "$role" > /dev/null 2>&1
        inns fwe-nft nft -f "$plan" 2> /dev/null
        n=$((n + 1))
        diff -q <(inns fwe-ours nft list table $table 2>&1) <(inns fwe-nft nft list table $table 2>&1) > /dev/null && same=$((same + 1))
    done
    ip netns del fwe-ours; ip netns del fwe-nft; ip netns del fwe-old
    figure "overridden: $same of $n roles list as nft -f does on $(uname -r)"
    ok
}
