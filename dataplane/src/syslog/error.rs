//! What can be wrong with one syslog message.

use std::fmt;

/// A part of the syslog header, named in errors the way RFC 5424 §6 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderField {
    Pri,
    Version,
    Timestamp,
    Hostname,
    AppName,
    ProcId,
    MsgId,
    StructuredData,
}

impl HeaderField {
    /// The RFC 5424 ABNF name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pri => "PRI",
            Self::Version => "VERSION",
            Self::Timestamp => "TIMESTAMP",
            Self::Hostname => "HOSTNAME",
            Self::AppName => "APP-NAME",
            Self::ProcId => "PROCID",
            Self::MsgId => "MSGID",
            Self::StructuredData => "STRUCTURED-DATA",
        }
    }
}

impl fmt::Display for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of name inside STRUCTURED-DATA an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdName {
    /// The SD-ID that opens an element (`relay@55555`).
    Id,
    /// A PARAM-NAME inside an element.
    Param,
}

impl fmt::Display for SdName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Id => "SD-ID",
            Self::Param => "PARAM-NAME",
        })
    }
}

/// Why a TIMESTAMP is not a usable RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("not of the form YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)")]
    Syntax,
    #[error("{0} fractional-second digits; at most 9 are accepted (RFC 5424 allows 6)")]
    TooManyFractionDigits(usize),
    #[error("the {0} is out of range")]
    OutOfRange(&'static str),
    #[error("the time is outside what nanoseconds since 1970 in an i64 can hold (1677–2262)")]
    NotRepresentable,
}

/// Why a syslog message was rejected (or, in lenient parsing, only partly understood).
///
/// Every variant carries only small copies of what was wrong, never the attacker's bytes,
/// so errors can be logged and counted without echoing hostile input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the message does not start with '<' (no PRI)")]
    MissingPri,
    #[error("PRI must be '<', 1 to 3 digits and '>'")]
    BadPri,
    #[error("PRI {0} is out of range (0–191)")]
    PriOutOfRange(u16),
    #[error("VERSION must be 1 to 3 digits starting with a nonzero digit")]
    BadVersion,
    #[error("VERSION {0} is not supported (only 1)")]
    UnsupportedVersion(u16),
    #[error("the message ends before {0}")]
    UnexpectedEnd(HeaderField),
    #[error("{field} contains byte 0x{byte:02x}; header fields are printable US-ASCII (33–126)")]
    InvalidHeaderByte { field: HeaderField, byte: u8 },
    #[error("{field} is longer than {max} bytes")]
    FieldTooLong { field: HeaderField, max: usize },
    #[error("TIMESTAMP is invalid: {0}")]
    InvalidTimestamp(#[from] TimestampError),
    #[error("STRUCTURED-DATA must be '-' or start with '[' (found byte 0x{0:02x})")]
    SdBadStart(u8),
    #[error("a STRUCTURED-DATA element is not closed before the message ends")]
    SdUnterminated,
    #[error("a {0} is empty")]
    SdEmptyName(SdName),
    #[error(
        "a {what} contains byte 0x{byte:02x}; names are printable US-ASCII without '=', ' ', ']' or '\"'"
    )]
    SdInvalidName { what: SdName, byte: u8 },
    #[error("a {0} is longer than 32 bytes")]
    SdNameTooLong(SdName),
    #[error("expected {expected} in STRUCTURED-DATA, found byte 0x{found:02x}")]
    SdUnexpected { expected: &'static str, found: u8 },
    #[error("more than {max} STRUCTURED-DATA elements")]
    SdTooManyElements { max: usize },
    #[error("more than {max} STRUCTURED-DATA parameters")]
    SdTooManyParams { max: usize },
    #[error("expected a space after STRUCTURED-DATA, found byte 0x{0:02x}")]
    NoSpaceBeforeMsg(u8),
}

impl ParseError {
    /// A short, stable `snake_case` label for metrics (`syslog_parse_errors{kind=...}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } => "too_large",
            Self::MissingPri => "missing_pri",
            Self::BadPri => "bad_pri",
            Self::PriOutOfRange(_) => "pri_out_of_range",
            Self::BadVersion => "bad_version",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::UnexpectedEnd(_) => "unexpected_end",
            Self::InvalidHeaderByte { .. } => "invalid_header_byte",
            Self::FieldTooLong { field, .. } => match field {
                HeaderField::Hostname => "hostname_too_long",
                HeaderField::AppName => "app_name_too_long",
                HeaderField::ProcId => "procid_too_long",
                HeaderField::MsgId => "msgid_too_long",
                _ => "field_too_long",
            },
            Self::InvalidTimestamp(_) => "invalid_timestamp",
            Self::SdBadStart(_) => "sd_bad_start",
            Self::SdUnterminated => "sd_unterminated",
            Self::SdEmptyName(_) => "sd_empty_name",
            Self::SdInvalidName { .. } => "sd_invalid_name",
            Self::SdNameTooLong(_) => "sd_name_too_long",
            Self::SdUnexpected { .. } => "sd_unexpected_byte",
            Self::SdTooManyElements { .. } => "sd_too_many_elements",
            Self::SdTooManyParams { .. } => "sd_too_many_params",
            Self::NoSpaceBeforeMsg(_) => "no_space_before_msg",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem() {
        let e = ParseError::FieldTooLong {
            field: HeaderField::AppName,
            max: 48,
        };
        assert_eq!(e.to_string(), "APP-NAME is longer than 48 bytes");
        assert_eq!(e.kind(), "app_name_too_long");
        let e = ParseError::from(TimestampError::OutOfRange("month"));
        assert_eq!(
            e.to_string(),
            "TIMESTAMP is invalid: the month is out of range"
        );
    }
}
