//! RFC 6587 syslog-over-TCP framing as a sans-IO decoder; RFC 5425 (TLS) frames the same way.
//!
//! A connection uses one of two framings, told apart by its first byte (RFC 6587 §3.4):
//! a digit starts octet-counting (`MSG-LEN SP SYSLOG-MSG`), anything else is non-transparent
//! framing, one message per LF-terminated line. The decoder buffers at most one incomplete
//! frame: lengths are checked before any body is buffered, and a line that outgrows the limit
//! is reported and skipped up to its LF, the only resynchronisation the framings allow.
//! Octet-counting errors are fatal: once a count is wrong no later byte can be trusted to
//! start a frame, so the connection should be closed.

use std::io::Write as _;

/// How a connection frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// `MSG-LEN SP SYSLOG-MSG` (RFC 6587 §3.4.1, RFC 5425 §4.3).
    OctetCounting,
    /// `SYSLOG-MSG LF`, a trailing CR tolerated (RFC 6587 §3.4.2).
    NonTransparent,
}

/// Why a byte stream could not be split into frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("octet count is zero")]
    ZeroLength,
    #[error("octet count has a leading zero")]
    LeadingZero,
    #[error("octet count contains byte 0x{0:02x}; expected digits and one space")]
    BadCount(u8),
    #[error("octet count has more digits than a frame of at most {max} bytes needs")]
    CountTooLong { max: usize },
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("line longer than {max} bytes without LF; skipped to the next LF")]
    LineTooLong { max: usize },
    #[error("connection closed with {buffered} bytes of an incomplete frame")]
    Truncated { buffered: usize },
    #[error("more than {limit} bytes buffered; frames must be drained after every push")]
    Overflow { limit: usize },
}

impl FrameError {
    /// A short, stable `snake_case` label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ZeroLength => "zero_length",
            Self::LeadingZero => "leading_zero",
            Self::BadCount(_) => "bad_count",
            Self::CountTooLong { .. } => "count_too_long",
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::LineTooLong { .. } => "line_too_long",
            Self::Truncated { .. } => "truncated",
            Self::Overflow { .. } => "overflow",
        }
    }

    /// Whether the stream is unusable after this error (close the connection); otherwise
    /// decoding has resynchronised and the next frame can be read.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::LineTooLong { .. })
    }
}

