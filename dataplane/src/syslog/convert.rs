//! From a parsed syslog message to the one event model.

use std::borrow::Cow;

use decnet_store::{Event, EventDraft};

use super::kv;
use super::message::SyslogMessage;

/// Fields naming the attacker's address, highest priority first (the original collector's
/// order, so events attribute the same way they did there).
pub use decnet_store::SRC_IP_FIELDS;

/// The field MSG is stored under (the formatter writes it back as MSG).
pub use decnet_store::rfc5424::MSG_FIELD;

impl SyslogMessage<'_> {
    /// The event this message describes.
    ///
    /// HOSTNAME is the decky, APP-NAME the service, MSGID the kind (NILVALUE reads as an empty
    /// string); SD parameters become fields in message order, then, when MSGID is `-` (free-text
    /// rsyslog lines), the `key=value` tokens of MSG, then MSG itself as [`MSG_FIELD`] when not
    /// empty. Addresses are lifted from those fields (see [`SRC_IP_FIELDS`]). A message without a
    /// usable TIMESTAMP is dated `received_ns`. Fields beyond the event's cap are dropped and the
    /// event marked truncated; the raw bytes are kept (capped) either way.
    pub fn to_event(&self, received_ns: i64) -> Event {
        let text = self.msg_text();
        let mut event = Event::new(
            self.timestamp_ns.unwrap_or(received_ns),
            self.hostname.unwrap_or_default(),
            self.app_name.unwrap_or_default(),
            self.msg_id.unwrap_or_default(),
            self.severity,
        );
        self.fill(&text, &mut event);
        event
    }

    /// The event [`Self::to_event`] returns, borrowing from this message instead of owning a
    /// copy of every string, handed to `use_it` (the intake encodes it straight into the
    /// segment's form). Built by the same code as [`Self::to_event`].
    pub fn with_draft<R>(&self, received_ns: i64, use_it: impl FnOnce(&EventDraft<'_>) -> R) -> R {
        let text = self.msg_text();
        let mut draft = EventDraft::new(
            self.timestamp_ns.unwrap_or(received_ns),
            self.hostname.unwrap_or_default(),
            self.app_name.unwrap_or_default(),
            self.msg_id.unwrap_or_default(),
            self.severity,
        );
        self.fill(&text, &mut draft);
        use_it(&draft)
    }

    fn fill<'b, E: Draft<'b>>(&'b self, text: &'b str, event: &mut E) {
        event.raw(self.raw);
        let mut room = true;
        for param in self.params() {
            room = room && event.field(param.name, Cow::Borrowed(&param.value));
        }
        if self.msg_id.is_none() {
            for (key, value) in kv::pairs(text) {
                room = room && event.field(key, value);
            }
        }
        if room && !text.is_empty() {
            event.field(MSG_FIELD, Cow::Borrowed(text));
        }
        event.lift();
    }
}

/// What [`SyslogMessage::fill`] builds: an owned [`Event`] or a borrowed [`EventDraft`].
trait Draft<'b> {
    fn raw(&mut self, raw: &'b [u8]);
    /// Whether the field was kept.
    fn field(&mut self, key: &'b str, value: Cow<'b, str>) -> bool;
    fn lift(&mut self);
}

impl<'b> Draft<'b> for Event {
    fn raw(&mut self, raw: &'b [u8]) {
        self.set_raw(raw);
    }
    fn field(&mut self, key: &'b str, value: Cow<'b, str>) -> bool {
        self.push_field(key, &value).is_ok()
    }
    fn lift(&mut self) {
        self.lift_addresses();
    }
}

impl<'b> Draft<'b> for EventDraft<'b> {
    fn raw(&mut self, raw: &'b [u8]) {
        self.set_raw(raw);
    }
    fn field(&mut self, key: &'b str, value: Cow<'b, str>) -> bool {
        self.push_field(key, value).is_ok()
    }
    fn lift(&mut self) {
        self.lift_addresses();
    }
}

