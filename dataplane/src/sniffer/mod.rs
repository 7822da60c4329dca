//! The analyzer: decoded packets in, `sniffer` events out.
//!
//! One [`Analyzer`] per capture thread (it owns a [`FlowTable`], no locks). It is sans-IO:
//! frames and their timestamps go in through [`Analyzer::process_frame`], events come out in
//! the caller's `Vec`, and time only advances with packet timestamps, so a pcap replay yields
//! the same events as the live capture did.
//!
//! Event kinds (service `sniffer`): `flow`, `tcp_syn`, `tls_client_hello`, `tls_server_hello`,
//! `tls_certificate`, `ssh_kexinit`, `http_request`, `icmp`, `udp`, `port_scan`.

mod limit;
mod stream;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, fmt::Display, net::IpAddr, sync::Arc};

use decnet_store::{Event, Severity, metrics::Counter};

use crate::{
    decode::{Icmp, Packet, Transport},
    fingerprint::{
        der, hex, http,
        scan::{Probe, ScanConfig, ScanDetector, ScanReport},
        ssh, tcp, tls,
    },
    flow::{Expired, FlowConfig, FlowStats, FlowTable},
};
pub use limit::{EventLimiter, LimitConfig};
use stream::{AppState, Stream};

/// The service slug of every event the analyzer produces.
pub const SERVICE: &str = "sniffer";

/// Analyzer settings.
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    pub flows: FlowConfig,
    pub scan: ScanConfig,
    /// Bytes of each stream direction kept for the TLS/SSH/HTTP parsers.
    pub stream_cap: usize,
    /// Bytes every stream direction of the analyzer may hold together: past it, directions
    /// that bring new bytes are given up (counted), so flows that each hold an unfinished
    /// record cannot add up to `max_flows` × 2 × `stream_cap` (16 GiB at the defaults).
    pub stream_budget: usize,
    /// `decky` of events whose addresses are not in the decky map.
    pub default_decky: String,
    /// Emit one `udp` event per new UDP flow.
    pub udp_events: bool,
    /// Emit `flow` events.
    pub flow_events: bool,
    /// How often (packet time) timeouts are checked.
    pub sweep_interval_ns: i64,
    /// Token buckets for the kinds one packet can trigger (see [`limit`]).
    pub limits: LimitConfig,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            flows: FlowConfig::default(),
            scan: ScanConfig::default(),
            stream_cap: 32 * 1024,
            stream_budget: 128 << 20,
            default_decky: "sensor".to_owned(),
            udp_events: true,
            flow_events: true,
            sweep_interval_ns: 1_000_000_000,
            limits: LimitConfig::default(),
        }
    }
}

/// Counters of the analyzer, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct SnifferMetrics {
    pub received: Counter,
    pub received_bytes: Counter,
    pub decoded: Counter,
    pub decode_errors: Counter,
    pub events: Counter,
    pub flows_evicted: Counter,
    /// Scan probes ignored because too many sources were being tracked.
    pub scan_sources_dropped: Counter,
    /// Events refused by the rate limiter, by kind ([`LIMITED_KINDS`] order).
    pub rate_limited: [Counter; limit::KINDS],
    /// Events the store's queue refused (full): the capture never waits for the store.
    pub events_queue_full: Counter,
    /// Stream directions given up unparsed because the analyzer's streams held
    /// [`AnalyzerConfig::stream_budget`].
    pub streams_over_budget: Counter,
    /// Flows tracked now, over every analyzer sharing these metrics.
    pub flows_active: std::sync::atomic::AtomicU64,
}

/// The kinds that pass the rate limiter, in [`SnifferMetrics::rate_limited`] order.
pub const LIMITED_KINDS: [&str; limit::KINDS] = ["tcp_syn", "udp", "icmp", "flow"];
const LIMIT_SYN: usize = 0;
const LIMIT_UDP: usize = 1;
const LIMIT_ICMP: usize = 2;
const LIMIT_FLOW: usize = 3;

