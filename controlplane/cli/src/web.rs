//! `decnet api` (the web API and dashboard over the store) and `decnet serve` (the intake
//! pipeline and the web in one process: the appliance's main job).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use decnet_store::{datadir::DataDir, repo::SqlRepository};
use decnet_web::{
    ADMIN_PASSWORD_ENV, AppState, HttpServer, MetricsSource, MetricsSources, WebConfig,
};

use crate::{
    args::{ApiArgs, EngineArgs, ServeArgs, WebArgs},
    collect::{self, Collecting},
    failure::Failure,
};

/// Seconds between the mutation watcher's looks for due deckies in `serve` (the original's).
const MUTATE_CHECK_SECS: u64 = 10;

/// The web layer running on the runtime: the HTTP server and the one live feeder.
struct Web {
    server: HttpServer,
    feeder: tokio::task::JoinHandle<()>,
}

/// A counter set of this process shown at `/metrics` through its own render function.
struct Rendered<T>(Arc<T>, fn(&T, &mut String));

impl<T: Send + Sync> MetricsSource for Rendered<T> {
    fn render(&self, out: &mut String) {
        (self.1)(&self.0, out);
    }
}

fn start_web(
    args: &WebArgs,
    engine: &EngineArgs,
    dir: &DataDir,
    repository: &SqlRepository,
    rt: &tokio::runtime::Runtime,
    verb: &str,
    metrics: MetricsSources,
) -> Result<Web, Failure> {
    let port = args.port().map_err(Failure::config)?;
    let addr = SocketAddr::new(args.host, port);
    let secret = decnet_web::auth::load_or_create_secret(&dir.secrets()).map_err(|e| {
        Failure::runtime(format!(
            "cannot read or create the token secret in {}: {e}",
            dir.secrets().display()
        ))
    })?;
    let mut config = WebConfig::new(dir.root().join("artifacts"));
    config.token_ttl = Duration::from_secs(args.token_hours * 3600);
    config.developer = args.developer;
    config.pcaps_dir = dir.pcaps();
    config.metrics = metrics;
    config.fleet = Some(Arc::new(crate::fleet::ApiFleet {
        data_dir: dir.root().to_owned(),
        repo: repository.clone(),
        engine: engine.clone(),
    }));
    let state = rt
        .block_on(AppState::new(repository.clone(), &secret, config))
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let env_password = std::env::var(ADMIN_PASSWORD_ENV).ok();
    let generated = rt
        .block_on(state.bootstrap_admin(&args.admin_user, env_password.as_deref()))
        .map_err(|e| Failure::runtime(e.to_string()))?;
    if let Some(password) = generated {
        // Printed once, at first start only: the hash is all that is stored.
        eprintln!(
            "{verb}: created the first admin {:?} with password {password}\n{verb}: it must be changed at first login; it is not shown again",
            args.admin_user
        );
    }
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Failure::runtime(format!("cannot listen on {addr}: {e}")))?;
    eprintln!("{verb}: API and dashboard on http://{addr}/");
    if !args.host.is_loopback() {
        tracing::warn!(%addr, "the management API listens beyond loopback: keep it off the decoy LAN");
    }
    let server = HttpServer::start(listener, &state, args.http_threads())
        .map_err(|e| Failure::runtime(format!("cannot start the HTTP server threads: {e}")))?;
    let feeder = rt.spawn(decnet_web::run_feeder(state));
    Ok(Web { server, feeder })
}

impl Web {
    fn stop(self) {
        self.feeder.abort();
        if let Err(e) = self.server.stop() {
            tracing::error!(error = %e, "the HTTP server ended with an error");
        }
    }
}

pub(crate) async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

pub fn api(args: &ApiArgs) -> Result<(), Failure> {
    decnet_store::datadir::private_umask();
    let rt = collect::runtime()?;
    let (dir, repository) = collect::open_store(&args.store, &rt)?;
    let _lock = dir
        .lock("api")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let web = start_web(
        &args.web,
        &args.engine,
        &dir,
        &repository,
        &rt,
        "api",
        MetricsSources::default(),
    )?;
    let server_died = rt.block_on(async {
        tokio::select! {
            () = wait_for_signal() => false,
            () = async { while !web.server.is_finished() { tokio::time::sleep(Duration::from_millis(500)).await; } } => true,
        }
    });
    web.stop();
    rt.block_on(repository.close());
    if server_died {
        return Err(Failure::runtime("the web server stopped unexpectedly"));
    }
    eprintln!("api: stopped");
    Ok(())
}

