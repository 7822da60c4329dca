//! RFC 3164 (BSD syslog): `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: CONTENT`.
//!
//! BSD syslog was never one grammar, so this parser never rejects a line for its shape: a
//! missing PRI defaults to 13 (user.notice, RFC 3164 §4.3.3), an unreadable header leaves the
//! rest as MSG. Only empty and oversized input are errors.

use super::error::ParseError;
use super::message::{Format, Limits, SyslogMessage, read_msg, split_pri};
use super::{check_size, pri, timestamp};

/// PRI assumed for a line without one (RFC 3164 §4.3.3).
pub const DEFAULT_PRI: u8 = 13;
/// Longest TAG taken; RFC 3164 says 32, real daemons go longer, RFC 5424 APP-NAME allows 48.
const MAX_TAG: usize = 48;
const MAX_PID: usize = 128;
const MAX_HOSTNAME: usize = 255;

/// Parses a BSD syslog line. `reference_ns` (normally the receive time) supplies the year the
/// BSD timestamp lacks.
pub fn parse<'a>(
    input: &'a [u8],
    limits: &Limits,
    reference_ns: i64,
) -> Result<SyslogMessage<'a>, ParseError> {
    check_size(input, limits)?;
    let (pri, mut rest) = pri::parse_pri(input).unwrap_or((DEFAULT_PRI, input));
    let (facility, severity) = split_pri(pri);

    let mut timestamp_ns = None;
    let mut has_header = true;
    if let Some((ts, used)) = timestamp::parse_bsd(rest, reference_ns) {
        timestamp_ns = ts;
        rest = &rest[used..];
    } else if let Some((ts, used)) = rfc3339_token(rest) {
        // rsyslog's forwarding templates put an RFC 3339 time in an otherwise BSD line.
        timestamp_ns = Some(ts);
        rest = &rest[used..];
    } else {
        // §4.3.2: without a TIMESTAMP there is no HOSTNAME either.
        has_header = false;
    }

    let mut hostname = None;
    if has_header {
        // §4.1.2: a single space follows the TIMESTAMP; some senders pad more.
        rest = trim_spaces(rest);
        if let Some((host, after)) = host_token(rest) {
            hostname = Some(host);
            rest = after;
        }
    }

    let (app_name, proc_id, content) = match tag(rest) {
        Some((tag, pid, content)) => (Some(tag), pid, content),
        None => (None, None, rest),
    };
    let msg = read_msg(content);
    Ok(SyslogMessage {
        format: Format::Rfc3164,
        facility,
        severity,
        timestamp_ns,
        hostname,
        app_name,
        proc_id,
        msg_id: None,
        structured_data: Vec::new(),
        msg: msg.body,
        bom: msg.bom,
        msg_utf8: msg.text,
        invalid_utf8: msg.text.is_none(),
        raw: input,
    })
}

fn trim_spaces(input: &[u8]) -> &[u8] {
    let n = input.iter().take_while(|&&b| b == b' ').count();
    &input[n..]
}

/// An RFC 3339 time followed by a space, as rsyslog's `RSYSLOG_ForwardFormat` writes it.
fn rfc3339_token(input: &[u8]) -> Option<(i64, usize)> {
    let end = input.iter().take(64).position(|&b| b == b' ')?;
    let ts = timestamp::parse_rfc3339(&input[..end]).ok()?;
    Some((ts, end))
}

/// The HOSTNAME: a printable-ASCII word followed by a space. A word that ends in `:` or holds
/// `[` is a TAG instead (local senders often omit the host: `su[12]: ...`).
fn host_token(input: &[u8]) -> Option<(&str, &[u8])> {
    let end = input
        .iter()
        .take(MAX_HOSTNAME + 1)
        .position(|&b| b == b' ')?;
    let word = &input[..end];
    let is_host = !word.is_empty()
        && word.iter().all(|b| (33..=126).contains(b))
        && !word.ends_with(b":")
        && !word.contains(&b'[');
    if !is_host {
        return None;
    }
    let host = std::str::from_utf8(word).ok()?;
    Some((host, &input[end + 1..]))
}

/// `TAG: content` or `TAG[PID]: content`.
fn tag(input: &[u8]) -> Option<(&str, Option<&str>, &[u8])> {
    let len = input
        .iter()
        .take(MAX_TAG + 1)
        .take_while(|&&b| (33..=126).contains(&b) && !matches!(b, b':' | b'[' | b']'))
        .count();
    if len == 0 || len > MAX_TAG {
        return None;
    }
    let tag = std::str::from_utf8(&input[..len]).ok()?;
    let rest = &input[len..];
    let (pid, rest) = match rest.first()? {
        b':' => (None, &rest[1..]),
        b'[' => {
            let body = &rest[1..];
            let pid_len = body
                .iter()
                .take(MAX_PID + 1)
                .take_while(|&&b| (33..=126).contains(&b) && b != b']')
                .count();
            if pid_len == 0 || pid_len > MAX_PID || !body[pid_len..].starts_with(b"]:") {
                return None;
            }
            let pid = std::str::from_utf8(&body[..pid_len]).ok()?;
            (Some(pid), &body[pid_len + 2..])
        }
        _ => return None,
    };
    Some((tag, pid, rest.strip_prefix(b" ").unwrap_or(rest)))
}

#[cfg(test)]
mod tests {
    use decnet_store::Severity;

    use super::*;
    use crate::syslog::timestamp::parse_rfc3339;