impl SnifferMetrics {
    /// Prometheus text exposition (Vector component naming, like the intake's).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let rows: [(&str, &str, &Counter); 8] = [
            ("component_received_packets_total", "", &self.received),
            ("component_received_bytes_total", "", &self.received_bytes),
            ("component_decoded_packets_total", "", &self.decoded),
            ("component_errors_total", "decode", &self.decode_errors),
            ("component_sent_events_total", "", &self.events),
            (
                "component_discarded_flows_total",
                "evicted",
                &self.flows_evicted,
            ),
            (
                "component_discarded_events_total",
                "scan_sources_full",
                &self.scan_sources_dropped,
            ),
            (
                "component_discarded_streams_total",
                "stream_budget",
                &self.streams_over_budget,
            ),
        ];
        for (name, reason, c) in rows {
            let _ = write!(out, "decnet_{name}{{component=\"sniffer\"");
            if !reason.is_empty() {
                let _ = write!(out, ",reason=\"{reason}\"");
            }
            let _ = writeln!(out, "}} {}", c.get());
        }
        for (kind, c) in LIMITED_KINDS.iter().zip(&self.rate_limited) {
            let _ = writeln!(
                out,
                "decnet_component_discarded_events_total{{component=\"sniffer\",reason=\"rate_limited\",kind=\"{kind}\"}} {}",
                c.get()
            );
        }
        let _ = writeln!(
            out,
            "decnet_component_discarded_events_total{{component=\"sniffer\",reason=\"queue_full\"}} {}",
            self.events_queue_full.get()
        );
        let _ = writeln!(
            out,
            "decnet_flows_active{{component=\"sniffer\"}} {}",
            self.flows_active.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    /// Events refused by the rate limiter, all kinds.
    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.iter().map(Counter::get).sum()
    }
}

/// Per-flow analyzer state, stored in the flow table entry.
#[derive(Debug, Default)]
pub(crate) struct FlowState {
    /// 0 = initiator → responder, 1 = back.
    streams: [Stream; 2],
    app: [AppState; 2],
}

/// The analyzer.
#[derive(Debug)]
pub struct Analyzer {
    config: AnalyzerConfig,
    deckies: HashMap<IpAddr, String>,
    flows: FlowTable<FlowState>,
    scans: ScanDetector,
    metrics: Arc<SnifferMetrics>,
    last_sweep: Option<i64>,
    evicted_seen: u64,
    scan_dropped_seen: u64,
    /// Flow count last added to the shared `flows_active` gauge.
    flows_reported: u64,
    limiter: EventLimiter,
    expired: Vec<Expired<FlowState>>,
    reports: Vec<ScanReport>,
    /// Bytes the flows' stream directions hold (see [`AnalyzerConfig::stream_budget`]).
    stream_held: usize,
    /// Per-packet counts not yet added to the shared metrics (atomics cost more than the
    /// rest of a small packet's analysis; they are published every [`PUBLISH_EVERY`] frames).
    unpublished: Unpublished,
}

/// Frames between two publications of the per-packet counters.
const PUBLISH_EVERY: u64 = 256;

#[derive(Debug, Default)]
struct Unpublished {
    received: u64,
    bytes: u64,
    decoded: u64,
    decode_errors: u64,
    events: u64,
}

fn put(ev: &mut Event, key: &str, value: impl Display) {
    // Keys are static and few: the only possible error is the field cap, which sets `truncated`.
    let _ = ev.push_field(key, &value.to_string());
}

impl Analyzer {
    /// An analyzer; `deckies` names the decoys by address (events touching them carry that name).
    pub fn new(
        config: AnalyzerConfig,
        deckies: HashMap<IpAddr, String>,
        metrics: Arc<SnifferMetrics>,
    ) -> Self {
        let limiter_config = config.limits;
        Self {
            flows: FlowTable::new(config.flows),
            scans: ScanDetector::new(config.scan),
            config,
            deckies,
            metrics,
            last_sweep: None,
            evicted_seen: 0,
            scan_dropped_seen: 0,
            flows_reported: 0,
            limiter: EventLimiter::new(limiter_config),
            expired: Vec::new(),
            reports: Vec::new(),
            stream_held: 0,
            unpublished: Unpublished::default(),
        }
    }

