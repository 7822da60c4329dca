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

/// Build `slug`'s protocol before fuzzing starts (`fuzz_target!(init: …)`): building one can
/// take seconds in an instrumented build, and inside the first input it counted against
/// libFuzzer's per-input timeout.
pub fn warm_service(slug: &str) {
    let _ = protocol(slug);
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

/// The ssh layers above the transport (authentication, channels, shell, SFTP, scp) on
/// arbitrary decrypted payloads, which the transport keeps out of reach of a fuzzer that
/// cannot complete a key exchange. `data` is a run of payloads, each behind a one-byte length.
pub fn drive_ssh_layers(data: &[u8]) {
    use decnet_services::{
        protocols::ssh::{
            auth::{Auth, AuthPolicy},
            connection::{Connection, Login},
            transcript::Clock,
        },
        shell::fs::HostInfo,
    };
    let mut auth = Auth::new(Arc::new(AuthPolicy {
        credentials: vec![("root".into(), "admin".into())],
        accept_keys: true,
        keyboard_interactive: true,
        ..AuthPolicy::default()
    }));
    let login = Login {
        user: "root".into(),
        host: HostInfo {
            hostname: "SRV-FUZZ-01".into(),
            distro: "debian".into(),
            kernel: "6.1.0-27-amd64".into(),
            ip: "192.0.2.2".into(),
        },
        motd: "motd\n".into(),
        bait: vec![("/opt/x".into(), b"y".to_vec())],
        quarantine: true,
        openssh_client: true,
    };
    let mut connection = Connection::new(login, Clock::Manual(Arc::default()), 1 << 20);
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        let mut msgs = Vec::new();
        let mut step = Step::default();
        match payload.first() {
            Some(50..=79) => {
                let _ = auth.handle(payload, b"fuzz-session", &mut msgs, &mut step);
            }
            Some(_) => connection.handle(payload, &mut msgs, &mut step),
            None => {}
        }
    }
    connection.finish(&mut Step::default());
}

/// The ssh transport (version exchange, packet framing, KEXINIT, kex messages) on arbitrary
/// client bytes. The first byte picks raw bytes after a valid identification, or plaintext
/// packets (each chunk framed as one) after a client KEXINIT offering every kex.
pub fn drive_ssh_transport(data: &[u8]) {
    use decnet_services::protocols::ssh::transport::{Proposal, Transport};
    let Some(config) = ssh_transport_config() else {
        return;
    };
    fn plain_packet(payload: &[u8]) -> Vec<u8> {
        let mut pad = 8 - (5 + payload.len()) % 8;
        if pad < 4 {
            pad += 8;
        }
        let len = u32::try_from(1 + payload.len() + pad).unwrap_or(u32::MAX);
        let mut p = len.to_be_bytes().to_vec();
        p.push(u8::try_from(pad).unwrap_or(4));
        p.extend_from_slice(payload);
        p.resize(p.len() + pad, 0);
        p
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut t = Transport::new(config);
    let (mut out, mut upper, mut events) = (Vec::new(), Vec::new(), Vec::new());
    t.start(&mut out);
    t.receive(b"SSH-2.0-fuzz\r\n", &mut out, &mut upper, &mut events);
    if mode % 2 == 0 {
        t.receive(rest, &mut out, &mut upper, &mut events);
        return;
    }
    let mut client = Proposal::server_default();
    client.kex.retain(|k| !k.starts_with("kex-strict"));
    t.receive(
        &plain_packet(&client.encode(&[0; 16])),
        &mut out,
        &mut upper,
        &mut events,
    );
    let mut rest = rest;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (usize::from(len) * 8).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        t.receive(&plain_packet(payload), &mut out, &mut upper, &mut events);
    }
}

/// The transport's configuration, host keys derived once (about 15 s in an instrumented build).
fn ssh_transport_config() -> Option<Arc<decnet_services::protocols::ssh::transport::TransportConfig>>
{
    use decnet_services::protocols::ssh::transport::{DEFAULT_BANNER, TransportConfig};
    static CONFIG: OnceLock<Option<Arc<TransportConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            TransportConfig::new(DEFAULT_BANNER, b"fuzz")
                .ok()
                .map(Arc::new)
        })
        .clone()
}

/// Derive the transport's host keys before fuzzing starts, outside the per-input timeout.
pub fn warm_ssh_transport() {
    let _ = ssh_transport_config();
}
