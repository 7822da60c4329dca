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
        PersonaKey {
            key: "hostkey_seed",
            env: "SSH_HOSTKEY_SEED",
            kind: ValueKind::Text,
            default: None,
            doc: "Seed the host keys derive from, so they survive restarts (default: the hostname).",
        },
        PersonaKey {
            key: "accept_keys",
            env: "SSH_ACCEPT_KEYS",
            kind: ValueKind::Bool,
            default: None,
            doc: "Log in anyone proving a public key (signature checked); default: keys are refused.",
        },
        PersonaKey {
            key: "kbd_interactive",
            env: "SSH_KBD_INTERACTIVE",
            kind: ValueKind::Bool,
            default: None,
            doc: "Also offer keyboard-interactive (one `Password:` prompt); Debian's default is off.",
        },
        PersonaKey {
            key: "upload_limit",
            env: "SSH_UPLOAD_LIMIT",
            kind: ValueKind::Int {
                min: 0,
                max: 1_073_741_824,
            },
            default: None,
            doc: "Bytes of SFTP/scp uploads kept per connection (default 64 MiB; the runtime's per-connection input cap also applies).",
        },
        PersonaKey {
            key: "templates",
            env: "SSH_TEMPLATE_DIR",
            kind: ValueKind::HostDir {
                mount: "/srv/persona",
            },
            default: None,
            doc: "Persona assets replacing the image's `templates/ssh/`: `motd.<distro>` or `motd`, and `files/` planted into the shell's filesystem.",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 128,
};
