//! TLS handshake fingerprints: JA3 / JA4 (client), JA3S (server), certificate summary.
//!
//! Input is the start of a TCP stream as reassembled by the analyzer. [`handshake_messages`]
//! joins the handshake-record fragments (a ClientHello with a post-quantum key share spans
//! several records and segments) and cuts complete messages out of them; everything is bounded
//! by the caller's stream cap.
//!
//! JA3/JA3S follow Salesforce's definition (decimal values, GREASE removed from every list);
//! JA4 follows FoxIO's `JA4.md` for the TLS client (BSD-3 part only; the FoxIO-licensed JA4+
//! variants are not implemented).

use super::{Reader, Short, md5_hex, sha256_hex};

/// Handshake message types used here.
pub mod hs {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_HELLO_DONE: u8 = 14;
}

const RECORD_HANDSHAKE: u8 = 22;

/// Why a handshake message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("not a TLS handshake record (content type {0})")]
    NotHandshake(u8),
    #[error("TLS record version {0:#06x} is not SSL 3.0 – TLS 1.3")]
    BadRecordVersion(u16),
    #[error("handshake message type {found}, expected {expected}")]
    WrongMessage { expected: u8, found: u8 },
    #[error(transparent)]
    Short(#[from] Short),
}

/// GREASE values (RFC 8701): both bytes equal, low nibble 0xa.
pub fn is_grease(v: u16) -> bool {
    (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Whether `stream` looks like the start of TLS (handshake record, SSL3+/TLS version), or is
/// too short to tell otherwise (a client may send its first byte alone).
pub fn looks_like_tls(stream: &[u8]) -> bool {
    matches!(
        stream,
        [RECORD_HANDSHAKE] | [RECORD_HANDSHAKE, 3] | [RECORD_HANDSHAKE, 3, 0..=4, ..]
    )
}

/// Complete handshake messages at the start of a stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// `(type, body)` in order.
    pub messages: Vec<(u8, Vec<u8>)>,
    /// A non-handshake record (ChangeCipherSpec, alert, application data) followed: nothing
    /// more will come in clear.
    pub ended: bool,
    /// The stream length below which another call cannot complete another message (a lower
    /// bound): a caller fed one segment at a time waits for it instead of cutting the same
    /// records again on every byte, which would cost the square of the stream's length.
    pub need: usize,
}

/// Cut the handshake messages out of the records at the start of `stream`. Incomplete trailing
/// data is ignored (call again with more bytes).
pub fn handshake_messages(stream: &[u8]) -> Result<Handshake, TlsError> {
    let mut out = Handshake::default();
    let mut joined: Vec<u8> = Vec::new();
    let mut r = Reader::new(stream);
    // Payload length of an incomplete last record whose header is in.
    let mut partial = None;
    while r.remaining() >= 5 {
        let head = r.rest();
        let (ctype, version) = (head[0], u16::from_be_bytes([head[1], head[2]]));
        if ctype != RECORD_HANDSHAKE {
            if out.messages.is_empty() && joined.is_empty() {
                return Err(TlsError::NotHandshake(ctype));
            }
            out.ended = true;
            break;
        }
        if !(0x0300..=0x0304).contains(&version) {
            return Err(TlsError::BadRecordVersion(version));
        }
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        if r.remaining() < 5 + len {
            partial = Some(len);
            break;
        }
        let _ = r.take(5, "record header")?;
        joined.extend_from_slice(r.take(len, "record")?);
    }
    let records_end = stream.len() - r.remaining();
    let mut m = Reader::new(&joined);
    let message_len = |rest: &[u8]| match rest {
        [_, a, b, c, ..] => {
            Some(4 + (usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c)))
        }
        _ => None,
    };
    while let Some(len) = message_len(m.rest()) {
        if m.remaining() < len {
            break;
        }
        let t = m.u8("handshake type")?;
        let body = m.vec(3, "handshake body")?;
        out.messages.push((t, body.to_vec()));
    }
    // Handshake bytes the next message still lacks (at least its 4-byte header).
    let missing = message_len(m.rest()).unwrap_or(4) - m.remaining();
    // Only whole records are read: the message completes at the end of the record that
    // brings its last byte, one more record header (5 bytes) for each record it takes.
    out.need = match partial {
        Some(len) if len >= missing => records_end + 5 + len,
        Some(len) => records_end + 5 + len + 5 + (missing - len),
        None => records_end + 5 + missing,
    };
    Ok(out)
}

