//! The plugin contract every service satisfies.

use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;

/// Transport protocol of a listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// A port a service binds inside its decky.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Port {
    pub number: u16,
    pub transport: Transport,
}

impl Port {
    pub const fn tcp(number: u16) -> Self {
        Self {
            number,
            transport: Transport::Tcp,
        }
    }

    pub const fn udp(number: u16) -> Self {
        Self {
            number,
            transport: Transport::Udp,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        };
        write!(f, "{}/{proto}", self.number)
    }
}

/// What values a persona key accepts; checked when the INI is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Any single-line text.
    Text,
    /// An integer in an inclusive range.
    Int { min: i64, max: i64 },
    /// `true`/`false` (also yes/no, on/off, 1/0).
    Bool,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
    /// A JSON document (object or array).
    Json,
    /// Comma-separated `user:password` pairs.
    Credentials,
    /// A directory on the appliance, mounted read-only into the container at `mount`.
    HostDir { mount: &'static str },
    /// A file on the appliance, mounted read-only into the container at `mount`.
    HostFile { mount: &'static str },
}

impl ValueKind {
    /// Check `value`; the error says what was expected.
    pub fn check(&self, value: &str) -> Result<(), String> {
        match self {
            Self::Text => {
                if value.contains(['\n', '\r', '\0']) {
                    Err("expected a single line of text".into())
                } else {
                    Ok(())
                }
            }
            Self::Int { min, max } => match value.trim().parse::<i64>() {
                Ok(n) if (*min..=*max).contains(&n) => Ok(()),
                _ => Err(format!("expected a whole number from {min} to {max}")),
            },
            Self::Bool => parse_bool(value)
                .map(|_| ())
                .ok_or_else(|| "expected true or false".into()),
            Self::OneOf(words) => {
                if words.contains(&value.trim()) {
                    Ok(())
                } else {
                    Err(format!("expected one of: {}", words.join(", ")))
                }
            }
            Self::Json => match serde_json::from_str::<serde_json::Value>(value) {
                Ok(serde_json::Value::Object(_) | serde_json::Value::Array(_)) => Ok(()),
                _ => Err("expected a JSON object or array".into()),
            },
            Self::Credentials => {
                let ok = value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .all(|pair| {
                        pair.split_once(':')
                            .is_some_and(|(u, p)| !u.is_empty() && !p.is_empty())
                    });
                if ok && !value.trim().is_empty() {
                    Ok(())
                } else {
                    Err("expected comma-separated user:password pairs".into())
                }
            }
            Self::HostDir { .. } | Self::HostFile { .. } => {
                if !value.starts_with('/') || value.contains(['\n', '\0', ':']) {
                    return Err("expected an absolute path on this appliance (no ':')".into());
                }
                // These end up mounted into a container an attacker is talking to: system
                // trees and runtime sockets (docker.sock!) must never be among them.
                let system = [
                    "/proc", "/sys", "/dev", "/etc", "/run", "/var/run", "/boot", "/root",
                ];
                let trimmed = value.trim_end_matches('/');
                let denied = trimmed.is_empty()
                    || value.split('/').any(|part| part == "..")
                    || value.ends_with(".sock")
                    || system
                        .iter()
                        .any(|d| trimmed == *d || trimmed.starts_with(&format!("{d}/")));
                if denied {
                    Err(
                        "refusing to mount a system directory, a socket or `..` into a service; \
                         use a directory of your own such as /srv/persona/web01"
                            .into(),
                    )
                } else {
                    Ok(())
                }
            }
        }
    }

    /// A short human description for `decnet services --json` and the docs.
    pub fn describe(&self) -> String {
        match self {
            Self::Text => "text".into(),
            Self::Int { min, max } => format!("integer {min}..={max}"),
            Self::Bool => "bool".into(),
            Self::OneOf(words) => format!("one of {}", words.join("|")),
            Self::Json => "json".into(),
            Self::Credentials => "user:password list".into(),
            Self::HostDir { mount } => format!("host directory (mounted at {mount})"),
            Self::HostFile { mount } => format!("host file (mounted at {mount})"),
        }
    }
}

/// Parse the boolean spellings configparser accepts.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// One persona setting a service reads, as written in an INI `[decky.slug]` subsection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonaKey {
    /// Key in the INI subsection.
    pub key: &'static str,
    /// Environment variable it becomes in the service container.
    pub env: &'static str,
    pub kind: ValueKind,
    /// Value used when the INI does not set it (`None`: the emulator's own per-distro default).
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

/// Where a service's container image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// Built locally from `templates/<slug>/` around the static emulator binary; no registry.
    Emulator,
    /// A pre-built image that must already be present (custom services).
    Prebuilt(String),
}

