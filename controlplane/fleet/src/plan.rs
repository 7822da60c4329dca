//! The planner: turns a [`FleetSpec`] into a concrete [`FleetPlan`] — addresses, services,
//! distros, OS personas, hostnames and MACs for every host.

use std::{collections::BTreeSet, net::Ipv4Addr};

use indexmap::IndexMap;
use ipnet::Ipv4Net;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde::Serialize;

use crate::{
    archetype::Archetype,
    catalog::{Catalog, Port, ServicePlugin},
    distro::{DISTROS, Distro},
    error::{ErrorKind, FleetError, Location},
    hostname,
    mac::{MacAddr, ouis_for},
    os::OsFamily,
    spec::{DeckySpec, FleetSpec},
};

/// Default minutes between mutations when nothing sets it (the original's default).
pub const DEFAULT_MUTATE_MINUTES: u32 = 30;
/// Attempts to find a service combination (or hostname, MAC) not used yet in the fleet.
const UNIQUE_ATTEMPTS: usize = 50;

/// Choices that come from the command line rather than the INI file.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Give hosts without explicit services or archetype 1–3 random services.
    pub randomize_services: bool,
    /// Distros to cycle through (`--distro a,b`).
    pub distros: Vec<&'static Distro>,
    pub randomize_distros: bool,
    /// `--mutate-interval`: overrides `[general] mutate_interval`, not a host's own value.
    pub mutate_interval: Option<u32>,
    /// Seed for every random choice; the same seed and input give the same plan.
    pub seed: Option<u64>,
}

/// The planned network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedNetwork {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub interface: Option<String>,
    pub ipvlan: bool,
    /// Tightest CIDR covering every host address (the Docker IPAM ip-range).
    pub ip_range: Ipv4Net,
}

/// One planned host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedDecky {
    pub name: String,
    pub ip: Ipv4Addr,
    /// `None` under IPvlan, where every host shares the parent's MAC.
    pub mac: Option<MacAddr>,
    pub hostname: String,
    pub distro: &'static str,
    pub os: OsFamily,
    pub archetype: Option<&'static str>,
    pub services: Vec<String>,
    /// Service slug → persona key → value (validated).
    pub persona: IndexMap<String, IndexMap<String, String>>,
    /// Minutes between mutations; 0 = never.
    pub mutate_interval: u32,
}

/// A complete, validated fleet.
#[derive(Debug, Clone, Serialize)]
pub struct FleetPlan {
    pub network: PlannedNetwork,
    pub log_target: Option<String>,
    pub seed: u64,
    pub deckies: Vec<PlannedDecky>,
    #[serde(skip)]
    pub catalog: Catalog,
}

impl FleetPlan {
    pub fn decky(&self, name: &str) -> Option<&PlannedDecky> {
        self.deckies.iter().find(|d| d.name == name)
    }
}

/// Check one persona value against the service's contract.
pub fn check_persona_value(
    service: &dyn ServicePlugin,
    key: &str,
    value: &str,
) -> Result<(), ErrorKind> {
    if service.is_custom() {
        return Err(ErrorKind::CustomHasNoPersona(service.slug().to_owned()));
    }
    let known = service.persona_keys();
    let Some(def) = known.iter().find(|k| k.key == key) else {
        let list: Vec<&str> = known.iter().map(|k| k.key).collect();
        return Err(ErrorKind::UnknownPersonaKey {
            service: service.slug().to_owned(),
            known: if list.is_empty() {
                "(none)".to_owned()
            } else {
                list.join(", ")
            },
        });
    };
    def.kind.check(value).map_err(|why| ErrorKind::Invalid {
        what: "persona value",
        value: value.chars().take(80).collect(),
        why,
    })
}

fn decky_loc(d: &DeckySpec, key: Option<&str>) -> Location {
    Location::at(d.line, &d.name, key)
}

