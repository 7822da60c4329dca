//! The mutator: re-roll a decky's services in place (same base container, so the same
//! address, MAC, hostname and OS), on demand or when its interval has passed.

use std::{collections::HashSet, time::Instant};

use decnet_fleet::{catalog::Catalog, mutate};
use decnet_store::repo::{DeckyRecord, SqlRepository};
use rand::{SeedableRng as _, rngs::StdRng};
use serde::Serialize;

use crate::{
    ConvergeOptions, DesiredDecky, Engine, EngineError, image, now_ns, record, states,
    use_service_images,
};

/// What one mutation did.
#[derive(Debug, Clone, Serialize)]
pub struct MutationReport {
    pub decky: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
    /// False when no other service set could be drawn; the decky keeps its services and its
    /// schedule moves on.
    pub changed: bool,
    pub note: Option<String>,
    pub containers_created: usize,
    pub containers_removed: usize,
    pub elapsed_ms: u128,
}

fn parse(r: &DeckyRecord) -> Result<DesiredDecky, EngineError> {
    serde_json::from_str(&r.spec).map_err(|e| EngineError::BadRecord {
        name: r.name.clone(),
        reason: e.to_string(),
    })
}

async fn find(repo: &SqlRepository, name: &str) -> Result<DeckyRecord, EngineError> {
    repo.deckies()
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| EngineError::UnknownDecky(name.to_owned()))
}

/// Set a decky's own mutation interval in minutes (`Some(0)` never, `None` follows the
/// fleet-wide one). Only the record changes; no container is touched.
pub async fn set_interval(
    repo: &SqlRepository,
    name: &str,
    minutes: Option<u32>,
) -> Result<(), EngineError> {
    let r = find(repo, name).await?;
    let mut d = parse(&r)?;
    let m = d
        .mutation
        .as_mut()
        .ok_or_else(|| EngineError::NotMutable(name.to_owned()))?;
    m.interval_minutes = minutes;
    repo.upsert_decky(&record(&d, &r.state, r.last_error.clone())?)
        .await?;
    Ok(())
}

/// Running deckies whose interval has passed at `now_ns` (`global_minutes` for those that
/// follow the fleet-wide interval), oldest mutation first.
pub async fn due(
    repo: &SqlRepository,
    global_minutes: u32,
    now_ns: i64,
) -> Result<Vec<String>, EngineError> {
    let mut due: Vec<(i64, String)> = Vec::new();
    for r in repo.deckies().await? {
        if r.state != states::RUNNING {
            continue;
        }
        // An unreadable record is `status`'s and `redeploy`'s to report, not a reason to stop
        // mutating the others.
        let Ok(d) = parse(&r) else { continue };
        if let Some(m) = d.mutation.filter(|m| m.is_due(global_minutes, now_ns)) {
            due.push((m.last_mutated_ns, r.name));
        }
    }
    due.sort();
    Ok(due.into_iter().map(|(_, name)| name).collect())
}

