//! `decnet collect`: the syslog intake on its own — listeners, durable segments, the flusher
//! into SQL — until SIGINT/SIGTERM, then a clean drain (every accepted event reaches SQL).

use std::{sync::Arc, time::Duration};

use decnet_dataplane::intake::{Intake, IntakeConfig, IntakeMetrics, docker::DockerLogsConfig};
use decnet_store::{
    datadir::DataDir,
    metrics::StoreMetrics,
    pipeline::{EventSender, Pipeline, PipelineConfig},
    repo::{self, SqlRepository},
    segment::SegmentPolicy,
};

use crate::{
    args::{CollectArgs, StoreArgs},
    failure::Failure,
    lease::WorkerLease,
};

/// Open the data directory and the database the store arguments name.
pub fn open_store(
    args: &StoreArgs,
    runtime: &tokio::runtime::Runtime,
) -> Result<(DataDir, SqlRepository), Failure> {
    let dir = DataDir::open(&args.data_dir).map_err(|e| Failure::runtime(e.to_string()))?;
    let url = repo::resolve_url(
        args.db_type.as_deref(),
        args.db_url.as_deref(),
        &dir.sqlite_url(),
    )
    .map_err(|e| Failure::config(e.to_string()))?;
    let repository = runtime
        .block_on(SqlRepository::connect(&url))
        .map_err(|e| Failure::runtime(e.to_string()))?;
    Ok((dir, repository))
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))
}

pub fn collect(args: &CollectArgs) -> Result<(), Failure> {
    decnet_store::datadir::private_umask();
    let rt = runtime()?;
    let (dir, repository) = open_store(&args.store, &rt)?;
    let _lock = dir
        .lock("collect")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let running = Collecting::start(args, &rt, &dir, &repository, "collect")?;
    rt.block_on(wait_for_stop(
        args.progress_secs,
        &running.lease.lost,
        &running.store_metrics,
        &running.intake_metrics,
    ));
    running.stop(&rt, &repository, "collect");
    Ok(())
}

/// `--docker-labels`/`--docker-all` as the follower's selector (fleet.role=service by default).
fn docker_logs_config(args: &CollectArgs) -> DockerLogsConfig {
    let mut config = DockerLogsConfig {
        all: args.docker_all,
        ..DockerLogsConfig::default()
    };
    if !args.docker_labels.is_empty() {
        config.labels.clone_from(&args.docker_labels);
    }
    config
}

/// The running intake → segments → SQL pipeline (shared by `collect` and `serve`), holding
/// the repository lease that keeps it the only collector on this database.
pub struct Collecting {
    pub lease: WorkerLease,
    pipeline: Pipeline,
    intake: Intake,
    retention: Option<tokio::task::JoinHandle<()>>,
    pub store_metrics: Arc<StoreMetrics>,
    pub intake_metrics: Arc<IntakeMetrics>,
}

