//! The one error type of fleet configuration and planning, located at the input that caused it.

use std::fmt;

/// Where in the user's input an error sits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based line of the INI file, when the input came from one.
    pub line: Option<usize>,
    /// INI section (or decky name for command-line fleets).
    pub section: Option<String>,
    /// Key within the section, or the command-line flag.
    pub key: Option<String>,
}

impl Location {
    pub fn line(line: usize) -> Self {
        Self {
            line: Some(line),
            ..Self::default()
        }
    }

    pub fn at(line: Option<usize>, section: &str, key: Option<&str>) -> Self {
        Self {
            line,
            section: Some(section.to_owned()),
            key: key.map(str::to_owned),
        }
    }

    pub fn none() -> Self {
        Self::default()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        match (&self.section, &self.key) {
            (Some(s), Some(k)) => write!(f, "[{s}] {k}: "),
            (Some(s), None) => write!(f, "[{s}]: "),
            (None, Some(k)) => write!(f, "{k}: "),
            (None, None) => Ok(()),
        }
    }
}

/// What was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("the file is {size} bytes; configuration files are limited to {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the file is not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("the file has no sections; start with [general] or a decky section")]
    Empty,
    #[error("`{0}` is outside any section; put it under a [section] header")]
    KeyOutsideSection(String),
    #[error("expected `key = value`, found {0:?}")]
    NotKeyValue(String),
    #[error("malformed section header {0:?}; expected [name]")]
    BadHeader(String),
    #[error("section defined twice (first at line {0})")]
    DuplicateSection(usize),
    #[error("key set twice in this section (first at line {0})")]
    DuplicateKey(usize),
    #[error("[DEFAULT] sections are not supported; set values per section or in [general]")]
    DefaultSection,
    #[error("unknown key; this section accepts: {0}")]
    UnknownKey(String),
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: String,
    },
    #[error("invalid name {0:?}: use 1-128 characters from A-Z a-z 0-9 - _ . (and no leading dot)")]
    BadName(String),
    #[error("amount {0} is out of range; use 1 to 100")]
    AmountOutOfRange(String),
    #[error("`amount` cannot be combined with `ip`; give each host its own section instead")]
    AmountWithIp,
    #[error("unknown service `{slug}`; known services: {known}")]
    UnknownService { slug: String, known: String },
    #[error("service `{0}` runs once per fleet on the appliance and cannot be placed on a host")]
    FleetSingleton(String),
    #[error("service `{0}` is listed twice")]
    DuplicateService(String),
    #[error("services `{a}` and `{b}` both bind {port}; a host can run only one of them")]
    PortClash { a: String, b: String, port: String },
    #[error("unknown archetype `{slug}`; known archetypes: {known}")]
    UnknownArchetype { slug: String, known: String },
    #[error("unknown distro `{slug}`; known distros: {known}")]
    UnknownDistro { slug: String, known: String },
    #[error("unknown OS family `{0}`; use linux, windows, windows_server, bsd, embedded or cisco")]
    UnknownOs(String),
    #[error("subsection names no host: no section or group called `{0}`")]
    OrphanSubsection(String),
    #[error("`{0}` is not a service of this host; add it to `services` or remove the subsection")]
    ServiceNotOnHost(String),
    #[error("unknown persona key for `{service}`; it accepts: {known}")]
    UnknownPersonaKey { service: String, known: String },
    #[error("custom service `{0}` takes no persona keys")]
    CustomHasNoPersona(String),
    #[error("custom service: {0}")]
    Custom(String),
    #[error("duplicate host name `{name}` (also defined at {other})")]
    DuplicateName { name: String, other: String },
    #[error("no subnet: set `net` in [general] or pass --subnet")]
    NoSubnet,
    #[error("{ip} is outside the subnet {subnet}")]
    IpOutsideSubnet { ip: String, subnet: String },
    #[error("{ip} is {role} and cannot be given to a host")]
    IpReserved { ip: String, role: &'static str },
    #[error("{ip} is already assigned to `{other}`")]
    DuplicateIp { ip: String, other: String },
    #[error(
        "subnet {subnet} is too small: {needed} addresses needed from {start}, only {available} \
         free; use a larger subnet, an earlier --ip-start or fewer hosts"
    )]
    SubnetTooSmall {
        subnet: String,
        start: String,
        needed: usize,
        available: usize,
    },
    #[error("no services: pass --services, --archetype or --randomize-services (or use --config)")]
    NoServiceSource,
    #[error("{0}")]
    Conflict(String),
}

/// A configuration or planning error, with the place in the input it refers to.
///
/// Boxed so that `Result<_, FleetError>` stays one pointer wide on the happy path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", .0.location, .0.kind)]
pub struct FleetError(Box<Located>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Located {
    location: Location,
    kind: ErrorKind,
}

impl FleetError {
    pub fn new(location: Location, kind: ErrorKind) -> Self {
        Self(Box::new(Located { location, kind }))
    }

    pub fn location(&self) -> &Location {
        &self.0.location
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The INI line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        self.0.location.line
    }
}
