#!/usr/bin/env bash
# Web API under load: a store of EVENTS synthetic events and ATTACKERS attacker IPs, profiled
# by the real profiler (attackers, sessions, bounties), served by `decnet api` (release), and
# `wrk` (Debian package) at CONNS connections on 2 threads against the dashboard's heavy
# routes. Prints one line per route: p50, p99, requests/s, requests, errors (non-2xx and
# socket errors). Goal: p99 < 50 ms with no errors.
#
#   bench/api.sh [sqlite|postgres] [EVENTS=1000000] [ATTACKERS=10000] [CONNS=1000] [SECS=20]
#
# wrk sends the Accept-Encoding a dashboard's browser sends (Chromium's, by default), so the
# server answers as it would answer the dashboard: gzipped where it keeps a gzip form. Set
# ACCEPT_ENCODING= (empty) for clients that take only plain bodies; each route's line shows the
# body size wrk received.
#
# postgres needs a server: `eval "$(scripts/databases.sh start)"` exports DECNET_TEST_PG_URL
# (a fresh database `decnet_bench` is created on it). The filled store is kept in
# $BENCH_DIR (default /var/tmp/decnet-bench-api/<backend>-<events>) and reused by later runs
# (delete it to refill); filling 1M events and profiling them takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
EVENTS=${2:-1000000}
IPS=${3:-10000}
CONNS=${4:-1000}
SECS=${5:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/decnet-target}
export CARGO_CACHE_RUSTC_INFO=0
command -v wrk >/dev/null || { echo "bench/api.sh needs wrk (apt-get install wrk)" >&2; exit 1; }

echo "building the release binaries…" >&2
cargo build -q --release -p decnet --bin decnet -p decnet-intel --example profile_bench </dev/null
DECNET=$CARGO_TARGET_DIR/release/decnet
FILL=$CARGO_TARGET_DIR/release/examples/profile_bench

DIR=${BENCH_DIR:-/var/tmp/decnet-bench-api/$BACKEND-$EVENTS-$IPS}
mkdir -p "$DIR"
case "$BACKEND" in
sqlite) URL="sqlite://$DIR/bench.db?mode=rwc" ;;
postgres)
    : "${DECNET_TEST_PG_URL:?start PostgreSQL first: eval \"\$(scripts/databases.sh start)\"}"
    if [[ ! -e $DIR/filled ]]; then
        psql -q "$DECNET_TEST_PG_URL" -c 'DROP DATABASE IF EXISTS decnet_bench' -c 'CREATE DATABASE decnet_bench'
    fi
    URL="${DECNET_TEST_PG_URL%/*}/decnet_bench"
    ;;
*) echo "backend is sqlite or postgres" >&2; exit 2 ;;
esac
if [[ ! -e $DIR/filled ]]; then
    "$FILL" fill "$URL" "$EVENTS" "$IPS"
    "$FILL" profile "$URL"
    touch "$DIR/filled"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATA=$(mktemp -d)
LUA=$(mktemp --suffix .lua)
API_PID=
cleanup() {
    [[ -n $API_PID ]] && kill "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null
    rm -rf "$DATA" "$LUA"
}
trap cleanup EXIT
# The admin of a fresh data dir: a known first password, changed once, as a user would.
DECNET_ADMIN_PASSWORD=bench-first-pass DECNET_DB_URL=$URL \
    "$DECNET" api --data-dir "$DATA" --port "$PORT" 2>"$DATA/api.log" &
API_PID=$!
for _ in $(seq 1 300); do grep -q "API and dashboard on" "$DATA/api.log" 2>/dev/null && break; sleep 0.1; done
BASE=http://127.0.0.1:$PORT/api/v1
login() {
    curl -sf "$BASE/auth/login" -H 'Content-Type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
# A reused store already has that admin (users live in the database): its changed password.
if ! TOKEN=$(login bench-second-pass 2>/dev/null); then
    T=$(login bench-first-pass)
    curl -sf "$BASE/auth/change-password" -H "Authorization: Bearer $T" -H 'Content-Type: application/json' \
        -d '{"old_password":"bench-first-pass","new_password":"bench-second-pass"}' >/dev/null
    TOKEN=$(login bench-second-pass)
fi
export TOKEN

ACCEPT_ENCODING=${ACCEPT_ENCODING-gzip, deflate, br, zstd}
export ACCEPT_ENCODING
cat >"$LUA" <<'LUA'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
if os.getenv("ACCEPT_ENCODING") ~= "" then
  wrk.headers["Accept-Encoding"] = os.getenv("ACCEPT_ENCODING")
end
done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format("p50 %.1f ms  p99 %.1f ms  %.0f req/s  %d requests  %d errors (non-2xx %d, timeout %d, socket %d)\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6), summary.requests, errors, e.status, e.timeout,
    e.connect + e.read + e.write))
end
LUA
ulimit -n $((CONNS * 2 + 1024))
echo "backend $BACKEND, $EVENTS events, $IPS attacker IPs, $CONNS connections, 2 threads, ${SECS}s per route, Accept-Encoding: ${ACCEPT_ENCODING:-(none)}; $(uptime)"
# One request first: the first answer of a cached query is computed, not served.
# /auth/me is the floor (token check, user row, JSON): the peer the routes are compared with.
for path in "/auth/me" "/attackers" "/logs" "/stats" "/logs/histogram"; do
    read -r code size < <(curl -s -o /dev/null -w '%{http_code} %{size_download}\n' \
        -H "Authorization: Bearer $TOKEN" ${ACCEPT_ENCODING:+-H "Accept-Encoding: $ACCEPT_ENCODING"} "$BASE$path")
    [[ $code == 200 ]] || { echo "$path answered $code" >&2; exit 1; }
    printf '%-16s %6s B  ' "$path" "$size"
    wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 10s -s "$LUA" "$BASE$path" | tail -1
done
echo "api RSS after the runs: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$API_PID/status)"
