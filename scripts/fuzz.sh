#!/usr/bin/env bash
# `make fuzz`: coverage-guided fuzzing of every parser of outside bytes (fuzz/README.md). Builds the
# harness with libFuzzer into .build-fuzz/, runs each target for FUZZ_SECONDS from the committed
# seeds (fuzz/corpus/TARGET) plus what earlier runs found (.build-fuzz/corpus/TARGET), and prints
# per target the executions per second and libFuzzer's coverage (cov: edges, ft: features).
# Any crash, assertion, timeout or out-of-memory fails the run and leaves the reproducer in
# .build-fuzz/artifacts/TARGET/ (replay: fuzz/README.md).
#   FUZZ_SECONDS=180 FUZZ_TARGETS="config netlink-dump nflog etcd-render" scripts/fuzz.sh
# Each run starts with no reproducers (the last run's move to .build-fuzz/artifacts-previous/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-180}
targets=${FUZZ_TARGETS:-config netlink-dump nflog etcd-render}
scratch=.build-fuzz
# atheris, libFuzzer for Python, from PyPI into a venv of the watcher's own interpreter.
atheris_version=3.0.0
# Inputs that ended in libnftnl's ABI exit, kept for reading (the newest this many per target).
abi_keep=${FUZZ_ABI_KEEP:-50}
# A target's run must last this share of FUZZ_SECONDS (percent) to count: a parent that stopped
# early fuzzed less than the run claims.
min_share=90

# -sanitize=fuzzer instruments the Swift code for coverage and links libFuzzer, address adds
# AddressSanitizer (the parsers read through unsafe pointers); the C and C++ of the dependencies
# (toml++ under TOMLKit) get the same. FUZZING selects the harness's libFuzzer entry point.
# lld: gold fails to link the instrumented binary (an internal error in its DWARF reader).
flags=(-c release --scratch-path "$scratch" --product fwenforcer-fuzz
       -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING
       -Xcc -fsanitize=fuzzer-no-link,address -Xcxx -fsanitize=fuzzer-no-link,address
       -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld)
# FUZZ_HARNESS names an already built harness (or a stand-in, to check this script's verdicts).
if [[ -n "${FUZZ_HARNESS:-}" ]]; then
    harness=$FUZZ_HARNESS
else
    swift build "${flags[@]}"
    harness="$(swift build "${flags[@]}" --show-bin-path)/fwenforcer-fuzz"
fi

python="$scratch/venv/bin/python3"
if [[ " $targets " == *" etcd-render "* ]] && ! "$python" -c "import atheris" 2>/dev/null; then
    /usr/bin/python3 -m venv "$scratch/venv"
    "$scratch/venv/bin/pip" install --quiet "atheris==$atheris_version"
fi

