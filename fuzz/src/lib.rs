//! Shared driver for the service fuzz targets.

use decnet_services::{persona::Persona, protocols, session::{ConnInfo, Step}};

/// Feed `data` to a fresh session of `slug`, split into chunks at the sizes its first bytes
/// pick, and check the session's own invariants on the way.
pub fn drive_service(slug: &str, data: &[u8]) {
    let persona = Persona::from_pairs(&[("NODE_NAME", "fuzz"), ("HOSTNAME", "SRV-FUZZ-01")]);
    let Some(protocol) = protocols::lookup(slug, &persona) else {
        panic!("no protocol {slug}");
    };
    let conn = ConnInfo { peer: "192.0.2.1:40000".parse().unwrap(), local: "192.0.2.2:1".parse().unwrap() };
    let mut session = protocol.session(&conn);
    let mut step = Step::default();
    session.start(&mut step);
    let (sizes, body) = data.split_at(data.len().min(4));
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() && !step.close {
        let n = usize::from(sizes.get(i % sizes.len().max(1)).copied().unwrap_or(64)).max(1).min(rest.len());
        step = Step::default();
        session.receive(&rest[..n], &mut step);
        rest = &rest[n..];
        i += 1;
    }
    session.finish(&mut Step::default());
}
