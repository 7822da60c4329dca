//! elasticsearch: REST persona with cluster, nodes, cat and security endpoints.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "elasticsearch",
    summary: "Elasticsearch REST API persona logging recon and writes",
    ports: &[Port::tcp(9200)],
    persona: &[
        PersonaKey {
            key: "version",
            env: "ES_VERSION",
            kind: ValueKind::Text,
            default: Some("7.17.9"),
            doc: "version.number in the root document.",
        },
        PersonaKey {
            key: "cluster_name",
            env: "ES_CLUSTER",
            kind: ValueKind::Text,
            default: None,
            doc: "cluster_name in the root document (default derived from the hostname).",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 64,
};