failed=()
mkdir -p "$scratch/logs"
done_line=
for target in $targets; do
    # Reproducers of an earlier run would be replayed and reported as this run's: they move to
    # artifacts-previous/ (the last run's only), and this run starts with none.
    rm -rf "$scratch/artifacts-previous/$target"
    if [[ -d "$scratch/artifacts/$target" ]]; then
        mkdir -p "$scratch/artifacts-previous"
        mv "$scratch/artifacts/$target" "$scratch/artifacts-previous/$target"
    fi
    rm -rf "$scratch/libnftnl-abi/$target"
    mkdir -p "$scratch/corpus/$target" "$scratch/artifacts/$target"
    started=$SECONDS
    elapsed=0
    log="$scratch/logs/$target.log"
    options=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
             -artifact_prefix="$scratch/artifacts/$target/" "$scratch/corpus/$target" "fuzz/corpus/$target")
    status=0
    abi_exits=0
    if [[ "$target" == netlink-dump ]]; then
        # libnftnl exits the process ("nf_tables kernel ABI is broken", exit(1)) on an attribute that
        # fails its validation: its contract with the kernel, not a crash of ours. Fork mode goes on
        # after each; every input it kept is replayed below, and only the others fail the run.
        # A parent that dies (a signal, a sanitizer report of its own, a bad option) or does not
        # reach its own end ("INFO: exiting: N time: ...") fails the run.
        parent=0
        FWENFORCER_FUZZ_TARGET="$target" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
            "$harness" -fork=1 -ignore_crashes=1 "${options[@]}" >"$log" 2>&1 || parent=$?
        elapsed=$((SECONDS - started))
        # The parent's status is what its end line says: 0, 1 (its last job's ABI exit) or 77,
        # libFuzzer's error exit code once any job ended in a crash (an ABI exit counts as one).
        # Which of those crashes are ABI exits and which are ours is decided by the replay below.
        said=$(sed -nE 's/^INFO: exiting: ([0-9]+) time: [0-9]+s.*/\1/p' "$log" | tail -1)
        if [[ -z "$said" ]] || ((parent != said)) || ((parent != 0 && parent != 1 && parent != 77)); then
            echo "fuzz: $target: the fork-mode parent ended with status $parent without finishing its run" >&2
            status=$parent
            ((status != 0)) || status=1
        fi
        for input in "$scratch/artifacts/$target"/*; do
            [[ -e "$input" ]] || continue
            replay=$(FWENFORCER_FUZZ_TARGET="$target" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
                         "$harness" "$input" 2>&1 || true)
            if [[ "${input##*/}" == crash-* && "$replay" == *"nf_tables kernel ABI is broken"* && "$replay" == *"fuzz target exited"* ]]; then
                abi_exits=$((abi_exits + 1))
                if ((abi_exits <= abi_keep)); then
                    mkdir -p "$scratch/libnftnl-abi/$target"
                    mv "$input" "$scratch/libnftnl-abi/$target/"
                else
                    rm -f "$input"
                fi
            else
                status=1
            fi
        done
        # Fork mode's progress lines carry the totals: "#RUNS: cov: C ft: F corp: N exec/s: E ...".
        progress=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
        runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$progress")
        # Its exec/s is the last job's, often 0: the average over the run instead.
        rate=$(( ${runs:-0} / seconds ))
        coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' <<<"$progress" || true)
        if ((status == 0 && elapsed * 100 < seconds * min_share)); then
            echo "fuzz: $target: the run lasted $elapsed s of $seconds s" >&2
            status=1
        fi
        if ((status == 0)) && [[ -n "$progress" ]]; then
            echo "fuzz: $target: ${runs:-?} runs in $elapsed s, ${rate:-?} exec/s, $coverage: no crash ($abi_exits inputs ended in libnftnl's ABI exit, the first $abi_keep kept in $scratch/libnftnl-abi/)"
            continue
        fi
    elif [[ "$target" == etcd-render ]]; then
        "$python" fuzz/targets/etcd_render.py "${options[@]}" >"$log" 2>&1 || status=$?
    else
        # The Swift runtime's own crash handler would print a backtrace and exit before libFuzzer
        # writes the reproducer.
        FWENFORCER_FUZZ_TARGET="$target" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
            "$harness" "${options[@]}" >"$log" 2>&1 || status=$?
    fi
    if [[ "$target" != netlink-dump ]]; then
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
    fi
    if ((status == 0)) && [[ -n "$done_line" ]]; then
        echo "fuzz: $target: ${runs:-?} runs in $seconds s, ${rate:-?} exec/s, $coverage: no crash"
    else
        echo "fuzz: $target: FAILED (exit $status) after ${runs:-?} runs, $coverage; log $log" >&2
        grep -E 'ERROR|Assertion|Fatal error|Test unit written|SUMMARY|Traceback|Error:' "$log" | head -20 >&2 || true
        ls "$scratch/artifacts/$target"/* 2>/dev/null | sed 's/^/  reproducer: /' >&2 || true
        failed+=("$target")
    fi
done
if ((${#failed[@]} > 0)); then
    echo "fuzz: crashes in ${failed[*]} (reproducers in $scratch/artifacts/; fuzz/README.md says how to replay)" >&2
    exit 1
fi
