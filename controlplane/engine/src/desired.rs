//! The desired state of each decky: its containers as the composer defines them (hardening
//! included), plus the network. This is what the repository stores per decky, so `redeploy`
//! converges on exactly what `deploy` was asked for, with no second copy anywhere.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, HostConfigLogConfig,
    Mount, MountType, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use decnet_fleet::{
    catalog::Catalog,
    compose::{self, ComposeService, ServiceHost},
    plan::FleetPlan,
};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{error::EngineError, labels, network::NetworkDesired};

/// Where a service container finds the collector's socket. It must not look like a logging
/// socket to anyone who sees the container's mounts, and nothing else is mounted there.
pub const SINK_MOUNT: &str = "/run/dbus/system_bus_socket";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredDecky {
    pub network: NetworkDesired,
    pub base: ComposeService,
    pub services: Vec<ComposeService>,
    /// What the mutator needs to re-roll this decky's services; `None` in records written
    /// before the mutator existed (a redeploy of the INI adds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation: Option<Mutable>,
}

/// A decky's persona as its service containers were built from it, and its mutation
/// schedule. Stored with the decky, so a mutation rebuilds containers exactly as a deploy of
/// the same host with other services would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutable {
    pub hostname: String,
    pub distro: String,
    pub os_family: String,
    pub archetype: Option<String>,
    /// Service slug → persona key → value, for every service the INI gave one (kept when a
    /// mutation drops the service, so it comes back the same if re-drawn).
    #[serde(default)]
    pub persona: IndexMap<String, IndexMap<String, String>>,
    pub log_target: Option<String>,
    /// The collector's socket on the host, mounted into every service container.
    pub sink: Option<PathBuf>,
    /// Minutes between automatic mutations: `Some(0)` never, `None` follows the fleet-wide
    /// interval (`PUT /config/global-mutation-interval`).
    pub interval_minutes: Option<u32>,
    /// When the services last changed (deploy time until the first mutation), Unix ns.
    pub last_mutated_ns: i64,
    #[serde(default)]
    pub mutations: u64,
}

impl Mutable {
    /// Whether an automatic mutation is due at `now_ns`, given the fleet-wide interval.
    pub fn is_due(&self, global_minutes: u32, now_ns: i64) -> bool {
        let minutes = self.interval_minutes.unwrap_or(global_minutes);
        minutes > 0
            && now_ns.saturating_sub(self.last_mutated_ns)
                >= i64::from(minutes).saturating_mul(60_000_000_000)
    }
}

impl DesiredDecky {
    pub fn name(&self) -> &str {
        &self.base.container_name
    }

    /// Service slugs, from the ownership labels.
    pub fn slugs(&self) -> impl Iterator<Item = &str> {
        self.services
            .iter()
            .filter_map(|s| s.labels.get(labels::SERVICE).map(String::as_str))
    }

    pub fn ip(&self) -> Option<&str> {
        self.base
            .networks
            .values()
            .next()
            .map(|a| a.ipv4_address.as_str())
    }

    pub fn mac(&self) -> Option<&str> {
        self.base
            .networks
            .values()
            .next()
            .and_then(|a| a.mac_address.as_deref())
    }
}

/// Compose escapes `$` as `$$` for its own interpolation; the API takes values verbatim.
fn unescape(service: &mut ComposeService) {
    let un = |s: &mut String| {
        if s.contains("$$") {
            *s = s.replace("$$", "$");
        }
    };
    service.environment.values_mut().for_each(un);
    service.command.iter_mut().for_each(un);
    service.volumes.iter_mut().for_each(un);
    service.labels.values_mut().for_each(un);
}

