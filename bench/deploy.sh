#!/usr/bin/env bash
# Deploy N deckies (default 50) of one service each on a warm image cache with `decnet
# deploy`, and the same fleet from the dry-run compose file with `docker compose up` (or,
# when the compose plugin is missing, `docker run` for every compose service, 8 at a time,
# the concurrency `decnet` uses). Needs root, a Docker engine (scripts/docker.sh start) and
# python3-yaml. The parent interface is a veth end this script creates and removes.
#   bench/deploy.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/decnet-target}
exec </dev/null

echo "==> building decnet and a static decky (debug profile)" >&2
cargo build --quiet -p decnet
RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet -p decnet-services --bin decky \
    --target x86_64-unknown-linux-gnu
DECNET=$CARGO_TARGET_DIR/debug/decnet
export DECNET_DECKY_BIN=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/debug/decky
export DECNET_TEMPLATES=$PWD/templates
WORK=$(mktemp -d /var/tmp/decnet-bench-deploy.XXXXXX)
PARENT=fvbench0
NETNS=fleet-bench
SUBNET=10.232.0.0/24

cleanup() {
    "$DECNET" teardown --all --data-dir "$WORK" >/dev/null 2>&1 || true
    if [[ -f $WORK/compose-v1.yml ]]; then
        docker-compose -f "$WORK/compose-v1.yml" -p bench down >/dev/null 2>&1 || true
    fi
    docker ps -aq --filter label=fleet.role | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network rm fleet_lan >/dev/null 2>&1 || true
    ip link del "$PARENT" 2>/dev/null || true
    ip netns del "$NETNS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ip link add "$PARENT" type veth peer name fpbench0
ip netns add "$NETNS"
ip link set fpbench0 netns "$NETNS"
ip -n "$NETNS" addr add 10.232.0.1/24 dev fpbench0
ip -n "$NETNS" link set fpbench0 up
ip link set "$PARENT" up

deploy() { local n=$1; shift; "$DECNET" deploy -n "$n" --services redis --interface "$PARENT" --subnet "$SUBNET" \
    --gateway 10.232.0.1 --seed 7 --data-dir "$WORK" "$@"; }
now() { date +%s.%N; }

echo "==> warm-up: build (or find) the images" >&2
deploy 1 >/dev/null
"$DECNET" teardown --all --data-dir "$WORK" >/dev/null

echo "==> decnet deploy: $N deckies x 1 service" >&2
t0=$(now); deploy "$N" >/dev/null; t1=$(now)
running=$(docker ps -q --filter label=fleet.role --filter status=running | wc -l)
decnet_up=$(echo "$t1 - $t0" | bc)
t0=$(now); "$DECNET" teardown --all --data-dir "$WORK" >/dev/null; t1=$(now)
decnet_down=$(echo "$t1 - $t0" | bc)
echo "decnet deploy: ${decnet_up}s ($running containers running); teardown: ${decnet_down}s"

echo "==> the same fleet from the dry-run compose file" >&2
deploy "$N" --dry-run -o "$WORK/compose.yml" >/dev/null
docker network create -d macvlan --subnet "$SUBNET" --gateway 10.232.0.1 \
    -o parent="$PARENT" fleet_lan >/dev/null
if docker compose version >/dev/null 2>&1; then
    tool="docker compose up -d"
    t0=$(now); docker compose -f "$WORK/compose.yml" -p bench up -d --quiet-pull >/dev/null 2>&1; t1=$(now)
elif command -v docker-compose >/dev/null 2>&1; then
    # Debian's docker-compose 1.29 (the v1 tool): same file, same engine.
    # Compose 1.29 has no per-network mac_address: the baseline gets Docker's MACs (as the
    # docker-run fallback below does).
    tool="docker-compose up -d (1.29, without per-network MACs)"
    python3 - "$WORK/compose.yml" "$WORK/compose-v1.yml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for s in doc["services"].values():
    for att in (s.get("networks") or {}).values():
        if isinstance(att, dict):
            att.pop("mac_address", None)
yaml.safe_dump(doc, open(sys.argv[2], "w"), sort_keys=False)
PY
    t0=$(now); docker-compose -f "$WORK/compose-v1.yml" -p bench up -d >"$WORK/compose.log" 2>&1 || { tail -20 "$WORK/compose.log" >&2; }; t1=$(now)
else
    tool="docker run x$((N * 2)), 8 at a time (no compose plugin on this machine)"
    python3 - "$WORK/compose.yml" "$WORK" <<'PY'
import sys, yaml, shlex
doc = yaml.safe_load(open(sys.argv[1]))
bases, services = [], []
for name, s in doc["services"].items():
    a = ["docker", "run", "-d", "--name", s["container_name"], "--restart", s["restart"]]
    if s.get("hostname"): a += ["--hostname", s["hostname"]]
    for net, att in (s.get("networks") or {}).items():
        a += ["--network", "fleet_lan", "--ip", att["ipv4_address"]]
        # docker CLI 28 cannot pass a MAC with --ip to a 1.41 engine; the baseline gets Docker MACs.
    if s.get("network_mode"): a += ["--network", "container:" + s["network_mode"].split(":", 1)[1]]
    for k, v in (s.get("sysctls") or {}).items(): a += ["--sysctl", f"{k}={v}"]
    for k, v in (s.get("environment") or {}).items(): a += ["-e", f"{k}={v}"]
    a += [f"--cap-drop={c}" for c in s["cap_drop"]] + [f"--cap-add={c}" for c in s.get("cap_add") or []]
    a += [f"--security-opt={o}" for o in s["security_opt"]]
    if s["read_only"]: a += ["--read-only"]
    for t in s.get("tmpfs") or []: a += ["--tmpfs", t]
    a += ["--memory", s["mem_limit"], "--pids-limit", str(s["pids_limit"])]
    for k, v in s["labels"].items(): a += ["--label", f"{k}={v}"]
    a += [s["image"]] + (s.get("command") or [])
    (services if s.get("network_mode") else bases).append(shlex.join(a))
open(sys.argv[2] + "/bases.sh", "w").write("\n".join(bases) + "\n")
open(sys.argv[2] + "/services.sh", "w").write("\n".join(services) + "\n")
PY
    t0=$(now)
    xargs -P 8 -I{} sh -c '{} >/dev/null' <"$WORK/bases.sh"
    xargs -P 8 -I{} sh -c '{} >/dev/null' <"$WORK/services.sh"
    t1=$(now)
fi
running=$(docker ps -q --filter label=fleet.role --filter status=running | wc -l)
base_up=$(echo "$t1 - $t0" | bc)
echo "$tool: ${base_up}s ($running containers running)"
docker ps -aq --filter label=fleet.role | xargs -r docker rm -f >/dev/null
docker network rm fleet_lan >/dev/null
