//! A line-tracking INI reader with the syntax of Python's `configparser` (what the original
//! used): `[section]` headers, `key = value` or `key: value`, `#`/`;` comment lines, indented
//! continuation lines, case-insensitive keys. Every section and entry keeps its line number so
//! errors can point at it.

use crate::error::{ErrorKind, FleetError, Location};

/// Largest configuration accepted, in bytes (the original's API limit).
pub const MAX_INI_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lower-cased key.
    pub key: String,
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Parse INI bytes. CRLF and a UTF-8 BOM are accepted.
pub fn parse(bytes: &[u8]) -> Result<Vec<Section>, FleetError> {
    if bytes.len() > MAX_INI_BYTES {
        return Err(FleetError::new(
            Location::none(),
            ErrorKind::TooLarge {
                size: bytes.len(),
                limit: MAX_INI_BYTES,
            },
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| FleetError::new(Location::none(), ErrorKind::NotUtf8(e.valid_up_to())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut sections: Vec<Section> = Vec::new();
    // Whether the previous line was a key line that an indented line may continue.
    let mut can_continue = false;
    for (index, raw_line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            can_continue = false;
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if indented
            && can_continue
            && let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut())
        {
            entry.value.push('\n');
            entry.value.push_str(trimmed);
            continue;
        }
        if trimmed.starts_with('[') {
            can_continue = false;
            // configparser ignores what follows the closing bracket; a comment there is common.
            let header = match trimmed.find(']') {
                Some(end)
                    if matches!(
                        trimmed[end + 1..].trim_start().chars().next(),
                        None | Some(';' | '#')
                    ) =>
                {
                    &trimmed[..=end]
                }
                _ => trimmed,
            };
            let name = header
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .map(str::trim)
                .filter(|n| !n.is_empty() && !n.contains(['[', ']']))
                .ok_or_else(|| {
                    FleetError::new(
                        Location::line(line_no),
                        ErrorKind::BadHeader(trimmed.into()),
                    )
                })?;
            if name == "DEFAULT" {
                return Err(FleetError::new(
                    Location::line(line_no),
                    ErrorKind::DefaultSection,
                ));
            }
            if let Some(first) = sections.iter().find(|s| s.name == name) {
                return Err(FleetError::new(
                    Location::at(Some(line_no), name, None),
                    ErrorKind::DuplicateSection(first.line),
                ));
            }
            sections.push(Section {
                name: name.to_owned(),
                line: line_no,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            return Err(FleetError::new(
                Location::line(line_no),
                ErrorKind::NotKeyValue(trimmed.chars().take(80).collect()),
            ));
        };
        let key = trimmed[..split].trim().to_ascii_lowercase();
        let value = trimmed[split + 1..].trim().to_owned();
        if key.is_empty() {
            return Err(FleetError::new(
                Location::line(line_no),
                ErrorKind::NotKeyValue(trimmed.chars().take(80).collect()),
            ));
        }
        let Some(section) = sections.last_mut() else {
            return Err(FleetError::new(
                Location::line(line_no),
                ErrorKind::KeyOutsideSection(key),
            ));
        };
        if let Some(first) = section.get(&key) {
            return Err(FleetError::new(
                Location::at(Some(line_no), &section.name, Some(&key)),
                ErrorKind::DuplicateKey(first.line),
            ));
        }
        section.entries.push(Entry {
            key,
            value,
            line: line_no,
        });
        can_continue = true;
    }
    if sections.is_empty() {
        return Err(FleetError::new(Location::none(), ErrorKind::Empty));
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_sections_keys_and_lines() {
        let ini = b"\xef\xbb\xbf# top\r\n[general]\r\nnet = 10.0.0.0/24\r\n\r\n[web]\nServices: http, ssh\n  , ftp\n; c\n";
        let s = parse(ini).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "general");
        assert_eq!(s[0].line, 2);
        assert_eq!(s[0].get("net").unwrap().value, "10.0.0.0/24");
        assert_eq!(s[0].get("net").unwrap().line, 3);
        let svc = s[1].get("services").unwrap();
        assert_eq!(svc.value, "http, ssh\n, ftp");
        assert_eq!(svc.line, 6);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(b"[a]\nx = 1\nx = 2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: [a] x: key set twice in this section (first at line 2)"
        );
        let e = parse(b"x = 1\n").unwrap_err();
        assert_eq!(e.line(), Some(1));
        let e = parse(b"[a]\njunk\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: expected `key = value`"));
        let e = parse(b"[a]\n[a]\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        let s = parse(b"[web]   ; a host\nk = v\n").unwrap();
        assert_eq!(s[0].name, "web");
        assert!(matches!(
            parse(b"[web] junk\n").unwrap_err().kind(),
            ErrorKind::BadHeader(_)
        ));
        let e = parse(b"[a\n").unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::BadHeader(_)));
        assert!(matches!(
            parse(b"\n# only\n").unwrap_err().kind(),
            ErrorKind::Empty
        ));
        assert!(matches!(
            parse(&[b'['; MAX_INI_BYTES + 1]).unwrap_err().kind(),
            ErrorKind::TooLarge { .. }
        ));
        assert!(matches!(
            parse(b"[a]\nk = \xff\n").unwrap_err().kind(),
            ErrorKind::NotUtf8(_)
        ));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_ini_like_text(text in "([\\[\\]=:;# \\t\\r\\na-z0-9.]{0,40}\n){0,30}") {
            let _ = parse(text.as_bytes());
        }
    }
}
