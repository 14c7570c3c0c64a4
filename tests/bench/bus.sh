#!/usr/bin/env bash
# The bus's figures (crates/ccd-bus/examples/bench_bus.rs): BENCH_MESSAGES agent reports (default
# 5,000) published at a steady BENCH_RATE (default 1,000/s) through Google's Pub/Sub emulator
# (google-cloud-pubsub's clients: batching publisher, streaming pull) and through the in-process
# bus, the peer measured in the same run: throughput and publish -> receive latency, p50 and p99.
#
# Expects release builds (make bench builds them). Starts the emulator with
# tests/scripts/pubsub-emulator.sh, which says how to install it when it is missing, and stops it
# at the end. The emulator is not Pub/Sub: its figures are the client's and the adapter's cost on
# this machine, not the service's latency.
# Goal: 1,000 messages/s at p99 under 100 ms.
set -euo pipefail

MESSAGES=${BENCH_MESSAGES:-5000}
RATE=${BENCH_RATE:-1000}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/ccd-target}/release"
BENCH="$TARGET/examples/bench_bus"
WORK=$(mktemp -d -t ccd-bus-bench.XXXXXX)
EMULATOR_PID=

log() { echo "bus-bench: $*" >&2; }

cleanup() {
    if [ -n "$EMULATOR_PID" ]; then
        kill "$EMULATOR_PID" 2>/dev/null || true
        wait "$EMULATOR_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x "$BENCH" ]; then
    log "$BENCH is missing: run make bench (or cargo build --release -p ccd-bus --examples)"
    exit 1
fi
log "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"

# The emulator's first stdout line is its port; java then runs as this pid.
"$ROOT/tests/scripts/pubsub-emulator.sh" start >"$WORK/port" 2>"$WORK/emulator.log" &
EMULATOR_PID=$!
port=
for _ in $(seq 1 600); do
    port=$(head -n 1 "$WORK/port" 2>/dev/null || true)
    if [ -n "$port" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then
        log "the Pub/Sub emulator did not start:"
        cat "$WORK/emulator.log" >&2
        exit 1
    fi
    port=
    sleep 0.1
done
if [ -z "$port" ]; then
    log "the Pub/Sub emulator is not listening after 60 s:"
    tail -n 20 "$WORK/emulator.log" >&2
    exit 1
fi

PUBSUB_EMULATOR_HOST="127.0.0.1:$port" "$BENCH" "$MESSAGES" "$RATE"
