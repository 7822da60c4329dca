//! The sniffer over the regression corpus: real clients captured on loopback by
//! `scripts/make-corpus.sh` (curl + openssl s_server, OpenSSH, curl + python http.server,
//! nmap). Reference values were computed once by tshark 4.0.17 (JA3, JA3S, HASSH,
//! hasshServer, HTTP fields, certificate SHA-256) and are recorded here as constants, so the
//! test needs no tshark. JA4 is checked against FoxIO's published vectors in the unit tests
//! (tshark 4.0 has no JA4) and, here, against `ja4plus` (PyPI, an independent implementation)
//! on every ClientHello of the corpus when its venv is installed (scripts/test.sh does).

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    path::PathBuf,
    sync::Arc,
};

use decnet_dataplane::{
    decode::Packet,
    pcapfile::{PcapReader, analyze_pcap},
    sniffer::{Analyzer, AnalyzerConfig, SnifferMetrics},
};
use decnet_store::{Event, Severity};

const CORPUS: [&str; 8] = [
    "tls.pcap",
    "ssh.pcap",
    "http.pcap",
    "http.pcapng",
    "nmap-syn.pcap",
    "nmap-connect.pcap",
    "nmap-xmas.pcap",
    "icmp-udp.pcap",
];

fn corpus_path(name: &str) -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/corpus")
    .join(name)
}

#[allow(clippy::panic)] // test helper: the panic message names the file
fn corpus(name: &str) -> Vec<Event> {
    let path = corpus_path(name);
    let deckies = HashMap::from([(IpAddr::from([127, 0, 0, 1]), "decky-lo".to_owned())]);
    analyze_pcap(&path, deckies).unwrap_or_else(|e| panic!("{e}"))
}

fn of_kind<'a>(events: &'a [Event], kind: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.kind == kind).collect()
}

fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// Where scripts/test.sh installs ja4plus (override with `DECNET_JA4PLUS`).
const JA4PLUS: &str = "/var/tmp/ja4-venv/bin/ja4plus";

