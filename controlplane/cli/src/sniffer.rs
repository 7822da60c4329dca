//! `decnet sniffer`: live capture → per-queue analyzer threads → the store pipeline (segments →
//! SQL), raw frames into rotating pcap segments; `--read FILE` runs the same analyzer over a
//! file; `--export-ip` writes one address's retained packets to a pcap. `decnet serve
//! --sniff-interface` runs the same [`Sniffing`] beside the intake.

use std::{
    collections::HashMap,
    io::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use decnet_dataplane::{
    capture::{
        BackendChoice, BackendKind, Capture, CaptureConfig, CaptureFilter, CaptureInfo,
        CaptureMode, CaptureStats, FrameConsumer, LiveStats,
    },
    pcapfile::PcapReader,
    retention::{self, PcapRing, RetentionConfig},
    sniffer::{Analyzer, AnalyzerConfig, LimitConfig, SnifferMetrics},
};
use decnet_engine::DesiredDecky;
use decnet_store::{
    Event,
    datadir::DataDir,
    pipeline::{EventSender, PipelineConfig},
    repo::SqlRepository,
};
use ipnet::IpNet;

use crate::{
    args::{BackendArg, CaptureArgs, CaptureModeArg, SnifferArgs},
    collect::{open_store, runtime},
    failure::Failure,
    lease::WorkerLease,
};

/// How often the decky name map is reloaded from the deckies table.
const RELOAD_NAMES_EVERY: Duration = Duration::from_secs(30);

/// What the recorded fleet tells the sniffer.
#[derive(Debug, Default)]
pub struct Fleet {
    pub names: HashMap<IpAddr, String>,
    pub parents: Vec<String>,
    pub subnets: Vec<IpNet>,
}

/// Read the deckies table; records that do not parse are skipped with a warning.
pub async fn load_fleet(repo: &SqlRepository) -> Result<Fleet, Failure> {
    let records = repo
        .deckies()
        .await
        .map_err(|e| Failure::runtime(format!("reading the deckies table: {e}")))?;
    let mut fleet = Fleet::default();
    for r in records {
        let d: DesiredDecky = match serde_json::from_str(&r.spec) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(decky = %r.name, error = %e, "decky record does not parse; it stays unnamed");
                continue;
            }
        };
        if let Some(ip) = d.ip().and_then(|s| s.parse::<IpAddr>().ok()) {
            fleet.names.insert(ip, r.name.clone());
        }
        if !fleet.parents.contains(&d.network.parent) {
            fleet.parents.push(d.network.parent.clone());
        }
        let net = IpNet::V4(d.network.subnet);
        if !fleet.subnets.contains(&net) {
            fleet.subnets.push(net);
        }
    }
    Ok(fleet)
}

/// The decky names shared by every analyzer thread; a version bump makes them reload.
#[derive(Debug, Default)]
pub struct DeckyNames {
    version: AtomicU64,
    map: Mutex<HashMap<IpAddr, String>>,
}

