//! mssql: TDS pre-login and LOGIN7 capture.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "mssql",
    summary: "Microsoft SQL Server TDS endpoint capturing LOGIN7 credentials",
    ports: &[Port::tcp(1433)],
    persona: &[PersonaKey {
        key: "version",
        env: "MSSQL_VERSION",
        kind: ValueKind::Text,
        default: Some("15.0.2000"),
        doc: "Version announced in the pre-login response.",
    }],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