/// Our JA4 and JA4_r of every ClientHello in the corpus equal ja4plus's for the same
/// connection (client port), and both find the same ClientHellos.
#[test]
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn ja4_matches_ja4plus_on_every_client_hello() {
    let bin =
        std::env::var_os("DECNET_JA4PLUS").map_or_else(|| PathBuf::from(JA4PLUS), PathBuf::from);
    if !bin.exists() {
        eprintln!(
            "SKIPPED ja4_matches_ja4plus_on_every_client_hello: {} is missing (python3 -m venv /var/tmp/ja4-venv && /var/tmp/ja4-venv/bin/pip install ja4plus==1.4.0)",
            bin.display()
        );
        return;
    }
    let mut compared = 0;
    for name in CORPUS {
        let ours: BTreeSet<(u16, String, String)> = corpus(name)
            .iter()
            .filter(|e| e.kind == "tls_client_hello")
            .map(|e| {
                (
                    e.src_port.unwrap(),
                    e.field("ja4").unwrap().to_owned(),
                    e.field("ja4_r").unwrap().to_owned(),
                )
            })
            .collect();
        let out = std::process::Command::new(&bin)
            .args(["--format", "json", "--types", "ja4", "analyze"])
            .arg(corpus_path(name))
            .output()
            .expect("run ja4plus");
        assert!(
            out.status.success(),
            "ja4plus on {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: BTreeSet<(u16, String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    u16::try_from(v["src_port"].as_u64().unwrap()).unwrap(),
                    v["fingerprint"].as_str().unwrap().to_owned(),
                    v["raw"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(ours, theirs, "{name}");
        compared += ours.len();
    }
    // The corpus holds two ClientHellos (curl with TLS 1.2 and 1.3): a test that compared
    // nothing would prove nothing.
    assert_eq!(compared, 2);
}

#[test]
fn every_event_is_a_sniffer_event_of_the_decky() {
    for name in CORPUS {
        let events = corpus(name);
        assert!(!events.is_empty(), "{name}");
        for e in &events {
            assert_eq!(e.service, "sniffer", "{name}: {e:?}");
            assert_eq!(e.decky, "decky-lo", "{name}: {e:?}");
        }
    }
}

#[test]
fn tls_curl_against_openssl_s_server() {
    let events = corpus("tls.pcap");
    let hellos = of_kind(&events, "tls_client_hello");
    assert_eq!(hellos.len(), 2);
    // curl --tls-max 1.2, then curl with TLS 1.3: JA3 as tshark computes it.
    assert_eq!(hellos[0].src_port, Some(59804));
    assert_eq!(
        hellos[0].field("ja3"),
        Some("a800670a9e75f9768d052dd7f0be5728")
    );
    assert_eq!(
        hellos[0].field("ja3_string"),
        Some(
            "771,49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,11-10-16-22-23-13,29-23-30-25-24,0-1-2"
        )
    );
    assert_eq!(hellos[1].src_port, Some(59816));
    assert_eq!(
        hellos[1].field("ja3"),
        Some("78f0dc5ac5b19daf131a133cfdee9691")
    );
    assert_eq!(
        hellos[1].field("supported_versions"),
        Some("0304,0303,0302,0301")
    );
    assert_eq!(hellos[0].field("alpn"), Some("h2,http/1.1"));
    assert_eq!(hellos[0].field("sni"), Some(""));
    assert!(
        hellos[1]
            .field("ja4")
            .is_some_and(|j| j.starts_with("t13i"))
    );
    assert!(
        hellos[0]
            .field("ja4")
            .is_some_and(|j| j.starts_with("t12i"))
    );
    let servers = of_kind(&events, "tls_server_hello");
    assert_eq!(servers.len(), 2);
    assert_eq!(
        servers[0].field("ja3s"),
        Some("e54965894d6b45ecb4323c7ea3d6c115")
    );
    assert_eq!(
        servers[1].field("ja3s"),
        Some("15af977ce25de452b96affa2addb1036")
    );
    assert_eq!(servers[1].field("version"), Some("0304"));
    // Oriented client → server.
    assert_eq!(servers[0].dst_port, Some(48443));
    // Only the TLS 1.2 handshake shows its certificate.
    let certs = of_kind(&events, "tls_certificate");
    assert_eq!(certs.len(), 1);
    let c = certs[0];
    assert_eq!(c.field("subject_cn"), Some("corpus.test"));
    assert_eq!(c.field("issuer_cn"), Some("corpus.test"));
    assert_eq!(c.field("not_before"), Some("2026-11-27T08:27:47Z"));
    assert_eq!(c.field("not_after"), Some("2036-11-24T08:27:47Z"));
    assert_eq!(
        c.field("sha256"),
        Some("7906ef2192f54a59e3d3ce899a202ea7cc589dc0944cb4634878a6090889a946")
    );
    assert_eq!(c.field("chain_len"), Some("1"));
    let syns = of_kind(&events, "tcp_syn");
    assert_eq!(syns.len(), 2);
    assert!(syns.iter().all(|s| s.field("os") == Some("Linux")));
    let flows = of_kind(&events, "flow");
    assert_eq!(flows.len(), 2);
    for f in flows {
        assert_eq!(f.field("handshake"), Some("true"));
        assert_eq!(f.field("proto"), Some("tcp"));
        assert_eq!(f.dst_port, Some(48443));
    }
}

#[test]
fn openssh_client_and_server() {
    let events = corpus("ssh.pcap");
    let kex = of_kind(&events, "ssh_kexinit");
    assert_eq!(kex.len(), 2);
    let client = kex
        .iter()
        .find(|e| e.field("role") == Some("client"))
        .unwrap();
    let server = kex
        .iter()
        .find(|e| e.field("role") == Some("server"))
        .unwrap();
    assert_eq!(
        client.field("banner"),
        Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10")
    );
    assert_eq!(
        client.field("hassh"),
        Some("472b5de333ad665af5cbf10ff892c4df")
    );
    assert_eq!(
        server.field("hassh_server"),
        Some("425d29fe50d8e4f5e37efb6e24bcf660")
    );
    assert!(
        client
            .field("hassh_algorithms")
            .is_some_and(|a| a.ends_with(";none,zlib@openssh.com,zlib"))
    );
    for e in [client, server] {
        assert_eq!(e.src_port, Some(52124));
        assert_eq!(e.dst_port, Some(48022));
    }
}

#[test]
fn curl_http_request_in_pcap_and_pcapng() {
    let pcap = corpus("http.pcap");
    let pcapng = corpus("http.pcapng");
    assert_eq!(
        pcap, pcapng,
        "the two file formats must give identical events"
    );
    let reqs = of_kind(&pcap, "http_request");
    assert_eq!(reqs.len(), 1);
    let r = reqs[0];
    assert_eq!(r.field("method"), Some("GET"));
    assert_eq!(r.field("host"), Some("127.0.0.1:48080"));
    assert_eq!(r.field("path"), Some("/?q=corpus"));
    assert_eq!(r.field("user_agent"), Some("corpus-agent/1.0"));
    assert_eq!(kinds(&pcap), vec!["tcp_syn", "http_request", "flow"]);
    assert_eq!(of_kind(&pcap, "flow")[0].field("end_reason"), Some("fin"));
}

#[test]
fn nmap_scans_are_classified() {
    let syn = corpus("nmap-syn.pcap");
    let scans = of_kind(&syn, "port_scan");
    assert_eq!(scans.len(), 1);
    let s = scans[0];
    assert_eq!(s.severity, Severity::Warning);
    assert_eq!(s.field("scan_type"), Some("syn"));
    assert_eq!(s.field("distinct_ports"), Some("201"));
    // Ports 48022 and 48080 were open: nmap reset both SYN-ACKs.
    assert_eq!(s.field("half_open"), Some("2"));
    assert!(
        of_kind(&syn, "tcp_syn")
            .iter()
            .all(|e| e.field("os") == Some("nmap SYN scan"))
    );

    let connect = corpus("nmap-connect.pcap");
    let scans = of_kind(&connect, "port_scan");
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0].field("distinct_ports"), Some("52"));
    // Two open ports complete the handshake and none is reset half-open: a connect() scan,
    // whose SYNs are the kernel's (Linux) rather than nmap's raw probes.
    assert_eq!(scans[0].field("scan_type"), Some("connect"));
    assert_eq!(scans[0].field("connect"), Some("52"));
    assert_eq!(scans[0].field("half_open"), Some("0"));
    assert!(
        of_kind(&connect, "tcp_syn")
            .iter()
            .all(|e| e.field("os") == Some("Linux"))
    );

    let xmas = corpus("nmap-xmas.pcap");
    let scans = of_kind(&xmas, "port_scan");
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0].field("scan_type"), Some("xmas"));
    assert_eq!(scans[0].field("distinct_ports"), Some("31"));
}

