# fwenforcer: build, install and set up the build machine.
#   make deps                      install the Debian packages the build and tests need (if missing)
#   make build                     release build of fwenforcerd
#   make install                   binary, systemd unit, docs, sample config (kept if one exists)
#   make install DESTDIR=/tmp/pkg  the same into a staging tree (add OWNER= when not root)
#   make plan                      deps, build, and the dry-run plan of the shipped sample config (as a CCO VM)
#   make test                      deps, build, every test (kernel tests in namespaces they create and delete)
#   make man completions           man page and shell completions generated from the CLI, into out/
#   make deb                       Debian package out/fwenforcer_<VERSION>_<arch>.deb (enabled, idle until a config exists)
#   make test-deb                  build the package, inspect it, install it into a throwaway root and run it
#   make fuzz                      libFuzzer/atheris on every parser of outside bytes, FUZZ_SECONDS per target (fuzz/README.md)
#   make vm-test                   build the package, install it on a Debian 12 guest under qemu, boot it three times, 7 checks
#   make bench                     release build, benchmark against nft (N = 10 ... 100,000, ~15 min), into bench/
#   make bench BENCH_ARGS="--quick --output /tmp/b"   a short run (N = 10, 1,000), not over the committed results
#   make bench-fleet               release build, one etcd and 10, 30, 100 VMs in namespaces (~5 min), into bench/fleet-results.*

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
DOCDIR     ?= $(DATADIR)/doc/fwenforcer
SYSCONFDIR ?= /etc
# Admin-installed units live in /etc/systemd/system; a distribution package would use /lib/systemd/system.
UNITDIR    ?= /etc/systemd/system
DESTDIR    ?=

SWIFT       ?= swift
SCRATCH     ?= .build
# A statically linked Swift runtime: the installed binary needs only glibc, libstdc++, libnftnl and
# libmnl, not a Swift toolchain on every VM.
BUILD_FLAGS ?= -c release --static-swift-stdlib
INSTALL     ?= install
OWNER       ?= -o root -g root

