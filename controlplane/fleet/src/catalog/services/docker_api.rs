//! docker_api: an exposed Docker Engine API persona.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "docker_api",
    summary: "exposed Docker Engine API persona logging every call",
    ports: &[Port::tcp(2375), Port::tcp(2376)],
    persona: &[PersonaKey {
        key: "version",
        env: "DOCKER_VERSION",
        kind: ValueKind::Text,
        default: Some("24.0.5"),
        doc: "Engine version reported by /version.",
    }],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 64,
};