/// Plan a fleet. Errors name the host (and INI line) they concern.
pub fn plan(spec: FleetSpec, options: &PlanOptions) -> Result<FleetPlan, FleetError> {
    let seed = options.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    check_names(&spec.deckies)?;

    let subnet = spec
        .network
        .subnet
        .ok_or_else(|| FleetError::new(Location::none(), ErrorKind::NoSubnet))?;
    let gateway = match spec.network.gateway {
        Some(gw)
            if subnet.prefix_len() < 31 && (gw == subnet.network() || gw == subnet.broadcast()) =>
        {
            return Err(FleetError::new(
                Location::at(None, "general", Some("gw")),
                ErrorKind::IpReserved {
                    ip: gw.to_string(),
                    role: if gw == subnet.network() {
                        "the network address"
                    } else {
                        "the broadcast address"
                    },
                },
            ));
        }
        Some(gw) if subnet.contains(&gw) => gw,
        Some(gw) => {
            return Err(FleetError::new(
                Location::at(None, "general", Some("gw")),
                ErrorKind::IpOutsideSubnet {
                    ip: gw.to_string(),
                    subnet: subnet.to_string(),
                },
            ));
        }
        None => subnet.hosts().next().ok_or_else(|| {
            FleetError::new(
                Location::none(),
                ErrorKind::SubnetTooSmall {
                    subnet: subnet.to_string(),
                    start: subnet.network().to_string(),
                    needed: 1,
                    available: 0,
                },
            )
        })?,
    };
    let ips = allocate_ips(&spec, subnet, gateway)?;

    let mut used_combos: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut used_hostnames: BTreeSet<String> = BTreeSet::new();
    let mut used_macs: BTreeSet<MacAddr> = BTreeSet::new();
    let mut archetype_cursor: IndexMap<&'static str, usize> = IndexMap::new();
    let fleet_mutate = options
        .mutate_interval
        .or(spec.mutate_interval)
        .unwrap_or(DEFAULT_MUTATE_MINUTES);
    let mut deckies = Vec::with_capacity(spec.deckies.len());

    for (index, (d, ip)) in spec.deckies.iter().zip(ips).enumerate() {
        let services = choose_services(d, &spec.catalog, options, &mut used_combos, &mut rng)?;
        used_combos.insert(sorted(&services));
        let os =
            d.os.or(d.archetype.map(|a| a.os))
                .unwrap_or(OsFamily::Linux);
        let distro = choose_distro(d, index, options, &mut archetype_cursor, &mut rng);
        let hostname = match &d.hostname {
            Some(h) if used_hostnames.contains(h) => {
                return Err(FleetError::new(
                    decky_loc(d, Some("hostname")),
                    ErrorKind::Conflict(format!("hostname `{h}` is already used by another host")),
                ));
            }
            Some(h) => h.clone(),
            None => unique(&mut used_hostnames, || {
                hostname::generate(&mut rng, distro.hostname_style, os)
            }),
        };
        used_hostnames.insert(hostname.clone());
        let mac = if spec.network.ipvlan {
            None
        } else {
            let table = ouis_for(os, d.archetype.map(|a| a.slug));
            let mac = unique(&mut used_macs, || MacAddr::random(&mut rng, table));
            used_macs.insert(mac);
            Some(mac)
        };
        let persona = resolve_persona(d, &services, &spec.catalog)?;
        deckies.push(PlannedDecky {
            name: d.name.clone(),
            ip,
            mac,
            hostname,
            distro: distro.slug,
            os,
            archetype: d.archetype.map(|a| a.slug),
            services,
            persona,
            mutate_interval: d.mutate_interval.unwrap_or(fleet_mutate),
        });
    }

    check_container_names(&spec.deckies, &deckies)?;
    let ip_range = covering_net(deckies.iter().map(|d| d.ip)).unwrap_or(subnet);
    Ok(FleetPlan {
        network: PlannedNetwork {
            subnet,
            gateway,
            interface: spec.network.interface.clone(),
            ipvlan: spec.network.ipvlan,
            ip_range,
        },
        log_target: spec.log_target.clone(),
        seed,
        deckies,
        catalog: spec.catalog,
    })
}

