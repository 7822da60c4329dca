//! conpot: industrial control protocols (Modbus/TCP, S7comm, EtherNet/IP).
//!
//! Unlike the original (which wrapped upstream conpot and so also opened HTTP and SNMP), the
//! web and SNMP faces of an ICS decky come from the `http` and `snmp` services, so the
//! `industrial-control` archetype (conpot + snmp) binds every port exactly once.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "conpot",
    summary: "PLC persona: Modbus/TCP, Siemens S7comm, EtherNet/IP",
    ports: &[Port::tcp(502), Port::tcp(102), Port::tcp(44818)],
    persona: &[PersonaKey {
        key: "template",
        env: "CONPOT_TEMPLATE",
        kind: ValueKind::OneOf(&["default", "water_plant", "factory", "substation"]),
        default: Some("default"),
        doc: "Device model the PLC registers and identification strings describe.",
    }],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
