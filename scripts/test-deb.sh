#!/usr/bin/env bash
# `make test-deb` (and `make test`): checks the package `make deb` built. It inspects it with
# dpkg-deb, installs it with `dpkg --root` into a throwaway root (own dpkg database; maintainer
# scripts run chrootless with DPKG_ROOT set, which deb-systemd-helper honours), runs the installed
# binary, verifies the installed unit with systemd-analyze, then removes and purges it. The
# machine's own dpkg database, /etc and services are never touched (checked at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(tr -d ' \n' < VERSION)
arch=$(dpkg --print-architecture)
deb="$PWD/out/fwenforcer_${version}_${arch}.deb"
[[ -f "$deb" ]] || { echo "test-deb: $deb is missing; run make deb" >&2; exit 1; }

failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
expect() { # expect DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

root=$(mktemp -d /tmp/fwe-deb-root.XXXXXX)
scratch=$(mktemp -d /tmp/fwe-deb-scratch.XXXXXX)
trap 'rm -rf "$root" "$scratch"' EXIT
host_enabled_before=$(ls -l /etc/systemd/system/sysinit.target.wants/fwenforcerd.service 2>&1 || true)

# --- the archive -------------------------------------------------------------------------------
info=$(dpkg-deb --info "$deb")
field() { dpkg-deb --field "$deb" "$1"; }
expect "Package: fwenforcer" [ "$(field Package)" = fwenforcer ]
expect "Version: $version (from VERSION)" [ "$(field Version)" = "$version" ]
expect "Architecture: $arch" [ "$(field Architecture)" = "$arch" ]
depends=$(field Depends)
for lib in libc6 libnftnl11 libmnl0 libstdc++6; do
    expect "Depends names $lib ($depends)" grep -q "\b$lib\b" <<<"$depends"
done
expect "no Swift runtime dependency (static stdlib)" bash -c "! grep -qi swift <<<'$depends'"
for script in postinst prerm postrm md5sums; do
    expect "control member $script" grep -q " $script\b" <<<"$info"
done

contents=$(dpkg-deb --contents "$deb")
# Each expected path with its mode; everything root-owned.
while read -r mode path; do
    line=$(awk -v p="./$path" '$6 == p' <<<"$contents")
    expect "$path $mode root/root" bash -c "[[ '$line' == '$mode root/root '* ]]"
done <<'LIST'
-rwxr-xr-x usr/sbin/fwenforcerd
-rw-r--r-- lib/systemd/system/fwenforcerd.service
-rw-r--r-- usr/share/fwenforcer/catalogs/cloudcenter.toml
-rw-r--r-- usr/share/fwenforcer/catalogs/cloudify.toml
-rw-r--r-- usr/share/man/man8/fwenforcerd.8.gz
-rw-r--r-- usr/share/bash-completion/completions/fwenforcerd
-rw-r--r-- usr/share/zsh/vendor-completions/_fwenforcerd
-rw-r--r-- usr/share/fish/vendor_completions.d/fwenforcerd.fish
-rw-r--r-- usr/share/doc/fwenforcer/copyright
-rw-r--r-- usr/share/doc/fwenforcer/README.md
-rw-r--r-- usr/share/doc/fwenforcer/examples/fwenforcer.conf
-rwxr-xr-x usr/share/doc/fwenforcer/examples/etcd/fwenforcer-etcd-watch
-rw-r--r-- usr/share/doc/fwenforcer/examples/ansible/roles/fwenforcer/templates/fwenforcer.conf.j2
drwxr-xr-x etc/fwenforcer/
LIST
expect "no /etc/fwenforcer/fwenforcer.conf in the package" bash -c "! grep -q 'etc/fwenforcer/fwenforcer.conf' <<<'$contents'"
expect "nothing under /usr/local" bash -c "! grep -q '\./usr/local' <<<'$contents'"
expect "every file root/root" bash -c "! awk '\$2 != \"root/root\"' <<<'$contents' | grep -q ."

dpkg-deb --raw-extract "$deb" "$scratch/x"
expect "md5sums match the files" bash -c "cd '$scratch/x' && md5sum --quiet -c DEBIAN/md5sums"
expect "md5sums lists every file" [ "$(wc -l < "$scratch/x/DEBIAN/md5sums")" = "$(cd "$scratch/x" && find . -path ./DEBIAN -prune -o -type f -print | wc -l)" ]
unit="$scratch/x/lib/systemd/system/fwenforcerd.service"
expect "unit runs /usr/sbin/fwenforcerd" grep -qx 'ExecStart=/usr/sbin/fwenforcerd run --config /etc/fwenforcer/fwenforcer.conf' "$unit"
expect "unit reloads through the installed binary" grep -qx 'ExecReload=/usr/sbin/fwenforcerd reload --config /etc/fwenforcer/fwenforcer.conf --pid $MAINPID' "$unit"
expect "unit idles until a config exists" grep -qx 'ConditionPathExists=/etc/fwenforcer/fwenforcer.conf' "$unit"
expect "unit has no /usr/local path outside comments" bash -c "! grep -v '^#' '$unit' | grep -q /usr/local"
expect "man page is an mdoc page for section 8" bash -c "zcat '$scratch/x/usr/share/man/man8/fwenforcerd.8.gz' | grep -qx '\.Dt FWENFORCERD 8'"

# --- installed into a throwaway root ----------------------------------------------------------
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/log"
touch "$root/var/lib/dpkg/status"
# --force-depends: the throwaway root has no libc6 etc. in its own database (the host has them).
# Its chatter (the missing dependencies) goes to a log, shown when dpkg fails.
dpkg_root() {
    dpkg --root="$root" --force-depends --force-script-chrootless --log="$root/var/log/dpkg.log" "$@" \
        > "$scratch/dpkg.out" 2>&1 || { cat "$scratch/dpkg.out"; return 1; }
}
expect "dpkg --root -i" dpkg_root -i "$deb"
expect "installed in the throwaway database" grep -q '^Status: install ok installed' "$root/var/lib/dpkg/status"
wants="$root/etc/systemd/system/sysinit.target.wants/fwenforcerd.service"
expect "postinst enabled the unit (sysinit.target.wants)" [ "$(readlink "$wants")" = /lib/systemd/system/fwenforcerd.service ]
expect "no config written by the install" [ ! -e "$root/etc/fwenforcer/fwenforcer.conf" ]

bin="$root/usr/sbin/fwenforcerd"
expect "installed binary: --help" bash -c "'$bin' --help | grep -q 'USAGE: fwenforcerd'"
example="$root/usr/share/doc/fwenforcer/examples/fwenforcer.conf"
expect "installed binary: plan of the example as CCO" bash -c "'$bin' plan --config '$example' --role CCO > '$scratch/plan.nft' && grep -q 'table inet fwenforcer' '$scratch/plan.nft'"
# The shipped catalog file gives the same plan as the built-in catalog it was embedded from.
sed "s|^catalog = \"cloudcenter\"|catalog = \"$root/usr/share/fwenforcer/catalogs/cloudcenter.toml\"|" "$example" > "$scratch/by-path.conf"
expect "installed catalog file plans like the built-in one" bash -c "'$bin' plan --config '$scratch/by-path.conf' --role CCO | cmp -s - '$scratch/plan.nft'"
expect "installed binary: check of the example" bash -c "'$bin' check --config '$example' --role CCO >/dev/null"
expect "installed binary needs no Swift toolchain libraries" bash -c "! ldd '$bin' | grep -qi swift"
# The stripped release binary programs the kernel: one apply in a network namespace that exists
# only as long as the command (unshare --net), read back with nft.
if [[ $EUID == 0 ]] && command -v nft >/dev/null; then
    expect "installed binary: apply in a network namespace, nft lists the table" bash -c \
        "unshare --net sh -c \"'$bin' apply --config '$example' --role CCO >/dev/null && nft list set inet fwenforcer AMQP_v4\" | grep -q '198.18.0.30'"
else
    echo "SKIP apply in a network namespace: needs root and nft"
fi

if command -v systemd-analyze >/dev/null; then
    # verify checks that every command exists under --root: ExecStart's and ExecReload's are the
    # installed binary (nothing else: a minimal Debian has no /bin/kill).
    # It runs man(1) on the host for Documentation=man:, so MANPATH points into the root.
    out=$(MANPATH="$root/usr/share/man" systemd-analyze verify --root="$root" /lib/systemd/system/fwenforcerd.service 2>&1) && status=0 || status=$?
    expect "systemd-analyze verify of the installed unit (exit $status, output: ${out:-none})" [ "$status" = 0 -a -z "$out" ]

    # "Installing does not start enforcing": systemd evaluates the installed unit's conditions
    # against the host's /etc, so they are evaluated in a private mount namespace whose /etc is an
    # overlay of the host's (the host's /etc is never written), without and then with a config.
    condition() { # condition yes|no: evaluate with or without /etc/fwenforcer/fwenforcer.conf
        mkdir -p "$scratch/overlay-up" "$scratch/overlay-work"
        unshare --mount --propagation private sh -c '
            mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/overlay-up,workdir=$1/overlay-work" /etc || exit 99
            rm -f /etc/fwenforcer/fwenforcer.conf
            if [ "$3" = yes ]; then mkdir -p /etc/fwenforcer && cp "$4" /etc/fwenforcer/fwenforcer.conf; fi
            systemd-analyze --root="$2" condition --unit=fwenforcerd.service 2>&1' sh "$scratch" "$root" "$1" "$example"
    }
    out=$(condition no) && status=0 || status=$?
    expect "without a config, a start of the installed unit is skipped (${out//$'\n'/ })" \
        [ "$status" = 1 -a -n "$(grep -x 'fwenforcerd.service: ConditionPathExists=/etc/fwenforcer/fwenforcer.conf failed.' <<<"$out")" ]
    out=$(condition yes) && status=0 || status=$?
    expect "with a config, its conditions pass (${out//$'\n'/ })" [ "$status" = 0 ]
else
    echo "SKIP systemd-analyze verify: systemd-analyze is not installed (Debian package systemd)"
fi

expect "dpkg --root -r" dpkg_root -r fwenforcer
expect "binary removed" [ ! -e "$bin" ]
expect "dpkg --root -P" dpkg_root -P fwenforcer
expect "purge removed the enablement" [ ! -e "$wants" -a ! -L "$wants" ]
expect "purge forgot the package" bash -c "! grep -q '^Package: fwenforcer' '$root/var/lib/dpkg/status'"

# --- the machine itself is untouched ------------------------------------------------------------
expect "host dpkg database does not know fwenforcer" bash -c "! dpkg-query -W fwenforcer >/dev/null 2>&1"
expect "host systemd enablement unchanged" [ "$(ls -l /etc/systemd/system/sysinit.target.wants/fwenforcerd.service 2>&1 || true)" = "$host_enabled_before" ]

if ((failures)); then echo "test-deb: $failures failed"; exit 1; fi
echo "test-deb: all passed ($deb)"
