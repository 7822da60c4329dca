#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::Command,
    sync::{Arc, OnceLock},
};

use super::*;

/// Published hasshServer of Debian 12's sshd (openssh 1:9.2p1-2+deb12u2/u3, strict-kex
/// backport included), as shown in the example output of nmap's `ssh-hassh` script and the
/// HASSH project's pcap walkthroughs.
const DEBIAN12_HASSH_SERVER: &str = "a65c3b91f743d3f246e72172e77288f1";

#[test]
fn hassh_server_matches_debian12_openssh() {
    assert_eq!(config().hassh_server(), DEBIAN12_HASSH_SERVER);
}

/// Feeds `input` to a fresh transport; returns (out, upper, events).
fn run(t: &mut Transport, input: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>, Vec<TransportEvent>) {
    let (mut out, mut upper, mut events) = (Vec::new(), Vec::new(), Vec::new());
    t.receive(input, &mut out, &mut upper, &mut events);
    (out, upper, events)
}

fn started() -> (Transport, Vec<u8>) {
    let mut t = Transport::new(config());
    let mut out = Vec::new();
    t.start(&mut out);
    (t, out)
}

/// Open the packet at the front of `buf` and cut what it took.
fn open_front(
    d: &mut Direction,
    buf: &mut Vec<u8>,
) -> Result<Option<Vec<u8>>, cipher::PacketError> {
    Ok(d.open(buf)?.map(|(payload, used)| {
        buf.drain(..used);
        payload
    }))
}

fn plain_packets(mut bytes: Vec<u8>) -> Vec<Vec<u8>> {
    let mut d = Direction::plain();
    let mut payloads = Vec::new();
    while let Ok(Some(p)) = open_front(&mut d, &mut bytes) {
        payloads.push(p);
    }
    assert!(bytes.is_empty(), "trailing bytes");
    payloads
}

fn client_kexinit(kex: &[&str]) -> Vec<u8> {
    let mut p = Proposal::server_default();
    p.kex = kex.iter().map(|s| (*s).to_owned()).collect();
    p.host_key = vec!["ssh-ed25519".into()];
    p.encode(&[7; 16])
}

