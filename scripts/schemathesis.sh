#!/usr/bin/env bash
# Property-based API test: run schemathesis against the OpenAPI document a fresh `decnet api`
# serves, and fail on any failure it reports.
#
#   scripts/schemathesis.sh [PATH/TO/decnet] [extra schemathesis args...]
#
# Finds schemathesis in $SCHEMATHESIS, else /var/tmp/st-venv/bin/schemathesis, else creates
# that venv (python3 -m venv + pip install schemathesis==$ST_VERSION). Exit 0: no failures;
# 1: failures (schemathesis output printed); 77: schemathesis unavailable (the caller decides
# whether that is a skip or a failure).
# Budget: ST_MAX_EXAMPLES (default 50) examples per operation and phase.
set -euo pipefail

ST_VERSION=4.32.5
VENV=${ST_VENV:-/var/tmp/st-venv}
DECNET=${1:-decnet}
shift || true
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-50}

find_schemathesis() {
  if [[ -n "${SCHEMATHESIS:-}" && -x "$SCHEMATHESIS" ]]; then
    echo "$SCHEMATHESIS"; return 0
  fi
  if [[ -x "$VENV/bin/schemathesis" ]]; then
    echo "$VENV/bin/schemathesis"; return 0
  fi
  echo "schemathesis: creating $VENV (schemathesis==$ST_VERSION)" >&2
  python3 -m venv "$VENV" >&2 || return 1
  "$VENV/bin/pip" install --quiet "schemathesis==$ST_VERSION" >&2 || return 1
  echo "$VENV/bin/schemathesis"
}

if ! ST=$(find_schemathesis); then
  echo "schemathesis: not available and could not be installed (needs python3-venv and PyPI)" >&2
  exit 77
fi

WORK=$(mktemp -d)
PID=
cleanup() {
  if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
FIRST_PW="first-$RANDOM-$RANDOM-pw"
NEW_PW="second-$RANDOM-$RANDOM-pw"

# Developer mode: DELETE /config/reinit is then a real purge of this throwaway store.
env -u DECNET_DB_TYPE -u DECNET_DB_URL -u DECNET_WEB_PORT -u DECNET_WEB_HOST \
  DECNET_ADMIN_PASSWORD="$FIRST_PW" DECNET_DEVELOPER=true \
  "$DECNET" api --port "$PORT" --data-dir "$WORK/data" </dev/null >"$WORK/api.log" 2>&1 &
PID=$!

for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null "$BASE/api/v1/openapi.json" 2>/dev/null; then break; fi
  if ! kill -0 "$PID" 2>/dev/null; then cat "$WORK/api.log" >&2; echo "decnet api died" >&2; exit 1; fi
  sleep 0.1
done

post() { curl -fsS -H 'Content-Type: application/json' "$@"; }
token() {
  post -d "{\"username\":\"admin\",\"password\":\"$1\"}" "$BASE/api/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
T0=$(token "$FIRST_PW")
post -H "Authorization: Bearer $T0" -d "{\"old_password\":\"$FIRST_PW\",\"new_password\":\"$NEW_PW\"}" \
  "$BASE/api/v1/auth/change-password" >/dev/null
TOKEN=$(token "$NEW_PW")

run() {
  # From the scratch directory: schemathesis keeps state in ./.schemathesis.
  (cd "$WORK" && "$ST" run "$BASE/api/v1/openapi.json" --url "$BASE" \
    -H "Authorization: Bearer $TOKEN" \
    --max-examples "$MAX_EXAMPLES" --request-timeout 10 \
    --generation-database none --no-color "$@")
}

status=0
# Pass 1: everything except
#  - auth/logout: revokes the run's own token, every later request would be a 401;
#  - deckies/deploy: drives Docker through the fleet engine, and whether an INI text is a
#    valid fleet is beyond what JSON Schema can state (the engine answers 400 on a bad one).
# GET /stream stays in: no link hands it a live ticket, so it is probed with made-up ones (401).
run --exclude-path-regex '/auth/logout$|/deckies/deploy$' "$@" || status=1
# Pass 2: logout alone, last (its first success revokes the token; later calls get 401).
run --include-path-regex '/auth/logout$' --phases examples,coverage,fuzzing "$@" || status=1
if [[ $status -ne 0 ]]; then
  echo "--- decnet api log ---" >&2
  tail -50 "$WORK/api.log" >&2
fi
exit $status
