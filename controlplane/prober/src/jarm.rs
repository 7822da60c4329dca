//! JARM: the active TLS server fingerprint published by Salesforce (jarm.py, version 1.0).
//!
//! JARM sends ten deliberately odd ClientHellos (different TLS versions, cipher lists and
//! orders, GREASE, ALPN lists, supported_versions contents and orders) and reduces each
//! answer to `cipher|version|alpn|extension-types`. The 62-character result is 30 characters
//! from the chosen ciphers and versions followed by the first 32 hex digits of a SHA-256 over
//! the ALPN and extension strings; 62 zeros means no probe got a ServerHello (not TLS).
//!
//! Fingerprints are only useful when they equal the ones in published JARM lists, so this
//! module reproduces jarm.py's behaviour exactly, quirks included (each is pointed out where it
//! is reproduced), rather than what a TLS parser "should" do.
//!
//! Layout: [`client_hello`] (bytes out, randomness supplied by the caller so tests are byte
//! exact), [`parse_server_hello`] (bytes in, total: never panics), [`jarm_hash`] (the fuzzy
//! hash) and the thin tokio part [`probe`].

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tracing::debug;

use crate::ProbeError;

/// jarm.py reads one `recv(1484)` per probe: a ServerHello plus whatever else arrived with it.
/// Reading more (or looping) would change what the parser's look-ahead checks see.
pub const READ_LIMIT: usize = 1484;

/// A probe that got no usable ServerHello (refused, reset, alert, not TLS, malformed).
pub const EMPTY_PROBE: &str = "|||";

/// The JARM of a target where no probe got a ServerHello.
pub const NO_TLS: &str = "00000000000000000000000000000000000000000000000000000000000000";

/// Longest host name put in the SNI extension (the DNS limit is 253; IP texts are shorter).
pub const MAX_HOST_LEN: usize = 255;

/// The version a ClientHello claims (record layer and `client_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Ssl3,
    Tls1_0,
    Tls1_1,
    Tls1_2,
    /// TLS 1.3 as a client sends it: record version 0x0301, `client_version` 0x0303.
    Tls1_3,
}

impl TlsVersion {
    /// (record-layer version, handshake `client_version`).
    fn wire(self) -> ([u8; 2], [u8; 2]) {
        match self {
            Self::Ssl3 => ([3, 0], [3, 0]),
            Self::Tls1_0 => ([3, 1], [3, 1]),
            Self::Tls1_1 => ([3, 2], [3, 2]),
            Self::Tls1_2 => ([3, 3], [3, 3]),
            Self::Tls1_3 => ([3, 1], [3, 3]),
        }
    }
}

/// Which cipher list is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherList {
    /// [`CIPHERS_ALL`].
    All,
    /// [`CIPHERS_NO_TLS13`]: the same list without the TLS 1.3 suites ("NO1.3").
    NoTls13,
}

/// How a list (ciphers, ALPN protocols, supported versions) is reordered before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Forward,
    Reverse,
    /// The second half of the reversed list, led by the middle element when the length is odd.
    TopHalf,
    /// The second half of the list (without the middle element when the length is odd).
    BottomHalf,
    /// The middle element (odd lengths), then alternately the next one after and before it.
    MiddleOut,
}

/// Which ALPN protocol list is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlpnList {
    /// [`ALPN_NORMAL`].
    Normal,
    /// [`ALPN_RARE`]: without http/1.1 and h2, to see what a server picks when its usual choice
    /// is missing.
    Rare,
}

/// What the supported_versions extension carries, if it is sent at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupportedVersions {
    /// 0301, 0302, 0303: sent even in TLS 1.2 probes.
    UpTo1_2,
    /// 0301..0304.
    UpTo1_3,
    /// No extension (unless the probe is a TLS 1.3 one, see [`client_hello`]).
    None,
}

/// One of jarm.py's probe definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    /// jarm.py's name for it (used in logs).
    pub name: &'static str,
    pub version: TlsVersion,
    pub ciphers: CipherList,
    pub cipher_order: Order,
    pub grease: bool,
    pub alpn: AlpnList,
    pub supported_versions: SupportedVersions,
    /// Reorders the ALPN list and the supported_versions list (jarm.py's "extension order":
    /// the extensions themselves are always in the same order).
    pub extension_order: Order,
}

// A private constructor that keeps the probe table below one line per probe, in jarm.py's
// column order.
#[allow(clippy::too_many_arguments)]
const fn spec(
    name: &'static str,
    version: TlsVersion,
    ciphers: CipherList,
    cipher_order: Order,
    grease: bool,
    alpn: AlpnList,
    supported_versions: SupportedVersions,
    extension_order: Order,
) -> ProbeSpec {
    ProbeSpec {
        name,
        version,
        ciphers,
        cipher_order,
        grease,
        alpn,
        supported_versions,
        extension_order,
    }
}

/// The ten probes, in jarm.py's order (the order of the per-probe strings in the hash).
/// Note `tls1_1_middle_out` really uses the FORWARD cipher order in jarm.py despite its name.
#[rustfmt::skip]
pub const PROBES: [ProbeSpec; 10] = {
    use AlpnList::{Normal, Rare};
    use CipherList::{All, NoTls13};
    use Order::{BottomHalf, Forward, MiddleOut, Reverse, TopHalf};
    use SupportedVersions::{None as NoSv, UpTo1_2, UpTo1_3};
    use TlsVersion::{Tls1_1, Tls1_2, Tls1_3};
    [
        spec("tls1_2_forward", Tls1_2, All, Forward, false, Normal, UpTo1_2, Reverse),
        spec("tls1_2_reverse", Tls1_2, All, Reverse, false, Normal, UpTo1_2, Forward),
        spec("tls1_2_top_half", Tls1_2, All, TopHalf, false, Normal, NoSv, Forward),
        spec("tls1_2_bottom_half", Tls1_2, All, BottomHalf, false, Rare, NoSv, Forward),
        spec("tls1_2_middle_out", Tls1_2, All, MiddleOut, true, Rare, NoSv, Reverse),
        spec("tls1_1_middle_out", Tls1_1, All, Forward, false, Normal, NoSv, Forward),
        spec("tls1_3_forward", Tls1_3, All, Forward, false, Normal, UpTo1_3, Reverse),
        spec("tls1_3_reverse", Tls1_3, All, Reverse, false, Normal, UpTo1_3, Forward),
        spec("tls1_3_invalid", Tls1_3, NoTls13, Forward, false, Normal, UpTo1_3, Forward),
        spec("tls1_3_middle_out", Tls1_3, All, MiddleOut, true, Normal, UpTo1_3, Reverse),
    ]
};