fn check_names(deckies: &[DeckySpec]) -> Result<(), FleetError> {
    let mut seen: IndexMap<&str, &DeckySpec> = IndexMap::new();
    for d in deckies {
        if let Some(other) = seen.get(d.name.as_str()) {
            let other_at = other
                .line
                .map_or_else(|| "an earlier host".to_owned(), |l| format!("line {l}"));
            return Err(FleetError::new(
                decky_loc(d, None),
                ErrorKind::DuplicateName {
                    name: d.name.clone(),
                    other: other_at,
                },
            ));
        }
        seen.insert(&d.name, d);
    }
    Ok(())
}

/// Every container (a host's base and its services) needs a name of its own: `[web]` running
/// ssh and a host called `web-ssh` would otherwise both be `web-ssh`, and one would vanish.
fn check_container_names(specs: &[DeckySpec], planned: &[PlannedDecky]) -> Result<(), FleetError> {
    let mut owners: IndexMap<String, &str> = IndexMap::new();
    for (spec, d) in specs.iter().zip(planned) {
        let names = std::iter::once(d.name.clone()).chain(
            d.services
                .iter()
                .map(|s| crate::compose::service_container_name(&d.name, s)),
        );
        for name in names {
            if let Some(owner) = owners.get(&name) {
                return Err(FleetError::new(
                    decky_loc(spec, None),
                    ErrorKind::Conflict(format!(
                        "container name `{name}` is already used by host `{owner}`; rename one \
                         of the hosts"
                    )),
                ));
            }
            owners.insert(name, &d.name);
        }
    }
    Ok(())
}

/// Pick a value not in `used`, trying a bounded number of times (then accept a repeat; the
/// callers use this only where a repeat is harmless but undesirable).
fn unique<T: Ord>(used: &mut BTreeSet<T>, mut make: impl FnMut() -> T) -> T {
    let mut candidate = make();
    for _ in 0..UNIQUE_ATTEMPTS {
        if !used.contains(&candidate) {
            break;
        }
        candidate = make();
    }
    candidate
}

fn sorted(services: &[String]) -> Vec<String> {
    let mut v = services.to_vec();
    v.sort();
    v
}

/// Addresses that are never handed out, with the reason.
fn reserved(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    host_ips: &[Ipv4Addr],
) -> Vec<(Ipv4Addr, &'static str)> {
    let mut out = vec![(gateway, "the subnet's gateway")];
    if subnet.prefix_len() < 31 {
        out.push((subnet.network(), "the network address"));
        out.push((subnet.broadcast(), "the broadcast address"));
    }
    out.extend(
        host_ips
            .iter()
            .map(|h| (*h, "an address of the appliance or its router")),
    );
    out
}

/// Explicit addresses are checked and reserved first; the rest are filled in order from
/// `ip_start`, skipping every reserved address.
pub(crate) fn allocate_ips(
    spec: &FleetSpec,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
) -> Result<Vec<Ipv4Addr>, FleetError> {
    let reserved = reserved(subnet, gateway, &spec.network.host_ips);
    let mut taken: IndexMap<Ipv4Addr, &str> = IndexMap::new();
    for d in &spec.deckies {
        let Some((ip, line)) = d.ip else { continue };
        let here = Location::at(line, &d.name, Some("ip"));
        if !subnet.contains(&ip) {
            return Err(FleetError::new(
                here,
                ErrorKind::IpOutsideSubnet {
                    ip: ip.to_string(),
                    subnet: subnet.to_string(),
                },
            ));
        }
        if let Some((_, role)) = reserved.iter().find(|(r, _)| *r == ip) {
            return Err(FleetError::new(
                here,
                ErrorKind::IpReserved {
                    ip: ip.to_string(),
                    role,
                },
            ));
        }
        if let Some(other) = taken.get(&ip) {
            return Err(FleetError::new(
                here,
                ErrorKind::DuplicateIp {
                    ip: ip.to_string(),
                    other: (*other).to_owned(),
                },
            ));
        }
        taken.insert(ip, &d.name);
    }
    let start = spec.network.ip_start.unwrap_or_else(|| subnet.network());
    if !subnet.contains(&start) {
        return Err(FleetError::new(
            Location::at(None, "network", Some("--ip-start")),
            ErrorKind::IpOutsideSubnet {
                ip: start.to_string(),
                subnet: subnet.to_string(),
            },
        ));
    }
    let needed = spec.deckies.iter().filter(|d| d.ip.is_none()).count();
    let (first_host, last_host) = host_bounds(subnet);
    let first = first_host.max(u32::from(start));
    let last = last_host;
    let mut free = (first..=last)
        .map(Ipv4Addr::from)
        .filter(|ip| !reserved.iter().any(|(r, _)| r == ip) && !taken.contains_key(ip));
    let mut out = Vec::with_capacity(spec.deckies.len());
    let mut handed = 0usize;
    for d in &spec.deckies {
        if let Some((ip, _)) = d.ip {
            out.push(ip);
            continue;
        }
        let Some(ip) = free.next() else {
            return Err(FleetError::new(
                decky_loc(d, None),
                ErrorKind::SubnetTooSmall {
                    subnet: subnet.to_string(),
                    start: start.to_string(),
                    needed,
                    available: handed,
                },
            ));
        };
        handed += 1;
        out.push(ip);
    }
    Ok(out)
}