#[test]
fn banner_then_kexinit_after_client_version() {
    let (mut t, out) = started();
    assert_eq!(out, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
    let (out, _, events) = run(&mut t, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
    assert_eq!(
        events,
        [TransportEvent::ClientVersion(
            "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3".into()
        )]
    );
    let packets = plain_packets(out);
    assert_eq!(packets.len(), 1);
    let proposal = Proposal::decode(&packets[0]).unwrap();
    let mut expected = Proposal::server_default();
    expected.first_kex_follows = false;
    assert_eq!(proposal, expected);
    assert_eq!(
        proposal.kex.join(","),
        "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,kex-strict-s-v00@openssh.com"
    );
    assert_eq!(
        proposal.host_key.join(","),
        "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519"
    );
}

#[test]
fn version_line_may_end_in_bare_lf_and_arrive_bytewise() {
    let (mut t, _) = started();
    let mut events = Vec::new();
    for b in b"SSH-2.0-libssh_0.10.6\n" {
        events.extend(run(&mut t, &[*b]).2);
    }
    assert_eq!(
        events,
        [TransportEvent::ClientVersion(
            "SSH-2.0-libssh_0.10.6".into()
        )]
    );
}

#[test]
fn garbage_is_refused_like_sshd() {
    for input in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"SSH-2.0\r\n",
        b"SSH-2.0-\r\n",
        b"hello\nSSH-2.0-x\r\n",
        b"SSH-2.0-a\rb\n",
        b"SSH-2.0-a\0\n",
    ] {
        let (mut t, _) = started();
        let (out, upper, events) = run(&mut t, input);
        assert_eq!(out, b"Invalid SSH identification string.\r\n", "{input:?}");
        assert!(upper.is_empty());
        assert!(matches!(events.last(), Some(TransportEvent::Failed(_))));
        assert!(t.is_closed());
        assert!(run(&mut t, b"SSH-2.0-x\r\n").0.is_empty());
    }
    let (mut t, _) = started();
    let (out, _, _) = run(&mut t, b"SSH-1.5-old\r\n");
    assert_eq!(out, b"Protocol major versions differ.\r\n");
    let (mut t, _) = started();
    assert!(run(&mut t, &vec![b'A'; 9000]).0.starts_with(b"Invalid SSH"));
}

#[test]
fn strict_kex_refuses_a_packet_before_kexinit() {
    let (mut t, _) = started();
    let mut client = Direction::plain();
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let mut input = b"SSH-2.0-OpenSSH_9.2p1\r\n".to_vec();
    input.extend(client.seal(&[MSG_IGNORE, 0, 0, 0, 0], &mut rng));
    input.extend(client.seal(
        &client_kexinit(&["curve25519-sha256", "kex-strict-c-v00@openssh.com"]),
        &mut rng,
    ));
    let (out, _, events) = run(&mut t, &input);
    let packets = plain_packets(out);
    let last = packets.last().unwrap();
    let mut r = Reader::new(&last[1..]);
    assert_eq!(last[0], MSG_DISCONNECT);
    assert_eq!(r.u32(), Some(DISCONNECT_PROTOCOL_ERROR));
    assert_eq!(
        r.string(),
        Some(&b"strict KEX violation: KEXINIT was not the first packet"[..])
    );
    assert!(matches!(events.last(), Some(TransportEvent::Failed(_))));
}

#[test]
fn strict_kex_refuses_ignore_during_initial_kex_and_lax_answers_unimplemented() {
    for strict in [true, false] {
        let (mut t, _) = started();
        let mut client = Direction::plain();
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let kex: &[&str] = if strict {
            &["curve25519-sha256", "kex-strict-c-v00@openssh.com"]
        } else {
            &["curve25519-sha256"]
        };
        let mut input = b"SSH-2.0-OpenSSH_9.2p1\r\n".to_vec();
        input.extend(client.seal(&client_kexinit(kex), &mut rng));
        input.extend(client.seal(&[MSG_SERVICE_REQUEST, 0, 0, 0, 0], &mut rng));
        let (out, upper, events) = run(&mut t, &input);
        assert!(upper.is_empty());
        let packets = plain_packets(out);
        let last = packets.last().unwrap();
        if strict {
            assert_eq!(last[0], MSG_DISCONNECT);
            assert!(
                String::from_utf8_lossy(last)
                    .contains("strict KEX violation: unexpected packet type 5 (seqnr 1)")
            );
            assert!(t.is_closed());
        } else {
            assert_eq!(last, &[MSG_UNIMPLEMENTED, 0, 0, 0, 1]);
            assert!(!t.is_closed());
        }
        let hassh_seen = events
            .iter()
            .any(|e| matches!(e, TransportEvent::ClientKexInit { .. }));
        assert!(hassh_seen);
    }
}

#[test]
fn no_common_algorithm_closes_without_disconnect() {
    let (mut t, _) = started();
    let mut client = Direction::plain();
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let mut input = b"SSH-2.0-x\r\n".to_vec();
    input.extend(client.seal(&client_kexinit(&["diffie-hellman-group1-sha1"]), &mut rng));
    let (out, _, events) = run(&mut t, &input);
    assert_eq!(plain_packets(out).len(), 1, "only our KEXINIT");
    assert!(
        matches!(events.last(), Some(TransportEvent::Failed(m)) if m.contains("no matching key exchange method"))
    );
}

#[test]
fn oversized_packet_closes_silently() {
    let (mut t, _) = started();
    let mut input = b"SSH-2.0-x\r\n".to_vec();
    input.extend_from_slice(&[0x00, 0x10, 0x00, 0x00, 4, 0, 0, 0]);
    let (out, _, events) = run(&mut t, &input);
    assert_eq!(plain_packets(out).len(), 1, "only our KEXINIT, like sshd");
    assert!(
        matches!(events.last(), Some(TransportEvent::Failed(m)) if m.contains("Bad packet length 1048576"))
    );
}

#[test]
fn reactions_match_debian_sshd_before_kex() {
    /// (packet payload, last server message or None for a bare close, still open)
    type Case<'a> = (&'a [u8], Option<&'a [u8]>, bool);
    let cases: [Case<'_>; 5] = [
        (b"\x00hello", Some(b"Invalid ssh2 packet type: 0"), false),
        (b"\xc8hello", Some(b"Invalid ssh2 packet type: 200"), false),
        (b"\x63hello", None, false),
        (b"\x15", Some(&[MSG_UNIMPLEMENTED, 0, 0, 0, 0]), true),
        (
            b"\x1e\0\0\0\0",
            Some(&[MSG_UNIMPLEMENTED, 0, 0, 0, 0]),
            true,
        ),
    ];
    for (payload, reply, open) in cases {
        let (mut t, _) = started();
        let mut client = Direction::plain();
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let mut input = b"SSH-2.0-x\r\n".to_vec();
        input.extend(client.seal(payload, &mut rng));
        let packets = plain_packets(run(&mut t, &input).0);
        match reply {
            None => assert_eq!(packets.len(), 1, "{payload:?}"),
            Some(r) => {
                let last = packets.last().unwrap();
                assert!(
                    last.windows(r.len()).any(|w| w == r),
                    "{payload:?}: {last:?}"
                );
            }
        }
        assert_eq!(t.is_closed(), !open, "{payload:?}");
    }
}

#[test]
fn chacha20_poly1305_opens_a_known_packet() {
    // Built independently with Python's `cryptography` (ChaCha20 with an explicit 64-bit
    // counter, Poly1305) following PROTOCOL.chacha20poly1305: K_2 = 00..1f, K_1 = 20..3f,
    // seqnr 7, padding 0xaa.
    let key: Vec<u8> = (0u8..64).collect();
    let mut rx = Direction::keyed("chacha20-poly1305@openssh.com", &key, &[], None, 7).unwrap();
    let hex =
        "a39afcb22e4315434e8f592d0440ce83b2fdb25940da9a9cd4499729fc76f2f02bd6c9ac6e4d4a1b678f5928";
    let mut packet: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let payload = open_front(&mut rx, &mut packet).unwrap().unwrap();
    assert_eq!(payload, b"\x05\x00\x00\x00\x0cssh-userauth");
    assert_eq!(rx.seq, 8);
}

fn keyed_pair(cipher: &str, mac: Option<&str>) -> (Direction, Direction) {
    let (key_len, iv_len) = cipher::cipher_sizes(cipher).unwrap();
    let key: Vec<u8> = (0..key_len).map(|i| i as u8).collect();
    let iv: Vec<u8> = (0..iv_len).map(|i| 0x80 | i as u8).collect();
    let mac_key = mac.map(|m| vec![0x5a; cipher::mac_key_len(m).unwrap()]);
    let mac_arg = mac.zip(mac_key.as_deref());
    (
        Direction::keyed(cipher, &key, &iv, mac_arg, u32::MAX - 1).unwrap(),
        Direction::keyed(cipher, &key, &iv, mac_arg, u32::MAX - 1).unwrap(),
    )
}

#[test]
fn every_cipher_and_mac_round_trips_across_seq_wrap_and_detects_tampering() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let mut combos: Vec<(&str, Option<&str>)> = Vec::new();
    for c in cipher::CIPHERS {
        if kexinit::is_aead(c) {
            combos.push((c, None));
        } else {
            for m in cipher::MACS {
                combos.push((c, Some(m)));
            }
        }
    }
    for (c, m) in combos {
        let (mut tx, mut rx) = keyed_pair(c, m);
        let mut wire = Vec::new();
        let payloads: Vec<Vec<u8>> = (0..5usize).map(|n| vec![94; n * 37 + 1]).collect();
        for p in &payloads {
            let sealed = tx.seal(p, &mut rng);
            wire.extend(sealed);
        }
        // Byte by byte: framing must hold state across partial reads.
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for b in &wire {
            buf.push(*b);
            while let Some(p) = open_front(&mut rx, &mut buf).unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got, payloads, "{c} {m:?}");
        assert_eq!(rx.seq, 3, "sequence numbers wrap");

        let (mut tx, mut rx) = keyed_pair(c, m);
        let mut sealed = tx.seal(b"\x5ehello", &mut rng);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(
            open_front(&mut rx, &mut sealed),
            Err(cipher::PacketError::BadMac),
            "{c} {m:?}"
        );
    }
}

