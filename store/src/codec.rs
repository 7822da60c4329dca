//! The compact binary form of an [`Event`] kept in segment files.
//!
//! Segments hold attacker-controlled data and may be read back after a crash, so decoding
//! treats its input as hostile: every length is checked against what remains and against the
//! event's own caps, and nothing panics. Layout (version 1, integers little-endian, lengths as
//! LEB128 varints): `1, ts_ns i64, severity u8, flags u8, [src_ip] [src_port u16] [dst_ip]
//! [dst_port u16], decky, service, kind, field count, (key, value)*, raw` where an address is
//! `4 + 4 bytes` or `6 + 16 bytes` and a string is `len + bytes`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::{Event, MAX_FIELD_BYTES, MAX_FIELDS, MAX_RAW_BYTES, Severity};

const VERSION: u8 = 1;
const TRUNCATED: u8 = 1;
const SRC_IP: u8 = 1 << 1;
const SRC_PORT: u8 = 1 << 2;
const DST_IP: u8 = 1 << 3;
const DST_PORT: u8 = 1 << 4;
/// Longest decky/service/kind/key/value a well-formed encoding can hold.
const MAX_STRING: usize = 64 * 1024;

/// Why bytes are not an encoded event.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
    encode_view(&EventView::of(event), out);
}

/// Append the encoding of `view` to `out`: the same bytes as [`encode`] of the event
/// [`EventView::to_event`] returns, so a producer can encode what it borrows without building
/// an owned [`Event`].
pub fn encode_view(view: &EventView<'_>, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.extend_from_slice(&view.ts_ns.to_le_bytes());
    out.push(view.severity.code());
    let mut flags = 0;
    for (present, bit) in [
        (view.truncated, TRUNCATED),
        (view.src_ip.is_some(), SRC_IP),
        (view.src_port.is_some(), SRC_PORT),
        (view.dst_ip.is_some(), DST_IP),
        (view.dst_port.is_some(), DST_PORT),
    ] {
        if present {
            flags |= bit;
        }
    }
    out.push(flags);
    put_addr(view.src_ip, view.src_port, out);
    put_addr(view.dst_ip, view.dst_port, out);
    put_bytes(view.decky.as_bytes(), out);
    put_bytes(view.service.as_bytes(), out);
    put_bytes(view.kind.as_bytes(), out);
    put_varint(view.field_count() as u64, out);
    for (k, v) in view.fields() {
        put_bytes(k.as_bytes(), out);
        put_bytes(v.as_bytes(), out);
    }
    put_bytes(view.raw, out);
}

/// An event's encoding made by this module (so it always decodes), ready to be stored as it
/// is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded(Vec<u8>);

impl Encoded {
    /// The encoding of `view`.
    pub fn of(view: &EventView<'_>) -> Self {
        let mut out = Vec::with_capacity(64 + view.raw.len() + view.decky.len());
        encode_view(view, &mut out);
        Self(out)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The encodings of several events in one buffer, made by this module (so each always
/// decodes). A producer that reads many events at once (the syslog intake, one `recvmmsg`
/// batch at a time) hands them on as one allocation and one queue operation instead of one
/// per event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedBatch {
    bytes: Vec<u8>,
    /// Where each encoding ends in `bytes`.
    ends: Vec<usize>,
}

impl EncodedBatch {
    /// An empty batch with room for `events` encodings of about `bytes` bytes in all.
    pub fn with_capacity(events: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(events),
        }
    }

    /// Append the encoding of `view`.
    pub fn push(&mut self, view: &EventView<'_>) {
        encode_view(view, &mut self.bytes);
        self.ends.push(self.bytes.len());
    }

    /// Events in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each event's encoding, in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| self.bytes.get(start..end).unwrap_or_default())
    }
}

/// The encoding of `event` as a new buffer.
pub fn to_bytes(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + event.raw().len());
    encode(event, &mut out);
    out
}

/// Read one encoded event occupying all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    Ok(decode_view(bytes)?.to_event())
}