fn choose_services(
    d: &DeckySpec,
    catalog: &Catalog,
    options: &PlanOptions,
    used: &mut BTreeSet<Vec<String>>,
    rng: &mut StdRng,
) -> Result<Vec<String>, FleetError> {
    let list: Vec<String> = if let Some(list) = &d.services {
        list.clone()
    } else if let Some(a) = d.archetype {
        a.services.iter().map(|s| (*s).to_owned()).collect()
    } else if options.randomize_services || d.line.is_some() {
        // INI hosts without services or archetype get random ones, as in the original; the
        // services a persona subsection configures are always among them.
        let required: Vec<String> = d.persona.keys().cloned().collect();
        let mut candidate = random_services(catalog, &required, rng);
        for _ in 0..UNIQUE_ATTEMPTS {
            if !used.contains(&sorted(&candidate)) {
                break;
            }
            candidate = random_services(catalog, &required, rng);
        }
        candidate
    } else {
        return Err(FleetError::new(
            decky_loc(d, None),
            ErrorKind::NoServiceSource,
        ));
    };
    check_ports(d, &list, catalog)?;
    Ok(list)
}

/// `required` plus random services from the built-in pool, 1–3 in all (more only when more
/// are required), no two binding the same port.
fn random_services(catalog: &Catalog, required: &[String], rng: &mut StdRng) -> Vec<String> {
    let pool = Catalog::random_pool();
    let want = rng.random_range(1..=3usize).max(required.len());
    let mut picked: Vec<String> = required.to_vec();
    let mut ports: Vec<Port> = required
        .iter()
        .filter_map(|s| catalog.get(s))
        .flat_map(|s| s.ports().to_vec())
        .collect();
    for _ in 0..UNIQUE_ATTEMPTS {
        if picked.len() == want {
            break;
        }
        let Some(slug) = pool.choose(rng) else { break };
        let Some(service) = catalog.get(slug) else {
            continue;
        };
        if picked.iter().any(|p| p == slug) || service.ports().iter().any(|p| ports.contains(p)) {
            continue;
        }
        ports.extend_from_slice(service.ports());
        picked.push((*slug).to_owned());
    }
    picked
}

fn check_ports(d: &DeckySpec, services: &[String], catalog: &Catalog) -> Result<(), FleetError> {
    let mut bound: Vec<(Port, &str)> = Vec::new();
    for slug in services {
        let service = catalog.resolve(slug).map_err(|_| {
            FleetError::new(
                Location::at(d.services_line.or(d.line), &d.name, Some("services")),
                ErrorKind::UnknownService {
                    slug: slug.clone(),
                    known: catalog.per_decky_slugs().join(", "),
                },
            )
        })?;
        for port in service.ports() {
            if let Some((_, other)) = bound.iter().find(|(p, _)| p == port) {
                return Err(FleetError::new(
                    Location::at(d.services_line.or(d.line), &d.name, Some("services")),
                    ErrorKind::PortClash {
                        a: (*other).to_owned(),
                        b: slug.clone(),
                        port: port.to_string(),
                    },
                ));
            }
            bound.push((*port, slug));
        }
    }
    Ok(())
}