/// jarm.py's "ALL" cipher list, in its (deliberately unsorted) order.
#[rustfmt::skip]
pub const CIPHERS_ALL: [u16; 69] = [
    0x0016, 0x0033, 0x0067, 0xc09e, 0xc0a2, 0x009e, 0x0039, 0x006b, 0xc09f, 0xc0a3, 0x009f,
    0x0045, 0x00be, 0x0088, 0x00c4, 0x009a, 0xc008, 0xc009, 0xc023, 0xc0ac, 0xc0ae, 0xc02b,
    0xc00a, 0xc024, 0xc0ad, 0xc0af, 0xc02c, 0xc072, 0xc073, 0xcca9, 0x1302, 0x1301, 0xcc14,
    0xc007, 0xc012, 0xc013, 0xc027, 0xc02f, 0xc014, 0xc028, 0xc030, 0xc060, 0xc061, 0xc076,
    0xc077, 0xcca8, 0x1305, 0x1304, 0x1303, 0xcc13, 0xc011, 0x000a, 0x002f, 0x003c, 0xc09c,
    0xc0a0, 0x009c, 0x0035, 0x003d, 0xc09d, 0xc0a1, 0x009d, 0x0041, 0x00ba, 0x0084, 0x00c0,
    0x0007, 0x0004, 0x0005,
];

/// jarm.py's "NO1.3" list: [`CIPHERS_ALL`] without the five TLS 1.3 suites (0x13xx).
#[rustfmt::skip]
pub const CIPHERS_NO_TLS13: [u16; 64] = [
    0x0016, 0x0033, 0x0067, 0xc09e, 0xc0a2, 0x009e, 0x0039, 0x006b, 0xc09f, 0xc0a3, 0x009f,
    0x0045, 0x00be, 0x0088, 0x00c4, 0x009a, 0xc008, 0xc009, 0xc023, 0xc0ac, 0xc0ae, 0xc02b,
    0xc00a, 0xc024, 0xc0ad, 0xc0af, 0xc02c, 0xc072, 0xc073, 0xcca9, 0xcc14, 0xc007, 0xc012,
    0xc013, 0xc027, 0xc02f, 0xc014, 0xc028, 0xc030, 0xc060, 0xc061, 0xc076, 0xc077, 0xcca8,
    0xcc13, 0xc011, 0x000a, 0x002f, 0x003c, 0xc09c, 0xc0a0, 0x009c, 0x0035, 0x003d, 0xc09d,
    0xc0a1, 0x009d, 0x0041, 0x00ba, 0x0084, 0x00c0, 0x0007, 0x0004, 0x0005,
];

/// The table the hash numbers a chosen cipher by (1-based position, two hex digits; a cipher
/// not in it gets 0x46, one past the end, as jarm.py's loop leaves it).
#[rustfmt::skip]
pub const CIPHER_CODES: [u16; 69] = [
    0x0004, 0x0005, 0x0007, 0x000a, 0x0016, 0x002f, 0x0033, 0x0035, 0x0039, 0x003c, 0x003d,
    0x0041, 0x0045, 0x0067, 0x006b, 0x0084, 0x0088, 0x009a, 0x009c, 0x009d, 0x009e, 0x009f,
    0x00ba, 0x00be, 0x00c0, 0x00c4, 0xc007, 0xc008, 0xc009, 0xc00a, 0xc011, 0xc012, 0xc013,
    0xc014, 0xc023, 0xc024, 0xc027, 0xc028, 0xc02b, 0xc02c, 0xc02f, 0xc030, 0xc060, 0xc061,
    0xc072, 0xc073, 0xc076, 0xc077, 0xc09c, 0xc09d, 0xc09e, 0xc09f, 0xc0a0, 0xc0a1, 0xc0a2,
    0xc0a3, 0xc0ac, 0xc0ad, 0xc0ae, 0xc0af, 0xcc13, 0xcc14, 0xcca8, 0xcca9, 0x1301, 0x1302,
    0x1303, 0x1304, 0x1305,
];

/// jarm.py's ALPN list, already length-prefixed, "from weakest to strongest". A missing comma in
/// jarm.py glues `spdy/3` and `h2` into ONE list element, so the list has 8 entries, not 9, and
/// the reordered probes move them together. Reproduced, since it decides the bytes sent.
pub const ALPN_NORMAL: [&[u8]; 8] = [
    b"\x08http/0.9",
    b"\x08http/1.0",
    b"\x08http/1.1",
    b"\x06spdy/1",
    b"\x06spdy/2",
    b"\x06spdy/3\x02h2",
    b"\x03h2c",
    b"\x02hq",
];

/// The rare ALPN list (no http/1.1, no h2).
pub const ALPN_RARE: [&[u8]; 7] = [
    b"\x08http/0.9",
    b"\x08http/1.0",
    b"\x06spdy/1",
    b"\x06spdy/2",
    b"\x06spdy/3",
    b"\x03h2c",
    b"\x02hq",
];

