#!/usr/bin/env bash
# Run every cargo-fuzz target for a time budget each (default 60 s): `scripts/fuzz.sh [SECONDS]`.
# Needs the machine's nightly toolchain; installs cargo-fuzz from crates.io when missing.
# A crash leaves its input under fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/decnet-fuzz-target}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "error: fuzzing needs a nightly toolchain (rustup toolchain list shows none)" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

targets=$(cd fuzz && cargo +nightly fuzz list)
failed=()
for target in $targets; do
    echo "==> fuzz $target for ${seconds}s"
    mkdir -p "fuzz/corpus/$target"
    log=$(mktemp)
    if (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
        grep -E "^(Done|stat::number_of_executed_units)" "$log" || true
    else
        tail -40 "$log"
        failed+=("$target")
    fi
    rm -f "$log"
done
if ((${#failed[@]})); then
    echo "error: fuzz targets failed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${seconds}s each, all targets clean"
