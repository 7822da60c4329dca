//! redis: RESP server over bait keys; AUTH and every command logged.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "redis",
    summary: "Redis server with bait keys, AUTH and command capture",
    ports: &[Port::tcp(6379)],
    persona: &[
        PersonaKey {
            key: "version",
            env: "REDIS_VERSION",
            kind: ValueKind::Text,
            default: Some("7.2.7"),
            doc: "redis_version reported by INFO.",
        },
        PersonaKey {
            key: "os_string",
            env: "REDIS_OS",
            kind: ValueKind::Text,
            default: None,
            doc: "os line reported by INFO (default follows the distro's kernel).",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
