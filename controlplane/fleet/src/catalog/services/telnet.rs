//! telnet: a busybox/login style telnet server with the same emulated shell as ssh.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "telnet",
    summary: "telnet login prompt and emulated shell",
    ports: &[Port::tcp(23)],
    persona: &[
        PersonaKey {
            key: "password",
            env: "TELNET_ROOT_PASSWORD",
            kind: ValueKind::Text,
            default: None,
            doc: "Password that opens a root shell (in addition to `users`).",
        },
        PersonaKey {
            key: "users",
            env: "TELNET_USERS",
            kind: ValueKind::Credentials,
            default: None,
            doc: "Accounts that log in, as user:password pairs.",
        },
        PersonaKey {
            key: "hostname",
            env: "TELNET_HOSTNAME",
            kind: ValueKind::Text,
            default: None,
            doc: "Hostname shown in the login prompt (default: the decky's hostname).",
        },
        PersonaKey {
            key: "banner",
            env: "TELNET_BANNER",
            kind: ValueKind::Text,
            default: None,
            doc: "Line printed before `login:` (default follows the distro's /etc/issue.net).",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 96,
};
