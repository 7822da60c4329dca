#!/usr/bin/env bash
# Bytes each thread of a command dirtied for writing (its `write_bytes`), summed by thread name:
# which stage of a process writes how much. Threads that exit early are counted from their
# last sample (every 50 ms), so a thread that lives less than that may be missed.
#
#   bench/thread_io.sh COMMAND [ARGS...]
#   e.g. TMPDIR=/var/tmp bench/thread_io.sh target/release/examples/flush_rate 200000
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
"$@" &
PID=$!
declare -A WRITTEN
while kill -0 "$PID" 2>/dev/null; do
    for task in /proc/"$PID"/task/*; do
        name=$(cat "$task/comm" 2>/dev/null) || continue
        bytes=$(awk '/^write_bytes/ {print $2}' "$task/io" 2>/dev/null) || continue
        [[ -n $bytes ]] && WRITTEN["$name:${task##*/}"]=$bytes
    done
    sleep 0.05
done
status=0
wait "$PID" || status=$?
for key in "${!WRITTEN[@]}"; do echo "${key%%:*} ${WRITTEN[$key]}"; done |
    awk '{sum[$1] += $2} END {for (n in sum) printf "%-20s %10.1f MB written\n", n, sum[n] / 1e6}' | sort
exit "$status"
