#!/usr/bin/env bash
# Profiler throughput and memory: 1M synthetic events (and 100k, to show memory does not grow
# with the event count) through the pure engine, and through the profiler worker reading a
# SQLite store and committing attackers/behaviour/sessions/bounties/cursor per batch of at most
# 500k events or 2 s of profiling (profile_bench's default, as `decnet profiler`).
#
#   bench/intel.sh [EVENTS] [ATTACKERS]     (defaults: 1000000 events, 5000 attacker IPs)
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

$BENCH engine $((EVENTS / 10)) "$IPS"
$BENCH engine "$EVENTS" "$IPS"
$BENCH fill "$TMP/small.db" $((EVENTS / 10)) "$IPS"
$BENCH profile "$TMP/small.db"
$BENCH fill "$TMP/big.db" "$EVENTS" "$IPS"
$BENCH profile "$TMP/big.db"
