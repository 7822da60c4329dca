//! smtp: a Postfix persona that harvests AUTH credentials and refuses to relay.
use crate::catalog::prelude::*;

/// Persona keys shared by `smtp` and `smtp_relay`.
pub(crate) const SMTP_KEYS: [PersonaKey; 2] = [
    PersonaKey {
        key: "banner",
        env: "SMTP_BANNER",
        kind: ValueKind::Text,
        default: None,
        doc: "Greeting line (default `220 <hostname> ESMTP Postfix (Debian/GNU)`).",
    },
    PersonaKey {
        key: "mta",
        env: "SMTP_MTA",
        kind: ValueKind::Text,
        default: None,
        doc: "Host name the server gives in its replies (default: the decky's hostname).",
    },
];

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "smtp",
    summary: "Postfix persona capturing AUTH PLAIN/LOGIN, relay denied",
    ports: &[Port::tcp(25), Port::tcp(587)],
    persona: &SMTP_KEYS,
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