/// An encoded event read in place: strings and raw bytes borrow the encoding, so the flusher
/// binds SQL columns straight from a segment's pages instead of building an owned [`Event`]
/// (about a dozen allocations) per row. [`decode_view`] validates everything [`decode`] does;
/// [`EventView::to_event`] is exactly what [`decode`] returns.
#[derive(Debug, Clone)]
pub struct EventView<'a> {
    pub ts_ns: i64,
    pub decky: &'a str,
    pub service: &'a str,
    pub kind: &'a str,
    pub severity: Severity,
    pub src_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<IpAddr>,
    pub dst_port: Option<u16>,
    pub(crate) fields: Fields<'a>,
    pub raw: &'a [u8],
    pub truncated: bool,
}

/// The fields of an [`EventView`]: still encoded, those of an owned event, or those of a
/// [`crate::EventDraft`] (already cut to their caps).
#[derive(Debug, Clone)]
pub(crate) enum Fields<'a> {
    /// `count` validated (key, value) pairs.
    Encoded {
        bytes: &'a [u8],
        count: usize,
    },
    Owned(&'a [(String, String)]),
    Borrowed(&'a [(&'a str, std::borrow::Cow<'a, str>)]),
}

/// The fields of an [`EventView`] in producer order, values cut to
/// [`MAX_FIELD_BYTES`](crate::event::MAX_FIELD_BYTES) as [`Event::push_field`] would.
#[derive(Debug, Clone)]
pub struct FieldIter<'a> {
    inner: FieldsInner<'a>,
}

#[derive(Debug, Clone)]
enum FieldsInner<'a> {
    Encoded { reader: Reader<'a>, left: usize },
    Owned(std::slice::Iter<'a, (String, String)>),
    Borrowed(std::slice::Iter<'a, (&'a str, std::borrow::Cow<'a, str>)>),
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            FieldsInner::Encoded { reader, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                // Validated by `decode_view`: these reads cannot fail.
                let key = reader.string("field name").ok()?;
                let value = reader.string("field value").ok()?;
                Some((key, crate::event::truncate_field_value(value)))
            }
            FieldsInner::Owned(it) => it.next().map(|(k, v)| (k.as_str(), v.as_str())),
            FieldsInner::Borrowed(it) => it.next().map(|(k, v)| (*k, v.as_ref())),
        }
    }
}

impl<'a> EventView<'a> {
    /// A view of an owned event (for inserting owned events through the same code).
    pub fn of(e: &'a Event) -> Self {
        Self {
            ts_ns: e.ts_ns,
            decky: &e.decky,
            service: &e.service,
            kind: &e.kind,
            severity: e.severity,
            src_ip: e.src_ip,
            src_port: e.src_port,
            dst_ip: e.dst_ip,
            dst_port: e.dst_port,
            fields: Fields::Owned(e.fields()),
            raw: e.raw(),
            truncated: e.truncated,
        }
    }

    pub fn fields(&self) -> FieldIter<'a> {
        FieldIter {
            inner: match &self.fields {
                Fields::Encoded { bytes, count } => FieldsInner::Encoded {
                    reader: Reader { buf: bytes },
                    left: *count,
                },
                Fields::Owned(f) => FieldsInner::Owned(f.iter()),
                Fields::Borrowed(f) => FieldsInner::Borrowed(f.iter()),
            },
        }
    }

    /// How many fields [`Self::fields`] yields.
    pub fn field_count(&self) -> usize {
        match &self.fields {
            Fields::Encoded { count, .. } => *count,
            Fields::Owned(f) => f.len(),
            Fields::Borrowed(f) => f.len(),
        }
    }

    /// The owned event [`decode`] returns for the same bytes.
    pub fn to_event(&self) -> Event {
        let mut event = Event::new(
            self.ts_ns,
            self.decky,
            self.service,
            self.kind,
            self.severity,
        );
        event.src_ip = self.src_ip;
        event.src_port = self.src_port;
        event.dst_ip = self.dst_ip;
        event.dst_port = self.dst_port;
        for (k, v) in self.fields() {
            // Keys were checked by `decode_view` (or by the owned event), and there are at
            // most MAX_FIELDS of them: this cannot fail.
            let _ = event.push_field(k, v);
        }
        event.set_raw(self.raw);
        event.truncated = self.truncated;
        event
    }
}

