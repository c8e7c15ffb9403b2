# linebox: `make run` starts the appliance, `make test` runs the test suite.
# Both install what they need (Debian packages, the venv) and are quick when
# everything is already there.

SHELL := /bin/bash
PYTHON := /usr/bin/python3
VENV := .venv
STAMPS := $(VENV)/.stamps

APT_PACKAGES := kamailio kamailio-python3-modules kamailio-extra-modules kamailio-sqlite-modules \
	kamailio-json-modules kamailio-utils-modules kamailio-tls-modules rtpengine-daemon \
	sip-tester sox libsox-fmt-mp3 espeak-ng python3-venv python3-dev tcpdump
TEST_APT_PACKAGES := redis-server
# tests/image: build the .deb, a Debian root filesystem, boot it in a container
TEST_APT_PACKAGES += debhelper debootstrap systemd-container iproute2 vagrant vagrant-libvirt
# tests/e2e: Playwright drives Debian's Chromium (never a downloaded browser)
TEST_APT_PACKAGES += chromium
# tests/integration/test_softphone.py: a real softphone walks an IVR
TEST_APT_PACKAGES += baresip
# tests/integration/test_nat.py: a phone behind a masquerading router namespace
TEST_APT_PACKAGES += nftables
# make image / image-test: a bootable disk, qcow2, Vagrant box, QEMU (TCG)
IMAGE_APT_PACKAGES := qemu-utils qemu-system-x86 fdisk openssh-client

.PHONY: help run test test-fast lint bench deps clean deb image image-test

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: deps ## set up everything and start the appliance in the foreground (Ctrl-C stops it)
	$(VENV)/bin/linebox run --demo

test: deps ## set up everything and run the whole test suite
	$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)

test-fast: deps ## the unit tests only (seconds, no services)
	$(VENV)/bin/pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

lint: deps ## ruff and mypy
	$(VENV)/bin/ruff check appliance web kamailio tests
	$(VENV)/bin/ruff format --check appliance web kamailio tests
	$(VENV)/bin/mypy

bench: deps ## benchmarks (see docs/performance.md)
	$(VENV)/bin/python -m tests.bench

deps: $(STAMPS)/apt $(STAMPS)/venv
deps: $(STAMPS)/npm

# Front-end packages (htmx, ECharts) come from npm at build time into
# node_modules and are copied to web/static/vendor (both gitignored); the
# portal serves them itself, so it works on a LAN without any CDN.
VENDOR := web/static/vendor
$(STAMPS)/npm: package.json
	npm install --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/echarts/dist/echarts.min.js $(VENDOR)/
	@mkdir -p $(STAMPS) && touch $@

# Debian packages: installed only when one is missing, so a prepared machine
# pays one dpkg-query.
$(STAMPS)/apt: Makefile
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(APT_PACKAGES) $(TEST_APT_PACKAGES) 2>/dev/null \
		| awk '$$NF != "installed" {print $$1}'; \
		for p in $(APT_PACKAGES) $(TEST_APT_PACKAGES); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing// }" ]; then \
		echo "installing Debian packages: $$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# Debian starts its own rtpengine and Kamailio on install where systemd runs;
	@# linebox runs its own instances with its own configuration.
	@mkdir -p $(STAMPS) && touch $@

# The venv is made with Debian's python3: Kamailio's embedded interpreter is
# the same libpython, so KEMI imports the app and its dependencies from here.
$(STAMPS)/venv: pyproject.toml $(STAMPS)/apt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test,dev]'
	@mkdir -p $(STAMPS) && touch $@

deb: deps ## build the linebox Debian package into build/
	packaging/build-deb.sh build

image: deps $(STAMPS)/apt-image ## the appliance image: build/linebox.raw, .qcow2, the Vagrant boxes (libvirt, VirtualBox)
	packaging/image/build-image.sh build

image-test: image ## boot the image under QEMU (TCG) and probe it; backup on one boot, restore on another
	LINEBOX_VM_TEST=1 $(VENV)/bin/pytest -p no:cacheprovider tests/image/test_vm.py $(PYTEST_ARGS)

$(STAMPS)/apt-image: Makefile
	@missing=$$(for p in $(IMAGE_APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q ' installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(STAMPS) && touch $@

clean: ## remove the venv and the demo data (./var)
	rm -rf $(VENV) var
