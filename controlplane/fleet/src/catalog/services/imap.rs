//! imap: a Dovecot persona with bait mailboxes.
use crate::catalog::prelude::*;

// The TLS port (993/995) joins when the emulator speaks TLS: a plain-text answer there would
// give the host away.

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "imap",
    summary: "Dovecot IMAP persona with bait mailboxes",
    ports: &[Port::tcp(143)],
    persona: &[
        PersonaKey {
            key: "banner",
            env: "IMAP_BANNER",
            kind: ValueKind::Text,
            default: None,
            doc: "Greeting text (default `Dovecot (Debian) ready.`).",
        },
        PersonaKey {
            key: "users",
            env: "IMAP_USERS",
            kind: ValueKind::Credentials,
            default: None,
            doc: "Accounts that log in, as user:password pairs.",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
