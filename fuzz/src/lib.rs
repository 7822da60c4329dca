//! Shared driver for the service fuzz targets.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use decnet_services::{
    persona::Persona,
    protocols,
    runtime::Protocol,
    session::{ConnInfo, Step},
};

/// Protocols are built once per process, as `decky` does: building one (bait archives, TLS
/// keys) is far slower than a session and would starve the fuzzer.
fn protocol(slug: &str) -> Arc<dyn Protocol> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<dyn Protocol>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let mut map = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(map.entry(slug.to_owned()).or_insert_with(|| {
        let persona = Persona::from_pairs(&[("NODE_NAME", "fuzz"), ("HOSTNAME", "SRV-FUZZ-01")]);
        protocols::lookup(slug, &persona).unwrap_or_else(|e| panic!("{e}"))
    }))
}

/// Feed `data` to a fresh session of `slug`, split into chunks at the sizes its first bytes
/// pick.
pub fn drive_service(slug: &str, data: &[u8]) {
    let protocol = protocol(slug);
    let conn = ConnInfo {
        peer: "192.0.2.1:40000".parse().unwrap_or_else(|e| panic!("{e}")),
        local: "192.0.2.2:1".parse().unwrap_or_else(|e| panic!("{e}")),
    };
    let mut session = protocol.session(&conn);
    let mut step = Step::default();
    session.start(&mut step);
    let (sizes, body) = data.split_at(data.len().min(4));
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() && !step.close {
        let n = usize::from(sizes.get(i % sizes.len().max(1)).copied().unwrap_or(64))
            .max(1)
            .min(rest.len());
        step = Step::default();
        session.receive(&rest[..n], &mut step);
        rest = &rest[n..];
        i += 1;
    }
    session.finish(&mut Step::default());
}
