//! postgres: StartupMessage parsing and MD5 password challenge capture.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "postgres",
    summary: "PostgreSQL server capturing startup parameters and MD5 responses",
    ports: &[Port::tcp(5432)],
    persona: &[PersonaKey {
        key: "version",
        env: "PG_VERSION",
        kind: ValueKind::Text,
        default: Some("15.8"),
        doc: "server_version reported to clients.",
    }],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
