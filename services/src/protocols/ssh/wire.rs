//! SSH wire encodings (RFC 4251 §5): the readers and writers every layer shares. Reading
//! never panics: a short or malformed buffer is `None`.

/// Reads SSH data types from a payload, front to back.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    pub fn bool(&mut self) -> Option<bool> {
        self.u8().map(|b| b != 0)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    }

    /// A `string`: u32 length then that many bytes.
    pub fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.bytes(len)
    }

    /// A `string` that must be UTF-8 (names, usernames are shown lossily by callers instead).
    pub fn utf8(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.string()?).ok()
    }

    /// A `name-list`: comma-separated ASCII names.
    pub fn name_list(&mut self) -> Option<Vec<&'a str>> {
        let raw = std::str::from_utf8(self.string()?).ok()?;
        if raw.is_empty() {
            return Some(Vec::new());
        }
        Some(raw.split(',').collect())
    }

    /// An `mpint`, returned as its two's-complement big-endian bytes (possibly empty).
    pub fn mpint(&mut self) -> Option<&'a [u8]> {
        self.string()
    }
}

/// Builds SSH data types into a payload.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A payload starting with message number `msg`.
    pub fn message(msg: u8) -> Self {
        Self { buf: vec![msg] }
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// A `string`. Lengths above u32 cannot occur: every buffer we build is bounded far below.
    pub fn string(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.raw(v)
    }

    pub fn name_list(&mut self, names: &[&str]) -> &mut Self {
        self.string(names.join(",").as_bytes())
    }

    /// An `mpint` from unsigned big-endian magnitude bytes: leading zeros stripped, a zero
    /// byte prepended when the top bit is set.
    pub fn mpint(&mut self, magnitude: &[u8]) -> &mut Self {
        let first = magnitude.iter().position(|&b| b != 0);
        let Some(first) = first else {
            return self.u32(0);
        };
        let digits = &magnitude[first..];
        if digits[0] & 0x80 != 0 {
            let len = u32::try_from(digits.len() + 1).unwrap_or(u32::MAX);
            self.u32(len).u8(0).raw(digits)
        } else {
            self.string(digits)
        }
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpint_follows_rfc4251_examples() {
        let mut w = Writer::new();
        w.mpint(&[]);
        assert_eq!(w.finish(), [0, 0, 0, 0]);
        w.mpint(&[0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]);
        assert_eq!(
            w.finish(),
            [0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]
        );
        w.mpint(&[0x80]);
        assert_eq!(w.finish(), [0, 0, 0, 2, 0, 0x80]);
        w.mpint(&[0, 0, 0x7f]);
        assert_eq!(w.finish(), [0, 0, 0, 1, 0x7f]);
    }

    #[test]
    fn reader_refuses_short_and_lying_lengths() {
        assert_eq!(Reader::new(&[0, 0, 0, 5, b'a']).string(), None);
        assert_eq!(Reader::new(&[0xff, 0xff, 0xff, 0xff]).string(), None);
        let mut r = Reader::new(&[0, 0, 0, 3, b'a', b',', b'b', 1]);
        assert_eq!(r.name_list(), Some(vec!["a", "b"]));
        assert_eq!(r.bool(), Some(true));
        assert!(r.is_empty());
    }
}
