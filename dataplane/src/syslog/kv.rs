//! `key=value` tokens in free-text MSG, as the deckies' rsyslog-routed lines carry them
//! (`CMD uid=0 user=root src=1.2.3.4 pwd=/root cmd=ls`).

use std::borrow::Cow;

/// Longest key taken; longer "keys" are prose, and events cap field names at 64 bytes.
const MAX_KEY: usize = 64;

/// Iterates over the `key=value` tokens of `text`, in order.
///
/// A key is a letter or `_` followed by letters, digits, `_`, `.` or `-`. A value runs to the
/// next whitespace, or is a `"quoted string"` with `\"` and `\\` escapes. Tokens that are not
/// of this shape are skipped.
pub(crate) fn pairs(text: &str) -> Pairs<'_> {
    Pairs { rest: text }
}

#[derive(Debug)]
pub(crate) struct Pairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = self.rest.trim_start();
            if text.is_empty() {
                self.rest = text;
                return None;
            }
            let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
            let Some(key) = key_of(&text[..word_end]) else {
                self.rest = &text[word_end..];
                continue;
            };
            let after_eq = &text[key.len() + 1..];
            if let Some(quoted) = after_eq.strip_prefix('"')
                && let Some((value, used)) = quoted_value(quoted)
            {
                self.rest = &quoted[used..];
                return Some((key, value));
            }
            let value_end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
            self.rest = &after_eq[value_end..];
            return Some((key, Cow::Borrowed(&after_eq[..value_end])));
        }
    }
}

/// The key of a `key=...` word, if the word has that shape.
fn key_of(word: &str) -> Option<&str> {
    let (key, _) = word.split_once('=')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    let shaped = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    (shaped && key.len() <= MAX_KEY).then_some(key)
}

/// The value of a quoted string (opening quote already consumed) and the bytes it used,
/// closing quote included; `None` when it never closes.
fn quoted_value(text: &str) -> Option<(Cow<'_, str>, usize)> {
    let mut escaped = false;
    let mut iter = text.char_indices();
    while let Some((i, c)) = iter.next() {
        match c {
            '"' => {
                let raw = &text[..i];
                let value = if escaped {
                    Cow::Owned(unescape(raw))
                } else {
                    Cow::Borrowed(raw)
                };
                return Some((value, i + 1));
            }
            '\\' => {
                escaped = true;
                iter.next();
            }
            _ => {}
        }
    }
    None
}

/// `\"` and `\\` stand for the character; any other backslash is kept.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next @ ('"' | '\\')) = chars.peek()
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &str) -> Vec<(&str, String)> {
        pairs(text).map(|(k, v)| (k, v.into_owned())).collect()
    }

    #[test]
    fn bash_prompt_command_line() {
        assert_eq!(
            collect("CMD uid=0 user=root src=1.2.3.4 pwd=/root cmd=ls"),
            [
                ("uid", "0".into()),
                ("user", "root".into()),
                ("src", "1.2.3.4".into()),
                ("pwd", "/root".into()),
                ("cmd", "ls".into()),
            ]
        );
    }

    #[test]
    fn quoted_values_and_odd_tokens() {
        assert_eq!(
            collect(r#"a="b c" =x 9k=v k= d="say \"hi\" \\o/" e="open"#),
            [
                ("a", "b c".into()),
                ("k", String::new()),
                ("d", r#"say "hi" \o/"#.into()),
                ("e", "\"open".into()),
            ]
        );
        assert!(collect("Failed password for root from 1.2.3.4 port 22 ssh2").is_empty());
        assert!(collect("").is_empty());
        assert_eq!(
            collect("k=v=w  \t x.y-z=é"),
            [("k", "v=w".into()), ("x.y-z", "é".into())]
        );
        assert!(collect(&format!("{}=v", "k".repeat(65))).is_empty());
    }
}
