#!/usr/bin/env bash
# `make vm-test`: the package on a real Debian 12 guest under qemu. Builds (or reuses) the image
# (scripts/vm/build-image.sh), shares the .deb that `make deb` built and the checks
# (scripts/vm/guest/) over 9p, boots the guest three times in one qemu process (systemd as PID 1,
# Debian's kernel), and prints one line per check. On failure it prints the guest's journal and the
# end of the serial console. Software emulation (TCG): no KVM needed. The guest's only NIC is on a
# qemu hub with nothing else on it: no user-mode networking, no traffic leaves the guest.
#   scripts/vm/run.sh                  VM_TIMEOUT (s, default 1200) bounds the whole guest run
#   VM_CHECKS="1 5" scripts/vm/run.sh  only these checks (1, which installs the package, always runs)
#   VM_KERNEL_SUITE=bullseye scripts/vm/run.sh   Debian 11's kernel (5.10): check 8, the refusal
#   VM_KEEP=1                          keep .build-vm/run-*/ (serial log, journal, results) after a good run
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(tr -d ' \n' < VERSION)
arch=$(dpkg --print-architecture)
deb="out/fwenforcer_${version}_${arch}.deb"
[[ -f "$deb" ]] || { echo "vm-test: $deb is missing; run make deb" >&2; exit 1; }
for tool in qemu-system-x86_64 debootstrap mkfs.ext4 python3; do
    command -v "$tool" > /dev/null || { echo "vm-test: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
[[ $EUID == 0 ]] || { echo "vm-test: needs root (debootstrap, chroot)" >&2; exit 1; }

started=$SECONDS
# VM_KERNEL_SUITE=bullseye boots Debian 11's kernel (5.10) under the same userland: check 8 only.
kernel_suite=${VM_KERNEL_SUITE:-}
image=$(scripts/vm/build-image.sh "${VM_SUITE:-bookworm}" $kernel_suite)
built=$SECONDS

run=$(mktemp -d "$PWD/.build-vm/run-XXXXXX")
share="$run/share"
qemu_pid=""
cleanup() {
    if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    # Kept for a failed run (the serial log and journal are inside); removed after a good one.
    [[ ${keep_run:-1} == 1 ]] || rm -rf "$run"
}
trap cleanup EXIT
mkdir -p "$share/results" "$share/kernel"
if [[ -n $kernel_suite ]]; then default_checks=8; else default_checks="1 2 3 4 5 6 7"; fi
wanted=${VM_CHECKS:-$default_checks}
echo "$wanted" > "$share/checks-wanted"
cp -r scripts/vm/guest "$share/guest"
cp "$deb" "$share/fwenforcer.deb"
# Check 7's "rebuilt package": the same files under the next version, built here (dpkg-deb is fast
# on the host and slow under emulation).
repack="$run/repack"
dpkg-deb --raw-extract "$deb" "$repack"
sed -i "s/^Version: .*/Version: ${version}+vmtest1/" "$repack/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -z1 --build "$repack" "$share/fwenforcer-upgrade.deb" > /dev/null
# Check 5's plans, rendered here by the package's own binary: the guest loads them with nft -f.
scripts/vm/kernel-plans.sh "$repack/usr/sbin/fwenforcerd" "$share/kernel"
rm -rf "$repack"

serial="$run/serial.log"
echo "vm-test: booting $(cat "$image/kernel-release") under qemu (TCG); serial console: $serial" >&2
qemu-system-x86_64 \
    -name fwe-vm-test -machine pc -accel tcg,thread=multi -smp 2 -m 1536 \
    -nodefaults -no-user-config -display none -monitor none -serial "file:$serial" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=0 systemd.show_status=1" \
    -drive "file=$image/rootfs.ext4,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$share,mount_tag=fwe,security_model=none,id=fwe" \
    -netdev hubport,id=net0,hubid=0 -device virtio-net-pci,netdev=net0 \
    > "$run/qemu.log" 2>&1 &
qemu_pid=$!

timeout=${VM_TIMEOUT:-1200}
while kill -0 "$qemu_pid" 2>/dev/null; do
    if ((SECONDS - built > timeout)); then
        echo "vm-test: the guest did not finish within $timeout s; stopping qemu (pid $qemu_pid)" >&2
        break
    fi
    sleep 2
done
cleanup_status=0
kill -0 "$qemu_pid" 2>/dev/null && { kill "$qemu_pid" 2>/dev/null || true; cleanup_status=1; }
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""
finished=$SECONDS

checks="$share/results/checks.txt"
[[ -f $checks ]] && sort -k2,2n -s "$checks"
failed=0
for n in $wanted; do
    grep -q "^check $n ok " "$checks" 2>/dev/null || failed=1
done
[[ $(cat "$share/results/status" 2>/dev/null) == 0 ]] || failed=1
((cleanup_status == 0)) || failed=1
echo "vm-test: image $((built - started)) s, guest $((finished - built)) s, total $((finished - started)) s"
if ((failed)); then
    echo "vm-test: FAILED; the guest's journal:" >&2
    cat "$share/results/journal.txt" 2>/dev/null || echo "(no journal: the guest did not get that far)" >&2
    echo "--- guest check log ---" >&2
    cat "$share/results/guest.log" 2>/dev/null >&2 || true
    echo "--- last 60 lines of the serial console ($serial) ---" >&2
    tail -n 60 "$serial" >&2
    echo "vm-test: FAILED; everything is kept in $run" >&2
    exit 1
fi
[[ ${VM_KEEP:-} == 1 ]] && echo "vm-test: kept $run (VM_KEEP=1)" || keep_run=0
echo "vm-test: checks $wanted passed"
