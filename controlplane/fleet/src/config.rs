//! The INI configuration format (see README "INI format"): sections become a [`FleetSpec`].
//!
//! Resolution order matters and fixes an original bug: `[custom-NAME]` services are registered
//! before any other section is classified, so `[host.NAME]` is a persona subsection for the
//! custom service instead of a host called `host.NAME`.

use std::net::Ipv4Addr;

use indexmap::IndexMap;
use ipnet::Ipv4Net;

use crate::{
    archetype::{archetype, archetype_slugs},
    catalog::{Catalog, CatalogError, CustomService, Port, parse_bool},
    distro::{distro, distro_slugs},
    error::{ErrorKind, FleetError, Location},
    ini::{self, Entry, Section},
    os::OsFamily,
    spec::{DeckySpec, FleetSpec, is_valid_name},
};

const GENERAL_KEYS: &str = "net, gw, interface, ipvlan, mutate_interval, log_target";
const DECKY_KEYS: &str =
    "ip, services, archetype, nmap_os, distro, hostname, mutate_interval, amount";
const CUSTOM_KEYS: &str = "binary, exec, ports, caps, read_only";
/// Longest mutation interval accepted: one week, in minutes.
pub const MAX_MUTATE_MINUTES: u32 = 7 * 24 * 60;

/// Parse an INI document into a fleet specification (no planning yet).
pub fn load(bytes: &[u8]) -> Result<FleetSpec, FleetError> {
    let sections = ini::parse(bytes)?;
    let mut spec = FleetSpec::default();

    // Pass 1: custom services, so later passes know their slugs.
    for section in &sections {
        if let Some(slug) = section.name.strip_prefix("custom-") {
            let service = custom_service(section, slug)?;
            spec.catalog.register_custom(service).map_err(|e| {
                let kind = match e {
                    CatalogError::ClashesWithBuiltin(s) => ErrorKind::Custom(format!(
                        "`{s}` is the name of a built-in service; choose another name"
                    )),
                    other => ErrorKind::Custom(other.to_string()),
                };
                FleetError::new(Location::at(Some(section.line), &section.name, None), kind)
            })?;
        }
    }

    // Every host name the file defines, `amount` expansions included, so a mistyped service in
    // `[web-01.htp]` is caught instead of becoming a host called `web-01.htp`.
    let mut known_hosts: Vec<String> = Vec::new();
    for section in &sections {
        let name = section.name.as_str();
        let is_subsection = name
            .rsplit_once('.')
            .is_some_and(|(_, slug)| spec.catalog.get(slug).is_some());
        if name == "general" || name.starts_with("custom-") || is_subsection {
            continue;
        }
        known_hosts.push(name.to_owned());
        let amount = section
            .get("amount")
            .and_then(|e| e.value.parse::<u32>().ok())
            .unwrap_or(1);
        if (2..=100).contains(&amount) {
            known_hosts.extend((1..=amount).map(|n| format!("{name}-{n:02}")));
        }
    }

    // Pass 2: general and host sections; subsections are collected for pass 3.
    let mut subsections: Vec<(&Section, &str, &str)> = Vec::new();
    let mut groups: IndexMap<String, Vec<usize>> = IndexMap::new();
    for section in &sections {
        let name = section.name.as_str();
        if name == "general" {
            general(section, &mut spec)?;
            continue;
        }
        if name.starts_with("custom-") {
            continue;
        }
        if let Some((host, slug)) = name.rsplit_once('.') {
            if spec.catalog.get(slug).is_some() {
                subsections.push((section, host, slug));
                continue;
            }
            if known_hosts.iter().any(|h| h == host) {
                // `[web01.htp]` next to `[web01]`: a mistyped service, not a new host.
                return Err(FleetError::new(
                    Location::at(Some(section.line), name, None),
                    unknown_service(&spec.catalog, slug),
                ));
            }
        }
        let first = spec.deckies.len();
        host_section(section, &spec.catalog, &mut spec.deckies)?;
        groups.insert(name.to_owned(), (first..spec.deckies.len()).collect());
    }

    // Pass 3: persona subsections; `[group.slug]` applies to every host of the group, and a
    // member's own `[group-01.slug]` (applied after, since it comes later or is more specific)
    // overrides single keys.
    subsections.sort_by_key(|(_, host, _)| usize::from(!groups.contains_key(*host)));
    for (section, host, slug) in subsections {
        let targets: Vec<usize> = match groups.get(host) {
            Some(members) => members.clone(),
            None => spec
                .deckies
                .iter()
                .position(|d| d.name == host)
                .map(|i| vec![i])
                .ok_or_else(|| {
                    FleetError::new(
                        Location::at(Some(section.line), &section.name, None),
                        ErrorKind::OrphanSubsection(host.to_owned()),
                    )
                })?,
        };
        let service = spec.catalog.get(slug).ok_or_else(|| {
            FleetError::new(
                Location::at(Some(section.line), &section.name, None),
                unknown_service(&spec.catalog, slug),
            )
        })?;
        for entry in &section.entries {
            crate::plan::check_persona_value(service, &entry.key, &entry.value).map_err(
                |kind| {
                    FleetError::new(
                        Location::at(Some(entry.line), &section.name, Some(&entry.key)),
                        kind,
                    )
                },
            )?;
        }
        for index in targets {
            let persona = spec.deckies[index]
                .persona
                .entry(slug.to_owned())
                .or_default();
            persona.line = Some(section.line);
            persona.section = Some(section.name.clone());
            for entry in &section.entries {
                persona
                    .values
                    .insert(entry.key.clone(), (entry.value.clone(), Some(entry.line)));
            }
        }
    }
    Ok(spec)
}