# Files generated from the CLI (`make man completions`): man pages (the section is taken from the
# file name, e.g. fwenforcerd.8) and shell completion scripts; installed when present.
MANPAGES        ?= $(wildcard out/man/*.8)
BASH_COMPLETION ?= $(wildcard out/completions/fwenforcerd.bash)
ZSH_COMPLETION  ?= $(wildcard out/completions/_fwenforcerd)
FISH_COMPLETION ?= $(wildcard out/completions/fwenforcerd.fish)

UNIT          := deploy/fwenforcerd.service
SAMPLE_CONFIG ?= etc/fwenforcer.conf
CONFIG        := $(SYSCONFDIR)/fwenforcer/fwenforcer.conf
# `make deb` sets this to no: a package ships the sample as an example, never as the live config.
INSTALL_SAMPLE_CONFIG ?= yes

.PHONY: build install deps plan test fuzz man completions deb test-deb vm-test bench bench-fleet

plan: deps
	$(SWIFT) build --product fwenforcerd
	"$$($(SWIFT) build --show-bin-path)/fwenforcerd" plan --config $(SAMPLE_CONFIG)

test:
	scripts/test.sh

# Seconds per fuzz target; `make test` runs a short pass of its own (scripts/test.sh).
FUZZ_SECONDS ?= 180
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

man:
	$(SWIFT) package plugin --allow-writing-to-package-directory generate-manual --section 8 \
		--authors "fwenforcer developers" >/dev/null
	mkdir -p out/man
	cp .build/plugins/GenerateManual/outputs/fwenforcerd/fwenforcerd.8 out/man/

completions: build
	mkdir -p out/completions
	bin="$$($(SWIFT) build $(BUILD_FLAGS) --scratch-path $(SCRATCH) --show-bin-path)/fwenforcerd"; \
	"$$bin" --generate-completion-script bash > out/completions/fwenforcerd.bash && \
	"$$bin" --generate-completion-script zsh > out/completions/_fwenforcerd && \
	"$$bin" --generate-completion-script fish > out/completions/fwenforcerd.fish

deps:
	scripts/install-deps.sh

# The release build, the man page and the completions feed `make install DESTDIR=...`, which
# scripts/build-deb.sh stages and wraps with dpkg-deb; the version comes from the VERSION file. It
# packages nothing unless TOMLKit is the release the memory workaround was checked against and
# its tests pass (scripts/check-tomlkit.sh: builds the tests if needed), and the binary links no
# Foundation/ICU (scripts/check-no-foundation.sh).
deb: build out/man/fwenforcerd.8 completions
	scripts/build-deb.sh

# The man page only changes with the CLI's definition. `make man` runs the plugin, whose debug build
# differs from `swift build --build-tests` and rebuilds every module: only pay for it when needed.
out/man/fwenforcerd.8: $(wildcard Sources/fwenforcerd/*.swift)
	$(MAKE) man

test-deb: deb
	scripts/test-deb.sh

# Needs root: debootstrap builds the guest image (cached in .build-vm/ until its inputs change), qemu
# boots it under software emulation (no KVM) with no network beyond the guest itself (docs/vm-test.md).
vm-test: deps deb
	scripts/vm/run.sh

# Needs root: the benchmark programs netfilter in network namespaces of its own (docs/benchmarks.md).
BENCH_ARGS ?=
# The package is built first: its size is one of the figures.
bench: deps deb
	$(SWIFT) build $(BUILD_FLAGS) --scratch-path $(SCRATCH) --product fwenforcerd
	$(SWIFT) build $(BUILD_FLAGS) --scratch-path $(SCRATCH) --product fwenforcer-bench
	"$$($(SWIFT) build $(BUILD_FLAGS) --scratch-path $(SCRATCH) --show-bin-path)/fwenforcer-bench" --output bench $(BENCH_ARGS)

# Needs root, etcd and etcdctl: each VM's daemon runs in a network namespace of its own (docs/benchmarks.md,
# "Fleet propagation"). FLEET_ARGS="--vms 3 --quick --output /tmp/f" is a short run.
FLEET_ARGS ?=
bench-fleet: deps
	$(SWIFT) build $(BUILD_FLAGS) --scratch-path $(SCRATCH) --product fwenforcerd
	bench/fleet/fleet.py --fwenforcerd "$$($(SWIFT) build $(BUILD_FLAGS) --scratch-path $(SCRATCH) --show-bin-path)/fwenforcerd" \
		--output bench $(FLEET_ARGS)

build:
	$(SWIFT) build $(BUILD_FLAGS) --scratch-path $(SCRATCH) --product fwenforcerd

install: build
# Only missing directories are made: `install -d` would reset the mode of an existing one.
	@for dir in "$(DESTDIR)$(SBINDIR)" "$(DESTDIR)$(UNITDIR)" "$(DESTDIR)$(DOCDIR)" "$(DESTDIR)$(SYSCONFDIR)/fwenforcer"; do \
		[ -d "$$dir" ] || { echo "$(INSTALL) -d -m 0755 $$dir"; $(INSTALL) -d -m 0755 $(OWNER) "$$dir" || exit 1; }; \
	done
	$(INSTALL) -m 0755 $(OWNER) "$$($(SWIFT) build $(BUILD_FLAGS) --scratch-path $(SCRATCH) --show-bin-path)/fwenforcerd" \
		"$(DESTDIR)$(SBINDIR)/fwenforcerd"
# The unit names the installed paths; rewrite them when PREFIX or SYSCONFDIR differ from the defaults.
	sed -e 's|/usr/local/sbin/fwenforcerd|$(SBINDIR)/fwenforcerd|g' \
		-e 's|/usr/local/share/doc/fwenforcer/|$(DOCDIR)/|g' \
		-e 's|/etc/fwenforcer/fwenforcer.conf|$(CONFIG)|g' \
		$(UNIT) > "$(DESTDIR)$(UNITDIR)/.fwenforcerd.service.tmp"
	$(INSTALL) -m 0644 $(OWNER) "$(DESTDIR)$(UNITDIR)/.fwenforcerd.service.tmp" "$(DESTDIR)$(UNITDIR)/fwenforcerd.service"
	rm -f "$(DESTDIR)$(UNITDIR)/.fwenforcerd.service.tmp"
	$(INSTALL) -m 0644 $(OWNER) README.md $(wildcard docs/*.md) "$(DESTDIR)$(DOCDIR)/"
# Never overwrite an operator's config. Mode 600 root: fwenforcerd refuses a config others can write.
	@if [ "$(INSTALL_SAMPLE_CONFIG)" != yes ]; then \
		echo "sample config not installed (INSTALL_SAMPLE_CONFIG=$(INSTALL_SAMPLE_CONFIG))"; \
	elif [ -e "$(DESTDIR)$(CONFIG)" ]; then \
		echo "kept existing $(DESTDIR)$(CONFIG)"; \
	else \
		echo "$(INSTALL) -m 0600 $(OWNER) $(SAMPLE_CONFIG) $(DESTDIR)$(CONFIG)"; \
		$(INSTALL) -m 0600 $(OWNER) $(SAMPLE_CONFIG) "$(DESTDIR)$(CONFIG)"; \
	fi
	@for page in $(MANPAGES); do \
		section="$${page##*.}"; \
		echo "$(INSTALL) -D -m 0644 $$page $(DESTDIR)$(MANDIR)/man$$section/$$(basename $$page)"; \
		$(INSTALL) -D -m 0644 $(OWNER) "$$page" "$(DESTDIR)$(MANDIR)/man$$section/$$(basename $$page)" || exit 1; \
	done
	$(if $(BASH_COMPLETION),$(INSTALL) -D -m 0644 $(OWNER) $(BASH_COMPLETION) "$(DESTDIR)$(DATADIR)/bash-completion/completions/fwenforcerd")
	$(if $(ZSH_COMPLETION),$(INSTALL) -D -m 0644 $(OWNER) $(ZSH_COMPLETION) "$(DESTDIR)$(DATADIR)/zsh/site-functions/_fwenforcerd")
	$(if $(FISH_COMPLETION),$(INSTALL) -D -m 0644 $(OWNER) $(FISH_COMPLETION) "$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/fwenforcerd.fish")
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
