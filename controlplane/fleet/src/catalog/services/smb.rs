//! smb: SMB2 negotiation and NTLMSSP authentication capture.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "smb",
    summary: "Windows file sharing (SMB2, NetBIOS session), NTLM hash capture",
    ports: &[Port::tcp(445), Port::tcp(139)],
    persona: &[
        PersonaKey {
            key: "workgroup",
            env: "SMB_WORKGROUP",
            kind: ValueKind::Text,
            default: Some("WORKGROUP"),
            doc: "Workgroup or NetBIOS domain name announced in NTLM challenges.",
        },
        PersonaKey {
            key: "shares",
            env: "SMB_SHARES",
            kind: ValueKind::Text,
            default: None,
            doc: "Comma-separated share names offered to a logged-in client.",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 64,
};
