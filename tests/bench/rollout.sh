#!/usr/bin/env bash
# Rollout figures for three replicas of the sample app, under a steady client load through the
# load balancer (tests/examples/bench_rollout.rs): a rolling update's duration against the sum of
# its new instances' own start and health times (what ccd adds), a blue/green switch's against
# its slowest new instance, the time from a bad version's first failed health check to the whole
# fleet back on the last good revision, and the failed client requests in each.
#
# Expects release builds (make bench builds them). BENCH_KEEP=1 keeps the work folder (logs,
# status, events).
# Goals: under 1.2x the instances' own times; under 15 s back to the last good revision with 1 s
# checks and unhealthyThreshold 2; no failed request.
set -euo pipefail

TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/ccd-target}/release"
for bin in "$TARGET/ccd" "$TARGET/ccd-sample-app" "$TARGET/examples/bench_rollout"; do
    if [ ! -x "$bin" ]; then
        echo "rollout-bench: $bin is missing: run make bench (or cargo build --release --workspace --examples --bins)" >&2
        exit 1
    fi
done
echo "rollout-bench: machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB" >&2
"$TARGET/examples/bench_rollout" "$TARGET/ccd"