pub fn serve(args: &ServeArgs) -> Result<(), Failure> {
    decnet_store::datadir::private_umask();
    let rt = collect::runtime()?;
    let (dir, repository) = collect::open_store(&args.collect.store, &rt)?;
    let _collect_lock = dir
        .lock("collect")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let _api_lock = dir
        .lock("api")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let _profiler_lock = dir
        .lock("profiler")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let running = Collecting::start(&args.collect, &rt, &dir, &repository, "serve")?;
    let sources = MetricsSources::default();
    sources.add(Arc::new(Rendered(
        Arc::clone(&running.store_metrics),
        decnet_store::metrics::StoreMetrics::render,
    )));
    sources.add(Arc::new(Rendered(
        Arc::clone(&running.intake_metrics),
        decnet_dataplane::intake::IntakeMetrics::render,
    )));
    let web = match start_web(
        &args.web,
        &args.engine,
        &dir,
        &repository,
        &rt,
        "serve",
        sources.clone(),
    ) {
        Ok(w) => w,
        Err(e) => {
            running.stop(&rt, &repository, "serve");
            return Err(e);
        }
    };
    let sniffing = match start_sniffer(args, &rt, &dir, &repository, &running) {
        Ok(s) => {
            if let Some((sniffing, _, _)) = &s {
                sources.add(Arc::new(crate::sniffer::SnifferSource {
                    metrics: Arc::clone(&sniffing.metrics),
                    live: Arc::clone(&sniffing.live),
                }));
            }
            s
        }
        Err(e) => {
            web.stop();
            running.stop(&rt, &repository, "serve");
            return Err(e);
        }
    };
    let prober = match args.probe.then(|| {
        running
            .sender()
            .ok_or_else(|| Failure::runtime("the store pipeline closed at start"))
            .and_then(|sender| {
                crate::probe::start_in_serve(&rt, &repository, sender, &args.probe_options)
            })
    }) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            web.stop();
            if let Some((sniffing, reloader, _lock)) = sniffing {
                reloader.abort();
                let _ = sniffing.stop();
            }
            running.stop(&rt, &repository, "serve");
            return Err(e);
        }
    };
    // After every start that can fail: nothing above has a mutator thread to stop.
    let mutator = (!args.no_mutator).then(|| {
        crate::mutator::spawn_watcher(
            &rt,
            repository.clone(),
            dir.root().to_owned(),
            args.engine.clone(),
            Duration::from_secs(MUTATE_CHECK_SECS),
        )
    });
    let profiler_stop = Arc::new(tokio::sync::Notify::new());
    let profiler = crate::intel::spawn_in_serve(
        &rt,
        repository.clone(),
        &args.intel,
        Duration::from_secs(args.profile_interval_secs),
        Arc::clone(&profiler_stop),
    );
    rt.block_on(collect::wait_for_stop(
        args.collect.progress_secs,
        &running.lease.lost,
        &running.store_metrics,
        &running.intake_metrics,
    ));
    // notify_one stores a permit, so a profiler between passes sees it too.
    profiler_stop.notify_one();
    if rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), profiler).await })
        .is_err()
    {
        eprintln!("serve: the profiler did not stop within 10 s; its open batch is rolled back");
    }
    if let Some((thread, stop)) = prober {
        // Its events go through the intake's pipeline, stopped below.
        stop.notify_one();
        let _ = thread.join();
    }
    if let Some((thread, stop)) = mutator {
        // A mutation in progress finishes first (its containers are created or rolled back).
        stop.notify_one();
        let _ = thread.join();
    }
    web.stop();
    // The sniffer's events go through the intake's pipeline: stop it first.
    if let Some((sniffing, reloader, _lock)) = sniffing {
        reloader.abort();
        let metrics = Arc::clone(&sniffing.metrics);
        match sniffing.stop() {
            Ok(report) => eprintln!(
                "serve: sniffer stopped. {}",
                crate::sniffer::summary(&metrics, &report)
            ),
            Err(e) => eprintln!("serve: sniffer: {}", e.message),
        }
    }
    running.stop(&rt, &repository, "serve");
    Ok(())
}

type RunningSniffer = (
    crate::sniffer::Sniffing,
    tokio::task::JoinHandle<()>,
    decnet_store::datadir::RoleLock,
);

/// `serve --sniff-interface IF`: the sniffer's threads, feeding the intake's pipeline.
fn start_sniffer(
    args: &ServeArgs,
    rt: &tokio::runtime::Runtime,
    dir: &DataDir,
    repository: &SqlRepository,
    running: &Collecting,
) -> Result<Option<RunningSniffer>, Failure> {
    use crate::sniffer::{DeckyNames, SniffOptions, Sniffing, describe, load_fleet};
    let Some(interface) = args.sniff_interface.clone() else {
        return Ok(None);
    };
    let lock = dir
        .lock("sniffer")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let fleet = rt.block_on(load_fleet(repository))?;
    let names = Arc::new(DeckyNames::default());
    names.set(fleet.names.clone());
    let opts = SniffOptions::from_args(interface, &args.sniff, dir, &fleet);
    let sender = running
        .sender()
        .ok_or_else(|| Failure::runtime("the store pipeline closed at start"))?;
    let sniffing = Sniffing::start(&opts, &sender, &names)?;
    eprintln!(
        "serve: sniffing with {}",
        describe(&sniffing.info, opts.mode)
    );
    let reloader = crate::sniffer::spawn_name_reloader(rt, repository.clone(), names);
    Ok(Some((sniffing, reloader, lock)))
}
