#!/usr/bin/env bash
# Regenerate the sniffer's regression corpus (dataplane/tests/corpus/*.pcap[ng]) from real
# clients talking over loopback, and print the reference fingerprints tshark computes for them.
#
#   sudo scripts/make-corpus.sh            # needs root (tcpdump on lo, nmap -sS, sshd)
#   CORPUS_OUT=/tmp/x scripts/make-corpus.sh   # write elsewhere (a cross-check run)
#
# Tools: tcpdump, tshark + editcap (wireshark), openssl, curl, OpenSSH (ssh + sshd), nmap,
# python3, socat. Ports are high and fixed so the captures stay comparable between runs.
# After regenerating, update the constants in dataplane/tests/corpus.rs from the printed
# tshark values (the fingerprints of a new OpenSSL/OpenSSH/curl version will differ).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${CORPUS_OUT:-dataplane/tests/corpus}
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

for tool in tcpdump tshark editcap openssl curl ssh sshd nmap python3 socat; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done

# capture FILE FILTER CMD...: run CMD while tcpdump writes FILE.
capture() {
    local file=$1 filter=$2
    shift 2
    tcpdump -i lo -s 0 -U -w "$work/cap.pcap" "$filter" 2>"$work/tcpdump.log" &
    local tp=$!
    sleep 1
    "$@" || true
    sleep 1
    kill -INT "$tp"
    wait "$tp" || true
    mv "$work/cap.pcap" "$out/$file"
    echo "==> $out/$file: $(stat -c %s "$out/$file") bytes"
}

# --- TLS: openssl s_server with a fixed-name self-signed certificate; curl over 1.2 and 1.3.
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=corpus.test" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
openssl s_server -accept 127.0.0.1:48443 -cert "$work/cert.pem" -key "$work/key.pem" -www -quiet \
    >/dev/null 2>&1 &
pids+=($!)
sleep 1
capture tls.pcap "tcp port 48443" bash -c '
    curl -sk --tls-max 1.2 https://127.0.0.1:48443/ -o /dev/null
    curl -sk https://127.0.0.1:48443/ -o /dev/null'

# --- SSH: a throwaway sshd; the BatchMode client fails auth after the key exchange.
ssh-keygen -q -t ed25519 -N "" -f "$work/hostkey"
mkdir -p /run/sshd
/usr/sbin/sshd -D -f /dev/null -p 48022 -h "$work/hostkey" -o ListenAddress=127.0.0.1 \
    -o PidFile=none -o UsePAM=no 2>"$work/sshd.log" &
pids+=($!)
sleep 1
capture ssh.pcap "tcp port 48022" ssh -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -p 48022 corpus@127.0.0.1 true

# --- HTTP: python's http.server, one curl request; also written as pcapng.
(cd "$work" && exec python3 -m http.server 48080 --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)
sleep 1
capture http.pcap "tcp port 48080" curl -s -A "corpus-agent/1.0" "http://127.0.0.1:48080/?q=corpus" -o /dev/null
editcap -F pcapng "$out/http.pcap" "$out/http.pcapng"

# --- Scans against loopback (port 48080 is open): SYN, connect, Xmas; ping and a UDP probe.
capture nmap-syn.pcap "tcp portrange 48000-48200" nmap -n -Pn -sS -p 48000-48200 127.0.0.1 -oN /dev/null
capture nmap-connect.pcap "tcp portrange 48000-48050 or tcp port 48080" nmap -n -Pn -sT -p 48000-48050,48080 127.0.0.1 -oN /dev/null
capture nmap-xmas.pcap "tcp portrange 48000-48030" nmap -n -Pn -sX -p 48000-48030 127.0.0.1 -oN /dev/null
capture icmp-udp.pcap "icmp or udp port 48053" bash -c '
    ping -c 2 -i 0.2 127.0.0.1 >/dev/null
    printf "corpus-probe" | socat - UDP:127.0.0.1:48053'

echo "==> tshark reference values"
tshark -r "$out/tls.pcap" -d tcp.port==48443,tls -Y "tls.handshake.type == 1" -T fields -e tcp.srcport -e tls.handshake.ja3 -e tls.handshake.ja3_full 2>/dev/null
tshark -r "$out/tls.pcap" -d tcp.port==48443,tls -Y "tls.handshake.type == 2" -T fields -e tcp.dstport -e tls.handshake.ja3s -e tls.handshake.ja3s_full 2>/dev/null
tshark -r "$out/ssh.pcap" -d tcp.port==48022,ssh -Y "ssh.kex.hassh || ssh.kex.hasshserver" -T fields -e ssh.kex.hassh -e ssh.kex.hasshserver 2>/dev/null
tshark -r "$out/http.pcap" -Y http.request -T fields -e http.host -e http.user_agent -e http.request.uri 2>/dev/null
