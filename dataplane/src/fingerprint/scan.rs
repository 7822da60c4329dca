//! Port-scan detection: per source, distinct destination ports and hosts within a window.
//!
//! A window opens at a source's first probe and closes `window_ns` later (packet time). At the
//! close, a source that touched at least `min_ports` distinct ports or `min_hosts` distinct
//! hosts yields one [`ScanReport`] with counts per probe class. Probe classes:
//! SYN (SYN without ACK), connect (handshakes completed — nmap `-sT`; `-sS` resets an answered
//! SYN instead, counted as half-open), FIN, NULL, Xmas (FIN+PSH+URG)
//! and UDP (the first datagram of a new UDP flow, so server replies never count).
//! State is bounded: sources, ports/hosts per source, and ports/hosts remembered across all
//! sources (spoofed sources each probing random hosts would otherwise hold 2^16 × 2^16
//! targets); a report whose counts stopped at a bound says so (`capped`).

use std::{collections::BTreeSet, net::IpAddr};

use crate::decode::TcpFlags;

/// A probe's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Syn,
    /// A handshake completed (counted on top of its SYN).
    Connect,
    /// The prober reset an answered SYN instead of completing it (SYN scan, open port).
    HalfOpen,
    Fin,
    Null,
    Xmas,
    Udp,
}

impl Probe {
    /// The probe class of a TCP segment sent by a flow's initiator, if it is one.
    pub fn of_tcp(flags: TcpFlags) -> Option<Self> {
        let f = flags.0 & 0x3f;
        const XMAS: u16 = TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG;
        if f & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN {
            Some(Self::Syn)
        } else if f == 0 {
            Some(Self::Null)
        } else if f == TcpFlags::FIN {
            Some(Self::Fin)
        } else if f & XMAS == XMAS && f & TcpFlags::ACK == 0 {
            Some(Self::Xmas)
        } else {
            None
        }
    }
}

/// Detector settings.
#[derive(Debug, Clone, Copy)]
pub struct ScanConfig {
    pub window_ns: i64,
    pub min_ports: usize,
    pub min_hosts: usize,
    pub max_sources: usize,
    /// Distinct ports/hosts remembered per source (counts stop growing past it).
    pub max_targets: usize,
    /// Distinct ports and hosts remembered across all open windows (about 24 bytes each at
    /// most); past it, windows keep counting probes but remember no new target.
    pub max_remembered: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            window_ns: 60 * 1_000_000_000,
            min_ports: 10,
            min_hosts: 10,
            max_sources: 1 << 16,
            max_targets: 1 << 16,
            max_remembered: 1 << 22,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Window {
    start_ts: i64,
    last_ts: i64,
    ports: BTreeSet<u16>,
    hosts: crate::FastSet<IpAddr>,
    counts: ProbeCounts,
    /// A destination seen (for the report's address when there is just one host).
    first_dst: Option<IpAddr>,
    /// A target went unremembered (a bound was reached): the distinct counts are floors.
    capped: bool,
}

/// Probes seen per class.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProbeCounts {
    pub syn: u64,
    pub connect: u64,
    pub half_open: u64,
    pub fin: u64,
    pub null: u64,
    pub xmas: u64,
    pub udp: u64,
}

/// One source's scan within one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanReport {
    pub src: IpAddr,
    /// The only destination host when there was exactly one.
    pub dst: Option<IpAddr>,
    pub start_ts: i64,
    pub end_ts: i64,
    pub distinct_ports: usize,
    pub distinct_hosts: usize,
    pub counts: ProbeCounts,
    /// `syn`, `connect`, `fin`, `null`, `xmas`, `udp` or `mixed`.
    pub scan_type: &'static str,
    /// The lowest ports probed (at most 32), for the event.
    pub ports_sample: Vec<u16>,
    /// A bound on remembered targets was reached: the distinct counts are floors.
    pub capped: bool,
}

/// The detector.
#[derive(Debug, Default)]
pub struct ScanDetector {
    config: ScanConfig,
    sources: crate::FastMap<IpAddr, Window>,
    /// Probes ignored because `max_sources` windows were open.
    pub dropped_sources: u64,
    /// Ports and hosts held by the open windows.
    remembered: usize,
}

impl ScanDetector {
    pub fn new(config: ScanConfig) -> Self {
        Self {
            config,
            sources: crate::FastMap::default(),
            dropped_sources: 0,
            remembered: 0,
        }
    }

    /// End `src`'s window: its targets leave the budget, its report (if it was a scan) goes
    /// to `out`.
    fn close(&mut self, src: IpAddr, out: &mut Vec<ScanReport>) {
        if let Some(w) = self.sources.remove(&src) {
            self.remembered = self
                .remembered
                .saturating_sub(w.ports.len() + w.hosts.len());
            out.extend(self.report(src, &w));
        }
    }

