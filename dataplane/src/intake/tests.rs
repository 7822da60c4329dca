//! The listeners end to end: sockets in, rows in SQLite out, every refusal counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::Write,
    net::{TcpStream, UdpSocket},
    os::unix::net::UnixDatagram,
    sync::Arc,
    time::{Duration, Instant},
};

use decnet_store::{
    metrics::StoreMetrics,
    pipeline::{Pipeline, PipelineConfig},
    repo::{EventQuery, SqlRepository},
};

use super::*;
use crate::syslog::framing::encode_octet_counted;

fn line(host: &str, kind: &str, n: u32) -> Vec<u8> {
    format!("<134>1 2026-11-27T05:00:00Z {host} ssh - {kind} [relay@55555 src_ip=\"198.51.100.9\" n=\"{n}\"] text")
        .into_bytes()
}

/// A runtime, an SQLite repository in `dir` and a pipeline of segments into it.
fn sqlite_pipeline(dir: &std::path::Path) -> (tokio::runtime::Runtime, SqlRepository, Pipeline) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let segments = dir.join("segments");
    std::fs::create_dir(&segments).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let repo = rt.block_on(SqlRepository::connect(&url)).unwrap();
    let pipeline = Pipeline::start(
        &PipelineConfig::new(segments),
        repo.clone(),
        rt.handle().clone(),
        Arc::new(StoreMetrics::default()),
    )
    .unwrap();
    (rt, repo, pipeline)
}

/// Whether the intake closed `conn` within `within` (a read sees the end of the stream).
fn closed_by_peer(conn: &mut TcpStream, within: Duration) -> bool {
    use std::io::Read;
    conn.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 16];
    matches!(conn.read(&mut b), Ok(0))
        || matches!(conn.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

/// One address cannot take every TCP place, and a sender that trickles bytes without ever
/// completing a message loses its place after `tcp_idle`, while one that keeps sending
/// messages keeps it.
#[test]
fn tcp_places_are_bounded_per_source_and_trickling_senders_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, _repo, pipeline) = sqlite_pipeline(dir.path());
    let config = IntakeConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        max_tcp_connections_per_source: 2,
        tcp_idle: Duration::from_secs(2),
        ..IntakeConfig::default()
    };
    let metrics = Arc::new(IntakeMetrics::default());
    let intake = Intake::start(&config, &pipeline.sender().unwrap(), Arc::clone(&metrics)).unwrap();
    let addr = intake.tcp_addr.unwrap();
    let mut talker = TcpStream::connect(addr).unwrap();
    let mut trickler = TcpStream::connect(addr).unwrap();
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    talker.write_all(&line("talker", "command", 0)).unwrap();
    talker.write_all(b"\n").unwrap();
    wait_for("the first message", &|| {
        metrics.received_messages.get() == 1
    });
    let mut third = TcpStream::connect(addr).unwrap();
    assert!(
        closed_by_peer(&mut third, Duration::from_secs(5)),
        "a third place from one address"
    );
    wait_for("the refusal counted", &|| {
        metrics.refused_connections.get() == 1
    });
    // Four seconds: the trickler sends a byte every 100 ms, the talker a message every 500 ms.
    trickler.write_all(b"<13>1 - trickle").unwrap();
    let start = Instant::now();
    let mut n = 1;
    let mut trickler_dropped = false;
    while start.elapsed() < Duration::from_secs(4) {
        if trickler.write_all(b"x").is_err() {
            trickler_dropped = true;
        }
        if start.elapsed() >= Duration::from_millis(500 * n) {
            talker
                .write_all(&line("talker", "command", n as u32))
                .unwrap();
            talker.write_all(b"\n").unwrap();
            n += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        trickler_dropped || closed_by_peer(&mut trickler, Duration::from_secs(1)),
        "a trickle of bytes kept its place"
    );
    talker.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(std::io::Read::read(&mut talker, &mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a sender of messages keeps its place"
    );
    wait_for("every message", &|| metrics.received_messages.get() == n);
    intake.stop();
    pipeline.shutdown();
}

#[test]
fn unix_udp_and_both_tcp_framings_reach_sql_and_refusals_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, repo, pipeline) = sqlite_pipeline(dir.path());
    let sock = dir.path().join("run/intake.sock");
    let config = IntakeConfig {
        unix: Some(sock.clone()),
        udp: Some("127.0.0.1:0".parse().unwrap()),
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ..IntakeConfig::default()
    };
    let metrics = Arc::new(IntakeMetrics::default());
    let intake = Intake::start(&config, &pipeline.sender().unwrap(), Arc::clone(&metrics)).unwrap();

    let unix = UnixDatagram::unbound().unwrap();
    for n in 0..10 {
        unix.send_to(&line("unixhost", "command", n), &sock)
            .unwrap();
    }
    // Three identical connects within the window: one kept, two limited.
    for _ in 0..3 {
        unix.send_to(&line("unixhost", "connect", 0), &sock)
            .unwrap();
    }
    unix.send_to(b"", &sock).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..10 {
        udp.send_to(&line("udphost", "command", n), intake.udp_addr.unwrap())
            .unwrap();
    }
    let mut counted = TcpStream::connect(intake.tcp_addr.unwrap()).unwrap();
    let mut framed = Vec::new();
    for n in 0..10 {
        encode_octet_counted(&line("tcpcounted", "command", n), &mut framed);
    }
    // Split mid-frame: framing must not depend on write boundaries.
    counted.write_all(&framed[..37]).unwrap();
    counted.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    counted.write_all(&framed[37..]).unwrap();
    drop(counted);
    let mut lf = TcpStream::connect(intake.tcp_addr.unwrap()).unwrap();
    for n in 0..10 {
        lf.write_all(&line("tcplf", "command", n)).unwrap();
        lf.write_all(b"\n").unwrap();
    }
    drop(lf);

    let deadline = Instant::now() + Duration::from_secs(20);
    while metrics.received_messages.get() < 44 {
        assert!(
            Instant::now() < deadline,
            "only {} received",
            metrics.received_messages.get()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    intake.stop();
    pipeline.shutdown();
    assert!(!sock.exists(), "the socket file is removed at stop");
    assert_eq!(metrics.rate_limited.get(), 2);
    assert_eq!(metrics.parse_errors.get(), 1);
    for host in ["unixhost", "udphost", "tcpcounted", "tcplf"] {
        let query = EventQuery {
            search: format!("decky:{host} event:command"),
            ..EventQuery::default()
        };
        let events = rt.block_on(repo.events(&query, 100, 0)).unwrap();
        let mut ns: Vec<u32> = events
            .iter()
            .map(|e| e.event.field("n").unwrap().parse().unwrap())
            .collect();
        ns.sort_unstable();
        assert_eq!(ns, (0..10).collect::<Vec<_>>(), "{host}");
        assert_eq!(
            events[0].event.src_ip,
            Some("198.51.100.9".parse().unwrap())
        );
    }
}

#[test]
fn a_regular_file_in_the_socket_path_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("intake.sock");
    std::fs::write(&path, "important").unwrap();
    let err = bind_unix(&path).unwrap_err().to_string();
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "important");
}

