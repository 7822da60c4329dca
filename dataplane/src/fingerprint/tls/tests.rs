use proptest::prelude::*;

use super::*;

fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut v = ty.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn u16s(vals: &[u16], width: usize) -> Vec<u8> {
    let body: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
    let mut v = if width == 1 {
        vec![body.len() as u8]
    } else {
        (body.len() as u16).to_be_bytes().to_vec()
    };
    v.extend(body);
    v
}

/// A ClientHello body shaped like Chrome 143's (the browserleaks vector: same ciphers,
/// extension order, groups, signature algorithms, ALPN and versions), GREASE included.
pub(crate) fn chrome_client_hello() -> Vec<u8> {
    let mut b = vec![0x03, 0x03];
    b.extend_from_slice(&[0x42; 32]);
    b.push(32);
    b.extend_from_slice(&[0x17; 32]);
    b.extend(u16s(
        &[
            0x3a3a, 4865, 4866, 4867, 49195, 49199, 49196, 49200, 52393, 52392, 49171, 49172, 156,
            157, 47, 53,
        ],
        2,
    ));
    b.extend_from_slice(&[1, 0]);
    let mut exts = Vec::new();
    exts.extend(ext(0x1a1a, &[]));
    for ty in [
        45u16, 51, 16, 65037, 23, 17613, 0, 11, 10, 43, 65281, 35, 18, 5, 13, 27,
    ] {
        let data: Vec<u8> = match ty {
            0 => {
                let name = b"tls.browserleaks.com";
                let mut d = ((name.len() + 3) as u16).to_be_bytes().to_vec();
                d.push(0);
                d.extend_from_slice(&(name.len() as u16).to_be_bytes());
                d.extend_from_slice(name);
                d
            }
            16 => {
                let mut list = vec![2, b'h', b'2', 8];
                list.extend_from_slice(b"http/1.1");
                let mut d = (list.len() as u16).to_be_bytes().to_vec();
                d.extend(list);
                d
            }
            10 => u16s(&[0x4a4a, 4588, 29, 23, 24], 2),
            11 => vec![1, 0],
            13 => u16s(
                &[
                    0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
                ],
                2,
            ),
            43 => u16s(&[0x5a5a, 0x0304, 0x0303], 1),
            45 => vec![1, 1],
            _ => vec![],
        };
        exts.extend(ext(ty, &data));
    }
    exts.extend(ext(0x2a2a, &[0]));
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend(exts);
    b
}

/// Wrap a handshake body in a message header and records of at most `record` bytes.
pub(crate) fn records(ty: u8, body: &[u8], record: usize) -> Vec<u8> {
    let mut msg = vec![ty];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(body);
    let mut out = Vec::new();
    for chunk in msg.chunks(record) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[test]
fn ja3_and_ja4_match_the_published_vector() {
    let ch = parse_client_hello(&chrome_client_hello()).unwrap();
    assert_eq!(
        ch.ja3_string(),
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0"
    );
    assert_eq!(ch.ja3(), "98487aa16281980e7d1120d399efb6a4");
    let (ja4, ja4_r) = ch.ja4();
    assert_eq!(ja4, "t13d1516h2_8daaf6152771_d8a2da3f94cd");
    assert_eq!(
        ja4_r,
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,fe0d,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
    );
    assert_eq!(ch.sni.as_deref(), Some("tls.browserleaks.com"));
    assert_eq!(ch.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(ch.versions_hex(), "0304,0303");
}

#[test]
fn ja4_edge_rules() {
    // No SNI, no ALPN, no extensions, TLS 1.2: "i", "00", and zero hashes for empty lists.
    let ch = ClientHello {
        legacy_version: 0x0303,
        ..ClientHello::default()
    };
    assert_eq!(ch.ja4().0, "t12i000000_000000000000_000000000000");
    // A non-alphanumeric ALPN uses the first and last hex characters.
    let ch = ClientHello {
        legacy_version: 0x0303,
        alpn: vec![vec![0xab, 0x01]],
        ..ClientHello::default()
    };
    assert!(ch.ja4().0.starts_with("t12i0000a1_"));
    assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x0a0b) && !is_grease(0x1301));
}

#[test]
fn client_hello_split_over_records_is_joined() {
    let body = chrome_client_hello();
    let stream = records(hs::CLIENT_HELLO, &body, 100);
    let hs = handshake_messages(&stream).unwrap();
    assert_eq!(hs.messages.len(), 1);
    assert_eq!(hs.messages[0].1, body);
    // A prefix is incomplete, not an error.
    let hs = handshake_messages(&stream[..stream.len() - 1]).unwrap();
    assert!(hs.messages.is_empty());
    assert!(matches!(
        handshake_messages(b"\x17\x03\x03\x00\x01x"),
        Err(TlsError::NotHandshake(23))
    ));
}

#[test]
fn server_hello_ja3s() {
    // openssl s_server's TLS 1.2 answer to curl (tests/corpus/tls.pcap): cipher c030,
    // extensions renegotiation_info, ec_point_formats, extended_master_secret.
    let mut b = vec![3, 3];
    b.extend_from_slice(&[7; 32]);
    b.push(0);
    b.extend_from_slice(&[0xc0, 0x30, 0]);
    let mut exts = ext(0xff01, &[0]);
    exts.extend(ext(11, &[3, 0, 1, 2]));
    exts.extend(ext(23, &[]));
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend(exts);
    let sh = parse_server_hello(&b).unwrap();
    assert_eq!(sh.ja3s_string(), "771,49200,65281-11-23");
    assert_eq!(sh.ja3s(), "e54965894d6b45ecb4323c7ea3d6c115");
    assert!(!sh.is_tls13());
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_client_hello(&bytes);
        let _ = parse_server_hello(&bytes);
        let _ = parse_certificate_list(&bytes);
        let _ = handshake_messages(&bytes);
        let _ = crate::fingerprint::der::certificate_summary(&bytes);
    }

    #[test]
    /// `need` is a lower bound: no prefix shorter than it holds more messages than the prefix
    /// it was computed on, and at `need` itself the next message may be complete.
    fn need_never_skips_a_message(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..4),
        record in 1usize..30,
    ) {
        let stream: Vec<u8> = bodies.iter().flat_map(|b| records(hs::CLIENT_HELLO, b, record)).collect();
        let count = |n: usize| handshake_messages(&stream[..n]).unwrap().messages.len();
        for p in 0..=stream.len() {
            let hs = handshake_messages(&stream[..p]).unwrap();
            prop_assert!(hs.need > p, "need {} at {}", hs.need, p);
            for l in p..hs.need.min(stream.len() + 1) {
                prop_assert_eq!(count(l), hs.messages.len(), "prefix {} vs {} (need {})", l, p, hs.need);
            }
        }
    }

    #[test]
    fn truncated_chrome_hello_never_panics(cut in 0usize..600, flip in 0usize..600, val in any::<u8>()) {
        let mut body = chrome_client_hello();
        if flip < body.len() {
            body[flip] = val;
        }
        let cut = cut.min(body.len());
        if let Ok(ch) = parse_client_hello(&body[..cut]) {
            let _ = ch.ja3();
            let _ = ch.ja4();
        }
    }
}