    /// Add the per-packet counts gathered since the last call to the shared metrics. Called
    /// every [`PUBLISH_EVERY`] frames, by [`Analyzer::advance`] and [`Analyzer::finish`], and
    /// by the capture loop after each batch.
    pub fn publish_metrics(&mut self) {
        self.sync_counters();
        let u = std::mem::take(&mut self.unpublished);
        let m = &self.metrics;
        for (counter, n) in [
            (&m.received, u.received),
            (&m.received_bytes, u.bytes),
            (&m.decoded, u.decoded),
            (&m.decode_errors, u.decode_errors),
            (&m.events, u.events),
        ] {
            if n > 0 {
                counter.add(n);
            }
        }
    }

    pub fn metrics(&self) -> &Arc<SnifferMetrics> {
        &self.metrics
    }

    /// Replace the decky name map (the fleet changed); later events use the new names.
    pub fn set_deckies(&mut self, deckies: HashMap<IpAddr, String>) {
        self.deckies = deckies;
    }

    /// Flows currently tracked.
    pub fn active_flows(&self) -> usize {
        self.flows.len()
    }

    /// Decode one Ethernet frame and analyze it; events are appended to `out`. Returns the
    /// frame's source and destination addresses (for the pcap index, so the capture path
    /// decodes each frame once).
    pub fn process_frame(
        &mut self,
        ts_ns: i64,
        frame: &[u8],
        out: &mut Vec<Event>,
    ) -> [Option<IpAddr>; 2] {
        self.unpublished.received += 1;
        self.unpublished.bytes += frame.len() as u64;
        if self.unpublished.received >= PUBLISH_EVERY {
            self.publish_metrics();
        }
        match Packet::decode(ts_ns, frame) {
            Ok(packet) => {
                self.unpublished.decoded += 1;
                self.process(&packet, out);
                [packet.src_ip(), packet.dst_ip()]
            }
            Err(e) => {
                self.unpublished.decode_errors += 1;
                tracing::trace!(error = %e, "undecodable frame");
                // Time still advances for timeouts.
                let before = out.len();
                self.maybe_sweep(ts_ns, out);
                self.unpublished.events += (out.len() - before) as u64;
                [None, None]
            }
        }
    }

    /// The frame after the one about to be processed (see `FrameConsumer::upcoming`): with
    /// many flows tracked, its flow's index bucket is fetched while the current frame is
    /// analysed, so a flood of new flows does not wait for memory on every packet.
    #[inline]
    pub fn upcoming(&self, frame: &[u8]) {
        if self.flows.len() >= crate::flow::PREFETCH_FROM_FLOWS
            && let Ok(packet) = Packet::decode(0, frame)
        {
            self.flows.prefetch(&packet);
        }
    }

    /// Analyze a decoded packet.
    pub fn process(&mut self, packet: &Packet<'_>, out: &mut Vec<Event>) {
        let before = out.len();
        self.maybe_sweep(packet.ts_ns, out);
        if let Some(ip) = packet.ip() {
            match &packet.transport {
                Transport::Tcp(t) => {
                    if let Some(fp) = tcp::tcp_syn_fingerprint(ip, t)
                        && let Some(n) = self.admit(LIMIT_SYN, ip.src, packet.ts_ns)
                    {
                        let mut ev = self.syn_event(packet, &fp);
                        suppressed(&mut ev, n);
                        out.push(ev);
                    }
                }
                Transport::Icmp(i) => {
                    if icmp_name(i.icmp_type, false).is_some()
                        && let Some(n) = self.admit(LIMIT_ICMP, ip.src, packet.ts_ns)
                        && let Some(mut ev) = self.icmp_event(packet, i, false)
                    {
                        suppressed(&mut ev, n);
                        out.push(ev);
                    }
                }
                Transport::Icmpv6(i) => {
                    if icmp_name(i.icmp_type, true).is_some()
                        && let Some(n) = self.admit(LIMIT_ICMP, ip.src, packet.ts_ns)
                        && let Some(mut ev) = self.icmp_event(packet, i, true)
                    {
                        suppressed(&mut ev, n);
                        out.push(ev);
                    }
                }
                _ => {}
            }
            self.track_flow(packet, out);
        }
        self.unpublished.events += (out.len() - before) as u64;
    }

