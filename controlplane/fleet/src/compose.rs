//! The composer: a [`FleetPlan`] as a docker-compose document.
//!
//! The layout is the original's (one base container per host holding the IP, MAC, hostname
//! and OS sysctls; one container per service joined to the base's network namespace with
//! `network_mode: service:<host>`), plus the hardening it lacked: read-only root filesystems,
//! every capability dropped and only the needed ones added back, `no-new-privileges`, and
//! memory and process limits. Nothing in it names the product: labels, images and network
//! use neutral names.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::{
    catalog::{Catalog, FragmentContext, ServiceFragment},
    plan::{FleetPlan, PlannedDecky},
};

/// Label keys that mark ownership of containers and networks.
pub mod labels {
    pub const ROLE: &str = "fleet.role";
    pub const MEMBER: &str = "fleet.member";
    pub const SERVICE: &str = "fleet.service";
    pub const PLAN: &str = "fleet.plan";
}

/// The compose file's name for the decoy LAN network, and the Docker network it refers to.
pub const NETWORK_KEY: &str = "lan";
pub const NETWORK_NAME: &str = "fleet_lan";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComposeFile {
    pub version: String,
    pub services: IndexMap<String, ComposeService>,
    pub networks: IndexMap<String, ComposeNetwork>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComposeNetwork {
    pub external: bool,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub ipv4_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logging {
    pub driver: String,
    pub options: IndexMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeService {
    pub image: String,
    pub pull_policy: String,
    pub container_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    pub restart: String,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub networks: IndexMap<String, NetworkAttachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub sysctls: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub environment: IndexMap<String, String>,
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    pub security_opt: Vec<String>,
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    pub mem_limit: String,
    pub pids_limit: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    pub labels: IndexMap<String, String>,
    pub logging: Logging,
}

/// Image of the base (address-holder) container: a tiny static program that only waits.
pub fn base_image() -> String {
    format!("{}/base:latest", crate::IMAGE_NAMESPACE)
}

/// Container name of a host's service (`_` becomes `-` for every slug, so discovery by name
/// and by label always agree; the original missed `smtp_relay` this way).
pub fn service_container_name(decky: &str, slug: &str) -> String {
    format!("{decky}-{}", slug.replace('_', "-"))
}

fn logging() -> Logging {
    let mut options = IndexMap::new();
    options.insert("max-size".to_owned(), "10m".to_owned());
    options.insert("max-file".to_owned(), "5".to_owned());
    Logging {
        driver: "json-file".to_owned(),
        options,
    }
}

fn hardening() -> (Vec<String>, Vec<String>) {
    (
        vec!["ALL".to_owned()],
        vec!["no-new-privileges:true".to_owned()],
    )
}

/// A short, stable identifier of a plan (hash of its JSON form) used to label its containers.
pub fn plan_id(plan: &FleetPlan) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(plan).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..6])
}

fn base_service(d: &PlannedDecky, plan_id: &str) -> ComposeService {
    let (cap_drop, security_opt) = hardening();
    let mut networks = IndexMap::new();
    networks.insert(
        NETWORK_KEY.to_owned(),
        NetworkAttachment {
            ipv4_address: d.ip.to_string(),
            mac_address: d.mac.map(|m| m.to_string()),
        },
    );
    let mut labels = IndexMap::new();
    labels.insert(labels::ROLE.to_owned(), "base".to_owned());
    labels.insert(labels::MEMBER.to_owned(), d.name.clone());
    labels.insert(labels::PLAN.to_owned(), plan_id.to_owned());
    ComposeService {
        image: base_image(),
        pull_policy: "never".to_owned(),
        container_name: d.name.clone(),
        hostname: Some(d.hostname.clone()),
        command: Vec::new(),
        restart: "unless-stopped".to_owned(),
        networks,
        network_mode: None,
        depends_on: Vec::new(),
        sysctls: d
            .os
            .sysctls()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        environment: IndexMap::new(),
        cap_drop,
        // The base owns the host's network namespace; NET_ADMIN lets it shape that stack
        // (the OS cloak) for every service sharing it. Nothing else is granted.
        cap_add: vec!["NET_ADMIN".to_owned()],
        security_opt,
        read_only: true,
        tmpfs: Vec::new(),
        mem_limit: "16m".to_owned(),
        pids_limit: 16,
        volumes: Vec::new(),
        labels,
        logging: logging(),
    }
}

