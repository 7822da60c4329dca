//! The event model shared by services, dataplane, prober and intelligence.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Raw bytes kept per event; longer originals are truncated and flagged.
pub const MAX_RAW_BYTES: usize = 8 * 1024;
/// Fields kept per event; attacker-controlled producers cannot grow an event without bound.
pub const MAX_FIELDS: usize = 64;
/// Bytes kept per field value.
pub const MAX_FIELD_BYTES: usize = 4 * 1024;

/// Syslog severity (RFC 5424 §6.2.1); the PRI of an event is `local0 * 8 + severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Severity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Severity {
    /// The syslog facility every event uses (local0).
    pub const FACILITY_LOCAL0: u8 = 16;

    /// Severity from its numeric code, `None` above 7.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Emergency,
            1 => Self::Alert,
            2 => Self::Critical,
            3 => Self::Error,
            4 => Self::Warning,
            5 => Self::Notice,
            6 => Self::Info,
            7 => Self::Debug,
            _ => return None,
        })
    }

    /// Numeric code (0–7).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// RFC 5424 PRI value for facility local0.
    pub fn pri(self) -> u8 {
        Self::FACILITY_LOCAL0 * 8 + self.code()
    }
}

/// Why an event could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event field name {0:?} is empty or longer than 64 bytes; use a short snake_case key")]
    BadFieldName(String),
    #[error("event already carries {MAX_FIELDS} fields; field {0:?} was not added")]
    TooManyFields(String),
}

/// One thing that happened, from any source (service, sniffer, prober, correlator).
///
/// Fields keep their insertion order: it is the order the producer wrote them in, which the
/// RFC 5424 form and the API both preserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// UTC time in nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Decky (fleet member) name, or the pseudo-host of an internal producer.
    pub decky: String,
    /// Service slug (`ssh`, `http`, …) or `sniffer` / `prober` / `correlator`.
    pub service: String,
    /// Event kind (the RFC 5424 MSGID), e.g. `auth_attempt`.
    pub kind: String,
    pub severity: Severity,
    pub src_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<IpAddr>,
    pub dst_port: Option<u16>,
    fields: Vec<(String, String)>,
    /// The original bytes, at most [`MAX_RAW_BYTES`].
    #[serde(with = "raw_bytes")]
    raw: Vec<u8>,
    /// Whether `raw` or any field value was cut to its cap.
    pub truncated: bool,
}

impl Event {
    /// A new event with no addresses, fields or raw bytes.
    pub fn new(
        ts_ns: i64,
        decky: impl Into<String>,
        service: impl Into<String>,
        kind: impl Into<String>,
        severity: Severity,
    ) -> Self {
        Self {
            ts_ns,
            decky: decky.into(),
            service: service.into(),
            kind: kind.into(),
            severity,
            src_ip: None,
            src_port: None,
            dst_ip: None,
            dst_port: None,
            fields: Vec::new(),
            raw: Vec::new(),
            truncated: false,
        }
    }

    /// Append a field, truncating its value to [`MAX_FIELD_BYTES`] on a char boundary.
    pub fn push_field(&mut self, key: &str, value: &str) -> Result<(), EventError> {
        admit_field(key, self.fields.len(), &mut self.truncated)?;
        let kept = truncate_on_char_boundary(value, MAX_FIELD_BYTES);
        self.truncated |= kept.len() < value.len();
        self.fields.push((key.to_owned(), kept.to_owned()));
        Ok(())
    }

    /// The first value of `key`, if present.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All fields in producer order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// Keep the original bytes, truncated to [`MAX_RAW_BYTES`].
    pub fn set_raw(&mut self, raw: &[u8]) {
        let kept = raw.len().min(MAX_RAW_BYTES);
        self.truncated |= kept < raw.len();
        self.raw = raw[..kept].to_vec();
    }

    /// The original bytes (possibly truncated).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// A field value as [`Event::push_field`] keeps it.
/// Whether a field named `key` may follow `count` others (the rule [`Event::push_field`] and
/// [`crate::EventDraft::push_field`] share); reaching the cap marks the event `truncated`.
pub(crate) fn admit_field(key: &str, count: usize, truncated: &mut bool) -> Result<(), EventError> {
    if key.is_empty() || key.len() > 64 {
        return Err(EventError::BadFieldName(key.to_owned()));
    }
    if count >= MAX_FIELDS {
        *truncated = true;
        return Err(EventError::TooManyFields(key.to_owned()));
    }
    Ok(())
}

pub(crate) fn truncate_field_value(value: &str) -> &str {
    truncate_on_char_boundary(value, MAX_FIELD_BYTES)
}

fn truncate_on_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Raw bytes travel as lossless hex in JSON (they are attacker bytes, often not UTF-8).
mod raw_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(raw: &[u8], s: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(raw.len() * 2);
        for b in raw {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s.serialize_str(&out)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 || text.len() > super::MAX_RAW_BYTES * 2 {
            return Err(D::Error::custom(
                "raw must be an even-length hex string of at most 16 KiB",
            ));
        }
        text.as_bytes()
            .chunks_exact(2)
            .map(|pair| {
                let hi = (pair[0] as char).to_digit(16);
                let lo = (pair[1] as char).to_digit(16);
                match (hi, lo) {
                    (Some(h), Some(l)) => u8::try_from(h * 16 + l).map_err(D::Error::custom),
                    _ => Err(D::Error::custom("raw contains a non-hex character")),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pri_is_local0_plus_severity() {
        assert_eq!(Severity::Info.pri(), 134);
        assert_eq!(Severity::Warning.pri(), 132);
        assert_eq!(Severity::Error.pri(), 131);
        assert_eq!(Severity::from_code(8), None);
    }

    #[test]
    fn fields_keep_order_and_caps() {
        let mut e = Event::new(1, "web01", "http", "request", Severity::Info);
        e.push_field("method", "GET").unwrap();
        e.push_field("path", "/").unwrap();
        assert_eq!(e.field("path"), Some("/"));
        assert_eq!(e.fields()[0].0, "method");
        let long = "é".repeat(MAX_FIELD_BYTES);
        e.push_field("body", &long).unwrap();
        assert!(e.truncated);
        assert!(e.field("body").unwrap().len() <= MAX_FIELD_BYTES);
        assert_eq!(
            e.push_field("", "x"),
            Err(EventError::BadFieldName(String::new()))
        );
        for i in 0..MAX_FIELDS {
            let _ = e.push_field(&format!("k{i}"), "v");
        }
        assert!(matches!(
            e.push_field("over", "v"),
            Err(EventError::TooManyFields(_))
        ));
    }

    proptest! {
        #[test]
        fn json_round_trip(raw in proptest::collection::vec(any::<u8>(), 0..20_000), v in ".{0,100}") {
            let mut e = Event::new(42, "d", "s", "k", Severity::Notice);
            e.set_raw(&raw);
            e.push_field("v", &v).unwrap();
            prop_assert!(e.raw().len() <= MAX_RAW_BYTES);
            let text = serde_json::to_string(&e).unwrap();
            let back: Event = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, e);
        }
    }
}