    /// Advance time to `now_ns` without a packet (idle capture): ends timed-out flows and
    /// scan windows.
    pub fn advance(&mut self, now_ns: i64, out: &mut Vec<Event>) {
        let before = out.len();
        self.sweep(now_ns, out);
        self.unpublished.events += (out.len() - before) as u64;
        self.publish_metrics();
    }

    /// End every flow and scan window (end of capture).
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let before = out.len();
        let mut expired = std::mem::take(&mut self.expired);
        self.flows.drain(&mut expired);
        self.emit_expired(&mut expired, out);
        self.expired = expired;
        let mut reports = std::mem::take(&mut self.reports);
        self.scans.drain(&mut reports);
        self.emit_reports(&mut reports, out);
        self.reports = reports;
        self.unpublished.events += (out.len() - before) as u64;
        self.publish_metrics();
    }

    fn maybe_sweep(&mut self, now: i64, out: &mut Vec<Event>) {
        match self.last_sweep {
            None => self.last_sweep = Some(now),
            Some(last) if now.saturating_sub(last) >= self.config.sweep_interval_ns => {
                self.sweep(now, out);
            }
            Some(_) => {}
        }
    }

    fn sweep(&mut self, now: i64, out: &mut Vec<Event>) {
        self.last_sweep = Some(now);
        let mut expired = std::mem::take(&mut self.expired);
        self.flows.expire(now, &mut expired);
        self.emit_expired(&mut expired, out);
        self.expired = expired;
        let mut reports = std::mem::take(&mut self.reports);
        self.scans.expire(now, &mut reports);
        self.emit_reports(&mut reports, out);
        self.reports = reports;
    }

    fn track_flow(&mut self, packet: &Packet<'_>, out: &mut Vec<Event>) {
        let mut expired = std::mem::take(&mut self.expired);
        let cap = self.config.stream_cap;
        let mut probe: Option<(Probe, u16)> = None;
        let mut app_events: Vec<AppEvent> = Vec::new();
        let mut initiator = None;
        let ends = if let Some(up) = self.flows.update(packet, &mut expired) {
            let ends = up.ends.map(|reason| (up.slot, reason));
            initiator = Some((up.stats.initiator, up.stats.responder));
            match &packet.transport {
                Transport::Tcp(t) => {
                    if up.from_initiator {
                        if up.handshake_completed {
                            probe = Some((Probe::Connect, t.dst_port));
                        } else if up.half_open_reset {
                            probe = Some((Probe::HalfOpen, t.dst_port));
                        } else if let Some(p) = Probe::of_tcp(t.flags) {
                            // Retransmitted SYNs are the same probe, not a new one.
                            if !up.retransmit {
                                probe = Some((p, t.dst_port));
                            }
                        }
                    }
                    let dir = usize::from(!up.from_initiator);
                    let state = up.state;
                    let stream = &mut state.streams[dir];
                    let held = stream.held();
                    if self.stream_held >= self.config.stream_budget
                        && !stream.done
                        && !t.payload.is_empty()
                    {
                        stream.finish();
                        self.metrics.streams_over_budget.inc();
                    } else if stream.push(t, cap) {
                        stream::analyze(stream, &mut state.app[dir], dir == 0, &mut app_events);
                    }
                    self.stream_held = (self.stream_held + stream.held()).saturating_sub(held);
                }
                Transport::Udp(u) if up.new && up.from_initiator => {
                    probe = Some((Probe::Udp, u.dst_port));
                    if self.config.udp_events {
                        app_events.push(AppEvent::Udp(0));
                    }
                }
                _ => {}
            }
            ends
        } else {
            None
        };
        if let (Some((p, port)), Some(ip)) = (probe, packet.ip()) {
            let mut reports = std::mem::take(&mut self.reports);
            self.scans
                .observe(packet.ts_ns, ip.src, ip.dst, port, p, &mut reports);
            self.emit_reports(&mut reports, out);
            self.reports = reports;
        }
        if let Some((init, resp)) = initiator
            && !app_events.is_empty()
        {
            for ev in app_events {
                let ev = match ev {
                    AppEvent::Udp(_) => match self.admit(LIMIT_UDP, init.0, packet.ts_ns) {
                        Some(n) => AppEvent::Udp(n),
                        None => continue,
                    },
                    other => other,
                };
                if let Some(produced) = self.app_event(packet, init, resp, ev) {
                    out.push(produced);
                }
            }
        }
        if let Some((slot, reason)) = ends
            && let Some(e) = self.flows.end(slot, reason)
        {
            expired.push(e);
        }
        // Most packets end no flow; the gauges catch up in `publish_metrics` then.
        if !expired.is_empty() {
            self.emit_expired(&mut expired, out);
        }
        self.expired = expired;
    }

    /// Publish what changed since the last call (after flows end or scans report, and with
    /// the per-packet counters).
    fn sync_counters(&mut self) {
        publish_growth(
            &self.metrics.flows_evicted,
            self.flows.counters.evicted,
            &mut self.evicted_seen,
        );
        publish_growth(
            &self.metrics.scan_sources_dropped,
            self.scans.dropped_sources,
            &mut self.scan_dropped_seen,
        );
        let flows = self.flows.len() as u64;
        if flows != self.flows_reported {
            // Wrapping add of the signed difference: several analyzers share the gauge.
            self.metrics.flows_active.fetch_add(
                flows.wrapping_sub(self.flows_reported),
                std::sync::atomic::Ordering::Relaxed,
            );
            self.flows_reported = flows;
        }
    }

    /// Ask the limiter for one event of kind `LIMITED_KINDS[kind]` from `src`; a refusal is
    /// counted.
    fn admit(&mut self, kind: usize, src: IpAddr, ts: i64) -> Option<u64> {
        let r = self.limiter.admit(kind, src, ts);
        if r.is_none()
            && let Some(c) = self.metrics.rate_limited.get(kind)
        {
            c.inc();
        }
        r
    }

    fn emit_expired(&mut self, expired: &mut Vec<Expired<FlowState>>, out: &mut Vec<Event>) {
        self.sync_counters();
        for e in expired.drain(..) {
            let held: usize = e.state.streams.iter().map(Stream::held).sum();
            self.stream_held = self.stream_held.saturating_sub(held);
            // A banner whose KEXINIT never came (banner grabbers, scanners) is still worth an
            // event; the stream still holds it because its parser never answered.
            for (dir, stream) in e.state.streams.iter().enumerate() {
                if let Some(hello) = stream.pending_ssh_banner(dir == 0) {
                    let mut ev = self.event(
                        e.stats.last_ts,
                        "ssh_kexinit",
                        Severity::Info,
                        Some((e.stats.initiator.0, Some(e.stats.initiator.1))),
                        Some((e.stats.responder.0, Some(e.stats.responder.1))),
                    );
                    put(&mut ev, "role", if dir == 0 { "client" } else { "server" });
                    put(&mut ev, "banner", &hello.banner);
                    out.push(ev);
                }
            }
            if self.config.flow_events {
                // Probe-sized flows (one packet each way at most, no handshake) are what a
                // flood is made of; the scan detector has already counted them.
                let st = &e.stats;
                let probe = !st.handshake_done && st.dir[0].packets + st.dir[1].packets <= 2;
                let n = if probe {
                    self.admit(LIMIT_FLOW, st.initiator.0, st.last_ts)
                } else {
                    Some(0)
                };
                if let Some(n) = n {
                    let mut ev = self.flow_event(st, e.reason.as_str());
                    suppressed(&mut ev, n);
                    out.push(ev);
                }
            }
        }
    }

    fn emit_reports(&mut self, reports: &mut Vec<ScanReport>, out: &mut Vec<Event>) {
        self.sync_counters();
        for r in reports.drain(..) {
            out.push(self.scan_event(&r));
        }
    }

    /// The decky an event belongs to: the destination's name, else the source's.
    fn decky_of(&self, src: Option<IpAddr>, dst: Option<IpAddr>) -> String {
        dst.and_then(|a| self.deckies.get(&a))
            .or_else(|| src.and_then(|a| self.deckies.get(&a)))
            .cloned()
            .unwrap_or_else(|| self.config.default_decky.clone())
    }

    fn event(
        &self,
        ts: i64,
        kind: &str,
        severity: Severity,
        src: Option<(IpAddr, Option<u16>)>,
        dst: Option<(IpAddr, Option<u16>)>,
    ) -> Event {
        let decky = self.decky_of(src.map(|s| s.0), dst.map(|d| d.0));
        let mut ev = Event::new(ts, decky, SERVICE, kind, severity);
        ev.src_ip = src.map(|s| s.0);
        ev.src_port = src.and_then(|s| s.1);
        ev.dst_ip = dst.map(|d| d.0);
        ev.dst_port = dst.and_then(|d| d.1);
        ev
    }

    fn packet_event(&self, packet: &Packet<'_>, kind: &str, severity: Severity) -> Event {
        let ports = packet.ports();
        let src = packet.src_ip().map(|a| (a, ports.map(|p| p.0)));
        let dst = packet.dst_ip().map(|a| (a, ports.map(|p| p.1)));
        self.event(packet.ts_ns, kind, severity, src, dst)
    }

    fn syn_event(&self, packet: &Packet<'_>, fp: &tcp::SynFingerprint) -> Event {
        let mut ev = self.packet_event(packet, "tcp_syn", Severity::Info);
        put(&mut ev, "ttl", fp.ttl);
        put(&mut ev, "initial_ttl", fp.initial_ttl);
        put(&mut ev, "hops", fp.hops);
        put(&mut ev, "window", fp.window);
        put(&mut ev, "mss", opt(fp.mss));
        put(&mut ev, "wscale", opt(fp.wscale));
        put(&mut ev, "options", &fp.options);
        put(&mut ev, "df", fp.df);
        put(&mut ev, "ip_version", fp.ip_version);
        put(&mut ev, "os", fp.os);
        ev
    }

    fn icmp_event(&self, packet: &Packet<'_>, icmp: &Icmp<'_>, v6: bool) -> Option<Event> {
        let name = icmp_name(icmp.icmp_type, v6)?;
        let mut ev = self.packet_event(packet, "icmp", Severity::Info);
        put(&mut ev, "icmp_version", if v6 { 6 } else { 4 });
        put(&mut ev, "icmp_type", icmp.icmp_type);
        put(&mut ev, "icmp_code", icmp.code);
        put(&mut ev, "icmp_name", name);
        if matches!((v6, icmp.icmp_type), (false, 8) | (true, 128)) {
            let (id, seq) = icmp.echo_id_seq();
            put(&mut ev, "echo_id", id);
            put(&mut ev, "echo_seq", seq);
        }
        put(&mut ev, "payload_len", icmp.payload.len());
        if let Some(ip) = packet.ip() {
            put(&mut ev, "ttl", ip.ttl);
        }
        ev.set_raw(icmp.payload);
        Some(ev)
    }

    fn app_event(
        &self,
        packet: &Packet<'_>,
        init: (IpAddr, u16),
        resp: (IpAddr, u16),
        app: AppEvent,
    ) -> Option<Event> {
        let ts = packet.ts_ns;
        // App events are oriented by the flow: src = client, dst = server.
        let client = Some((init.0, Some(init.1)));
        let server = Some((resp.0, Some(resp.1)));
        Some(match app {
            AppEvent::ClientHello(ch) => {
                let mut ev = self.event(ts, "tls_client_hello", Severity::Info, client, server);
                let (ja4, ja4_r) = ch.ja4();
                put(&mut ev, "ja3", ch.ja3());
                put(&mut ev, "ja3_string", ch.ja3_string());
                put(&mut ev, "ja4", ja4);
                put(&mut ev, "ja4_r", ja4_r);
                put(&mut ev, "sni", ch.sni.as_deref().unwrap_or(""));
                let alpn: Vec<String> = ch
                    .alpn
                    .iter()
                    .map(|a| crate::fingerprint::printable(a))
                    .collect();
                put(&mut ev, "alpn", alpn.join(","));
                put(&mut ev, "supported_versions", ch.versions_hex());
                put(
                    &mut ev,
                    "client_version",
                    format!("{:04x}", ch.legacy_version),
                );
                ev
            }
            AppEvent::ServerHello(sh) => {
                let mut ev = self.event(ts, "tls_server_hello", Severity::Info, client, server);
                put(&mut ev, "ja3s", sh.ja3s());
                put(&mut ev, "ja3s_string", sh.ja3s_string());
                put(
                    &mut ev,
                    "version",
                    format!("{:04x}", sh.selected_version.unwrap_or(sh.legacy_version)),
                );
                put(&mut ev, "cipher", format!("{:04x}", sh.cipher));
                ev
            }
            AppEvent::Certificate { chain_len, leaf } => {
                let mut ev = self.event(ts, "tls_certificate", Severity::Info, client, server);
                put(
                    &mut ev,
                    "subject_cn",
                    leaf.subject_cn.as_deref().unwrap_or(""),
                );
                put(
                    &mut ev,
                    "issuer_cn",
                    leaf.issuer_cn.as_deref().unwrap_or(""),
                );
                put(&mut ev, "not_before", &leaf.not_before);
                put(&mut ev, "not_after", &leaf.not_after);
                put(&mut ev, "sha256", &leaf.sha256);
                put(&mut ev, "chain_len", chain_len);
                ev
            }
            AppEvent::Ssh {
                client: is_client,
                hello,
            } => {
                let mut ev = self.event(ts, "ssh_kexinit", Severity::Info, client, server);
                put(&mut ev, "role", if is_client { "client" } else { "server" });
                put(&mut ev, "banner", &hello.banner);
                if let Some(k) = &hello.kexinit {
                    if is_client {
                        put(&mut ev, "hassh", k.hassh());
                        put(&mut ev, "hassh_algorithms", k.hassh_algorithms());
                    } else {
                        put(&mut ev, "hassh_server", k.hassh_server());
                        put(
                            &mut ev,
                            "hassh_server_algorithms",
                            k.hassh_server_algorithms(),
                        );
                    }
                }
                ev
            }
            AppEvent::Http(req) => {
                let mut ev = self.event(ts, "http_request", Severity::Info, client, server);
                put(&mut ev, "method", &req.method);
                put(&mut ev, "host", req.host.as_deref().unwrap_or(""));
                put(&mut ev, "path", &req.path);
                put(&mut ev, "version", &req.version);
                put(
                    &mut ev,
                    "user_agent",
                    req.user_agent.as_deref().unwrap_or(""),
                );
                ev
            }
            AppEvent::Udp(n) => {
                let u = packet.udp()?;
                let mut ev = self.packet_event(packet, "udp", Severity::Info);
                put(&mut ev, "payload_len", u.payload.len());
                put(
                    &mut ev,
                    "payload_head",
                    hex(&u.payload[..u.payload.len().min(32)]),
                );
                ev.set_raw(u.payload);
                suppressed(&mut ev, n);
                ev
            }
        })
    }

    fn flow_event(&self, st: &FlowStats, reason: &str) -> Event {
        let ports = st.key.protocol == 6 || st.key.protocol == 17;
        let port = |p: u16| ports.then_some(p);
        let mut ev = self.event(
            st.last_ts,
            "flow",
            Severity::Info,
            Some((st.initiator.0, port(st.initiator.1))),
            Some((st.responder.0, port(st.responder.1))),
        );
        let us = |ns: f64| format!("{:.0}", ns / 1000.0);
        put(&mut ev, "proto", proto_name(st.key.protocol));
        put(&mut ev, "end_reason", reason);
        put(&mut ev, "start_ts_ns", st.first_ts);
        put(&mut ev, "duration_us", st.duration_ns() / 1000);
        put(&mut ev, "packets_fwd", st.dir[0].packets);
        put(&mut ev, "packets_rev", st.dir[1].packets);
        put(&mut ev, "bytes_fwd", st.dir[0].bytes);
        put(&mut ev, "bytes_rev", st.dir[1].bytes);
        put(&mut ev, "payload_bytes_fwd", st.dir[0].payload_bytes);
        put(&mut ev, "payload_bytes_rev", st.dir[1].payload_bytes);
        put(&mut ev, "iat_mean_us", us(st.iat.mean()));
        put(&mut ev, "iat_min_us", us(st.iat.min()));
        put(&mut ev, "iat_max_us", us(st.iat.max()));
        put(&mut ev, "iat_stddev_us", us(st.iat.stddev()));
        if st.key.protocol == 6 {
            put(&mut ev, "tcp_flags", st.flags().names());
            put(&mut ev, "retransmits", st.retransmits);
            put(&mut ev, "handshake", st.handshake_done);
        }
        ev
    }

    fn scan_event(&self, r: &ScanReport) -> Event {
        let mut ev = self.event(
            r.start_ts,
            "port_scan",
            Severity::Warning,
            Some((r.src, None)),
            r.dst.map(|d| (d, None)),
        );
        put(&mut ev, "scan_type", r.scan_type);
        put(&mut ev, "distinct_ports", r.distinct_ports);
        put(&mut ev, "distinct_hosts", r.distinct_hosts);
        if r.capped {
            // The counts stopped at a memory bound: they are floors.
            put(&mut ev, "capped", true);
        }
        put(&mut ev, "syn", r.counts.syn);
        put(&mut ev, "connect", r.counts.connect);
        put(&mut ev, "half_open", r.counts.half_open);
        put(&mut ev, "fin", r.counts.fin);
        put(&mut ev, "null", r.counts.null);
        put(&mut ev, "xmas", r.counts.xmas);
        put(&mut ev, "udp", r.counts.udp);
        put(
            &mut ev,
            "duration_us",
            r.end_ts.saturating_sub(r.start_ts) / 1000,
        );
        let sample: Vec<String> = r.ports_sample.iter().map(u16::to_string).collect();
        put(&mut ev, "ports_sample", sample.join(","));
        ev
    }
}

