//! `decnet mutate` and the mutation watcher `decnet serve` runs: re-roll deckies' services on
//! demand or when their interval has passed. The original's watcher read a deployment record
//! only its web deploy wrote, so CLI fleets never mutated; ours reads the one fleet record
//! every deploy writes.

use std::{path::PathBuf, sync::Arc, time::Duration};

use decnet_engine::{ConvergeOptions, Engine, MutationReport, mutation};
use decnet_fleet::{mutate::interval_minutes, plan::DEFAULT_MUTATE_MINUTES};
use decnet_store::{datadir::DataDir, repo::SqlRepository};
use tokio::sync::Notify;

use crate::{
    args::{EngineArgs, MutateArgs},
    failure::Failure,
    fleet::{failure, options, session},
    listings::print_json,
};

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The fleet-wide interval in minutes: the API's `global_mutation_interval` when it is set
/// and readable, else the original's 30.
pub async fn global_minutes(repo: &SqlRepository) -> u32 {
    match repo.state(decnet_web::GLOBAL_MUTATION_INTERVAL_KEY).await {
        Ok(Some(serde_json::Value::String(text))) => {
            interval_minutes(&text).unwrap_or(DEFAULT_MUTATE_MINUTES)
        }
        _ => DEFAULT_MUTATE_MINUTES,
    }
}

fn line(r: &MutationReport) -> String {
    if r.changed {
        format!(
            "{}: {} -> {} ({} containers created, {} removed, {:.1} s)",
            r.decky,
            r.before.join(", "),
            r.after.join(", "),
            r.containers_created,
            r.containers_removed,
            r.elapsed_ms as f64 / 1000.0
        )
    } else {
        format!(
            "{}: unchanged: {}",
            r.decky,
            r.note.as_deref().unwrap_or("no other service set")
        )
    }
}

/// One look: mutate every due decky, holding the fleet lock. Returns what was done; a
/// busy fleet (a deploy running) or an absent Docker engine skips the look.
async fn mutate_due(
    repo: &SqlRepository,
    data_dir: &std::path::Path,
    opts: &ConvergeOptions,
) -> Result<Vec<(String, Result<MutationReport, String>)>, String> {
    let global = global_minutes(repo).await;
    let due = mutation::due(repo, global, now_ns())
        .await
        .map_err(|e| e.to_string())?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let dir = DataDir::open(data_dir).map_err(|e| e.to_string())?;
    let _lock = dir
        .lock("fleet")
        .map_err(|e| format!("another fleet change is running: {e}"))?;
    let engine = Engine::connect().await.map_err(|e| e.to_string())?;
    let mut done = Vec::with_capacity(due.len());
    for name in due {
        let result = engine
            .mutate(repo, &name, None, opts)
            .await
            .map_err(|e| e.to_string());
        done.push((name, result));
    }
    Ok(done)
}

/// Mutate due deckies every `every` until `stop` is notified. Each mutation and failure is
/// logged; a look that cannot run (Docker down, fleet busy) is logged once per new reason.
pub async fn watch(
    repo: SqlRepository,
    data_dir: PathBuf,
    engine: EngineArgs,
    every: Duration,
    stop: Arc<Notify>,
) {
    let opts = options(&engine, true);
    let mut last_problem: Option<String> = None;
    loop {
        tokio::select! {
            () = stop.notified() => return,
            () = tokio::time::sleep(every) => {}
        }
        match mutate_due(&repo, &data_dir, &opts).await {
            Ok(done) => {
                last_problem = None;
                for (name, result) in done {
                    match result {
                        Ok(r) => eprintln!("mutate: {}", line(&r)),
                        Err(e) => tracing::error!(decky = %name, error = %e, "mutation failed"),
                    }
                }
            }
            Err(problem) => {
                if last_problem.as_deref() != Some(problem.as_str()) {
                    tracing::warn!(reason = %problem, "due deckies were not mutated this time");
                    last_problem = Some(problem);
                }
            }
        }
    }
}

