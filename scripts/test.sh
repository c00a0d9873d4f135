#!/usr/bin/env bash
# The README's test command (`make test`) runs this: install what is missing, build, run every test.
# Kernel tests need root; they create their own network namespaces and delete them, and never touch
# the firewall of the namespace this script runs in.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
swift test --skip-build
# A short fuzz pass over every parser of outside bytes (`make fuzz` runs longer): any crash fails.
FUZZ_SECONDS=${FUZZ_SECONDS:-45} scripts/fuzz.sh
# The Debian package: `make deb` reuses the release build when it is up to date (the first one takes
# minutes), then the package is inspected and installed into a throwaway root.
make deb
# Audit mode under a UDP flood, measured on the release build `make deb` just made: SIGTERM answered
# within 200 ms, watchdog pings on time (about 5 s).
FWENFORCERD_FLOOD_BINARY="$(swift build -c release --static-swift-stdlib --show-bin-path)/fwenforcerd" \
    swift test --skip-build --filter DaemonFloodTests
scripts/test-deb.sh
# The same package on a real Debian 12 guest under qemu: systemd as PID 1, Debian's kernel, three
# boots (docs/vm-test.md). The image is cached in .build-vm/; a fresh machine builds it first.
scripts/vm/run.sh
