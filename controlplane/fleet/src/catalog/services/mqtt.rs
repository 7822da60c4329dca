//! mqtt: a Mosquitto persona with a plausible industrial topic tree.
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "mqtt",
    summary: "Mosquitto broker persona with retained topics, CONNECT/PUBLISH capture",
    ports: &[Port::tcp(1883)],
    persona: &[
        PersonaKey {
            key: "accept_all",
            env: "MQTT_ACCEPT_ALL",
            kind: ValueKind::Bool,
            default: Some("true"),
            doc: "Accept every CONNECT regardless of credentials.",
        },
        PersonaKey {
            key: "persona",
            env: "MQTT_PERSONA",
            kind: ValueKind::OneOf(&["water_plant", "factory", "building"]),
            default: Some("water_plant"),
            doc: "Built-in topic tree.",
        },
        PersonaKey {
            key: "custom_topics",
            env: "MQTT_CUSTOM_TOPICS",
            kind: ValueKind::Json,
            default: None,
            doc: "JSON object topic → retained value, replacing the built-in tree.",
        },
    ],
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 48,
};
