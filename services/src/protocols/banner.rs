//! Greeting lines from operator-supplied banners.

/// `text` as a reply line with `code` (`220`), unless it already starts with a reply code;
/// CR and LF are dropped so a banner can never smuggle extra reply lines.
pub fn greeting_line(text: &str, code: &str) -> String {
    let clean: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let b = clean.as_bytes();
    let coded =
        b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && matches!(b[3], b' ' | b'-');
    if coded {
        format!("{clean}\r\n")
    } else {
        format!("{code} {clean}\r\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_code_only_when_missing() {
        assert_eq!(
            greeting_line("(vsFTPd 3.0.3)", "220"),
            "220 (vsFTPd 3.0.3)\r\n"
        );
        assert_eq!(greeting_line("220 mx ESMTP", "220"), "220 mx ESMTP\r\n");
        assert_eq!(greeting_line("a\r\n250 x", "220"), "220 a250 x\r\n");
    }
}