    /// 2026-04-18T12:00:00Z, the receive time used throughout.
    const NOW: i64 = 1_776_513_600_000_000_000;

    fn parse_ok(input: &[u8]) -> SyslogMessage<'_> {
        parse(input, &Limits::default(), NOW).unwrap()
    }

    fn ts(text: &str) -> Option<i64> {
        Some(parse_rfc3339(text.as_bytes()).unwrap())
    }

    #[test]
    fn rfc3164_example_1() {
        let m = parse_ok(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        );
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!((m.facility, m.severity), (4, Severity::Critical));
        assert_eq!(m.timestamp_ns, ts("2025-10-11T22:14:15Z"));
        assert_eq!(m.hostname, Some("mymachine"));
        assert_eq!(m.app_name, Some("su"));
        assert_eq!(m.proc_id, None);
        assert_eq!(m.msg, b"'su root' failed for lonvick on /dev/pts/8");
    }

    #[test]
    fn rfc3164_example_2_no_header_at_all() {
        let m = parse_ok(b"Use the BFG!");
        assert_eq!(m.pri(), DEFAULT_PRI);
        assert_eq!((m.facility, m.severity), (1, Severity::Notice));
        assert_eq!(m.timestamp_ns, None);
        assert_eq!(m.hostname, None);
        assert_eq!(m.app_name, None);
        assert_eq!(m.msg, b"Use the BFG!");
    }

    #[test]
    fn rfc3164_example_3_odd_timestamp() {
        // §5.4: "CST 1987" does not belong in a BSD TIMESTAMP; a relay reads "CST" as HOSTNAME.
        let m = parse_ok(b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: Conveyer1=OK, Conveyer2=OK # %%");
        assert_eq!((m.facility, m.severity), (20, Severity::Notice));
        assert_eq!(m.timestamp_ns, ts("2025-08-24T05:34:00Z"));
        assert_eq!(m.hostname, Some("CST"));
        assert_eq!(m.app_name, None);
        assert!(m.msg.starts_with(b"1987 mymachine myproc[10]: %%"));
    }

    #[test]
    fn rfc3164_example_4_no_valid_timestamp() {
        let raw = b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!";
        let m = parse_ok(raw);
        assert_eq!((m.facility, m.severity), (0, Severity::Emergency));
        assert_eq!(m.timestamp_ns, None);
        assert_eq!(m.hostname, None);
        assert_eq!(m.msg, &raw[3..]);
    }

    #[test]
    fn tag_with_pid() {
        let m = parse_ok(b"<38>Apr  8 01:02:03 decky-01 sshd[1234]: Accepted password for root");
        assert_eq!(m.timestamp_ns, ts("2026-04-08T01:02:03Z"));
        assert_eq!(m.hostname, Some("decky-01"));
        assert_eq!(m.app_name, Some("sshd"));
        assert_eq!(m.proc_id, Some("1234"));
        assert_eq!(m.msg, b"Accepted password for root");
    }

    #[test]
    fn local_socket_line_without_hostname() {
        let m = parse_ok(b"<13>Apr 18 11:59:00 bash[77]: CMD uid=0 user=root src=1.2.3.4");
        assert_eq!(m.hostname, None);
        assert_eq!(m.app_name, Some("bash"));
        assert_eq!(m.proc_id, Some("77"));
        assert_eq!(m.msg, b"CMD uid=0 user=root src=1.2.3.4");
        let m = parse_ok(b"<13>Apr 18 11:59:00 logger: hello");
        assert_eq!((m.hostname, m.app_name), (None, Some("logger")));
    }

    #[test]
    fn rfc3339_in_a_bsd_line() {
        let m = parse_ok(b"<86>2026-04-18T11:00:00.25+02:00 decky-02 sudo: root : TTY=pts/0");
        assert_eq!(m.timestamp_ns, ts("2026-04-18T09:00:00.25Z"));
        assert_eq!(m.hostname, Some("decky-02"));
        assert_eq!(m.app_name, Some("sudo"));
        assert_eq!(m.msg, b"root : TTY=pts/0");
    }

    #[test]
    fn broken_lines_still_yield_a_message() {
        let m = parse_ok(b"<999>Oct 11 22:14:15 host x: y");
        assert_eq!(m.pri(), DEFAULT_PRI);
        assert_eq!(m.msg, b"<999>Oct 11 22:14:15 host x: y");
        let m = parse_ok(b"<13>Oct 11 22:14:15");
        assert_eq!((m.hostname, m.app_name, m.msg), (None, None, &b""[..]));
        let m = parse_ok(b"<13>Oct 11 22:14:15 \xff\xfe tag: x");
        assert!(m.invalid_utf8);
        assert_eq!(m.hostname, None);
        let m = parse_ok(b"<13>");
        assert_eq!(m.msg, b"");
        let m = parse_ok(b"\n");
        assert_eq!(m.msg, b"\n");
        let m = parse_ok(b"<13>tag[unclosed: x");
        assert_eq!(m.app_name, None);
    }

    #[test]
    fn empty_and_oversized_are_errors() {
        assert_eq!(parse(b"", &Limits::default(), NOW), Err(ParseError::Empty));
        let limits = Limits {
            max_message_len: 4,
            ..Limits::default()
        };
        assert_eq!(
            parse(b"12345", &limits, NOW),
            Err(ParseError::TooLarge { len: 5, max: 4 })
        );
    }
}