#[test]
fn a_unix_queue_shorter_than_systemds_default_is_warned_about() {
    assert!(warn_if_short_unix_queue(Some(10)));
    assert!(!warn_if_short_unix_queue(Some(512)));
    assert!(!warn_if_short_unix_queue(Some(4096)));
    // Unreadable (another kernel, no /proc): nothing to advise on.
    assert!(!warn_if_short_unix_queue(None));
}

#[cfg(feature = "tls")]
mod rfc5425 {
    use std::{io::Write, net::TcpStream, sync::Arc, time::Duration};

    use rustls::{
        ClientConfig, ClientConnection, RootCertStore, StreamOwned,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    };

    use super::super::{tls::TlsIdentity, *};
    use super::*;

    fn client(cert_pem: &std::path::Path) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(cert_pem).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    #[test]
    fn octet_counted_frames_over_tls_reach_sql_and_the_identity_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (rt, repo, pipeline) = sqlite_pipeline(dir.path());
        let secrets = dir.path().join("secrets");
        let config = IntakeConfig {
            tls: Some((
                "127.0.0.1:0".parse().unwrap(),
                TlsIdentity {
                    cert_and_key: None,
                    generated_dir: secrets.clone(),
                    client_ca: None,
                },
            )),
            ..IntakeConfig::default()
        };
        let metrics = Arc::new(IntakeMetrics::default());
        let intake =
            Intake::start(&config, &pipeline.sender().unwrap(), Arc::clone(&metrics)).unwrap();
        let cert = secrets.join("intake-tls.crt");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(secrets.join("intake-tls.key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let conn =
            ClientConnection::new(client(&cert), ServerName::try_from(host).unwrap()).unwrap();
        let tcp = TcpStream::connect(intake.tls_addr.unwrap()).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        let mut framed = Vec::new();
        for n in 0..5 {
            encode_octet_counted(&line("tlshost", "command", n), &mut framed);
        }
        tls.write_all(&framed).unwrap();
        tls.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while metrics.received_messages.get() < 5 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(tls);
        let before = std::fs::read(&cert).unwrap();
        intake.stop();
        pipeline.shutdown();
        let query = EventQuery {
            search: "decky:tlshost".into(),
            ..EventQuery::default()
        };
        assert_eq!(rt.block_on(repo.count_events(&query)).unwrap(), 5);
        // A restart reuses the identity senders have pinned.
        tls::server_config(&TlsIdentity {
            cert_and_key: None,
            generated_dir: secrets,
            client_ca: None,
        })
        .unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), before);
    }

    #[test]
    fn bad_identity_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = tls::server_config(&TlsIdentity {
            cert_and_key: Some((missing.clone(), missing.clone())),
            generated_dir: dir.path().to_owned(),
            client_ca: None,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope.pem"), "{err}");
        let err = tls::server_config(&TlsIdentity {
            cert_and_key: None,
            generated_dir: dir.path().join("g"),
            client_ca: Some(missing),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("client CA"), "{err}");
    }
}
