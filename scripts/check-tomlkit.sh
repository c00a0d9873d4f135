#!/usr/bin/env bash
# The TOMLKit guard, run by scripts/build-deb.sh before it packages anything: Config/TOMLDocument.swift
# frees the documents and strings TOMLKit 0.6.0 leaks by reaching into its internals (the stored
# property `tablePointer` of TOMLTable, found by reflection; TOMLValue's first word; toml::node's
# vtable; nodeAsString's strdup). That holds for the release it was checked against only, so:
#  1. the resolved TOMLKit must be that release, at that commit (Package.swift pins it exactly; a
#     re-tagged 0.6.0 would show here as another revision);
#  2. the tests that check those internals must pass (TOMLDocumentMemoryTests: the layout the fast
#     path reads, documents and strings read and freed). They fail, and nothing is packaged, if a
#     TOMLKit change moved what the workaround touches.
# Exits non-zero, saying why, when either fails. Builds the tests (debug) if they are not built.
set -euo pipefail
cd "$(dirname "$0")/.."

expected_version=0.6.0
expected_revision=bebd313dec74a93cadc8b5677bb17ad6e45414f7
resolved=${TOMLKIT_CHECK_RESOLVED:-Package.resolved}

[[ -e "$resolved" ]] || swift package resolve >/dev/null
pin=$(python3 - "$resolved" <<'PY'
import json, sys
pins = json.load(open(sys.argv[1])).get("pins", [])
for p in pins:
    if p.get("identity") == "tomlkit":
        s = p.get("state", {})
        print(s.get("version") or "none", s.get("revision") or "none")
        break
else:
    print("absent absent")
PY
)
read -r version revision <<< "$pin"
if [[ "$version" != "$expected_version" || "$revision" != "$expected_revision" ]]; then
    echo "check-tomlkit: $resolved resolves TOMLKit $version at $revision; the memory workaround in" >&2
    echo "  Sources/Enforcer/Config/TOMLDocument.swift was checked against $expected_version at $expected_revision only." >&2
    echo "  Check it against the new release (TOMLDocumentMemoryTests, DaemonMemoryTests), then update both pins." >&2
    exit 1
fi
[[ -n "${TOMLKIT_CHECK_PIN_ONLY:-}" ]] && { echo "check-tomlkit: TOMLKit $version at $revision"; exit 0; }

mkdir -p out
swift build --build-tests > out/check-tomlkit.log 2>&1 ||
    { tail -n 30 out/check-tomlkit.log >&2; echo "check-tomlkit: the tests do not build (out/check-tomlkit.log): no package" >&2; exit 1; }
# The suite must have run and passed: a filter that matches nothing (a renamed suite) passes too.
if ! swift test --skip-build --filter 'TOMLDocumentMemoryTests' > out/check-tomlkit.log 2>&1 ||
   ! grep -q 'Suite TOMLDocumentMemoryTests passed' out/check-tomlkit.log; then
    tail -n 30 out/check-tomlkit.log >&2
    echo "check-tomlkit: TOMLKit $version's internals are not as Config/TOMLDocument.swift expects (out/check-tomlkit.log): no package" >&2
    exit 1
fi
echo "check-tomlkit: TOMLKit $version at $revision, internals as expected"
