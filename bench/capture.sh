#!/usr/bin/env bash
# Raw capture benchmark on a veth pair: AF_XDP (native), AF_PACKET TPACKET_V3 and
# `tcpdump -w /dev/null`, in the same run, against the same trafgen load.
#
#   (a) loss at the highest rate trafgen reaches (COUNT_MAX frames, no rate limit)
#   (b) receiver CPU time per packet (user+sys / packets) at a fixed offered rate (RATE),
#       and max RSS of the receiver
#
# The receiver only counts frames (examples/capture_rate.rs): no decode, no flow table.
# trafgen runs in a network namespace with --cpus 1 and sends 60-byte eth/IPv4/UDP frames to the
# receiving end, which has no address (nothing answers, so only trafgen's frames are on the wire).
#
# Needs root, iproute2, netsniff-ng (trafgen), tcpdump, GNU time.
# Backends: xdp (AF_XDP, native XDP, busy-polling: default spins), xdp-poll (native, no spinning:
# sleeps in poll() whenever the ring is empty), xdp-coalesce (native, no spinning, and after a
# wakeup that finds under half a batch waits 1 ms so frames arrive in batches), xdp-generic (SKB-mode XDP, busy-polling),
# packet (AF_PACKET TPACKET_V3, 16 x 1 MiB blocks, 10 ms block timeout), tcpdump (-B 16384).
# Usage: bench/capture.sh [REPS]   env: COUNT_MAX=2000000 RATE=100000 COUNT_RATE=1000000
#        BACKENDS="xdp xdp-poll xdp-coalesce xdp-generic packet tcpdump" RELEASE=0|1
set -euo pipefail
REPS=${1:-3}
COUNT_MAX=${COUNT_MAX:-2000000}
RATE=${RATE:-100000}
COUNT_RATE=${COUNT_RATE:-1000000}
BACKENDS=${BACKENDS:-"xdp xdp-poll xdp-coalesce xdp-generic packet tcpdump"}
here="$(cd "$(dirname "$0")/.." && pwd)"
NS=dncbench$$
RX=dncbrx$$
TX=dncbtx$$
work=$(mktemp -d)

cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$RX" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in trafgen tcpdump ip /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install netsniff-ng tcpdump iproute2 time)" >&2; exit 1; }
done

# RELEASE=1: the shipping profile (fat LTO; slow to build). Default: the dev profile at
# opt-level 2 (dependencies are already opt-level 2 there), which reuses the test build.
target_dir=${CARGO_TARGET_DIR:-$here/target}
if [ "${RELEASE:-0}" = 1 ]; then
    echo "building capture_rate (release)..." >&2
    (cd "$here" && cargo build --release -q -p decnet-dataplane --example capture_rate </dev/null)
    RATE_BIN="$target_dir/release/examples/capture_rate"
else
    echo "building capture_rate (dev profile, opt-level 2)..." >&2
    (cd "$here" && CARGO_PROFILE_DEV_OPT_LEVEL=2 cargo build -q -p decnet-dataplane --example capture_rate </dev/null)
    RATE_BIN="$target_dir/debug/examples/capture_rate"
fi

ip netns add "$NS"
ip link add "$RX" type veth peer name "$TX" netns "$NS"
echo 1 > "/proc/sys/net/ipv6/conf/$RX/disable_ipv6"
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip link set "$RX" up
ip -n "$NS" link set "$TX" up
MAC=$(cat "/sys/class/net/$RX/address")
cat > "$work/udp.cfg" <<CFG
{ eth(da=$MAC, sa=02:00:00:00:00:01), ipv4(saddr=10.99.0.2, daddr=10.99.0.1, ttl=64), udp(sp=4000, dp=9999), fill(0x41, 18) }
CFG

# trafgen COUNT [RATE]: prints nothing; frames offered = COUNT (trafgen -n is exact).
trafgen_run() {
    local extra=()
    [ -n "${2:-}" ] && extra=(-b "${2}pps")
    ip netns exec "$NS" trafgen --cpus 1 -q -C -i "$work/udp.cfg" -o "$TX" -n "$1" "${extra[@]}" >"$work/trafgen.log" 2>&1
}

