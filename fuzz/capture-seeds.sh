#!/usr/bin/env bash
# Records the netlink seeds of fuzz/corpus/ from the running kernel (fuzz/README.md): root, in a
# network namespace of its own that it deletes again; the machine's own firewall is not touched.
#   fuzz/capture-seeds.sh FWENFORCERD
# netlink-dump/: the read-back of tables fwenforcerd applied (enforce and audit modes, with and
# without the sample's groups), and one with an operator's foreign rule and set in it.
# nflog/: nfnetlink_log datagrams of TCP, UDP and ICMP over IPv4 and IPv6, one packet and several.
set -euo pipefail
cd "$(dirname "$0")/.."
fwenforcerd=$(realpath "$1")
ns="fwe-fuzzseeds-$$"
work=$(mktemp -d /tmp/fwe-fuzzseeds.XXXXXX)
cleanup() { ip netns delete "$ns" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
mkdir -p fuzz/corpus/netlink-dump fuzz/corpus/nflog

# One config file per variant of the sample, mode 600 as fwenforcerd demands.
variant() {
    install -m 0600 /dev/stdin "$work/$1.conf"
    in_ns "$fwenforcerd" apply --config "$work/$1.conf" >/dev/null
    in_ns fuzz/capture.py dump fwenforcer "fuzz/corpus/netlink-dump/$1.bin"
    in_ns nft delete table inet fwenforcer
}
variant sample-cco < etc/fwenforcer.conf
sed -e 's/^ingress = "enforce"/ingress = "audit"/' -e 's/^egress = "enforce"/egress = "audit"/' \
    -e 's/^ping = false/ping = true/' -e 's/^dhcp_client = false/dhcp_client = true/' etc/fwenforcer.conf | variant audit-ping-dhcp
sed -e 's/^roles = \["CCO"\]/roles = ["AMQP", "MON"]/' -e 's/^log_drops = true/log_drops = false/' etc/fwenforcer.conf | variant amqp-mon
sed -n '/^\[groups\]/q;p' etc/fwenforcer.conf | variant no-groups

# The sample's table with what an operator may add by hand: fwenforcerd's read-back refuses it
# as unrepresentable, and the decoder must get there without trapping.
install -m 0600 etc/fwenforcer.conf "$work/foreign.conf"
in_ns "$fwenforcerd" apply --config "$work/foreign.conf" >/dev/null
in_ns nft -f - <<'NFT'
add set inet fwenforcer operator_ports { type inet_service; flags interval; elements = { 1000-2000, 9090 } }
insert rule inet fwenforcer input tcp dport @operator_ports ct state new counter accept comment "operator"
insert rule inet fwenforcer input ip saddr 198.18.7.0/24 udp dport { 53, 123 } accept
add rule inet fwenforcer output meta mark 0x2a ip6 daddr fd00:7::/64 reject
NFT
in_ns fuzz/capture.py dump fwenforcer fuzz/corpus/netlink-dump/foreign-rules.bin
in_ns nft delete table inet fwenforcer

# NFLOG: a log rule on output, as audit mode writes it; loopback traffic of each kind.
in_ns nft -f - <<'NFT'
table inet fwe_fuzzseeds {
    chain output {
        type filter hook output priority 0; policy accept;
        meta l4proto { tcp, udp, icmp, ipv6-icmp } log prefix "fwenforcer out audit: " group 6600 snaplen 128
    }
}
NFT
count=16
in_ns fuzz/capture.py nflog 6600 "$work" "$count" > "$work/capture.log" &
capture=$!
for _ in $(seq 50); do grep -q bound "$work/capture.log" 2>/dev/null && break; sleep 0.1; done
# Each kind its own datagram: the receiver's configuration flushes after 1/10 s.
in_ns ping -c 1 -W 1 127.0.0.1 >/dev/null || true
sleep 0.3
in_ns ping -6 -c 1 -W 1 ::1 >/dev/null || true
for family in INET INET6; do
    for kind in DGRAM STREAM; do
        sleep 0.3
        in_ns python3 -c "
import socket
host = '127.0.0.1' if socket.AF_$family == socket.AF_INET else '::1'
s = socket.socket(socket.AF_$family, socket.SOCK_$kind)
s.settimeout(1)
try:
    s.sendto(b'fwenforcer', (host, 5353)) if socket.SOCK_$kind == socket.SOCK_DGRAM else s.connect((host, 8443))
except OSError:
    pass
"
    done
done
sleep 0.3
# A burst the kernel batches into one datagram.
in_ns ping -c 8 -i 0.002 -W 1 127.0.0.1 >/dev/null || true
wait "$capture"
for datagram in "$work"/datagram-*.bin; do
    cp "$datagram" "fuzz/corpus/nflog/loopback-${datagram##*/datagram-}"
done
ls -l fuzz/corpus/netlink-dump fuzz/corpus/nflog
