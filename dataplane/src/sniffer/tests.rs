use std::net::Ipv4Addr;

use super::*;
use crate::{
    decode::TcpFlags,
    fingerprint::tls::hs,
    testutil::{ip4, tcp4, udp4},
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 66);
const DECKY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SYN: u16 = TcpFlags::SYN;
const ACK: u16 = TcpFlags::ACK;
const PA: u16 = TcpFlags::PSH | TcpFlags::ACK;

fn analyzer() -> Analyzer {
    let deckies = HashMap::from([(IpAddr::V4(DECKY), "web-01".to_owned())]);
    Analyzer::new(
        AnalyzerConfig::default(),
        deckies,
        Arc::new(SnifferMetrics::default()),
    )
}

fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// Linux SYN options: mss 1460, sok, ts, nop, ws 7.
const LINUX_OPTS: [u8; 20] = [
    2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];

#[test]
fn client_hello_split_over_segments_out_of_order() {
    let mut a = analyzer();
    let mut out = Vec::new();
    let c = (CLIENT, 50000);
    let s = (DECKY, 443);
    a.process_frame(0, &tcp4(c, s, 999, 0, SYN, &LINUX_OPTS, &[]), &mut out);
    a.process_frame(1, &tcp4(s, c, 5000, 1000, SYN | ACK, &[], &[]), &mut out);
    a.process_frame(2, &tcp4(c, s, 1000, 5001, ACK, &[], &[]), &mut out);
    let body = crate::fingerprint::tls::tests::chrome_client_hello();
    let stream = crate::fingerprint::tls::tests::records(hs::CLIENT_HELLO, &body, 120);
    let third = stream.len() / 3;
    let (p1, rest) = stream.split_at(third);
    let (p2, p3) = rest.split_at(third);
    let seq2 = 1000 + third as u32;
    let seq3 = seq2 + third as u32;
    // Third segment first (a gap: ignored), then 1, 2, then 3 again (retransmission).
    a.process_frame(3, &tcp4(c, s, seq3, 5001, PA, &[], p3), &mut out);
    a.process_frame(4, &tcp4(c, s, 1000, 5001, PA, &[], p1), &mut out);
    a.process_frame(5, &tcp4(c, s, seq2, 5001, PA, &[], p2), &mut out);
    assert_eq!(kinds(&out), vec!["tcp_syn"]);
    a.process_frame(6, &tcp4(c, s, seq3, 5001, PA, &[], p3), &mut out);
    assert_eq!(kinds(&out), vec!["tcp_syn", "tls_client_hello"]);
    let syn = &out[0];
    assert_eq!(syn.service, "sniffer");
    assert_eq!(syn.decky, "web-01");
    assert_eq!(syn.field("os"), Some("Linux"));
    assert_eq!(syn.field("options"), Some("mss,sok,ts,nop,ws"));
    let ch = &out[1];
    assert_eq!(ch.src_ip, Some(IpAddr::V4(CLIENT)));
    assert_eq!(ch.dst_port, Some(443));
    assert_eq!(
        ch.field("ja4"),
        Some("t13d1516h2_8daaf6152771_d8a2da3f94cd")
    );
    assert_eq!(ch.field("ja3"), Some("98487aa16281980e7d1120d399efb6a4"));
    assert_eq!(ch.field("sni"), Some("tls.browserleaks.com"));
    assert_eq!(ch.field("alpn"), Some("h2,http/1.1"));
    a.process_frame(
        7,
        &tcp4(c, s, seq3 + p3.len() as u32, 5001, TcpFlags::RST, &[], &[]),
        &mut out,
    );
    assert_eq!(kinds(&out).last(), Some(&"flow"));
    let flow = out.last().unwrap();
    assert_eq!(flow.field("end_reason"), Some("rst"));
    assert_eq!(flow.field("retransmits"), Some("1"));
    assert_eq!(flow.field("packets_fwd"), Some("7"));
    assert_eq!(flow.field("handshake"), Some("true"));
    a.publish_metrics();
    let m = a.metrics();
    assert_eq!(m.received.get(), 8);
    assert_eq!(m.decoded.get(), 8);
    assert_eq!(m.events.get(), 3);
}