# receiver BACKEND COUNT [RATE] -> "packets cpu_ns_per_pkt maxrss_kb dropped seconds"
receiver() {
    local backend=$1 count=$2 rate=${3:-}
    local t0 t1
    if [ "$backend" = tcpdump ]; then
        /usr/bin/time -f "TIME %U %S %M" -o "$work/time.log" \
            tcpdump -i "$RX" -n -q -w /dev/null -B 16384 >"$work/rx.log" 2>&1 &
        local pid=$!
        sleep 1.5
        t0=$(date +%s.%N); trafgen_run "$count" "$rate"; t1=$(date +%s.%N)
        sleep 1
        pkill -INT -P "$pid" tcpdump || kill -INT "$pid"
        wait "$pid" || true
        local pk drop
        pk=$(awk '/packets captured/{print $1}' "$work/rx.log")
        drop=$(awk '/packets dropped by kernel/{print $1}' "$work/rx.log")
        read -r _ u s m < "$work/time.log"
        echo "$pk $(awk -v u="$u" -v s="$s" -v p="$pk" 'BEGIN{printf "%.0f", (p>0)?(u+s)*1e9/p:0}') $m $drop $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')"
    else
        local args
        case $backend in
            xdp) args=(--backend xdp --xdp-mode native) ;;
            xdp-poll) args=(--backend xdp --xdp-mode native --spins 0) ;;
            xdp-generic) args=(--backend xdp --xdp-mode generic) ;;
            xdp-coalesce) args=(--backend xdp --xdp-mode native --spins 0 --coalesce-us 1000) ;;
            packet) args=(--backend packet) ;;
            *) echo "unknown backend $backend" >&2; exit 2 ;;
        esac
        "$RATE_BIN" "$RX" "${args[@]}" --seconds 600 --quiet >"$work/rx.log" 2>"$work/rx.err" &
        local pid=$!
        for _ in $(seq 100); do grep -q READY "$work/rx.log" 2>/dev/null && break; sleep 0.1; done
        t0=$(date +%s.%N); trafgen_run "$count" "$rate"; t1=$(date +%s.%N)
        sleep 1
        kill -INT "$pid"; wait "$pid"
        local line; line=$(grep '^RESULT' "$work/rx.log")
        kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
        echo "$(kv packets) $(kv cpu_ns_per_pkt) $(kv maxrss_kb) $(kv dropped) $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')"
    fi
}

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

echo "kernel $(uname -r), $(nproc) CPUs, trafgen --cpus 1, 60-byte frames, $REPS rep(s)"
printf "%-11s %-4s | %-40s | %-44s\n" backend rep "(a) max rate: sent recv loss% pps" "(b) ${RATE} pps: recv ns/pkt(cpu) maxRSS(KiB)"
declare -A LOSS CPU RSS PPS
for rep in $(seq "$REPS"); do
    for b in $BACKENDS; do
        read -r pa _ _ da sa < <(receiver "$b" "$COUNT_MAX")
        loss=$(awk -v s="$COUNT_MAX" -v r="$pa" 'BEGIN{printf "%.2f", (s-r)*100/s}')
        pps=$(awk -v r="$COUNT_MAX" -v t="$sa" 'BEGIN{printf "%.0f", r/t}')
        read -r pb cb mb db _ < <(receiver "$b" "$COUNT_RATE" "$RATE")
        printf "%-11s %-4s | %9s %9s %6s %9s | %9s %8s %10s\n" "$b" "$rep" "$COUNT_MAX" "$pa" "$loss" "$pps" "$pb" "$cb" "$mb"
        LOSS[$b]+="$loss "; CPU[$b]+="$cb "; RSS[$b]+="$mb "; PPS[$b]+="$pps "
    done
done
echo
echo "median of $REPS: backend loss%@max  offered-pps@max  cpu-ns/pkt@${RATE}pps  maxRSS-KiB"
for b in $BACKENDS; do
    printf "%-11s %8s %10s %10s %10s\n" "$b" \
        "$(tr ' ' '\n' <<<"${LOSS[$b]}" | grep . | median)" "$(tr ' ' '\n' <<<"${PPS[$b]}" | grep . | median)" \
        "$(tr ' ' '\n' <<<"${CPU[$b]}" | grep . | median)" "$(tr ' ' '\n' <<<"${RSS[$b]}" | grep . | median)"
done
