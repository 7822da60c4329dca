//! [`EventDraft`]: an event made of borrowed parts, for producers that read events out of a
//! buffer and only need their encoding (the syslog intake): the same rules as [`Event`]'s
//! builders, without an owned string per field.

use std::{borrow::Cow, net::IpAddr};

use crate::{
    Event, EventError, FieldAddresses, MAX_RAW_BYTES, Severity,
    codec::{Encoded, EncodedBatch, EventView, Fields},
    event::{admit_field, truncate_field_value},
};

/// An event whose strings borrow from the producer's buffer. Its encoding
/// ([`Self::encode`]) is exactly that of the [`Event`] built with the same calls
/// ([`Self::to_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft<'a> {
    pub ts_ns: i64,
    pub decky: &'a str,
    pub service: &'a str,
    pub kind: &'a str,
    pub severity: Severity,
    pub src_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<IpAddr>,
    pub dst_port: Option<u16>,
    fields: Vec<(&'a str, Cow<'a, str>)>,
    raw: &'a [u8],
    pub truncated: bool,
}

impl<'a> EventDraft<'a> {
    /// As [`Event::new`].
    pub fn new(
        ts_ns: i64,
        decky: &'a str,
        service: &'a str,
        kind: &'a str,
        severity: Severity,
    ) -> Self {
        Self {
            ts_ns,
            decky,
            service,
            kind,
            severity,
            src_ip: None,
            src_port: None,
            dst_ip: None,
            dst_port: None,
            fields: Vec::new(),
            raw: &[],
            truncated: false,
        }
    }

    /// As [`Event::push_field`].
    pub fn push_field(&mut self, key: &'a str, value: Cow<'a, str>) -> Result<(), EventError> {
        admit_field(key, self.fields.len(), &mut self.truncated)?;
        let kept = truncate_field_value(&value).len();
        let value = if kept < value.len() {
            self.truncated = true;
            match value {
                Cow::Borrowed(v) => Cow::Borrowed(v.get(..kept).unwrap_or_default()),
                Cow::Owned(mut v) => {
                    v.truncate(kept);
                    Cow::Owned(v)
                }
            }
        } else {
            value
        };
        if self.fields.capacity() == 0 {
            self.fields.reserve(8);
        }
        self.fields.push((key, value));
        Ok(())
    }

    /// As [`Event::field`].
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// As [`Event::set_raw`].
    pub fn set_raw(&mut self, raw: &'a [u8]) {
        let kept = raw.len().min(MAX_RAW_BYTES);
        self.truncated |= kept < raw.len();
        self.raw = raw.get(..kept).unwrap_or_default();
    }

    /// As [`Event::lift_addresses`].
    pub fn lift_addresses(&mut self) {
        let a = FieldAddresses::find(|key| self.field(key));
        self.src_ip = a.src_ip;
        self.src_port = a.src_port;
        self.dst_ip = a.dst_ip;
        self.dst_port = a.dst_port;
    }

    pub fn view(&self) -> EventView<'_> {
        EventView {
            ts_ns: self.ts_ns,
            decky: self.decky,
            service: self.service,
            kind: self.kind,
            severity: self.severity,
            src_ip: self.src_ip,
            src_port: self.src_port,
            dst_ip: self.dst_ip,
            dst_port: self.dst_port,
            fields: Fields::Borrowed(&self.fields),
            raw: self.raw,
            truncated: self.truncated,
        }
    }

    /// The segment encoding of this event.
    pub fn encode(&self) -> Encoded {
        Encoded::of(&self.view())
    }

    /// Append the segment encoding of this event to `batch`.
    pub fn encode_into(&self, batch: &mut EncodedBatch) {
        batch.push(&self.view());
    }

    /// The owned event.
    pub fn to_event(&self) -> Event {
        self.view().to_event()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{MAX_FIELD_BYTES, MAX_FIELDS, codec};

    #[test]
    fn encodes_like_the_owned_event_built_the_same_way() {
        let long = "é".repeat(MAX_FIELD_BYTES);
        let raw = vec![b'r'; MAX_RAW_BYTES + 3];
        let mut d = EventDraft::new(7, "d", "s", "k", Severity::Notice);
        let mut e = Event::new(7, "d", "s", "k", Severity::Notice);
        d.set_raw(&raw);
        e.set_raw(&raw);
        for (k, v) in [
            ("src", "[2001:db8::1]:22"),
            ("dst_ip", "10.0.0.1"),
            ("long", long.as_str()),
            ("", "bad key"),
        ] {
            assert_eq!(
                d.push_field(k, Cow::Borrowed(v)).is_ok(),
                e.push_field(k, v).is_ok()
            );
        }
        assert!(
            d.push_field("owned", Cow::Owned(long.clone())).is_ok()
                && e.push_field("owned", &long).is_ok()
        );
        for i in 0..MAX_FIELDS {
            let key = format!("k{i}");
            assert_eq!(
                d.clone().push_field("x", Cow::Borrowed("v")).is_ok(),
                e.clone().push_field("x", "v").is_ok(),
                "{key}"
            );
            let _ = d.push_field("x", Cow::Borrowed("v"));
            let _ = e.push_field("x", "v");
        }
        d.lift_addresses();
        e.lift_addresses();
        assert!(d.truncated && e.truncated);
        assert_eq!(d.encode().as_bytes(), codec::to_bytes(&e));
        let mut batch = EncodedBatch::default();
        d.encode_into(&mut batch);
        EventDraft::new(1, "", "", "", Severity::Debug).encode_into(&mut batch);
        d.encode_into(&mut batch);
        let encodings: Vec<_> = batch.iter().collect();
        assert_eq!(batch.len(), 3);
        assert_eq!(encodings[0], codec::to_bytes(&e));
        assert_eq!(
            encodings[1],
            codec::to_bytes(&Event::new(1, "", "", "", Severity::Debug))
        );
        assert_eq!(encodings[2], codec::to_bytes(&e));
        assert_eq!(d.to_event(), e);
    }
}
