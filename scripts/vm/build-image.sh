#!/usr/bin/env bash
# `make vm-test`, step 1: the Debian guest's kernel, initramfs and root file system image, built with
# debootstrap (no loop mount, no root-only tool beyond chroot) and cached under .build-vm/ by a hash
# of everything that goes into it: this script, the suite, the mirror and the package list. A fresh
# machine builds it from scratch (about 2 minutes); afterwards it is reused until an input changes.
#   scripts/vm/build-image.sh [SUITE [KERNEL_SUITE]]   prints the image directory (vmlinuz, initrd.img,
#                                   rootfs.ext4); KERNEL_SUITE: boot that suite's kernel instead (bullseye: 5.10)
# What is tested (the .deb, the checks) is not in the image: it comes in over the 9p share at boot.
set -euo pipefail
cd "$(dirname "$0")/../.."

suite=${1:-bookworm}
kernel_suite=${2:-}
mirror=${VM_MIRROR:-http://deb.debian.org/debian}
# Minimal on purpose: what a small Debian VM has (systemd as PID 1, udev, ifupdown, nftables) plus
# python3-minimal for the connection probes. Not procps: `systemctl reload` must not need /bin/kill.
packages=systemd,systemd-sysv,dbus,udev,kmod,linux-image-amd64,initramfs-tools,nftables,libnftnl11,libmnl0
packages+=,iproute2,ifupdown,python3-minimal

hash=$( { cat "$0"; echo "$suite $kernel_suite $mirror $packages"; } | sha256sum | cut -c1-16)
cache=.build-vm
name=$suite${kernel_suite:+-kernel-$kernel_suite}
image="$cache/image-$name-$hash"
if [[ -f "$image/complete" ]]; then
    echo "$image"
    exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$PWD/$cache/work-$name-XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
started=$SECONDS
echo "vm: building the $name image (debootstrap from $mirror) into $image" >&2
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" > "$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    echo "vm: debootstrap failed (log above)" >&2
    exit 1
fi

# --- the guest's configuration ------------------------------------------------------------------
echo fwe-guest > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 fwe-guest\n::1 localhost\n' > "$root/etc/hosts"
# The root is the only disk (-snapshot: writes go to a throwaway overlay); the 9p share carries the
# package and the checks in and the results out. nofail: a guest without it still boots to a shell.
cat > "$root/etc/fstab" <<'EOF'
/dev/vda  /         ext4  rw,errors=remount-ro  0 1
fwe       /mnt/fwe  9p    trans=virtio,version=9p2000.L,msize=1048576,nofail,x-systemd.requires=systemd-modules-load.service  0 0
EOF
mkdir -p "$root/mnt/fwe"
printf '9p\n9pnet_virtio\n' > "$root/etc/modules-load.d/fwe-vm.conf"

# One NIC, configured by ifupdown (networking.service, ordered after network-pre.target). Its
# pre-up hook records whether a table was in the kernel at the moment the interface came up:
# check 4's evidence that the firewall was there first.
cat > "$root/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 198.18.42.2/24
    pre-up /usr/local/sbin/fwe-vm-preup $IFACE
iface eth0 inet6 static
    address fd00:42::2/64
EOF
mkdir -p "$root/usr/local/sbin"
cat > "$root/usr/local/sbin/fwe-vm-preup" <<'EOF'
#!/bin/sh
# ifupdown pre-up hook: what nf_tables held when this interface was about to get its addresses.
mkdir -p /run/fwe-vm
{ echo "uptime $(cut -d' ' -f1 /proc/uptime)"; nft list tables 2>&1; } > "/run/fwe-vm/preup-$1"
nft list table inet fwenforcer > "/run/fwe-vm/preup-$1.table" 2>&1 || true
EOF
chmod 0755 "$root/usr/local/sbin/fwe-vm-preup"

# The checks run as a service once the boot is done; the script comes from the share, so changing
# a check does not rebuild the image.
cat > "$root/etc/systemd/system/fwe-vm-check.service" <<'EOF'
[Unit]
Description=fwenforcer VM checks (from the 9p share)
After=multi-user.target
RequiresMountsFor=/mnt/fwe
ConditionPathExists=/mnt/fwe/guest/run.sh

[Service]
Type=oneshot
ExecStart=/bin/bash /mnt/fwe/guest/run.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/fwe-vm-check.service "$root/etc/systemd/system/multi-user.target.wants/fwe-vm-check.service"
# Nothing else competes for the emulated CPU: no apt timers, no getty waiting on a console nobody uses.
for unit in apt-daily.timer apt-daily-upgrade.timer getty@tty1.service serial-getty@ttyS0.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# The journal on disk (the overlay), so a failed check can print every boot's journal.
mkdir -p "$root/var/log/journal"

# A small initramfs: only what mounts the root (virtio disk, ext4); the rest loads from the root.
printf 'MODULES=list\n' > "$root/etc/initramfs-tools/conf.d/fwe-vm.conf"
printf 'virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n' >> "$root/etc/initramfs-tools/modules"
for fs in proc sys dev; do mount --bind "/$fs" "$root/$fs"; done
umount_all() { for fs in dev sys proc; do umount "$root/$fs" 2>/dev/null || true; done; }
trap 'umount_all; rm -rf "$work"' EXIT
release=$(ls "$root/lib/modules")
if [[ -n $kernel_suite ]]; then
    # The older suite's kernel package (its linux-image-amd64 names it) beside the suite's own.
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    echo "deb $mirror $kernel_suite main" > "$root/etc/apt/sources.list.d/fwe-kernel.list"
    { chroot "$root" apt-get update -qq && chroot "$root" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends --allow-downgrades "linux-image-amd64/$kernel_suite"; } \
        > "$work/kernel.log" 2>&1 || { tail -n 30 "$work/kernel.log" >&2; exit 1; }
    rm "$root/etc/apt/sources.list.d/fwe-kernel.list"
    release=$(chroot "$root" dpkg-query -W -f '${Depends}' linux-image-amd64 | sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')
    [[ -n $release && -e "$root/boot/vmlinuz-$release" ]] || { echo "vm: no $kernel_suite kernel found ($release)" >&2; exit 1; }
fi
chroot "$root" update-initramfs -u -k all > "$work/initramfs.log" 2>&1 || { cat "$work/initramfs.log" >&2; exit 1; }
chroot "$root" apt-get clean
umount_all

mkdir -p "$work/image"
cp "$root/boot/vmlinuz-$release" "$work/image/vmlinuz"
cp "$root/boot/initrd.img-$release" "$work/image/initrd.img"
echo "$release" > "$work/image/kernel-release"
# 2 GiB sparse; the system takes about 500 MB.
truncate -s 2G "$work/image/rootfs.ext4"
mkfs.ext4 -q -L fwe-root -d "$root" "$work/image/rootfs.ext4"
echo "$suite $kernel_suite $mirror $packages" > "$work/image/inputs"
touch "$work/image/complete"

# Older images of the same name are stale: keep the cache to one image per suite and kernel.
rm -rf "$cache/image-$name"-????????????????
mv "$work/image" "$image"
echo "vm: $name image built in $((SECONDS - started)) s (kernel $(cat "$image/kernel-release"))" >&2
echo "$image"
