#!/usr/bin/env bash
# Capture-thread CPU for TCP streams shaped to make a sniffer re-parse (bench/hostile_streams.py):
# `decnet sniffer --read` over FLOWS flows of each kind, user CPU and wall time per binary,
# median of REPS runs. Offline, so no capture noise: the figure is the analyzer's own cost.
#
# Usage: bench/hostile-streams.sh DECNET_BIN [DECNET_BIN…]   env: FLOWS=4 REPS=3 KINDS="tls junk ssh http"
# Needs python3 and GNU time.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
FLOWS=${FLOWS:-4}
REPS=${REPS:-3}
KINDS=${KINDS:-"tls junk ssh http"}
[ $# -ge 1 ] || { echo "usage: $0 DECNET_BIN [DECNET_BIN…]" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf "%-6s %-40s %8s %10s %10s\n" kind binary frames user-s wall-s
for kind in $KINDS; do
    python3 "$here/bench/hostile_streams.py" "$kind" "$FLOWS" "$work/$kind.pcap"
    frames=0
    for bin in "$@"; do
        users=(); walls=()
        for _ in $(seq "$REPS"); do
            rm -rf "$work/data"
            /usr/bin/time -f "%U %e" -o "$work/time" "$bin" sniffer --read "$work/$kind.pcap" \
                --data-dir "$work/data" > "$work/out" 2>&1
            frames=$(sed -n 's/.*read \([0-9]*\) frames.*/\1/p' "$work/out" | tail -1)
            read -r u w < "$work/time"
            users+=("$u"); walls+=("$w")
        done
        med() { printf "%s\n" "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
        printf "%-6s %-40s %8s %10s %10s\n" "$kind" "$bin" "$frames" "$(med "${users[@]}")" "$(med "${walls[@]}")"
    done
done
