//! snmp: v1/v2c agent serving the system group per persona.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "snmp",
    summary: "SNMP v1/v2c agent (system group per persona) logging communities",
    ports: &[Port::udp(161)],
    persona: &[
        PersonaKey {
            key: "archetype",
            env: "SNMP_ARCHETYPE",
            kind: ValueKind::OneOf(&["default", "water_plant", "factory", "substation", "hospital"]),
            default: Some("default"),
            doc: "Device the system group describes (the original could not set this).",
        },
        PersonaKey {
            key: "community",
            env: "SNMP_COMMUNITY",
            kind: ValueKind::Text,
            default: Some("public"),
            doc: "Community string that gets answers.",
        },
        PersonaKey {
            key: "sys_descr",
            env: "SNMP_SYSDESCR",
            kind: ValueKind::Text,
            default: None,
            doc: "sysDescr override (default follows the archetype and distro).",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 32,
};
