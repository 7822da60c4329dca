//! The protocols the `decky` binary can serve, by service slug.

use std::sync::Arc;

use crate::{persona::Persona, runtime::Protocol};

pub mod banner;
pub mod ftp;
pub mod glob;
pub mod http;
pub mod imap;
pub mod line;
pub mod mailbox;
pub mod mysql;
pub mod pop3;
pub mod redis;
pub mod sasl;
pub mod smtp;
pub mod ssh;
pub mod telnet;
pub mod wait;

/// Slugs this build emulates.
#[cfg(feature = "tls")]
pub const AVAILABLE: &[&str] = &[
    "ftp",
    "http",
    "https",
    "imap",
    "mysql",
    "pop3",
    "redis",
    "smtp",
    "smtp_relay",
    "ssh",
    "telnet",
];
/// Slugs this build emulates.
#[cfg(not(feature = "tls"))]
pub const AVAILABLE: &[&str] = &[
    "ftp",
    "http",
    "imap",
    "mysql",
    "pop3",
    "redis",
    "smtp",
    "smtp_relay",
    "ssh",
    "telnet",
];

/// Why a service could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("unknown service {slug:?}; available: {}", AVAILABLE.join(", "))]
    Unknown { slug: String },
    #[error("service {slug:?} is misconfigured: {reason}")]
    Config { slug: String, reason: String },
}

/// The protocol of `slug` configured from `persona`.
pub fn lookup(slug: &str, persona: &Persona) -> Result<Arc<dyn Protocol>, LookupError> {
    Ok(match slug {
        "ftp" => Arc::new(ftp::Ftp::from_persona(persona)),
        "http" => Arc::new(http::Http::from_persona(persona)),
        #[cfg(feature = "tls")]
        "https" => {
            Arc::new(
                http::Http::https_from_persona(persona).map_err(|e| LookupError::Config {
                    slug: slug.to_owned(),
                    reason: e.to_string(),
                })?,
            )
        }
        "imap" => Arc::new(imap::Imap::from_persona(persona)),
        "mysql" => Arc::new(mysql::Mysql::from_persona(persona)),
        "pop3" => Arc::new(pop3::Pop3::from_persona(persona)),
        "redis" => Arc::new(redis::Redis::from_persona(persona)),
        "smtp" => Arc::new(smtp::Smtp::from_persona(persona, false)),
        "smtp_relay" => Arc::new(smtp::Smtp::from_persona(persona, true)),
        "ssh" => Arc::new(
            ssh::Ssh::from_persona(persona).map_err(|e| LookupError::Config {
                slug: slug.to_owned(),
                reason: e.to_string(),
            })?,
        ),
        "telnet" => Arc::new(telnet::Telnet::from_persona(persona)),
        _ => {
            return Err(LookupError::Unknown {
                slug: slug.to_owned(),
            });
        }
    })
}
