//! mongodb: OP_MSG/OP_QUERY hello answers and command logging.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "mongodb",
    summary: "MongoDB server answering hello/isMaster and logging commands",
    ports: &[Port::tcp(27017)],
    persona: &[PersonaKey {
        key: "version",
        env: "MONGO_VERSION",
        kind: ValueKind::Text,
        default: Some("6.0.5"),
        doc: "Server version reported by buildInfo.",
    }],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