fn unknown_service(catalog: &Catalog, slug: &str) -> ErrorKind {
    ErrorKind::UnknownService {
        slug: slug.to_owned(),
        known: catalog.per_decky_slugs().join(", "),
    }
}

fn loc(section: &Section, entry: &Entry) -> Location {
    Location::at(Some(entry.line), &section.name, Some(&entry.key))
}

fn invalid(
    section: &Section,
    entry: &Entry,
    what: &'static str,
    why: impl Into<String>,
) -> FleetError {
    FleetError::new(
        loc(section, entry),
        ErrorKind::Invalid {
            what,
            value: entry.value.clone(),
            why: why.into(),
        },
    )
}

/// Only list keys may continue on indented lines; anywhere else a continuation is a mistake
/// that would otherwise end up inside a value.
fn single_line(section: &Section, entry: &Entry) -> Result<(), FleetError> {
    if entry.key != "services" && entry.key != "ports" && entry.value.contains('\n') {
        return Err(FleetError::new(
            loc(section, entry),
            ErrorKind::Conflict(
                "the value continues on an indented line; only `services` and `ports` may span \
                 lines (unindent the next line if it is a key of its own)"
                    .into(),
            ),
        ));
    }
    Ok(())
}

fn general(section: &Section, spec: &mut FleetSpec) -> Result<(), FleetError> {
    for entry in &section.entries {
        single_line(section, entry)?;
        let value = entry.value.as_str();
        match entry.key.as_str() {
            "net" => {
                let net: Ipv4Net = value.parse().map_err(|_| {
                    invalid(
                        section,
                        entry,
                        "subnet",
                        "expected IPv4 CIDR such as 10.20.0.0/24",
                    )
                })?;
                if net.network() != net.addr() {
                    return Err(invalid(
                        section,
                        entry,
                        "subnet",
                        format!("host bits are set; did you mean {}?", net.trunc()),
                    ));
                }
                spec.network.subnet = Some(net);
            }
            "gw" => {
                spec.network.gateway =
                    Some(value.parse::<Ipv4Addr>().map_err(|_| {
                        invalid(section, entry, "gateway", "expected an IPv4 address")
                    })?);
            }
            "interface" => {
                if !is_valid_ifname(value) {
                    return Err(invalid(
                        section,
                        entry,
                        "interface",
                        "expected a Linux interface name (1-15 characters, no '/' or spaces)",
                    ));
                }
                spec.network.interface = Some(value.to_owned());
            }
            "ipvlan" => {
                spec.network.ipvlan = parse_bool(value)
                    .ok_or_else(|| invalid(section, entry, "ipvlan", "expected true or false"))?;
            }
            "mutate_interval" | "mutate-interval" => {
                spec.mutate_interval = Some(minutes(section, entry)?);
            }
            "log_target" | "log-target" => {
                spec.log_target = Some(log_target(section, entry)?);
            }
            _ => {
                return Err(FleetError::new(
                    loc(section, entry),
                    ErrorKind::UnknownKey(GENERAL_KEYS.into()),
                ));
            }
        }
    }
    Ok(())
}

/// Linux interface names: 1–15 bytes, no `/`, whitespace or `:`.
pub fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