#[test]
fn icmp_echo_and_udp_probe() {
    let events = corpus("icmp-udp.pcap");
    let udp = of_kind(&events, "udp");
    assert_eq!(udp.len(), 1);
    assert_eq!(udp[0].dst_port, Some(48053));
    assert_eq!(udp[0].raw(), b"corpus-probe");
    let icmp = of_kind(&events, "icmp");
    assert_eq!(icmp.len(), 2);
    assert!(
        icmp.iter()
            .all(|e| e.field("icmp_name") == Some("echo_request"))
    );
}

/// The frames of a corpus file, in order.
#[allow(clippy::unwrap_used)]
fn frames(name: &str) -> Vec<(i64, Vec<u8>)> {
    let file = std::fs::File::open(corpus_path(name)).unwrap();
    let mut reader = PcapReader::new(std::io::BufReader::new(file)).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = reader.next_record().unwrap() {
        out.push((rec.ts_ns, rec.data.to_vec()));
    }
    out
}

/// Every TCP segment over IPv4 or IPv6 re-sent as one segment per payload byte (sequence
/// numbers and IP lengths adjusted; the decoder checks no checksum).
#[allow(clippy::unwrap_used)]
fn one_byte_segments(frames: &[(i64, Vec<u8>)]) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for (ts, data) in frames {
        let Ok(p) = Packet::decode(*ts, data) else {
            out.push((*ts, data.clone()));
            continue;
        };
        let Some(tcp) = p.tcp().filter(|t| t.payload.len() > 1) else {
            out.push((*ts, data.clone()));
            continue;
        };
        let offset = |s: &[u8]| s.as_ptr() as usize - data.as_ptr() as usize;
        let payload_at = offset(tcp.payload);
        let tcp_at = payload_at - 20 - tcp.options_raw.len();
        let ip_at = 14;
        let v6 = data[ip_at] >> 4 == 6;
        for (i, byte) in tcp.payload.iter().enumerate() {
            let mut f = data[..payload_at].to_vec();
            f.push(*byte);
            let seq = tcp.seq.wrapping_add(i as u32);
            f[tcp_at + 4..tcp_at + 8].copy_from_slice(&seq.to_be_bytes());
            if v6 {
                let len = (f.len() - ip_at - 40) as u16;
                f[ip_at + 4..ip_at + 6].copy_from_slice(&len.to_be_bytes());
            } else {
                let len = (f.len() - ip_at) as u16;
                f[ip_at + 2..ip_at + 4].copy_from_slice(&len.to_be_bytes());
            }
            out.push((*ts, f));
        }
    }
    out
}

fn analyze_frames(frames: &[(i64, Vec<u8>)]) -> Vec<Event> {
    let deckies = HashMap::from([(IpAddr::from([127, 0, 0, 1]), "decky-lo".to_owned())]);
    let mut analyzer = Analyzer::new(
        AnalyzerConfig::default(),
        deckies,
        Arc::new(SnifferMetrics::default()),
    );
    let mut out = Vec::new();
    for (ts, data) in frames {
        analyzer.process_frame(*ts, data, &mut out);
    }
    analyzer.finish(&mut out);
    out
}

/// Real clients' and servers' bytes, re-cut into one-byte segments, give the same hellos,
/// certificate, banners and requests: what the analyzer finds does not depend on how a peer
/// segments its stream (and looking at a stream only when it can tell more loses nothing).
#[test]
fn one_byte_segments_give_the_same_fingerprints() {
    const APP: [&str; 5] = [
        "tls_client_hello",
        "tls_server_hello",
        "tls_certificate",
        "ssh_kexinit",
        "http_request",
    ];
    let app = |events: &[Event]| -> Vec<String> {
        events
            .iter()
            .filter(|e| APP.contains(&e.kind.as_str()))
            .map(|e| format!("{e:?}"))
            .collect()
    };
    for name in ["tls.pcap", "ssh.pcap", "http.pcap"] {
        let frames = frames(name);
        let whole = app(&analyze_frames(&frames));
        let split = one_byte_segments(&frames);
        assert!(
            split.len() > frames.len() * 4,
            "{name}: few payloads to cut"
        );
        assert!(!whole.is_empty(), "{name}: nothing found");
        assert_eq!(app(&analyze_frames(&split)), whole, "{name}");
    }
}