#[test]
fn host_keys_are_deterministic_per_seed() {
    let a = config();
    let b = HostKeys::from_seed(b"test-seed").unwrap();
    for alg in kexinit::SERVER_HOST_KEY {
        assert_eq!(a.host_keys().public_blob(alg), b.public_blob(alg));
    }
    let other = HostKeys::from_seed(b"other").unwrap();
    assert_ne!(
        a.host_keys().public_blob("ssh-ed25519"),
        other.public_blob("ssh-ed25519")
    );
    let rsa = a.host_keys().public_blob("rsa-sha2-512").unwrap();
    // string "ssh-rsa", mpint e = 65537, mpint n of 3072 bits (plus a zero sign byte).
    assert_eq!(&rsa[..11], b"\0\0\0\x07ssh-rsa");
    assert_eq!(rsa.len(), 11 + 7 + 4 + 385);
}

#[test]
fn gex_picks_groups_like_sshd() {
    let bits = |min, n, max| {
        kex::DhGroup::for_request(min, n, max)
            .map(|g| g.p.bits())
            .ok()
    };
    assert_eq!(bits(2048, 3072, 8192), Some(3072));
    assert_eq!(bits(2048, 7680, 8192), Some(8192));
    assert_eq!(bits(2048, 8192, 8192), Some(8192));
    // Below sshd's 2048-bit floor it falls back to group 14.
    assert_eq!(bits(1024, 1024, 1024), Some(2048));
    assert_eq!(bits(4096, 2048, 8192), None);
}

