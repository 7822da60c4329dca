#!/usr/bin/env bash
# Full sniffer benchmark on a veth pair: `decnet sniffer` (decode + flows + fingerprints +
# events into the store + pcap segment writes) against `tcpdump -w FILE`, same trafgen load.
#
# For each receiver: COUNT frames offered at RATE pps; reports frames received, loss %, the
# receiver's CPU time per packet while the load runs (all its threads' on-CPU ns from just
# before the generator starts to 1 s after it ends, / packets), the same over the whole process
# lifetime (user+sys from GNU time, start-up and shutdown included, / packets) and max RSS. trafgen (in a netns,
# --cpus 1) sends 60-byte eth/IPv4/UDP frames whose source port cycles over 1024..65023, so the
# flow table and the `udp` / `flow` events see many flows (a worst case for events per packet).
#
# Needs root, iproute2, netsniff-ng (trafgen), tcpdump, GNU time.
# Usage: bench/sniffer.sh [REPS]   env: RATE=50000 (or max: no rate limit, as fast as trafgen goes)
#        COUNT=500000 SPORT=4000 (one flow instead of cycling ports)  DECNET_BIN=path (skip the build)
#        RECEIVERS="sniffer-packet sniffer-xdp sniffer-packet-nopcap tcpdump" RELEASE=0|1
#        THREADS=1 (also print each receiver thread's CPU in the window, by thread name, on stderr)
# Receivers: sniffer-xdp, sniffer-packet, sniffer-packet-nopcap, sniffer-*-nolimit (the same with
# --event-rate 0: every per-packet event reaches the store), tcpdump (-w FILE), tcpdump-null
# (-w /dev/null, the issue's reference), capture-xdp and capture-packet (the floor:
# dataplane/examples/capture_rate with the sniffer's backend settings, reading each frame's
# first bytes and counting it — receive and look, no decode, flows, events or pcap).
# CAPTURE_BIN=path (the capture_rate example; built next to decnet when unset).
set -euo pipefail
REPS=${1:-1}
RATE=${RATE:-50000}
COUNT=${COUNT:-500000}
SPORT=${SPORT:-"dinc(1024, 65023)"}
RECEIVERS=${RECEIVERS:-"sniffer-packet sniffer-xdp sniffer-packet-nopcap tcpdump"}
here="$(cd "$(dirname "$0")/.." && pwd)"
NS=dnsbench$$
RX=dnsbrx$$
TX=dnsbtx$$
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

target_dir=${CARGO_TARGET_DIR:-$here/target}
if [ -n "${DECNET_BIN:-}" ]; then
    DECNET=$DECNET_BIN
elif [ "${RELEASE:-0}" = 1 ]; then
    (cd "$here" && cargo build --release -q -p decnet </dev/null)
    DECNET="$target_dir/release/decnet"
else
    (cd "$here" && cargo build -q -p decnet </dev/null)
    DECNET="$target_dir/debug/decnet"
fi

CAPTURE=${CAPTURE_BIN:-}
case " $RECEIVERS " in
*" capture-"*)
    if [ -z "$CAPTURE" ]; then
        profile=debug; flag=()
        [ "${RELEASE:-0}" = 1 ] && { profile=release; flag=(--release); }
        (cd "$here" && cargo build "${flag[@]}" -q -p decnet-dataplane --example capture_rate </dev/null)
        CAPTURE="$target_dir/$profile/examples/capture_rate"
    fi ;;
esac

ip netns add "$NS"
ip link add "$RX" type veth peer name "$TX" netns "$NS"
echo 1 > "/proc/sys/net/ipv6/conf/$RX/disable_ipv6"
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip link set "$RX" up
ip -n "$NS" link set "$TX" up
MAC=$(cat "/sys/class/net/$RX/address")
cat > "$work/udp.cfg" <<CFG
{ eth(da=$MAC, sa=02:00:00:00:00:01), ipv4(saddr=10.99.0.2, daddr=10.99.0.1, ttl=64), udp(sp=$SPORT, dp=9999), fill(0x41, 18) }
CFG

# Nanoseconds on CPU of every thread of the process whose parent is $1 (the receiver under
# /usr/bin/time): the sum of /proc/PID/task/*/schedstat's first field (ns precision, unlike
# the 10 ms ticks of /proc/PID/stat).
cpu_ns() {
    local child
    child=$(pgrep -P "$1" | head -1)
    [ -n "$child" ] || { echo 0; return; }
    cat /proc/"$child"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "%.0f", s}'
}

# With THREADS=1: "tid comm ns" of every thread of that process, to split the window's CPU by thread.
thread_ns() {
    local child t
    child=$(pgrep -P "$1" | head -1)
    [ -n "$child" ] || return 0
    for t in /proc/"$child"/task/*; do
        printf "%s %s %s\n" "${t##*/}" "$(tr ' ' _ < "$t/comm" 2>/dev/null)" "$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null)"
    done
}

