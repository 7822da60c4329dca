//! RFC 3339 (RFC 5424) and BSD (RFC 3164) timestamps, read from bytes into UTC nanoseconds.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::error::TimestampError;

/// Multiplier turning `n` fractional digits into nanoseconds.
const FRACTION_SCALE: [u32; 10] = [
    0,
    100_000_000,
    10_000_000,
    1_000_000,
    100_000,
    10_000,
    1_000,
    100,
    10,
    1,
];

/// Parses an RFC 3339 timestamp token such as `2003-08-24T05:14:15.000003-07:00`.
///
/// Up to 9 fractional digits are taken although RFC 5424 allows 6: nanosecond clocks (Go's
/// `RFC3339Nano`) are common and rejecting them would lose the whole event over a formality.
pub(crate) fn parse_rfc3339(token: &[u8]) -> Result<i64, TimestampError> {
    use TimestampError::{OutOfRange, Syntax, TooManyFractionDigits};

    let separators_ok = token.len() >= 20
        && token[4] == b'-'
        && token[7] == b'-'
        && matches!(token[10], b'T' | b't')
        && token[13] == b':'
        && token[16] == b':';
    if !separators_ok {
        return Err(Syntax);
    }
    let year = number(&token[0..4]).ok_or(Syntax)?;
    let month = number(&token[5..7]).ok_or(Syntax)?;
    let day = number(&token[8..10]).ok_or(Syntax)?;
    let hour = number(&token[11..13]).ok_or(Syntax)?;
    let minute = number(&token[14..16]).ok_or(Syntax)?;
    let second = number(&token[17..19]).ok_or(Syntax)?;

    let mut rest = &token[19..];
    let mut nanos = 0u32;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let digits = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(Syntax);
        }
        if digits > 9 {
            return Err(TooManyFractionDigits(digits));
        }
        let frac = number(&after_dot[..digits]).ok_or(Syntax)?;
        nanos = frac * FRACTION_SCALE[digits];
        rest = &after_dot[digits..];
    }

    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = number(&[*h1, *h2]).ok_or(Syntax)?;
            let minutes = number(&[*m1, *m2]).ok_or(Syntax)?;
            if hours > 23 || minutes > 59 {
                return Err(OutOfRange("UTC offset"));
            }
            let magnitude = i32::try_from(hours * 3600 + minutes * 60).map_err(|_| Syntax)?;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return Err(Syntax),
    };

    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or(OutOfRange("month"))?;
    let year = i32::try_from(year).map_err(|_| Syntax)?;
    let day = u8::try_from(day).map_err(|_| OutOfRange("day"))?;
    let date = Date::from_calendar_date(year, month, day).map_err(|_| OutOfRange("day"))?;
    let time = clock(hour, minute, second, nanos)?;
    let offset = UtcOffset::from_whole_seconds(offset_seconds).map_err(|_| OutOfRange("offset"))?;
    to_unix_nanos(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// A wall-clock time; a leap second (`:60`) is held at the last nanosecond of its minute,
/// since a Unix timestamp has no place for it and rejecting it would drop the event.
fn clock(hour: u32, minute: u32, second: u32, nanos: u32) -> Result<Time, TimestampError> {
    let (second, nanos) = if second == 60 {
        (59, 999_999_999)
    } else {
        (second, nanos)
    };
    let narrow = |v: u32, what| u8::try_from(v).map_err(|_| TimestampError::OutOfRange(what));
    Time::from_hms_nano(
        narrow(hour, "hour")?,
        narrow(minute, "minute")?,
        narrow(second, "second")?,
        nanos,
    )
    .map_err(|e| TimestampError::OutOfRange(component_name(&e)))
}

fn component_name(e: &time::error::ComponentRange) -> &'static str {
    match e.name() {
        "hour" => "hour",
        "minute" => "minute",
        "second" => "second",
        _ => "time",
    }
}