/// Read one encoded event occupying all of `bytes`, in place (see [`EventView`]).
pub fn decode_view(bytes: &[u8]) -> Result<EventView<'_>, DecodeError> {
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
    let count = r.varint("field count")?;
    if count > MAX_FIELDS as u64 {
        return Err(DecodeError::Invalid("field count"));
    }
    let fields_start = r.buf;
    // A value longer than this build keeps (written by a build with a larger limit) is cut
    // when read, as `Event::push_field` cuts it, and the event says so.
    let mut cut = false;
    for _ in 0..count {
        let key = r.string("field name")?;
        let value = r.string("field value")?;
        // What `Event::push_field` refuses.
        if key.is_empty() || key.len() > 64 {
            return Err(DecodeError::Invalid("field name"));
        }
        cut |= value.len() > MAX_FIELD_BYTES;
    }
    let fields = Fields::Encoded {
        bytes: fields_start
            .get(..fields_start.len() - r.buf.len())
            .unwrap_or_default(),
        // At most MAX_FIELDS, checked above.
        count: count as usize,
    };
    let raw = r.bytes("raw")?;
    if raw.len() > MAX_RAW_BYTES {
        return Err(DecodeError::Invalid("raw length"));
    }
    if !r.buf.is_empty() {
        return Err(DecodeError::Trailing(r.buf.len()));
    }
    Ok(EventView {
        ts_ns,
        decky,
        service,
        kind,
        severity,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        fields,
        raw,
        truncated: cut || flags & TRUNCATED != 0,
    })
}

pub(crate) fn put_varint(mut v: u64, out: &mut Vec<u8>) {
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

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
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

    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
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

    /// Every column a view yields, fields included, for comparing two views.
    fn columns(v: &EventView<'_>) -> String {
        let fields: Vec<_> = v.fields().collect();
        format!(
            "{} {} {} {} {:?} {:?} {:?} {:?} {:?} {fields:?} {:?} {}",
            v.ts_ns,
            v.decky,
            v.service,
            v.kind,
            v.severity,
            v.src_ip,
            v.src_port,
            v.dst_ip,
            v.dst_port,
            v.raw,
            v.truncated
        )
    }

    #[test]
    fn a_view_reads_what_the_owned_event_holds() {
        let mut e = sample();
        e.push_field("username", "second").unwrap();
        e.dst_port = Some(22);
        let bytes = to_bytes(&e);
        let view = decode_view(&bytes).unwrap();
        assert_eq!(columns(&view), columns(&EventView::of(&e)));
        assert_eq!(view.fields().count(), 3);
        assert_eq!(view.to_event(), e);
    }

    #[test]
    fn a_view_refuses_what_decode_refuses() {
        // A field key Event::push_field would refuse (empty), encoded by hand.
        let mut e = Event::new(1, "d", "s", "k", Severity::Info);
        e.push_field("k", "v").unwrap();
        let mut bytes = to_bytes(&e);
        let at = bytes
            .windows(4)
            .position(|w| w == [1, b'k', 1, b'v'])
            .unwrap();
        bytes.splice(at..at + 2, [0]);
        assert_eq!(decode(&bytes), Err(DecodeError::Invalid("field name")));
        assert!(decode_view(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn views_match_owned_events(
            names in proptest::collection::vec(("[a-z_]{1,12}", ".{0,40}"), 0..10),
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            src in proptest::option::of(any::<std::net::IpAddr>()),
        ) {
            let mut e = Event::new(-5, "décky", "s", "k", Severity::Alert);
            e.src_ip = src;
            for (k, v) in &names {
                e.push_field(k, v).unwrap();
            }
            e.set_raw(&raw);
            let bytes = to_bytes(&e);
            let view = decode_view(&bytes).unwrap();
            prop_assert_eq!(columns(&view), columns(&EventView::of(&e)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            if let Ok(v) = decode_view(&bytes) {
                let _ = columns(&v);
            }
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
