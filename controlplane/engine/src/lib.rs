//! The fleet engine: makes a planned fleet real on Docker (through bollard, no compose, no
//! registry) and keeps the repository's `deckies` table as the fleet's only source of truth.
//!
//! `deploy` stores each decky's desired containers, then converges Docker on them; `redeploy`
//! converges on what the repository says; `teardown` removes containers, network and shim
//! and the records; `status` joins the records with what Docker reports. Converging is the
//! same code everywhere: keep a container whose definition hash matches and that runs,
//! replace anything else, remove containers no record asks for.

pub mod desired;
pub mod docker;
pub mod error;
pub mod image;
pub mod mutation;
pub mod network;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    models::ContainerSummaryStateEnum,
    query_parameters::{InspectContainerOptions, ListContainersOptions, StartContainerOptions},
};
use decnet_fleet::{compose, plan::FleetPlan};
use decnet_store::repo::{DeckyRecord, SqlRepository};
use futures_util::{StreamExt as _, stream};
use indexmap::IndexMap;
use serde::Serialize;

pub use desired::{DesiredDecky, Mutable};
pub use error::EngineError;
pub use image::ImageSources;
pub use mutation::MutationReport;
pub use network::NetworkDesired;

use docker::{BodyOverrides, retry};

/// Ownership labels: neutral words, nothing an attacker could read as a product name.
pub mod labels {
    pub use decnet_fleet::compose::labels::{MEMBER, PLAN, ROLE, SERVICE};
    /// Hash of the container's definition (replace on mismatch).
    pub const SPEC: &str = "fleet.spec";
    /// `fleet.role` value of the LAN network.
    pub const LAN: &str = "lan";
}

/// Record states in the repository.
pub mod states {
    pub const DEPLOYING: &str = "deploying";
    pub const RUNNING: &str = "running";
    pub const FAILED: &str = "failed";
}

/// How to converge.
#[derive(Debug, Clone)]
pub struct ConvergeOptions {
    pub images: ImageSources,
    /// Most deckies created at once.
    pub concurrency: usize,
    /// Create the host shim (needs root).
    pub shim: bool,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
}

/// What a converge run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub deckies: usize,
    pub containers_created: usize,
    pub containers_started: usize,
    pub containers_kept: usize,
    pub containers_removed: usize,
    pub images: BTreeMap<String, String>,
    pub shim: Option<String>,
    pub failed: Vec<(String, String)>,
    pub elapsed_ms: u128,
}

/// One container as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerStatus {
    pub name: String,
    pub role: String,
    pub service: Option<String>,
    /// Docker's state (`running`, `exited`, ...) or `missing`.
    pub state: String,
    pub uptime_secs: Option<u64>,
    pub restarts: i64,
}

/// One decky as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct DeckyStatus {
    pub name: String,
    /// The repository's record state, or `orphan` for containers no record asks for.
    pub state: String,
    pub last_error: Option<String>,
    pub ip: Option<String>,
    pub mac: Option<String>,
    pub hostname: Option<String>,
    pub containers: Vec<ContainerStatus>,
}

/// A connected engine.
#[derive(Debug)]
pub struct Engine {
    docker: Docker,
    overrides: BodyOverrides,
}

#[derive(Debug, Clone)]
struct Actual {
    member: String,
    spec: String,
    running: bool,
}

