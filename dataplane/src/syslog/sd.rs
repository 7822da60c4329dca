//! STRUCTURED-DATA (RFC 5424 §6.3): `-` or `[SD-ID name="value" ...]...`.

use std::borrow::Cow;

use super::error::{HeaderField, ParseError, SdName};
use super::message::{Limits, SdElement, SdParam};

/// SD-ID and PARAM-NAME are at most 32 characters (RFC 5424 §6.3.2, §6.3.3).
pub(crate) const MAX_SD_NAME: usize = 32;

/// The parsed elements and the bytes after them.
pub(crate) struct Parsed<'a> {
    pub elements: Vec<SdElement<'a>>,
    pub rest: &'a [u8],
    pub invalid_utf8: bool,
}

/// Parses STRUCTURED-DATA at the start of `input`.
pub(crate) fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, ParseError> {
    let mut parsed = Parsed {
        elements: Vec::new(),
        rest: input,
        invalid_utf8: false,
    };
    match input.first() {
        None => return Err(ParseError::UnexpectedEnd(HeaderField::StructuredData)),
        Some(b'-') => {
            parsed.rest = &input[1..];
            return Ok(parsed);
        }
        Some(b'[') => {}
        Some(&other) => return Err(ParseError::SdBadStart(other)),
    }
    let mut params = 0usize;
    while let Some(after_bracket) = parsed.rest.strip_prefix(b"[") {
        if parsed.elements.len() == limits.max_sd_elements {
            return Err(ParseError::SdTooManyElements {
                max: limits.max_sd_elements,
            });
        }
        let (id, mut rest) = name(after_bracket, SdName::Id)?;
        let mut element = SdElement {
            id,
            params: Vec::new(),
        };
        loop {
            match rest.first() {
                None => return Err(ParseError::SdUnterminated),
                Some(b']') => {
                    rest = &rest[1..];
                    break;
                }
                // RFC 5424 wants exactly one SP before each parameter; extra spaces carry no
                // meaning, so they are tolerated rather than costing the event.
                Some(b' ') => {
                    rest = skip_spaces(rest);
                    if rest.first() == Some(&b']') {
                        continue;
                    }
                }
                Some(&found) => {
                    return Err(ParseError::SdUnexpected {
                        expected: "' ' or ']' after an SD-ID or parameter",
                        found,
                    });
                }
            }
            if params == limits.max_sd_params {
                return Err(ParseError::SdTooManyParams {
                    max: limits.max_sd_params,
                });
            }
            let (param, after) = param(rest, &mut parsed.invalid_utf8)?;
            element.params.push(param);
            params += 1;
            rest = after;
        }
        parsed.elements.push(element);
        parsed.rest = rest;
    }
    Ok(parsed)
}

fn skip_spaces(input: &[u8]) -> &[u8] {
    let n = input.iter().take_while(|&&b| b == b' ').count();
    &input[n..]
}

/// Reads an SD-NAME ending at ' ', '=' or ']' (the terminator is left in place).
fn name(input: &[u8], what: SdName) -> Result<(&str, &[u8]), ParseError> {
    let mut len = 0;
    loop {
        match input.get(len) {
            None => return Err(ParseError::SdUnterminated),
            Some(b' ' | b'=' | b']') => break,
            Some(&b) if (33..=126).contains(&b) && b != b'"' => {
                len += 1;
                if len > MAX_SD_NAME {
                    return Err(ParseError::SdNameTooLong(what));
                }
            }
            Some(&byte) => return Err(ParseError::SdInvalidName { what, byte }),
        }
    }
    if len == 0 {
        return Err(ParseError::SdEmptyName(what));
    }
    // Only printable ASCII was accepted above, so this cannot fail.
    let text = std::str::from_utf8(&input[..len]).map_err(|_| ParseError::SdEmptyName(what))?;
    Ok((text, &input[len..]))
}

/// Reads `name="value"`.
fn param<'a>(
    input: &'a [u8],
    invalid_utf8: &mut bool,
) -> Result<(SdParam<'a>, &'a [u8]), ParseError> {
    let (name, rest) = name(input, SdName::Param)?;
    let rest = expect(rest, b'=', "'=' after a PARAM-NAME")?;
    let rest = expect(rest, b'"', "'\"' opening a PARAM-VALUE")?;
    let (raw, escaped, rest) = quoted(rest)?;
    let value = if escaped {
        lossy_owned(unescape(raw), invalid_utf8)
    } else {
        lossy(raw, invalid_utf8)
    };
    Ok((SdParam { name, value }, rest))
}

fn expect<'a>(input: &'a [u8], want: u8, expected: &'static str) -> Result<&'a [u8], ParseError> {
    match input.first() {
        None => Err(ParseError::SdUnterminated),
        Some(&b) if b == want => Ok(&input[1..]),
        Some(&found) => Err(ParseError::SdUnexpected { expected, found }),
    }
}

/// Finds the closing quote of a PARAM-VALUE: returns the still-escaped value, whether it holds
/// any backslash, and the bytes after the quote.
fn quoted(input: &[u8]) -> Result<(&[u8], bool, &[u8]), ParseError> {
    let mut i = 0;
    let mut escaped = false;
    while let Some(&b) = input.get(i) {
        match b {
            b'"' => return Ok((&input[..i], escaped, &input[i + 1..])),
            b'\\' => {
                escaped = true;
                // Whatever follows a backslash cannot close the value.
                i += 2;
            }
            _ => i += 1,
        }
    }
    Err(ParseError::SdUnterminated)
}

/// RFC 5424 §6.3.3: `\"`, `\\` and `\]` stand for the character; a backslash before anything
/// else is an ordinary backslash.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if b == b'\\'
            && let Some(&next @ (b'"' | b'\\' | b']')) = bytes.peek()
        {
            out.push(next);
            bytes.next();
            continue;
        }
        out.push(b);
    }
    out
}

