//! sniffer: the fleet-wide passive capture (the dataplane); never placed inside a decky.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "sniffer",
    summary: "fleet-wide passive capture and fingerprinting on the appliance",
    ports: &[],
    persona: &[],
    fleet_singleton: true,
    extra_caps: &[],
    mem_limit_mb: 0,
};