/// Run [`watch`] on its own thread (the engine's futures are not `Send`), driving `rt`.
pub fn spawn_watcher(
    rt: &tokio::runtime::Runtime,
    repo: SqlRepository,
    data_dir: PathBuf,
    engine: EngineArgs,
    every: Duration,
) -> (std::thread::JoinHandle<()>, Arc<Notify>) {
    let stop = Arc::new(Notify::new());
    let handle = rt.handle().clone();
    let watcher_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("decnet-mutator".into())
        .spawn(move || handle.block_on(watch(repo, data_dir, engine, every, watcher_stop)));
    match thread {
        Ok(t) => (t, stop),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the mutation watcher thread; deckies will not mutate on schedule");
            (std::thread::spawn(|| {}), stop)
        }
    }
}

pub fn mutate(args: &MutateArgs, json: bool) -> Result<(), Failure> {
    let s = session(&args.store)?;
    if args.watch {
        let (thread, stop) = spawn_watcher(
            &s.rt,
            s.repo.clone(),
            s.dir.root().to_owned(),
            args.engine.clone(),
            Duration::from_secs(args.check_secs),
        );
        eprintln!(
            "mutate: watching for due deckies every {} s (until SIGINT/SIGTERM)",
            args.check_secs
        );
        s.rt.block_on(crate::web::wait_for_signal());
        // notify_one stores a permit, so a watcher in the middle of a look sees it after.
        stop.notify_one();
        let _ = thread.join();
        return Ok(());
    }
    let _lock = s
        .dir
        .lock("fleet")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let opts = options(&args.engine, json);
    let results = s.rt.block_on(async {
        let names: Vec<String> = if !args.decky.is_empty() {
            // Unknown names are a usage error before Docker is even asked.
            let known = s
                .repo
                .deckies()
                .await
                .map_err(|e| Failure::runtime(e.to_string()))?;
            if let Some(unknown) = args
                .decky
                .iter()
                .find(|n| !known.iter().any(|r| &r.name == *n))
            {
                return Err(failure(&decnet_engine::EngineError::UnknownDecky(
                    unknown.clone(),
                )));
            }
            args.decky.clone()
        } else if args.all {
            s.repo
                .deckies()
                .await
                .map_err(|e| Failure::runtime(e.to_string()))?
                .into_iter()
                .filter(|r| r.state == decnet_engine::states::RUNNING)
                .map(|r| r.name)
                .collect()
        } else {
            let global = global_minutes(&s.repo).await;
            mutation::due(&s.repo, global, now_ns())
                .await
                .map_err(|e| failure(&e))?
        };
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let engine = Engine::connect().await.map_err(|e| failure(&e))?;
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            let seed = args.seed.map(|s| s.wrapping_add(i as u64));
            out.push((
                name.clone(),
                engine.mutate(&s.repo, &name, seed, &opts).await,
            ));
        }
        Ok::<_, Failure>(out)
    })?;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    if json {
        let value: Vec<serde_json::Value> = results
            .iter()
            .map(|(name, r)| match r {
                Ok(report) => serde_json::to_value(report).unwrap_or_default(),
                Err(e) => serde_json::json!({"decky": name, "error": e.to_string()}),
            })
            .collect();
        print_json(&serde_json::Value::Array(value))?;
    } else if results.is_empty() {
        println!(
            "no decky to mutate ({})",
            if args.all {
                "none is running"
            } else {
                "none is due"
            }
        );
    } else {
        for (_, r) in &results {
            if let Ok(report) = r {
                println!("{}", line(report));
            }
        }
    }
    if let [(_, Err(e))] = results.as_slice() {
        // One decky: its own error and exit code (an unknown name is a usage error).
        return Err(failure(e));
    }
    if let Some(first) = failed.first() {
        for f in &failed {
            eprintln!("{f}");
        }
        return Err(Failure::runtime(format!(
            "{} of {} mutations failed; first: {first}",
            failed.len(),
            results.len()
        )));
    }
    Ok(())
}
