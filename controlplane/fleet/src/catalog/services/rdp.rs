//! rdp: X.224 connection confirm and CredSSP/NLA negotiation capture.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "rdp",
    summary: "Remote Desktop listener logging connection requests and cookies",
    ports: &[Port::tcp(3389)],
    persona: &[],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
