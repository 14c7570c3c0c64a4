#!/usr/bin/env bash
# Scale of the local cloud: time for 1,000 managed groups of 2 simulated
# instances to be created and RUNNING, and the server's memory per simulated
# instance. Expects release builds (make bench builds them).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/ccd-target}/release"
"$target/examples/bench_groups" "$target/ccd" "${BENCH_GROUPS:-1000}" "${BENCH_GROUP_SIZE:-2}"
