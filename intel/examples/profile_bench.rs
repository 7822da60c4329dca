//! Profiler benchmark (BENCHMARKS.md, `bench/intel.sh`).
//!
//! - `engine N IPS`: N synthetic events from IPS attackers through the pure engine, taking
//!   changes (attacker rows, behaviour, serialized state) every 100,000 events as the worker
//!   does by default.
//! - `fill DB N IPS`: write N synthetic events into a SQLite store at DB (or, when DB is a
//!   URL such as `postgres://…`, into that database; `bench/api.sh` fills its stores so).
//! - `profile DB [BATCH] [COMMIT_MS]`: run the profiler worker over DB until caught up,
//!   committing every COMMIT_MS milliseconds of feeding or BATCH events, whichever first
//!   (defaults 2,000 ms and 500,000, as `decnet profiler`).
//!
//! `PAD=N` (environment) pads every command and password with N distinct bytes, for `engine`
//! and `fill`; `MAX_CACHED_MIB=N` bounds the profiler's cache (default 1,024 MiB).
//!
//! Each prints events/s and the process's peak RSS (VmHWM).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{net::IpAddr, time::Instant};

use decnet_intel::{Config, Profiler, worker::Worker};
use decnet_store::{
    Event, Severity,
    repo::{Repository, SqlRepository},
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Gen {
    state: u64,
    ips: u64,
    /// Bytes of filler added to every command and password (`PAD`, default 0): with about
    /// 1,000 (the engine clips entries at 1,024), attackers reach their lists' caps with
    /// near-maximal entries, the costliest state an attacker can make the profiler carry and
    /// save.
    pad: usize,
}

impl Gen {
    fn new(ips: u64) -> Self {
        Self {
            state: 0x9e37_79b9_7f4a_7c15,
            ips,
            pad: std::env::var("PAD").map_or(0, |p| p.parse().expect("PAD is a byte count")),
        }
    }

    /// `base`, made distinct by `r` and padded to `pad` more bytes.
    fn padded(&self, base: String, r: u64) -> String {
        if self.pad == 0 {
            return base;
        }
        let mut s = format!("{base} #{r:016x}");
        s.extend(std::iter::repeat_n('x', self.pad.saturating_sub(18)));
        s
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, no dependency.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn event(&mut self, i: u64) -> Event {
        let r = self.next();
        let ip_n = r % self.ips;
        let ip: IpAddr =
            std::net::Ipv4Addr::from(0x0a00_0000_u32 + u32::try_from(ip_n).unwrap()).into();
        let decky = format!("decky-{:02}", (r >> 20) % 8);
        let ts = 1_780_000_000_000_000_000 + i64::try_from(i).unwrap() * 1_000_000;
        let (service, kind) = match (r >> 32) % 10 {
            0..=3 => ("ssh", "auth_attempt"),
            4 | 5 => ("http", "request"),
            6 => ("telnet", "command"),
            7 => ("sniffer", "tcp_syn_fingerprint"),
            8 => ("ssh", "connect"),
            _ => ("sniffer", "tcp_flow_timing"),
        };
        let mut e = Event::new(ts, decky, service, kind, Severity::Info);
        e.src_ip = Some(ip);
        e.src_port = Some(40_000);
        e.dst_port = Some(22);
        let w = (r >> 40) % 50;
        match kind {
            "auth_attempt" => {
                e.push_field("username", "root").unwrap();
                e.push_field("password", &self.padded(format!("pass{w}"), r))
                    .unwrap();
                e.push_field("success", "false").unwrap();
            }
            "request" => {
                e.push_field("method", "GET").unwrap();
                e.push_field("path", &format!("/p/{w}")).unwrap();
                e.push_field(
                    "headers",
                    r#"{"User-Agent":"Mozilla/5.0 zgrab/0.x","Accept":"*/*"}"#,
                )
                .unwrap();
            }
            "command" => {
                e.push_field("cmd", &self.padded(format!("cat /etc/file{w}"), r))
                    .unwrap();
            }
            "tcp_syn_fingerprint" => {
                e.push_field("ttl", "52").unwrap();
                e.push_field("window", "64240").unwrap();
                e.push_field("os_guess", "linux").unwrap();
                e.push_field("hop_distance", "12").unwrap();
            }
            "tcp_flow_timing" => {
                e.push_field("packets", "12").unwrap();
                e.push_field("retransmits", "1").unwrap();
            }
            _ => {}
        }
        e
    }
}

/// A path is a SQLite file (created when missing); anything with a scheme is a database URL.
fn db_url(db: &str) -> String {
    if db.contains("://") {
        db.to_owned()
    } else {
        format!("sqlite://{db}?mode=rwc")
    }
}

/// The profiler's settings: the defaults, with `MAX_CACHED_MIB` (environment) as the cache's
/// byte bound when set.
fn config() -> Config {
    let mut config = Config::default();
    if let Ok(mib) = std::env::var("MAX_CACHED_MIB") {
        let mib: usize = mib.parse().expect("MAX_CACHED_MIB is a number of MiB");
        config.max_cached_bytes = mib << 20;
    }
    config
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: profile_bench engine N IPS | fill DB N IPS | profile DB [BATCH] [COMMIT_MS]";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.get(1).map(String::as_str) {
        Some("engine") => {
            let n: u64 = args.get(2).expect(usage).parse().unwrap();
            let ips: u64 = args.get(3).expect(usage).parse().unwrap();
            let mut g = Gen::new(ips);
            let mut p = Profiler::new(config());
            let started = Instant::now();
            let mut rows = 0usize;
            for i in 0..n {
                let e = g.event(i);
                p.feed(&e);
                if i % 100_000 == 99_999 {
                    rows += p.take_changes().unwrap().attackers.len();
                    p.evict();
                }
            }
            rows += p.take_changes().unwrap().attackers.len();
            let secs = started.elapsed().as_secs_f64();
            #[allow(clippy::cast_precision_loss)]
            let rate = n as f64 / secs;
            println!(
                "engine: {n} events, {ips} attackers, {secs:.2} s, {rate:.0} events/s (incl. generation), {rows} attacker rows built, peak RSS {:.1} MiB",
                peak_rss_mib()
            );
        }
        Some("fill") => {
            let db = args.get(2).expect(usage);
            let n: u64 = args.get(3).expect(usage).parse().unwrap();
            let ips: u64 = args.get(4).expect(usage).parse().unwrap();
            rt.block_on(async {
                let repo = SqlRepository::connect(&db_url(db)).await.unwrap();
                let mut g = Gen::new(ips);
                let started = Instant::now();
                let mut seg = repo.max_segment_id().await.unwrap() + 1;
                let mut i = 0;
                while i < n {
                    let chunk: Vec<(u64, Event)> = (0..10_000.min(n - i))
                        .map(|j| (j, g.event(i + j)))
                        .collect();
                    i += chunk.len() as u64;
                    repo.insert_segment(seg, &chunk).await.unwrap();
                    seg += 1;
                }
                println!(
                    "fill: {n} events in {:.2} s",
                    started.elapsed().as_secs_f64()
                );
            });
        }
        Some("profile") => {
            let db = args.get(2).expect(usage);
            let batch: i64 = args
                .get(3)
                .map_or(decnet_intel::worker::DEFAULT_BATCH, |b| b.parse().unwrap());
            let commit_ms: u64 = args.get(4).map_or(2_000, |b| b.parse().unwrap());
            rt.block_on(async {
                let repo = SqlRepository::connect(&db_url(db)).await.unwrap();
                let mut w = Worker::open(repo, config(), batch)
                    .await
                    .unwrap()
                    .with_commit_interval(std::time::Duration::from_millis(commit_ms));
                let started = Instant::now();
                let n = w.run_until_idle().await.unwrap();
                let secs = started.elapsed().as_secs_f64();
                #[allow(clippy::cast_precision_loss)]
                let rate = n as f64 / secs;
                println!(
                    "profile: {n} events from the store in {secs:.2} s, {rate:.0} events/s (batch {batch}, commit every {commit_ms} ms), peak RSS {:.1} MiB",
                    peak_rss_mib()
                );
            });
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