/// Host's own `distro` → `--distro` list (cycled) → `--randomize-distros` → the archetype's
/// preferred list (cycled per archetype) → round-robin over all distros.
fn choose_distro(
    d: &DeckySpec,
    index: usize,
    options: &PlanOptions,
    archetype_cursor: &mut IndexMap<&'static str, usize>,
    rng: &mut StdRng,
) -> &'static Distro {
    if let Some(distro) = d.distro {
        return distro;
    }
    if !options.distros.is_empty() {
        return options.distros[index % options.distros.len()];
    }
    if options.randomize_distros {
        return DISTROS.choose(rng).unwrap_or(&DISTROS[0]);
    }
    if let Some(a) = d.archetype
        && let Some(found) = preferred(a, archetype_cursor)
    {
        return found;
    }
    &DISTROS[index % DISTROS.len()]
}

fn preferred(
    a: &'static Archetype,
    cursor: &mut IndexMap<&'static str, usize>,
) -> Option<&'static Distro> {
    let n = cursor.entry(a.slug).or_insert(0);
    let slug = a
        .preferred_distros
        .get(*n % a.preferred_distros.len().max(1))?;
    *n += 1;
    crate::distro::distro(slug)
}

fn resolve_persona(
    d: &DeckySpec,
    services: &[String],
    catalog: &Catalog,
) -> Result<IndexMap<String, IndexMap<String, String>>, FleetError> {
    let mut out = IndexMap::new();
    for (slug, persona) in &d.persona {
        if !services.contains(slug) {
            return Err(FleetError::new(
                Location::at(persona.line, &persona_section(d, persona, slug), None),
                ErrorKind::ServiceNotOnHost(slug.clone()),
            ));
        }
        let service = catalog.resolve(slug).map_err(|_| {
            FleetError::new(
                Location::at(persona.line, &d.name, None),
                ErrorKind::UnknownService {
                    slug: slug.clone(),
                    known: catalog.per_decky_slugs().join(", "),
                },
            )
        })?;
        let mut values = IndexMap::new();
        for (key, (value, line)) in &persona.values {
            check_persona_value(service, key, value).map_err(|kind| {
                FleetError::new(
                    Location::at(*line, &format!("{}.{slug}", d.name), Some(key)),
                    kind,
                )
            })?;
            values.insert(key.clone(), value.clone());
        }
        out.insert(slug.clone(), values);
    }
    Ok(out)
}

/// First and last usable host of a subnet as integers (/31 and /32 use every address).
fn host_bounds(subnet: Ipv4Net) -> (u32, u32) {
    let (net, bcast) = (u32::from(subnet.network()), u32::from(subnet.broadcast()));
    if subnet.prefix_len() >= 31 {
        (net, bcast)
    } else {
        (net + 1, bcast - 1)
    }
}

/// The INI section a persona came from (`[group.slug]` for a group member's inherited one).
fn persona_section(d: &DeckySpec, persona: &crate::spec::PersonaSpec, slug: &str) -> String {
    persona
        .section
        .clone()
        .unwrap_or_else(|| format!("{}.{slug}", d.name))
}

/// The smallest network containing every address, or `None` for no addresses.
pub fn covering_net(ips: impl Iterator<Item = Ipv4Addr>) -> Option<Ipv4Net> {
    let (mut lo, mut hi) = (u32::MAX, 0u32);
    let mut any = false;
    for ip in ips {
        let v = u32::from(ip);
        lo = lo.min(v);
        hi = hi.max(v);
        any = true;
    }
    if !any {
        return None;
    }
    let differing = lo ^ hi;
    let prefix = u8::try_from(differing.leading_zeros()).unwrap_or(32);
    Ipv4Net::new(Ipv4Addr::from(lo), prefix)
        .ok()
        .map(|n| n.trunc())
}

#[cfg(test)]
mod tests;