impl DeckyNames {
    pub fn set(&self, names: HashMap<IpAddr, String>) {
        if let Ok(mut m) = self.map.lock()
            && *m != names
        {
            *m = names;
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    fn get(&self) -> HashMap<IpAddr, String> {
        self.map.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// What to capture and keep.
#[derive(Debug, Clone)]
pub struct SniffOptions {
    pub interface: String,
    pub mode: CaptureMode,
    pub backend: BackendChoice,
    pub filter: Vec<IpNet>,
    /// Retention directory, segment size and total budget (bytes); None keeps no frames.
    pub retention: Option<(PathBuf, u64, u64)>,
    /// Event rate limits of each analyzer.
    pub limits: LimitConfig,
}

/// The analyzer's limits for `--event-rate N` (0: none).
pub fn limits(event_rate: u32) -> LimitConfig {
    if event_rate == 0 {
        return LimitConfig::unlimited();
    }
    let r = f64::from(event_rate);
    LimitConfig {
        per_source_rate: r,
        per_source_burst: 10.0 * r,
        global_rate: 100.0 * r,
        global_burst: 500.0 * r,
        ..LimitConfig::default()
    }
}

fn analyzer_config(limits: LimitConfig) -> AnalyzerConfig {
    AnalyzerConfig {
        limits,
        ..AnalyzerConfig::default()
    }
}

impl SniffOptions {
    pub fn from_args(interface: String, args: &CaptureArgs, dir: &DataDir, fleet: &Fleet) -> Self {
        let filter = if args.filter_subnet.is_empty() {
            fleet.subnets.clone()
        } else {
            args.filter_subnet.clone()
        };
        Self {
            interface,
            mode: match args.capture_mode {
                CaptureModeArg::Dedicated => CaptureMode::Dedicated,
                CaptureModeArg::Mirror => CaptureMode::Mirror,
            },
            backend: match args.backend {
                BackendArg::Auto => BackendChoice::Auto,
                BackendArg::Xdp => BackendChoice::Xdp,
                BackendArg::Packet => BackendChoice::Packet,
            },
            filter,
            retention: (!args.no_pcap).then(|| {
                (
                    dir.pcaps(),
                    args.pcap_segment_mib * 1024 * 1024,
                    args.pcap_max_mib * 1024 * 1024,
                )
            }),
            limits: limits(args.event_rate),
        }
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// One capture queue's consumer: its own analyzer and pcap ring.
struct Queue {
    analyzer: Analyzer,
    ring: Option<PcapRing>,
    events: Vec<Event>,
    sender: EventSender,
    names: Arc<DeckyNames>,
    names_version: u64,
    last_advance: Instant,
    closed: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    fn forward(&mut self) {
        self.analyzer.publish_metrics();
        let v = self.names.version.load(Ordering::Acquire);
        if v != self.names_version {
            self.names_version = v;
            self.analyzer.set_deckies(self.names.get());
        }
        for ev in self.events.drain(..) {
            if self.closed {
                continue;
            }
            // A full queue is counted (here and in the store metrics): capture must not block.
            match self.sender.try_send(ev) {
                Ok(true) => {}
                Ok(false) => self.analyzer.metrics().events_queue_full.inc(),
                Err(_) => {
                    self.closed = true;
                    tracing::error!("the store pipeline closed; sniffer events are dropped");
                }
            }
        }
        if let Some(ring) = &mut self.ring
            && let Err(e) = ring.maybe_flush()
        {
            tracing::error!(error = %e, "pcap retention stops");
            self.ring = None;
        }
    }

    fn finish(&mut self) {
        self.analyzer.finish(&mut self.events);
        for ev in self.events.drain(..) {
            if self.sender.send(ev).is_err() {
                break;
            }
        }
        if let Some(mut ring) = self.ring.take()
            && let Err(e) = ring.seal()
        {
            tracing::error!(error = %e, "sealing the last pcap segment failed");
        }
    }
}

impl FrameConsumer for Queue {
    fn frame(&mut self, data: &[u8], ts_ns: u64) {
        let ts = i64::try_from(ts_ns).unwrap_or(i64::MAX);
        let addrs = self.analyzer.process_frame(ts, data, &mut self.events);
        if let Some(ring) = &mut self.ring
            && let Err(e) = ring.write_indexed(ts, data, addrs)
        {
            tracing::error!(error = %e, "pcap retention stops");
            self.ring = None;
        }
    }

    fn upcoming(&mut self, data: &[u8]) {
        self.analyzer.upcoming(data);
    }

    fn batch_end(&mut self) {
        self.forward();
    }

    fn idle(&mut self) {
        if self.last_advance.elapsed() >= Duration::from_secs(1) {
            self.last_advance = Instant::now();
            self.analyzer.advance(now_ns(), &mut self.events);
        }
        self.forward();
    }
}

/// The sniffer's counters for `/metrics`: the analyzers' stages and the capture's (ring and
/// XDP program) as last published by the capture threads.
pub struct SnifferSource {
    pub metrics: Arc<SnifferMetrics>,
    pub live: Arc<LiveStats>,
}

impl decnet_web::MetricsSource for SnifferSource {
    fn render(&self, out: &mut String) {
        self.live.render(out);
        self.metrics.render(out);
    }
}

/// Final counters of a capture.
#[derive(Debug)]
pub struct SniffReport {
    pub stats: CaptureStats,
    pub retained_packets: u64,
    pub segments_deleted: u64,
}

/// A running capture: one thread that owns the capture and its per-queue threads.
#[derive(Debug)]
pub struct Sniffing {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<SniffReport, String>>,
    pub info: CaptureInfo,
    pub live: Arc<LiveStats>,
    pub metrics: Arc<SnifferMetrics>,
}

pub fn describe(info: &CaptureInfo, mode: CaptureMode) -> String {
    let backend = match info.backend {
        BackendKind::Xdp { attach, bind } => {
            format!("af_xdp ({attach:?}, {bind:?})").to_lowercase()
        }
        BackendKind::Packet => "af_packet".to_owned(),
    };
    let mode = match mode {
        CaptureMode::Dedicated => "dedicated",
        CaptureMode::Mirror => "mirror",
    };
    let fallback = info
        .fallback_reason
        .as_ref()
        .map(|r| format!(" (AF_XDP unavailable: {r})"))
        .unwrap_or_default();
    format!(
        "{backend}, {mode} mode, on {} with {} queue(s){fallback}",
        info.capture_interface, info.queues
    )
}

impl Sniffing {
    /// Open the capture (errors are returned here) and start the threads.
    pub fn start(
        opts: &SniffOptions,
        sender: &EventSender,
        names: &Arc<DeckyNames>,
    ) -> Result<Self, Failure> {
        let mut cfg = CaptureConfig::new(opts.interface.clone());
        cfg.mode = opts.mode;
        cfg.backend = opts.backend;
        cfg.filter = CaptureFilter {
            prefixes: opts.filter.clone(),
            ports: Vec::new(),
        };
        // A shared appliance core: batch wakeups instead of spinning (see NOTES-dp-capture).
        cfg.xsk.busy_poll_spins = 0;
        // Each wakeup takes about a batch: sleeps of 0.5–10 ms, the longest on a slow link —
        // 10 ms × 16,384 ring entries leaves room up to ~1.6 Mpps. A batch of 4,096 keeps the
        // sleeps long at high rates too: with 1,024, the generator flat out (≈ 350 kpps) held
        // them near 1 ms, and the wakeups cost 650–670 ns per packet against 173–181 ns
        // (the floor receiver, BENCHMARKS.md).
        cfg.xsk.coalesce_us = 500;
        cfg.xsk.coalesce_max_us = 10_000;
        cfg.xsk.batch = 4096;
        // 64 MiB of UMEM per queue (the default is 8): a descheduled or busy analyzer thread on
        // a loaded appliance must not turn into ring drops (AF_PACKET gets 16 MiB, which holds
        // ~200k small frames). Traffic arrives in bursts at line rate: with 8,192-entry rings a
        // flood of new flows arriving in bursts lost up to 10 % in 17 of 31 runs; with 16,384,
        // 0 in 7 of 7 (BENCHMARKS.md, "Decode in place").
        // bench/sniffer.sh's floor receivers (`capture-*`) pass the same sizes: keep in step.
        cfg.xsk.frames = 32_768;
        cfg.xsk.rx_ring = 16_384;
        cfg.xsk.fill_ring = 16_384;
        let stop = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(SnifferMetrics::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, metrics, sender, names, opts) = (
                Arc::clone(&stop),
                Arc::clone(&metrics),
                sender.clone(),
                Arc::clone(names),
                opts.clone(),
            );
            std::thread::Builder::new()
                .name("sniffer".into())
                .spawn(move || {
                    let mut cap = match Capture::open(&cfg) {
                        Ok(c) => c,
                        Err(e) => {
                            let msg = format!(
                                "cannot capture on {}: {e} (check the interface name and run as root or with CAP_NET_ADMIN + CAP_NET_RAW + CAP_BPF)",
                                cfg.interface
                            );
                            let _ = ready_tx.send(Err(msg.clone()));
                            return Err(msg);
                        }
                    };
                    let _ = ready_tx.send(Ok((cap.info().clone(), cap.live_stats())));
                    run_capture(&mut cap, &stop, &metrics, &sender, &names, &opts)
                })
                .map_err(|e| Failure::runtime(format!("cannot start the sniffer thread: {e}")))?
        };
        match ready_rx.recv() {
            Ok(Ok((info, live))) => Ok(Self {
                stop,
                thread,
                info,
                live,
                metrics,
            }),
            Ok(Err(msg)) => {
                let _ = thread.join();
                Err(Failure::runtime(msg))
            }
            Err(_) => {
                let _ = thread.join();
                Err(Failure::runtime(
                    "the sniffer thread died while opening the capture",
                ))
            }
        }
    }

    /// Whether the capture threads ended by themselves (an error).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stop capturing, flush every flow, seal the pcap segments, tear the capture down.
    pub fn stop(self) -> Result<SniffReport, Failure> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(r) => r.map_err(Failure::runtime),
            Err(_) => Err(Failure::runtime("the sniffer thread panicked")),
        }
    }
}

fn run_capture(
    cap: &mut Capture,
    stop: &AtomicBool,
    metrics: &Arc<SnifferMetrics>,
    sender: &EventSender,
    names: &Arc<DeckyNames>,
    opts: &SniffOptions,
) -> Result<SniffReport, String> {
    let queues = cap.info().queues.max(1) as u64;
    let mut ring_error = None;
    let result = cap.run(stop, |q| {
        let ring = opts.retention.as_ref().and_then(|(dir, seg, max)| {
            PcapRing::new(RetentionConfig {
                dir: dir.clone(),
                segment_bytes: *seg,
                max_bytes: *max / queues,
                queue: q,
            })
            .map_err(|e| ring_error = Some(e.to_string()))
            .ok()
        });
        let names_version = names.version.load(Ordering::Acquire);
        Queue {
            analyzer: Analyzer::new(
                analyzer_config(opts.limits),
                names.get(),
                Arc::clone(metrics),
            ),
            ring,
            events: Vec::with_capacity(1024),
            sender: sender.clone(),
            names: Arc::clone(names),
            names_version,
            last_advance: Instant::now(),
            closed: false,
        }
    });
    if let Some(e) = ring_error {
        tracing::error!(error = %e, "pcap retention is off");
    }
    let mut consumers = result.map_err(|e| format!("capture failed: {e}"))?;
    let mut report = SniffReport {
        stats: CaptureStats::default(),
        retained_packets: 0,
        segments_deleted: 0,
    };
    for c in &mut consumers {
        if let Some(r) = &c.ring {
            report.retained_packets += r.stats().packets;
            report.segments_deleted += r.stats().segments_deleted;
        }
        c.finish();
    }
    drop(consumers);
    report.stats = cap.stats();
    Ok(report)
}

/// Reload the decky names now and then; failures are logged and retried.
pub fn spawn_name_reloader(
    rt: &tokio::runtime::Runtime,
    repo: SqlRepository,
    names: Arc<DeckyNames>,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_NAMES_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            match load_fleet(&repo).await {
                Ok(f) => names.set(f.names),
                Err(e) => tracing::warn!(error = %e.message, "reloading decky names failed"),
            }
        }
    })
}

