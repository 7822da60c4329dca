//! ssh: an OpenSSH server persona with an emulated interactive shell.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "ssh",
    summary: "OpenSSH server with an emulated shell, SFTP/SCP upload capture",
    ports: &[Port::tcp(22)],
    persona: &[
        PersonaKey {
            key: "password",
            env: "SSH_ROOT_PASSWORD",
            kind: ValueKind::Text,
            default: None,
            doc: "Password that opens a root shell (in addition to `users`).",
        },
        PersonaKey {
            key: "users",
            env: "SSH_USERS",
            kind: ValueKind::Credentials,
            default: None,
            doc: "Accounts that log in, as user:password pairs.",
        },
        PersonaKey {
            key: "accept_after",
            env: "SSH_ACCEPT_AFTER",
            kind: ValueKind::Int { min: 0, max: 100 },
            default: None,
            doc: "Accept any password after this many failed attempts (0 = only listed creds).",
        },
        PersonaKey {
            key: "version",
            env: "SSH_VERSION",
            kind: ValueKind::Text,
            default: None,
            doc: "Server banner, e.g. `OpenSSH_9.2p1 Debian-2+deb12u3` (default follows the distro).",
        },
        PersonaKey {
            key: "hostname",
            env: "SSH_HOSTNAME",
            kind: ValueKind::Text,
            default: None,
            doc: "Hostname the shell prompt shows (default: the decky's hostname).",
        },
        PersonaKey {
            key: "kernel",
            env: "SSH_KERNEL",
            kind: ValueKind::Text,
            default: None,
            doc: "Kernel release `uname -r` prints (default follows the distro).",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 128,
};
