//! Bring-your-own-service: a pre-built image declared in an INI `[custom-NAME]` section.

use super::plugin::{
    FragmentContext, ImageSource, PersonaKey, Port, ServiceFragment, ServicePlugin, base_env,
};

/// A pre-built image run as a service of a decky.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomService {
    pub slug: String,
    /// Image reference, e.g. `prom/node-exporter:latest` (must already be present locally).
    pub image: String,
    /// Command override, split on whitespace as the original did; empty keeps the image's.
    pub exec: Vec<String>,
    pub ports: Vec<Port>,
    /// Capabilities to add after dropping all (default: `NET_BIND_SERVICE` for ports < 1024).
    pub caps: Option<Vec<String>>,
    /// Mount the root filesystem read-only (default true; unknown images may need false).
    pub read_only: bool,
}

impl ServicePlugin for CustomService {
    fn slug(&self) -> &str {
        &self.slug
    }

    fn summary(&self) -> &str {
        "custom service (pre-built image)"
    }

    fn ports(&self) -> &[Port] {
        &self.ports
    }

    fn image(&self) -> ImageSource {
        ImageSource::Prebuilt(self.image.clone())
    }

    fn fleet_singleton(&self) -> bool {
        false
    }

    fn persona_keys(&self) -> &[PersonaKey] {
        &[]
    }

    fn is_custom(&self) -> bool {
        true
    }

    fn compose_fragment(&self, ctx: &FragmentContext<'_>) -> ServiceFragment {
        let cap_add = self
            .caps
            .clone()
            .unwrap_or_else(|| super::plugin::default_caps(&self.ports, &[]));
        ServiceFragment {
            image: self.image.clone(),
            command: self.exec.clone(),
            environment: base_env(ctx),
            cap_add,
            read_only: self.read_only,
            mem_limit_mb: 256,
            pids_limit: 256,
            volumes: Vec::new(),
        }
    }
}
