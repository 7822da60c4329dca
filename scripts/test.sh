#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (run as root): installs the system
# packages the tests need, then formatting, lints and every test of the workspace.
# Slow suites (image boot, long benchmarks) are opt-in and documented in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
# Nothing here reads a terminal; a stray stdin must never reach a compiler probe.
exec </dev/null

# Reuse one build cache outside the clone so repeated runs (and CI) do not rebuild the world.
if [[ -z "${CARGO_TARGET_DIR:-}" && -d /var/tmp && -w /var/tmp ]]; then
    export CARGO_TARGET_DIR=/var/tmp/decnet-target
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Cargo caches its rustc probes in the target directory, failures included. Once a probe (which
# reads /dev/null as its input) came back with a C compiler's error text, because something had
# replaced /dev/null with a plain file that build scripts then wrote into; that cached failure
# broke every later build. Probe afresh each run (milliseconds), and make sure /dev/null is
# the device before anything starts.
export CARGO_CACHE_RUSTC_INFO=0
if [[ -e /dev/null && ! -c /dev/null && $(id -u) -eq 0 ]]; then
    echo "WARNING: /dev/null was a plain file; restoring the device" >&2
    rm -f /dev/null && mknod -m 666 /dev/null c 1 3
fi
rm -f "${CARGO_TARGET_DIR:-target}/.rustc_info.json"

# System packages the tests use (Debian names). ieee-data: the IEEE OUI registry the MAC
# vendor table is checked against. redis-tools, curl: real clients for the emulators; nmap: checks
# that `nmap -sV` names the impersonated product. default-mysql-client: the `mysql` client;
# python3: poplib, imaplib, smtplib and ftplib for the mail and file-transfer emulators.
# postgresql-15, mariadb-server: the repository suite runs against both (scripts/databases.sh
# starts throwaway servers on loopback and removes them when the run ends). openssh-client: `ssh`,
# `sftp`, `scp` and `ssh-keygen` for the ssh emulator's interop and end-to-end tests. iproute2:
# `ip`/`tc` for the capture tests' namespaces and mirror mode. clang, libbpf-dev: rebuild the XDP
# program and prove the committed object equals it (without them the prebuilt one is used).
# tcpdump, openssl, iputils-ping: real captures, TLS clients and pings in the sniffer tests.
# python3-venv: schemathesis (PyPI) is installed into /var/tmp/st-venv for the API contract test.
# chromium, chromium-driver: headless Chromium over WebDriver for the dashboard's browser test.
APT_PACKAGES=(ieee-data redis-tools nmap curl default-mysql-client python3 python3-venv postgresql-15 mariadb-server openssh-client
    iproute2 clang libbpf-dev tcpdump openssl iputils-ping chromium chromium-driver)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "==> installing system packages: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: packages missing (${missing[*]}) and not root; run as root or install them" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [[ $(id -u) -eq 0 ]]; then
    echo "==> starting PostgreSQL and MariaDB for the repository suite"
    # The fleet engine's tests run against a real engine: installs docker.io when none answers
    # and starts a private dockerd (no iptables rules, no docker0), stopped at exit. An engine
    # that already answered is someone else's and is left running.
    stop_docker=
    if ! docker version >/dev/null 2>&1; then stop_docker='; scripts/docker.sh stop'; fi
    trap "scripts/databases.sh stop$stop_docker" EXIT
    eval "$(scripts/databases.sh start)"
    echo "==> starting a Docker engine for the fleet tests"
    scripts/docker.sh start
    # With an engine running, the Docker-logs follower test must not skip.
    export DECNET_REQUIRE_DOCKER=1
else
    echo "WARNING: not root: PostgreSQL/MariaDB repository tests and Docker fleet tests will be SKIPPED" >&2
fi

# The OpenAPI contract test runs schemathesis; install it up front so a PyPI problem shows
# here as a clear error rather than as a test failure later.
if [[ ! -x /var/tmp/st-venv/bin/schemathesis ]]; then
    echo "==> installing schemathesis 4.32.5 (PyPI) into /var/tmp/st-venv"
    python3 -m venv /var/tmp/st-venv
    /var/tmp/st-venv/bin/pip install --quiet schemathesis==4.32.5
fi

# The corpus test cross-checks our JA4 against ja4plus (PyPI, an independent implementation;
# Debian's tshark 4.0 has no JA4 field).
if [[ ! -x /var/tmp/ja4-venv/bin/ja4plus ]]; then
    echo "==> installing ja4plus 1.4.0 (PyPI) into /var/tmp/ja4-venv"
    python3 -m venv /var/tmp/ja4-venv
    /var/tmp/ja4-venv/bin/pip install --quiet ja4plus==1.4.0
fi

# The prober's JARM test cross-checks our hashes and ClientHellos against pyjarm (PyPI, an
# independent port of Salesforce's jarm.py, which is not on PyPI itself).
if [[ ! -x /var/tmp/jarm-venv/bin/pyjarm ]]; then
    echo "==> installing pyjarm 0.0.5 (PyPI) into /var/tmp/jarm-venv"
    python3 -m venv /var/tmp/jarm-venv
    /var/tmp/jarm-venv/bin/pip install --quiet pyjarm==0.0.5
fi

# As root, chromium and chromedriver were installed above: the browser test must run, not skip.
if [[ $(id -u) -eq 0 ]] || { command -v chromium && command -v chromedriver; } >/dev/null; then
    export DECNET_REQUIRE_BROWSER=1
fi

echo "==> cargo test"
# A hung test must fail the run with a name, not eat CI's whole time limit: the suite takes
# ~15 min warm here, so 45 min means something is stuck (cargo's "has been running for over
# 60 seconds" line above names it).
if ! timeout --kill-after=30s "${DECNET_TEST_TIMEOUT:-45m}" cargo test --workspace --locked; then
    echo "error: cargo test failed or ran past ${DECNET_TEST_TIMEOUT:-45m}" >&2
    exit 1
fi
# Real clients run here with `-o UserKnownHostsFile=/dev/null` and the like; a tool that renames
# a temporary file over its output would replace the device and break everything after it.
if ! [[ -c /dev/null ]]; then
    echo "error: /dev/null is no longer a character device after the tests; restoring it" >&2
    rm -f /dev/null && mknod -m 666 /dev/null c 1 3
    exit 1
fi

# Every cargo-fuzz target for 60 s (FUZZ_SECONDS), two at a time. DECNET_SKIP_FUZZ=1 skips it
# for quick local runs; CI always fuzzes.
if [[ ${DECNET_SKIP_FUZZ:-0} == 1 && -z ${CI:-} ]]; then
    echo "WARNING: DECNET_SKIP_FUZZ=1: fuzzing SKIPPED" >&2
else
    echo "==> fuzzing every target"
    scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
