#!/usr/bin/env bash
# Profiler throughput and memory: 1M synthetic events (and 100k, to show memory does not grow
# with the event count) through the pure engine, and through the profiler worker reading a
# SQLite store and committing attackers/behaviour/sessions/bounties/cursor per batch of at most
# 500k events or 2 s of profiling (profile_bench's default, as `decnet profiler`).
#
#   bench/intel.sh [EVENTS] [ATTACKERS]     (defaults: 1000000 events, 5000 attacker IPs)
#
# PAD=1000 pads every command and password to about 1,000 distinct bytes: attackers then
# reach their lists' caps with the longest entries, the costliest state to hold and save.
#
# The figures in BENCHMARKS.md are of the shipped (fat-LTO) profile:
#   CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 bench/intel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
IPS=${2:-5000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/decnet-target}
export CARGO_CACHE_RUSTC_INFO=0
# A fast release build (no LTO, 16 codegen units) unless the caller asks for the shipped
# profile: fat LTO of the whole tree takes too long on the shared 2-core bench machine.
export CARGO_PROFILE_RELEASE_LTO=${CARGO_PROFILE_RELEASE_LTO:-false}
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-16}
# PROFILE_BENCH=path runs an already built binary (e.g. one built from an older commit).
BENCH=${PROFILE_BENCH:-}
if [ -z "$BENCH" ]; then
    echo "building the release example…" >&2
    cargo build -q --release -p decnet-intel --example profile_bench </dev/null
    BENCH=$CARGO_TARGET_DIR/release/examples/profile_bench
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Fold a fresh fill's WAL into the database file first, as the appliance's background
# checkpoint does, so the profiler reads the store it would meet in service.
fill() {
    $BENCH fill "$@"
    if command -v sqlite3 >/dev/null; then
        sqlite3 "$1" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
    fi
}

$BENCH engine $((EVENTS / 10)) "$IPS"
$BENCH engine "$EVENTS" "$IPS"
fill "$TMP/small.db" $((EVENTS / 10)) "$IPS"
$BENCH profile "$TMP/small.db"
fill "$TMP/big.db" "$EVENTS" "$IPS"
$BENCH profile "$TMP/big.db"
rm -f "$TMP"/*.db*

# Memory against the event count. Each attacker's lists are capped (commands, sessions,
# credentials, fingerprints), so memory follows attackers × caps: with 5,000 attackers the caps
# are still filling at 1M events. With 500 attackers they are full by ~1M events, and peak RSS
# must then stay flat however many more events come (PLATEAU_IPS=0 skips this part).
PLATEAU_IPS=${PLATEAU_IPS:-500}
if [ "$PLATEAU_IPS" != 0 ]; then
    for n in "$EVENTS" $((EVENTS * 4)) $((EVENTS * 8)); do
        $BENCH engine "$n" "$PLATEAU_IPS"
    done
    for n in "$EVENTS" $((EVENTS * 4)); do
        fill "$TMP/plateau.db" "$n" "$PLATEAU_IPS"
        $BENCH profile "$TMP/plateau.db"
        rm -f "$TMP"/plateau.db*
    done
fi