fn to_unix_nanos(t: OffsetDateTime) -> Result<i64, TimestampError> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| TimestampError::NotRepresentable)
}

/// Decimal value of an all-digit slice of at most 9 bytes.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0')),
    )
}

/// How far after the receive time a BSD timestamp may fall: senders' clocks drift.
const FUTURE_SLACK_NS: i64 = 2 * 86_400 * 1_000_000_000;

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Parses a BSD timestamp (`Oct 11 22:14:15`, `Oct  1 22:14:15`) at the start of `input`.
///
/// It carries no year or zone, so the time is taken as UTC in the latest year that does not put
/// it more than two days after `reference_ns` (normally the receive time): logs describe the
/// past, so a December line read in January belongs to the previous year, while a sender whose
/// clock runs a little ahead across New Year keeps its new year. Returns the time (`None` for a
/// Feb 29 with no leap year at hand) and the bytes consumed.
pub(crate) fn parse_bsd(input: &[u8], reference_ns: i64) -> Option<(Option<i64>, usize)> {
    let name = input.get(..3)?;
    let month_index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    if input.get(3) != Some(&b' ') {
        return None;
    }
    // The day is space-padded by the RFC ("Oct  1"), zero-padded or bare by some senders.
    let mut pos = 4;
    if input.get(pos) == Some(&b' ') {
        pos += 1;
    }
    let day_len = input[pos.min(input.len())..]
        .iter()
        .take(3)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=2).contains(&day_len) {
        return None;
    }
    let day = number(&input[pos..pos + day_len]).filter(|d| (1..=31).contains(d))?;
    pos += day_len;
    let clock_bytes = input.get(pos..pos + 9)?;
    if clock_bytes[0] != b' ' || clock_bytes[3] != b':' || clock_bytes[6] != b':' {
        return None;
    }
    let hour = number(&clock_bytes[1..3])?;
    let minute = number(&clock_bytes[4..6])?;
    let second = number(&clock_bytes[7..9])?;
    let time = clock(hour, minute, second, 0).ok()?;
    let month = Month::try_from(u8::try_from(month_index + 1).ok()?).ok()?;
    let day = u8::try_from(day).ok()?;

    let reference_year = OffsetDateTime::from_unix_timestamp_nanos(i128::from(reference_ns))
        .map_or(1970, OffsetDateTime::year);
    let latest_allowed = reference_ns.saturating_add(FUTURE_SLACK_NS);
    let best = [reference_year + 1, reference_year, reference_year - 1]
        .into_iter()
        .filter_map(|year| Date::from_calendar_date(year, month, day).ok())
        .filter_map(|date| to_unix_nanos(PrimitiveDateTime::new(date, time).assume_utc()).ok())
        .find(|&ts| ts <= latest_allowed);
    Some((best, pos + 9))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn rfc5424_examples() {
        // 2003-10-11T22:14:15.003Z
        assert_eq!(
            parse_rfc3339(b"2003-10-11T22:14:15.003Z"),
            Ok(1_065_910_455 * S + 3_000_000)
        );
        // -07:00 means seven hours behind UTC.
        assert_eq!(
            parse_rfc3339(b"2003-08-24T05:14:15.000003-07:00"),
            Ok(1_061_727_255 * S + 3_000)
        );
        assert_eq!(
            parse_rfc3339(b"2026-04-18T12:00:00.5+00:00"),
            Ok(1_776_513_600 * S + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339(b"1985-04-12T23:20:50.52Z"),
            Ok(482_196_050 * S + 520_000_000)
        );
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00z"), Ok(0));
        assert_eq!(
            parse_rfc3339(b"1970-01-01T00:00:00.123456789Z"),
            Ok(123_456_789)
        );
    }

    #[test]
    fn rejects_bad_timestamps() {
        use TimestampError::*;
        // RFC 5424 §6.5 calls 9 fractional digits invalid; they are accepted on purpose.
        assert!(parse_rfc3339(b"2003-08-24T05:14:15.000000003-07:00").is_ok());
        assert_eq!(
            parse_rfc3339(b"2003-08-24T05:14:15.0000000003-07:00"),
            Err(TooManyFractionDigits(10))
        );
        assert_eq!(parse_rfc3339(b"2003-10-11 22:14:15Z"), Err(Syntax));
        assert_eq!(parse_rfc3339(b"2003-10-11T22:14:15"), Err(Syntax));
        assert_eq!(parse_rfc3339(b"2003-10-11T22:14:15.Z"), Err(Syntax));
        assert_eq!(
            parse_rfc3339(b"2003-13-11T22:14:15Z"),
            Err(OutOfRange("month"))
        );
        assert_eq!(
            parse_rfc3339(b"2003-02-29T22:14:15Z"),
            Err(OutOfRange("day"))
        );
        assert_eq!(
            parse_rfc3339(b"2003-02-28T24:14:15Z"),
            Err(OutOfRange("hour"))
        );
        assert_eq!(
            parse_rfc3339(b"2003-02-28T23:14:15+24:00"),
            Err(OutOfRange("UTC offset"))
        );
        assert_eq!(
            parse_rfc3339(b"9999-02-28T23:14:15Z"),
            Err(NotRepresentable)
        );
        assert_eq!(parse_rfc3339(b"-"), Err(Syntax));
        assert_eq!(
            parse_rfc3339("2003-10-11T22:14:15\u{e9}Z".as_bytes()),
            Err(Syntax)
        );
    }

    #[test]
    fn leap_second_is_held_at_the_minute_end() {
        assert_eq!(
            parse_rfc3339(b"2016-12-31T23:59:60Z"),
            Ok(1_483_228_800 * S - 1)
        );
    }

    #[test]
    fn bsd_timestamps_infer_the_nearest_year() {
        let reference = 1_776_513_600 * S; // 2026-04-18T12:00:00Z
        let at = |text: &[u8]| Some(parse_rfc3339(text).unwrap());
        assert_eq!(
            parse_bsd(b"Oct 11 22:14:15 host", reference),
            Some((at(b"2025-10-11T22:14:15Z"), 15))
        );
        assert_eq!(
            parse_bsd(b"Apr  8 01:02:03 x", reference),
            Some((at(b"2026-04-08T01:02:03Z"), 15))
        );
        // Up to two days ahead stays in the reference year.
        assert_eq!(
            parse_bsd(b"Apr 20 00:00:00", reference),
            Some((at(b"2026-04-20T00:00:00Z"), 15))
        );
        let new_year = parse_rfc3339(b"2027-01-01T00:00:05Z").unwrap();
        assert_eq!(
            parse_bsd(b"Dec 31 23:59:59", new_year),
            Some((at(b"2026-12-31T23:59:59Z"), 15))
        );
        let old_year = parse_rfc3339(b"2026-12-31T23:59:00Z").unwrap();
        assert_eq!(
            parse_bsd(b"Jan  1 00:00:10", old_year),
            Some((at(b"2027-01-01T00:00:10Z"), 15))
        );
        // No year near 2026 has a Feb 29: the header is still recognised, the time is not.
        let leap = parse_rfc3339(b"2026-03-01T00:00:00Z").unwrap();
        assert_eq!(parse_bsd(b"Feb 29 12:00:00", leap), Some((None, 15)));
        let (_, used) = parse_bsd(b"apr 8 01:02:03", reference).unwrap();
        assert_eq!(used, 14);
        assert_eq!(parse_bsd(b"Foo 11 22:14:15", reference), None);
        assert_eq!(parse_bsd(b"Oct 11 22:14", reference), None);
        assert_eq!(parse_bsd(b"Oct 32 22:14:15", reference), None);
        assert_eq!(parse_bsd(b"Oct 11 25:14:15", reference), None);
        assert_eq!(parse_bsd(b"Oct", reference), None);
    }
}
