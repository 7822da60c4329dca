#!/usr/bin/env bash
# Run every cargo-fuzz target for a time budget each (default 60 s): `scripts/fuzz.sh [SECONDS]`.
# FUZZ_JOBS targets run at once (default: the number of cores).
# Needs the machine's nightly toolchain; installs cargo-fuzz from crates.io when missing.
# A crash leaves its input under fuzz/artifacts/<target>/ and fails the run; so does an input
# that runs longer than FUZZ_INPUT_TIMEOUT seconds (default 30: inputs take milliseconds, and
# libFuzzer's own default of 20 minutes let one exponential input stall CI for 13 of them).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
input_timeout="${FUZZ_INPUT_TIMEOUT:-30}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/decnet-fuzz-target}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "error: fuzzing needs a nightly toolchain (rustup toolchain list shows none)" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

jobs="${FUZZ_JOBS:-$(nproc)}"
targets=$(cd fuzz && cargo +nightly fuzz list)
echo "==> building every fuzz target"
(cd fuzz && cargo +nightly fuzz build) >/dev/null

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run_one() {
    local target=$1
    mkdir -p "fuzz/corpus/$target"
    if (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout="$input_timeout" -rss_limit_mb=2048 -print_final_stats=1) >"$logs/$target.log" 2>&1; then
        echo "==> fuzz $target: ${seconds}s clean, $(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$logs/$target.log" | grep -Eo '[0-9]+$') runs"
    else
        echo "==> fuzz $target FAILED"
        tail -40 "$logs/$target.log"
        touch "$logs/$target.failed"
    fi
}
running=0
for target in $targets; do
    run_one "$target" &
    running=$((running + 1))
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
done
wait
failed=()
for target in $targets; do
    [[ -e $logs/$target.failed ]] && failed+=("$target")
done
if ((${#failed[@]})); then
    echo "error: fuzz targets failed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${seconds}s each, all targets clean"