/// Reorders a list as jarm.py's `cipher_mung` does (used for ciphers, ALPN and versions).
pub fn reorder<T: Copy>(items: &[T], order: Order) -> Vec<T> {
    let len = items.len();
    let half = len / 2;
    match order {
        Order::Forward => items.to_vec(),
        Order::Reverse => items.iter().rev().copied().collect(),
        Order::BottomHalf => {
            let start = if len % 2 == 1 { half + 1 } else { half };
            items.get(start..).unwrap_or_default().to_vec()
        }
        Order::TopHalf => {
            // The middle element (odd lengths) goes first, then the bottom half of the reversed
            // list, i.e. the first half backwards.
            let mut out = Vec::with_capacity(half + 1);
            if len % 2 == 1 {
                out.extend(items.get(half).copied());
            }
            out.extend(reorder(&reorder(items, Order::Reverse), Order::BottomHalf));
            out
        }
        Order::MiddleOut => {
            let mut out = Vec::with_capacity(len);
            if len % 2 == 1 {
                out.extend(items.get(half).copied());
                for i in 1..=half {
                    out.extend(items.get(half + i).copied());
                    out.extend(items.get(half - i).copied());
                }
            } else {
                for i in 1..=half {
                    out.extend(items.get(half - 1 + i).copied());
                    out.extend(items.get(half - i).copied());
                }
            }
            out
        }
    }
}

/// One of the 16 GREASE values (RFC 8701), chosen as jarm.py does: each use draws anew.
fn grease<R: RngCore + ?Sized>(rng: &mut R) -> [u8; 2] {
    // 16 values: the low 4 bits of one draw pick one uniformly.
    let b = (((rng.next_u32() & 0x0f) as u8) << 4) | 0x0a;
    [b, b]
}

fn push_u16(out: &mut Vec<u8>, v: usize) {
    // Callers only pass lengths bounded by MAX_HOST_LEN plus fixed-size parts, far below 64 KiB.
    out.extend_from_slice(&u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes());
}

/// Builds probe `spec`'s ClientHello record for `host`, byte for byte as jarm.py does.
///
/// Randomness is drawn from `rng` in jarm.py's order: 32 bytes of client random, a 32-byte
/// session id, then (GREASE probes) a GREASE cipher and a GREASE extension type, then (GREASE
/// probes) a GREASE key share group, the 32-byte x25519 "key" (random bytes, no real key: the
/// handshake is never completed), then (GREASE probes with supported_versions) a GREASE
/// version. Returns `None` when `host` is longer than [`MAX_HOST_LEN`].
pub fn client_hello<R: RngCore + ?Sized>(
    spec: &ProbeSpec,
    host: &str,
    rng: &mut R,
) -> Option<Vec<u8>> {
    if host.len() > MAX_HOST_LEN {
        return None;
    }
    let (record_version, client_version) = spec.version.wire();

    let mut body = Vec::with_capacity(512);
    body.extend_from_slice(&client_version);
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    body.extend_from_slice(&random);
    let mut session_id = [0u8; 32];
    rng.fill_bytes(&mut session_id);
    body.push(32);
    body.extend_from_slice(&session_id);

    let list: &[u16] = match spec.ciphers {
        CipherList::All => &CIPHERS_ALL,
        CipherList::NoTls13 => &CIPHERS_NO_TLS13,
    };
    let mut ciphers = Vec::with_capacity(2 * (list.len() + 1));
    if spec.grease {
        ciphers.extend_from_slice(&grease(rng));
    }
    for c in reorder(list, spec.cipher_order) {
        ciphers.extend_from_slice(&c.to_be_bytes());
    }
    push_u16(&mut body, ciphers.len());
    body.extend_from_slice(&ciphers);
    // One compression method: null.
    body.extend_from_slice(&[0x01, 0x00]);

    let extensions = extensions(spec, host, rng);
    push_u16(&mut body, extensions.len());
    body.extend_from_slice(&extensions);

    // Handshake header: type 1 (ClientHello), 24-bit length.
    let mut handshake = Vec::with_capacity(body.len() + 4);
    handshake.push(0x01);
    handshake.push(0x00);
    push_u16(&mut handshake, body.len());
    handshake.extend_from_slice(&body);

    let mut record = Vec::with_capacity(handshake.len() + 5);
    record.push(0x16);
    record.extend_from_slice(&record_version);
    push_u16(&mut record, handshake.len());
    record.extend_from_slice(&handshake);
    Some(record)
}

/// The extension block (without its length prefix), always in jarm.py's fixed order.
fn extensions<R: RngCore + ?Sized>(spec: &ProbeSpec, host: &str, rng: &mut R) -> Vec<u8> {
    let mut ext = Vec::with_capacity(384);
    if spec.grease {
        // An empty extension of a GREASE type.
        ext.extend_from_slice(&grease(rng));
        ext.extend_from_slice(&[0x00, 0x00]);
    }
    // server_name: one host_name entry.
    ext.extend_from_slice(&[0x00, 0x00]);
    push_u16(&mut ext, host.len() + 5);
    push_u16(&mut ext, host.len() + 3);
    ext.push(0x00);
    push_u16(&mut ext, host.len());
    ext.extend_from_slice(host.as_bytes());
    // extended_master_secret
    ext.extend_from_slice(&[0x00, 0x17, 0x00, 0x00]);
    // max_fragment_length: 2^9
    ext.extend_from_slice(&[0x00, 0x01, 0x00, 0x01, 0x01]);
    // renegotiation_info: empty
    ext.extend_from_slice(&[0xff, 0x01, 0x00, 0x01, 0x00]);
    // supported_groups: x25519, secp256r1, secp384r1, secp521r1
    ext.extend_from_slice(&[
        0x00, 0x0a, 0x00, 0x0a, 0x00, 0x08, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18, 0x00, 0x19,
    ]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // session_ticket: empty
    ext.extend_from_slice(&[0x00, 0x23, 0x00, 0x00]);

    // ALPN, reordered by the extension order.
    let protocols: &[&[u8]] = match spec.alpn {
        AlpnList::Normal => &ALPN_NORMAL,
        AlpnList::Rare => &ALPN_RARE,
    };
    let alpn: Vec<u8> = reorder(protocols, spec.extension_order).concat();
    ext.extend_from_slice(&[0x00, 0x10]);
    push_u16(&mut ext, alpn.len() + 2);
    push_u16(&mut ext, alpn.len());
    ext.extend_from_slice(&alpn);

    // signature_algorithms
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x14, 0x00, 0x12, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03, 0x08,
        0x05, 0x05, 0x01, 0x08, 0x06, 0x06, 0x01, 0x02, 0x01,
    ]);

    // key_share: (GREASE group with a 1-byte share 0x00,) x25519 with 32 random bytes.
    let mut shares = Vec::with_capacity(41);
    if spec.grease {
        shares.extend_from_slice(&grease(rng));
        shares.extend_from_slice(&[0x00, 0x01, 0x00]);
    }
    shares.extend_from_slice(&[0x00, 0x1d, 0x00, 0x20]);
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    shares.extend_from_slice(&key);
    ext.extend_from_slice(&[0x00, 0x33]);
    push_u16(&mut ext, shares.len() + 2);
    push_u16(&mut ext, shares.len());
    ext.extend_from_slice(&shares);

    // psk_key_exchange_modes: psk_dhe_ke
    ext.extend_from_slice(&[0x00, 0x2d, 0x00, 0x02, 0x01, 0x01]);

    // supported_versions: jarm.py sends it for every TLS 1.3 probe and for "1.2_SUPPORT"; the
    // 1.3 list unless the probe says 1.2_SUPPORT.
    if spec.version == TlsVersion::Tls1_3 || spec.supported_versions == SupportedVersions::UpTo1_2 {
        let list: &[[u8; 2]] = if spec.supported_versions == SupportedVersions::UpTo1_2 {
            &[[3, 1], [3, 2], [3, 3]]
        } else {
            &[[3, 1], [3, 2], [3, 3], [3, 4]]
        };
        let mut versions = Vec::with_capacity(10);
        if spec.grease {
            versions.extend_from_slice(&grease(rng));
        }
        for v in reorder(list, spec.extension_order) {
            versions.extend_from_slice(&v);
        }
        ext.extend_from_slice(&[0x00, 0x2b]);
        push_u16(&mut ext, versions.len() + 1);
        ext.push(u8::try_from(versions.len()).unwrap_or(u8::MAX));
        ext.extend_from_slice(&versions);
    }
    ext
}

