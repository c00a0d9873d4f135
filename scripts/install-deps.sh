#!/usr/bin/env bash
# Installs the Debian packages fwenforcer builds and tests with, only those not installed yet, so it
# is fast and offline when nothing is missing. Extra package names may be passed as arguments.
#   nftables              nft, the independent auditor the tests compare the kernel with
#   libnftnl-dev libmnl-dev pkg-config   the CNftables module (pkg-config finds libnftnl)
#   iproute2              ip netns / veth for the kernel tests
#   python3 conntrack     the end-to-end probes (stdlib only) and conntrack -E, which catches leaks
#   prometheus-node-exporter   the textfile collector the metrics test has read the daemon's file
#                         (where systemd runs, installing it starts node_exporter on :9100)
#   dpkg-dev              `make deb`: dpkg-shlibdeps computes the package's Depends from the binary
#   systemd               systemd-analyze, which verifies the units (the package's, the etcd watcher's)
#   etcd-server etcd-client   the etcd fleet example's test runs a real etcd on loopback (random ports,
#                         its own data directory) and the watcher drives etcdctl. Installing etcd-server
#                         on a systemd machine also enables Debian's etcd.service on 2379; the tests
#                         do not use it.
#   ansible-core          the Ansible fleet example's test runs ansible-playbook against localhost
#   iptables              iptables-nft (Debian's iptables): the container tests write the rules Docker writes
#   python3-venv          `make fuzz` (and make test's short pass) installs atheris from PyPI into a venv
#   time                  GNU time: `make bench` takes the peak RSS of nft and fwenforcerd apply from it
#   graphviz chromium     `check --topology --format dot|html`: the diagram tests lay the DOT out with dot
#                         and open the HTML page in headless chromium (DOM and screenshot)
#   fonts-dejavu-core     a font for dot's labels and chromium's screenshot
#   qemu-system-x86 debootstrap   `make vm-test`: a Debian 12 guest image built with debootstrap, booted
#                         under qemu (software emulation: no KVM needed) with a 9p share for results
set -euo pipefail

packages=(nftables libnftnl-dev libmnl-dev pkg-config iproute2 python3 conntrack prometheus-node-exporter
          dpkg-dev systemd etcd-server etcd-client ansible-core iptables python3-venv time
          graphviz chromium fonts-dejavu-core qemu-system-x86 debootstrap "$@")

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query --show --showformat='${db:Status-Status}' "$package" 2>/dev/null || true)
    [[ "$status" == installed ]] || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0

if ! command -v apt-get >/dev/null; then
    echo "install-deps: missing ${missing[*]}; this is not a Debian-like system, install them with its package manager" >&2
    exit 1
fi
sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "install-deps: missing ${missing[*]}; run as root to install them" >&2; exit 1; }
    sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
