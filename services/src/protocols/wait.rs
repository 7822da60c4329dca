//! What a parser that re-reads its buffer from the start waits for before trying again.
//!
//! HTTP and Redis parse a request from its first byte each time: cheap once, but a request fed
//! a byte at a time was re-read — its headers, its arguments, its chunked body — once per
//! byte. Each incomplete parse says what it lacks, and the session parses again only when that
//! arrives.

/// What an incomplete request waits for, in positions of the session's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A line end, or the buffer growing past this length (then the line is too long).
    Line { limit: usize },
    /// The buffer holding this many bytes.
    Len(usize),
}

impl Wait {
    /// Whether `data`, just appended to make the buffer `len` bytes long, meets the wait.
    pub fn met(self, data: &[u8], len: usize) -> bool {
        match self {
            Self::Line { limit } => len > limit || data.contains(&b'\n'),
            Self::Len(n) => len >= n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_met_by_a_line_end_or_enough_bytes() {
        let line = Wait::Line { limit: 10 };
        assert!(!line.met(b"abc", 5));
        assert!(line.met(b"a\nb", 5));
        assert!(
            line.met(b"abc", 11),
            "past the limit: parse, to refuse the line"
        );
        assert!(!Wait::Len(8).met(b"x", 7));
        assert!(Wait::Len(8).met(b"", 8));
    }
}
