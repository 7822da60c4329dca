//! The probing loop: every interval, the attackers the profiler has seen since the last look
//! get each probe once per port (bounded concurrency), and every fingerprint or failure
//! becomes a `prober` event for the store.
//!
//! Better than the original's serial, once-per-process walk over a JSON log: targets come
//! from the attackers table and only those that spoke to a decky's service (a completed
//! handshake, so not a spoofed SYN's source); the fleet's own deckies and gateways, this
//! host's addresses and non-routable addresses are never probed; probes run side by side;
//! and what was probed is remembered in bounded memory.

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use decnet_store::{Event, Severity, repo::SqlRepository};
use futures_util::{StreamExt as _, stream};
use tokio::sync::Notify;

use crate::{
    HASSH_PORTS, JARM_PORTS, PSEUDO_HOST, ProbeError, SERVICE, TCPFP_PORTS, hassh, jarm, tcpfp,
};

/// Which probes run, how often and how hard.
#[derive(Debug, Clone)]
pub struct ProberConfig {
    /// Between looks for new attackers.
    pub interval: Duration,
    /// Per probe (one JARM is ten connections, each with this bound).
    pub timeout: Duration,
    /// Probes in flight at once.
    pub concurrency: usize,
    pub jarm: bool,
    pub hassh: bool,
    pub tcpfp: bool,
}

impl Default for ProberConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
            concurrency: 16,
            jarm: true,
            hassh: true,
            tcpfp: true,
        }
    }
}

/// One probe of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Jarm,
    Hassh,
    Tcpfp,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Jarm => "jarm",
            Self::Hassh => "hassh",
            Self::Tcpfp => "tcpfp",
        }
    }
}

/// (address, probe, port) already tried; cleared when full so memory stays bounded (old
/// targets are then probed again, which is harmless).
const MAX_REMEMBERED: usize = 1 << 16;
/// Attackers read per page when looking for new ones.
const PAGE: i64 = 500;

/// What one look did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub targets: usize,
    pub probes: usize,
    pub fingerprints: usize,
    pub errors: usize,
}

/// Where events go: the intake pipeline in `decnet serve` and `decnet probe`, a vector in
/// tests.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

pub struct Prober {
    repo: SqlRepository,
    sink: Arc<dyn EventSink>,
    config: ProberConfig,
    tried: HashSet<(IpAddr, Kind, u16)>,
    /// Attackers last seen at or before this were handled by an earlier look.
    seen_up_to_ns: i64,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Addresses never probed: ours and nobody's.
fn probeable(ip: IpAddr) -> bool {
    // `::ffff:127.0.0.1` is 127.0.0.1 to a dual-stack connect: judge the IPv4 it stands for.
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_link_local())
        }
        // Link-local like IPv4's 169.254/16: it names a host only together with an interface.
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local())
        }
    }
}

fn event(kind: &str, severity: Severity, target: SocketAddr) -> Event {
    let mut e = Event::new(now_ns(), PSEUDO_HOST, SERVICE, kind, severity);
    e.dst_ip = Some(target.ip());
    e.dst_port = Some(target.port());
    put(&mut e, "target_ip", &target.ip().to_string());
    put(&mut e, "target_port", &target.port().to_string());
    e
}

fn put(e: &mut Event, key: &str, value: &str) {
    // Keys are ours and few: a refusal would be a bug, logged rather than lost silently.
    if let Err(err) = e.push_field(key, value) {
        tracing::error!(error = %err, key, "prober event field refused");
    }
}