fn pipeline_config(dir: &DataDir) -> Result<PipelineConfig, Failure> {
    // Its own segments directory: a `decnet collect` on the same data directory recovers
    // `segments/` as its own.
    let segments = dir.root().join("sniffer-segments");
    std::fs::create_dir_all(&segments)
        .map_err(|e| Failure::runtime(format!("cannot create {}: {e}", segments.display())))?;
    Ok(PipelineConfig::new(segments))
}

pub fn sniffer(args: &SnifferArgs) -> Result<(), Failure> {
    if let Some(ip) = args.export_ip {
        return export(args, ip);
    }
    decnet_store::datadir::private_umask();
    let rt = runtime()?;
    let (dir, repository) = open_store(&args.store, &rt)?;
    let _lock = dir
        .lock("sniffer")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let fleet = rt.block_on(load_fleet(&repository))?;
    let names = Arc::new(DeckyNames::default());
    names.set(fleet.names.clone());
    let lease = WorkerLease::acquire(&rt, &repository, "sniffer", dir.root())?;
    let (pipeline, sender, store_metrics) =
        crate::collect::start_pipeline(&pipeline_config(&dir)?, &repository, &rt)?;
    let outcome = match &args.read {
        Some(path) => read_file(path, &sender, &names, limits(args.capture.event_rate)),
        None => live(
            args,
            &rt,
            &dir,
            &repository,
            &fleet,
            &names,
            &sender,
            &lease,
        ),
    };
    drop(sender);
    eprintln!("sniffer: draining queued events into the database");
    pipeline.shutdown();
    lease.release(&rt);
    rt.block_on(repository.close());
    let summary = outcome?;
    eprintln!(
        "sniffer: stopped. {summary}; {} durable, {} in SQL, {} discarded (queue full), {} flush errors",
        store_metrics.durable.get(),
        store_metrics.flushed.get(),
        store_metrics.discarded_queue_full.get(),
        store_metrics.flush_errors.get(),
    );
    Ok(())
}

