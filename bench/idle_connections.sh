#!/usr/bin/env bash
# Memory of one service process holding N idle connections: `decky serve redis` against the
# original's design (a Python asyncio server, as every original emulator was) in the same run.
# Usage: bench/idle_connections.sh [N=1000] [RUNS=3]. Loopback only. Prints RSS in MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000}"
RUNS="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/decnet-target}"
cargo build --release -q -p decnet-services --bin decky
DECKY="$CARGO_TARGET_DIR/release/decky"
ulimit -n $((N * 2 + 256))

holder() { # port -> opens N connections, keeps them idle until stdin closes
python3 - "$1" "$N" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
PY
}

rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

measure() { # label pid port
    local fifo; fifo=$(mktemp -u); mkfifo "$fifo"
    exec 9<>"$fifo"
    holder "$3" <&9 >"$fifo.out" &
    local hp=$!
    for _ in $(seq 1 200); do grep -q ready "$fifo.out" 2>/dev/null && break; sleep 0.1; done
    sleep 0.5
    local idle; idle=$(rss_mib "$2")
    exec 9>&-; wait "$hp" 2>/dev/null || true; rm -f "$fifo" "$fifo.out"
    echo "$idle"
}

results_decky=(); results_py=()
for run in $(seq 1 "$RUNS"); do
    port=$(free_port)
    EVENT_SINK=unix:/nonexistent/sink LISTEN_ADDR=127.0.0.1 PORTS="$port" NODE_NAME=bench "$DECKY" serve redis &
    pid=$!; sleep 0.5
    base=$(rss_mib "$pid")
    results_decky+=("$(measure decky "$pid" "$port")")
    kill "$pid"; wait "$pid" 2>/dev/null || true

    port=$(free_port)
    python3 - "$port" <<'PY' &
import asyncio, sys
async def handle(reader, writer):
    while await reader.read(4096):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
    pid=$!; sleep 0.8
    results_py+=("$(measure python "$pid" "$port")")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "run $run: decky ${results_decky[-1]} MiB (${base} MiB at start), python asyncio ${results_py[-1]} MiB"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
md=$(median "${results_decky[@]}"); mp=$(median "${results_py[@]}")
echo "median RSS with $N idle connections: decky ${md} MiB, python asyncio ${mp} MiB, ratio $(awk -v a="$md" -v b="$mp" 'BEGIN {printf "%.2f", a/b}')"
