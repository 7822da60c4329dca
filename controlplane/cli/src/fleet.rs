//! `deploy` (for real), `teardown`, `status` and `redeploy`: the CLI edge of the fleet engine.

use std::{io::IsTerminal as _, path::PathBuf};

use decnet_engine::{ConvergeOptions, DeckyStatus, Engine, EngineError, ImageSources, Report};
use decnet_fleet::plan::FleetPlan;
use decnet_store::{datadir::DataDir, repo::SqlRepository};
use decnet_web::{FleetFailure, FleetFuture};

use crate::{
    args::{EngineArgs, RedeployArgs, StatusArgs, StoreArgs, TeardownArgs},
    collect::{open_store, runtime},
    failure::Failure,
    listings::{print_json, table},
};

pub(crate) fn failure(e: &EngineError) -> Failure {
    match e {
        EngineError::ParentMissing(_)
        | EngineError::NoParent
        | EngineError::SubnetClash { .. }
        | EngineError::NotEmulated { .. }
        | EngineError::DeckyBinary { .. }
        | EngineError::UnknownDecky(_)
        | EngineError::NotMutable(_)
        | EngineError::NotRunning { .. } => Failure::config(e.to_string()),
        _ => Failure::runtime(e.to_string()),
    }
}

fn beside_exe(rel: &str) -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(rel)))
}

pub(crate) fn options(args: &EngineArgs, json: bool) -> ConvergeOptions {
    // An installed appliance has the static `decky` beside `decnet`. In a source tree the
    // `decky` beside it is the dynamic workspace build; the static one
    // (`--target x86_64-unknown-linux-gnu`) lands in the target triple's directory, so that
    // one wins when it exists.
    let decky_bin = args
        .decky_bin
        .clone()
        .or_else(|| {
            let profile = std::env::current_exe()
                .ok()?
                .parent()?
                .file_name()?
                .to_owned();
            beside_exe("../x86_64-unknown-linux-gnu")
                .map(|d| d.join(profile).join("decky"))
                .filter(|p| p.is_file())
        })
        .or_else(|| beside_exe("decky"))
        .unwrap_or_else(|| PathBuf::from("decky"));
    let templates = args.templates.clone().unwrap_or_else(|| {
        beside_exe("../share/decnet/templates")
            .filter(|p| p.is_dir())
            .unwrap_or_else(|| PathBuf::from("templates"))
    });
    ConvergeOptions {
        images: ImageSources {
            decky_bin,
            templates,
            no_cache: args.no_cache,
        },
        concurrency: usize::from(args.concurrency),
        shim: !args.no_shim,
        progress: !json && std::io::stderr().is_terminal(),
    }
}

fn sink(args: &EngineArgs, dir: &DataDir) -> Option<PathBuf> {
    if let Some(path) = &args.event_sink {
        return Some(path.clone());
    }
    let default = dir.root().join("intake.sock");
    if default.exists() {
        Some(default)
    } else {
        tracing::warn!(
            socket = %default.display(),
            "no collector socket: service events stay in container logs (start `decnet collect` first)"
        );
        None
    }
}

pub(crate) struct Session {
    pub rt: tokio::runtime::Runtime,
    pub repo: SqlRepository,
    pub dir: DataDir,
}

pub(crate) fn session(store: &StoreArgs) -> Result<Session, Failure> {
    let rt = runtime()?;
    let (dir, repo) = open_store(store, &rt)?;
    Ok(Session { rt, repo, dir })
}

fn print_report(verb: &str, report: &Report, json: bool) -> Result<(), Failure> {
    if json {
        let value = serde_json::to_value(report)
            .map_err(|e| Failure::runtime(format!("cannot render JSON: {e}")))?;
        print_json(&value)?;
    } else {
        println!(
            "{verb}: {} deckies in {:.1} s: {} containers created, {} started, {} kept, {} removed{}",
            report.deckies,
            report.elapsed_ms as f64 / 1000.0,
            report.containers_created,
            report.containers_started,
            report.containers_kept,
            report.containers_removed,
            report
                .shim
                .as_ref()
                .map(|s| format!("; host shim at {s}"))
                .unwrap_or_default()
        );
        for (name, error) in &report.failed {
            eprintln!("{name}: FAILED (rolled back): {error}");
        }
    }
    if let Some((_, first)) = report.failed.first() {
        return Err(failure(&EngineError::Partial {
            failed: report.failed.len(),
            total: report.deckies,
            first: first.clone(),
        }));
    }
    Ok(())
}

