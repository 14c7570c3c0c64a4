#!/usr/bin/env bash
# The controller's figures, each with its goal:
#   1. spec write -> reconcile start with the folder store (bench_watch_latency, in process);
#   2. BENCH_APPS apps (default 1,000) converging against the local cloud, the real release
#      binaries as separate processes: time until every status says Ready, the Compute API calls
#      a new app cost until then, the controller's memory then, and the cloud API calls per app
#      per resync once converged.
#
# The apps have no `run:` section, so the local cloud simulates their instances (no processes).
# Expects release builds (make bench builds them).
#
# Environment: BENCH_APPS (1000), BENCH_WRITES (300), BENCH_EXISTING (100),
# BENCH_CONVERGE_TIMEOUT (300 s), BENCH_WINDOW (70 s, about two resyncs of a converged app),
# BENCH_WATCH=0 to skip the watch latency, BENCH_KEEP=1 to keep the work folder (logs, store,
# events).
# Goals: watch p99 < 200 ms; converged < 60 s; at most 10 Compute calls per new app (28 before
# issue 11); controller memory < 100 MB; once converged 0 mutations and at most 1 API read per app
# per resync.
set -euo pipefail

APPS=${BENCH_APPS:-1000}
WRITES=${BENCH_WRITES:-300}
EXISTING=${BENCH_EXISTING:-100}
CONVERGE_TIMEOUT=${BENCH_CONVERGE_TIMEOUT:-300}
WINDOW=${BENCH_WINDOW:-70}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/ccd-target}/release"
CCD="$TARGET/ccd"
WATCH="$TARGET/examples/bench_watch_latency"
CORES=$(nproc)
WORK=$(mktemp -d -t ccd-controller-bench.XXXXXX)
CLOUD_PID=
CONTROLLER_PID=
FAILED=0

log() { echo "controller-bench: $*" >&2; }

# SIGTERM, then SIGKILL if it is still there after 20 s.
stop() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop "$CONTROLLER_PID"
    stop "$CLOUD_PID"
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "work folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for bin in "$CCD" "$WATCH"; do
    if [ ! -x "$bin" ]; then
        log "$bin is missing: run make bench (or cargo build --release --workspace --examples --bins)"
        exit 1
    fi
done
command -v curl >/dev/null || { log "curl is needed"; exit 1; }

# --- 1. watch latency ---------------------------------------------------------------------
cd "$ROOT"
if [ "${BENCH_WATCH:-1}" != 0 ]; then
    "$WATCH" "$WRITES" "$EXISTING" || FAILED=1
fi

# --- 2. many apps against the local cloud -------------------------------------------------

# shellcheck source=ports.bash
source "$(dirname "${BASH_SOURCE[0]}")/ports.bash"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# The value of one sample line of a Prometheus text document (0 when absent).
metric() {
    awk -v name="$2" 'index($0, name " ") == 1 { v = $NF } END { print v + 0 }' <<<"$1"
}

# The sum of every series of a metric family.
metric_sum() {
    awk -v name="$2" 'index($0, name "{") == 1 || index($0, name " ") == 1 { s += $NF } END { print s + 0 }' <<<"$1"
}

# A number in the local cloud's admin status JSON: calls.reads, calls.mutations.
json_number() {
    local n
    n=$(grep -o "\"$2\"[[:space:]]*:[[:space:]]*[0-9]*" <<<"$1" | grep -o '[0-9]*$' | head -n 1) ||
        true
    if [ -z "$n" ]; then
        log "no \"$2\" counter in the local cloud's status: $1"
        return 1
    fi
    echo "$n"
}

# CPU seconds (user + system) a process used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"
}

proc_kib() {
    awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"
}

fail_with_logs() {
    log "$1"
    log "last lines of the controller's log:"
    tail -n 20 "$WORK/controller.log" >&2 || true
    log "last lines of the local cloud's log:"
    tail -n 10 "$WORK/cloud.log" >&2 || true
    exit 1
}

STORE="$WORK/store"
mkdir -p "$STORE/specs" "$STORE/status"
for i in $(seq -f '%05g' 1 "$APPS"); do
    cat >"$STORE/specs/bench-$i.yaml" <<SPEC
apiVersion: ccd/v1
kind: App
metadata:
  name: bench-$i
spec:
  image: europe-docker.pkg.dev/acme/apps/bench:1.0.0
  version: 1.0.0
  port: 8080
  replicas: {min: 2}
SPEC
done
"$CCD" validate "$STORE/specs" >"$WORK/validate.log" 2>&1 || {
    cat "$WORK/validate.log" >&2
    exit 1
}

RUST_LOG=${RUST_LOG:-info} "$CCD" localcloud --listen 127.0.0.1:0 --data "$WORK/cloud" \
    >"$WORK/cloud.out" 2>"$WORK/cloud.log" &
