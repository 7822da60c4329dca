//! mysql: real handshake; captures the user and the scrambled password for offline cracking.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "mysql",
    summary: "MySQL server handshake capturing user and auth response",
    ports: &[Port::tcp(3306)],
    persona: &[PersonaKey {
        key: "version",
        env: "MYSQL_VERSION",
        kind: ValueKind::Text,
        default: Some("5.7.38-log"),
        doc: "Server version string in the greeting.",
    }],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