fn read_file(
    path: &Path,
    sender: &EventSender,
    names: &DeckyNames,
    limits: LimitConfig,
) -> Result<String, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::config(format!("--read {}: {e}", path.display())))?;
    let mut reader = PcapReader::new(std::io::BufReader::new(file))
        .map_err(|e| Failure::config(format!("--read {}: {e}", path.display())))?;
    let metrics = Arc::new(SnifferMetrics::default());
    let mut analyzer = Analyzer::new(analyzer_config(limits), names.get(), Arc::clone(&metrics));
    let mut events = Vec::new();
    let send = |events: &mut Vec<Event>| -> Result<(), Failure> {
        for ev in events.drain(..) {
            sender
                .send(ev)
                .map_err(|e| Failure::runtime(e.to_string()))?;
        }
        Ok(())
    };
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                analyzer.process_frame(rec.ts_ns, rec.data, &mut events);
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!(
                    "sniffer: {}: {e}; analyzing what was read before it",
                    path.display()
                );
                break;
            }
        }
        if events.len() >= 1024 {
            send(&mut events)?;
        }
    }
    analyzer.finish(&mut events);
    send(&mut events)?;
    Ok(format!(
        "read {} frames ({} bytes) from {}: {} decoded, {} undecodable, {} events, {} rate limited",
        metrics.received.get(),
        metrics.received_bytes.get(),
        path.display(),
        metrics.decoded.get(),
        metrics.decode_errors.get(),
        metrics.events.get(),
        metrics.rate_limited_total(),
    ))
}

