# ccd: two commands on a fresh Debian machine with the Rust toolchain:
#   make run    the main job on the embedded default
#   make test   formatting, lints and the whole test suite (what CI runs)

# Build outside the clone so a fresh clone reuses the cache and the tree stays clean.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/ccd-target
CARGO ?= cargo
CCD := $(CARGO_TARGET_DIR)/debug/ccd

.PHONY: run test fmt-check clippy unit bench schema fmt

# The main job on the embedded default: controller, local cloud and the
# example specs (copied into .ccd/specs on first run). Ctrl-C stops it all.
run:
	$(CARGO) build -p ccd -p ccd-sample-app
	$(CCD) validate specs/examples
	$(CCD) up --data .ccd --seed specs/examples

test: fmt-check clippy unit

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked

# Speed is measured here, against peers in the same run, never asserted in tests.
bench:
	$(CARGO) build --release --workspace --examples --bins
	@for b in tests/bench/*.sh; do echo "== $$b"; bash "$$b" || exit 1; done

# Regenerates the committed JSON Schema after a change to the spec model.
schema:
	$(CARGO) build -p ccd
	$(CCD) schema > specs/schema/app.v1.json

fmt:
	$(CARGO) fmt --all
