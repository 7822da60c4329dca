use std::borrow::Cow;

use decnet_store::Severity;

use super::*;
use crate::syslog::error::{SdName, TimestampError};

fn parse_ok(input: &[u8]) -> SyslogMessage<'_> {
    parse(input, &Limits::default()).unwrap()
}

fn parse_err(input: &[u8]) -> ParseError {
    parse(input, &Limits::default()).unwrap_err()
}

const S: i64 = 1_000_000_000;

#[test]
fn rfc5424_example_1_bom_and_no_sd() {
    let raw = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8";
    let m = parse_ok(raw);
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!((m.facility, m.severity), (4, Severity::Critical));
    assert_eq!(m.pri(), 34);
    assert_eq!(m.timestamp_ns, Some(1_065_910_455 * S + 3_000_000));
    assert_eq!(m.hostname, Some("mymachine.example.com"));
    assert_eq!(m.app_name, Some("su"));
    assert_eq!(m.proc_id, None);
    assert_eq!(m.msg_id, Some("ID47"));
    assert!(m.structured_data.is_empty());
    assert!(m.bom);
    assert_eq!(m.msg, b"'su root' failed for lonvick on /dev/pts/8");
    assert!(!m.invalid_utf8);
    assert_eq!(m.raw, raw);
}

#[test]
fn rfc5424_example_2_offset_and_procid() {
    let m = parse_ok(
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
    );
    assert_eq!((m.facility, m.severity), (20, Severity::Notice));
    assert_eq!(m.timestamp_ns, Some(1_061_727_255 * S + 3_000));
    assert_eq!(m.hostname, Some("192.0.2.1"));
    assert_eq!(m.app_name, Some("myproc"));
    assert_eq!(m.proc_id, Some("8710"));
    assert_eq!(m.msg_id, None);
    assert!(!m.bom);
    assert_eq!(m.msg, b"%% It's time to make the do-nuts.");
}

#[test]
fn rfc5424_example_3_sd_and_msg() {
    let m = parse_ok(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBFAn application event log entry...",
    );
    assert_eq!(m.structured_data.len(), 1);
    assert_eq!(m.structured_data[0].id, "exampleSDID@32473");
    let params: Vec<_> = m.params().map(|p| (p.name, p.value.as_ref())).collect();
    assert_eq!(
        params,
        [
            ("iut", "3"),
            ("eventSource", "Application"),
            ("eventID", "1011")
        ]
    );
    assert!(m.bom);
    assert_eq!(m.msg, b"An application event log entry...");
}

#[test]
fn rfc5424_example_4_two_elements_no_msg() {
    let m = parse_ok(
        br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#,
    );
    assert_eq!(m.structured_data.len(), 2);
    assert_eq!(m.structured_data[1].params[0].name, "class");
    assert_eq!(m.msg, b"");
}

#[test]
fn original_service_line() {
    let m = parse_ok(
        br#"<134>1 2026-04-18T12:00:00.5+00:00 decky-03 redis - auth [relay@55555 src="203.0.113.9" password="hunter2"]"#,
    );
    assert_eq!(m.severity, Severity::Info);
    assert_eq!(m.facility, 16);
    assert_eq!(m.timestamp_ns, Some(1_776_513_600 * S + 500_000_000));
    assert_eq!(m.hostname, Some("decky-03"));
    assert_eq!(m.app_name, Some("redis"));
    assert_eq!(m.msg_id, Some("auth"));
    assert_eq!(m.structured_data[0].id, "relay@55555");
    let params: Vec<_> = m.params().map(|p| (p.name, p.value.as_ref())).collect();
    assert_eq!(params, [("src", "203.0.113.9"), ("password", "hunter2")]);
}

#[test]
fn rsyslog_template_line() {
    let m = parse_ok(
        b"<38>1 2026-04-18T12:00:00.123456+00:00 decky-01 sshd 1234 - - Failed password for root from 1.2.3.4 port 22 ssh2",
    );
    assert_eq!(m.app_name, Some("sshd"));
    assert_eq!(m.proc_id, Some("1234"));
    assert_eq!(m.msg_id, None);
    assert_eq!(
        m.msg_text(),
        "Failed password for root from 1.2.3.4 port 22 ssh2"
    );
}

#[test]
fn all_nil_and_empty_msg() {
    let m = parse_ok(b"<0>1 - - - - - -");
    assert_eq!(m.timestamp_ns, None);
    assert_eq!(
        (m.hostname, m.app_name, m.proc_id, m.msg_id),
        (None, None, None, None)
    );
    assert_eq!(m.msg, b"");
    let m = parse_ok(b"<0>1 - - - - - - ");
    assert_eq!(m.msg, b"");
    let m = parse_ok(b"<0>1 - - - - - -  two spaces");
    assert_eq!(m.msg, b" two spaces");
}

