#!/usr/bin/env bash
# Installs the Debian packages fwenforcer builds and tests with, only those not installed yet, so it
# is fast and offline when nothing is missing. Extra package names may be passed as arguments
# (e.g. `scripts/install-deps.sh systemd` for systemd-analyze, which the unit test uses if present).
#   nftables              nft, the independent auditor the tests compare the kernel with
#   libnftnl-dev libmnl-dev pkg-config   the CNftables module (pkg-config finds libnftnl)
#   iproute2              ip netns / veth for the kernel tests
#   python3 conntrack     the end-to-end probes (stdlib only) and conntrack -E, which catches leaks
#   prometheus-node-exporter   the textfile collector the metrics test has read the daemon's file
#                         (where systemd runs, installing it starts node_exporter on :9100)
set -euo pipefail

packages=(nftables libnftnl-dev libmnl-dev pkg-config iproute2 python3 conntrack prometheus-node-exporter "$@")

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