/// `POST /api/v1/deckies/deploy` in `decnet api` and `decnet serve`: the planner and engine of
/// `decnet deploy --config`, under the same fleet lock (a CLI deploy at the same time gets a
/// 409, not a race).
pub struct ApiFleet {
    pub data_dir: PathBuf,
    pub repo: SqlRepository,
    pub engine: EngineArgs,
}

impl ApiFleet {
    /// Run `work` with the fleet lock held and an engine connected, on a blocking thread
    /// driving the current runtime: the engine's futures are not `Send` for every lifetime
    /// the compiler must prove.
    fn locked<F, Fut>(&self, work: F) -> FleetFuture
    where
        F: FnOnce(Engine, SqlRepository, ConvergeOptions, DataDir) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, FleetFailure>>,
    {
        let data_dir = self.data_dir.clone();
        let repo = self.repo.clone();
        let opts = options(&self.engine, true);
        let job = move || async move {
            let dir = DataDir::open(&data_dir).map_err(|e| FleetFailure::Failed(e.to_string()))?;
            let _lock = dir
                .lock("fleet")
                .map_err(|e| FleetFailure::Busy(format!("another fleet change is running: {e}")))?;
            let engine = Engine::connect()
                .await
                .map_err(|e| FleetFailure::Busy(e.to_string()))?;
            work(engine, repo, opts, dir).await
        };
        Box::pin(async move {
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || handle.block_on(job()))
                .await
                .map_err(|e| FleetFailure::Failed(format!("the fleet task failed: {e}")))?
        })
    }
}