fn service_entry(
    decky: &str,
    slug: &str,
    fragment: ServiceFragment,
    plan_id: &str,
    log_target: Option<&str>,
) -> ComposeService {
    let (cap_drop, security_opt) = hardening();
    let mut environment = fragment.environment;
    if let Some(target) = log_target {
        environment.insert("LOG_TARGET".to_owned(), target.to_owned());
    }
    let mut labels = IndexMap::new();
    labels.insert(labels::ROLE.to_owned(), "service".to_owned());
    labels.insert(labels::MEMBER.to_owned(), decky.to_owned());
    labels.insert(labels::SERVICE.to_owned(), slug.to_owned());
    labels.insert(labels::PLAN.to_owned(), plan_id.to_owned());
    ComposeService {
        image: fragment.image,
        pull_policy: "never".to_owned(),
        container_name: service_container_name(decky, slug),
        hostname: None,
        command: fragment.command,
        restart: "unless-stopped".to_owned(),
        networks: IndexMap::new(),
        network_mode: Some(format!("service:{decky}")),
        depends_on: vec![decky.to_owned()],
        sysctls: IndexMap::new(),
        environment,
        cap_drop,
        cap_add: fragment.cap_add,
        security_opt,
        read_only: fragment.read_only,
        tmpfs: if fragment.read_only {
            vec!["/tmp:size=16m,mode=1777".to_owned()]
        } else {
            Vec::new()
        },
        mem_limit: format!("{}m", fragment.mem_limit_mb),
        pids_limit: fragment.pids_limit,
        volumes: fragment.volumes,
        labels,
        logging: logging(),
    }
}

/// The host a service container is defined for: what its fragment may depend on.
#[derive(Debug, Clone, Copy)]
pub struct ServiceHost<'a> {
    pub decky: &'a str,
    pub hostname: &'a str,
    pub distro: &'a str,
    pub os_family: &'a str,
    /// Service slug → persona key → value.
    pub persona: &'a IndexMap<String, IndexMap<String, String>>,
}

/// One service container of a host, as the composer defines it (before compose's `$`
/// escaping); `None` when the catalogue has no such service. The mutator builds a re-rolled
/// decky's containers with it, so they are the ones a fresh deploy would make.
pub fn service_container(
    catalog: &Catalog,
    host: &ServiceHost<'_>,
    slug: &str,
    plan_id: &str,
    log_target: Option<&str>,
) -> Option<ComposeService> {
    let service = catalog.get(slug)?;
    let empty = IndexMap::new();
    let ctx = FragmentContext {
        decky: host.decky,
        hostname: host.hostname,
        distro: host.distro,
        os_family: host.os_family,
        persona: host.persona.get(slug).unwrap_or(&empty),
    };
    Some(service_entry(
        host.decky,
        slug,
        service.compose_fragment(&ctx),
        plan_id,
        log_target,
    ))
}

/// Build the compose document of a plan.
pub fn compose(plan: &FleetPlan) -> ComposeFile {
    let id = plan_id(plan);
    let mut services = IndexMap::new();
    for d in &plan.deckies {
        services.insert(d.name.clone(), base_service(d, &id));
        let host = ServiceHost {
            decky: &d.name,
            hostname: &d.hostname,
            distro: d.distro,
            os_family: d.os.slug(),
            persona: &d.persona,
        };
        for slug in &d.services {
            // The planner resolved every slug against this catalogue.
            if let Some(entry) =
                service_container(&plan.catalog, &host, slug, &id, plan.log_target.as_deref())
            {
                services.insert(entry.container_name.clone(), entry);
            }
        }
    }
    let mut networks = IndexMap::new();
    networks.insert(
        NETWORK_KEY.to_owned(),
        ComposeNetwork {
            external: true,
            name: NETWORK_NAME.to_owned(),
        },
    );
    for service in services.values_mut() {
        escape_interpolation(service);
    }
    ComposeFile {
        version: "3.8".to_owned(),
        services,
        networks,
    }
}

/// Compose substitutes `$VAR` in values; user text (passwords, bodies, commands) must reach
/// the container as written, so every `$` is doubled.
fn escape_interpolation(service: &mut ComposeService) {
    let esc = |s: &mut String| {
        if s.contains('$') {
            *s = s.replace('$', "$$");
        }
    };
    service.environment.values_mut().for_each(esc);
    service.command.iter_mut().for_each(esc);
    service.volumes.iter_mut().for_each(esc);
    service.labels.values_mut().for_each(esc);
}

/// The compose document as YAML text.
pub fn to_yaml(file: &ComposeFile) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(file)
}