/// Splits a TCP (or TLS) byte stream into syslog frames without doing any I/O.
///
/// ```
/// use decnet_dataplane::syslog::framing::FrameDecoder;
///
/// let mut decoder = FrameDecoder::new(64 * 1024);
/// let mut frames = Vec::new();
/// for chunk in [&b"17 <13>1 - - -"[..], b" - - -8 <13>1 -"] {
///     decoder.push(chunk);
///     while let Some(frame) = decoder.next_frame()? {
///         frames.push(frame.to_vec());
///     }
/// }
/// assert_eq!(frames, [b"<13>1 - - - - - -".to_vec()]);
/// # Ok::<(), decnet_dataplane::syslog::framing::FrameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_len: usize,
    /// Decimal digits in `max_frame_len`: a longer count is too large however it goes on.
    max_count_digits: usize,
    framing: Option<Framing>,
    buf: Vec<u8>,
    /// Start of the bytes not yet handed out.
    pos: usize,
    /// Unconsumed bytes already searched for LF without finding one.
    scanned: usize,
    /// Dropping the rest of an oversized line until its LF.
    discarding: bool,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder for one connection, accepting frames of at most `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            max_frame_len,
            max_count_digits: max_frame_len.checked_ilog10().map_or(1, |d| d as usize + 1),
            framing: None,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            discarding: false,
            failed: None,
        }
    }

    /// The framing detected so far (`None` before the first meaningful byte).
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Bytes held for a frame that is not complete yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Most bytes that may sit in the buffer between drains: one frame and its count.
    fn buffer_limit(&self) -> usize {
        self.max_frame_len.saturating_add(self.max_count_digits + 2)
    }

    /// Adds bytes received from the connection. Call [`Self::next_frame`] until it returns
    /// `Ok(None)` after every push; buffering is then bounded by one frame plus one chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let mut chunk = chunk;
        if self.discarding {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(lf) => {
                    self.discarding = false;
                    chunk = &chunk[lf + 1..];
                }
                None => return,
            }
        }
        if self.buffered() > self.buffer_limit() {
            let limit = self.buffer_limit();
            self.fail(FrameError::Overflow { limit });
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        Ok(self.next_range()?.map(|(start, end)| &self.buf[start..end]))
    }

    /// Ends the stream; call it until it returns `Ok(None)` once the connection has closed.
    /// It hands out any frames still complete, then a last unterminated line (non-transparent
    /// framing, as rsyslog does at close), or an error when a counted frame was cut short.
    pub fn finish(&mut self) -> Result<Option<&[u8]>, FrameError> {
        if let Some((start, end)) = self.next_range()? {
            return Ok(Some(&self.buf[start..end]));
        }
        if self.discarding || self.buffered() == 0 {
            // An oversized tail was reported when it outgrew the limit.
            self.discarding = false;
            return Ok(None);
        }
        if self.framing != Some(Framing::NonTransparent) {
            return Err(self.fail(FrameError::Truncated {
                buffered: self.buffered(),
            }));
        }
        let start = self.pos;
        let mut end = self.buf.len();
        self.pos = end;
        self.scanned = 0;
        if self.buf[start..end].ends_with(b"\r") {
            end -= 1;
        }
        if end - start > self.max_frame_len {
            return Err(FrameError::LineTooLong {
                max: self.max_frame_len,
            });
        }
        Ok(Some(&self.buf[start..end]))
    }

    /// Records a fatal error, frees the buffer and returns the error for the caller.
    fn fail(&mut self, e: FrameError) -> FrameError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.pos = 0;
        self.scanned = 0;
        e
    }

    fn next_range(&mut self) -> Result<Option<(usize, usize)>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.skip_separators();
        let framing = match self.framing {
            Some(f) => f,
            None => match self.buf.get(self.pos) {
                None => return Ok(None),
                Some(b) if b.is_ascii_digit() => *self.framing.insert(Framing::OctetCounting),
                Some(_) => *self.framing.insert(Framing::NonTransparent),
            },
        };
        match framing {
            Framing::OctetCounting => self.next_counted(),
            Framing::NonTransparent => self.next_line(),
        }
    }

    /// Empty lines carry nothing, and some octet-counting senders end frames with LF anyway.
    fn skip_separators(&mut self) {
        let n = self.buf[self.pos..]
            .iter()
            .take_while(|&&b| matches!(b, b'\n' | b'\r'))
            .count();
        if n > 0 {
            self.pos += n;
            self.scanned = 0;
        }
    }

    fn next_counted(&mut self) -> Result<Option<(usize, usize)>, FrameError> {
        let data = &self.buf[self.pos..];
        let Some(&first) = data.first() else {
            return Ok(None);
        };
        let digits = data
            .iter()
            .take(self.max_count_digits + 1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let max = self.max_frame_len;
        let error = match (first, digits, data.get(digits)) {
            (_, 0, _) => FrameError::BadCount(first),
            (b'0', 1, Some(b' ')) => FrameError::ZeroLength,
            (b'0', 1, Some(&b)) => FrameError::BadCount(b),
            (b'0', 1, None) => return Ok(None),
            (b'0', _, _) => FrameError::LeadingZero,
            (_, d, _) if d > self.max_count_digits => FrameError::CountTooLong { max },
            (_, _, None) => return Ok(None),
            (_, _, Some(&b)) if b != b' ' => FrameError::BadCount(b),
            (_, _, Some(_)) => {
                let len = data[..digits].iter().try_fold(0usize, |acc, b| {
                    acc.checked_mul(10)?.checked_add(usize::from(b - b'0'))
                });
                match len {
                    Some(len) if len <= max => {
                        let start = self.pos + digits + 1;
                        let end = start + len;
                        if end > self.buf.len() {
                            return Ok(None);
                        }
                        self.pos = end;
                        return Ok(Some((start, end)));
                    }
                    Some(len) => FrameError::FrameTooLarge { len, max },
                    None => FrameError::CountTooLong { max },
                }
            }
        };
        Err(self.fail(error))
    }

    fn next_line(&mut self) -> Result<Option<(usize, usize)>, FrameError> {
        let start = self.pos;
        let searched = start + self.scanned;
        let max = self.max_frame_len;
        if let Some(offset) = self.buf[searched..].iter().position(|&b| b == b'\n') {
            let lf = searched + offset;
            self.pos = lf + 1;
            self.scanned = 0;
            let end = if lf > start && self.buf[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            if end - start > max {
                return Err(FrameError::LineTooLong { max });
            }
            return Ok(Some((start, end)));
        }
        self.scanned = self.buf.len() - start;
        // One byte of slack for the CR of a CRLF trailer.
        if self.scanned > max.saturating_add(1) {
            self.pos = self.buf.len();
            self.scanned = 0;
            self.discarding = true;
            return Err(FrameError::LineTooLong { max });
        }
        Ok(None)
    }
}

/// Appends `msg` as one octet-counted frame (`MSG-LEN SP MSG`), the framing to send with.
pub fn encode_octet_counted(msg: &[u8], out: &mut Vec<u8>) {
    let _ = write!(out, "{} ", msg.len());
    out.extend_from_slice(msg);
}

#[cfg(test)]
mod tests;
