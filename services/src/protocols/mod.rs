//! The protocols the `decky` binary can serve, by service slug.

use std::sync::Arc;

use crate::{persona::Persona, runtime::Protocol};

pub mod banner;
pub mod ftp;
pub mod http;
pub mod imap;
pub mod line;
pub mod mailbox;
pub mod mysql;
pub mod pop3;
pub mod redis;
pub mod sasl;
pub mod smtp;
pub mod telnet;

/// Slugs this build emulates.
pub const AVAILABLE: &[&str] = &[
    "ftp",
    "http",
    "imap",
    "mysql",
    "pop3",
    "redis",
    "smtp",
    "smtp_relay",
    "telnet",
];

/// The protocol of `slug` configured from `persona`, if this build emulates it.
pub fn lookup(slug: &str, persona: &Persona) -> Option<Arc<dyn Protocol>> {
    Some(match slug {
        "ftp" => Arc::new(ftp::Ftp::from_persona(persona)),
        "http" => Arc::new(http::Http::from_persona(persona)),
        "imap" => Arc::new(imap::Imap::from_persona(persona)),
        "mysql" => Arc::new(mysql::Mysql::from_persona(persona)),
        "pop3" => Arc::new(pop3::Pop3::from_persona(persona)),
        "redis" => Arc::new(redis::Redis::from_persona(persona)),
        "smtp" => Arc::new(smtp::Smtp::from_persona(persona, false)),
        "smtp_relay" => Arc::new(smtp::Smtp::from_persona(persona, true)),
        "telnet" => Arc::new(telnet::Telnet::from_persona(persona)),
        _ => return None,
    })
}
