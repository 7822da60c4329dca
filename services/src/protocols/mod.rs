//! The protocols the `decky` binary can serve, by service slug.

use std::sync::Arc;

use crate::{persona::Persona, runtime::Protocol};

pub mod http;
pub mod line;
pub mod redis;

/// Slugs this build emulates.
pub const AVAILABLE: &[&str] = &["http", "redis"];

/// The protocol of `slug` configured from `persona`, if this build emulates it.
pub fn lookup(slug: &str, persona: &Persona) -> Option<Arc<dyn Protocol>> {
    Some(match slug {
        "http" => Arc::new(http::Http::from_persona(persona)),
        "redis" => Arc::new(redis::Redis::from_persona(persona)),
        _ => return None,
    })
}