/// A built-in service: one file in `catalog/services/`.
#[derive(Debug)]
pub struct ServiceDef {
    pub slug: &'static str,
    /// One line: what an attacker sees.
    pub summary: &'static str,
    pub ports: &'static [Port],
    pub persona: &'static [PersonaKey],
    /// Runs once per fleet on the appliance itself, never inside a decky.
    pub fleet_singleton: bool,
    /// Capabilities beyond `NET_BIND_SERVICE` (added automatically for ports below 1024).
    pub extra_caps: &'static [&'static str],
    /// Memory limit of the service container, in MiB.
    pub mem_limit_mb: u32,
}

impl ServiceDef {
    /// Tag of the locally built emulator image for this service.
    pub fn image_tag(&self) -> String {
        format!("{}/{}:latest", crate::IMAGE_NAMESPACE, self.slug)
    }
}

/// What a fragment builder knows about the decky it is placed in.
#[derive(Debug, Clone, Copy)]
pub struct FragmentContext<'a> {
    pub decky: &'a str,
    pub hostname: &'a str,
    pub distro: &'a str,
    pub os_family: &'a str,
    /// Validated persona values from the INI, keyed by persona key.
    pub persona: &'a IndexMap<String, String>,
}

/// The service-specific part of a container definition; the composer adds networking,
/// naming, labels, logging and the common hardening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceFragment {
    pub image: String,
    /// Command override; empty keeps the image's entrypoint arguments.
    pub command: Vec<String>,
    pub environment: IndexMap<String, String>,
    pub cap_add: Vec<String>,
    pub read_only: bool,
    pub mem_limit_mb: u32,
    pub pids_limit: u32,
    /// `host:container:ro` bind mounts.
    pub volumes: Vec<String>,
}

/// The plugin contract: a built-in [`ServiceDef`] or a runtime custom service.
pub trait ServicePlugin: fmt::Debug + Send + Sync {
    fn slug(&self) -> &str;
    fn summary(&self) -> &str;
    fn ports(&self) -> &[Port];
    fn image(&self) -> ImageSource;
    fn fleet_singleton(&self) -> bool;
    /// The persona keys an INI subsection may set, with their documentation.
    fn persona_keys(&self) -> &[PersonaKey];
    /// Whether this is a bring-your-own-service image.
    fn is_custom(&self) -> bool {
        false
    }
    /// The service-specific container definition for one decky.
    fn compose_fragment(&self, ctx: &FragmentContext<'_>) -> ServiceFragment;
}

/// Environment every service container gets: who it is and what it pretends to be.
pub(crate) fn base_env(ctx: &FragmentContext<'_>) -> IndexMap<String, String> {
    let mut env = IndexMap::new();
    env.insert("NODE_NAME".to_owned(), ctx.decky.to_owned());
    env.insert("HOSTNAME".to_owned(), ctx.hostname.to_owned());
    env.insert("DISTRO".to_owned(), ctx.distro.to_owned());
    env.insert("OS_FAMILY".to_owned(), ctx.os_family.to_owned());
    if let Some(distro) = crate::distro::distro(ctx.distro) {
        env.insert("KERNEL".to_owned(), distro.kernel.to_owned());
    }
    env
}

/// `NET_BIND_SERVICE` when any port is privileged, plus the service's own extras.
pub(crate) fn default_caps(ports: &[Port], extra: &[&str]) -> Vec<String> {
    let mut caps = Vec::new();
    if ports.iter().any(|p| p.number < 1024) {
        caps.push("NET_BIND_SERVICE".to_owned());
    }
    for cap in extra {
        if !caps.iter().any(|c| c == cap) {
            caps.push((*cap).to_owned());
        }
    }
    caps
}

impl ServicePlugin for ServiceDef {
    fn slug(&self) -> &str {
        self.slug
    }

    fn summary(&self) -> &str {
        self.summary
    }

    fn ports(&self) -> &[Port] {
        self.ports
    }

    fn image(&self) -> ImageSource {
        ImageSource::Emulator
    }

    fn fleet_singleton(&self) -> bool {
        self.fleet_singleton
    }

    fn persona_keys(&self) -> &[PersonaKey] {
        self.persona
    }

    fn compose_fragment(&self, ctx: &FragmentContext<'_>) -> ServiceFragment {
        let mut environment = base_env(ctx);
        let mut volumes = Vec::new();
        for key in self.persona {
            let value = ctx.persona.get(key.key).map(String::as_str).or(key.default);
            let Some(value) = value else { continue };
            match key.kind {
                ValueKind::HostDir { mount } | ValueKind::HostFile { mount } => {
                    volumes.push(format!("{value}:{mount}:ro"));
                    environment.insert(key.env.to_owned(), mount.to_owned());
                }
                _ => {
                    environment.insert(key.env.to_owned(), value.to_owned());
                }
            }
        }
        ServiceFragment {
            image: self.image_tag(),
            command: vec!["serve".to_owned(), self.slug.to_owned()],
            environment,
            cap_add: default_caps(self.ports, self.extra_caps),
            read_only: true,
            mem_limit_mb: self.mem_limit_mb,
            pids_limit: 128,
            volumes,
        }
    }
}