/// Split a plan into per-decky desired state. `sink` is the collector's unix datagram
/// socket on the host, bind-mounted read-only into every service container.
pub fn from_plan(
    plan: &FleetPlan,
    sink: Option<&Path>,
) -> Result<(NetworkDesired, IndexMap<String, DesiredDecky>), EngineError> {
    let parent = plan
        .network
        .interface
        .clone()
        .ok_or(EngineError::NoParent)?;
    let network = NetworkDesired {
        name: compose::NETWORK_NAME.to_owned(),
        ipvlan: plan.network.ipvlan,
        parent,
        subnet: plan.network.subnet,
        gateway: plan.network.gateway,
        ip_range: plan.network.ip_range,
    };
    let file = compose::compose(plan);
    let mut deckies: IndexMap<String, DesiredDecky> = IndexMap::new();
    for (_, mut service) in file.services {
        unescape(&mut service);
        let member = service
            .labels
            .get(compose::labels::MEMBER)
            .cloned()
            .unwrap_or_default();
        if service
            .labels
            .get(compose::labels::ROLE)
            .map(String::as_str)
            == Some("base")
        {
            let mutation = plan.decky(&member).map(|p| Mutable {
                hostname: p.hostname.clone(),
                distro: p.distro.to_owned(),
                os_family: p.os.slug().to_owned(),
                archetype: p.archetype.map(str::to_owned),
                persona: p.persona.clone(),
                log_target: plan.log_target.clone(),
                sink: sink.map(Path::to_path_buf),
                interval_minutes: Some(p.mutate_interval),
                last_mutated_ns: 0,
                mutations: 0,
            });
            deckies.insert(
                member,
                DesiredDecky {
                    network: network.clone(),
                    base: service,
                    services: Vec::new(),
                    mutation,
                },
            );
        } else if let Some(d) = deckies.get_mut(&member) {
            attach_sink(&mut service, sink);
            d.services.push(service);
        }
    }
    Ok((network, deckies))
}

/// Give a service container the collector's socket.
fn attach_sink(service: &mut ComposeService, sink: Option<&Path>) {
    if let Some(sock) = sink {
        service
            .environment
            .insert("EVENT_SINK".to_owned(), format!("unix:{SINK_MOUNT}"));
        service
            .volumes
            .push(format!("{}:{SINK_MOUNT}:ro", sock.display()));
    }
}

impl DesiredDecky {
    /// This decky running `slugs` instead of its current services: the same base container
    /// (address, MAC, hostname, OS), service containers defined as a deploy would define
    /// them. Fails for a record without mutation data or a slug the catalogue lacks.
    pub fn with_services(&self, slugs: &[String]) -> Result<Self, EngineError> {
        let m = self
            .mutation
            .as_ref()
            .ok_or_else(|| EngineError::NotMutable(self.name().to_owned()))?;
        let catalog = Catalog::builtin();
        let plan_id = self
            .base
            .labels
            .get(compose::labels::PLAN)
            .cloned()
            .unwrap_or_default();
        let host = ServiceHost {
            decky: self.name(),
            hostname: &m.hostname,
            distro: &m.distro,
            os_family: &m.os_family,
            persona: &m.persona,
        };
        let mut services = Vec::with_capacity(slugs.len());
        for slug in slugs {
            let mut service = compose::service_container(
                &catalog,
                &host,
                slug,
                &plan_id,
                m.log_target.as_deref(),
            )
            .ok_or_else(|| EngineError::NotEmulated {
                missing: slug.clone(),
                available: Catalog::random_pool().join(", "),
            })?;
            attach_sink(&mut service, m.sink.as_deref());
            services.push(service);
        }
        Ok(Self {
            network: self.network.clone(),
            base: self.base.clone(),
            services,
            mutation: self.mutation.clone(),
        })
    }
}

