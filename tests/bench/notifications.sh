#!/usr/bin/env bash
# Commit-to-reconcile figures (tests/examples/bench_notifications.rs): a spec changed in a
# fake-gcs-server bucket, until the controller's status names the new version, through Cloud
# Storage's Pub/Sub notifications (fake-gcs-server publishing to Google's Pub/Sub emulator)
# against a controller that polls the bucket every 10 s, both measured in the same run.
#
# Expects release builds (make bench builds them). BENCH_KEEP=1 keeps the work folder.
# Goal: p50 under 2 s.
set -euo pipefail

TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/ccd-target}/release"
for bin in "$TARGET/ccd" "$TARGET/ccd-sample-app" "$TARGET/examples/bench_notifications"; do
    if [ ! -x "$bin" ]; then
        echo "notifications-bench: $bin is missing: run make bench (or cargo build --release --workspace --examples --bins)" >&2
        exit 1
    fi
done
echo "notifications-bench: machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB" >&2
"$TARGET/examples/bench_notifications" "$TARGET/ccd"
