//! vnc: RFB 3.8 with VNC authentication, logging the DES challenge response.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "vnc",
    summary: "VNC server (RFB 003.008) capturing authentication responses",
    ports: &[Port::tcp(5900)],
    persona: &[PersonaKey {
        key: "desktop_name",
        env: "VNC_DESKTOP",
        kind: ValueKind::Text,
        default: None,
        doc: "Desktop name sent after authentication (default: the decky's hostname).",
    }],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 32,
};
