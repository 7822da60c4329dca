//! Passive fingerprints computed from decoded packets and reassembled stream prefixes.
//!
//! - [`tcp`]: TCP SYN signature (TTL, initial-TTL guess, window, MSS, scale, option layout)
//!   with a p0f-style OS label from a small built-in table.
//! - [`tls`]: ClientHello (JA3, JA4 — the BSD-licensed TLS client part only — SNI, ALPN,
//!   versions), ServerHello (JA3S), TLS 1.2 Certificate (CNs, validity, SHA-256 of the DER).
//! - [`ssh`]: version banner and KEXINIT (HASSH / hasshServer, Salesforce algorithm).
//! - [`http`]: the first request of a flow.
//! - [`scan`]: per-source port-scan detection over a time window.
//!
//! Every parser works on borrowed bytes, bounds every length it reads and returns a typed
//! error on malformed input; none of them can panic.

pub mod der;
pub mod http;
pub mod scan;
pub mod ssh;
pub mod tcp;
pub mod tls;

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// MD5 of `text` as 32 hex characters (JA3, JA3S, HASSH).
pub fn md5_hex(text: &str) -> String {
    hex(&Md5::digest(text.as_bytes()))
}

/// SHA-256 of `bytes` as 64 hex characters.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Printable ASCII rendering of attacker bytes for an event field (others become `\xNN`).
/// Rendering stops just past what an event field keeps ([`decnet_store::MAX_FIELD_BYTES`]):
/// the field is then cut and marked truncated, and a 32 KiB SNI costs no more than 4 KiB.
pub fn printable(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let cap = decnet_store::MAX_FIELD_BYTES + 1;
    let mut out = String::with_capacity(bytes.len().min(cap));
    for &b in bytes {
        if out.len() >= cap {
            break;
        }
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str("\\x");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// A cursor over big-endian wire data that fails instead of panicking.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

/// The input ended before a field it announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("field {0} runs past the end of the message")]
pub struct Short(pub &'static str);

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Short> {
        if n > self.buf.len() {
            return Err(Short(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Short> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Short> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u24(&mut self, what: &'static str) -> Result<usize, Short> {
        let b = self.take(3, what)?;
        Ok((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Short> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A vector with a `width`-byte length prefix.
    pub(crate) fn vec(&mut self, width: usize, what: &'static str) -> Result<&'a [u8], Short> {
        let len = match width {
            1 => usize::from(self.u8(what)?),
            2 => usize::from(self.u16(what)?),
            3 => self.u24(what)?,
            _ => usize::try_from(self.u32(what)?).map_err(|_| Short(what))?,
        };
        self.take(len, what)
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_escapes_and_stops_past_the_field_cap() {
        assert_eq!(printable(b"GET /a\\b\x00\xff"), "GET /a\\x5cb\\x00\\xff");
        let cap = decnet_store::MAX_FIELD_BYTES;
        // Past the cap by one character at most: the event field is cut and marked truncated.
        let long = printable(&vec![0u8; 32 * 1024]);
        assert!(long.len() > cap && long.len() <= cap + 4, "{}", long.len());
        let mut ev = decnet_store::Event::new(0, "d", "sniffer", "k", decnet_store::Severity::Info);
        ev.push_field("sni", &long).unwrap();
        assert!(ev.truncated);
        assert_eq!(printable(&vec![b'a'; cap]).len(), cap);
    }
}
