#!/bin/bash
# Runs inside the guest, at the end of every boot (fwe-vm-check.service), from the 9p share that
# scripts/vm/run.sh prepared. Three boots, one qemu process (-snapshot keeps the disk across a
# guest reboot):
#   boot 1: checks 1 (package), 2 (unit), 3 (watchdog), 5 (kernel), 6 (connections); then the config
#           becomes roles = "auto" and the guest reboots;
#   boot 2: check 4's first half: the table (or the fail-closed baseline) was in the kernel before
#           ifupdown configured eth0; reboot;
#   boot 3: check 4's second half (the same ruleset after a second boot), check 7 (upgrade, remove,
#           purge); power off.
# On an older suite's kernel (VM_KERNEL_SUITE=bullseye) only check 8 runs: the kernel is refused.
set -uo pipefail
guest=/mnt/fwe/guest
source "$guest/lib.sh"
source "$guest/checks-unit.sh"
source "$guest/checks-kernel.sh"
source "$guest/checks-boot.sh"
source "$guest/checks-old-kernel.sh"

# A script that dies between checks (a bash error) must not leave the host waiting for its
# timeout: any exit that is neither a reboot for the next boot nor finish() fails the run.
handled=0
trap 'rc=$?; if ((handled == 0)); then check_number=0; check_name=guest; handled=1; fail "run.sh ended unexpectedly (exit $rc)"; fi' EXIT

state=/var/lib/fwe-vm
mkdir -p "$state" "$results"
boot=$(( $(cat "$state/boot" 2>/dev/null || echo 0) + 1 ))
echo "$boot" > "$state/boot"
log "boot $boot of 3: $(uname -r), systemd $(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p'), up $(now) s"

# What must hold in every check: the guest talks to nobody but its own namespaces.
ip -o addr show > "$results/addresses-boot$boot.txt"

# VM_CHECKS on the host picks checks (for working on one); 1 always runs: it installs the package.
want() { grep -qw "$1" "$share/checks-wanted" 2>/dev/null; }

case $boot in
    1)
        # An older suite's kernel (VM_KERNEL_SUITE): only the refusal check.
        if want 8; then check_old_kernel; finish 0; fi
        check_package
        want 2 && check_unit
        want 3 && check_watchdog
        want 5 && check_kernel
        want 6 && check_connections
        want 4 || want 7 || finish 0
        boot_prepare
        sync
        handled=1
        systemctl reboot --no-block
        ;;
    2)
        want 4 && boot_first
        sync
        handled=1
        systemctl reboot --no-block
        ;;
    3)
        want 4 && boot_second
        want 7 && check_upgrade
        finish 0
        ;;
    *)
        check_number=0; check_name="boots"
        fail "unexpected boot $boot (a check rebooted the guest?)"
        ;;
esac