/// Python's `data[a:b]`: clamped, never out of range.
fn py_slice(data: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(data.len());
    let start = start.min(end);
    data.get(start..end).unwrap_or_default()
}

/// Python's `int(codecs.encode(bytes, 'hex'), 16)`: big-endian, and an error (`None`) on an
/// empty slice, which jarm.py turns into an empty probe result.
fn py_hex_int(bytes: &[u8]) -> Option<usize> {
    if bytes.is_empty() {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)),
    )
}

fn hex_lower(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Reduces one answer (the bytes of one read, at most [`READ_LIMIT`]) to jarm.py's per-probe
/// string: `cipher|version|alpn|ext-ext-...`, or [`EMPTY_PROBE`] for an alert, a non-handshake
/// record, a record that is not a ServerHello, or anything jarm.py's parser would throw on.
///
/// This follows jarm.py's fixed offsets, not a TLS parser: the version is the ServerHello's
/// legacy version (0303 for TLS 1.3 too), and data short of an offset behaves as Python's
/// clamped slices do (a cut-off cipher yields fewer hex digits, not an error).
pub fn parse_server_hello(data: &[u8]) -> String {
    read_packet(data).unwrap_or_else(|| EMPTY_PROBE.to_owned())
}

/// `None` wherever jarm.py's `read_packet` ends in `return "|||"` or an exception.
fn read_packet(data: &[u8]) -> Option<String> {
    // Alert (21) or anything but a handshake record carrying a ServerHello (type 2).
    if *data.first()? != 22 || *data.get(5)? != 2 {
        return None;
    }
    let session_id_len = usize::from(*data.get(43)?);
    let cipher = py_slice(data, session_id_len + 44, session_id_len + 46);
    let version = py_slice(data, 9, 11);
    let extensions = extension_info(data, session_id_len)?;
    Some(format!(
        "{}|{}|{extensions}",
        hex_lower(cipher),
        hex_lower(version)
    ))
}

/// jarm.py's `extract_extension_info`: `Some("alpn|types")`, `Some("|||")` where it returns that
/// (its own error checks and a short answer), `None` where it raises something other than an
/// IndexError (which `read_packet` turns into an empty probe).
fn extension_info(data: &[u8], session_id_len: usize) -> Option<String> {
    let c = session_id_len;
    let Some(&ext_len_hi) = data.get(c + 47) else {
        // IndexError, caught here: the probe keeps its cipher and version.
        return Some(EMPTY_PROBE.to_owned());
    };
    // jarm.py's error handling: a Certificate (11) where the extensions length should be (a
    // ServerHello without extensions followed by more handshake in the same record), and two
    // byte patterns it treats as the same case.
    if ext_len_hi == 11
        || py_slice(data, c + 50, c + 53) == [0x0e, 0xac, 0x0b]
        || py_slice(data, 82, 85) == [0x0f, 0xf0, 0x0b]
    {
        return Some(EMPTY_PROBE.to_owned());
    }
    let mut count = 49 + c;
    let length = py_hex_int(py_slice(data, c + 47, c + 49))?;
    // jarm.py stops one byte short of the block's end (`maximum = length + count - 1`).
    let maximum = length + count - 1;
    let mut types: Vec<&[u8]> = Vec::new();
    // `None` stands for jarm.py's `""` (a zero-length extension), which is a str, not bytes.
    let mut values: Vec<Option<&[u8]>> = Vec::new();
    while count < maximum {
        types.push(py_slice(data, count, count + 2));
        // An empty slice here raises ValueError: the whole probe is empty. That also bounds
        // this loop by the input's length.
        let ext_len = py_hex_int(py_slice(data, count + 2, count + 4))?;
        if ext_len == 0 {
            count += 4;
            values.push(None);
        } else {
            values.push(Some(py_slice(data, count + 4, count + 4 + ext_len)));
            count += ext_len + 4;
        }
    }

    // The first ALPN extension's protocol text: its value past the 2-byte list length and the
    // 1-byte name length. A zero-length ALPN extension (`"".decode()`: AttributeError) or a name
    // that is not UTF-8 (UnicodeDecodeError) makes the probe empty, as in jarm.py.
    let mut alpn = "";
    if let Some(i) = types.iter().position(|t| *t == [0x00, 0x10]) {
        let value = (*values.get(i)?)?;
        alpn = std::str::from_utf8(py_slice(value, 3, value.len())).ok()?;
    }
    let types: Vec<String> = types.iter().map(|t| hex_lower(t)).collect();
    Some(format!("{alpn}|{}", types.join("-")))
}

/// The fuzzy hash over the ten per-probe strings joined with `,` (jarm.py's raw JARM).
///
/// For each probe: two hex digits numbering its cipher in [`CIPHER_CODES`] (`00` when there is
/// none) and one letter for its version's last digit (`a`=SSLv3 .. `e`=TLS 1.3 as 0304; `0` when
/// there is none); then the first 32 hex digits of SHA-256 over all ALPN and extension strings
/// concatenated. Ten probes give 62 characters.
///
/// Like jarm.py this splits on `,` and `|` without escaping, so a server whose ALPN text holds
/// one of them shifts the fields, exactly as it does there. A version whose fourth hex digit is
/// not 0-5 makes jarm.py crash; here it gets `0`, as if it were absent.
pub fn jarm_hash(raw: &str) -> String {
    if raw == [EMPTY_PROBE; 10].join(",") {
        return NO_TLS.to_owned();
    }
    let mut fuzzy = String::with_capacity(62);
    let mut alpns_and_ext = String::new();
    for handshake in raw.split(',') {
        let mut parts = handshake.split('|');
        let cipher = parts.next().unwrap_or_default();
        let version = parts.next().unwrap_or_default();
        fuzzy.push_str(&cipher_code(cipher));
        fuzzy.push(version_code(version));
        alpns_and_ext.push_str(parts.next().unwrap_or_default());
        alpns_and_ext.push_str(parts.next().unwrap_or_default());
    }
    let digest = Sha256::digest(alpns_and_ext.as_bytes());
    for b in digest.iter().take(16) {
        let _ = write!(fuzzy, "{b:02x}");
    }
    fuzzy
}

/// jarm.py's `cipher_bytes`: 1-based position in [`CIPHER_CODES`] as two hex digits.
fn cipher_code(cipher: &str) -> String {
    if cipher.is_empty() {
        return "00".to_owned();
    }
    let position = CIPHER_CODES
        .iter()
        .position(|c| format!("{c:04x}") == cipher)
        .unwrap_or(CIPHER_CODES.len());
    format!("{:02x}", position + 1)
}

/// jarm.py's `version_byte`: the fourth hex digit 0..5 as `a`..`f`.
fn version_code(version: &str) -> char {
    if version.is_empty() {
        return '0';
    }
    match version.as_bytes().get(3) {
        Some(d @ b'0'..=b'5') => char::from(b'a' + (d - b'0')),
        _ => '0',
    }
}

/// Why one probe produced no ServerHello bytes.
enum Attempt {
    Answer(Vec<u8>),
    /// Connection refused, reset, closed: jarm.py's `None`, this probe is empty.
    Failed(std::io::Error),
    /// jarm.py's "TIMEOUT": the whole JARM is empty.
    TimedOut,
}

async fn attempt(target: SocketAddr, hello: &[u8], timeout: Duration) -> Attempt {
    let exchange = async {
        let mut stream = TcpStream::connect(target).await?;
        stream.write_all(hello).await?;
        // One read, as jarm.py's single recv(1484): the parser's look-ahead checks depend on
        // what arrived together with the ServerHello.
        let mut buf = vec![0u8; READ_LIMIT];
        let n = stream.read(&mut buf).await?;
        buf.truncate(n);
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(bytes)) => Attempt::Answer(bytes),
        Ok(Err(e)) => Attempt::Failed(e),
        Err(_) => Attempt::TimedOut,
    }
}

