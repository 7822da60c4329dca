//! ftp: a vsftpd persona with anonymous access over bait files.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "ftp",
    summary: "vsftpd persona, anonymous and user login, upload capture",
    ports: &[Port::tcp(21)],
    persona: &[
        PersonaKey {
            key: "banner",
            env: "FTP_BANNER",
            kind: ValueKind::Text,
            default: None,
            doc: "Greeting line (default: the distro's stock vsftpd, e.g. `220 (vsFTPd 3.0.3)` on Debian).",
        },
        PersonaKey {
            key: "anonymous",
            env: "FTP_ANONYMOUS",
            kind: ValueKind::Bool,
            default: Some("true"),
            doc: "Whether anonymous login is allowed.",
        },
        PersonaKey {
            key: "users",
            env: "FTP_USERS",
            kind: ValueKind::Credentials,
            default: None,
            doc: "Accounts that log in, as user:password pairs.",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 64,
};