    /// Count one probe from `src` to `dst:port` at `ts`.
    pub fn observe(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        port: u16,
        probe: Probe,
        out: &mut Vec<ScanReport>,
    ) {
        let window_over = self
            .sources
            .get(&src)
            .is_some_and(|w| ts.saturating_sub(w.start_ts) >= self.config.window_ns);
        if window_over {
            self.close(src, out);
        }
        if !self.sources.contains_key(&src) && self.sources.len() >= self.config.max_sources {
            self.dropped_sources += 1;
            return;
        }
        let max = self.config.max_targets;
        let room = self.remembered < self.config.max_remembered;
        let w = self.sources.entry(src).or_insert_with(|| Window {
            start_ts: ts,
            ..Window::default()
        });
        w.last_ts = w.last_ts.max(ts);
        w.first_dst.get_or_insert(dst);
        // One set lookup per target while there is room (this runs for every probe).
        let mut added = 0;
        if room && w.ports.len() < max {
            added += usize::from(w.ports.insert(port));
        } else if !w.ports.contains(&port) {
            w.capped = true;
        }
        if room && w.hosts.len() < max {
            added += usize::from(w.hosts.insert(dst));
        } else if !w.hosts.contains(&dst) {
            w.capped = true;
        }
        self.remembered += added;
        let c = &mut w.counts;
        match probe {
            Probe::Syn => c.syn += 1,
            Probe::Connect => c.connect += 1,
            Probe::HalfOpen => c.half_open += 1,
            Probe::Fin => c.fin += 1,
            Probe::Null => c.null += 1,
            Probe::Xmas => c.xmas += 1,
            Probe::Udp => c.udp += 1,
        }
    }

    /// Close the windows that ended by `now`.
    pub fn expire(&mut self, now: i64, out: &mut Vec<ScanReport>) {
        let window = self.config.window_ns;
        let mut ended: Vec<IpAddr> = self
            .sources
            .iter()
            .filter(|(_, w)| now.saturating_sub(w.start_ts) >= window)
            .map(|(k, _)| *k)
            .collect();
        ended.sort_unstable();
        for src in ended {
            self.close(src, out);
        }
    }

    /// Close every window (end of capture).
    pub fn drain(&mut self, out: &mut Vec<ScanReport>) {
        let mut all: Vec<(IpAddr, Window)> = self.sources.drain().collect();
        self.remembered = 0;
        all.sort_unstable_by_key(|(k, _)| *k);
        for (src, w) in all {
            if let Some(r) = self.report(src, &w) {
                out.push(r);
            }
        }
    }

