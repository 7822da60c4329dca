//! The compact binary form of an [`Event`] kept in segment files.
//!
//! Segments hold attacker-controlled data and may be read back after a crash, so decoding
//! treats its input as hostile: every length is checked against what remains and against the
//! event's own caps, and nothing panics. Layout (version 1, integers little-endian, lengths as
//! LEB128 varints): `1, ts_ns i64, severity u8, flags u8, [src_ip] [src_port u16] [dst_ip]
//! [dst_port u16], decky, service, kind, field count, (key, value)*, raw` where an address is
//! `4 + 4 bytes` or `6 + 16 bytes` and a string is `len + bytes`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::{Event, MAX_FIELDS, MAX_RAW_BYTES, Severity};

const VERSION: u8 = 1;
const TRUNCATED: u8 = 1;
const SRC_IP: u8 = 1 << 1;
const SRC_PORT: u8 = 1 << 2;
const DST_IP: u8 = 1 << 3;
const DST_PORT: u8 = 1 << 4;
/// Longest decky/service/kind/key/value a well-formed encoding can hold.
const MAX_STRING: usize = 64 * 1024;

/// Why bytes are not an encoded event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("encoded event ends early (reading {0}); the segment is damaged")]
    Truncated(&'static str),
    #[error("encoded event has version {0}; this build reads version 1 only")]
    Version(u8),
    #[error("encoded event has an invalid {0}")]
    Invalid(&'static str),
    #[error("encoded event has {0} trailing bytes")]
    Trailing(usize),
}

/// Append the encoding of `event` to `out`.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.extend_from_slice(&event.ts_ns.to_le_bytes());
    out.push(event.severity.code());
    let mut flags = 0;
    for (present, bit) in [
        (event.truncated, TRUNCATED),
        (event.src_ip.is_some(), SRC_IP),
        (event.src_port.is_some(), SRC_PORT),
        (event.dst_ip.is_some(), DST_IP),
        (event.dst_port.is_some(), DST_PORT),
    ] {
        if present {
            flags |= bit;
        }
    }
    out.push(flags);
    put_addr(event.src_ip, event.src_port, out);
    put_addr(event.dst_ip, event.dst_port, out);
    put_bytes(event.decky.as_bytes(), out);
    put_bytes(event.service.as_bytes(), out);
    put_bytes(event.kind.as_bytes(), out);
    put_varint(event.fields().len() as u64, out);
    for (k, v) in event.fields() {
        put_bytes(k.as_bytes(), out);
        put_bytes(v.as_bytes(), out);
    }
    put_bytes(event.raw(), out);
}

/// The encoding of `event` as a new buffer.
pub fn to_bytes(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + event.raw().len());
    encode(event, &mut out);
    out
}

/// Read one encoded event occupying all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader { buf: bytes };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let ts_ns = i64::from_le_bytes(r.array("timestamp")?);
    let severity =
        Severity::from_code(r.u8("severity")?).ok_or(DecodeError::Invalid("severity"))?;
    let flags = r.u8("flags")?;
    let src_ip = if flags & SRC_IP != 0 {
        Some(r.ip()?)
    } else {
        None
    };
    let src_port = if flags & SRC_PORT != 0 {
        Some(r.u16()?)
    } else {
        None
    };
    let dst_ip = if flags & DST_IP != 0 {
        Some(r.ip()?)
    } else {
        None
    };
    let dst_port = if flags & DST_PORT != 0 {
        Some(r.u16()?)
    } else {
        None
    };
    let decky = r.string("decky")?;
    let service = r.string("service")?;
    let kind = r.string("kind")?;
    let mut event = Event::new(ts_ns, decky, service, kind, severity);
    event.src_ip = src_ip;
    event.src_port = src_port;
    event.dst_ip = dst_ip;
    event.dst_port = dst_port;
    let count = r.varint("field count")?;
    if count > MAX_FIELDS as u64 {
        return Err(DecodeError::Invalid("field count"));
    }
    for _ in 0..count {
        let key = r.string("field name")?;
        let value = r.string("field value")?;
        event
            .push_field(key, value)
            .map_err(|_| DecodeError::Invalid("field name"))?;
    }
    let raw = r.bytes("raw")?;
    if raw.len() > MAX_RAW_BYTES {
        return Err(DecodeError::Invalid("raw length"));
    }
    event.set_raw(raw);
    event.truncated = flags & TRUNCATED != 0;
    if !r.buf.is_empty() {
        return Err(DecodeError::Trailing(r.buf.len()));
    }
    Ok(event)
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(b: &[u8], out: &mut Vec<u8>) {
    put_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn put_addr(ip: Option<IpAddr>, port: Option<u16>, out: &mut Vec<u8>) {
    match ip {
        Some(IpAddr::V4(a)) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
        None => {}
    }
    if let Some(p) = port {
        out.extend_from_slice(&p.to_le_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        bytes.try_into().map_err(|_| DecodeError::Truncated(what))
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array("port")?))
    }

    fn ip(&mut self) -> Result<IpAddr, DecodeError> {
        match self.u8("address family")? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>("IPv4 address")?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(
                self.array::<16>("IPv6 address")?,
            ))),
            _ => Err(DecodeError::Invalid("address family")),
        }
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(what)?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid(what))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.varint(what)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Invalid(what))?;
        if len > MAX_STRING.max(MAX_RAW_BYTES) {
            return Err(DecodeError::Invalid(what));
        }
        self.take(len, what)
    }

    fn string(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| DecodeError::Invalid(what))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Event {
        let mut e = Event::new(
            1_700_000_000_123_456_789,
            "web01",
            "ssh",
            "auth_attempt",
            Severity::Warning,
        );
        e.src_ip = Some("198.51.100.7".parse().unwrap());
        e.src_port = Some(51234);
        e.dst_ip = Some("2001:db8::1".parse().unwrap());
        e.push_field("username", "root").unwrap();
        e.push_field("password", "hunter2").unwrap();
        e.set_raw(b"<132>1 - raw \xff bytes");
        e
    }

    #[test]
    fn round_trips_a_full_event() {
        let e = sample();
        assert_eq!(decode(&to_bytes(&e)).unwrap(), e);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = to_bytes(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(DecodeError::Trailing(1)));
        let mut other = bytes;
        other[0] = 9;
        assert_eq!(decode(&other), Err(DecodeError::Version(9)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn arbitrary_events_round_trip(
            ts in any::<i64>(),
            sev in 0u8..8,
            names in proptest::collection::vec(("[a-z_]{1,12}", ".{0,40}"), 0..10),
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            src in proptest::option::of(any::<std::net::IpAddr>()),
            port in proptest::option::of(any::<u16>()),
        ) {
            let mut e = Event::new(ts, "d", "s", "k", Severity::from_code(sev).unwrap());
            e.src_ip = src;
            e.dst_port = port;
            for (k, v) in &names {
                e.push_field(k, v).unwrap();
            }
            e.set_raw(&raw);
            prop_assert_eq!(decode(&to_bytes(&e)).unwrap(), e);
        }
    }
}
