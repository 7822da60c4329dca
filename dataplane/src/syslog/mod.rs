//! Syslog intake without I/O: framing, parsing, conversion to events, and formatting.
//!
//! Deckies' logs carry attacker-controlled text, so everything here reads bytes (never
//! `&str`), bounds every size and count, and reports problems as typed errors instead of
//! panicking. The socket and TLS side of the intake only moves bytes into these functions:
//!
//! - [`framing::FrameDecoder`] splits a TCP/TLS stream into messages (RFC 6587, RFC 5425);
//! - [`parse`] reads one message, RFC 5424 when it starts like one, RFC 3164 otherwise;
//! - [`SyslogMessage::to_event`] turns it into the [`decnet_store::Event`] the store keeps;
//! - the services write events with [`decnet_store::rfc5424::format`], which this reads back.

mod convert;
mod error;
pub mod framing;
mod kv;
mod message;
mod pri;
pub mod rfc3164;
pub mod rfc5424;
mod sd;
mod timestamp;

#[cfg(test)]
mod proptests;

pub use convert::{MSG_FIELD, SRC_IP_FIELDS, lift_addresses};
pub use error::{HeaderField, ParseError, SdName, TimestampError};
pub use framing::{FrameDecoder, FrameError, Framing};
pub use message::{Format, Limits, SdElement, SdParam, SyslogMessage};

/// A message read by [`parse`], possibly in a degraded form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub message: SyslogMessage<'a>,
    /// Why the RFC 5424 grammar failed for a message that started like RFC 5424. The message
    /// is then the best partial reading: the RFC 5424 header with the rest as MSG when the
    /// header held, otherwise the RFC 3164 reading. Count these; do not drop the message.
    pub degraded: Option<ParseError>,
}

/// Reads one syslog message (one datagram, one frame or one line).
///
/// A message starting `<PRI>1 ` is RFC 5424; anything else is read as RFC 3164, which takes
/// any bytes at all. `received_ns` supplies the year a BSD timestamp lacks. Only empty input
/// and input over `limits.max_message_len` are rejected outright, so nothing an attacker
/// writes into a decky's log can make the event disappear.
pub fn parse<'a>(
    input: &'a [u8],
    limits: &Limits,
    received_ns: i64,
) -> Result<Parsed<'a>, ParseError> {
    check_size(input, limits)?;
    if !rfc5424::looks_like(input) {
        let message = rfc3164::parse(input, limits, received_ns)?;
        return Ok(Parsed {
            message,
            degraded: None,
        });
    }
    match rfc5424::parse(input, limits) {
        Ok(message) => Ok(Parsed {
            message,
            degraded: None,
        }),
        Err(e) => {
            let message = match rfc5424::parse_header_only(input) {
                Some(message) => message,
                None => rfc3164::parse(input, limits, received_ns)?,
            };
            Ok(Parsed {
                message,
                degraded: Some(e),
            })
        }
    }
}

/// The two checks every grammar starts with.
pub(crate) fn check_size(input: &[u8], limits: &Limits) -> Result<(), ParseError> {
    if input.is_empty() {
        return Err(ParseError::Empty);
    }
    if input.len() > limits.max_message_len {
        return Err(ParseError::TooLarge {
            len: input.len(),
            max: limits.max_message_len,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_776_513_600_000_000_000;

    fn parse_ok(input: &[u8]) -> Parsed<'_> {
        parse(input, &Limits::default(), NOW).unwrap()
    }

    #[test]
    fn picks_the_grammar() {
        let p = parse_ok(b"<134>1 - d s - k - m");
        assert_eq!(p.message.format, Format::Rfc5424);
        assert_eq!(p.degraded, None);
        let p = parse_ok(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed");
        assert_eq!(p.message.format, Format::Rfc3164);
        assert_eq!(p.degraded, None);
    }

    #[test]
    fn broken_sd_keeps_the_header() {
        let p = parse_ok(
            br#"<134>1 2026-04-18T12:00:00Z decky-03 redis - auth [relay@55555 src="203.0.113.9"#,
        );
        assert_eq!(p.degraded, Some(ParseError::SdUnterminated));
        assert_eq!(
            p.degraded.as_ref().map(ParseError::kind),
            Some("sd_unterminated")
        );
        let e = p.message.to_event(0);
        assert_eq!(
            (e.decky.as_str(), e.service.as_str(), e.kind.as_str()),
            ("decky-03", "redis", "auth")
        );
        assert_eq!(e.ts_ns, NOW);
        assert_eq!(e.field("msg"), Some(r#"[relay@55555 src="203.0.113.9"#));
    }

    #[test]
    fn broken_header_falls_back_to_bsd() {
        let p = parse_ok(b"<134>1 not-a-time host app - - - text");
        assert_eq!(
            p.degraded,
            Some(ParseError::InvalidTimestamp(TimestampError::Syntax))
        );
        assert_eq!(p.message.format, Format::Rfc3164);
        assert_eq!(p.message.pri(), 134);
        assert_eq!(p.message.msg, b"1 not-a-time host app - - - text");
    }

    #[test]
    fn only_empty_and_oversized_are_rejected() {
        assert_eq!(parse(b"", &Limits::default(), NOW), Err(ParseError::Empty));
        let big = vec![b'x'; Limits::DEFAULT_MAX_MESSAGE_LEN + 1];
        assert_eq!(
            parse(&big, &Limits::default(), NOW).map(|_| ()),
            Err(ParseError::TooLarge {
                len: big.len(),
                max: Limits::DEFAULT_MAX_MESSAGE_LEN
            })
        );
        assert!(parse(b"\x00", &Limits::default(), NOW).is_ok());
    }

    #[test]
    fn frames_then_parse_then_event() {
        let mut stream = Vec::new();
        framing::encode_octet_counted(
            br#"<134>1 2026-04-18T12:00:00.5+00:00 decky-03 redis - auth [relay@55555 src="203.0.113.9" password="hunter2"]"#,
            &mut stream,
        );
        let mut decoder = FrameDecoder::new(Limits::DEFAULT_MAX_MESSAGE_LEN);
        decoder.push(&stream);
        let frame = decoder.next_frame().unwrap().unwrap();
        let event = parse(frame, &Limits::default(), NOW)
            .unwrap()
            .message
            .to_event(NOW);
        assert_eq!(event.field("password"), Some("hunter2"));
        assert_eq!(event.src_ip, "203.0.113.9".parse().ok());
    }
}