    fn report(&self, src: IpAddr, w: &Window) -> Option<ScanReport> {
        let c = w.counts;
        let probes = c.syn + c.connect + c.half_open + c.fin + c.null + c.xmas + c.udp;
        // A capped window may have probed more targets than it remembers: its probes decide.
        let enough_probes = w.capped
            && probes
                >= u64::try_from(self.config.min_ports.min(self.config.min_hosts))
                    .unwrap_or(u64::MAX);
        if w.ports.len() < self.config.min_ports
            && w.hosts.len() < self.config.min_hosts
            && !enough_probes
        {
            return None;
        }
        let mut c = c;
        // Closed ports answer SYN and connect() probes alike (RST), so only open ports tell the
        // two scans apart: completed handshakes and no half-open resets make the closed-port
        // SYNs connect() attempts too; otherwise a completed handshake moves from SYN to connect.
        let syn_only = if c.connect > 0 && c.half_open == 0 {
            c.connect = c.connect.max(c.syn);
            0
        } else {
            c.syn.saturating_sub(c.connect)
        };
        let classes = [
            ("syn", syn_only),
            ("connect", c.connect),
            ("fin", c.fin),
            ("null", c.null),
            ("xmas", c.xmas),
            ("udp", c.udp),
        ];
        let total: u64 = classes.iter().map(|(_, n)| n).sum();
        let (top, top_n) = classes
            .iter()
            .copied()
            .max_by_key(|(_, n)| *n)
            .unwrap_or(("mixed", 0));
        // One class must make up at least 80% to name the scan after it.
        let scan_type = if total > 0 && top_n * 10 >= total * 8 {
            top
        } else {
            "mixed"
        };
        Some(ScanReport {
            src,
            dst: (w.hosts.len() == 1).then_some(w.first_dst).flatten(),
            start_ts: w.start_ts,
            end_ts: w.last_ts,
            distinct_ports: w.ports.len(),
            distinct_hosts: w.hosts.len(),
            counts: ProbeCounts { syn: syn_only, ..c },
            scan_type,
            ports_sample: w.ports.iter().copied().take(32).collect(),
            capped: w.capped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_scan_of_many_ports_is_one_report_per_window() {
        let mut d = ScanDetector::new(ScanConfig::default());
        let src: IpAddr = "10.0.0.9".parse().unwrap();
        let dst: IpAddr = "10.0.0.2".parse().unwrap();
        let mut out = Vec::new();
        for p in 1..=100u16 {
            d.observe(i64::from(p) * 1000, src, dst, p, Probe::Syn, &mut out);
        }
        d.observe(5000, src, dst, 22, Probe::Connect, &mut out);
        d.observe(5001, src, dst, 80, Probe::HalfOpen, &mut out);
        assert!(out.is_empty());
        d.expire(61 * 1_000_000_000, &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(r.distinct_ports, 100);
        assert_eq!(r.distinct_hosts, 1);
        assert_eq!(r.counts.syn, 99);
        assert_eq!(r.counts.connect, 1);
        assert_eq!(r.scan_type, "syn");
        assert_eq!(r.dst, Some(dst));
        d.drain(&mut out);
        assert_eq!(out.len(), 1);
    }

    /// Spoofed sources each probing fresh hosts: what the windows remember stays within the
    /// budget, the reports say their counts are floors, and closing windows frees the budget.
    #[test]
    fn remembered_targets_stay_within_the_budget() {
        let config = ScanConfig {
            max_remembered: 1000,
            ..ScanConfig::default()
        };
        let mut d = ScanDetector::new(config);
        let mut out = Vec::new();
        for s in 0..20u32 {
            let src = IpAddr::from((0x0a00_0000 + s).to_be_bytes());
            for h in 0..100u32 {
                let dst = IpAddr::from((0xc0a8_0000 + h).to_be_bytes());
                d.observe(1, src, dst, 80 + (h % 5) as u16, Probe::Syn, &mut out);
                assert!(d.remembered <= 1000);
            }
        }
        let held: usize = d
            .sources
            .values()
            .map(|w| w.ports.len() + w.hosts.len())
            .sum();
        assert_eq!(held, d.remembered);
        d.expire(61 * 1_000_000_000, &mut out);
        assert_eq!(d.remembered, 0);
        assert_eq!(out.len(), 20, "every source probed 100 hosts");
        assert!(!out[0].capped && out[0].distinct_hosts == 100);
        assert!(out[19].capped && out[19].distinct_hosts < 100);
        assert_eq!(out[19].counts.syn, 100, "probes are still counted");
        // The budget is free again.
        let src: IpAddr = "10.9.9.9".parse().unwrap();
        for h in 0..100u32 {
            let dst = IpAddr::from((0xc0a8_0000 + h).to_be_bytes());
            d.observe(62 * 1_000_000_000, src, dst, 80, Probe::Syn, &mut out);
        }
        d.drain(&mut out);
        let last = out.last().unwrap();
        assert_eq!((last.distinct_hosts, last.capped), (100, false));
        assert_eq!(d.remembered, 0);
    }

    #[test]
    fn handshakes_without_half_open_resets_make_a_connect_scan() {
        let mut d = ScanDetector::new(ScanConfig::default());
        let src: IpAddr = "10.0.0.9".parse().unwrap();
        let mut out = Vec::new();
        for p in 1..=20u16 {
            d.observe(0, src, src, p, Probe::Syn, &mut out);
        }
        d.observe(0, src, src, 22, Probe::Connect, &mut out);
        d.drain(&mut out);
        assert_eq!(out[0].scan_type, "connect");
        assert_eq!((out[0].counts.syn, out[0].counts.connect), (0, 20));
    }

    #[test]
    fn few_ports_is_not_a_scan_and_flags_classify() {
        let mut d = ScanDetector::new(ScanConfig::default());
        let src: IpAddr = "10.0.0.9".parse().unwrap();
        let mut out = Vec::new();
        d.observe(0, src, src, 80, Probe::Syn, &mut out);
        d.drain(&mut out);
        assert!(out.is_empty());
        assert_eq!(Probe::of_tcp(TcpFlags(0x029)), Some(Probe::Xmas));
        assert_eq!(Probe::of_tcp(TcpFlags(0)), Some(Probe::Null));
        assert_eq!(Probe::of_tcp(TcpFlags(1)), Some(Probe::Fin));
        assert_eq!(Probe::of_tcp(TcpFlags(2)), Some(Probe::Syn));
        assert_eq!(Probe::of_tcp(TcpFlags(0x12)), None);
        assert_eq!(Probe::of_tcp(TcpFlags(0x10)), None);
    }
}
