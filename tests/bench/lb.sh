#!/usr/bin/env bash
# Throughput and tail latency of ccd-lb against nginx, proxying the same two backends.
#
# Both proxies run one worker per core (nginx: worker_processes auto; ccd-lb: one Tokio worker
# thread per core), keep upstream connections alive, and add the same forwarding headers
# (X-Forwarded-For, X-Forwarded-Proto, Via). The same wrk load runs against each in turn.
#
# The machine is shared, so runs alternate (nginx, ccd-lb, nginx, ...) for ROUNDS rounds and
# the medians are compared: a burst of outside load then hits both sides alike.
#
# Environment: DURATION (default 10s), ROUNDS (3), CONNECTIONS (64), THREADS (2), WARMUP (3s),
# SKIP_BUILD=1 to use examples already built in $CARGO_TARGET_DIR.
# Goal: ccd-lb throughput >= 0.9 x nginx's, and p99 at most 1 ms above nginx's.
set -euo pipefail

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3s}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d -t ccd-lb-bench.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log() { echo "lb-bench: $*" >&2; }

install_tools() {
    local missing=()
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y "${missing[@]}" >"$WORK/apt.log" 2>&1; then
        apt-get update >>"$WORK/apt.log" 2>&1
        apt-get install -y "${missing[@]}" >>"$WORK/apt.log" 2>&1 || {
            cat "$WORK/apt.log" >&2
            exit 1
        }
    fi
}

# shellcheck source=ports.bash
source "$(dirname "${BASH_SOURCE[0]}")/ports.bash"

wait_http_ok() {
    local url=$1 name=$2
    for _ in $(seq 1 250); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then
            return
        fi
        sleep 0.04
    done
    log "$name did not answer at $url"
    exit 1
}

# Prints "requests_per_second p99_ms" for one wrk run.
run_wrk() {
    local url=$1 out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")
    echo "$out" >&2
    if echo "$out" | grep -q "Non-2xx"; then
        log "non-2xx responses during the run against $url"
        exit 1
    fi
    local rps p99
    rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {
        v = $2
        if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v) }
        else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }
        printf "%.3f", v
    }')
    echo "$rps $p99"
}

install_tools
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building release examples"
    (cd "$ROOT" && cargo build --release -p ccd-lb --examples)
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
EXAMPLES="$TARGET_DIR/release/examples"

BACKEND1=$(free_port)
BACKEND2=$(free_port)
"$EXAMPLES/bench_backend" "$BACKEND1" 2>"$WORK/backend1.log" &
PIDS+=($!)
"$EXAMPLES/bench_backend" "$BACKEND2" 2>"$WORK/backend2.log" &
PIDS+=($!)
wait_http_ok "http://127.0.0.1:$BACKEND1/" backend1
wait_http_ok "http://127.0.0.1:$BACKEND2/" backend2
log "backends on $BACKEND1 and $BACKEND2, body $(curl -s "http://127.0.0.1:$BACKEND1/" | wc -c) bytes"

OURS=$(free_port)
RUST_LOG=warn "$EXAMPLES/bench_lb" "$OURS" "$BACKEND1" "$BACKEND2" 2>"$WORK/ccd-lb.log" &
PIDS+=($!)
wait_http_ok "http://127.0.0.1:$OURS/" ccd-lb

NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream backends {
        server 127.0.0.1:$BACKEND1;
        server 127.0.0.1:$BACKEND2;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Via "1.1 nginx";
            add_header Via "1.1 nginx";
        }
    }
}
CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr.log" &
PIDS+=($!)
wait_http_ok "http://127.0.0.1:$NGINX_PORT/" nginx

log "warming up ($WARMUP each)"
DURATION=$WARMUP run_wrk "http://127.0.0.1:$NGINX_PORT/" >/dev/null 2>&1
DURATION=$WARMUP run_wrk "http://127.0.0.1:$OURS/" >/dev/null 2>&1

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$WORK/nginx.results"
: >"$WORK/ours.results"
for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS nginx: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency"
    run_wrk "http://127.0.0.1:$NGINX_PORT/" >>"$WORK/nginx.results"
    log "round $round/$ROUNDS ccd-lb: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency"
    run_wrk "http://127.0.0.1:$OURS/" >>"$WORK/ours.results"
done

echo
echo "per round (requests/s p99_ms):"
paste -d' ' "$WORK/nginx.results" "$WORK/ours.results" |
    awk '{ printf "  round %d  nginx %8.0f %7.3f   ccd-lb %8.0f %7.3f\n", NR, $1, $2, $3, $4 }'
NGINX_RPS=$(cut -d' ' -f1 "$WORK/nginx.results" | median)
NGINX_P99=$(cut -d' ' -f2 "$WORK/nginx.results" | median)
OURS_RPS=$(cut -d' ' -f1 "$WORK/ours.results" | median)
OURS_P99=$(cut -d' ' -f2 "$WORK/ours.results" | median)

awk -v nr="$NGINX_RPS" -v np="$NGINX_P99" -v or="$OURS_RPS" -v op="$OURS_P99" \
    -v rounds="$ROUNDS" 'BEGIN {
    ratio = or / nr
    added = op - np
    printf "\nmedians of %d rounds\n", rounds
    printf "%-8s %14s %10s\n", "proxy", "requests/s", "p99 ms"
    printf "%-8s %14.0f %10.3f\n", "nginx", nr, np
    printf "%-8s %14.0f %10.3f\n", "ccd-lb", or, op
    printf "\nthroughput ccd-lb/nginx: %.3f (goal >= 0.9)\n", ratio
    printf "added p99: %+.3f ms (goal <= 1 ms)\n", added
    printf "goal %s\n", (ratio >= 0.9 && added <= 1.0) ? "met" : "missed"
}'
