use proptest::prelude::*;

use super::{wire::*, *};

const SCRAMBLE: [u8; 20] = *b"abcdefghij0123456789";

fn server(version: Option<&str>) -> Mysql {
    let mut pairs = vec![("NODE_NAME", "db01"), ("HOSTNAME", "db01.corp.local")];
    if let Some(v) = version {
        pairs.push(("MYSQL_VERSION", v));
    }
    Mysql::from_persona(&Persona::from_pairs(&pairs))
}

fn start(m: &Mysql) -> (MysqlSession, Vec<u8>) {
    let mut s = m.session_with("203.0.113.9".parse().unwrap(), SCRAMBLE);
    let mut step = Step::default();
    s.start(&mut step);
    (s, step.out)
}

fn drive(s: &mut MysqlSession, input: &[u8]) -> Step {
    let mut step = Step::default();
    s.receive(input, &mut step);
    step
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(u8::try_from(s.len()).unwrap());
    out.extend_from_slice(s);
}

/// A HandshakeResponse41 laid out as the MariaDB 10.11 `mysql` client sends it.
fn client_response(user: &str, auth: &[u8], db: Option<&str>, plugin: &str) -> Vec<u8> {
    let mut caps = 0x000a_a285u32
        | CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_CONNECT_ATTRS
        | CLIENT_PLUGIN_AUTH_LENENC;
    if db.is_some() {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    let mut p = caps.to_le_bytes().to_vec();
    p.extend_from_slice(&0x0100_0000u32.to_le_bytes());
    p.push(33);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    lenenc_str(&mut p, auth);
    if let Some(db) = db {
        p.extend_from_slice(db.as_bytes());
        p.push(0);
    }
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    let mut attrs = Vec::new();
    for (k, v) in [
        ("_client_name", "libmariadb"),
        ("_client_version", "3.3.14"),
        ("_os", "Linux"),
        ("_pid", "4242"),
        ("_platform", "x86_64"),
        ("program_name", "mysql"),
    ] {
        lenenc_str(&mut attrs, k.as_bytes());
        lenenc_str(&mut attrs, v.as_bytes());
    }
    lenenc_str(&mut p, &attrs);
    packet(1, &p)
}

#[test]
fn greeting_is_a_mysql_57_handshake() {
    let m = server(None);
    let (s, out) = start(&m);
    let Frame { seq, payload, used } = next_packet(&out, MAX_PACKET).unwrap().unwrap();
    assert_eq!((seq, used), (0, out.len()));
    assert_eq!(payload[0], 0x0a);
    assert!(payload[1..].starts_with(b"5.7.38-log\0"));
    let rest = &payload[12..];
    assert_eq!(u32::from_le_bytes(rest[..4].try_into().unwrap()), s.conn_id);
    assert_eq!(&rest[4..12], &SCRAMBLE[..8]);
    assert_eq!(rest[12], 0);
    assert_eq!(&rest[13..15], &[0xff, 0xf7], "no CLIENT_SSL");
    assert_eq!(rest[15], 0x08, "latin1_swedish_ci");
    assert_eq!(&rest[16..18], &[0x02, 0x00]);
    assert_eq!(&rest[18..20], &[0xff, 0x81]);
    assert_eq!(rest[20], 21);
    assert_eq!(&rest[21..31], &[0; 10]);
    assert_eq!(&rest[31..43], &SCRAMBLE[8..]);
    assert_eq!(&rest[43..], b"\0mysql_native_password\0");
}

#[test]
fn version_8_uses_caching_sha2() {
    let (_, out) = start(&server(Some("8.0.36")));
    assert!(out.ends_with(b"\0caching_sha2_password\0"));
    assert!(out[5..].starts_with(b"8.0.36\0"));
}

#[test]
fn scrambles_are_fresh_and_ids_increase() {
    let m = server(None);
    let conn = ConnInfo {
        peer: "198.51.100.1:5000".parse().unwrap(),
        local: "10.0.0.2:3306".parse().unwrap(),
    };
    let a = m.session(&conn);
    let b = m.session(&conn);
    drop((a, b));
    let s1 = m.session_with(
        "198.51.100.1".parse().unwrap(),
        new_scramble(&mut StdRng::seed_from_u64(1)),
    );
    let s2 = m.session_with(
        "198.51.100.1".parse().unwrap(),
        new_scramble(&mut StdRng::seed_from_u64(2)),
    );
    assert_ne!(s1.scramble, s2.scramble);
    assert!(s2.conn_id > s1.conn_id);
    for _ in 0..200 {
        let sc = new_scramble(&mut StdRng::from_os_rng());
        assert!(sc.iter().all(|&b| b != 0 && b != b'$' && b < 128));
    }
}

#[test]
fn mariadb_client_login_is_captured_and_denied() {
    let (mut s, _) = start(&server(None));
    let auth: Vec<u8> = (0..20).collect();
    let step = drive(
        &mut s,
        &client_response("root", &auth, Some("prod"), NATIVE),
    );
    let mut expected = vec![0xff, 0x15, 0x04];
    expected.extend_from_slice(
        b"#28000Access denied for user 'root'@'203.0.113.9' (using password: YES)",
    );
    assert_eq!(step.out, packet(2, &expected));
    assert!(step.close);
    let ev = &step.events[0];
    assert_eq!(ev.kind, "auth");
    assert_eq!(ev.severity, Severity::Warning);
    assert_eq!(ev.field("username"), Some("root"));
    assert_eq!(ev.field("database"), Some("prod"));
    assert_eq!(ev.field("plugin"), Some(NATIVE));
    assert_eq!(
        ev.field("auth_response_hex"),
        Some("000102030405060708090a0b0c0d0e0f10111213")
    );
    assert_eq!(ev.field("scramble_hex"), Some(hex(&SCRAMBLE).as_str()));
    assert_eq!(
        ev.field("hashcat"),
        Some(format!("$mysqlna${}*{}", hex(&SCRAMBLE), hex(&auth)).as_str())
    );
    assert_eq!(ev.field("client_name"), Some("libmariadb"));
    assert_eq!(ev.field("os"), Some("Linux"));
    assert_eq!(ev.field("program_name"), Some("mysql"));
    assert_eq!(ev.field("client_pid"), Some("4242"));
    assert!(drive(&mut s, b"anything").out.is_empty());
}

#[test]
fn empty_password_says_no() {
    let (mut s, _) = start(&server(None));
    let step = drive(&mut s, &client_response("app", b"", None, NATIVE));
    assert!(
        step.out
            .ends_with(b"Access denied for user 'app'@'203.0.113.9' (using password: NO)")
    );
    assert_eq!(step.events[0].field("database"), Some(""));
}

#[test]
fn other_plugins_get_an_auth_switch() {
    let (mut s, _) = start(&server(None));
    let step = drive(
        &mut s,
        &client_response("admin", &[7; 32], None, CACHING_SHA2),
    );
    let mut switch = vec![0xfe];
    switch.extend_from_slice(b"mysql_native_password\0");
    switch.extend_from_slice(&SCRAMBLE);
    switch.push(0);
    assert_eq!(step.out, packet(2, &switch));
    assert!(step.events.is_empty() && !step.close);
    let step = drive(&mut s, &packet(3, &[9; 20]));
    assert!(
        step.out.starts_with(&[0x4b, 0, 0, 4, 0xff, 0x15, 0x04]),
        "{:?}",
        step.out
    );
    let ev = &step.events[0];
    assert_eq!(ev.field("plugin"), Some(NATIVE));
    assert_eq!(ev.field("client_plugin"), Some(CACHING_SHA2));
    assert_eq!(ev.field("auth_response_hex"), Some(hex(&[9; 20]).as_str()));
}

#[test]
fn ssl_requests_and_garbage_get_bad_handshake() {
    let (mut s, _) = start(&server(None));
    let mut ssl = (CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION)
        .to_le_bytes()
        .to_vec();
    ssl.extend_from_slice(&[0, 0, 0, 1, 33]);
    ssl.extend_from_slice(&[0; 23]);
    let step = drive(&mut s, &packet(1, &ssl));
    assert_eq!(step.out, packet(2, b"\xff\x13\x04#08S01Bad handshake"));
    assert!(step.close);
    // nmap's GenericLines probe gets the reply its MySQL signature expects.
    let (mut s, _) = start(&server(None));
    let step = drive(&mut s, b"\r\n\r\n");
    assert_eq!(step.out, b"\x10\0\0\x01\xff\x13\x04Bad handshake");
    let (mut s, _) = start(&server(None));
    let step = drive(&mut s, &packet(1, b"\x01"));
    assert_eq!(step.out, packet(2, b"\xff\x13\x04Bad handshake"));
}

#[test]
fn byte_at_a_time_gives_the_same_result() {
    let input = client_response("u", &[1; 20], Some("d"), NATIVE);
    let (mut whole, _) = start(&server(None));
    let expected = drive(&mut whole, &input);
    let (mut split, _) = start(&server(None));
    let mut out = Vec::new();
    let mut events = Vec::new();
    for b in &input {
        let step = drive(&mut split, std::slice::from_ref(b));
        out.extend(step.out);
        events.extend(step.events);
    }
    // Connection ids differ between the two servers' sessions only if seeded differently.
    assert_eq!(out, expected.out);
    assert_eq!(events, expected.events);
}

proptest! {
    #[test]
    fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10)) {
        let (mut s, _) = start(&server(None));
        for c in &chunks {
            let _ = drive(&mut s, c);
            prop_assert!(s.buf.len() <= MAX_PACKET + 4 + 300);
        }
    }

    #[test]
    fn any_response_payload_is_handled(payload in proptest::collection::vec(any::<u8>(), 0..200), caps in any::<u32>()) {
        let (mut s, _) = start(&server(None));
        let mut p = (caps | CLIENT_PROTOCOL_41).to_le_bytes().to_vec();
        p.extend_from_slice(&payload);
        let step = drive(&mut s, &packet(1, &p));
        prop_assert!(step.close || !step.out.is_empty());
    }
}
