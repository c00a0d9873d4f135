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
set -uo pipefail
guest=/mnt/fwe/guest
source "$guest/lib.sh"
source "$guest/checks-unit.sh"
source "$guest/checks-kernel.sh"
source "$guest/checks-boot.sh"

state=/var/lib/fwe-vm
mkdir -p "$state" "$results"
boot=$(( $(cat "$state/boot" 2>/dev/null || echo 0) + 1 ))
echo "$boot" > "$state/boot"
log "boot $boot of 3: $(uname -r), systemd $(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p'), up $(now) s"

# What must hold in every check: the guest talks to nobody but its own namespaces.
ip -o addr show > "$results/addresses-boot$boot.txt"

case $boot in
    1)
        check_package
        check_unit
        check_watchdog
        check_kernel
        check_connections
        boot_prepare
        sync
        systemctl reboot --no-block
        ;;
    2)
        boot_first
        sync
        systemctl reboot --no-block
        ;;
    3)
        boot_second
        check_upgrade
        finish 0
        ;;
    *)
        check_number=0; check_name="boots"
        fail "unexpected boot $boot (a check rebooted the guest?)"
        ;;
esac