impl Collecting {
    pub fn start(
        args: &CollectArgs,
        rt: &tokio::runtime::Runtime,
        dir: &DataDir,
        repository: &SqlRepository,
        verb: &str,
    ) -> Result<Self, Failure> {
        let lease = WorkerLease::acquire(rt, repository, "collect", dir.root())?;
        let mut pipeline_config = PipelineConfig::new(dir.segments());
        pipeline_config.writers = usize::from(args.writers);
        pipeline_config.flusher_nice = args.flusher_nice;
        pipeline_config.policy = SegmentPolicy {
            durable_window: Duration::from_millis(args.durable_window_ms),
            durable_when_quiet: Duration::from_millis(args.durable_quiet_ms),
            max_bytes: args.segment_max_mib * 1024 * 1024,
            max_age: Duration::from_millis(args.segment_max_age_ms),
        };
        let (pipeline, sender, store_metrics) = start_pipeline(&pipeline_config, repository, rt)?;

        let unix = if args.no_unix {
            None
        } else {
            Some(
                args.unix
                    .clone()
                    .unwrap_or_else(|| dir.root().join("intake.sock")),
            )
        };
        let intake_config = IntakeConfig {
            unix: unix.clone(),
            udp: args.udp,
            tcp: args.tcp,
            lifecycle_window: Duration::from_millis(args.lifecycle_window_ms),
            lifecycle_kinds: args.lifecycle_kinds.clone(),
            #[cfg(feature = "tls")]
            tls: args.tls.map(|addr| {
                (
                    addr,
                    decnet_dataplane::intake::tls::TlsIdentity {
                        cert_and_key: args.tls_cert.clone().zip(args.tls_key.clone()),
                        generated_dir: dir.secrets(),
                        client_ca: args.tls_client_ca.clone(),
                    },
                )
            }),
            docker_logs: args.docker_logs.then(|| docker_logs_config(args)),
            ..IntakeConfig::default()
        };
        if cfg!(not(feature = "tls")) && args.tls.is_some() {
            return Err(Failure::config(
                "--tls: this build has no TLS support; rebuild with `--features decnet/tls`",
            ));
        }
        if intake_config.unix.is_none()
            && intake_config.udp.is_none()
            && intake_config.tcp.is_none()
            && args.tls.is_none()
            && intake_config.docker_logs.is_none()
        {
            return Err(Failure::config(
                "nothing to listen on: --no-unix was given without --udp, --tcp, --tls or --docker-logs",
            ));
        }
        let intake_metrics = Arc::new(IntakeMetrics::default());
        let intake = Intake::start(&intake_config, &sender, Arc::clone(&intake_metrics))
            .map_err(|e| Failure::runtime(e.to_string()))?;
        drop(sender);

        let listening: Vec<String> = [
            unix.map(|p| format!("unix {}", p.display())),
            args.udp.map(|a| format!("udp {a}")),
            args.tcp.map(|a| format!("tcp {a}")),
            args.tls.map(|a| format!("tls {a}")),
            intake_config.docker_logs.as_ref().map(|d| {
                if d.all {
                    "docker logs of every container".to_owned()
                } else {
                    format!(
                        "docker logs of containers labelled {}",
                        d.labels.join(" and ")
                    )
                }
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        eprintln!(
            "{verb}: listening on {}; events go to {} (data in {}); Ctrl-C stops and drains",
            listening.join(", "),
            repository.backend().name(),
            dir.root().display()
        );

        let retention = (args.retain_days > 0 || args.retain_gib > 0).then(|| {
            rt.spawn(retention_loop(
                repository.clone(),
                args.retain_days,
                args.retain_gib,
            ))
        });
        Ok(Self {
            lease,
            pipeline,
            intake,
            retention,
            store_metrics,
            intake_metrics,
        })
    }

    /// A handle for another producer (the sniffer in `serve`); drop it before [`Self::stop`].
    pub fn sender(&self) -> Option<EventSender> {
        self.pipeline.sender()
    }

    /// Stop the listeners, drain every accepted event into SQL, close the database.
    pub fn stop(self, rt: &tokio::runtime::Runtime, repository: &SqlRepository, verb: &str) {
        if let Some(task) = self.retention {
            task.abort();
        }
        eprintln!("{verb}: stopping; draining queued events into the database");
        self.intake.stop();
        self.pipeline.shutdown();
        self.lease.release(rt);
        rt.block_on(repository.close());
        eprintln!(
            "{verb}: stopped. {}",
            summary(&self.store_metrics, &self.intake_metrics)
        );
    }
}

fn summary(store: &StoreMetrics, intake: &IntakeMetrics) -> String {
    format!(
        "received {} messages ({} degraded, {} refused, {} lifecycle repeats limited); {} durable, {} in SQL, {} segment errors, {} flush errors",
        intake.received_messages.get(),
        intake.degraded.get(),
        intake.parse_errors.get(),
        intake.rate_limited.get(),
        store.durable.get(),
        store.flushed.get(),
        store.segment_errors.get(),
        store.flush_errors.get(),
    )
}

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(600);

/// Apply the retention limits now and every [`RETENTION_EVERY`]; failures are logged and
/// retried at the next round (retention must never stop the intake).
async fn retention_loop(repository: SqlRepository, days: u64, gib: u64) {
    let mut tick = tokio::time::interval(RETENTION_EVERY);
    loop {
        tick.tick().await;
        if days > 0 {
            let age_ns = i64::try_from(days.saturating_mul(86_400_000_000_000)).unwrap_or(i64::MAX);
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            match repository
                .delete_events_before(now_ns.saturating_sub(age_ns))
                .await
            {
                Ok(0) => {}
                Ok(n) => eprintln!("collect: retention deleted {n} events older than {days} days"),
                Err(e) => tracing::error!(error = %e, "retention by age failed"),
            }
        }
        if gib > 0 {
            let cap = i64::try_from(gib.saturating_mul(1 << 30)).unwrap_or(i64::MAX);
            match repository.enforce_size(cap).await {
                Ok(0) => {}
                Ok(n) => eprintln!(
                    "collect: retention deleted {n} oldest events to stay under {gib} GiB"
                ),
                Err(e) => tracing::error!(error = %e, "retention by size failed"),
            }
        }
    }
}

/// SIGINT, SIGTERM or the repository lease lost: the end of every long-running worker verb.
pub async fn stop_signal(lease_lost: &tokio::sync::Notify) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = lease_lost.notified() => {}
        () = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// Start the segments → SQL pipeline with fresh counters, and its first sender.
pub fn start_pipeline(
    config: &PipelineConfig,
    repository: &SqlRepository,
    rt: &tokio::runtime::Runtime,
) -> Result<(Pipeline, EventSender, Arc<StoreMetrics>), Failure> {
    let store_metrics = Arc::new(StoreMetrics::default());
    let pipeline = Pipeline::start(
        config,
        repository.clone(),
        rt.handle().clone(),
        Arc::clone(&store_metrics),
    )
    .map_err(|e| Failure::runtime(e.to_string()))?;
    let sender = pipeline
        .sender()
        .ok_or_else(|| Failure::runtime("the store pipeline closed at start"))?;
    Ok((pipeline, sender, store_metrics))
}

pub async fn wait_for_stop(
    progress_secs: u64,
    lease_lost: &tokio::sync::Notify,
    store: &StoreMetrics,
    intake: &IntakeMetrics,
) {
    let stop = stop_signal(lease_lost);
    tokio::pin!(stop);
    if progress_secs == 0 {
        stop.await;
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(progress_secs));
    tick.tick().await;
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => eprintln!("collect: {}", summary(store, intake)),
        }
    }
}