#[derive(Debug, Default)]
struct Counts {
    created: usize,
    started: usize,
    kept: usize,
    removed: usize,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn record(
    d: &DesiredDecky,
    state: &str,
    error: Option<String>,
) -> Result<DeckyRecord, EngineError> {
    Ok(DeckyRecord {
        name: d.name().to_owned(),
        spec: serde_json::to_string(d).map_err(|e| EngineError::BadRecord {
            name: d.name().to_owned(),
            reason: e.to_string(),
        })?,
        state: state.to_owned(),
        last_error: error,
        updated_ns: now_ns(),
    })
}

/// Point a decky's service containers at the built images (slug → content-hash tag).
fn use_service_images(d: &mut DesiredDecky, tags: &BTreeMap<String, String>) {
    for s in &mut d.services {
        if let Some(tag) = s
            .labels
            .get(labels::SERVICE)
            .and_then(|slug| tags.get(slug))
        {
            s.image.clone_from(tag);
        }
    }
}

/// Desired state from the repository's records.
fn desired_from_records(
    records: &[DeckyRecord],
) -> Result<IndexMap<String, DesiredDecky>, EngineError> {
    records
        .iter()
        .map(|r| {
            serde_json::from_str::<DesiredDecky>(&r.spec)
                .map(|d| (r.name.clone(), d))
                .map_err(|e| EngineError::BadRecord {
                    name: r.name.clone(),
                    reason: e.to_string(),
                })
        })
        .collect()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

impl Engine {
    /// Connect to the local Docker engine; the error says how to start one.
    pub async fn connect() -> Result<Self, EngineError> {
        let (docker, overrides) = docker::connect().await?;
        Ok(Self { docker, overrides })
    }

    /// The underlying client (tests inspect containers with it).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Make `plan` the fleet: record it in the repository (replacing any previous fleet),
    /// then converge Docker on it. `sink` is the collector's socket on the host.
    pub async fn deploy(
        &self,
        repo: &SqlRepository,
        plan: &FleetPlan,
        sink: Option<PathBuf>,
        options: &ConvergeOptions,
    ) -> Result<Report, EngineError> {
        let (network, mut desired) = desired::from_plan(plan, sink.as_deref())?;
        // A deployed decky's mutation clock starts now.
        let now = now_ns();
        for m in desired.values_mut().filter_map(|d| d.mutation.as_mut()) {
            m.last_mutated_ns = now;
        }
        // Inputs that would fail anyway are checked before anything is created or recorded.
        network::check_parent(&network.parent)?;
        self.converge(repo, desired, true, options).await
    }

    /// Converge Docker on the repository's records: start what is missing, replace what
    /// drifted, remove what no record asks for.
    pub async fn redeploy(
        &self,
        repo: &SqlRepository,
        options: &ConvergeOptions,
    ) -> Result<Report, EngineError> {
        let desired = desired_from_records(&repo.deckies().await?)?;
        self.converge(repo, desired, false, options).await
    }

    async fn converge(
        &self,
        repo: &SqlRepository,
        mut desired: IndexMap<String, DesiredDecky>,
        replace_records: bool,
        options: &ConvergeOptions,
    ) -> Result<Report, EngineError> {
        let started = Instant::now();
        let mut report = Report {
            deckies: desired.len(),
            ..Report::default()
        };
        // 1. Images (nothing is created before they all exist).
        let mut slugs: Vec<String> = desired
            .values()
            .flat_map(|d| d.slugs().map(str::to_owned))
            .collect();
        slugs.sort();
        slugs.dedup();
        let tags = if desired.is_empty() {
            BTreeMap::new()
        } else {
            image::ensure_images(&self.docker, &options.images, &slugs).await?
        };
        for d in desired.values_mut() {
            if let Some(tag) = tags.get(image::BASE_TEMPLATE) {
                d.base.image.clone_from(tag);
            }
            use_service_images(d, &tags);
        }
        report.images = tags;
        // 2. Network and shim.
        if let Some(net) = desired.values().next().map(|d| d.network.clone()) {
            network::ensure_network(&self.docker, &net).await?;
            if options.shim {
                if is_root() {
                    report.shim = network::ensure_shim(&net)?.map(|a| a.to_string());
                } else {
                    tracing::warn!("not root: no host shim, so this host cannot reach its deckies");
                }
            }
        }
        // 3. The records first: a crash from here on leaves a fleet `redeploy` can finish.
        for d in desired.values() {
            repo.upsert_decky(&record(d, states::DEPLOYING, None)?)
                .await?;
        }
        if replace_records {
            for r in repo.deckies().await? {
                if !desired.contains_key(&r.name) {
                    repo.delete_decky(&r.name).await?;
                }
            }
        }
        // 4. Orphans: fleet containers no desired decky asks for.
        let actual = self.actual().await?;
        let mut wanted: HashSet<&str> = HashSet::new();
        for d in desired.values() {
            wanted.insert(d.name());
            wanted.extend(d.services.iter().map(|s| s.container_name.as_str()));
        }
        let orphans: Vec<String> = actual
            .keys()
            .filter(|name| !wanted.contains(name.as_str()))
            .cloned()
            .collect();
        report.containers_removed += self.remove_all(&orphans, options.concurrency).await?;
        // 5. Deckies, a bounded number at a time.
        let bar = progress_bar(options.progress, desired.len());
        let actual = Arc::new(actual);
        let results: Vec<(String, Result<Counts, EngineError>)> =
            stream::iter(desired.values().cloned())
                .map(|d| {
                    let actual = Arc::clone(&actual);
                    let bar = bar.clone();
                    async move {
                        let name = d.name().to_owned();
                        let result = self.converge_decky(&d, &actual).await;
                        bar.inc(1);
                        if let Err(e) = &result {
                            bar.println(format!("{name}: {e}"));
                        }
                        (name, result)
                    }
                })
                .buffer_unordered(options.concurrency.max(1))
                .collect()
                .await;
        bar.finish_and_clear();
        for (name, result) in results {
            let Some(d) = desired.get(&name) else {
                continue;
            };
            match result {
                Ok(c) => {
                    report.containers_created += c.created;
                    report.containers_started += c.started;
                    report.containers_kept += c.kept;
                    report.containers_removed += c.removed;
                    repo.upsert_decky(&record(d, states::RUNNING, None)?)
                        .await?;
                }
                Err(e) => {
                    repo.upsert_decky(&record(d, states::FAILED, Some(e.to_string()))?)
                        .await?;
                    report.failed.push((name, e.to_string()));
                }
            }
        }
        report.failed.sort();
        report.elapsed_ms = started.elapsed().as_millis();
        Ok(report)
    }

    /// Fleet containers by name.
    async fn actual(&self) -> Result<HashMap<String, Actual>, EngineError> {
        let mut filters = HashMap::new();
        filters.insert("label".to_owned(), vec![labels::ROLE.to_owned()]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..ListContainersOptions::default()
        };
        let list = retry("listing containers", || {
            self.docker.list_containers(Some(options.clone()))
        })
        .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let name = c.names?.first()?.trim_start_matches('/').to_owned();
                let labels = c.labels.unwrap_or_default();
                Some((
                    name,
                    Actual {
                        member: labels.get(labels::MEMBER).cloned().unwrap_or_default(),
                        spec: labels.get(labels::SPEC).cloned().unwrap_or_default(),
                        running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                    },
                ))
            })
            .collect())
    }

    async fn remove_all(&self, names: &[String], concurrency: usize) -> Result<usize, EngineError> {
        let results: Vec<Result<(), EngineError>> = stream::iter(names.iter())
            .map(|n| network::remove_container(&self.docker, n))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(names.len())
    }

    async fn create_and_start(
        &self,
        service: &compose::ComposeService,
        network: &str,
        base: Option<&str>,
    ) -> Result<(), EngineError> {
        let name = service.container_name.clone();
        let (body, raw) = desired::container_body(service, network, base);
        if let Some(raw) = raw
            && let Ok(mut map) = self.overrides.lock()
        {
            map.insert(name.clone(), raw.into());
        }
        let options = bollard::query_parameters::CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let created = retry(&format!("creating container {name}"), || {
            self.docker
                .create_container(Some(options.clone()), body.clone())
        })
        .await;
        if let Ok(mut map) = self.overrides.lock() {
            map.remove(&name);
        }
        created?;
        retry(&format!("starting container {name}"), || {
            self.docker
                .start_container(&name, None::<StartContainerOptions>)
        })
        .await
    }

    /// Converge one decky; on failure, remove every container of it (never half a decky).
    async fn converge_decky(
        &self,
        d: &DesiredDecky,
        actual: &HashMap<String, Actual>,
    ) -> Result<Counts, EngineError> {
        let result = self.converge_decky_inner(d, actual).await;
        if result.is_err() {
            let mut names: Vec<String> = d
                .services
                .iter()
                .map(|s| s.container_name.clone())
                .collect();
            names.push(d.name().to_owned());
            names.extend(
                actual
                    .iter()
                    .filter(|(_, a)| a.member == d.name())
                    .map(|(n, _)| n.clone()),
            );
            names.sort();
            names.dedup();
            for n in &names {
                if let Err(e) = network::remove_container(&self.docker, n).await {
                    tracing::warn!(container = %n, error = %e, "rollback could not remove a container");
                }
            }
        }
        result
    }

    async fn converge_decky_inner(
        &self,
        d: &DesiredDecky,
        actual: &HashMap<String, Actual>,
    ) -> Result<Counts, EngineError> {
        let mut counts = Counts::default();
        let net = d.network.name.as_str();
        let base_ok = actual
            .get(d.name())
            .is_some_and(|a| a.running && a.spec == desired::spec_hash(&d.base));
        if !base_ok {
            // A new or restarted base has a new network namespace: every service container
            // must be recreated to join it.
            let mut stale: Vec<String> = actual
                .iter()
                .filter(|(n, a)| a.member == d.name() || n.as_str() == d.name())
                .map(|(n, _)| n.clone())
                .collect();
            stale.sort();
            for n in &stale {
                network::remove_container(&self.docker, n).await?;
            }
            counts.removed += stale.len();
            self.create_and_start(&d.base, net, None).await?;
            counts.created += 1;
            for s in &d.services {
                self.create_and_start(s, net, Some(d.name())).await?;
                counts.created += 1;
            }
            return Ok(counts);
        }
        counts.kept += 1;
        for s in &d.services {
            match actual.get(&s.container_name) {
                Some(a) if a.spec == desired::spec_hash(s) && a.running => counts.kept += 1,
                Some(a) if a.spec == desired::spec_hash(s) => {
                    retry(&format!("starting container {}", s.container_name), || {
                        self.docker
                            .start_container(&s.container_name, None::<StartContainerOptions>)
                    })
                    .await?;
                    counts.started += 1;
                }
                found => {
                    if found.is_some() {
                        network::remove_container(&self.docker, &s.container_name).await?;
                        counts.removed += 1;
                    }
                    self.create_and_start(s, net, Some(d.name())).await?;
                    counts.created += 1;
                }
            }
        }
        Ok(counts)
    }

    /// Remove the whole fleet (`None`) or one decky, and their records. Returns how many
    /// containers were removed.
    pub async fn teardown(
        &self,
        repo: &SqlRepository,
        target: Option<&str>,
        concurrency: usize,
    ) -> Result<usize, EngineError> {
        let actual = self.actual().await?;
        let records = repo.deckies().await?;
        let names: Vec<String> = match target {
            None => actual.keys().cloned().collect(),
            Some(id) => {
                let names: Vec<String> = actual
                    .iter()
                    .filter(|(n, a)| a.member == id || n.as_str() == id)
                    .map(|(n, _)| n.clone())
                    .collect();
                if names.is_empty() && !records.iter().any(|r| r.name == id) {
                    return Err(EngineError::UnknownDecky(id.to_owned()));
                }
                names
            }
        };
        let removed = self.remove_all(&names, concurrency).await?;
        match target {
            None => {
                let mut nets: Vec<String> = desired_from_records(&records)
                    .map(|m| m.values().map(|d| d.network.name.clone()).collect())
                    .unwrap_or_default();
                nets.push(compose::NETWORK_NAME.to_owned());
                nets.sort();
                nets.dedup();
                for n in &nets {
                    network::remove_network(&self.docker, n).await?;
                }
                if is_root() {
                    network::remove_shim();
                }
                for r in &records {
                    repo.delete_decky(&r.name).await?;
                }
            }
            Some(id) => {
                repo.delete_decky(id).await?;
            }
        }
        Ok(removed)
    }

    /// Records joined with what Docker reports, plus orphan containers.
    pub async fn status(&self, repo: &SqlRepository) -> Result<Vec<DeckyStatus>, EngineError> {
        let records = repo.deckies().await?;
        let actual = self.actual().await?;
        let mut seen: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for r in &records {
            let desired = serde_json::from_str::<DesiredDecky>(&r.spec).ok();
            let mut names = vec![r.name.clone()];
            if let Some(d) = &desired {
                names.extend(d.services.iter().map(|s| s.container_name.clone()));
            }
            let mut containers = Vec::new();
            for n in &names {
                seen.insert(n.clone());
                containers.push(self.container_status(n, actual.contains_key(n)).await?);
            }
            out.push(DeckyStatus {
                name: r.name.clone(),
                state: r.state.clone(),
                last_error: r.last_error.clone(),
                ip: desired.as_ref().and_then(|d| d.ip().map(str::to_owned)),
                mac: desired.as_ref().and_then(|d| d.mac().map(str::to_owned)),
                hostname: desired.as_ref().and_then(|d| d.base.hostname.clone()),
                containers,
            });
        }
        let mut orphans: BTreeMap<String, Vec<ContainerStatus>> = BTreeMap::new();
        for (n, a) in &actual {
            if !seen.contains(n) {
                let status = self.container_status(n, true).await?;
                orphans.entry(a.member.clone()).or_default().push(status);
            }
        }
        for (member, containers) in orphans {
            out.push(DeckyStatus {
                name: member,
                state: "orphan".to_owned(),
                last_error: None,
                ip: None,
                mac: None,
                hostname: None,
                containers,
            });
        }
        Ok(out)
    }

    async fn container_status(
        &self,
        name: &str,
        exists: bool,
    ) -> Result<ContainerStatus, EngineError> {
        let missing = || ContainerStatus {
            name: name.to_owned(),
            role: String::new(),
            service: None,
            state: "missing".to_owned(),
            uptime_secs: None,
            restarts: 0,
        };
        if !exists {
            return Ok(missing());
        }
        let c = match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) if docker::is_not_found(&e) => return Ok(missing()),
            Err(e) => return Err(EngineError::docker(format!("inspecting {name}"))(e)),
        };
        let labels = c
            .config
            .as_ref()
            .and_then(|cfg| cfg.labels.clone())
            .unwrap_or_default();
        let state = c.state.as_ref();
        let running = state.and_then(|s| s.running).unwrap_or(false);
        let uptime_secs = state
            .and_then(|s| s.started_at.as_deref())
            .filter(|_| running)
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .and_then(|t| {
                u64::try_from((time::OffsetDateTime::now_utc() - t).whole_seconds()).ok()
            });
        Ok(ContainerStatus {
            name: name.to_owned(),
            role: labels.get(labels::ROLE).cloned().unwrap_or_default(),
            service: labels.get(labels::SERVICE).cloned(),
            state: state
                .and_then(|s| s.status)
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            uptime_secs,
            restarts: c.restart_count.unwrap_or(0),
        })
    }
}

fn progress_bar(visible: bool, total: usize) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} deckies {msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
