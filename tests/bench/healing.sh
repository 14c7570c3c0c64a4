#!/usr/bin/env bash
# Healing and scaling figures through `ccd up` (tests/examples/bench_healing.rs): the time from a
# hung app (SIGSTOP) to its instance serving again, against detection (unhealthyThreshold x
# interval) plus the app's own start time; the time from a CPU load step to a second instance
# serving, against two metric intervals plus its own start time; failed client requests.
#
# Expects release builds (make bench builds them). BENCH_KEEP=1 keeps the work folder.
# Goals: detection + own start + 2 s; two intervals + own start.
set -euo pipefail

TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/ccd-target}/release"
for bin in "$TARGET/ccd" "$TARGET/ccd-sample-app" "$TARGET/examples/bench_healing"; do
    if [ ! -x "$bin" ]; then
        echo "healing-bench: $bin is missing: run make bench (or cargo build --release --workspace --examples --bins)" >&2
        exit 1
    fi
done
echo "healing-bench: machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB" >&2
"$TARGET/examples/bench_healing" "$TARGET/ccd"
