#!/usr/bin/env bash
# Fails when the fwenforcerd binary given (unstripped) links Foundation, CoreFoundation or ICU, and
# names the Foundation symbols it uses: the shipped code imports FoundationEssentials only (issue 14;
# Package.swift's MemberImportVisibility catches most slips when compiling, not conformances).
set -euo pipefail
binary=${1:?usage: check-no-foundation.sh path/to/fwenforcerd (unstripped)}
symbols=$(nm "$binary" 2>/dev/null) || { echo "check-no-foundation: cannot read the symbols of $binary" >&2; exit 1; }
[[ -n "$symbols" ]] || { echo "check-no-foundation: $binary has no symbol table (check it before stripping)" >&2; exit 1; }
# icudt*_dat: ICU's data; Swift symbols of the modules Foundation and FoundationInternationalization;
# CoreFoundation's initialiser. (FoundationEssentials has __CFUniChar* tables of its own: allowed.)
found=$(awk '$NF ~ /^icudt[0-9]+_dat$|^\$s10Foundation|^\$s30FoundationInternationalization|^__CFInitialize$/ {print $NF}' <<< "$symbols" | sort -u)
if [[ -n "$found" ]]; then
    count=$(wc -l <<< "$found")
    echo "check-no-foundation: $binary links Foundation/ICU ($count symbols), e.g.:" >&2
    grep -m 12 -v '^icudt' <<< "$found" | swift demangle --compact 2>/dev/null | sed 's/^/  /' >&2 || true
    grep '^icudt' <<< "$found" | sed 's/^/  /' >&2 || true
    echo "  Find the call with: nm -u .build/release/*.build/*.o | grep 10Foundation (import FoundationEssentials instead)" >&2
    exit 1
fi
echo "check-no-foundation: $binary links no Foundation, CoreFoundation or ICU"
