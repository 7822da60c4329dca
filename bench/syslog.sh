#!/usr/bin/env bash
# Syslog intake throughput: `decnet collect` (RFC 5424 → durable redb segments) against
# Debian's rsyslog (imudp/imuxsock → omfile) on this machine, in the same run; plus the
# redb → SQLite flush rate.
#
#   bench/syslog.sh [MESSAGES] [RUNS]      (defaults: 300000 messages, 3 runs; needs root for apt)
#   DECNET_ARGS="--flusher-nice 0" bench/syslog.sh …   (extra flags for `decnet collect`)
#   DECNET_BIN=/path/to/decnet bench/syslog.sh …      (another decnet binary, e.g. for before/after)
#
# Each run sends MESSAGES messages of 400 bytes with dataplane/examples/syslog_flood.rs over a
# unix datagram socket (lossless: the sender waits when the receiver's queue is full) and over
# UDP with `sendmmsg`, 32 datagrams per call (`udp-batch`: the sender blasts faster than either
# receiver takes them; what the receiver cannot take is dropped by the kernel, shows up as loss
# and is counted in the `udp drops` column: the delta of the kernel's Udp InErrors in
# /proc/net/snmp over the run, system-wide; it includes RcvbufErrors, the full-buffer drops).
# SYSTEMS may add `sink` (dataplane/examples/syslog_sink.rs: receives and counts, parses and
# writes nothing): the most any receiver can show with this sender on this machine, since the
# sender and the kernel's socket work share the same cores.
# THREADS=1 also prints decnet's CPU per message by thread name (intake, writers, flusher,
# SQLite worker, …), counted like the CPU column, on stderr.
# TRANSPORTS="unix udp" selects others (`udp` = one `send` per datagram, which tops out below
# either receiver's capacity); SYSTEMS="decnet" measures one receiver; SKIP_FLUSH=1 skips the
# flush benchmark; SKIP_BUILD=1 uses the binaries already in CARGO_TARGET_DIR. Throughput = messages processed / seconds from the first send until the receiver has
# processed the last one (decnet: made durable in a segment; rsyslog: written to its output file,
# not fsynced). CPU = receiver's user+system time per message, counted from the first send
# until 1 s after the receiver's count stopped growing (so for decnet it includes most of the
# SQL flush of the flood, which runs behind intake). Medians of RUNS.
#
# rsyslog writes with omfile's defaults (no async writer, flush at the end of each batch): with
# `asyncWriting="on"` its last lines reach the file only when the 1-second flush interval
# fires, which measured rsyslog at about half its real rate (the figures before 2026-11-29).
# The kernel's unix datagram queue (net.unix.max_dgram_qlen) is set to UNIX_QLEN (default 512,
# systemd's default on Debian; this machine boots with the kernel's 10) for both receivers and
# restored afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-300000}
RUNS=${2:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/decnet-target}
export CARGO_CACHE_RUSTC_INFO=0
TICKS=$(getconf CLK_TCK)

if ! command -v rsyslogd >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog >/dev/null
fi
if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "building release binaries…" >&2
    # Separate commands: with --example, cargo builds only that example, not the decnet binary.
    cargo build -q --release -p decnet --bin decnet </dev/null
    cargo build -q --release -p decnet-dataplane --example syslog_flood --example syslog_sink </dev/null
    cargo build -q --release -p decnet-store --example flush_rate </dev/null
fi
DECNET=${DECNET_BIN:-$CARGO_TARGET_DIR/release/decnet}
FLOOD=$CARGO_TARGET_DIR/release/examples/syslog_flood
SINK=$CARGO_TARGET_DIR/release/examples/syslog_sink
FLUSH=$CARGO_TARGET_DIR/release/examples/flush_rate

