//! ldap: BER LDAP with bind capture and a plausible rootDSE.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "ldap",
    summary: "directory server capturing simple binds",
    ports: &[Port::tcp(389), Port::tcp(636)],
    persona: &[PersonaKey {
        key: "base_dn",
        env: "LDAP_BASE_DN",
        kind: ValueKind::Text,
        default: Some("dc=corp,dc=local"),
        doc: "Naming context the rootDSE announces.",
    }],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