/// An engine error as the API reports it.
fn as_api(e: &EngineError) -> FleetFailure {
    match e {
        EngineError::UnknownDecky(_) => FleetFailure::NotFound(e.to_string()),
        EngineError::NotMutable(_) | EngineError::NotRunning { .. } => {
            FleetFailure::Busy(e.to_string())
        }
        _ => {
            let f = failure(e);
            if f.code == crate::failure::EXIT_CONFIG {
                FleetFailure::Invalid(f.message)
            } else {
                FleetFailure::Failed(f.message)
            }
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, FleetFailure> {
    serde_json::to_value(value)
        .map_err(|e| FleetFailure::Failed(format!("cannot render the report: {e}")))
}

impl decnet_web::FleetControl for ApiFleet {
    fn deploy(&self, ini: String) -> FleetFuture {
        // A wrong INI is reported as such even when Docker is down or the fleet is busy.
        let plan = match crate::deploy::plan_ini(ini.as_bytes()) {
            Ok(plan) => plan,
            Err(f) => {
                let e = if f.code == crate::failure::EXIT_CONFIG {
                    FleetFailure::Invalid(f.message)
                } else {
                    FleetFailure::Failed(f.message)
                };
                return Box::pin(std::future::ready(Err(e)));
            }
        };
        let event_sink = self.engine.event_sink.clone();
        self.locked(move |engine, repo, opts, dir| async move {
            let sink = event_sink.or_else(|| {
                let default = dir.root().join("intake.sock");
                default.exists().then_some(default)
            });
            let report = engine
                .deploy(&repo, &plan, sink, &opts)
                .await
                .map_err(|e| as_api(&e))?;
            if let Some((name, first)) = report.failed.first() {
                return Err(FleetFailure::Failed(format!(
                    "{} of {} deckies failed and were rolled back; first: {name}: {first}",
                    report.failed.len(),
                    report.deckies
                )));
            }
            to_json(&report)
        })
    }

    fn mutate(&self, decky: String) -> FleetFuture {
        self.locked(move |engine, repo, opts, _dir| async move {
            let report = engine
                .mutate(&repo, &decky, None, &opts)
                .await
                .map_err(|e| as_api(&e))?;
            to_json(&report)
        })
    }

    fn set_mutate_interval(&self, decky: String, minutes: Option<u32>) -> FleetFuture {
        let repo = self.repo.clone();
        let data_dir = self.data_dir.clone();
        // Only the record changes, so no Docker; but under the fleet lock, because a mutation
        // rewrites the same record and either write would undo the other.
        Box::pin(async move {
            let dir = DataDir::open(&data_dir).map_err(|e| FleetFailure::Failed(e.to_string()))?;
            let _lock = dir.lock("fleet").map_err(|e| {
                FleetFailure::Busy(format!(
                    "another fleet change is running; set the interval once it has finished: {e}"
                ))
            })?;
            decnet_engine::mutation::set_interval(&repo, &decky, minutes)
                .await
                .map_err(|e| as_api(&e))?;
            Ok(serde_json::json!({"name": decky, "mutate_interval_minutes": minutes}))
        })
    }
}

/// `deploy` without `--dry-run`.
pub fn deploy(
    store: &StoreArgs,
    engine_args: &EngineArgs,
    plan: &FleetPlan,
    json: bool,
) -> Result<(), Failure> {
    let s = session(store)?;
    let _lock = s
        .dir
        .lock("fleet")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let opts = options(engine_args, json);
    let sink = sink(engine_args, &s.dir);
    let report = s.rt.block_on(async {
        let engine = Engine::connect().await?;
        engine.deploy(&s.repo, plan, sink, &opts).await
    });
    let report = report.map_err(|e| failure(&e))?;
    print_report("deployed", &report, json)
}

pub fn redeploy(args: &RedeployArgs, json: bool) -> Result<(), Failure> {
    let s = session(&args.store)?;
    let _lock = s
        .dir
        .lock("fleet")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let opts = options(&args.engine, json);
    let report = s.rt.block_on(async {
        let engine = Engine::connect().await?;
        engine.redeploy(&s.repo, &opts).await
    });
    let report = report.map_err(|e| failure(&e))?;
    print_report("redeployed", &report, json)
}

pub fn teardown(args: &TeardownArgs, json: bool) -> Result<(), Failure> {
    if !args.all && args.id.is_none() {
        return Err(Failure::config(
            "say what to remove: --all (the whole fleet) or --id NAME (one decky)",
        ));
    }
    let s = session(&args.store)?;
    let _lock = s
        .dir
        .lock("fleet")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let removed = s.rt.block_on(async {
        let engine = Engine::connect().await?;
        engine.teardown(&s.repo, args.id.as_deref(), 8).await
    });
    let removed = removed.map_err(|e| failure(&e))?;
    if json {
        return print_json(&serde_json::json!({ "containers_removed": removed }));
    }
    match &args.id {
        Some(id) => println!("removed decky {id} ({removed} containers)"),
        None => println!("removed the fleet ({removed} containers), its network and host shim"),
    }
    Ok(())
}

fn uptime(secs: Option<u64>) -> String {
    match secs {
        None => "-".to_owned(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) => format!("{}h", s / 3600),
    }
}

pub fn status(args: &StatusArgs, json: bool) -> Result<(), Failure> {
    let s = session(&args.store)?;
    let deckies: Vec<DeckyStatus> =
        s.rt.block_on(async {
            let engine = Engine::connect().await?;
            engine.status(&s.repo).await
        })
        .map_err(|e| failure(&e))?;
    if json {
        let value = serde_json::to_value(&deckies)
            .map_err(|e| Failure::runtime(format!("cannot render JSON: {e}")))?;
        return print_json(&value);
    }
    if deckies.is_empty() {
        println!("no deckies deployed");
        return Ok(());
    }
    let mut t = table(&[
        "DECKY",
        "STATE",
        "IP",
        "MAC",
        "CONTAINER",
        "SERVICE",
        "DOCKER",
        "UPTIME",
        "RESTARTS",
    ]);
    for d in &deckies {
        for (i, c) in d.containers.iter().enumerate() {
            let first = i == 0;
            let show = |v: Option<&str>| {
                if first {
                    v.unwrap_or("-").to_owned()
                } else {
                    String::new()
                }
            };
            t.add_row(vec![
                show(Some(&d.name)),
                show(Some(&d.state)),
                show(d.ip.as_deref()),
                show(d.mac.as_deref()),
                c.name.clone(),
                c.service.clone().unwrap_or_else(|| c.role.clone()),
                c.state.clone(),
                uptime(c.uptime_secs),
                c.restarts.to_string(),
            ]);
        }
        if let Some(e) = &d.last_error {
            eprintln!("{}: last error: {e}", d.name);
        }
    }
    println!("{t}");
    Ok(())
}
