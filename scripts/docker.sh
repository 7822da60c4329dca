#!/usr/bin/env bash
# A throwaway Docker engine for the fleet tests: `scripts/docker.sh start` starts dockerd (when
# no engine answers already) with its own data and exec roots under /var/tmp, no iptables
# rules and no docker0 bridge (see ../shared/reference/platform-notes.md §4);
# `scripts/docker.sh stop` stops the one it started and removes its state. Needs root.
set -euo pipefail
ROOT=${DECNET_DOCKER_ROOT:-/var/tmp/decnet-dockerd}
PIDFILE=$ROOT/dockerd.pid

case ${1:-} in
start)
    if docker version >/dev/null 2>&1; then
        echo "==> a Docker engine already answers; using it" >&2
        exit 0
    fi
    if ! command -v dockerd >/dev/null; then
        echo "==> installing docker.io" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    fi
    mkdir -p "$ROOT"
    dockerd --iptables=false --bridge=none --data-root "$ROOT/root" --exec-root "$ROOT/exec" \
        --pidfile "$PIDFILE" >"$ROOT/dockerd.log" 2>&1 &
    for _ in $(seq 1 100); do
        docker version >/dev/null 2>&1 && { echo "==> dockerd started (log: $ROOT/dockerd.log)" >&2; exit 0; }
        sleep 0.2
    done
    echo "error: dockerd did not answer within 20 s; see $ROOT/dockerd.log" >&2
    exit 1
    ;;
stop)
    [[ -f $PIDFILE ]] || exit 0
    pid=$(cat "$PIDFILE")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    # Container mounts must go before the data root can be removed.
    grep " $ROOT/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$ROOT"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