fn lossy<'a>(raw: &'a [u8], invalid_utf8: &mut bool) -> Cow<'a, str> {
    let text = String::from_utf8_lossy(raw);
    *invalid_utf8 |= matches!(text, Cow::Owned(_));
    text
}

fn lossy_owned(raw: Vec<u8>, invalid_utf8: &mut bool) -> Cow<'static, str> {
    Cow::Owned(String::from_utf8(raw).unwrap_or_else(|e| {
        *invalid_utf8 = true;
        String::from_utf8_lossy(e.as_bytes()).into_owned()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &[u8]) -> Parsed<'_> {
        parse(input, &Limits::default()).unwrap()
    }

    fn err(input: &[u8]) -> ParseError {
        parse(input, &Limits::default()).err().unwrap()
    }

    #[test]
    fn nil_and_elements() {
        let p = ok(b"- msg");
        assert!(p.elements.is_empty());
        assert_eq!(p.rest, b" msg");

        let p = ok(br#"[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#);
        assert_eq!(p.elements.len(), 2);
        assert_eq!(p.elements[0].id, "exampleSDID@32473");
        assert_eq!(p.elements[0].params[1].name, "eventSource");
        assert_eq!(p.elements[0].params[1].value, "Application");
        assert_eq!(p.elements[1].params[0].value, "high");
        assert_eq!(p.rest, b"");

        let p = ok(b"[id] x");
        assert!(p.elements[0].params.is_empty());
        assert_eq!(p.rest, b" x");
    }

    #[test]
    fn values_are_unescaped() {
        let p =
            ok(br#"[relay@55555 a="say \"hi\"" b="c:\\dir\\" c="[x\]" d="a\nb" e="]" f="\\\\"]"#);
        let values: Vec<_> = p.elements[0]
            .params
            .iter()
            .map(|p| p.value.as_ref())
            .collect();
        assert_eq!(
            values,
            [r#"say "hi""#, r"c:\dir\", "[x]", r"a\nb", "]", r"\\"]
        );
        assert!(matches!(p.elements[0].params[4].value, Cow::Borrowed(_)));
        assert!(!p.invalid_utf8);
    }

    #[test]
    fn invalid_utf8_values_are_lossy_and_flagged() {
        let p = ok(b"[id a=\"\xff\xfe\" b=\"\\\"\xc3\"]");
        assert_eq!(p.elements[0].params[0].value, "\u{fffd}\u{fffd}");
        assert_eq!(p.elements[0].params[1].value, "\"\u{fffd}");
        assert!(p.invalid_utf8);
    }

    #[test]
    fn hostile_structured_data() {
        assert_eq!(
            err(b""),
            ParseError::UnexpectedEnd(HeaderField::StructuredData)
        );
        assert_eq!(err(b"x"), ParseError::SdBadStart(b'x'));
        assert_eq!(err(b"["), ParseError::SdUnterminated);
        assert_eq!(err(b"[id"), ParseError::SdUnterminated);
        assert_eq!(err(b"[id a=\"unterminated"), ParseError::SdUnterminated);
        assert_eq!(
            err(b"[id a=\"ends in backslash\\"),
            ParseError::SdUnterminated
        );
        assert_eq!(err(b"[id a=\"v\""), ParseError::SdUnterminated);
        assert_eq!(err(b"[]"), ParseError::SdEmptyName(SdName::Id));
        assert_eq!(err(b"[id =\"v\"]"), ParseError::SdEmptyName(SdName::Param));
        assert_eq!(
            err(b"[id a]"),
            ParseError::SdUnexpected {
                expected: "'=' after a PARAM-NAME",
                found: b']'
            }
        );
        assert_eq!(
            err(b"[id a=v]"),
            ParseError::SdUnexpected {
                expected: "'\"' opening a PARAM-VALUE",
                found: b'v'
            }
        );
        assert_eq!(
            err(b"[id a=\"v\"b=\"w\"]"),
            ParseError::SdUnexpected {
                expected: "' ' or ']' after an SD-ID or parameter",
                found: b'b'
            }
        );
        assert_eq!(
            err(b"[i\"d]"),
            ParseError::SdInvalidName {
                what: SdName::Id,
                byte: b'"'
            }
        );
        assert_eq!(
            err(b"[id a\xff=\"\"]"),
            ParseError::SdInvalidName {
                what: SdName::Param,
                byte: 0xff
            }
        );
        let long = format!("[{}]", "x".repeat(33));
        assert_eq!(err(long.as_bytes()), ParseError::SdNameTooLong(SdName::Id));
        let ok_len = format!("[{}]", "x".repeat(32));
        assert_eq!(ok(ok_len.as_bytes()).elements[0].id.len(), 32);
    }

    #[test]
    fn counts_are_capped() {
        let limits = Limits {
            max_sd_elements: 2,
            max_sd_params: 3,
            ..Limits::default()
        };
        assert!(parse(b"[a][b]", &limits).is_ok());
        assert_eq!(
            parse(b"[a][b][c]", &limits).err(),
            Some(ParseError::SdTooManyElements { max: 2 })
        );
        assert!(parse(br#"[a x="" y=""][b z=""]"#, &limits).is_ok());
        assert_eq!(
            parse(br#"[a x="" y=""][b z="" w=""]"#, &limits).err(),
            Some(ParseError::SdTooManyParams { max: 3 })
        );
    }

    #[test]
    fn extra_spaces_are_tolerated() {
        let p = ok(br#"[id  a="1"   b="2" ]"#);
        assert_eq!(p.elements[0].params.len(), 2);
    }
}
