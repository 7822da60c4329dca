//! sip: SIP registrar persona answering with Digest challenges.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "sip",
    summary: "SIP registrar (UDP and TCP) capturing REGISTER/INVITE and digest responses",
    ports: &[Port::udp(5060), Port::tcp(5060)],
    persona: &[
        PersonaKey {
            key: "user_agent",
            env: "SIP_USER_AGENT",
            kind: ValueKind::Text,
            default: Some("Asterisk PBX 18.20.0"),
            doc: "User-Agent / Server header of replies.",
        },
        PersonaKey {
            key: "realm",
            env: "SIP_REALM",
            kind: ValueKind::Text,
            default: None,
            doc: "Digest realm (default: the decky's hostname).",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 32,
};
