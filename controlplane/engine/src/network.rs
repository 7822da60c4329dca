//! The decoy LAN: the Docker MACVLAN (or IPvlan L2) network on the parent interface, the
//! sweep of stale networks squatting its subnet, and the host shim that lets the appliance
//! reach its own deckies (a macvlan parent cannot talk to its children directly).

use std::{collections::HashMap, net::Ipv4Addr, path::Path, process::Command};

use bollard::{
    Docker,
    models::{Ipam, IpamConfig, NetworkCreateRequest},
    query_parameters::{InspectContainerOptions, RemoveContainerOptions},
};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::{
    docker::{is_not_found, retry},
    error::EngineError,
    labels,
};

/// Host-side shim interface (bridge-mode child of the parent, like the deckies).
pub const SHIM_NAME: &str = "lanshim0";

/// The network a fleet lives on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDesired {
    pub name: String,
    pub ipvlan: bool,
    pub parent: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Ipv4Net,
}

impl NetworkDesired {
    fn driver(&self) -> &'static str {
        if self.ipvlan { "ipvlan" } else { "macvlan" }
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Make sure the parent exists: Docker would accept a missing one and fail only later, at
/// the first container start.
pub fn check_parent(parent: &str) -> Result<(), EngineError> {
    if parent.is_empty()
        || parent.contains('/')
        || !Path::new("/sys/class/net").join(parent).exists()
    {
        return Err(EngineError::ParentMissing(parent.to_owned()));
    }
    Ok(())
}

/// Create the network, reuse a matching one, and sweep our own stale networks (and their
/// containers) that squat on the subnet. A foreign network on the subnet is a clash.
pub async fn ensure_network(docker: &Docker, want: &NetworkDesired) -> Result<(), EngineError> {
    check_parent(&want.parent)?;
    let networks = retry("listing networks", || docker.list_networks(None)).await?;
    let mut reuse = false;
    for n in networks {
        let name = n.name.clone().unwrap_or_default();
        let subnets: Vec<(Ipv4Net, Option<String>, Option<String>)> = n
            .ipam
            .as_ref()
            .and_then(|i| i.config.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| {
                let net = c.subnet.as_deref()?.parse::<Ipv4Net>().ok()?;
                Some((net, c.gateway, c.ip_range))
            })
            .collect();
        let clashes = subnets.iter().any(|(s, _, _)| overlaps(*s, want.subnet));
        if name != want.name && !clashes {
            continue;
        }
        let ours = n
            .labels
            .as_ref()
            .is_some_and(|l| l.get(labels::ROLE).map(String::as_str) == Some(labels::LAN));
        let matches = name == want.name
            && n.driver.as_deref() == Some(want.driver())
            && n.options.as_ref().and_then(|o| o.get("parent")) == Some(&want.parent)
            && subnets.len() == 1
            && subnets.first().is_some_and(|(s, gw, range)| {
                *s == want.subnet
                    && gw.as_deref() == Some(want.gateway.to_string().as_str())
                    && range.as_deref() == Some(want.ip_range.to_string().as_str())
            });
        if matches && ours {
            tracing::debug!(network = %name, "reusing the existing network");
            reuse = true;
            continue;
        }
        if !ours {
            return Err(EngineError::SubnetClash {
                subnet: want.subnet.to_string(),
                network: name,
                theirs: subnets
                    .iter()
                    .map(|(s, _, _)| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        tracing::warn!(network = %name, "removing a stale fleet network that squats on the subnet");
        sweep(docker, &name, &want.subnet.to_string()).await?;
    }
    if reuse {
        return Ok(());
    }
    let mut options = HashMap::new();
    options.insert("parent".to_owned(), want.parent.clone());
    if want.ipvlan {
        options.insert("ipvlan_mode".to_owned(), "l2".to_owned());
    } else {
        options.insert("macvlan_mode".to_owned(), "bridge".to_owned());
    }
    let mut net_labels = HashMap::new();
    net_labels.insert(labels::ROLE.to_owned(), labels::LAN.to_owned());
    let request = NetworkCreateRequest {
        name: want.name.clone(),
        driver: Some(want.driver().to_owned()),
        ipam: Some(Ipam {
            driver: Some("default".to_owned()),
            config: Some(vec![IpamConfig {
                subnet: Some(want.subnet.to_string()),
                ip_range: Some(want.ip_range.to_string()),
                gateway: Some(want.gateway.to_string()),
                auxiliary_addresses: None,
            }]),
            options: None,
        }),
        options: Some(options),
        labels: Some(net_labels),
        ..NetworkCreateRequest::default()
    };
    retry(&format!("creating network {}", want.name), || {
        docker.create_network(request.clone())
    })
    .await?;
    Ok(())
}

/// Remove one of our networks and the fleet containers still attached to it; refuse when a
/// foreign container is attached (it is somebody else's workload).
async fn sweep(docker: &Docker, name: &str, subnet: &str) -> Result<(), EngineError> {
    let inspect = retry(&format!("inspecting network {name}"), || {
        docker.inspect_network(name, None)
    })
    .await?;
    for id in inspect.containers.unwrap_or_default().keys() {
        let c = retry(&format!("inspecting container {id}"), || {
            docker.inspect_container(id, None::<InspectContainerOptions>)
        })
        .await?;
        let ours = c
            .config
            .as_ref()
            .and_then(|cfg| cfg.labels.as_ref())
            .is_some_and(|l| l.contains_key(labels::ROLE));
        if !ours {
            return Err(EngineError::SubnetClash {
                subnet: subnet.to_owned(),
                network: name.to_owned(),
                theirs: format!(
                    "container {} is attached to it",
                    c.name.unwrap_or_else(|| id.clone())
                ),
            });
        }
        remove_container(docker, id).await?;
    }
    match docker.remove_network(name).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(EngineError::docker(format!("removing network {name}"))(e)),
    }
}

/// Force-remove a container (and its anonymous volumes); gone already is fine.
pub(crate) async fn remove_container(docker: &Docker, name: &str) -> Result<(), EngineError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..RemoveContainerOptions::default()
    };
    let mut attempt = 0;
    loop {
        match docker.remove_container(name, Some(options.clone())).await {
            Ok(()) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            // "removal already in progress" (a parallel teardown) settles by itself.
            Err(e)
                if attempt < 3
                    && (crate::error::is_transient(&e)
                        || e.to_string().contains("in progress")) =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(EngineError::docker(format!("removing container {name}"))(e)),
        }
    }
}

/// Remove the fleet network if it exists (after its containers are gone).
pub async fn remove_network(docker: &Docker, name: &str) -> Result<(), EngineError> {
    match docker.remove_network(name).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(EngineError::docker(format!("removing network {name}"))(e)),
    }
}

fn ip(args: &[&str]) -> Result<String, EngineError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| EngineError::Shim {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(EngineError::Shim {
            command,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The shim's address: the parent's own address when it is on the subnet (the original's
/// choice), otherwise the highest free host address outside the deckies' range.
fn shim_address(want: &NetworkDesired) -> Option<Ipv4Addr> {
    let own = ip(&["-4", "-o", "addr", "show", "dev", &want.parent])
        .ok()
        .and_then(|text| {
            text.split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .and_then(|cidr| cidr.parse::<Ipv4Net>().ok())
                .map(|n| n.addr())
        })
        .filter(|a| want.subnet.contains(a));
    own.or_else(|| {
        let hosts: Vec<Ipv4Addr> = want.subnet.hosts().collect();
        hosts
            .into_iter()
            .rev()
            .find(|a| *a != want.gateway && !want.ip_range.contains(a))
    })
}

/// Create (or recreate) the host shim and route the deckies' range through it. Needs root;
/// returns the shim's address, or `None` when no address outside the range is free.
pub fn ensure_shim(want: &NetworkDesired) -> Result<Option<Ipv4Addr>, EngineError> {
    remove_shim();
    let Some(addr) = shim_address(want) else {
        tracing::warn!(subnet = %want.subnet, "no free address for the host shim; the host will not reach its deckies");
        return Ok(None);
    };
    let kind: &[&str] = if want.ipvlan {
        &["type", "ipvlan", "mode", "l2"]
    } else {
        &["type", "macvlan", "mode", "bridge"]
    };
    let mut add = vec!["link", "add", SHIM_NAME, "link", want.parent.as_str()];
    add.extend_from_slice(kind);
    let result = ip(&add)
        .and_then(|_| ip(&["addr", "add", &format!("{addr}/32"), "dev", SHIM_NAME]))
        .and_then(|_| ip(&["link", "set", SHIM_NAME, "up"]))
        .and_then(|_| {
            ip(&[
                "route",
                "replace",
                &want.ip_range.to_string(),
                "dev",
                SHIM_NAME,
            ])
        });
    if let Err(e) = result {
        remove_shim();
        return Err(e);
    }
    Ok(Some(addr))
}

/// Delete the shim (its route goes with it); absent is fine.
pub fn remove_shim() {
    if Path::new("/sys/class/net").join(SHIM_NAME).exists() {
        let _ = ip(&["link", "del", SHIM_NAME]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn overlap_is_symmetric() {
        let a: Ipv4Net = "10.0.0.0/16".parse().unwrap();
        let b: Ipv4Net = "10.0.3.0/24".parse().unwrap();
        let c: Ipv4Net = "10.1.0.0/24".parse().unwrap();
        assert!(overlaps(a, b) && overlaps(b, a));
        assert!(!overlaps(a, c) && !overlaps(c, a));
    }

    #[test]
    fn missing_parent_is_named() {
        let err = check_parent("nosuchif0").unwrap_err();
        assert!(
            err.to_string().contains("\"nosuchif0\" does not exist"),
            "{err}"
        );
        assert!(check_parent("../lo").is_err());
        assert!(check_parent("lo").is_ok());
    }

    #[test]
    fn shim_address_avoids_the_range_and_gateway() {
        let want = NetworkDesired {
            name: "x".into(),
            ipvlan: false,
            parent: "nosuchif0".into(),
            subnet: "10.9.0.0/24".parse().unwrap(),
            gateway: "10.9.0.254".parse().unwrap(),
            ip_range: "10.9.0.0/28".parse().unwrap(),
        };
        assert_eq!(shim_address(&want), Some("10.9.0.253".parse().unwrap()));
    }
}
