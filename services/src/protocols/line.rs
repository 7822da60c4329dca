//! Bounded line framing for text protocols (FTP, SMTP, POP3, IMAP): bytes in, complete lines
//! out, with an overlong line reported instead of buffered without bound.

/// A line-splitting buffer.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max_line: usize,
    /// Discarding the rest of an overlong line until its end arrives.
    skipping: bool,
}

/// One framing result.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its `\r\n` / `\n`.
    Complete(Vec<u8>),
    /// A line exceeded the limit; its bytes were dropped (the first `max_line` are kept).
    TooLong(Vec<u8>),
}

impl LineBuffer {
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line,
            skipping: false,
        }
    }

    /// Feed bytes; returns every line they complete, in order.
    pub fn push(&mut self, data: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        for &b in data {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                lines.push(Line::Complete(line));
                continue;
            }
            if self.skipping {
                continue;
            }
            if self.buf.len() >= self.max_line {
                lines.push(Line::TooLong(std::mem::take(&mut self.buf)));
                self.skipping = true;
                continue;
            }
            self.buf.push(b);
        }
        lines
    }

    /// Bytes buffered toward the next line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Split a command line into its upper-cased verb and the (untrimmed-left) rest.
pub fn verb_and_args(line: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_start();
    match text.split_once(' ') {
        Some((verb, rest)) if !rest.trim().is_empty() => {
            (verb.to_ascii_uppercase(), rest.to_owned())
        }
        Some((verb, _)) => (verb.to_ascii_uppercase(), String::new()),
        None => (text.trim_end().to_ascii_uppercase(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_crlf_and_lf_across_chunks() {
        let mut lb = LineBuffer::new(64);
        assert_eq!(lb.push(b"USER ro"), vec![]);
        assert_eq!(
            lb.push(b"ot\r\nPASS x\nQU"),
            vec![
                Line::Complete(b"USER root".to_vec()),
                Line::Complete(b"PASS x".to_vec())
            ]
        );
        assert_eq!(lb.pending(), 2);
    }

    #[test]
    fn overlong_lines_are_reported_once_and_skipped() {
        let mut lb = LineBuffer::new(4);
        let out = lb.push(b"abcdefgh\r\nok\r\n");
        assert_eq!(
            out,
            vec![
                Line::TooLong(b"abcd".to_vec()),
                Line::Complete(b"ok".to_vec())
            ]
        );
    }

    #[test]
    fn verbs() {
        assert_eq!(
            verb_and_args(b"user Admin"),
            ("USER".into(), "Admin".into())
        );
        assert_eq!(verb_and_args(b"QUIT  "), ("QUIT".into(), String::new()));
    }

    proptest! {
        #[test]
        fn bounded_and_total(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut lb = LineBuffer::new(128);
            for c in &chunks {
                for line in lb.push(c) {
                    let (Line::Complete(l) | Line::TooLong(l)) = line;
                    prop_assert!(l.len() <= 129);
                }
                prop_assert!(lb.pending() <= 128);
            }
        }
    }
}