/// The event of one probe's outcome, if it has one.
async fn run_probe(kind: Kind, target: SocketAddr, timeout: Duration) -> Option<Event> {
    let outcome: Result<Option<Event>, ProbeError> = match kind {
        Kind::Hassh => hassh::probe(target, timeout).await.map(|fp| {
            fp.map(|fp| {
                let mut e = event("hassh_fingerprint", Severity::Info, target);
                put(&mut e, "hassh_server", &fp.hassh_server);
                put(&mut e, "hash", &fp.hassh_server);
                put(&mut e, "ssh_banner", &fp.banner);
                put(&mut e, "kex_algorithms", &fp.kex);
                put(&mut e, "encryption_s2c", &fp.enc_s2c);
                put(&mut e, "mac_s2c", &fp.mac_s2c);
                put(&mut e, "compression_s2c", &fp.comp_s2c);
                e
            })
        }),
        Kind::Jarm => jarm::probe(target, &target.ip().to_string(), timeout)
            .await
            .map(|hash| {
                hash.map(|hash| {
                    let mut e = event("jarm_fingerprint", Severity::Info, target);
                    put(&mut e, "jarm_hash", &hash);
                    e
                })
            }),
        Kind::Tcpfp => match target {
            SocketAddr::V4(v4) => tcpfp::probe(v4, timeout).await.map(|fp| {
                fp.map(|fp| {
                    let mut e = event("tcpfp_fingerprint", Severity::Info, target);
                    put(&mut e, "tcpfp_hash", &fp.hash);
                    put(&mut e, "hash", &fp.hash);
                    put(&mut e, "raw", &fp.raw);
                    put(&mut e, "ttl", &fp.ttl.to_string());
                    put(&mut e, "window", &fp.window.to_string());
                    put(&mut e, "df", if fp.df { "1" } else { "0" });
                    put(
                        &mut e,
                        "mss",
                        &fp.mss.map(|m| m.to_string()).unwrap_or_default(),
                    );
                    put(
                        &mut e,
                        "wscale",
                        &fp.wscale.map(|w| w.to_string()).unwrap_or_default(),
                    );
                    put(&mut e, "sack", if fp.sack { "1" } else { "0" });
                    put(&mut e, "ts", if fp.timestamps { "1" } else { "0" });
                    put(&mut e, "options_order", &fp.options_order);
                    e
                })
            }),
            // The SYN is built for IPv4 only.
            SocketAddr::V6(_) => Ok(None),
        },
    };
    match outcome {
        Ok(e) => e,
        Err(err) => {
            let mut e = event("prober_error", Severity::Warning, target);
            put(&mut e, "probe", kind.name());
            put(&mut e, "error", &err.to_string());
            Some(e)
        }
    }
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("config", &self.config)
            .field("tried", &self.tried.len())
            .field("seen_up_to_ns", &self.seen_up_to_ns)
            .finish_non_exhaustive()
    }
}

impl Prober {
    pub fn new(repo: SqlRepository, sink: Arc<dyn EventSink>, config: ProberConfig) -> Self {
        Self {
            repo,
            sink,
            config,
            tried: HashSet::new(),
            seen_up_to_ns: 0,
        }
    }

