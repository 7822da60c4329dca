//! `decnet probe` (the active prober alone) and the prober inside `decnet serve --probe`:
//! fingerprint the profiler's attackers' own servers into `prober` events.

use std::{sync::Arc, time::Duration};

use decnet_prober::worker::{EventSink, PassReport, Prober, ProberConfig};
use decnet_store::{
    Event,
    pipeline::{EventSender, PipelineConfig},
    repo::SqlRepository,
};
use tokio::sync::Notify;

use crate::{
    args::{ProbeArgs, ProbeOptions},
    collect::{open_store, runtime, start_pipeline, stop_signal},
    failure::Failure,
    lease::WorkerLease,
    listings::print_json,
};

/// Prober events into the store pipeline. `send` waits while the queue is full, so nothing
/// is dropped; the prober makes a handful of events per attacker.
pub struct PipelineSink(pub EventSender);

impl EventSink for PipelineSink {
    fn emit(&self, event: Event) {
        if self.0.send(event).is_err() {
            tracing::error!("the store pipeline closed; a prober event was not stored");
        }
    }
}

pub fn config(args: &ProbeOptions) -> ProberConfig {
    ProberConfig {
        interval: Duration::from_secs(args.probe_interval),
        timeout: Duration::from_secs(args.probe_timeout),
        concurrency: usize::from(args.probe_concurrency),
        jarm: !args.no_jarm,
        hassh: !args.no_hassh,
        tcpfp: !args.no_tcpfp,
    }
}

/// Run the prober's loop on its own thread (its probes block on raw sockets), driving `rt`.
pub fn spawn(
    rt: &tokio::runtime::Runtime,
    prober: Prober,
) -> Result<(std::thread::JoinHandle<()>, Arc<Notify>), Failure> {
    let stop = Arc::new(Notify::new());
    let handle = rt.handle().clone();
    let watcher_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("decnet-prober".into())
        .spawn(move || handle.block_on(prober.run(watcher_stop)))
        .map_err(|e| Failure::runtime(format!("cannot start the prober thread: {e}")))?;
    Ok((thread, stop))
}

fn summary(r: &PassReport) -> String {
    format!(
        "{} new attackers, {} probes, {} fingerprints, {} errors",
        r.targets, r.probes, r.fingerprints, r.errors
    )
}

pub fn probe(args: &ProbeArgs, json: bool) -> Result<(), Failure> {
    decnet_store::datadir::private_umask();
    let rt = runtime()?;
    let (dir, repository) = open_store(&args.store, &rt)?;
    let _lock = dir
        .lock("probe")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let lease = WorkerLease::acquire(&rt, &repository, "probe", dir.root())?;
    // Its own segments directory: a `decnet collect` on the same data directory recovers
    // `segments/` as its own.
    let segments = dir.root().join("probe-segments");
    std::fs::create_dir_all(&segments)
        .map_err(|e| Failure::runtime(format!("cannot create {}: {e}", segments.display())))?;
    let (pipeline, sender, store_metrics) =
        start_pipeline(&PipelineConfig::new(segments), &repository, &rt)?;
    let mut prober = Prober::new(
        repository.clone(),
        Arc::new(PipelineSink(sender)),
        config(&args.options),
    );
    let outcome = if args.once {
        let report = rt.block_on(prober.pass());
        // The prober holds the pipeline's last sender; the drain below waits for it.
        drop(prober);
        report
            .map(Some)
            .map_err(|e| Failure::runtime(e.to_string()))
    } else {
        eprintln!(
            "probe: probing new attackers every {} s (until SIGINT/SIGTERM)",
            args.options.probe_interval
        );
        let (thread, stop) = spawn(&rt, prober)?;
        rt.block_on(stop_signal(&lease.lost));
        stop.notify_one();
        let _ = thread.join();
        Ok(None)
    };
    eprintln!("probe: draining queued events into the database");
    pipeline.shutdown();
    lease.release(&rt);
    rt.block_on(repository.close());
    let report = outcome?;
    if let Some(r) = report {
        if json {
            print_json(&serde_json::json!({
                "targets": r.targets, "probes": r.probes,
                "fingerprints": r.fingerprints, "errors": r.errors,
                "stored": store_metrics.flushed.get(),
            }))?;
        } else {
            println!(
                "probe: {}; {} events stored",
                summary(&r),
                store_metrics.flushed.get()
            );
        }
    } else {
        eprintln!(
            "probe: stopped; {} events stored",
            store_metrics.flushed.get()
        );
    }
    Ok(())
}

/// The prober of `decnet serve --probe`, writing through the intake's pipeline.
pub fn start_in_serve(
    rt: &tokio::runtime::Runtime,
    repository: &SqlRepository,
    sender: EventSender,
    options: &ProbeOptions,
) -> Result<(std::thread::JoinHandle<()>, Arc<Notify>), Failure> {
    let prober = Prober::new(
        repository.clone(),
        Arc::new(PipelineSink(sender)),
        config(options),
    );
    spawn(rt, prober)
}