/// Hash of one container's definition, stored as a label: a container whose label differs
/// from the desired definition is replaced, an identical one is kept.
pub fn spec_hash(service: &ComposeService) -> String {
    let json = serde_json::to_vec(service).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// `48m` / `1g` / `512k` / bytes.
fn parse_bytes(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1i64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    num.parse::<i64>().ok()?.checked_mul(mult)
}

/// A `host:container[:ro]` volume as a bind mount. The mount API (unlike `Binds`) refuses a
/// missing source instead of creating an empty directory in its place.
fn mount(volume: &str) -> Option<Mount> {
    let mut parts = volume.splitn(3, ':');
    let source = parts.next()?;
    let target = parts.next()?;
    let read_only = parts.next().is_none_or(|mode| mode.contains("ro"));
    Some(Mount {
        target: Some(target.to_owned()),
        source: Some(source.to_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Mount::default()
    })
}

/// The create request of one container, and its JSON body with the MAC address where
/// Docker 20.10 reads it (see `docker::BodyOverrides`).
pub fn container_body(
    service: &ComposeService,
    network: &str,
    base: Option<&str>,
) -> (ContainerCreateBody, Option<Vec<u8>>) {
    let mut labels: HashMap<String, String> = service
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(labels::SPEC.to_owned(), spec_hash(service));
    let tmpfs: HashMap<String, String> = service
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((path, opts)) => (path.to_owned(), opts.to_owned()),
            None => (t.clone(), String::new()),
        })
        .collect();
    let attachment = service.networks.values().next();
    let host_config = HostConfig {
        cap_drop: Some(service.cap_drop.clone()),
        cap_add: (!service.cap_add.is_empty()).then(|| service.cap_add.clone()),
        security_opt: Some(service.security_opt.clone()),
        readonly_rootfs: Some(service.read_only),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        memory: parse_bytes(&service.mem_limit),
        pids_limit: Some(i64::from(service.pids_limit)),
        sysctls: (!service.sysctls.is_empty()).then(|| {
            service
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        network_mode: Some(match base {
            Some(b) => format!("container:{b}"),
            None => network.to_owned(),
        }),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        log_config: Some(HostConfigLogConfig {
            typ: Some(service.logging.driver.clone()),
            config: Some(
                service
                    .logging
                    .options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        }),
        mounts: {
            let mounts: Vec<Mount> = service.volumes.iter().filter_map(|v| mount(v)).collect();
            (!mounts.is_empty()).then_some(mounts)
        },
        ..HostConfig::default()
    };
    let networking_config = match (base, attachment) {
        (None, Some(a)) => {
            let mut endpoints = HashMap::new();
            endpoints.insert(
                network.to_owned(),
                EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: Some(a.ipv4_address.clone()),
                        ..EndpointIpamConfig::default()
                    }),
                    mac_address: a.mac_address.clone(),
                    ..EndpointSettings::default()
                },
            );
            Some(NetworkingConfig {
                endpoints_config: Some(endpoints),
            })
        }
        _ => None,
    };
    let body = ContainerCreateBody {
        image: Some(service.image.clone()),
        hostname: service.hostname.clone(),
        cmd: (!service.command.is_empty()).then(|| service.command.clone()),
        env: Some(
            service
                .environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(labels),
        host_config: Some(host_config),
        networking_config,
        ..ContainerCreateBody::default()
    };
    let with_mac = attachment
        .and_then(|a| a.mac_address.as_deref())
        .filter(|_| base.is_none())
        .and_then(|mac| {
            let mut value = serde_json::to_value(&body).ok()?;
            value
                .as_object_mut()?
                .insert("MacAddress".to_owned(), mac.into());
            serde_json::to_vec(&value).ok()
        });
    (body, with_mac)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("16m"), Some(16 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("512"), Some(512));
        assert_eq!(parse_bytes("x"), None);
    }

    fn planned(ini: &str) -> FleetPlan {
        let spec = decnet_fleet::config::load(ini.as_bytes()).unwrap();
        let options = decnet_fleet::plan::PlanOptions {
            seed: Some(3),
            ..Default::default()
        };
        decnet_fleet::plan::plan(spec, &options).unwrap()
    }

    const NET: &str = "[general]\nnet = 10.9.0.0/24\ngw = 10.9.0.1\ninterface = eth9\nlog_target = 10.9.0.1:514\n\n";

    #[test]
    fn a_mutated_decky_has_the_containers_a_deploy_of_its_new_services_makes() {
        let sink = Path::new("/var/lib/decnet/intake.sock");
        let before = planned(&format!(
            "{NET}[web01]\nservices = ssh, http\nnmap_os = bsd\nmutate_interval = 45\n\n[web01.http]\nserver_header = nginx/1.1\n"
        ));
        let (_, deckies) = from_plan(&before, Some(sink)).unwrap();
        let d = &deckies["web01"];
        let m = d.mutation.as_ref().unwrap();
        assert_eq!(m.interval_minutes, Some(45));
        assert_eq!(m.sink.as_deref(), Some(sink));
        assert_eq!(m.os_family, "bsd");
        // The same host deployed with other services: the reference for the mutated one.
        let after = planned(&format!(
            "{NET}[web01]\nservices = ftp, http\nnmap_os = bsd\nmutate_interval = 45\n\n[web01.http]\nserver_header = nginx/1.1\n"
        ));
        let (_, reference) = from_plan(&after, Some(sink)).unwrap();
        let reference = &reference["web01"];
        assert_eq!(
            reference.base.networks, d.base.networks,
            "same address and MAC"
        );
        let mutated = d.with_services(&["ftp".into(), "http".into()]).unwrap();
        assert_eq!(mutated.base, d.base, "the base container is kept as it is");
        assert_eq!(mutated.services.len(), 2);
        let plan_label = |s: &ComposeService| s.labels.get(compose::labels::PLAN).cloned();
        for (got, want) in mutated.services.iter().zip(&reference.services) {
            // Everything but the plan label, which stays the base's.
            let mut want = want.clone();
            want.labels.insert(
                compose::labels::PLAN.to_owned(),
                plan_label(&d.base).unwrap(),
            );
            assert_eq!(got, &want);
        }
        // The persona of a kept service survives; the log target and sink are there.
        let http = &mutated.services[1];
        assert!(
            http.environment.values().any(|v| v.contains("nginx/1.1")),
            "{:?}",
            http.environment
        );
        assert_eq!(
            http.environment.get("EVENT_SINK").map(String::as_str),
            Some("unix:/run/dbus/system_bus_socket")
        );
        assert!(mutated.services[0].environment.contains_key("LOG_TARGET"));
        let refused = d
            .with_services(&["no-such".into()])
            .unwrap_err()
            .to_string();
        assert!(refused.contains("no-such"), "{refused}");
        let mut old = d.clone();
        old.mutation = None;
        assert!(matches!(
            old.with_services(&["ftp".into()]),
            Err(EngineError::NotMutable(name)) if name == "web01"
        ));
        // Records written before mutation existed still load.
        let mut json: serde_json::Value = serde_json::to_value(d).unwrap();
        json.as_object_mut().unwrap().remove("mutation");
        let loaded: DesiredDecky = serde_json::from_value(json).unwrap();
        assert_eq!(loaded.mutation, None);
    }

    #[test]
    fn due_follows_the_own_or_the_global_interval() {
        let minute = 60_000_000_000i64;
        let mut m = Mutable {
            hostname: "h".into(),
            distro: "debian".into(),
            os_family: "linux".into(),
            archetype: None,
            persona: IndexMap::new(),
            log_target: None,
            sink: None,
            interval_minutes: Some(5),
            last_mutated_ns: 1_000 * minute,
            mutations: 0,
        };
        assert!(!m.is_due(30, 1_004 * minute));
        assert!(m.is_due(30, 1_005 * minute));
        m.interval_minutes = None;
        assert!(!m.is_due(30, 1_029 * minute));
        assert!(m.is_due(30, 1_030 * minute));
        assert!(!m.is_due(0, i64::MAX), "a global 0 means never");
        m.interval_minutes = Some(0);
        assert!(!m.is_due(30, i64::MAX), "0 means never");
    }

    #[test]
    fn volumes_become_read_only_binds() {
        let m = mount("/var/lib/x/intake.sock:/run/dbus/system_bus_socket:ro").unwrap();
        assert_eq!(m.source.as_deref(), Some("/var/lib/x/intake.sock"));
        assert_eq!(m.target.as_deref(), Some(SINK_MOUNT));
        assert_eq!(m.read_only, Some(true));
    }
}
