//! RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [SP MSG]`.

use super::error::{HeaderField, ParseError};
use super::message::{Format, Limits, SyslogMessage, read_msg, split_pri};
use super::{check_size, pri, sd, timestamp};

/// Header field lengths from RFC 5424 §6.
pub const MAX_HOSTNAME: usize = 255;
pub const MAX_APP_NAME: usize = 48;
pub const MAX_PROCID: usize = 128;
pub const MAX_MSGID: usize = 32;
/// Generous bound for the TIMESTAMP token; a valid one is at most 35 bytes.
const MAX_TIMESTAMP: usize = 64;

/// Whether `input` starts like RFC 5424 (`<PRI>1 `), which decides the grammar to use.
pub fn looks_like(input: &[u8]) -> bool {
    matches!(pri::parse_pri(input), Ok((_, rest)) if rest.starts_with(b"1 "))
}

/// Parses one RFC 5424 message strictly: any deviation from the grammar is an error.
pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<SyslogMessage<'a>, ParseError> {
    check_size(input, limits)?;
    let (mut message, rest) = header(input)?;
    let sd = sd::parse(rest, limits)?;
    let msg = match sd.rest {
        [] => &[][..],
        [b' ', msg @ ..] => msg,
        [other, ..] => return Err(ParseError::NoSpaceBeforeMsg(*other)),
    };
    message.structured_data = sd.elements;
    let msg = read_msg(msg);
    message.msg = msg.body;
    message.bom = msg.bom;
    message.msg_utf8 = msg.text;
    message.invalid_utf8 = sd.invalid_utf8 | msg.text.is_none();
    Ok(message)
}

/// A message whose header is sound but whose STRUCTURED-DATA is not: everything after MSGID
/// becomes MSG, so decky, service and kind survive a broken or truncated SD.
pub(crate) fn parse_header_only(input: &[u8]) -> Option<SyslogMessage<'_>> {
    let (mut message, rest) = header(input).ok()?;
    let msg = read_msg(rest);
    message.msg = msg.body;
    message.bom = msg.bom;
    message.msg_utf8 = msg.text;
    message.invalid_utf8 = msg.text.is_none();
    Some(message)
}

/// Reads PRI through MSGID and the space after it.
fn header(input: &[u8]) -> Result<(SyslogMessage<'_>, &[u8]), ParseError> {
    let (pri, rest) = pri::parse_pri(input)?;
    let rest = version(rest)?;
    let (ts, rest) = token(
        rest,
        HeaderField::Timestamp,
        MAX_TIMESTAMP,
        HeaderField::Hostname,
    )?;
    let timestamp_ns = ts
        .map(|t| timestamp::parse_rfc3339(t.as_bytes()))
        .transpose()?;
    let (hostname, rest) = token(
        rest,
        HeaderField::Hostname,
        MAX_HOSTNAME,
        HeaderField::AppName,
    )?;
    let (app_name, rest) = token(
        rest,
        HeaderField::AppName,
        MAX_APP_NAME,
        HeaderField::ProcId,
    )?;
    let (proc_id, rest) = token(rest, HeaderField::ProcId, MAX_PROCID, HeaderField::MsgId)?;
    let (msg_id, rest) = token(
        rest,
        HeaderField::MsgId,
        MAX_MSGID,
        HeaderField::StructuredData,
    )?;
    let (facility, severity) = split_pri(pri);
    let message = SyslogMessage {
        format: Format::Rfc5424,
        facility,
        severity,
        timestamp_ns,
        hostname,
        app_name,
        proc_id,
        msg_id,
        structured_data: Vec::new(),
        msg: &[],
        bom: false,
        msg_utf8: None,
        invalid_utf8: false,
        raw: input,
    };
    Ok((message, rest))
}

/// VERSION (`NONZERO-DIGIT 0*2DIGIT`) and the space after it; only version 1 exists.
fn version(input: &[u8]) -> Result<&[u8], ParseError> {
    let digits = input
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || input[0] == b'0' {
        return Err(ParseError::BadVersion);
    }
    let value = input[..digits]
        .iter()
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match input.get(digits) {
        None => return Err(ParseError::UnexpectedEnd(HeaderField::Timestamp)),
        Some(b' ') => {}
        Some(_) => return Err(ParseError::BadVersion),
    }
    if value != 1 {
        return Err(ParseError::UnsupportedVersion(value));
    }
    Ok(&input[digits + 1..])
}

/// Reads one header token and the space after it; `-` (NILVALUE) reads as `None`.
fn token(
    input: &[u8],
    field: HeaderField,
    max: usize,
    next: HeaderField,
) -> Result<(Option<&str>, &[u8]), ParseError> {
    if input.is_empty() {
        return Err(ParseError::UnexpectedEnd(field));
    }
    for (i, &b) in input.iter().enumerate() {
        if b == b' ' {
            if i == 0 {
                return Err(ParseError::InvalidHeaderByte { field, byte: b' ' });
            }
            let text = &input[..i];
            let value = if text == b"-" {
                None
            } else {
                // Every byte was checked to be printable ASCII, so this always succeeds.
                Some(
                    std::str::from_utf8(text)
                        .map_err(|_| ParseError::InvalidHeaderByte { field, byte: b })?,
                )
            };
            return Ok((value, &input[i + 1..]));
        }
        if i == max {
            return Err(ParseError::FieldTooLong { field, max });
        }
        if !(33..=126).contains(&b) {
            return Err(ParseError::InvalidHeaderByte { field, byte: b });
        }
    }
    Err(ParseError::UnexpectedEnd(next))
}

#[cfg(test)]
mod tests;