    /// Addresses never probed: the fleet's deckies and gateways (from its records) and this
    /// host's own interfaces (the host shim among them). An unreadable fleet fails the look
    /// rather than probing blind.
    async fn own_addresses(&self) -> Result<HashSet<IpAddr>, decnet_store::repo::RepoError> {
        let mut own: HashSet<IpAddr> = self
            .repo
            .deckies()
            .await?
            .iter()
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(&d.spec).ok())
            .flat_map(|spec| {
                let decky = spec["base"]["networks"]
                    .as_object()
                    .and_then(|n| n.values().next())
                    .and_then(|a| a["ipv4_address"].as_str())
                    .and_then(|ip| ip.parse().ok());
                let gateway = spec["network"]["gateway"]
                    .as_str()
                    .and_then(|ip| ip.parse().ok());
                [decky, gateway].into_iter().flatten()
            })
            .collect();
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => own.extend(interfaces.iter().map(|i| i.ip().to_canonical())),
            Err(e) => tracing::warn!(error = %e, "cannot list this host's addresses"),
        }
        Ok(own)
    }

    /// Attackers seen since the last look, newest first.
    async fn new_targets(&mut self) -> Result<Vec<IpAddr>, decnet_store::repo::RepoError> {
        let own = self.own_addresses().await?;
        let mut out = Vec::new();
        let mut newest = self.seen_up_to_ns;
        let mut after: Option<(i64, String)> = None;
        loop {
            let page = self
                .repo
                .attackers_seen_since(
                    self.seen_up_to_ns,
                    after.as_ref().map(|(ts, uuid)| (*ts, uuid.as_str())),
                    PAGE,
                )
                .await?;
            for a in &page {
                newest = newest.max(a.last_seen_ns);
                // Only attackers that spoke to a decky's service (a completed handshake): a
                // sniffer-only source may be a spoofed SYN naming a third party we must not
                // probe.
                if a.service_count > 0
                    && let Ok(ip) = a.ip.parse::<IpAddr>().map(|ip| ip.to_canonical())
                    && probeable(ip)
                    && !own.contains(&ip)
                {
                    out.push(ip);
                }
            }
            match page.last() {
                Some(last) if i64::try_from(page.len()).unwrap_or(0) >= PAGE => {
                    after = Some((last.last_seen_ns, last.uuid.clone()));
                }
                _ => break,
            }
        }
        // Event time, not write time: an event dated in the future must not hide the
        // attackers that come after it, so the mark never passes now minus a minute.
        self.seen_up_to_ns = newest.min(now_ns().saturating_sub(60_000_000_000));
        Ok(out)
    }

    /// One look: probe what is new, emit the events. Ports already tried for an address are
    /// skipped, so an attacker active across many looks is probed once.
    pub async fn pass(&mut self) -> Result<PassReport, decnet_store::repo::RepoError> {
        let targets = self.new_targets().await?;
        let mut report = PassReport {
            targets: targets.len(),
            ..PassReport::default()
        };
        let mut work: Vec<(Kind, SocketAddr)> = Vec::new();
        let plan: [(bool, Kind, &[u16]); 3] = [
            (self.config.hassh, Kind::Hassh, &HASSH_PORTS),
            (self.config.tcpfp, Kind::Tcpfp, &TCPFP_PORTS),
            (self.config.jarm, Kind::Jarm, &JARM_PORTS),
        ];
        for ip in targets {
            for (on, kind, ports) in plan {
                for &port in ports.iter().filter(|_| on) {
                    if self.tried.len() >= MAX_REMEMBERED {
                        self.tried.clear();
                    }
                    if self.tried.insert((ip, kind, port)) {
                        work.push((kind, SocketAddr::new(ip, port)));
                    }
                }
            }
        }
        report.probes = work.len();
        let timeout = self.config.timeout;
        // Each outcome is stored as it arrives, so a long look shows progress and a stop
        // loses only the probes still in flight.
        let mut outcomes = stream::iter(work)
            .map(|(kind, target)| run_probe(kind, target, timeout))
            .buffer_unordered(self.config.concurrency.max(1));
        while let Some(outcome) = outcomes.next().await {
            let Some(e) = outcome else { continue };
            if e.kind == "prober_error" {
                report.errors += 1;
            } else {
                report.fingerprints += 1;
            }
            self.sink.emit(e);
        }
        Ok(report)
    }

    /// Look every interval until `stop` is notified; a stop during a look abandons the
    /// probes still in flight (their outcomes so far are already stored).
    pub async fn run(mut self, stop: Arc<Notify>) {
        loop {
            let outcome = tokio::select! {
                () = stop.notified() => return,
                outcome = self.pass() => outcome,
            };
            match outcome {
                Ok(r) if r.probes > 0 => tracing::info!(
                    targets = r.targets,
                    probes = r.probes,
                    fingerprints = r.fingerprints,
                    errors = r.errors,
                    "probed new attackers"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the attackers to probe"),
            }
            tokio::select! {
                () = stop.notified() => return,
                () = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    struct Discard;
    impl EventSink for Discard {
        fn emit(&self, _: Event) {}
    }

    fn attacker(ip: &str, service_count: i64, last_seen_ns: i64) -> decnet_store::repo::Attacker {
        decnet_store::repo::Attacker {
            uuid: String::new(),
            ip: ip.to_owned(),
            first_seen_ns: last_seen_ns,
            last_seen_ns,
            event_count: 1,
            service_count,
            decky_count: 1,
            services: if service_count > 0 {
                r#"["ssh"]"#
            } else {
                "[]"
            }
            .to_owned(),
            deckies: "[]".to_owned(),
            fingerprints: "[]".to_owned(),
            commands: "[]".to_owned(),
            traversal_path: String::new(),
            is_traversal: false,
            bounty_count: 0,
            credential_count: 0,
            score: 0,
        }
    }

    #[tokio::test]
    async fn targets_are_new_attackers_that_spoke_to_a_service_and_are_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let repo = SqlRepository::connect(&url).await.unwrap();
        let old = now_ns() - 3_600_000_000_000;
        for a in [
            attacker("203.0.113.7", 1, old),
            // Only SYNs seen: the source may be spoofed.
            attacker("203.0.113.8", 0, old),
            attacker("::ffff:198.51.100.9", 2, old),
            attacker("127.0.0.1", 1, old),
        ] {
            repo.upsert_attacker(&a).await.unwrap();
        }
        let mut prober = Prober::new(repo.clone(), Arc::new(Discard), ProberConfig::default());
        let mut first = prober.new_targets().await.unwrap();
        first.sort();
        let want: Vec<IpAddr> = vec![
            "198.51.100.9".parse().unwrap(),
            "203.0.113.7".parse().unwrap(),
        ];
        assert_eq!(first, want);
        // A later look lists attackers active since the mark (ties at the mark again: the
        // tried set, not the listing, keeps them from a second probe).
        let recent = now_ns() - 120_000_000_000;
        repo.upsert_attacker(&attacker("192.0.2.44", 1, recent))
            .await
            .unwrap();
        repo.upsert_attacker(&attacker("192.0.2.45", 0, recent))
            .await
            .unwrap();
        let later = prober.new_targets().await.unwrap();
        assert!(later.contains(&"192.0.2.44".parse().unwrap()), "{later:?}");
        assert!(
            later
                .iter()
                .all(|ip| want.contains(ip) || ip.to_string() == "192.0.2.44"),
            "{later:?}"
        );
        // Once the mark has passed them, old attackers are not listed again.
        let again = prober.new_targets().await.unwrap();
        assert_eq!(again, vec!["192.0.2.44".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn own_and_unroutable_addresses_are_never_probed_in_any_spelling() {
        for bad in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "::ffff:169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "fe80::1",
        ] {
            assert!(!probeable(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "10.232.1.2",
            "203.0.113.7",
            "2001:db8::7",
            "::ffff:203.0.113.7",
            "fd00::7",
        ] {
            assert!(probeable(good.parse().unwrap()), "{good}");
        }
    }
}