impl Engine {
    /// Re-roll `name`'s services (1–3 from its archetype's, or from every emulated service)
    /// and converge its containers: the base container stays, services that left are removed,
    /// new ones created. `seed` makes the draw repeatable. Only a running decky mutates. If
    /// its images cannot be built it keeps its services and the error is recorded; a failure
    /// while converging rolls back the containers it created, and the record says `failed`
    /// with the error (`redeploy` finishes the decky).
    pub async fn mutate(
        &self,
        repo: &SqlRepository,
        name: &str,
        seed: Option<u64>,
        options: &ConvergeOptions,
    ) -> Result<MutationReport, EngineError> {
        let started = Instant::now();
        let r = find(repo, name).await?;
        // Checked again here, under the caller's fleet lock: a decky found due a moment ago
        // may have failed or be deploying since.
        if r.state != states::RUNNING {
            return Err(EngineError::NotRunning {
                name: name.to_owned(),
                state: r.state.clone(),
            });
        }
        let current = parse(&r)?;
        let m = current
            .mutation
            .clone()
            .ok_or_else(|| EngineError::NotMutable(name.to_owned()))?;
        let before: Vec<String> = current.slugs().map(str::to_owned).collect();
        let emulated = image::available(&options.images.templates);
        let pool: Vec<&str> = mutate::pool(m.archetype.as_deref())
            .into_iter()
            .filter(|slug| emulated.iter().any(|e| e == slug))
            .collect();
        let next = {
            let mut rng = seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64);
            mutate::reroll(&before, &pool, &Catalog::builtin(), &mut rng)
        };
        let now = now_ns();
        let mut report = MutationReport {
            decky: name.to_owned(),
            before: before.clone(),
            after: before.clone(),
            changed: false,
            note: None,
            containers_created: 0,
            containers_removed: 0,
            elapsed_ms: 0,
        };
        let Some(next) = next else {
            let mut kept = current;
            if let Some(k) = kept.mutation.as_mut() {
                k.last_mutated_ns = now;
            }
            repo.upsert_decky(&record(&kept, &r.state, r.last_error.clone())?)
                .await?;
            report.note = Some(format!(
                "no other service set can be drawn from [{}]; the decky keeps its services",
                pool.join(", ")
            ));
            report.elapsed_ms = started.elapsed().as_millis();
            return Ok(report);
        };
        let mut desired = current.with_services(&next)?;
        let tags = match image::ensure_images(&self.docker, &options.images, &next).await {
            Ok(tags) => tags,
            Err(e) => {
                // Nothing changed yet: the decky keeps running its services, the error goes on
                // its record, and its schedule moves on rather than retrying every look.
                let mut kept = current;
                if let Some(k) = kept.mutation.as_mut() {
                    k.last_mutated_ns = now;
                }
                repo.upsert_decky(&record(&kept, &r.state, Some(e.to_string()))?)
                    .await?;
                return Err(e);
            }
        };
        use_service_images(&mut desired, &tags);
        if let Some(d) = desired.mutation.as_mut() {
            d.last_mutated_ns = now;
            d.mutations = d.mutations.saturating_add(1);
        }
        // The record first: a crash from here on leaves a decky `redeploy` can finish.
        repo.upsert_decky(&record(&desired, states::DEPLOYING, None)?)
            .await?;
        let actual = self.actual().await?;
        let wanted: HashSet<&str> = desired
            .services
            .iter()
            .map(|s| s.container_name.as_str())
            .collect();
        let leaving: Vec<String> = actual
            .iter()
            .filter(|(n, a)| a.member == name && n.as_str() != name && !wanted.contains(n.as_str()))
            .map(|(n, _)| n.clone())
            .collect();
        let result = match self.remove_all(&leaving, options.concurrency).await {
            Ok(removed) => {
                report.containers_removed += removed;
                self.converge_decky(&desired, &actual).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(c) => {
                report.containers_created += c.created;
                report.containers_removed += c.removed;
                repo.upsert_decky(&record(&desired, states::RUNNING, None)?)
                    .await?;
            }
            Err(e) => {
                repo.upsert_decky(&record(&desired, states::FAILED, Some(e.to_string()))?)
                    .await?;
                return Err(e);
            }
        }
        tracing::info!(decky = name, before = ?before, after = ?next, "mutated");
        report.after = next;
        report.changed = true;
        report.elapsed_ms = started.elapsed().as_millis();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::desired::from_plan;

    const MINUTE: i64 = 60_000_000_000;

    /// Two deckies recorded as a deploy records them, one minute apart in age.
    async fn fleet() -> (tempfile::TempDir, SqlRepository) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let repo = SqlRepository::connect(&url).await.unwrap();
        let ini = "[general]\nnet = 10.9.0.0/24\ngw = 10.9.0.1\ninterface = eth9\n\n\
                   [aa]\nservices = ssh\nmutate_interval = 5\n\n[bb]\nservices = ftp\n";
        let spec = decnet_fleet::config::load(ini.as_bytes()).unwrap();
        let plan = decnet_fleet::plan::plan(spec, &Default::default()).unwrap();
        let (_, desired) = from_plan(&plan, None).unwrap();
        for (age, d) in desired.values().enumerate() {
            let mut d = d.clone();
            if let Some(m) = d.mutation.as_mut() {
                m.last_mutated_ns = 1_000 * MINUTE + i64::try_from(age).unwrap() * MINUTE;
            }
            repo.upsert_decky(&record(&d, states::RUNNING, None).unwrap())
                .await
                .unwrap();
        }
        (dir, repo)
    }