/// Set the event's addresses from its fields (see [`decnet_store::Event::lift_addresses`]).
pub fn lift_addresses(event: &mut Event) {
    event.lift_addresses();
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use decnet_store::{MAX_FIELDS, Severity};

    use super::*;
    use crate::syslog::{Limits, rfc3164, rfc5424};

    const NOW: i64 = 1_776_513_600_000_000_000;

    /// The owned event, checked against the borrowed path the intake encodes from.
    fn event(line: &[u8]) -> Event {
        let m = rfc5424::parse(line, &Limits::default()).unwrap();
        let e = m.to_event(NOW);
        let drafted = m.with_draft(NOW, crate::syslog::proptests::encode_draft);
        assert_eq!(drafted.as_bytes(), decnet_store::codec::to_bytes(&e));
        e
    }

    fn ip(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    #[test]
    fn original_service_event() {
        let raw = br#"<134>1 2026-04-18T12:00:00.5+00:00 decky-03 redis - auth [relay@55555 src="203.0.113.9" password="hunter2"]"#;
        let e = event(raw);
        assert_eq!(e.ts_ns, NOW + 500_000_000);
        assert_eq!(
            (e.decky.as_str(), e.service.as_str(), e.kind.as_str()),
            ("decky-03", "redis", "auth")
        );
        assert_eq!(e.severity, Severity::Info);
        assert_eq!(e.src_ip, ip(203, 0, 113, 9));
        assert_eq!(e.src_port, None);
        let fields: Vec<_> = e
            .fields()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(fields, [("src", "203.0.113.9"), ("password", "hunter2")]);
        assert_eq!(e.raw(), raw);
        assert!(!e.truncated);
    }

    #[test]
    fn priority_ports_and_destination() {
        let e = event(
            br#"<132>1 - d http - request [relay@55555 ip="10.0.0.1" remote_addr="198.51.100.7:40000" dst_ip="192.0.2.5" dst_port="8080"] GET /"#,
        );
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.src_ip, ip(198, 51, 100, 7));
        assert_eq!(e.src_port, Some(40000));
        assert_eq!(e.dst_ip, ip(192, 0, 2, 5));
        assert_eq!(e.dst_port, Some(8080));
        assert_eq!(e.field("msg"), Some("GET /"));
        // A present but unusable higher-priority field does not hide a usable one.
        let e = event(br#"<134>1 - d s - k [relay@55555 src_ip="Unknown" client_ip="2001:db8::1" src_port="5"]"#);
        assert_eq!(e.src_ip, "2001:db8::1".parse().ok());
        assert_eq!(e.src_port, Some(5));
        let e = event(br#"<134>1 - d s - k [relay@55555 src="[2001:db8::2]:22" src_port="x"]"#);
        assert_eq!(e.src_ip, "2001:db8::2".parse().ok());
        assert_eq!(e.src_port, Some(22));
    }

    #[test]
    fn rsyslog_free_text_lines() {
        let e = event(b"<86>1 2026-04-18T12:00:00+00:00 decky-01 bash 321 - - CMD uid=0 user=root src=1.2.3.4 pwd=/root cmd=ls");
        assert_eq!((e.service.as_str(), e.kind.as_str()), ("bash", ""));
        assert_eq!(e.src_ip, ip(1, 2, 3, 4));
        let keys: Vec<_> = e.fields().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["uid", "user", "src", "pwd", "cmd", "msg"]);
        assert_eq!(
            e.field("msg"),
            Some("CMD uid=0 user=root src=1.2.3.4 pwd=/root cmd=ls")
        );

        let e = event(b"<38>1 2026-04-18T12:00:00+00:00 decky-01 sshd 1234 - - Failed password for root from 1.2.3.4 port 22 ssh2");
        assert_eq!(e.severity, Severity::Info);
        assert_eq!(e.fields().len(), 1);
        assert_eq!(e.src_ip, None);

        // With a MSGID the producer chose its fields; MSG is not mined.
        let e = event(b"<134>1 - d s - k - a=b");
        assert_eq!(e.field("a"), None);
    }

    #[test]
    fn nil_fields_and_receive_time() {
        let e = event(b"<134>1 - - - - - -");
        assert_eq!(e.ts_ns, NOW);
        assert_eq!(
            (e.decky.as_str(), e.service.as_str(), e.kind.as_str()),
            ("", "", "")
        );
        assert!(e.fields().is_empty());
    }

    #[test]
    fn bsd_line_becomes_an_event() {
        let m = rfc3164::parse(
            b"<38>Apr 18 11:00:00 decky-01 sshd[9]: Accepted password for root",
            &Limits::default(),
            NOW,
        )
        .unwrap();
        let e = m.to_event(NOW);
        assert_eq!(e.ts_ns, NOW - 3_600_000_000_000);
        assert_eq!(
            (e.decky.as_str(), e.service.as_str(), e.kind.as_str()),
            ("decky-01", "sshd", "")
        );
        assert_eq!(e.field("msg"), Some("Accepted password for root"));
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let e = event(b"<134>1 - d s - k [relay@55555 user=\"r\xffot\"] \xfe");
        assert_eq!(e.field("user"), Some("r\u{fffd}ot"));
        assert_eq!(e.field("msg"), Some("\u{fffd}"));
        assert_eq!(
            e.raw(),
            b"<134>1 - d s - k [relay@55555 user=\"r\xffot\"] \xfe"
        );
    }

    #[test]
    fn field_cap_marks_truncation() {
        let params: String = (0..MAX_FIELDS + 5)
            .map(|i| format!(" k{i}=\"v\""))
            .collect();
        let line = format!("<134>1 - d s - k [relay@55555{params}] tail");
        let e = event(line.as_bytes());
        assert_eq!(e.fields().len(), MAX_FIELDS);
        assert!(e.truncated);
        assert_eq!(e.field("msg"), None);
    }
}
