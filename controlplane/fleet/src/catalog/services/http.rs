//! http: an Apache/nginx/IIS web server persona that logs every request.
use crate::catalog::prelude::*;

/// Persona keys shared by `http` and `https`.
pub(crate) const HTTP_KEYS: [PersonaKey; 6] = [
    PersonaKey {
        key: "server_header",
        env: "SERVER_HEADER",
        kind: ValueKind::Text,
        default: None,
        doc: "`Server:` response header; the error pages follow the product it names (default: the distro's stock Apache, IIS 10 on Windows personas).",
    },
    PersonaKey {
        key: "response_code",
        env: "RESPONSE_CODE",
        kind: ValueKind::Int { min: 100, max: 599 },
        default: Some("403"),
        doc: "Status of the default reply for unknown paths.",
    },
    PersonaKey {
        key: "fake_app",
        env: "SITE_APP",
        kind: ValueKind::OneOf(&[
            "apache_default",
            "nginx_default",
            "iis_default",
            "wordpress",
            "phpmyadmin",
            "login_form",
        ]),
        default: None,
        doc: "Application the site pretends to host.",
    },
    PersonaKey {
        key: "extra_headers",
        env: "EXTRA_HEADERS",
        kind: ValueKind::Json,
        default: None,
        doc: "JSON object of extra response headers.",
    },
    PersonaKey {
        key: "custom_body",
        env: "CUSTOM_BODY",
        kind: ValueKind::Text,
        default: None,
        doc: "Body served for `/` instead of the fake app's page.",
    },
    PersonaKey {
        key: "files",
        env: "FILES_DIR",
        kind: ValueKind::HostDir { mount: "/srv/www" },
        default: None,
        doc: "Directory of static files served as they are.",
    },
];

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "http",
    summary: "web server (Apache/nginx/IIS persona) logging every request",
    ports: &[Port::tcp(80)],
    persona: &HTTP_KEYS,
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 96,
};