    /// An engine whose "socket" is a plain file in `dir`, so any Docker call fails: the
    /// paths under test must not reach it.
    fn engine_without_docker(dir: &std::path::Path) -> Engine {
        let socket = dir.join("not-docker.sock");
        std::fs::write(&socket, b"").unwrap();
        let docker = bollard::Docker::connect_with_unix(
            socket.to_str().unwrap(),
            1,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap();
        Engine {
            docker,
            overrides: Default::default(),
        }
    }

    #[tokio::test]
    async fn only_running_deckies_mutate_and_a_failed_image_build_moves_the_schedule_on() {
        let (dir, repo) = fleet().await;
        // Service templates but no base template: the image step fails before any Docker call.
        let templates = dir.path().join("templates");
        for slug in ["ftp", "http", "redis", "ssh"] {
            std::fs::create_dir_all(templates.join(slug)).unwrap();
            std::fs::write(templates.join(slug).join("Dockerfile"), "FROM scratch\n").unwrap();
        }
        let options = ConvergeOptions {
            images: crate::image::ImageSources {
                decky_bin: dir.path().join("decky"),
                templates,
                no_cache: false,
            },
            concurrency: 1,
            shim: false,
            progress: false,
        };
        let engine = engine_without_docker(dir.path());
        let before = find(&repo, "aa").await.unwrap();
        let err = engine
            .mutate(&repo, "aa", Some(7), &options)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Template { .. }), "{err}");
        let after = find(&repo, "aa").await.unwrap();
        assert_eq!(after.state, states::RUNNING);
        assert!(
            after.last_error.as_deref().unwrap().contains("base"),
            "{after:?}"
        );
        let (was, now) = (parse(&before).unwrap(), parse(&after).unwrap());
        assert_eq!(
            was.slugs().collect::<Vec<_>>(),
            now.slugs().collect::<Vec<_>>()
        );
        let (was, now) = (was.mutation.unwrap(), now.mutation.unwrap());
        assert!(now.last_mutated_ns > was.last_mutated_ns);
        assert_eq!(now.mutations, was.mutations);
        let soon = due(&repo, 30, now.last_mutated_ns + MINUTE).await.unwrap();
        assert!(!soon.iter().any(|n| n == "aa"), "{soon:?}");

        let mut bb = find(&repo, "bb").await.unwrap();
        bb.state = states::FAILED.to_owned();
        repo.upsert_decky(&bb).await.unwrap();
        assert!(matches!(
            engine.mutate(&repo, "bb", Some(7), &options).await,
            Err(EngineError::NotRunning { name, state }) if name == "bb" && state == states::FAILED
        ));
    }

    #[tokio::test]
    async fn due_deckies_follow_their_own_then_the_global_interval() {
        let (_dir, repo) = fleet().await;
        // aa: its own 5 minutes; bb: the INI default of 30 (the planner's).
        assert!(due(&repo, 30, 1_004 * MINUTE).await.unwrap().is_empty());
        assert_eq!(due(&repo, 30, 1_005 * MINUTE).await.unwrap(), ["aa"]);
        assert_eq!(due(&repo, 30, 1_031 * MINUTE).await.unwrap(), ["aa", "bb"]);
        // bb follows the global interval once its own is cleared.
        set_interval(&repo, "bb", None).await.unwrap();
        assert_eq!(due(&repo, 2, 1_003 * MINUTE).await.unwrap(), ["bb"]);
        assert_eq!(
            due(&repo, 0, 1_003 * MINUTE).await.unwrap(),
            Vec::<String>::new()
        );
        // 0 = never; a failed decky is left to `redeploy`.
        set_interval(&repo, "aa", Some(0)).await.unwrap();
        assert_eq!(due(&repo, 30, i64::MAX).await.unwrap(), ["bb"]);
        let mut bb = repo
            .deckies()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.name == "bb")
            .unwrap();
        bb.state = states::FAILED.to_owned();
        repo.upsert_decky(&bb).await.unwrap();
        assert!(due(&repo, 30, i64::MAX).await.unwrap().is_empty());
        // The state and error of a record survive an interval change.
        set_interval(&repo, "bb", Some(9)).await.unwrap();
        let bb = find(&repo, "bb").await.unwrap();
        assert_eq!(bb.state, states::FAILED);
        assert_eq!(
            parse(&bb).unwrap().mutation.unwrap().interval_minutes,
            Some(9)
        );
        assert!(matches!(
            set_interval(&repo, "zz", Some(1)).await,
            Err(EngineError::UnknownDecky(n)) if n == "zz"
        ));
    }
}
