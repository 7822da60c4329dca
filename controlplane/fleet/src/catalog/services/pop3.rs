//! pop3: a Dovecot POP3 persona over the same bait mailboxes as imap.
use crate::catalog::prelude::*;

// The TLS port (993/995) joins when the emulator speaks TLS: a plain-text answer there would
// give the host away.

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "pop3",
    summary: "Dovecot POP3 persona with bait mailboxes",
    ports: &[Port::tcp(110)],
    persona: &[
        PersonaKey {
            key: "banner",
            env: "POP3_BANNER",
            kind: ValueKind::Text,
            default: None,
            doc: "Greeting text (default `Dovecot (Debian) ready.`).",
        },
        PersonaKey {
            key: "users",
            env: "POP3_USERS",
            kind: ValueKind::Credentials,
            default: None,
            doc: "Accounts that log in, as user:password pairs.",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