#[test]
fn key_derivation_extends_short_hashes() {
    let k = [0, 0, 0, 1, 7];
    let h = [1u8; 32];
    let key = kex::derive(kex::HashAlg::Sha256, &k, &h, b'C', &h, 64);
    assert_eq!(key.len(), 64);
    let first = kex::HashAlg::Sha256.digest(&[&k, &h, b"C", &h]);
    let second = kex::HashAlg::Sha256.digest(&[&k, &h, &first]);
    assert_eq!(&key[..32], &first[..]);
    assert_eq!(&key[32..], &second[..]);
}

proptest::proptest! {
    #[test]
    fn arbitrary_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..8)) {
        let (mut t, _) = started();
        run(&mut t, b"SSH-2.0-fuzz\r\n");
        for c in &chunks {
            run(&mut t, c);
        }
    }

    #[test]
    fn arbitrary_plain_packets_never_panic(payloads in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..200), 0..6)) {
        let (mut t, _) = started();
        let mut client = Direction::plain();
        let mut rng = ChaCha20Rng::from_seed([9; 32]);
        let mut input = b"SSH-2.0-fuzz\r\n".to_vec();
        input.extend(client.seal(&client_kexinit(&["curve25519-sha256"]), &mut rng));
        for p in &payloads {
            input.extend(client.seal(p, &mut rng));
        }
        run(&mut t, &input);
    }
}

fn config() -> Arc<TransportConfig> {
    static CONFIG: OnceLock<Arc<TransportConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(TransportConfig::new(DEFAULT_BANNER, b"test-seed").unwrap()))
        .clone()
}

/// Runs one connection with an upper layer that refuses every authentication attempt.
fn serve(mut stream: TcpStream, config: Arc<TransportConfig>) {
    let mut t = Transport::new(config);
    let mut out = Vec::new();
    t.start(&mut out);
    stream.write_all(&out).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (mut out, mut upper, mut events) = (Vec::new(), Vec::new(), Vec::new());
        t.receive(&buf[..n], &mut out, &mut upper, &mut events);
        for payload in upper {
            match payload[0] {
                // User "ok" is let in (to exercise delayed compression and re-keying).
                50 if payload[1..].starts_with(b"\0\0\0\x02ok") => t.send(&[52], &mut out),
                50 => {
                    let mut w = Writer::message(51);
                    w.name_list(&["publickey", "password"]).bool(false);
                    t.send(&w.finish(), &mut out);
                }
                // GLOBAL_REQUEST (keepalives) -> REQUEST_FAILURE.
                80 => t.send(&[82], &mut out),
                // CHANNEL_OPEN -> CHANNEL_OPEN_FAILURE.
                90 => {
                    let mut r = Reader::new(&payload[1..]);
                    r.string();
                    let sender = r.u32().unwrap_or(0);
                    let mut w = Writer::message(92);
                    w.u32(sender).u32(1).string(b"nope").string(b"");
                    t.send(&w.finish(), &mut out);
                }
                _ => {}
            }
        }
        for e in &events {
            eprintln!("event: {e:?}");
        }
        if stream.write_all(&out).is_err() {
            return;
        }
        if t.is_closed() {
            return;
        }
    }
}

/// A loopback server running `serve` per connection; returns its port.
fn spawn_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = config();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || serve(stream, config));
        }
    });
    port
}

fn ssh_reaches_auth(port: u16, extra: &[&str]) -> (bool, String) {
    let output = Command::new("ssh")
        .args([
            "-vvv",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-p",
            &port.to_string(),
        ])
        .args(extra)
        .arg("x@127.0.0.1")
        .arg("true")
        .output()
        .expect("ssh runs");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    (
        log.contains("Authentications that can continue: publickey,password"),
        log,
    )
}

