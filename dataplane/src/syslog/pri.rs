//! `<PRI>`, shared by both grammars.

use super::error::ParseError;

/// Reads `<PRI>` from the start of `input`, returning the value and the bytes after `>`.
pub(crate) fn parse_pri(input: &[u8]) -> Result<(u8, &[u8]), ParseError> {
    let Some(rest) = input.strip_prefix(b"<") else {
        return Err(ParseError::MissingPri);
    };
    let digits = rest
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || rest.get(digits) != Some(&b'>') {
        return Err(ParseError::BadPri);
    }
    let value = rest[..digits]
        .iter()
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    let pri = u8::try_from(value)
        .ok()
        .filter(|&v| v <= 191)
        .ok_or(ParseError::PriOutOfRange(value))?;
    Ok((pri, &rest[digits + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_whole_range() {
        assert_eq!(parse_pri(b"<0>x"), Ok((0, &b"x"[..])));
        assert_eq!(parse_pri(b"<191>"), Ok((191, &b""[..])));
        assert_eq!(parse_pri(b"<034>1"), Ok((34, &b"1"[..])));
    }

    #[test]
    fn rejects_malformed_pri() {
        assert_eq!(parse_pri(b""), Err(ParseError::MissingPri));
        assert_eq!(parse_pri(b"34>"), Err(ParseError::MissingPri));
        assert_eq!(parse_pri(b"<>"), Err(ParseError::BadPri));
        assert_eq!(parse_pri(b"<1234>"), Err(ParseError::BadPri));
        assert_eq!(parse_pri(b"<12"), Err(ParseError::BadPri));
        assert_eq!(parse_pri(b"<1a>"), Err(ParseError::BadPri));
        assert_eq!(parse_pri(b"<192>"), Err(ParseError::PriOutOfRange(192)));
        assert_eq!(parse_pri(b"<999>"), Err(ParseError::PriOutOfRange(999)));
    }
}
