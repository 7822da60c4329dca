//! tftp: logs read and write requests, then answers "Access violation".
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "tftp",
    summary: "TFTP server logging RRQ/WRQ requests",
    ports: &[Port::udp(69)],
    persona: &[],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 32,
};
