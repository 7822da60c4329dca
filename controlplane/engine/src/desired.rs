//! The desired state of each decky: its containers as the composer defines them (hardening
//! included), plus the network. This is what the repository stores per decky, so `redeploy`
//! converges on exactly what `deploy` was asked for, with no second copy anywhere.

use std::{collections::HashMap, path::Path};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, HostConfigLogConfig,
    Mount, MountType, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use decnet_fleet::{
    compose::{self, ComposeService},
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
            deckies.insert(
                member,
                DesiredDecky {
                    network: network.clone(),
                    base: service,
                    services: Vec::new(),
                },
            );
        } else if let Some(d) = deckies.get_mut(&member) {
            if let Some(sock) = sink {
                service
                    .environment
                    .insert("EVENT_SINK".to_owned(), format!("unix:{SINK_MOUNT}"));
                service
                    .volumes
                    .push(format!("{}:{SINK_MOUNT}:ro", sock.display()));
            }
            d.services.push(service);
        }
    }
    Ok((network, deckies))
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

    #[test]
    fn volumes_become_read_only_binds() {
        let m = mount("/var/lib/x/intake.sock:/run/dbus/system_bus_socket:ro").unwrap();
        assert_eq!(m.source.as_deref(), Some("/var/lib/x/intake.sock"));
        assert_eq!(m.target.as_deref(), Some(SINK_MOUNT));
        assert_eq!(m.read_only, Some(true));
    }
}