fn minutes(section: &Section, entry: &Entry) -> Result<u32, FleetError> {
    entry
        .value
        .parse::<u32>()
        .ok()
        .filter(|m| *m <= MAX_MUTATE_MINUTES)
        .ok_or_else(|| {
            invalid(
                section,
                entry,
                "mutate interval",
                format!("expected minutes from 0 (never) to {MAX_MUTATE_MINUTES}"),
            )
        })
}

/// `ip:port` (or `udp://ip:port`): services send straight to it and resolve no names, so a
/// name that would only fail inside every container is refused here.
fn log_target(section: &Section, entry: &Entry) -> Result<String, FleetError> {
    let raw = entry.value.strip_prefix("udp://").unwrap_or(&entry.value);
    match raw.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.port() > 0 => Ok(raw.to_owned()),
        _ => Err(invalid(
            section,
            entry,
            "log target",
            "expected IP:PORT, e.g. 192.0.2.10:514 (host names are not resolved)",
        )),
    }
}

fn host_section(
    section: &Section,
    catalog: &Catalog,
    out: &mut Vec<DeckySpec>,
) -> Result<(), FleetError> {
    if !is_valid_name(&section.name) {
        return Err(FleetError::new(
            Location::line(section.line),
            ErrorKind::BadName(section.name.clone()),
        ));
    }
    let mut base = DeckySpec {
        name: section.name.clone(),
        line: Some(section.line),
        ..DeckySpec::default()
    };
    let mut amount = 1u32;
    let mut hostname_line = None;
    for entry in &section.entries {
        single_line(section, entry)?;
        let value = entry.value.as_str();
        match entry.key.as_str() {
            "ip" => {
                let ip = value.parse::<Ipv4Addr>().map_err(|_| {
                    invalid(section, entry, "IP address", "expected an IPv4 address")
                })?;
                base.ip = Some((ip, Some(entry.line)));
            }
            "services" => {
                let mut list: Vec<String> = Vec::new();
                for slug in value
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    catalog.resolve(slug).map_err(|e| {
                        let kind = match e {
                            CatalogError::FleetSingleton(s) => ErrorKind::FleetSingleton(s),
                            _ => unknown_service(catalog, slug),
                        };
                        FleetError::new(loc(section, entry), kind)
                    })?;
                    if list.iter().any(|s| s == slug) {
                        return Err(FleetError::new(
                            loc(section, entry),
                            ErrorKind::DuplicateService(slug.to_owned()),
                        ));
                    }
                    list.push(slug.to_owned());
                }
                if list.is_empty() {
                    return Err(invalid(
                        section,
                        entry,
                        "service list",
                        "name at least one service",
                    ));
                }
                base.services = Some(list);
                base.services_line = Some(entry.line);
            }
            "archetype" => {
                base.archetype = Some(archetype(value).ok_or_else(|| {
                    FleetError::new(
                        loc(section, entry),
                        ErrorKind::UnknownArchetype {
                            slug: value.to_owned(),
                            known: archetype_slugs().join(", "),
                        },
                    )
                })?);
            }
            "nmap_os" | "nmap-os" => {
                base.os = Some(OsFamily::parse(value).ok_or_else(|| {
                    FleetError::new(loc(section, entry), ErrorKind::UnknownOs(value.to_owned()))
                })?);
            }
            "distro" => {
                base.distro = Some(distro(value).ok_or_else(|| {
                    FleetError::new(
                        loc(section, entry),
                        ErrorKind::UnknownDistro {
                            slug: value.to_owned(),
                            known: distro_slugs().join(", "),
                        },
                    )
                })?);
            }
            "hostname" => {
                if !crate::hostname::is_valid(value) {
                    return Err(invalid(
                        section,
                        entry,
                        "hostname",
                        "expected an RFC 1123 host name",
                    ));
                }
                base.hostname = Some(value.to_owned());
                hostname_line = Some(entry.line);
            }
            "mutate_interval" | "mutate-interval" => {
                base.mutate_interval = Some(minutes(section, entry)?);
            }
            "amount" => {
                amount = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        FleetError::new(
                            loc(section, entry),
                            ErrorKind::AmountOutOfRange(value.into()),
                        )
                    })?;
            }
            _ => {
                return Err(FleetError::new(
                    loc(section, entry),
                    ErrorKind::UnknownKey(DECKY_KEYS.into()),
                ));
            }
        }
    }
    if amount > 1 {
        if let Some((_, line)) = base.ip {
            return Err(FleetError::new(
                Location::at(line, &section.name, Some("ip")),
                ErrorKind::AmountWithIp,
            ));
        }
        if base.hostname.is_some() {
            return Err(FleetError::new(
                Location::at(hostname_line, &section.name, Some("hostname")),
                ErrorKind::Conflict(
                    "`amount` cannot be combined with a fixed `hostname`; hosts need their own"
                        .into(),
                ),
            ));
        }
        for n in 1..=amount {
            let name = format!("{}-{n:02}", section.name);
            if !is_valid_name(&name) {
                return Err(FleetError::new(
                    Location::line(section.line),
                    ErrorKind::BadName(name),
                ));
            }
            out.push(DeckySpec {
                name,
                ..base.clone()
            });
        }
    } else {
        out.push(base);
    }
    Ok(())
}