WORK=$(mktemp -d /var/tmp/decnet-bench.XXXXXX)
PIDS=()
QLEN_BEFORE=$(sysctl -n net.unix.max_dgram_qlen)
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sysctl -qw net.unix.max_dgram_qlen="$QLEN_BEFORE" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
sysctl -qw net.unix.max_dgram_qlen="${UNIX_QLEN:-512}"
echo "net.unix.max_dgram_qlen=$(sysctl -n net.unix.max_dgram_qlen) for this run (was $QLEN_BEFORE)" >&2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# "name ticks" of every thread of PID, summed by thread name (THREADS=1).
thread_ticks() {
    for t in /proc/"$1"/task/*; do
        echo "$(tr ' ' _ <"$t/comm" 2>/dev/null) $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null)"
    done | awk 'NF == 2 {a[$1] += $2} END {for (k in a) print k, a[k]}'
}
# Kernel UDP receive errors so far (InErrors, which counts every RcvbufErrors drop too),
# system-wide.
udp_drops() {
    awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) col[$i] = i; h = 1 } else { print $col["InErrors"] } }' /proc/net/snmp
}

# wait_settled COUNT_COMMAND: poll until the count stops growing for 1 s; prints
# "count seconds_until_last_growth".
wait_settled() {
    local start=$1
    shift
    local last=-1 last_change=$start now count
    while true; do
        count=$("$@")
        now=$(date +%s.%N)
        if [[ $count != "$last" ]]; then
            last=$count
            last_change=$now
        elif (($(echo "$now - $last_change > 1.0" | bc))); then
            echo "$count $(echo "$last_change - $start" | bc)"
            return
        fi
        sleep 0.05
    done
}

decnet_count() { grep -o 'durable_total=[0-9]*' "$WORK/decnet.err" | tail -1 | cut -d= -f2 || echo 0; }
sink_count() { { grep -o '[0-9]*' "$WORK/sink.out" || echo 0; } | tail -1; }
rsyslog_count() { if [[ -f $WORK/rsyslog.out ]]; then wc -l <"$WORK/rsyslog.out"; else echo 0; fi; }

start_decnet() {
    rm -rf "$WORK/decnet"
    DECNET_LOG=decnet_store::pipeline=debug NO_COLOR=1 "$DECNET" collect --data-dir "$WORK/decnet" ${DECNET_ARGS:-} \
        --udp 127.0.0.1:25514 --progress-secs 0 --lifecycle-window-ms 0 2>"$WORK/decnet.err" &
    RECEIVER=$!
    PIDS+=("$RECEIVER")
    while ! [[ -S $WORK/decnet/intake.sock ]]; do sleep 0.05; done
    SOCK=$WORK/decnet/intake.sock
    UDP=127.0.0.1:25514
    COUNT=decnet_count
}

start_rsyslog() {
    rm -f "$WORK/rsyslog.out" "$WORK/rsyslog.sock"
    cat >"$WORK/rsyslog.conf" <<EOF
global(workDirectory="$WORK" maxMessageSize="64k")
module(load="imudp" threads="1")
module(load="imuxsock" SysSock.Use="off")
input(type="imudp" address="127.0.0.1" port="25515" rcvbufSize="16m")
input(type="imuxsock" Socket="$WORK/rsyslog.sock" RateLimit.Interval="0" UseSpecialParser="off")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="$WORK/rsyslog.out" template="raw" ioBufferSize="256k")
EOF
    rsyslogd -n -f "$WORK/rsyslog.conf" -i "$WORK/rsyslog.pid" 2>"$WORK/rsyslog.err" &
    RECEIVER=$!
    PIDS+=("$RECEIVER")
    while ! [[ -S $WORK/rsyslog.sock ]]; do sleep 0.05; done
    SOCK=$WORK/rsyslog.sock
    UDP=127.0.0.1:25515
    COUNT=rsyslog_count
}

start_sink() {
    rm -f "$WORK/sink.out" "$WORK/sink.sock"
    if [[ $1 == udp* ]]; then
        "$SINK" udp 127.0.0.1:25516 >"$WORK/sink.out" &
        UDP=127.0.0.1:25516 SOCK=
    else
        "$SINK" unix "$WORK/sink.sock" >"$WORK/sink.out" &
        SOCK=$WORK/sink.sock
        while ! [[ -S $SOCK ]]; do sleep 0.05; done
    fi
    RECEIVER=$!
    PIDS+=("$RECEIVER")
    sleep 0.1
    COUNT=sink_count
}

stop_receiver() {
    # SIGTERM: rsyslogd ignores SIGINT unless it runs in debug mode; decnet drains on either.
    kill -TERM "$RECEIVER" 2>/dev/null || true
    wait "$RECEIVER" 2>/dev/null || true
}

# measure SYSTEM TRANSPORT → "rate cpu_us_per_message loss_percent kernel_udp_drops"
measure() {
    local system=$1 transport=$2 target
    "start_$system" "$transport"
    target=$SOCK
    [[ $transport == udp* ]] && target=$UDP
    local t0 c0 settled count secs c1 d0 d1
    d0=$(udp_drops)
    c0=$(cpu_ticks "$RECEIVER")
    [[ ${THREADS:-} == 1 && $system == decnet ]] && thread_ticks "$RECEIVER" | sort >"$WORK/threads0"
    t0=$(date +%s.%N)
    "$FLOOD" "$transport" "$target" "$MESSAGES" >/dev/null
    settled=$(wait_settled "$t0" "$COUNT")
    c1=$(cpu_ticks "$RECEIVER")
    d1=$(udp_drops)
    if [[ ${THREADS:-} == 1 && $system == decnet ]]; then
        thread_ticks "$RECEIVER" | sort >"$WORK/threads1"
        join "$WORK/threads0" "$WORK/threads1" | awk -v n="${settled% *}" -v hz="$TICKS" -v t="$transport" \
            '$3 > $2 {printf "  decnet %s thread %-16s %5.2f µs/msg\n", t, $1, 1e6 * ($3 - $2) / hz / (n + (n == 0))}' |
            sort -k5 -n -r >&2
    fi
    stop_receiver
    count=${settled% *}
    secs=${settled#* }
    echo "$(echo "$count / $secs" | bc) $(echo "scale=1; 1000000 * ($c1 - $c0) / $TICKS / ($count + ($count == 0))" | bc) $(echo "100 * ($MESSAGES - $count) / $MESSAGES" | bc) $((d1 - d0))"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf "%-8s %-9s %12s %11s %7s %10s  %s\n" system via "msgs/s" "cpu µs/msg" "loss%" "udp drops" "runs (msgs/s)"
declare -A RATE
for transport in ${TRANSPORTS:-unix udp-batch}; do
    for system in ${SYSTEMS:-decnet rsyslog}; do
        rates=() cpus=() losses=() drops=()
        for _ in $(seq 1 "$RUNS"); do
            read -r r c l d < <(measure "$system" "$transport")
            rates+=("$r") cpus+=("$c") losses+=("$l") drops+=("$d")
        done
        rate=$(printf "%s\n" "${rates[@]}" | median)
        RATE[$system-$transport]=$rate
        printf "%-8s %-9s %12s %11s %7s %10s  %s\n" "$system" "$transport" "$rate" \
            "$(printf "%s\n" "${cpus[@]}" | median)" "$(printf "%s\n" "${losses[@]}" | median)" \
            "$(printf "%s\n" "${drops[@]}" | median)" "${rates[*]}"
    done
    [[ -n ${RATE[decnet-$transport]:-} && -n ${RATE[rsyslog-$transport]:-} ]] || continue
    echo "ratio decnet/rsyslog over $transport: $(echo "scale=2; ${RATE[decnet-$transport]} / ${RATE[rsyslog-$transport]}" | bc)"
done

[[ ${SKIP_FLUSH:-} ]] && exit 0
flush=()
for _ in $(seq 1 "$RUNS"); do
    flush+=("$("$FLUSH" 200000 2>/dev/null | sed -n 's/.*rate=\([0-9]*\).*/\1/p')")
done
echo "redb → SQLite flush: $(printf "%s\n" "${flush[@]}" | median) events/s (median of $RUNS, 200000 events in segments of the pipeline's size)"