/// The fields of a ClientHello that fingerprints use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    /// Cipher suites in wire order (GREASE included; the fingerprints drop it).
    pub ciphers: Vec<u16>,
    /// Extension types in wire order (GREASE included).
    pub extensions: Vec<u16>,
    pub groups: Vec<u16>,
    pub point_formats: Vec<u8>,
    pub signature_algorithms: Vec<u16>,
    pub sni: Option<String>,
    pub alpn: Vec<Vec<u8>>,
    pub supported_versions: Vec<u16>,
}

/// Parse a ClientHello body (after the 4-byte handshake header).
pub fn parse_client_hello(body: &[u8]) -> Result<ClientHello, TlsError> {
    let mut r = Reader::new(body);
    let mut ch = ClientHello {
        legacy_version: r.u16("client version")?,
        ..ClientHello::default()
    };
    r.take(32, "random")?;
    r.vec(1, "session id")?;
    let mut ciphers = Reader::new(r.vec(2, "cipher suites")?);
    while ciphers.remaining() >= 2 {
        ch.ciphers.push(ciphers.u16("cipher")?);
    }
    r.vec(1, "compression methods")?;
    if r.remaining() == 0 {
        // SSL 3.0 / early TLS: no extensions block at all.
        return Ok(ch);
    }
    let mut exts = Reader::new(r.vec(2, "extensions")?);
    while exts.remaining() > 0 {
        let ty = exts.u16("extension type")?;
        let data = exts.vec(2, "extension data")?;
        ch.extensions.push(ty);
        let mut d = Reader::new(data);
        match ty {
            0x0000 => {
                let mut list = Reader::new(d.vec(2, "server name list")?);
                while list.remaining() > 0 {
                    let name_type = list.u8("name type")?;
                    let name = list.vec(2, "host name")?;
                    if name_type == 0 && ch.sni.is_none() {
                        ch.sni = Some(super::printable(name));
                    }
                }
            }
            0x000a => {
                let mut list = Reader::new(d.vec(2, "supported groups")?);
                while list.remaining() >= 2 {
                    ch.groups.push(list.u16("group")?);
                }
            }
            0x000b => ch.point_formats = d.vec(1, "point formats")?.to_vec(),
            0x000d => {
                let mut list = Reader::new(d.vec(2, "signature algorithms")?);
                while list.remaining() >= 2 {
                    ch.signature_algorithms
                        .push(list.u16("signature algorithm")?);
                }
            }
            0x0010 => {
                let mut list = Reader::new(d.vec(2, "alpn list")?);
                while list.remaining() > 0 {
                    ch.alpn.push(list.vec(1, "alpn protocol")?.to_vec());
                }
            }
            0x002b => {
                let mut list = Reader::new(d.vec(1, "supported versions")?);
                while list.remaining() >= 2 {
                    ch.supported_versions.push(list.u16("version")?);
                }
            }
            _ => {}
        }
    }
    Ok(ch)
}

fn join_dec<T: ToString + Copy>(vals: impl Iterator<Item = T>) -> String {
    vals.map(|v| v.to_string()).collect::<Vec<_>>().join("-")
}

fn no_grease(v: &[u16]) -> impl Iterator<Item = u16> + '_ {
    v.iter().copied().filter(|x| !is_grease(*x))
}

/// JA4's two-character version code.
fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// First 12 hex characters of SHA-256, or twelve zeros for an empty list (JA4 rule).
fn ja4_hash(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".to_owned();
    }
    sha256_hex(text.as_bytes())[..12].to_owned()
}