#[test]
fn http_request_udp_probe_icmp_and_decode_errors() {
    let mut a = analyzer();
    let mut out = Vec::new();
    let c = (CLIENT, 50001);
    let s = (DECKY, 80);
    a.process_frame(0, &tcp4(c, s, 1, 0, SYN, &LINUX_OPTS, &[]), &mut out);
    let req = b"GET /admin HTTP/1.1\r\nHost: web-01\r\nUser-Agent: sqlmap/1.7\r\n\r\n";
    a.process_frame(1, &tcp4(c, s, 2, 1, PA, &[], &req[..20]), &mut out);
    a.process_frame(2, &tcp4(c, s, 22, 1, PA, &[], &req[20..]), &mut out);
    a.process_frame(
        3,
        &udp4((CLIENT, 40000), (DECKY, 161), b"\x30\x26public"),
        &mut out,
    );
    // A reply in the same UDP flow is not a new probe.
    a.process_frame(4, &udp4((DECKY, 161), (CLIENT, 40000), b"x"), &mut out);
    let echo = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
    a.process_frame(5, &ip4(CLIENT, DECKY, 1, 51, &echo), &mut out);
    a.process_frame(6, &[0u8; 5], &mut out);
    assert_eq!(kinds(&out), vec!["tcp_syn", "http_request", "udp", "icmp"]);
    let h = &out[1];
    assert_eq!(h.field("method"), Some("GET"));
    assert_eq!(h.field("path"), Some("/admin"));
    assert_eq!(h.field("host"), Some("web-01"));
    assert_eq!(h.field("user_agent"), Some("sqlmap/1.7"));
    assert_eq!(out[2].field("payload_len"), Some("8"));
    assert_eq!(out[2].dst_port, Some(161));
    let i = &out[3];
    assert_eq!(i.field("icmp_name"), Some("echo_request"));
    assert_eq!(i.field("echo_id"), Some("4660"));
    assert_eq!(i.field("ttl"), Some("51"));
    assert_eq!(i.decky, "web-01");
    a.publish_metrics();
    assert_eq!(a.metrics().decode_errors.get(), 1);
    out.clear();
    a.finish(&mut out);
    assert_eq!(kinds(&out), vec!["flow", "flow", "flow"]);
    // Fields keep their producer order.
    let keys: Vec<&str> = out[0]
        .fields()
        .iter()
        .take(3)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, vec!["proto", "end_reason", "start_ts_ns"]);
}

#[test]
fn syn_scan_yields_one_port_scan_event() {
    let mut a = analyzer();
    let mut out = Vec::new();
    let nmap_opts = [2u8, 4, 5, 0xb4];
    for port in 1..=50u16 {
        let ts = i64::from(port) * 1_000_000;
        a.process_frame(
            ts,
            &tcp4((CLIENT, 61000), (DECKY, port), 77, 0, SYN, &nmap_opts, &[]),
            &mut out,
        );
        a.process_frame(
            ts + 1,
            &tcp4(
                (DECKY, port),
                (CLIENT, 61000),
                0,
                78,
                TcpFlags::RST | ACK,
                &[],
                &[],
            ),
            &mut out,
        );
    }
    let syns: Vec<&Event> = out.iter().filter(|e| e.kind == "tcp_syn").collect();
    assert_eq!(syns.len(), 50);
    assert_eq!(syns[0].field("os"), Some("unknown"));
    a.finish(&mut out);
    let scans: Vec<&Event> = out.iter().filter(|e| e.kind == "port_scan").collect();
    assert_eq!(scans.len(), 1);
    let s = scans[0];
    assert_eq!(s.severity, Severity::Warning);
    assert_eq!(s.field("scan_type"), Some("syn"));
    assert_eq!(s.field("distinct_ports"), Some("50"));
    assert_eq!(s.field("syn"), Some("50"));
    assert_eq!(s.decky, "web-01");
    assert_eq!(out.iter().filter(|e| e.kind == "flow").count(), 50);
}

#[test]
fn metrics_render() {
    let m = SnifferMetrics::default();
    m.decode_errors.inc();
    let mut s = String::new();
    m.render(&mut s);
    assert!(s.contains("decnet_component_errors_total{component=\"sniffer\",reason=\"decode\"} 1"));
}

proptest::proptest! {
    /// Arbitrary frames, and valid TCP segments with arbitrary payloads on the ports the
    /// stream parsers look at, never panic the analyzer and keep its counters consistent.
    #[test]
    fn analyzer_never_panics(
        frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), 0..20),
        payloads in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..12),
        prefix in proptest::prop_oneof![
            proptest::strategy::Just(b"\x16\x03\x01".to_vec()),
            proptest::strategy::Just(b"SSH-2.0-x\r\n".to_vec()),
            proptest::strategy::Just(b"GET / HTTP/1.1\r\n".to_vec()),
        ],
    ) {
        let mut a = analyzer();
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            a.process_frame(i as i64, f, &mut out);
        }
        let c = (CLIENT, 40000);
        let s = (DECKY, 443);
        let mut seq = 1u32;
        a.process_frame(100, &tcp4(c, s, 0, 0, SYN, &LINUX_OPTS, &[]), &mut out);
        a.process_frame(101, &tcp4(s, c, 0, 1, SYN | ACK, &[], &[]), &mut out);
        for (i, p) in std::iter::once(&prefix).chain(payloads.iter()).enumerate() {
            let (from, to) = if i % 3 == 2 { (s, c) } else { (c, s) };
            a.process_frame(102 + i as i64, &tcp4(from, to, seq, 1, PA, &[], p), &mut out);
            seq = seq.wrapping_add(p.len() as u32);
        }
        a.finish(&mut out);
        let m = a.metrics();
        proptest::prop_assert_eq!(m.received.get(), m.decoded.get() + m.decode_errors.get());
        proptest::prop_assert_eq!(m.events.get(), out.len() as u64);
        proptest::prop_assert_eq!(a.active_flows(), 0);
    }
}

