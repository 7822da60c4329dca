//! What the user asked for: a fleet specification from an INI file or from CLI flags, before
//! planning assigns addresses, distros, hostnames and MACs.

use std::net::Ipv4Addr;

use indexmap::IndexMap;
use ipnet::Ipv4Net;

use crate::{archetype::Archetype, catalog::Catalog, distro::Distro, os::OsFamily};

/// Network settings of the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// Parent interface of the MACVLAN/IPvlan network.
    pub interface: Option<String>,
    /// First address to hand out (default: the subnet's first host).
    pub ip_start: Option<Ipv4Addr>,
    /// The appliance's own addresses on that LAN, never handed out.
    pub host_ips: Vec<Ipv4Addr>,
    pub ipvlan: bool,
}

/// Persona settings for one service of one host (an INI `[host.slug]` subsection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonaSpec {
    /// Line of the subsection header, if it came from a file.
    pub line: Option<usize>,
    /// Name of that subsection (`web.ssh`), for errors.
    pub section: Option<String>,
    /// Key → (value, line).
    pub values: IndexMap<String, (String, Option<usize>)>,
}

/// One requested host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeckySpec {
    pub name: String,
    /// Line of the section that defined it, if any.
    pub line: Option<usize>,
    pub ip: Option<(Ipv4Addr, Option<usize>)>,
    /// Explicit services; `None` means archetype or random.
    pub services: Option<Vec<String>>,
    /// Line of the `services` key, for errors about the list.
    pub services_line: Option<usize>,
    pub archetype: Option<&'static Archetype>,
    pub os: Option<OsFamily>,
    pub distro: Option<&'static Distro>,
    pub hostname: Option<String>,
    /// Minutes between mutations; `Some(0)` disables mutation for this host.
    pub mutate_interval: Option<u32>,
    /// Service slug → persona.
    pub persona: IndexMap<String, PersonaSpec>,
}

/// A whole fleet request.
#[derive(Debug, Clone, Default)]
pub struct FleetSpec {
    pub network: NetworkSpec,
    /// Fleet-wide default minutes between mutations.
    pub mutate_interval: Option<u32>,
    /// Remote syslog target (`host:port`) every service also sends its events to.
    pub log_target: Option<String>,
    pub deckies: Vec<DeckySpec>,
    /// Built-in services plus the configuration's custom ones.
    pub catalog: Catalog,
}

/// Longest host name, including the `-NN` an `amount` expansion adds.
pub const MAX_NAME_LEN: usize = 128;

/// Whether `name` is a valid host (section) name: what Docker accepts as a container name
/// (`[A-Za-z0-9][A-Za-z0-9_.-]+`) within the original's 128-character limit.
pub fn is_valid_name(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= MAX_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
