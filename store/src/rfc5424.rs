//! RFC 5424 output: how every producer (decky services, sniffer, prober) writes an [`Event`]
//! on the wire (DESIGN.md §4).
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [relay@55555 k="v" …] MSG`, PRI = local0 +
//! severity. Header fields are clipped to the RFC's lengths and stripped to printable ASCII
//! (attacker text must not forge a field boundary); SD values escape `"`, `\` and `]`.

use crate::event::Event;

/// SD-ID of the one structured-data element events carry (the original's private number).
pub const SD_ID: &str = "relay@55555";
/// Field that carries the free-text message instead of an SD parameter.
pub const MSG_FIELD: &str = "msg";

const HOSTNAME_MAX: usize = 255;
const APP_NAME_MAX: usize = 48;
const MSGID_MAX: usize = 32;
const PARAM_NAME_MAX: usize = 32;

/// Header fields are printable ASCII; anything else becomes `_` (never dropped, so a value
/// cannot shrink into the NILVALUE `-` and change meaning).
fn push_header(out: &mut Vec<u8>, value: &str, max: usize) {
    if value.is_empty() {
        out.push(b'-');
        return;
    }
    out.extend(value.chars().take(max).map(|c| {
        u8::try_from(c)
            .ok()
            .filter(|b| (33..=126).contains(b))
            .unwrap_or(b'_')
    }));
}

/// SD-NAME: printable ASCII except `=`, space, `]` and `"` (RFC 5424 §6.3.3).
fn push_param_name(out: &mut Vec<u8>, name: &str) {
    let start = out.len();
    out.extend(
        name.bytes()
            .filter(|b| (33..=126).contains(b) && !matches!(b, b'=' | b']' | b'"'))
            .take(PARAM_NAME_MAX),
    );
    if out.len() == start {
        out.push(b'_');
    }
}

fn push_param_value(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        // A newline inside a datagram is legal, but LF-framed TCP transports would split on
        // it; carry it escaped-free as a space instead.
        out.push(if b == b'\n' || b == b'\r' { b' ' } else { b });
    }
}

/// RFC 3339 UTC timestamp with microseconds, from nanoseconds since the epoch.
pub fn timestamp(ts_ns: i64) -> String {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let micros = ts_ns.rem_euclid(1_000_000_000) / 1_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's civil-from-days algorithm.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Format an event as one RFC 5424 message (no trailing newline).
///
/// Addresses travel as `src_ip`/`src_port`/`dst_ip`/`dst_port` parameters first, so the
/// collector can attribute the event without trusting anything the attacker typed.
pub fn format(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        format!("<{}>1 {} ", event.severity.pri(), timestamp(event.ts_ns)).as_bytes(),
    );
    push_header(&mut out, &event.decky, HOSTNAME_MAX);
    out.push(b' ');
    push_header(&mut out, &event.service, APP_NAME_MAX);
    out.extend_from_slice(b" - ");
    push_header(&mut out, &event.kind, MSGID_MAX);
    out.push(b' ');

    let mut params: Vec<(&str, String)> = Vec::new();
    // Address members go first unless the fields already carry them (the reader lifts those),
    // so a message read back and written again is the same message.
    let carried = event.field_addresses();
    let addresses = [
        (
            "src_ip",
            event
                .src_ip
                .filter(|v| carried.src_ip != Some(*v))
                .map(|v| v.to_string()),
        ),
        (
            "src_port",
            event
                .src_port
                .filter(|v| carried.src_port != Some(*v))
                .map(|v| v.to_string()),
        ),
        (
            "dst_ip",
            event
                .dst_ip
                .filter(|v| carried.dst_ip != Some(*v))
                .map(|v| v.to_string()),
        ),
        (
            "dst_port",
            event
                .dst_port
                .filter(|v| carried.dst_port != Some(*v))
                .map(|v| v.to_string()),
        ),
    ];
    params.extend(addresses.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    let mut msg = None;
    for (k, v) in event.fields() {
        if k == MSG_FIELD {
            // An empty MSG is no MSG.
            msg = Some(v.as_str()).filter(|m| !m.is_empty());
        } else {
            params.push((k.as_str(), v.clone()));
        }
    }
    if params.is_empty() {
        out.push(b'-');
    } else {
        out.push(b'[');
        out.extend_from_slice(SD_ID.as_bytes());
        for (k, v) in &params {
            out.push(b' ');
            push_param_name(&mut out, k);
            out.extend_from_slice(b"=\"");
            push_param_value(&mut out, v);
            out.push(b'"');
        }
        out.push(b']');
    }
    if let Some(msg) = msg {
        out.push(b' ');
        // Readers strip one leading BOM (RFC 5424 §6.4); a MSG that itself starts with U+FEFF
        // keeps it only behind a second one.
        if msg.starts_with('\u{feff}') {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        out.extend(
            msg.bytes()
                .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    #[test]
    fn formats_the_original_shape() {
        // 2026-04-18T12:00:00.5Z
        let mut e = Event::new(
            1_776_513_600_500_000_000,
            "decky-03",
            "redis",
            "auth",
            Severity::Info,
        );
        e.src_ip = Some("203.0.113.9".parse().unwrap());
        e.push_field("password", "hun\"ter]2\\").unwrap();
        e.push_field("msg", "line\nbreak").unwrap();
        let line = String::from_utf8(format(&e)).unwrap();
        assert_eq!(
            line,
            "<134>1 2026-04-18T12:00:00.500000Z decky-03 redis - auth [relay@55555 \
             src_ip=\"203.0.113.9\" password=\"hun\\\"ter\\]2\\\\\"] line break"
        );
    }

    #[test]
    fn header_fields_cannot_be_forged() {
        let e = Event::new(0, "a b", "", "x y\nz", Severity::Warning);
        let line = String::from_utf8(format(&e)).unwrap();
        assert_eq!(line, "<132>1 1970-01-01T00:00:00.000000Z a_b - - x_y_z -");
    }

    #[test]
    fn timestamps_before_the_epoch_and_leap_years() {
        assert_eq!(timestamp(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            timestamp(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
