//! Message content as it arrives after DATA (dot-stuffed, up to a lone `.`) or BDAT (counted
//! chunks), kept up to the size limit and counted beyond it.

use crate::memory::{self, Held};

/// The message being received.
#[derive(Debug, Default)]
pub struct Message {
    pub bytes: Vec<u8>,
    /// Every content byte that arrived, kept or not.
    pub total: u64,
    limit: usize,
    /// What `bytes` holds of the process's memory pool; past what it grants, content is
    /// counted but not kept.
    held: Held,
    /// The pool refused: nothing more is kept (a later grant would leave a gap).
    refused: bool,
}

impl Message {
    pub fn new(limit: usize) -> Self {
        Self::in_pool(limit, memory::process_pool())
    }

    /// A message whose kept bytes draw on `pool`.
    pub fn in_pool(limit: usize, pool: &'static memory::MemoryPool) -> Self {
        Self {
            bytes: Vec::new(),
            total: 0,
            limit,
            held: pool.hold(),
            refused: false,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        if !self.refused {
            self.refused = !memory::append(&mut self.bytes, data, &mut self.held, self.limit);
        }
    }

    /// Content arrived that was not kept (past the limit or what memory allowed).
    pub fn truncated(&self) -> bool {
        (self.bytes.len() as u64) < self.total
    }

    /// More arrived than the limit allows.
    pub fn too_big(&self) -> bool {
        self.total > self.limit as u64
    }

    fn unpush_cr(&mut self) {
        if self.bytes.len() as u64 == self.total && self.bytes.last() == Some(&b'\r') {
            self.bytes.pop();
        }
        self.total = self.total.saturating_sub(1);
    }
}

/// DATA content: lines until one that is a lone `.`, with the leading dot of every other
/// dotted line removed (RFC 5321 4.5.2). Bare LF ends lines too, as Postfix allows.
#[derive(Debug)]
pub struct DotReader {
    pub message: Message,
    at_line_start: bool,
    dotted: bool,
    line_len: usize,
    last_cr: bool,
}

impl DotReader {
    pub fn new(limit: usize) -> Self {
        Self {
            message: Message::new(limit),
            at_line_start: true,
            dotted: false,
            line_len: 0,
            last_cr: false,
        }
    }

    /// Consume content from `data`; `Some(n)` once the terminating line ended at `n` bytes in
    /// (the rest belongs to the next command), `None` while more content is expected.
    pub fn feed(&mut self, data: &[u8]) -> Option<usize> {
        let mut run_start = 0;
        for (i, &b) in data.iter().enumerate() {
            if self.at_line_start && b == b'.' {
                self.message.push(&data[run_start..i]);
                run_start = i + 1;
                self.at_line_start = false;
                self.dotted = true;
                continue;
            }
            self.at_line_start = false;
            if b == b'\n' {
                let lone_dot =
                    self.dotted && (self.line_len == 0 || (self.line_len == 1 && self.last_cr));
                if lone_dot {
                    self.message.push(&data[run_start..i]);
                    if self.line_len == 1 {
                        self.message.unpush_cr();
                    }
                    return Some(i + 1);
                }
                self.at_line_start = true;
                self.dotted = false;
                self.line_len = 0;
                self.last_cr = false;
                continue;
            }
            self.line_len += 1;
            self.last_cr = b == b'\r';
        }
        self.message.push(&data[run_start..]);
        None
    }
}

/// The unfolded `Subject:` header, if the header section has one.
pub fn subject(message: &[u8]) -> Option<String> {
    let head_end = find(message, b"\r\n\r\n")
        .or_else(|| find(message, b"\n\n"))
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..head_end.min(64 * 1024)]);
    let mut lines = head.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.eq_ignore_ascii_case("subject") {
            continue;
        }
        let mut value = value.trim().to_owned();
        while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(next.trim());
        }
        return Some(value.chars().take(256).collect());
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_keeps_what_the_process_pool_grants() {
        let pool: &'static memory::MemoryPool = Box::leak(Box::new(memory::MemoryPool::new(100)));
        let mut m = Message::in_pool(1000, pool);
        m.push(&[b'a'; 70]);
        m.push(&[b'b'; 70]);
        // Nothing past the refusal, even once memory is back: the kept part has no gap.
        let other = Message::in_pool(1000, pool);
        drop(other);
        m.push(&[b'c'; 10]);
        assert_eq!((m.bytes.len(), m.total), (100, 150));
        assert!(m.truncated() && !m.too_big());
        drop(m);
        assert_eq!(pool.free(), 100);
    }

    fn read(chunks: &[&[u8]]) -> (Vec<u8>, Option<usize>) {
        let mut r = DotReader::new(1 << 20);
        let mut end = None;
        for c in chunks {
            end = r.feed(c);
        }
        (r.message.bytes, end)
    }

    #[test]
    fn unstuffs_and_stops_at_the_lone_dot() {
        let (msg, end) = read(&[b"Subject: hi\r\n\r\n..leading\r\n.x\r\nbody\r\n.\r\nQUIT\r\n"]);
        assert_eq!(msg, b"Subject: hi\r\n\r\n.leading\r\nx\r\nbody\r\n");
        assert_eq!(end, Some(39));
        let input = b"a\r\n..\r\n.\r\n";
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let (msg, end) = read(&bytes);
        assert_eq!((msg.as_slice(), end), (&b"a\r\n.\r\n"[..], Some(1)));
        let (msg, end) = read(&[b"bare\n.\n"]);
        assert_eq!((msg.as_slice(), end), (&b"bare\n"[..], Some(7)));
        let (_, end) = read(&[b"no end .\r\n.. \r\n"]);
        assert_eq!(end, None);
    }

    #[test]
    fn counts_past_the_limit() {
        let mut r = DotReader::new(4);
        assert_eq!(r.feed(b"abcdefgh\r\n.\r\n"), Some(13));
        assert_eq!(r.message.bytes, b"abcd");
        assert_eq!(r.message.total, 10);
        assert!(r.message.too_big());
    }

    #[test]
    fn subjects() {
        assert_eq!(
            subject(b"From: a\r\nSubject: Invoice\r\n  #4411\r\n\r\nSubject: body").as_deref(),
            Some("Invoice #4411")
        );
        assert_eq!(subject(b"From: a\r\n\r\nx"), None);
    }
}
