//! smtp_relay: the Postfix persona as an open relay that quarantines every message.
use super::smtp::SMTP_KEYS;
use crate::catalog::prelude::*;

pub(crate) static SERVICE: ServiceDef = ServiceDef {
    slug: "smtp_relay",
    summary: "open-relay Postfix persona storing every message to quarantine",
    ports: &[Port::tcp(25), Port::tcp(587)],
    persona: &SMTP_KEYS,
    fleet_singleton: false,
    extra_caps: &[],
    mem_limit_mb: 64,
};
