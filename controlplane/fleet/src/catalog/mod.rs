//! The service catalogue: the plugin contract and the registry of services a decky can run.
//!
//! A built-in service is one file in `services/` defining a [`ServiceDef`]; `build.rs` turns
//! the directory listing into the registry, so adding a file adds a service. Custom services
//! (BYOS, INI `[custom-NAME]` sections) are registered at run time with
//! [`Catalog::register_custom`] before any decky section is resolved.

mod custom;
mod plugin;

pub use custom::CustomService;
pub use plugin::{
    FragmentContext, ImageSource, PersonaKey, Port, ServiceDef, ServiceFragment, ServicePlugin,
    Transport, ValueKind, parse_bool,
};

use indexmap::IndexMap;

/// What the services files need, in one import.
#[allow(unused_imports)]
pub(crate) mod prelude {
    pub(crate) use super::plugin::{PersonaKey, Port, ServiceDef, ValueKind};
}

#[allow(clippy::wildcard_imports)]
mod registry {
    use super::plugin::ServiceDef;
    include!(concat!(env!("OUT_DIR"), "/registry.rs"));
}

/// Why a service could not be found or registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("unknown service `{slug}`; known services: {known}")]
    UnknownService { slug: String, known: String },
    #[error("custom service `{0}` clashes with a built-in service of the same name; rename it")]
    ClashesWithBuiltin(String),
    #[error("custom service `{0}` is defined twice")]
    DuplicateCustom(String),
    #[error(
        "service `{0}` runs once per fleet (it is not a per-host service) and cannot be \
         assigned to a host"
    )]
    FleetSingleton(String),
}

/// The services known to this fleet: every built-in plus the custom ones of a configuration.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    custom: IndexMap<String, CustomService>,
}

impl Catalog {
    /// The built-in services only.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Every built-in service definition, sorted by slug.
    pub fn builtin_defs() -> impl Iterator<Item = &'static ServiceDef> {
        registry::BUILTIN.iter().copied()
    }

    /// Register a custom (bring-your-own-service) image under its slug.
    pub fn register_custom(&mut self, service: CustomService) -> Result<(), CatalogError> {
        if registry::BUILTIN.iter().any(|d| d.slug == service.slug) {
            return Err(CatalogError::ClashesWithBuiltin(service.slug));
        }
        if self.custom.contains_key(&service.slug) {
            return Err(CatalogError::DuplicateCustom(service.slug));
        }
        self.custom.insert(service.slug.clone(), service);
        Ok(())
    }

    /// Look a service up by slug.
    pub fn get(&self, slug: &str) -> Option<&dyn ServicePlugin> {
        if let Some(def) = registry::BUILTIN.iter().find(|d| d.slug == slug) {
            return Some(*def);
        }
        self.custom.get(slug).map(|c| c as &dyn ServicePlugin)
    }

    /// Look a service up for assignment to a decky: it must exist and not be fleet-wide.
    pub fn resolve(&self, slug: &str) -> Result<&dyn ServicePlugin, CatalogError> {
        let service = self.get(slug).ok_or_else(|| CatalogError::UnknownService {
            slug: slug.to_owned(),
            known: self.per_decky_slugs().join(", "),
        })?;
        if service.fleet_singleton() {
            return Err(CatalogError::FleetSingleton(slug.to_owned()));
        }
        Ok(service)
    }

    /// Every service (built-in, then custom), fleet singletons included.
    pub fn all(&self) -> Vec<&dyn ServicePlugin> {
        let mut out: Vec<&dyn ServicePlugin> = Vec::new();
        out.extend(registry::BUILTIN.iter().map(|d| *d as &dyn ServicePlugin));
        out.extend(self.custom.values().map(|c| c as &dyn ServicePlugin));
        out
    }

    /// Slugs that can be assigned to a decky (no fleet singletons), built-in then custom.
    pub fn per_decky_slugs(&self) -> Vec<&str> {
        self.all()
            .into_iter()
            .filter(|s| !s.fleet_singleton())
            .map(ServicePlugin::slug)
            .collect()
    }

    /// The pool random service selection draws from: built-in per-decky services only, so a
    /// random fleet never runs somebody's custom image by surprise.
    pub fn random_pool() -> Vec<&'static str> {
        Self::builtin_defs()
            .filter(|d| !d.fleet_singleton)
            .map(|d| d.slug)
            .collect()
    }
}

#[cfg(test)]
mod tests;
