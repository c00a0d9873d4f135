#!/usr/bin/env bash
# `make deb`: stages `make install` (release binary, unit, docs, man page, completions) under /usr
# into out/deb/, adds the catalogs, examples and Debian metadata, and builds
# out/fwenforcer_<VERSION>_<arch>.deb with dpkg-deb. Needs no root: file owners are set to root by
# dpkg-deb --root-owner-group. Run through `make deb`, which builds what is staged here first.
set -euo pipefail
cd "$(dirname "$0")/.."

# The TOMLKit release the memory workaround was checked against, and its internals as it expects
# them (scripts/check-tomlkit.sh): no package of a build that would leak or crash on a config.
scripts/check-tomlkit.sh

version=$(tr -d ' \n' < VERSION)
arch=$(dpkg --print-architecture)
stage="$PWD/out/deb/fwenforcer_${version}_${arch}"
deb="out/fwenforcer_${version}_${arch}.deb"
doc="$stage/usr/share/doc/fwenforcer"

rm -rf "$stage"
mkdir -p "$stage"
# UNITDIR: a package's units go to /lib/systemd/system, leaving /etc/systemd/system to the admin.
# OWNER empty: staging runs as any user; dpkg-deb makes everything root's.
make --no-print-directory install DESTDIR="$stage" PREFIX=/usr UNITDIR=/lib/systemd/system \
    INSTALL_SAMPLE_CONFIG=no OWNER=

# The shipped code uses FoundationEssentials, never Foundation: Foundation would bring ICU (a 34 MB
# data table and its code, three quarters of the binary; issue 14). One call of a Foundation-only
# API (String(format:), NSString paths, Process, a Foundation conformance such as String: CVarArg)
# links it again; refuse such a build and name what pulled it in.
scripts/check-no-foundation.sh "$stage/usr/sbin/fwenforcerd"
# Stripped as dh_strip would (40 MB -> 18 MB). Swift finds types and conformances through its
# swift5_* sections, not the symbol table.
strip --strip-all --remove-section=.comment "$stage/usr/sbin/fwenforcerd"

# The man page is installed now, so the unit may name it (systemd-analyze verify checks it exists).
sed -i 's|^Documentation=file:/usr/share/doc/fwenforcer/README.md$|&\nDocumentation=man:fwenforcerd(8)|' \
    "$stage/lib/systemd/system/fwenforcerd.service"
grep -q '^Documentation=man:fwenforcerd(8)$' "$stage/lib/systemd/system/fwenforcerd.service"
# Debian's zsh looks in vendor-completions, not site-functions (that is /usr/local's).
if [[ -e "$stage/usr/share/zsh/site-functions/_fwenforcerd" ]]; then
    mkdir -p "$stage/usr/share/zsh/vendor-completions"
    mv "$stage/usr/share/zsh/site-functions/_fwenforcerd" "$stage/usr/share/zsh/vendor-completions/"
    rmdir "$stage/usr/share/zsh/site-functions"
fi
# Debian policy: man pages compressed, reproducibly (-n: no name or time stamp).
find "$stage/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +

# The built-in catalogs (embedded in the binary) as files: for reading, and as a starting point
# for catalog = "/path" in a config.
install -D -m 0644 -t "$stage/usr/share/fwenforcer/catalogs" Sources/Enforcer/Catalog/Data/*.toml
install -D -m 0644 etc/fwenforcer.conf "$doc/examples/fwenforcer.conf"
install -m 0644 deploy/debian/copyright "$doc/copyright"
# The fleet integration examples (etcd watcher and its unit, Ansible role), as shipped in deploy/.
for dir in etcd ansible; do
    (cd deploy && find "$dir" -type f ! -name '*.retry' ! -path '*/__pycache__/*') | while read -r file; do
        mode=0644; [[ -x "deploy/$file" ]] && mode=0755
        install -D -m "$mode" "deploy/$file" "$doc/examples/$file"
    done
done

mkdir -p "$stage/DEBIAN"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$stage/DEBIAN/"

# Depends from the libraries the binary links (libc6, libstdc++6, libgcc-s1, libnftnl11, libmnl0):
# dpkg-shlibdeps reads them from the ELF and the installed packages' symbols files. It wants a
# debian/control to exist, so it runs in a scratch directory with a minimal one.
shlib=$(mktemp -d)
trap 'rm -rf "$shlib"' EXIT
mkdir "$shlib/debian"
printf 'Source: fwenforcer\n\nPackage: fwenforcer\nArchitecture: any\n' > "$shlib/debian/control"
depends=$(cd "$shlib" && dpkg-shlibdeps -O -e "$stage/usr/sbin/fwenforcerd" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n "$depends" ]] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

find "$stage" -type d -exec chmod 0755 {} +
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
    deploy/debian/control.in > "$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
    > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "built $deb ($(du -h "$deb" | cut -f1); Depends: $depends)"