/// Needs the OpenSSH client (Debian `openssh-client`) and loopback only.
#[test]
fn openssh_client_interop() {
    let port = spawn_server();
    let mut failures = Vec::new();
    let mut cases: Vec<Vec<String>> = vec![vec![]];
    for kex in kex::KEX {
        cases.push(vec!["-o".into(), format!("KexAlgorithms={kex}")]);
    }
    for c in cipher::CIPHERS {
        cases.push(vec![
            "-c".into(),
            (*c).into(),
            "-m".into(),
            "hmac-sha2-256-etm@openssh.com".into(),
        ]);
    }
    for m in cipher::MACS {
        cases.push(vec![
            "-c".into(),
            "aes128-ctr".into(),
            "-m".into(),
            (*m).into(),
        ]);
    }
    for hk in kexinit::SERVER_HOST_KEY {
        cases.push(vec!["-o".into(), format!("HostKeyAlgorithms={hk}")]);
    }
    cases.push(vec!["-C".into()]);
    // OpenSSH's default MAC (umac-64-etm) with a non-AEAD cipher.
    cases.push(vec!["-c".into(), "aes256-ctr".into()]);
    for case in &cases {
        let args: Vec<&str> = case.iter().map(String::as_str).collect();
        let (ok, log) = ssh_reaches_auth(port, &args);
        if !ok {
            eprintln!("=== {args:?}\n{log}");
            failures.push(args.join(" "));
        }
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
}

/// A client that re-keys again and again is cut off after the configured number of key
/// exchanges (each one costs the server a large modular exponentiation; the default is
/// [`MAX_KEY_EXCHANGES`]). Needs the OpenSSH client.
#[test]
fn endless_rekeying_is_cut_off() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = Arc::new(
        TransportConfig::new(DEFAULT_BANNER, b"test-seed")
            .unwrap()
            .with_max_key_exchanges(3),
    );
    std::thread::spawn(move || {
        if let Some(stream) = listener.incoming().flatten().next() {
            serve(stream, config);
        }
    });
    let log = rekeying_client(port, 20, 1, &[]);
    assert!(log.contains("too many key exchanges"), "{log}");
}

/// `ssh -N` to `ok@127.0.0.1:port` for at most `secs`, re-keying every `every` seconds with a
/// keepalive each second; its stderr.
fn rekeying_client(port: u16, secs: u32, every: u32, extra: &[&str]) -> String {
    let output = Command::new("timeout")
        .args([&secs.to_string(), "ssh", "-F", "/dev/null", "-N"])
        .args(extra)
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", &format!("RekeyLimit=default {every}")])
        .args(["-o", "ServerAliveInterval=1"])
        .args(["-p", &port.to_string(), "ok@127.0.0.1"])
        .output()
        .expect("ssh runs");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Delayed zlib compression after USERAUTH_SUCCESS, then a client-initiated re-key with
/// keepalives answered on both sides of it.
/// Needs the OpenSSH client (Debian `openssh-client`) and loopback only.
#[test]
fn openssh_client_compression_and_rekey() {
    let port = spawn_server();
    let log = rekeying_client(port, 6, 2, &["-vvv", "-C"]);
    assert!(log.contains("Enabling compression at level 6"), "{log}");
    let newkeys = log.matches("SSH2_MSG_NEWKEYS received").count();
    assert!(newkeys >= 2, "no re-key: {log}");
    let after = log.rsplit("SSH2_MSG_NEWKEYS received").next().unwrap_or("");
    assert!(after.contains("receive packet: type 82"), "{log}");

    let output = Command::new("ssh")
        .args([
            "-vvv",
            "-C",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
        ])
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-p",
            &port.to_string(),
        ])
        .args(["ok@127.0.0.1", "true"])
        .output()
        .expect("ssh runs");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("open failed: administratively prohibited: nope"),
        "{log}"
    );
}

/// Keeps a server up for manual tools (ssh-audit, paramiko, ssh-keyscan) on $SSH_TEST_PORT.
#[test]
#[ignore = "serves until killed"]
fn serve_forever() {
    let port: u16 = std::env::var("SSH_TEST_PORT").map_or(2222, |p| p.parse().unwrap());
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let config = config();
    for stream in listener.incoming().flatten() {
        let config = config.clone();
        std::thread::spawn(move || serve(stream, config));
    }
}
