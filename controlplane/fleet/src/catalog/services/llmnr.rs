//! llmnr: passive detector of Responder-style LLMNR/mDNS name queries; never answers.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "llmnr",
    summary: "passive LLMNR/mDNS query logger (poisoning detection)",
    ports: &[Port::udp(5355), Port::udp(5353)],
    persona: &[],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 32,
};