#[allow(clippy::too_many_arguments)]
fn live(
    args: &SnifferArgs,
    rt: &tokio::runtime::Runtime,
    dir: &DataDir,
    repository: &SqlRepository,
    fleet: &Fleet,
    names: &Arc<DeckyNames>,
    sender: &EventSender,
    lease: &WorkerLease,
) -> Result<String, Failure> {
    let interface = match (&args.interface, fleet.parents.first()) {
        (Some(i), _) => i.clone(),
        (None, Some(p)) => {
            if fleet.parents.len() > 1 {
                eprintln!(
                    "sniffer: the fleet spans parent interfaces {}; capturing on {p} (use --interface)",
                    fleet.parents.join(", ")
                );
            }
            p.clone()
        }
        (None, None) => {
            return Err(Failure::config(
                "no interface: no fleet is recorded in this data directory's database; give --interface IF (or --read FILE)",
            ));
        }
    };
    let opts = SniffOptions::from_args(interface, &args.capture, dir, fleet);
    let sniffing = Sniffing::start(&opts, sender, names)?;
    let reloader = spawn_name_reloader(rt, repository.clone(), Arc::clone(names));
    let filter = if opts.filter.is_empty() {
        "everything".to_owned()
    } else {
        opts.filter
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let retention = opts.retention.as_ref().map_or_else(
        || "no pcap retention".to_owned(),
        |(d, seg, max)| {
            format!(
                "pcaps in {} ({} MiB segments, {} MiB total)",
                d.display(),
                seg >> 20,
                max >> 20
            )
        },
    );
    eprintln!(
        "sniffer: capturing {filter} with {}; {retention}; events go to {}; Ctrl-C stops and drains",
        describe(&sniffing.info, opts.mode),
        repository.backend().name()
    );
    let period = if args.stats {
        Some(Duration::from_secs(1))
    } else if args.progress_secs > 0 {
        Some(Duration::from_secs(args.progress_secs))
    } else {
        None
    };
    let desc = describe(&sniffing.info, opts.mode);
    rt.block_on(wait(&sniffing, &lease.lost, period, args.stats, &desc));
    reloader.abort();
    let died = sniffing.is_finished();
    let metrics = Arc::clone(&sniffing.metrics);
    let report = sniffing.stop()?;
    if died {
        return Err(Failure::runtime("the capture stopped by itself"));
    }
    Ok(summary(&metrics, &report))
}

pub fn summary(m: &SnifferMetrics, r: &SniffReport) -> String {
    format!(
        "captured {} frames ({} bytes), {} dropped by the ring, {} kernel drops; {} decoded, {} undecodable, {} events, {} rate limited, {} refused by a full store queue, {} flows evicted; {} frames kept in pcaps ({} old segments deleted)",
        r.stats.received,
        r.stats.bytes,
        r.stats.dropped,
        r.stats.kernel_drops,
        m.decoded.get(),
        m.decode_errors.get(),
        m.events.get(),
        m.rate_limited_total(),
        m.events_queue_full.get(),
        m.flows_evicted.get(),
        r.retained_packets,
        r.segments_deleted,
    )
}

async fn wait(
    sniffing: &Sniffing,
    lease_lost: &tokio::sync::Notify,
    period: Option<Duration>,
    rates: bool,
    desc: &str,
) {
    let stop = crate::collect::stop_signal(lease_lost);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(period.unwrap_or(Duration::from_secs(1)));
    tick.tick().await;
    let mut last = (0u64, 0u64, 0u64, 0u64, Instant::now());
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {
                if sniffing.is_finished() {
                    return;
                }
                let Some(_) = period else { continue };
                let m = &sniffing.metrics;
                let live = sniffing.live.total();
                let now = (m.received.get(), m.received_bytes.get(), live.dropped + live.kernel_drops, m.events.get(), Instant::now());
                if rates {
                    let secs = now.4.duration_since(last.4).as_secs_f64().max(1e-3);
                    let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / secs;
                    eprintln!(
                        "sniffer: {:.0} pkt/s, {:.0} B/s, {} drops (+{}), {:.0} events/s; {desc}",
                        rate(now.0, last.0), rate(now.1, last.1), now.2, now.2.saturating_sub(last.2), rate(now.3, last.3)
                    );
                } else {
                    eprintln!(
                        "sniffer: {} frames, {} bytes, {} drops, {} events so far",
                        now.0, now.1, now.2, now.3
                    );
                }
                last = now;
            }
        }
    }
}

fn export(args: &SnifferArgs, ip: IpAddr) -> Result<(), Failure> {
    let dir = args.store.data_dir.join("pcaps");
    let secs_to_ns = |s: u64| i64::try_from(s.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX);
    let from = args.from.map_or(0, secs_to_ns);
    let to = args
        .to
        .map_or(i64::MAX, |s| secs_to_ns(s).saturating_add(999_999_999));
    let output = args
        .output
        .as_deref()
        .ok_or_else(|| Failure::config("--export-ip needs -o FILE (or -o - for stdout)"))?;
    let result = if output == Path::new("-") {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        let r = retention::export_pcap(&dir, ip, from, to, &mut lock);
        let _ = lock.flush();
        r
    } else {
        let file = std::fs::File::create(output)
            .map_err(|e| Failure::runtime(format!("-o {}: {e}", output.display())))?;
        retention::export_pcap(&dir, ip, from, to, std::io::BufWriter::new(file))
    };
    let s = result.map_err(|e| Failure::runtime(e.to_string()))?;
    eprintln!(
        "sniffer: exported {} packets of {ip} from {} ({} segments read, {} skipped by their index)",
        s.packets,
        dir.display(),
        s.segments_scanned,
        s.segments_skipped
    );
    Ok(())
}
