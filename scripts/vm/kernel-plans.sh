#!/usr/bin/env bash
# Check 5's inputs, made on the host: for each built-in catalog a representative config (every role
# and group populated with IPv4 and IPv6 hosts and prefixes, every feature on, as the kernel
# round-trip tests use), and for each of its roles the plan in nft syntax, rendered by BINARY.
# The guest applies each config over netlink and loads each plan with nft -f, and compares.
#   scripts/vm/kernel-plans.sh BINARY OUTDIR    writes OUTDIR/CATALOG.conf and OUTDIR/CATALOG--ROLE.nft
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=$1 out=$2
mkdir -p "$out"

for file in Sources/Enforcer/Catalog/Data/*.toml; do
    catalog=$(basename "$file" .toml)
    python3 - "$file" > "$out/$catalog.conf" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    catalog = tomllib.load(f)
features = ", ".join('"%s"' % name for name in catalog.get("features", {}))
print('[host]\nroles = "auto"\ncatalog = "%s"\nfeatures = [%s]' % (catalog["catalog"]["name"], features))
print('[enforce]\nping = true\ndhcp_client = true\n[groups]')
for n, group in enumerate(list(catalog["roles"]) + list(catalog.get("groups", {})), start=1):
    print('%s = ["198.18.%d.1", "198.18.%d.2", "198.18.%d.128/25", "198.18.%d.130", "fd00:%d::1", "fd00:%d:1::/48"]'
          % (group, n, n, n, n, n, n))
EOF
    chmod 0600 "$out/$catalog.conf"
    for role in $(python3 -c 'import sys, tomllib; print(" ".join(tomllib.load(open(sys.argv[1], "rb"))["roles"]))' "$file"); do
        "$binary" plan --config "$out/$catalog.conf" --role "$role" > "$out/$catalog--$role.nft" 2>/dev/null
    done
done