fn custom_service(section: &Section, slug: &str) -> Result<CustomService, FleetError> {
    let here = |key: Option<&str>, line: usize| Location::at(Some(line), &section.name, key);
    if slug.is_empty()
        || slug.len() > 32
        || !slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        || !slug.as_bytes()[0].is_ascii_alphanumeric()
    {
        return Err(FleetError::new(
            here(None, section.line),
            ErrorKind::Custom(format!(
                "name `{slug}` must be 1-32 characters of a-z 0-9 _ - starting with a letter or digit"
            )),
        ));
    }
    let mut service = CustomService {
        slug: slug.to_owned(),
        image: String::new(),
        exec: Vec::new(),
        ports: Vec::new(),
        caps: None,
        read_only: true,
    };
    for entry in &section.entries {
        single_line(section, entry)?;
        let value = entry.value.as_str();
        match entry.key.as_str() {
            "binary" | "image" => {
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err(invalid(
                        section,
                        entry,
                        "image",
                        "expected an image reference such as repo/name:tag",
                    ));
                }
                service.image = value.to_owned();
            }
            "exec" => service.exec = value.split_whitespace().map(str::to_owned).collect(),
            "ports" => {
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (num, udp) = match item.split_once('/') {
                        Some((n, "udp")) => (n, true),
                        Some((n, "tcp")) => (n, false),
                        Some(_) => {
                            return Err(invalid(
                                section,
                                entry,
                                "port",
                                "protocol must be tcp or udp",
                            ));
                        }
                        None => (item, false),
                    };
                    let number = num.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                        invalid(
                            section,
                            entry,
                            "port",
                            "ports are 1-65535, e.g. 9100 or 161/udp",
                        )
                    })?;
                    service.ports.push(if udp {
                        Port::udp(number)
                    } else {
                        Port::tcp(number)
                    });
                }
            }
            "caps" => {
                let caps: Vec<String> = value
                    .split(',')
                    .map(|c| c.trim().trim_start_matches("CAP_").to_ascii_uppercase())
                    .filter(|c| !c.is_empty())
                    .collect();
                // Capabilities that hand the container the host are never granted to a
                // service an attacker talks to.
                const FORBIDDEN: [&str; 7] = [
                    "ALL",
                    "SYS_ADMIN",
                    "SYS_MODULE",
                    "SYS_PTRACE",
                    "SYS_RAWIO",
                    "DAC_READ_SEARCH",
                    "BPF",
                ];
                if let Some(bad) = caps.iter().find(|c| FORBIDDEN.contains(&c.as_str())) {
                    return Err(invalid(
                        section,
                        entry,
                        "capability list",
                        format!("{bad} would give an attacker-facing container the host"),
                    ));
                }
                if caps
                    .iter()
                    .any(|c| !c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
                {
                    return Err(invalid(
                        section,
                        entry,
                        "capability list",
                        "expected names such as NET_BIND_SERVICE",
                    ));
                }
                service.caps = Some(caps);
            }
            "read_only" => {
                service.read_only = parse_bool(value).ok_or_else(|| {
                    invalid(section, entry, "read_only", "expected true or false")
                })?;
            }
            _ => {
                return Err(FleetError::new(
                    here(Some(&entry.key), entry.line),
                    ErrorKind::UnknownKey(CUSTOM_KEYS.into()),
                ));
            }
        }
    }
    if service.image.is_empty() {
        return Err(FleetError::new(
            here(Some("binary"), section.line),
            ErrorKind::Custom("`binary` (the image to run) is required".into()),
        ));
    }
    Ok(service)
}