# receiver NAME -> "packets cpu_ns_per_pkt maxrss_kb window_ns_per_pkt"
# cpu_ns_per_pkt is the whole process lifetime (start-up, idle wait, drain, shutdown) / packets;
# window_ns_per_pkt is the CPU spent from just before the generator starts until 1 s after it
# ends (the drain included) / packets: the cost at the offered rate, without start-up/shutdown.
receiver() {
    local name=$1 pid pk c0 c1
    rm -rf "$work/data" "$work/dump.pcap"
    case $name in
        tcpdump|tcpdump-null)
            local out="$work/dump.pcap"
            [ "$name" = tcpdump-null ] && out=/dev/null
            /usr/bin/time -f "TIME %U %S %M" -o "$work/time.log" \
                tcpdump -i "$RX" -n -q -w "$out" -B 16384 >"$work/rx.log" 2>&1 &
            pid=$!; sleep 1.5 ;;
        capture-*)
            # The sniffer's AF_XDP settings — keep in step with `Sniffing::start` in
            # controlplane/cli/src/sniffer.rs: no spinning, adaptive 0.5–10 ms coalescing
            # sleeps, 32,768 UMEM frames, rings of 16,384, batches of 4,096.
            /usr/bin/time -f "TIME %U %S %M" -o "$work/time.log" \
                "$CAPTURE" "$RX" --backend "${name#capture-}" --spins 0 --coalesce-us 500 \
                --coalesce-max-us 10000 --frames 32768 --ring 16384 --batch 4096 \
                --touch --quiet --seconds 100000 >"$work/rx.log" 2>&1 &
            pid=$!
            for _ in $(seq 200); do grep -q READY "$work/rx.log" 2>/dev/null && break; sleep 0.1; done ;;
        sniffer-*)
            local args=(--backend packet)
            case $name in sniffer-xdp*) args=(--backend xdp) ;; esac
            case $name in *-nopcap*) args+=(--no-pcap) ;; esac
            case $name in *-nolimit) args+=(--event-rate 0) ;; esac
            /usr/bin/time -f "TIME %U %S %M" -o "$work/time.log" \
                "$DECNET" sniffer --data-dir "$work/data" --interface "$RX" --progress-secs 0 "${args[@]}" >"$work/rx.log" 2>&1 &
            pid=$!
            for _ in $(seq 200); do grep -q "sniffer: capturing" "$work/rx.log" 2>/dev/null && break; sleep 0.1; done ;;
    esac
    local rate=(-b "${RATE}pps")
    [ "$RATE" = max ] && rate=()
    c0=$(cpu_ns "$pid")
    [ "${THREADS:-0}" = 1 ] && thread_ns "$pid" > "$work/threads0"
    ip netns exec "$NS" trafgen --cpus 1 -q -C -i "$work/udp.cfg" -o "$TX" -n "$COUNT" "${rate[@]}" >"$work/trafgen.log" 2>&1
    sleep 1
    c1=$(cpu_ns "$pid")
    if [ "${THREADS:-0}" = 1 ]; then
        thread_ns "$pid" > "$work/threads1"
        # To stderr, so the caller's `read` of the figures is unaffected.
        awk -v n="$name" 'NR==FNR {a[$1]=$3; next} {d=$3-a[$1]; if (d>0) c[$2]+=d}
            END {for (k in c) printf "  %s thread %-20s %12.0f ns\n", n, k, c[k]}' \
            "$work/threads0" "$work/threads1" | sort -k5 -n -r >&2
    fi
    if [ "${name%-null}" = tcpdump ]; then
        pkill -INT -P "$pid" tcpdump || kill -INT "$pid"
    elif [ "${name#capture-}" != "$name" ]; then
        pkill -TERM -P "$pid" capture_rate || kill -TERM "$pid"
    else
        pkill -TERM -P "$pid" decnet || kill -TERM "$pid"
    fi
    wait "$pid" || true
    if [ "${name%-null}" = tcpdump ]; then
        pk=$(awk '/packets captured/{print $1}' "$work/rx.log")
    elif [ "${name#capture-}" != "$name" ]; then
        pk=$(sed -n 's/^RESULT .* packets=\([0-9]*\) .*/\1/p' "$work/rx.log")
    else
        pk=$(sed -n 's/.*captured \([0-9]*\) frames.*/\1/p' "$work/rx.log" | tail -1)
    fi
    read -r _ u s m < "$work/time.log"
    echo "${pk:-0} $(awk -v u="$u" -v s="$s" -v p="${pk:-0}" 'BEGIN{printf "%.0f", (p>0)?(u+s)*1e9/p:0}') $m $(awk -v a="$c0" -v b="$c1" -v p="${pk:-0}" 'BEGIN{printf "%.0f", (p>0)?(b-a)/p:0}')"
}

echo "kernel $(uname -r), $(nproc) CPUs, trafgen --cpus 1, $COUNT 60-byte frames at $RATE pps, $REPS rep(s)"
printf "%-22s %-4s %10s %7s %14s %16s %12s\n" receiver rep received loss% ns/pkt-window ns/pkt-lifetime maxRSS-KiB
for rep in $(seq "$REPS"); do
    for r in $RECEIVERS; do
        read -r pk ns m win < <(receiver "$r")
        loss=$(awk -v s="$COUNT" -v p="$pk" 'BEGIN{printf "%.2f", (s-p)*100/s}')
        printf "%-22s %-4s %10s %7s %14s %16s %12s\n" "$r" "$rep" "$pk" "$loss" "$win" "$ns" "$m"
    done
done