fn hex4(vals: &[u16]) -> String {
    vals.iter()
        .map(|v| format!("{v:04x}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl ClientHello {
    /// The JA3 string: `version,ciphers,extensions,groups,point_formats`.
    pub fn ja3_string(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.legacy_version,
            join_dec(no_grease(&self.ciphers)),
            join_dec(no_grease(&self.extensions)),
            join_dec(no_grease(&self.groups)),
            join_dec(self.point_formats.iter().copied()),
        )
    }

    pub fn ja3(&self) -> String {
        md5_hex(&self.ja3_string())
    }

    /// JA4 and its raw (unhashed) form `ja4_r`, for TLS over TCP.
    pub fn ja4(&self) -> (String, String) {
        let version = no_grease(&self.supported_versions)
            .max()
            .unwrap_or(self.legacy_version);
        let ciphers: Vec<u16> = no_grease(&self.ciphers).collect();
        let exts: Vec<u16> = no_grease(&self.extensions).collect();
        let alpn = match self.alpn.first() {
            Some(first) if !first.is_empty() => {
                let (a, z) = (first[0], first[first.len() - 1]);
                if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
                    format!("{}{}", char::from(a), char::from(z))
                } else {
                    let h = super::hex(first);
                    let mut chars = h.chars();
                    let first_c = chars.next().unwrap_or('0');
                    let last_c = h.chars().last().unwrap_or('0');
                    format!("{first_c}{last_c}")
                }
            }
            _ => "00".to_owned(),
        };
        let a = format!(
            "t{}{}{:02}{:02}{}",
            ja4_version(version),
            // JA4 looks at the extension's presence, not at whether it names a host.
            if self.extensions.contains(&0x0000) {
                'd'
            } else {
                'i'
            },
            ciphers.len().min(99),
            exts.len().min(99),
            alpn
        );
        let mut sorted_ciphers = ciphers;
        sorted_ciphers.sort_unstable();
        let mut sorted_exts: Vec<u16> = exts
            .into_iter()
            .filter(|e| *e != 0x0000 && *e != 0x0010)
            .collect();
        sorted_exts.sort_unstable();
        let b_raw = hex4(&sorted_ciphers);
        let sigs: Vec<u16> = no_grease(&self.signature_algorithms).collect();
        let mut c_raw = hex4(&sorted_exts);
        if !sigs.is_empty() {
            c_raw.push('_');
            c_raw.push_str(&hex4(&sigs));
        }
        let ja4 = format!("{a}_{}_{}", ja4_hash(&b_raw), ja4_hash(&c_raw));
        let ja4_r = format!("{a}_{b_raw}_{c_raw}");
        (ja4, ja4_r)
    }

    /// Supported versions without GREASE, as hex (`0304,0303`).
    pub fn versions_hex(&self) -> String {
        hex4(&no_grease(&self.supported_versions).collect::<Vec<_>>())
    }
}

/// The fields of a ServerHello that JA3S uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    pub cipher: u16,
    pub extensions: Vec<u16>,
    /// The version chosen through `supported_versions` (TLS 1.3), if any.
    pub selected_version: Option<u16>,
}

/// Parse a ServerHello body.
pub fn parse_server_hello(body: &[u8]) -> Result<ServerHello, TlsError> {
    let mut r = Reader::new(body);
    let mut sh = ServerHello {
        legacy_version: r.u16("server version")?,
        ..ServerHello::default()
    };
    r.take(32, "random")?;
    r.vec(1, "session id")?;
    sh.cipher = r.u16("cipher")?;
    r.u8("compression")?;
    if r.remaining() == 0 {
        return Ok(sh);
    }
    let mut exts = Reader::new(r.vec(2, "extensions")?);
    while exts.remaining() > 0 {
        let ty = exts.u16("extension type")?;
        let data = exts.vec(2, "extension data")?;
        sh.extensions.push(ty);
        if ty == 0x002b {
            sh.selected_version = Reader::new(data).u16("selected version").ok();
        }
    }
    Ok(sh)
}

impl ServerHello {
    /// The JA3S string: `version,cipher,extensions`.
    pub fn ja3s_string(&self) -> String {
        format!(
            "{},{},{}",
            self.legacy_version,
            self.cipher,
            join_dec(no_grease(&self.extensions))
        )
    }

    pub fn ja3s(&self) -> String {
        md5_hex(&self.ja3s_string())
    }

    /// TLS 1.3 encrypts everything after the ServerHello (the certificate included).
    pub fn is_tls13(&self) -> bool {
        self.selected_version == Some(0x0304)
    }
}

/// The DER certificates of a TLS 1.2 Certificate message, leaf first.
pub fn parse_certificate_list(body: &[u8]) -> Result<Vec<&[u8]>, TlsError> {
    let mut r = Reader::new(body);
    let mut list = Reader::new(r.vec(3, "certificate list")?);
    let mut certs = Vec::new();
    while list.remaining() > 0 {
        certs.push(list.vec(3, "certificate")?);
    }
    Ok(certs)
}

#[cfg(test)]
pub(crate) mod tests;