#[test]
fn ssh_banner_without_kexinit_is_reported_when_the_flow_ends() {
    let mut a = analyzer();
    let mut out = Vec::new();
    let c = (CLIENT, 50002);
    let s = (DECKY, 22);
    a.process_frame(0, &tcp4(c, s, 1, 0, SYN, &LINUX_OPTS, &[]), &mut out);
    a.process_frame(1, &tcp4(c, s, 2, 1, PA, &[], b"SSH-2.0-Go\r\n"), &mut out);
    a.process_frame(2, &tcp4(c, s, 14, 1, TcpFlags::RST, &[], &[]), &mut out);
    assert_eq!(kinds(&out), vec!["tcp_syn", "ssh_kexinit", "flow"]);
    assert_eq!(out[1].field("banner"), Some("SSH-2.0-Go"));
    assert_eq!(out[1].field("hassh"), None);
    assert_eq!(out[1].dst_port, Some(22));
}

#[test]
fn idle_flows_expire_on_later_packets_even_undecodable_ones() {
    let mut a = analyzer();
    let mut out = Vec::new();
    a.process_frame(0, &udp4((CLIENT, 5353), (DECKY, 5353), b"mdns"), &mut out);
    assert_eq!(kinds(&out), vec!["udp"]);
    // Two minutes later (past the 60 s idle timeout) an undecodable frame still moves time.
    a.process_frame(120_000_000_000, &[1, 2, 3], &mut out);
    assert_eq!(kinds(&out), vec!["udp", "flow"]);
    assert_eq!(out[1].field("end_reason"), Some("idle_timeout"));
    a.publish_metrics();
    assert_eq!(a.metrics().events.get(), 2);
    assert_eq!(a.active_flows(), 0);
}

/// Flows that each hold an unfinished TLS record stop at the analyzer's stream budget: the
/// directions past it are given up and counted, and the bytes come back as the flows end.
#[test]
fn stream_bytes_stay_within_the_budget() {
    let config = AnalyzerConfig {
        stream_budget: 10_000,
        ..AnalyzerConfig::default()
    };
    let mut a = Analyzer::new(config, HashMap::new(), Arc::new(SnifferMetrics::default()));
    let mut out = Vec::new();
    // A record header announcing 16,000 bytes, then 995 of them.
    let mut partial = vec![22, 3, 3, 0x3e, 0x80];
    partial.resize(1000, 0);
    let s = (DECKY, 443);
    for i in 0..30u16 {
        let c = (CLIENT, 40000 + i);
        a.process_frame(i64::from(i), &tcp4(c, s, 1, 0, SYN, &[], &[]), &mut out);
        a.process_frame(i64::from(i), &tcp4(c, s, 2, 0, PA, &[], &partial), &mut out);
        assert!(
            a.stream_held <= 10_000 + 1000,
            "{} bytes held",
            a.stream_held
        );
    }
    assert_eq!(a.stream_held, 10_000);
    assert_eq!(a.metrics().streams_over_budget.get(), 20);
    for i in 0..30u16 {
        let c = (CLIENT, 40000 + i);
        let rst = tcp4(c, s, 1002, 0, TcpFlags::RST, &[], &[]);
        a.process_frame(100, &rst, &mut out);
    }
    assert_eq!(a.stream_held, 0);
    // Room again: the next ClientHello is read.
    let c = (CLIENT, 50000);
    let body = crate::fingerprint::tls::tests::chrome_client_hello();
    let hello = crate::fingerprint::tls::tests::records(hs::CLIENT_HELLO, &body, 16_000);
    a.process_frame(200, &tcp4(c, s, 1, 0, SYN, &[], &[]), &mut out);
    a.process_frame(201, &tcp4(c, s, 2, 0, PA, &[], &hello), &mut out);
    assert_eq!(kinds(&out).last(), Some(&"tls_client_hello"));
    let mut text = String::new();
    a.metrics().render(&mut text);
    assert!(text.contains(
        "decnet_component_discarded_streams_total{component=\"sniffer\",reason=\"stream_budget\"} 20"
    ));
}
