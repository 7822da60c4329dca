//! https: the http persona behind TLS with a per-decky self-signed certificate.
use super::http::HTTP_KEYS;
use crate::catalog::prelude::*;

const KEYS: [PersonaKey; 9] = [
    HTTP_KEYS[0],
    HTTP_KEYS[1],
    HTTP_KEYS[2],
    HTTP_KEYS[3],
    HTTP_KEYS[4],
    HTTP_KEYS[5],
    PersonaKey {
        key: "tls_cert",
        env: "TLS_CERT",
        kind: ValueKind::HostFile { mount: "/etc/ssl/certs/server.pem" },
        default: None,
        doc: "PEM certificate to serve instead of the generated one.",
    },
    PersonaKey {
        key: "tls_key",
        env: "TLS_KEY",
        kind: ValueKind::HostFile { mount: "/etc/ssl/private/server.key" },
        default: None,
        doc: "PEM private key matching `tls_cert`.",
    },
    PersonaKey {
        key: "tls_cn",
        env: "TLS_CN",
        kind: ValueKind::Text,
        default: None,
        doc: "Common name of the generated certificate (default: the decky's hostname).",
    },
];

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "https",
    summary: "TLS web server with a self-signed default certificate",
    ports: &[Port::tcp(443)],
    persona: &KEYS,
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 96,
};
