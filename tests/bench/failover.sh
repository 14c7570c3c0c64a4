#!/usr/bin/env bash
# Failover figures (tests/examples/bench_failover.rs): two `ccd controller`s with the default lease
# on one fake-gcs-server bucket and one local cloud; SIGKILL of the leader, three times: the time
# until the standby leads, against the 10 to 15 s the lease makes it wait, and until the next spec
# version is Ready.
#
# Expects release builds (make bench builds them). BENCH_KEEP=1 keeps the work folder.
# Goal: hand-over under 20 s.
set -euo pipefail

TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/ccd-target}/release"
for bin in "$TARGET/ccd" "$TARGET/ccd-sample-app" "$TARGET/examples/bench_failover"; do
    if [ ! -x "$bin" ]; then
        echo "failover-bench: $bin is missing: run make bench (or cargo build --release --workspace --examples --bins)" >&2
        exit 1
    fi
done
echo "failover-bench: machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB" >&2
"$TARGET/examples/bench_failover" "$TARGET/ccd"