/// JARM of the TLS server at `target`, sending `host` as SNI (jarm.py sends the name it was
/// given, so for an IP target pass the IP's text). Ten sequential connections, each bounded by
/// `timeout` (connect, send and the one read together).
///
/// `Ok(None)` when no probe got a ServerHello (the all-zero JARM: not TLS, closed, filtered).
/// As in jarm.py, a probe that is refused or reset is empty and the next one is tried, while a
/// probe that times out makes the whole JARM empty and ends the run (a silent port is not
/// waited on ten times). `Err` only when nothing could be attempted: a host too long for the
/// SNI, or every connection failing locally (e.g. no route) rather than being refused.
pub async fn probe(
    target: SocketAddr,
    host: &str,
    timeout: Duration,
) -> Result<Option<String>, ProbeError> {
    // Build all ten hellos first: the thread-local RNG must not be held across an await.
    let hellos = {
        let mut rng = rand::rng();
        PROBES
            .iter()
            .map(|spec| client_hello(spec, host, &mut rng))
            .collect::<Option<Vec<_>>>()
    };
    let Some(hellos) = hellos else {
        return Err(ProbeError::Protocol {
            target,
            reason: format!("host name of {} bytes does not fit an SNI", host.len()),
        });
    };

    let mut answers = Vec::with_capacity(PROBES.len());
    let mut local_failure = None;
    let mut reached = false;
    for (spec, hello) in PROBES.iter().zip(&hellos) {
        match attempt(target, hello, timeout).await {
            Attempt::Answer(bytes) => {
                reached = true;
                let answer = parse_server_hello(&bytes);
                debug!(%target, probe = spec.name, bytes = bytes.len(), %answer, "jarm probe");
                answers.push(answer);
            }
            Attempt::Failed(e) => {
                debug!(%target, probe = spec.name, error = %e, "jarm probe failed");
                // Refused or reset means the target answered at the TCP level.
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) {
                    reached = true;
                } else if !reached
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::HostUnreachable
                            | std::io::ErrorKind::NetworkUnreachable
                            | std::io::ErrorKind::AddrNotAvailable
                    )
                {
                    // The other nine would each wait out the same failed neighbour lookup.
                    return Err(ProbeError::Io { target, source: e });
                } else {
                    local_failure = Some(e);
                }
                answers.push(EMPTY_PROBE.to_owned());
            }
            Attempt::TimedOut => {
                debug!(%target, probe = spec.name, ?timeout, "jarm probe timed out: no JARM");
                return Ok(None);
            }
        }
    }
    if let (false, Some(source)) = (reached, local_failure) {
        return Err(ProbeError::Io { target, source });
    }
    let raw = answers.join(",");
    let jarm = jarm_hash(&raw);
    debug!(%target, %raw, %jarm, "jarm");
    Ok((jarm != NO_TLS).then_some(jarm))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic RNG: `fill_bytes` writes a running byte counter (0x00, 0x01, ... across
    /// calls), `next_u32` returns a fixed value (so GREASE is always `0x5a5a` with 5).
    struct CounterRng {
        next: u8,
        word: u32,
    }

    impl RngCore for CounterRng {
        fn next_u32(&mut self) -> u32 {
            self.word
        }
        fn next_u64(&mut self) -> u64 {
            u64::from(self.word)
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            for b in dst {
                *b = self.next;
                self.next = self.next.wrapping_add(1);
            }
        }
    }

    fn rng() -> CounterRng {
        CounterRng { next: 0, word: 5 }
    }

    fn unhex(s: &str) -> Vec<u8> {
        let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(clean).unwrap()
    }

    fn counter(from: u8, n: u8) -> String {
        (from..from + n).map(|b| format!("{b:02x}")).collect()
    }

    // The fixed extensions every probe carries between SNI and ALPN, and after ALPN.
    const MIDDLE_EXTS: &str = "00170000 0001000101 ff01000100 000a000a0008001d001700180019
        000b00020100 00230000";
    const SIGALGS: &str = "000d00140012040308040401050308050501080606010201";
    const PSK_MODES: &str = "002d00020101";
    // ALPN entries, length-prefixed.
    const H09: &str = "08687474702f302e39";
    const H10: &str = "08687474702f312e30";
    const H11: &str = "08687474702f312e31";
    const SPDY1: &str = "06737064792f31";
    const SPDY2: &str = "06737064792f32";
    const SPDY3: &str = "06737064792f33";
    const H2: &str = "026832";
    const H2C: &str = "03683263";
    const HQ: &str = "026871";

    #[test]
    fn cipher_lists_are_the_published_sizes_and_no13_is_all_without_13xx() {
        assert_eq!(CIPHERS_ALL.len(), 69);
        let no13: Vec<u16> = CIPHERS_ALL
            .iter()
            .copied()
            .filter(|c| c >> 8 != 0x13)
            .collect();
        assert_eq!(no13, CIPHERS_NO_TLS13);
        // The code table holds exactly the offered suites, sorted the way jarm.py lists them.
        let mut sorted = CIPHERS_ALL;
        sorted.sort_unstable_by_key(|c| (if c >> 8 == 0x13 { 1 } else { 0 }, *c));
        assert_eq!(sorted, CIPHER_CODES);
    }

    #[test]
    fn reorder_matches_jarm_cipher_mung_on_small_lists() {
        let odd = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let even = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(reorder(&odd, Order::Forward), odd);
        assert_eq!(reorder(&odd, Order::Reverse), [9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(reorder(&odd, Order::BottomHalf), [6, 7, 8, 9]);
        assert_eq!(reorder(&even, Order::BottomHalf), [5, 6, 7, 8]);
        // Odd: middle first, then the bottom half of the reversed list (4, 3, 2, 1).
        assert_eq!(reorder(&odd, Order::TopHalf), [5, 4, 3, 2, 1]);
        assert_eq!(reorder(&even, Order::TopHalf), [4, 3, 2, 1]);
        assert_eq!(reorder(&odd, Order::MiddleOut), [5, 6, 4, 7, 3, 8, 2, 9, 1]);
        assert_eq!(reorder(&even, Order::MiddleOut), [5, 4, 6, 3, 7, 2, 8, 1]);
        assert_eq!(reorder::<u8>(&[], Order::MiddleOut), Vec::<u8>::new());
        assert_eq!(reorder(&[7], Order::TopHalf), [7]);
    }

    #[test]
    fn tls1_2_forward_client_hello_is_byte_exact() {
        let hello = client_hello(&PROBES[0], "example.com", &mut rng()).unwrap();
        let ciphers: String = CIPHERS_ALL.iter().map(|c| format!("{c:04x}")).collect();
        // Extension order REVERSE: the ALPN list backwards (spdy/3 and h2 stay glued), and the
        // 1.2_SUPPORT versions backwards.
        let alpn = [HQ, H2C, SPDY3, H2, SPDY2, SPDY1, H11, H10, H09].concat();
        let expected = format!(
            "16 0303 01a4
             01 0001a0
             0303 {random} 20 {session}
             008a {ciphers} 01 00
             00cd
             0000 0010 000e 00 000b 6578616d706c652e636f6d
             {MIDDLE_EXTS}
             0010 003c 003a {alpn}
             {SIGALGS}
             0033 0026 0024 001d 0020 {key}
             {PSK_MODES}
             002b 0007 06 030303020301",
            random = counter(0, 32),
            session = counter(32, 32),
            key = counter(64, 32),
        );
        let expected = unhex(&expected);
        assert_eq!(hex::encode(&hello), hex::encode(&expected));
        // Lengths worked out by hand: 205 bytes of extensions, 416 of ClientHello body.
        assert_eq!(hello.len(), 5 + 4 + 416);
    }

    #[test]
    fn tls1_3_middle_out_client_hello_is_byte_exact() {
        let hello = client_hello(&PROBES[9], "10.0.0.1", &mut rng()).unwrap();
        // MIDDLE_OUT over 69 suites: index 34 first, then 35, 33, 36, 32, ... 68, 0.
        let mut order = vec![34usize];
        for i in 1..=34 {
            order.push(34 + i);
            order.push(34 - i);
        }
        let ciphers: String = order
            .iter()
            .map(|&i| format!("{:04x}", CIPHERS_ALL[i]))
            .collect();
        assert!(ciphers.starts_with("c012c013c007c027cc14"));
        assert!(ciphers.ends_with("00050016"));
        // Extension order REVERSE again; GREASE (0x5a5a from the fixed RNG) leads the cipher
        // list, the extensions, the key shares and the supported versions.
        let alpn = [HQ, H2C, SPDY3, H2, SPDY2, SPDY1, H11, H10, H09].concat();
        let expected = format!(
            "16 0301 01b0
             01 0001ac
             0303 {random} 20 {session}
             008c 5a5a {ciphers} 01 00
             00d7
             5a5a 0000
             0000 000d 000b 00 0008 31302e302e302e31
             {MIDDLE_EXTS}
             0010 003c 003a {alpn}
             {SIGALGS}
             0033 002b 0029 5a5a 0001 00 001d 0020 {key}
             {PSK_MODES}
             002b 000b 0a 5a5a 0304030303020301",
            random = counter(0, 32),
            session = counter(32, 32),
            key = counter(64, 32),
        );
        assert_eq!(hex::encode(&hello), hex::encode(unhex(&expected)));
    }

    #[test]
    fn rare_alpn_top_half_and_no_support_probe_has_no_supported_versions() {
        // tls1_2_bottom_half: rare ALPN forward, no supported_versions.
        let hello = client_hello(&PROBES[3], "a", &mut rng()).unwrap();
        let h = hex::encode(&hello);
        let alpn = [H09, H10, SPDY1, SPDY2, SPDY3, H2C, HQ].concat();
        assert!(h.contains(&format!(
            "0010{:04x}{:04x}{alpn}",
            alpn.len() / 2 + 2,
            alpn.len() / 2
        )));
        assert!(h.ends_with(PSK_MODES));
        // Bottom half of 69 suites: indices 35..69.
        let bottom: String = CIPHERS_ALL[35..]
            .iter()
            .map(|c| format!("{c:04x}"))
            .collect();
        assert!(h.contains(&format!("{:04x}{bottom}0100", 34 * 2)));
        // tls1_2_top_half: index 34, then 33 down to 0.
        let hello = hex::encode(client_hello(&PROBES[2], "a", &mut rng()).unwrap());
        let mut top = format!("{:04x}", CIPHERS_ALL[34]);
        for i in (0..34).rev() {
            top.push_str(&format!("{:04x}", CIPHERS_ALL[i]));
        }
        assert!(hello.contains(&format!("{:04x}{top}0100", 35 * 2)));
        // tls1_1: record and client version 0302.
        let hello = client_hello(&PROBES[5], "a", &mut rng()).unwrap();
        assert_eq!(&hello[..3], &[0x16, 0x03, 0x02]);
        assert_eq!(&hello[9..11], &[0x03, 0x02]);
    }

    #[test]
    fn every_probe_is_a_consistently_framed_record() {
        for spec in &PROBES {
            let hello = client_hello(spec, "host.example", &mut rng()).unwrap();
            let record_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
            assert_eq!(record_len + 5, hello.len(), "{}", spec.name);
            assert_eq!(hello[5], 0x01);
            let hs_len = usize::from(u16::from_be_bytes([hello[7], hello[8]]));
            assert_eq!(hs_len + 4, record_len);
            // Walk the extensions: they must exactly fill their block.
            let cs_len = usize::from(u16::from_be_bytes([hello[76], hello[77]]));
            let mut at = 78 + cs_len + 2;
            let ext_len = usize::from(u16::from_be_bytes([hello[at], hello[at + 1]]));
            at += 2;
            assert_eq!(at + ext_len, hello.len(), "{}", spec.name);
            while at < hello.len() {
                at += 4 + usize::from(u16::from_be_bytes([hello[at + 2], hello[at + 3]]));
            }
            assert_eq!(at, hello.len(), "{}", spec.name);
        }
        assert!(client_hello(&PROBES[0], &"x".repeat(256), &mut rng()).is_none());
    }

    /// A ServerHello record: legacy version 0303, random, session id, cipher, null compression,
    /// then `exts` (type, body) pairs; `trailing` is appended after the record.
    fn server_hello(sid_len: u8, cipher: u16, exts: &[(u16, &[u8])], trailing: &[u8]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([0xab; 32]);
        body.push(sid_len);
        body.extend(vec![0xcd; usize::from(sid_len)]);
        body.extend(cipher.to_be_bytes());
        body.push(0);
        let mut ext = Vec::new();
        for (t, v) in exts {
            ext.extend(t.to_be_bytes());
            ext.extend(u16::try_from(v.len()).unwrap().to_be_bytes());
            ext.extend(*v);
        }
        body.extend(u16::try_from(ext.len()).unwrap().to_be_bytes());
        body.extend(ext);
        let mut hs = vec![0x02, 0x00];
        hs.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        hs.extend(body);
        let mut rec = vec![0x16, 0x03, 0x03];
        rec.extend(u16::try_from(hs.len()).unwrap().to_be_bytes());
        rec.extend(hs);
        rec.extend(trailing);
        rec
    }

    #[test]
    fn server_hello_is_reduced_to_cipher_version_alpn_and_extension_types() {
        let alpn_h2: &[u8] = b"\x00\x03\x02h2";
        let hello = server_hello(
            32,
            0xc02f,
            &[
                (0xff01, b"\x00"),
                (0x0000, b""),
                (0x0010, alpn_h2),
                (0x000b, b"\x01\x00"),
            ],
            b"\x16\x03\x03\x00\x10\x0b",
        );
        assert_eq!(
            parse_server_hello(&hello),
            "c02f|0303|h2|ff01-0000-0010-000b"
        );
        // TLS 1.3: no session id echo here, ALPN absent.
        let hello = server_hello(0, 0x1302, &[(0x002b, b"\x03\x04"), (0x0033, &[7; 36])], b"");
        assert_eq!(parse_server_hello(&hello), "1302|0303||002b-0033");
        // No extensions at all.
        let hello = server_hello(32, 0x009e, &[], b"");
        assert_eq!(parse_server_hello(&hello), "009e|0303||");
    }

    #[test]
    fn alerts_garbage_and_short_answers_follow_jarm_py() {
        assert_eq!(parse_server_hello(b""), EMPTY_PROBE);
        // handshake_failure alert
        assert_eq!(
            parse_server_hello(b"\x15\x03\x03\x00\x02\x02\x28"),
            EMPTY_PROBE
        );
        assert_eq!(parse_server_hello(b"SSH-2.0-OpenSSH_9.2\r\n"), EMPTY_PROBE);
        assert_eq!(
            parse_server_hello(b"HTTP/1.1 400 Bad Request\r\n"),
            EMPTY_PROBE
        );
        // A handshake record that is not a ServerHello (type 11 in byte 5).
        let mut not_hello = server_hello(32, 0xc02f, &[], b"");
        not_hello[5] = 11;
        assert_eq!(parse_server_hello(&not_hello), EMPTY_PROBE);
        // Offsets with a 32-byte session id: 76-77 cipher, 78 compression, 79-80 extensions
        // length. Cut after the compression byte: jarm.py's caught IndexError keeps cipher and
        // version and appends "|||".
        let full = server_hello(32, 0xc02f, &[(0xff01, b"\x00")], b"");
        assert_eq!(parse_server_hello(&full[..79]), "c02f|0303||||");
        // Cut in the middle of an extension header: ValueError, the whole probe is empty.
        assert_eq!(parse_server_hello(&full[..full.len() - 3]), EMPTY_PROBE);
        // Cut inside the cipher: Python's clamped slice gives a short hex string.
        assert_eq!(parse_server_hello(&full[..77]), "c0|0303||||");
        // A zero-length ALPN extension or a non-UTF-8 protocol name: empty probe.
        let zero_alpn = server_hello(32, 0xc02f, &[(0x0010, b"")], b"");
        assert_eq!(parse_server_hello(&zero_alpn), EMPTY_PROBE);
        let bad_alpn = server_hello(32, 0xc02f, &[(0x0010, b"\x00\x03\x02\xff\xfe")], b"");
        assert_eq!(parse_server_hello(&bad_alpn), EMPTY_PROBE);
        // A ServerHello without extensions followed, in the same record, by a Certificate.
        let mut merged = server_hello(0, 0xc02f, &[], b"");
        merged.truncate(merged.len() - 2);
        merged.extend([0x0b, 0x00, 0x01, 0x00]);
        assert_eq!(parse_server_hello(&merged), "c02f|0303||||");
    }

    #[test]
    fn hash_matches_published_examples() {
        // Published raw JARM / hash pairs (jarm.py -v output quoted in the docs of the R
        // `jarm` package for rud.is:443, and of jarmcpp for mfmokbel.com:443), also confirmed
        // with pyjarm's hasher.
        let rudis = "009e|0303|h2|0000-ff01-0010,c030|0303|h2|0000-ff01-000b-0010,009f|0303|h2|0000-ff01-0010,c02f|0303||0000-ff01-000b,c02f|0303||0000-ff01-000b,|||,009e|0303|h2|0000-ff01-0010,c030|0303|h2|0000-ff01-000b-0010,009e|0303|h2|0000-ff01-0010,c02f|0303|h2|0000-ff01-000b-0010";
        assert_eq!(
            jarm_hash(rudis),
            "15d2ad16d29d29d00015d2ad15d29dd1c3ca624d74ad1df5cec63008795502"
        );
        let mfmokbel = [
            "c02f|0303|h2|ff01-0000-0001-000b-0023-0010-0017",
            "c02f|0303|h2|ff01-0000-0001-000b-0023-0010-0017",
            "009e|0303|h2|ff01-0000-0001-0023-0010-0017",
            "c02f|0303|http/1.1|ff01-0000-0001-000b-0023-0010-0017",
            "c02f|0303|http/1.1|ff01-0000-0001-000b-0023-0010-0017",
            "|||",
            "1302|0303||002b-0033",
            "1302|0303||002b-0033",
            "|||",
            "|||",
        ]
        .join(",");
        assert_eq!(
            jarm_hash(&mfmokbel),
            "29d29d15d29d29d00042d42d000000cd600c085f371f8533aaf66051f8e5b1"
        );
    }

    #[test]
    fn hash_codes_by_hand() {
        assert_eq!(jarm_hash(&[EMPTY_PROBE; 10].join(",")), NO_TLS);
        assert_eq!(NO_TLS.len(), 62);
        // c02f is the 41st entry of the code table (0x29), 0303 -> 'd'; an unknown cipher is
        // 0x46 (one past the 69 entries); 0301 -> 'b', 0304 -> 'e'.
        let raw = ["c02f|0303|h2|0010-002b", "abcd|0301||", "1305|0304||"]
            .into_iter()
            .chain([EMPTY_PROBE; 7])
            .collect::<Vec<_>>()
            .join(",");
        let h = jarm_hash(&raw);
        assert_eq!(&h[..30], format!("29d46b45e{}", "000".repeat(7)));
        let sha = hex::encode(Sha256::digest(b"h20010-002b"));
        assert_eq!(&h[30..], &sha[..32]);
        // A version jarm.py cannot code (it would crash) is treated as absent.
        assert_eq!(version_code("0309"), '0');
        assert_eq!(version_code("03"), '0');
        assert_eq!(version_code("0300"), 'a');
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn parser_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..1484)) {
                let s = parse_server_hello(&data);
                let _ = jarm_hash(&s);
            }

            #[test]
            fn parser_never_panics_on_mutated_server_hellos(
                sid in 0u8..=32,
                exts in proptest::collection::vec((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..8),
                flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                cut in any::<usize>(),
            ) {
                let ext_refs: Vec<(u16, &[u8])> = exts.iter().map(|(t, v)| (*t, v.as_slice())).collect();
                let mut data = super::server_hello(sid, 0xc02f, &ext_refs, b"");
                let n = data.len();
                for (at, v) in flips {
                    data[at % n] = v;
                }
                data.truncate(cut % (n + 1));
                let s = parse_server_hello(&data);
                prop_assert!(s.split('|').count() >= 4);
            }

            #[test]
            fn hash_never_panics_and_is_62_chars_for_ten_probes(parts in proptest::collection::vec("[0-9a-f|]{0,12}", 10)) {
                let raw = parts.join(",");
                let h = jarm_hash(&raw);
                // Ten probes (no commas inside): 10 x 3 code characters + 32 hex digits.
                prop_assert_eq!(h.len(), 62);
            }
        }
    }
}
