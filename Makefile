# fwenforcer: build, install and set up the build machine.
#   make deps                      install the Debian packages the build and tests need (if missing)
#   make build                     release build of fwenforcerd
#   make install                   binary, systemd unit, docs, sample config (kept if one exists)
#   make install DESTDIR=/tmp/pkg  the same into a staging tree (add OWNER= when not root)

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

# Hooks for files generated from the CLI: man pages (the section is taken from the file name,
# e.g. fwenforcerd.8) and shell completion scripts for fwenforcerd.
MANPAGES        ?=
BASH_COMPLETION ?=
ZSH_COMPLETION  ?=
FISH_COMPLETION ?=

UNIT          := deploy/fwenforcerd.service
SAMPLE_CONFIG ?= etc/fwenforcer.conf
CONFIG        := $(SYSCONFDIR)/fwenforcer/fwenforcer.conf

.PHONY: build install deps

deps:
	scripts/install-deps.sh

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
	@if [ -e "$(DESTDIR)$(CONFIG)" ]; then \
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