CLOUD_PID=$!
COMPUTE=
for _ in $(seq 1 300); do
    COMPUTE=$(sed -n 's/^compute api: //p' "$WORK/cloud.out")
    [ -n "$COMPUTE" ] && break
    kill -0 "$CLOUD_PID" 2>/dev/null || fail_with_logs "the local cloud exited before it was ready"
    sleep 0.05
done
[ -n "$COMPUTE" ] || fail_with_logs "the local cloud did not print its address within 15 s"
ENDPOINT=${COMPUTE%%/compute/v1*}
ENDPOINT=${ENDPOINT%/}
# Written by the local cloud before it answers; every call but the metadata server's takes it.
TOKEN_FILE="$WORK/cloud/token"
cloud_status() { curl -fsS -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$ENDPOINT/admin/v1/status"; }
cloud_status >/dev/null || fail_with_logs "no admin status at $ENDPOINT/admin/v1/status"

METRICS_PORT=$(free_port)
cat >"$WORK/controller.json" <<JSON
{"store": "$STORE", "project": "local", "region": "europe-west1", "endpoint": "$ENDPOINT",
 "endpointTokenFile": "$TOKEN_FILE", "events": "$WORK/events.redb", "apiRequestsPerSecond": 5000,
 "metricsListen": "127.0.0.1:$METRICS_PORT"}
JSON
METRICS="http://127.0.0.1:$METRICS_PORT/metrics"

log "$APPS apps (2 simulated instances each, not exposed), local cloud at $ENDPOINT, $CORES cores"
STARTED=$(now)
RUST_LOG=${RUST_LOG:-info} "$CCD" controller --config "$WORK/controller.json" \
    >"$WORK/controller.out" 2>"$WORK/controller.log" &
CONTROLLER_PID=$!

ready_count() {
    { grep -rlx --include='*.yaml' 'phase: Ready' "$STORE/status" 2>/dev/null || true; } | wc -l
}

READY=0
LAST_REPORT=0
while true; do
    READY=$(ready_count)
    [ "$READY" -ge "$APPS" ] && break
    kill -0 "$CONTROLLER_PID" 2>/dev/null || fail_with_logs "the controller exited ($READY of $APPS Ready)"
    kill -0 "$CLOUD_PID" 2>/dev/null || fail_with_logs "the local cloud exited ($READY of $APPS Ready)"
    T=$(elapsed "$STARTED")
    if awk -v t="$T" -v max="$CONVERGE_TIMEOUT" 'BEGIN { exit !(t > max) }'; then
        PHASES=$({ grep -rh --include='*.yaml' '^phase: ' "$STORE/status" 2>/dev/null || true; } |
            sort | uniq -c | awk '{ printf "%s%s %s", sep, $1, $3; sep = ", " }')
        echo "controller scale: $APPS apps x 2 simulated instances, $CORES cores"
        echo "  FAILED: only $READY of $APPS apps Ready after $CONVERGE_TIMEOUT s (status files: ${PHASES:-none}; goal: all under 60 s)"
        fail_with_logs "gave up waiting for convergence"
    fi
    if [ "${T%.*}" -ge $((LAST_REPORT + 10)) ]; then
        LAST_REPORT=${T%.*}
        log "$T s: $READY of $APPS Ready"
    fi
    sleep 0.2
done
CONVERGED=$(elapsed "$STARTED")
RSS=$(proc_kib "$CONTROLLER_PID" VmRSS)
HWM=$(proc_kib "$CONTROLLER_PID" VmHWM)
CLOUD_RSS=$(proc_kib "$CLOUD_PID" VmRSS)
CONTROLLER_CPU=$(cpu_seconds "$CONTROLLER_PID")
CLOUD_CPU=$(cpu_seconds "$CLOUD_PID")

# Counters at convergence and over the resync window.
curl -fsS "$METRICS" -o /dev/null 2>/dev/null || fail_with_logs "no metrics at $METRICS"
M0=$(curl -fsS "$METRICS")
C0=$(cloud_status)
log "all Ready after $CONVERGED s; counting API calls over ${WINDOW} s"
CPU0=$(cpu_seconds "$CONTROLLER_PID")
CLOUD_CPU0=$(cpu_seconds "$CLOUD_PID")
sleep "$WINDOW"
M1=$(curl -fsS "$METRICS")
C1=$(cloud_status)
WINDOW_CPU=$(awk -v a="$CPU0" -v b="$(cpu_seconds "$CONTROLLER_PID")" 'BEGIN { printf "%.1f", b - a }')
WINDOW_CLOUD_CPU=$(awk -v a="$CLOUD_CPU0" -v b="$(cpu_seconds "$CLOUD_PID")" 'BEGIN { printf "%.1f", b - a }')

reconciles() { metric_sum "$1" ccd_reconciles_total; }
errors() { metric "$1" 'ccd_reconciles_total{controller="deploy",result="error"}'; }
ours() { metric "$1" "ccd_cloud_api_calls_total{kind=\"$2\"}"; }

CONVERGE_READS=$(json_number "$C0" reads)
CONVERGE_MUTATIONS=$(json_number "$C0" mutations)
WINDOW_READS=$(($(json_number "$C1" reads) - CONVERGE_READS))
WINDOW_MUTATIONS=$(($(json_number "$C1" mutations) - CONVERGE_MUTATIONS))
WINDOW_RECONCILES=$(($(reconciles "$M1") - $(reconciles "$M0")))
WINDOW_ERRORS=$(($(errors "$M1") - $(errors "$M0")))
OUR_READS=$(($(ours "$M1" read) - $(ours "$M0" read)))
OUR_MUTATIONS=$(($(ours "$M1" mutation) - $(ours "$M0" mutation)))
OUR_POLLS=$(($(ours "$M1" operation_poll) - $(ours "$M0" operation_poll)))
STILL_READY=$(ready_count)

echo "controller scale: $APPS apps x 2 simulated instances (not exposed) against the local cloud, $CORES cores"
awk -v t="$CONVERGED" -v apps="$APPS" -v r="$CONVERGE_READS" -v m="$CONVERGE_MUTATIONS" \
    -v our_r="$(ours "$M0" read)" -v our_m="$(ours "$M0" mutation)" -v our_p="$(ours "$M0" operation_poll)" \
    -v n="$(reconciles "$M0")" -v dsum="$(metric "$M0" 'ccd_reconcile_duration_seconds_sum{controller="deploy"}')" \
    -v cpu="$CONTROLLER_CPU" -v cloud_cpu="$CLOUD_CPU" 'BEGIN {
    printf "  all apps Ready:                   %.1f s from controller start  (goal: under 60 s)\n", t
    printf "  to converge:                      %d reconciles (%.1f per app, %.0f ms each on average), CPU %.1f s controller + %.1f s local cloud\n", n, n / apps, (n > 0 ? dsum * 1000 / n : 0), cpu, cloud_cpu
    printf "  API calls per new app:            %.1f Compute calls until Ready (28 before issue 11; goal: at most 10): %d reads, %d mutations at the local cloud; the controller counted %d reads, %d mutations, %d operation polls (IAM calls included)\n", (r + m) / apps, r, m, our_r, our_m, our_p
}'
awk -v rss="$RSS" -v hwm="$HWM" -v cloud="$CLOUD_RSS" 'BEGIN {
    printf "  controller memory when converged: VmRSS %.1f MB, VmHWM %.1f MB  (goal: under 100 MB; local cloud VmRSS %.1f MB)\n", rss / 1024, hwm / 1024, cloud / 1024
}'
awk -v w="$WINDOW" -v apps="$APPS" -v n="$WINDOW_RECONCILES" -v e="$WINDOW_ERRORS" -v r="$WINDOW_READS" -v m="$WINDOW_MUTATIONS" \
    -v our_r="$OUR_READS" -v our_m="$OUR_MUTATIONS" -v our_p="$OUR_POLLS" -v ready="$STILL_READY" \
    -v cpu="$WINDOW_CPU" -v cloud_cpu="$WINDOW_CLOUD_CPU" 'BEGIN {
    per = n > 0 ? r / n : 0
    printf "  converged, over %d s:              %d reconciles (%.2f per app, %d failed), %d reads, %d mutations at the local cloud: %.2f reads per app per resync  (goal: 0 mutations, at most 1 read per app per resync)\n", w, n, n / apps, e, r, m, per
    printf "  the controller counted:           %d reads (%.2f per reconcile), %d mutations, %d operation polls; %d of %d apps still Ready\n", our_r, (n > 0 ? our_r / n : 0), our_m, our_p, ready, apps
    printf "  CPU over the window:              %.1f s controller, %.1f s local cloud (%.0f%% and %.0f%% of one core)\n", cpu, cloud_cpu, cpu * 100 / w, cloud_cpu * 100 / w
}'
awk -v t="$CONVERGED" -v rss="$RSS" -v n="$WINDOW_RECONCILES" -v r="$WINDOW_READS" -v m="$WINDOW_MUTATIONS" \
    -v apps="$APPS" -v new_calls="$((CONVERGE_READS + CONVERGE_MUTATIONS))" 'BEGIN {
    if (t >= 60) missed = missed sprintf(", converged in %.1f s (not under 60 s)", t)
    if (new_calls / apps > 10) missed = missed sprintf(", %.1f Compute calls per new app (not at most 10)", new_calls / apps)
    if (rss >= 100 * 1024) missed = missed sprintf(", memory %.1f MB (not under 100 MB)", rss / 1024)
    if (n == 0) missed = missed ", no reconcile in the window"
    if (m > 0) missed = missed sprintf(", %d mutations once converged", m)
    if (n > 0 && r > n) missed = missed sprintf(", %.2f reads per app per resync", r / n)
    print missed == "" ? "  goal met" : "  goal missed: " substr(missed, 3)
}'

exit "$FAILED"