/// What a stream parser found.
#[derive(Debug)]
pub(crate) enum AppEvent {
    ClientHello(Box<tls::ClientHello>),
    ServerHello(tls::ServerHello),
    Certificate {
        chain_len: usize,
        leaf: der::CertSummary,
    },
    Ssh {
        client: bool,
        hello: ssh::SshHello,
    },
    Http(http::HttpRequest),
    /// A new UDP flow; the number is its source's rate-limited events before it.
    Udp(u64),
}

/// Tell the reader of an admitted event how many of its source's events the limiter refused
/// since the previous one.
/// Add to `counter` what the monotonic `now` grew by since `seen`. This runs for every packet:
/// an unchanged value costs a compare, not an atomic add of zero on a line the metrics reader
/// shares.
fn publish_growth(counter: &Counter, now: u64, seen: &mut u64) {
    if now != *seen {
        counter.add(now - *seen);
        *seen = now;
    }
}

fn suppressed(ev: &mut Event, n: u64) {
    if n > 0 {
        put(ev, "suppressed", n);
    }
}

fn opt<T: Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        58 => "icmpv6".to_owned(),
        other => other.to_string(),
    }
}

/// Names of the ICMP messages reported; `None` for replies, errors and IPv6 neighbour
/// discovery chatter, which are answers or housekeeping rather than probes.
fn icmp_name(t: u8, v6: bool) -> Option<&'static str> {
    Some(match (v6, t) {
        (false, 5) => "redirect",
        (false, 8) => "echo_request",
        (false, 13) => "timestamp_request",
        (false, 15) => "information_request",
        (false, 17) => "address_mask_request",
        // Replies and errors (unreachable, time exceeded) answer someone else's probe.
        (false, 0 | 3 | 11 | 14 | 16 | 18) => return None,
        (false, _) => "other",
        (true, 128) => "echo_request",
        (true, 139) => "node_information_query",
        (true, 1..=4 | 129..=137 | 143) => return None,
        (true, _) => "other",
    })
}
