//! k8s: Kubernetes API server persona (TLS on 6443, plain HTTP on 8080).
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "k8s",
    summary: "Kubernetes API server persona (version, namespaces, pods, secrets)",
    ports: &[Port::tcp(6443), Port::tcp(8080)],
    persona: &[PersonaKey {
        key: "version",
        env: "K8S_VERSION",
        kind: ValueKind::Text,
        default: Some("v1.28.4"),
        doc: "gitVersion reported by /version.",
    }],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 64,
};
