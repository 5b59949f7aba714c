# Weft: the commands people type. `make` alone lists them.

CARGO      ?= cargo
GUEST      := x86_64-unknown-none
GUEST_DIR  := target/$(GUEST)/release
CRASH_DIR  := target/crash-test
WASM_DIR   := target/wasm
# Wasm apps: WASI programs also built for the host (the tests' reference),
# and apps for the guest only (event apps and test apps).
WASM_APPS  := hello wc coremark
WASM_GUEST := echo-server supervise spin trap hog listeners spawn-bench fabric-ls kv-app stateful udp-echo-app file-io \
              conformance/rust
# The C programs of the WASI conformance suite (clang and wasi-libc), built
# into target/wasm/conformance/; monitor/tests/wasi_conformance.rs runs them
# and the Rust ones (conformance/rust above) under weft and under wasmtime.
CONF_SRC   := user/wasm/conformance/c
CONF_DIR   := $(WASM_DIR)/conformance
CONF_WASM  := $(patsubst $(CONF_SRC)/%.c,$(CONF_DIR)/%.wasm,$(wildcard $(CONF_SRC)/*.c))
WEFT       := target/release/weft

.PHONY: help setup guest conformance build run test lint bench bench-setup move-soak soak daemon-soak fuzz clean

help:
	@echo "Weft make targets:"
	@echo "  make build   build the kernel, the example programs and target/release/weft"
	@echo "  make run     build, then boot the hello demo in a KVM guest"
	@echo "  make test    build, check formatting and lints, then run every test (unit, property, model, and KVM boot tests)"
	@echo "  make lint    rustfmt and clippy (warnings are errors) over every crate, guest and Wasm apps included"
	@echo "  make bench   build, then run the benchmarks (results in target/bench/; installs wrk and nginx, the httpd bench's load generator and baseline)"
	@echo "  make soak    one guest serves HTTP and echo to 1,000 clients for 10 minutes (WEFT_SOAK_SECS=600): byte-exact, flat RSS and descriptors"
	@echo "  make move-soak  move a stateful Wasm app a->b->c->a 1000 times between three daemons while two clients call its service"
	@echo "  make daemon-soak  three daemons under IPC, service, spawn and kill churn for 10 minutes (WEFT_CHURN_SECS=600): every answer checked, flat RSS and descriptors"
	@echo "  make fuzz    fuzz the data pipe against a hostile peer, every decoder in control/ and the fabric's (nightly Rust; FUZZ_SECONDS=60 each)"
	@echo "  make setup   install what the build needs (the $(GUEST) and wasm32-wasip1 Rust targets, curl, iproute2, gdb, qemu-system-x86, clang and wasi-libc, the wasmtime Python package)"
	@echo "  make clean   remove build output"

# The guest target is added on demand, and `curl` (the HTTP client the
# integration tests drive the guest's web server with), `iproute2` (the
# fabric tests' network namespaces), `gdb` (the debugger tests' client) and
# `qemu-system-x86` (the second VMM the tests boot guests under) are
# installed from Debian if missing, so a fresh machine needs nothing
# else. The WASI conformance suite needs
# clang, lld, wasi-libc and the wasm32 compiler runtime (Debian packages) to
# build its C programs, and wasmtime from PyPI (pinned) as its reference.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
WASI_CC_PKGS := clang lld wasi-libc libclang-rt-14-dev-wasm32
setup:
	@rustup target list --installed 2>/dev/null | grep -qx $(GUEST) || rustup target add $(GUEST)
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@command -v curl >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq curl; }
	@command -v ip >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq iproute2; }
	@command -v gdb >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq gdb; }
	@command -v qemu-system-x86_64 >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends qemu-system-x86; }
	@dpkg -s $(WASI_CC_PKGS) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(WASI_CC_PKGS); }
	@python3 -c 'import wasmtime' 2>/dev/null || python3 -m pip install --quiet wasmtime==51.0.0

# The kernel and user programs, a kernel with the crash-test syscall for the
# integration tests of the kernel's crash reports, and the Wasm examples
# (target/wasm/wasm32-wasip1/release/*.wasm, with host builds of the WASI
# programs as the tests' reference), and the conformance suite's programs.
guest: setup conformance
	$(CARGO) build --release --target $(GUEST) -p weft-kernel -p weft-user -p weft-countdown -p weft-wasm-run --features weft-wasm-run/guest
	# The ahead-of-time runtime alone links wasmtime (and defines its
	# platform symbols): built apart, so the interpreter's runtime does not.
	$(CARGO) build --release --target $(GUEST) -p weft-wasm-run --features weft-wasm-run/guest,weft-wasm-run/aot --bin wasm-aot
	$(CARGO) build --release --target $(GUEST) -p weft-kernel --features crash-test --target-dir $(CRASH_DIR)
	for app in $(WASM_APPS); do \
		$(CARGO) build --release --manifest-path user/wasm/$$app/Cargo.toml --target wasm32-wasip1 --target-dir $(WASM_DIR) && \
		$(CARGO) build --release --manifest-path user/wasm/$$app/Cargo.toml --target-dir $(WASM_DIR) || exit 1; \
	done
	for app in $(WASM_GUEST); do \
		$(CARGO) build --release --manifest-path user/wasm/$$app/Cargo.toml --target wasm32-wasip1 --target-dir $(WASM_DIR) || exit 1; \
	done

conformance: setup $(CONF_WASM)

$(CONF_DIR)/%.wasm: $(CONF_SRC)/%.c $(CONF_SRC)/common.h
	@mkdir -p $(CONF_DIR)
	clang --target=wasm32-wasi -O2 -Wall -Wextra -Werror -o $@ $<

build: guest
	$(CARGO) build --release -p weft-monitor

run: build
	$(WEFT) run hello "from make run"

# Formatting and lints gate the tests: rustfmt over every crate, clippy with
# warnings denied (undocumented unsafe blocks included) over the host crates,
# the guest crates and the Wasm apps (which live outside the workspace).
WASM_CRATES := $(WASM_APPS) $(WASM_GUEST) weft-app
lint: setup
	$(CARGO) fmt --all --check
	for app in $(WASM_CRATES); do \
		$(CARGO) fmt --check --manifest-path user/wasm/$$app/Cargo.toml || exit 1; \
	done
	$(CARGO) fmt --check --manifest-path data-pipe/fuzz/Cargo.toml
	$(CARGO) fmt --check --manifest-path control/fuzz/Cargo.toml
	$(CARGO) fmt --check --manifest-path monitor/fabric/fuzz/Cargo.toml
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) clippy --release --target $(GUEST) -p weft-kernel -p weft-user -p weft-countdown -p weft-wasm-run --features weft-wasm-run/guest -- -D warnings
	$(CARGO) clippy --release --target $(GUEST) -p weft-wasm-run --features weft-wasm-run/guest,weft-wasm-run/aot --bin wasm-aot -- -D warnings
	$(CARGO) clippy --release -p weft-user --lib --tests -- -D warnings
	for app in $(WASM_CRATES); do \
		$(CARGO) clippy --release --manifest-path user/wasm/$$app/Cargo.toml --target wasm32-wasip1 --target-dir $(WASM_DIR) \
			-- -D warnings -D clippy::undocumented_unsafe_blocks || exit 1; \
	done

test: build lint
	$(CARGO) test --release
	$(CARGO) test --release -p weft-user --lib
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom $(CARGO) test --release -p weft-data-pipe --test loom

# The httpd bench drives the guest's web server and its baseline, nginx with
# one worker (started by the bench with a configuration of its own), with
# wrk. Debian's package may start an nginx service on port 80 as it
# installs; the bench does not use it.
bench-setup:
	@{ command -v wrk && { command -v nginx || test -x /usr/sbin/nginx; }; } >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk nginx; }

bench: build bench-setup
	$(CARGO) bench -p weft-monitor --bench boot
	$(CARGO) bench -p weft-monitor --bench streams
	$(CARGO) bench -p weft-monitor --bench wasm
	$(CARGO) bench -p weft-monitor --bench spawn
	$(CARGO) bench -p weft-monitor --bench fabric
	$(CARGO) bench -p weft-monitor --bench httpd
	$(CARGO) bench -p weft-data-pipe --bench ring
	@echo "results: target/bench/results.json, target/bench/report.md"

# One guest serving HTTP and echo to a thousand clients for ten minutes
# (WEFT_SOAK_SECS seconds); `make test` runs a 20-second, 200-client variant.
soak: build
	$(CARGO) test --release -p weft-monitor --test soak soak_a_thousand_clients -- --ignored --exact --nocapture

# Three daemons under churn for ten minutes (WEFT_CHURN_SECS seconds);
# `make test` runs a 40-second variant.
daemon-soak: build
	$(CARGO) test --release -p weft-monitor --test fabric churn::daemons_stay_flat_under_churn_for_long -- --ignored --exact --nocapture

# The thousand-hop move loop (minutes; `make test` goes round three times).
move-soak: build
	$(CARGO) test --release -p weft-monitor --test fabric moves::a_stateful_app_moves_a_thousand_times -- --ignored --nocapture

FUZZ_SECONDS ?= 60
CONTROL_FUZZ := control_pipe_frames file_frames session_frames fs_replies first_frames \
                net_frames error_frames fixed_layouts args_block device_frames fabric_frames
FABRIC_FUZZ  := fabric_payloads local_lines names invitations
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd data-pipe/fuzz && $(CARGO) +nightly fuzz run hostile_header -- -max_total_time=$(FUZZ_SECONDS)
	cd control/fuzz && for t in $(CONTROL_FUZZ); do \
		$(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
	cd monitor/fabric/fuzz && for t in $(FABRIC_FUZZ); do \
		$(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

clean:
	$(CARGO) clean