#[test]
fn escaped_values_are_unescaped() {
    let m = parse_ok(br#"<134>1 - d s - k [relay@55555 q="a\"b" b="c\\d" r="e\]f"] m"#);
    let values: Vec<_> = m.params().map(|p| p.value.as_ref()).collect();
    assert_eq!(values, ["a\"b", "c\\d", "e]f"]);
}

#[test]
fn invalid_utf8_msg_is_kept_and_flagged() {
    let m = parse_ok(b"<134>1 - d s - k - bad \xff\xfe bytes");
    assert!(m.invalid_utf8);
    assert_eq!(m.msg, b"bad \xff\xfe bytes");
    assert_eq!(m.msg_text(), "bad \u{fffd}\u{fffd} bytes");
    let m = parse_ok(b"<134>1 - d s - k - \xEF\xBB\xBF\xc3");
    assert!(m.bom && m.invalid_utf8);
    assert!(matches!(m.msg_text(), Cow::Owned(_)));
}

#[test]
fn header_length_limits() {
    let at = |field: HeaderField, len: usize| {
        let mut parts = ["-"; 4].map(str::to_owned);
        let index = match field {
            HeaderField::Hostname => 0,
            HeaderField::AppName => 1,
            HeaderField::ProcId => 2,
            _ => 3,
        };
        parts[index] = "x".repeat(len);
        format!("<13>1 - {} -", parts.join(" ")).into_bytes()
    };
    for (field, max) in [
        (HeaderField::Hostname, MAX_HOSTNAME),
        (HeaderField::AppName, MAX_APP_NAME),
        (HeaderField::ProcId, MAX_PROCID),
        (HeaderField::MsgId, MAX_MSGID),
    ] {
        assert!(
            parse(&at(field, max), &Limits::default()).is_ok(),
            "{field}"
        );
        assert_eq!(
            parse(&at(field, max + 1), &Limits::default()),
            Err(ParseError::FieldTooLong { field, max })
        );
    }
}

#[test]
fn malformed_headers() {
    assert_eq!(parse_err(b""), ParseError::Empty);
    assert_eq!(parse_err(b"<13>"), ParseError::BadVersion);
    assert_eq!(parse_err(b"<13>0 - - - - - -"), ParseError::BadVersion);
    assert_eq!(
        parse_err(b"<13>1"),
        ParseError::UnexpectedEnd(HeaderField::Timestamp)
    );
    assert_eq!(
        parse_err(b"<13>2 - - - - - -"),
        ParseError::UnsupportedVersion(2)
    );
    assert_eq!(parse_err(b"<13>1x - - - - - -"), ParseError::BadVersion);
    assert_eq!(
        parse_err(b"<13>1 "),
        ParseError::UnexpectedEnd(HeaderField::Timestamp)
    );
    assert_eq!(
        parse_err(b"<13>1 - host"),
        ParseError::UnexpectedEnd(HeaderField::AppName)
    );
    assert_eq!(
        parse_err(b"<13>1 - - - - -"),
        ParseError::UnexpectedEnd(HeaderField::StructuredData)
    );
    assert_eq!(
        parse_err(b"<13>1 -  - - - -"),
        ParseError::InvalidHeaderByte {
            field: HeaderField::Hostname,
            byte: b' '
        }
    );
    assert_eq!(
        parse_err(b"<13>1 - h\xc3\xa9 - - - -"),
        ParseError::InvalidHeaderByte {
            field: HeaderField::Hostname,
            byte: 0xc3
        }
    );
    assert_eq!(
        parse_err(b"<13>1 yesterday - - - - -"),
        ParseError::InvalidTimestamp(TimestampError::Syntax)
    );
    assert_eq!(
        parse_err(b"<13>1 - - - - - -x"),
        ParseError::NoSpaceBeforeMsg(b'x')
    );
    assert_eq!(
        parse_err(b"<13>1 - - - - - x"),
        ParseError::SdBadStart(b'x')
    );
    assert_eq!(
        parse_err(b"<13>1 - - - - - [relay@55555 a=\"b"),
        ParseError::SdUnterminated
    );
    assert_eq!(
        parse_err(b"<13>1 - - - - - [ a=\"b\"]"),
        ParseError::SdEmptyName(SdName::Id)
    );
}

#[test]
fn size_cap() {
    let limits = Limits {
        max_message_len: 20,
        ..Limits::default()
    };
    assert!(parse(b"<13>1 - - - - - - 12", &limits).is_ok());
    assert_eq!(
        parse(b"<13>1 - - - - - - 123", &limits),
        Err(ParseError::TooLarge { len: 21, max: 20 })
    );
}

#[test]
fn header_only_fallback_keeps_identity() {
    let m = parse_header_only(b"<134>1 - decky-03 redis - auth [relay@55555 src=\"1.2").unwrap();
    assert_eq!(m.hostname, Some("decky-03"));
    assert_eq!(m.msg_id, Some("auth"));
    assert_eq!(m.msg, b"[relay@55555 src=\"1.2");
    assert!(parse_header_only(b"<134>1 - decky-03").is_none());
}

#[test]
fn detection() {
    assert!(looks_like(b"<34>1 "));
    assert!(!looks_like(b"<34>12 "));
    assert!(!looks_like(b"<34>Oct 11 22:14:15"));
    assert!(!looks_like(b"<0>1990 Oct 22"));
    assert!(!looks_like(b"Use the BFG!"));
}

#[test]
fn msg_text_reuses_the_parsers_utf8_check() {
    let m = parse_ok(b"<134>1 - d s - k - caf\xc3\xa9");
    assert_eq!(m.msg_utf8, Some("café"));
    assert!(matches!(m.msg_text(), Cow::Borrowed("café")));
    // A hand-built message whose `msg_utf8` is not its `msg` is read from `msg`.
    let mut other = m.clone();
    other.msg = b"bad \xff";
    assert_eq!(other.msg_text(), "bad \u{fffd}");
    other.msg = b"cafe";
    assert_eq!(other.msg_text(), "cafe");
}
