//! Sans-IO HTTP/1.x request parsing with Apache's default limits: request line and header
//! fields up to 8190 bytes, at most 100 header fields, bodies read up to a cap.

/// Longest request line or header field (Apache `LimitRequestLine`/`LimitRequestFieldSize`).
pub const MAX_LINE: usize = 8190;
/// Most header fields (Apache `LimitRequestFields`).
pub const MAX_FIELDS: usize = 100;
/// Largest body read; a longer one is refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;

pub use crate::protocols::wait::Wait;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// `1.0` or `1.1` (anything else is refused before this is built).
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Path part of the target, without query.
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("/")
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").map(str::to_ascii_lowercase);
        match self.version.as_str() {
            "1.1" => conn.as_deref() != Some("close"),
            _ => conn.as_deref() == Some("keep-alive"),
        }
    }
}

/// Outcome of one parse attempt over the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A request and how many buffered bytes it used.
    Request(Request, usize),
    /// More bytes are needed: parsing again before what [`Wait`] names arrives cannot succeed.
    Incomplete(Wait),
    /// The request is unacceptable; answer with this status and close.
    Reject(u16, &'static str),
}

/// The wait for the rest of the line starting at `from` (at most `max` bytes long).
fn line_wait(from: usize, max: usize) -> Unfinished {
    Unfinished::Wait(Wait::Line {
        limit: from.saturating_add(max),
    })
}

/// Why a request head is not ready: it waits for more, or it is refused.
#[derive(Debug)]
enum Unfinished {
    Wait(Wait),
    Reject(u16, &'static str),
}

impl From<Unfinished> for Parsed {
    fn from(u: Unfinished) -> Self {
        match u {
            Unfinished::Wait(wait) => Self::Incomplete(wait),
            Unfinished::Reject(status, why) => Self::Reject(status, why),
        }
    }
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| from + p)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The request line and headers at the start of `buf`, where its body starts, and how the body
/// is framed; `Err` with what to answer while they are incomplete or refused.
fn head(buf: &[u8]) -> Result<(Request, usize, Framing), Unfinished> {
    #[cfg(test)]
    HEADS_PARSED.with(|n| n.set(n.get() + 1));
    // Apache ignores empty lines before a request line (RFC 9112 §2.2).
    let mut pos = 0;
    while buf.get(pos..pos + 2) == Some(b"\r\n") {
        pos += 2;
    }
    let Some(end) = line_end(buf, pos) else {
        return Err(if buf.len() - pos > MAX_LINE {
            Unfinished::Reject(414, "request line too long")
        } else {
            line_wait(pos, MAX_LINE)
        });
    };
    if end - pos > MAX_LINE {
        return Err(Unfinished::Reject(414, "request line too long"));
    }
    let line = String::from_utf8_lossy(trim_cr(&buf[pos..end])).into_owned();
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), version) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Unfinished::Reject(400, "malformed request line"));
    };
    if parts.next().is_some()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
    {
        return Err(Unfinished::Reject(400, "malformed request line"));
    }
    let version = match version {
        Some("HTTP/1.1") => "1.1",
        Some("HTTP/1.0") => "1.0",
        // HTTP/0.9 (no version) and anything else: Apache answers 400.
        _ => return Err(Unfinished::Reject(400, "unsupported protocol version")),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut cursor = end + 1;
    loop {
        let Some(end) = line_end(buf, cursor) else {
            return Err(if buf.len() - cursor > MAX_LINE {
                Unfinished::Reject(400, "header field too long")
            } else {
                line_wait(cursor, MAX_LINE)
            });
        };
        let raw = trim_cr(&buf[cursor..end]);
        cursor = end + 1;
        if raw.is_empty() {
            break;
        }
        if raw.len() > MAX_LINE {
            return Err(Unfinished::Reject(400, "header field too long"));
        }
        if raw[0] == b' ' || raw[0] == b'\t' {
            // Obsolete line folding (RFC 9112 §5.2): refused like a modern server.
            return Err(Unfinished::Reject(400, "obsolete header folding"));
        }
        let Some(colon) = raw.iter().position(|&b| b == b':') else {
            return Err(Unfinished::Reject(400, "header field without colon"));
        };
        if headers.len() >= MAX_FIELDS {
            return Err(Unfinished::Reject(400, "too many header fields"));
        }
        let name = String::from_utf8_lossy(&raw[..colon]).trim().to_owned();
        let value = String::from_utf8_lossy(&raw[colon + 1..]).trim().to_owned();
        if name.is_empty() || name.contains(' ') {
            return Err(Unfinished::Reject(400, "malformed header name"));
        }
        headers.push((name, value));
    }
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version.to_owned(),
        headers,
        body: Vec::new(),
    };
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let framing = if chunked {
        Framing::Chunked
    } else {
        match request.header("content-length") {
            None => Framing::Length(0),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n <= MAX_BODY => Framing::Length(n),
                Ok(_) => return Err(Unfinished::Reject(413, "body too large")),
                Err(_) => return Err(Unfinished::Reject(400, "bad content-length")),
            },
        }
    };
    Ok((request, cursor, framing))
}

#[cfg(test)]
thread_local! {
    /// Request heads parsed on this thread, for the tests that bound it.
    pub static HEADS_PARSED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// How far parsing the request at the start of the buffer got, kept between reads: a wait
/// then resumes where the last parse stopped. Re-reading from the first byte each time made a
/// body of many small chunks behind large headers cost the headers once per chunk.
#[derive(Debug, Default)]
pub struct Progress {
    /// The request (without its body), where the body starts and how it is framed.
    head: Option<(Request, usize, Framing)>,
    /// Chunked bodies: where the next chunk-size line starts, the chunks read so far
    /// (offset, length) and their total length.
    next: usize,
    chunks: Vec<(usize, usize)>,
    total: usize,
}

/// Parse one request from the start of `buf`.
#[cfg(test)]
pub fn parse(buf: &[u8]) -> Parsed {
    parse_from(buf, &mut Progress::default())
}

/// [`parse`], resuming from and updating `progress` (reset once a request is complete or
/// refused).
pub fn parse_from(buf: &[u8], progress: &mut Progress) -> Parsed {
    let parsed = continue_parse(buf, progress);
    if !matches!(parsed, Parsed::Incomplete(_)) {
        *progress = Progress::default();
    }
    parsed
}

fn continue_parse(buf: &[u8], progress: &mut Progress) -> Parsed {
    let (body_at, framing) = match &progress.head {
        Some((_, at, framing)) => (*at, *framing),
        None => match head(buf) {
            Ok((request, at, framing)) => {
                progress.head = Some((request, at, framing));
                progress.next = at;
                (at, framing)
            }
            Err(unfinished) => return unfinished.into(),
        },
    };
    let body = match framing {
        Framing::Length(length) => {
            if buf.len() < body_at + length {
                return Parsed::Incomplete(Wait::Len(body_at + length));
            }
            (buf[body_at..body_at + length].to_vec(), body_at + length)
        }
        Framing::Chunked => match dechunk(buf, progress) {
            Ok(Ok(done)) => done,
            Ok(Err(wait)) => return Parsed::Incomplete(wait),
            Err(status) => return Parsed::Reject(status, "bad chunked body"),
        },
    };
    match progress.head.take() {
        Some((mut request, _, _)) => {
            request.body = body.0;
            Parsed::Request(request, body.1)
        }
        None => Parsed::Reject(500, "request head lost"),
    }
}

/// Longest chunk-size line.
const MAX_CHUNK_LINE: usize = 64;

/// Decode a chunked body from where `progress` stopped: `Ok(Err(wait))` until the last chunk
/// and trailers are buffered. Chunks are noted (offset, length) as they complete and copied
/// only once the body is whole, so a wait costs nothing already read.
fn dechunk(buf: &[u8], progress: &mut Progress) -> Result<Result<(Vec<u8>, usize), Wait>, u16> {
    loop {
        let pos = progress.next;
        let Some(end) = line_end(buf, pos) else {
            return if buf.len() - pos > MAX_CHUNK_LINE {
                Err(400)
            } else {
                Ok(Err(Wait::Line {
                    limit: pos + MAX_CHUNK_LINE,
                }))
            };
        };
        let size_text = String::from_utf8_lossy(trim_cr(&buf[pos..end]));
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| 400u16)?;
        let data = end + 1;
        if size == 0 {
            // Trailers until an empty line.
            let mut at = data;
            loop {
                let Some(end) = line_end(buf, at) else {
                    return if buf.len() - at > MAX_LINE {
                        Err(400)
                    } else {
                        Ok(Err(Wait::Line {
                            limit: at + MAX_LINE,
                        }))
                    };
                };
                let empty = trim_cr(&buf[at..end]).is_empty();
                if !empty && end - at > MAX_LINE {
                    return Err(400);
                }
                at = end + 1;
                if empty {
                    let mut body = Vec::with_capacity(progress.total);
                    for (start, len) in &progress.chunks {
                        body.extend_from_slice(&buf[*start..*start + *len]);
                    }
                    return Ok(Ok((body, at)));
                }
            }
        }
        // `size` is the peer's (up to 2^64 - 1): compared so nothing can overflow.
        if size > MAX_BODY.saturating_sub(progress.total) {
            return Err(413);
        }
        if buf.len() < data + size + 2 {
            return Ok(Err(Wait::Len(data + size + 2)));
        }
        if buf.get(data + size..data + size + 2) != Some(b"\r\n") {
            return Err(400);
        }
        progress.chunks.push((data, size));
        progress.total += size;
        progress.next = data + size + 2;
    }
}

/// Decode `application/x-www-form-urlencoded` pairs.
pub fn form_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(text: &[u8]) -> (Request, usize) {
        match parse(text) {
            Parsed::Request(r, n) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn curl_get() {
        let raw = b"GET /index.html?a=1 HTTP/1.1\r\nHost: 10.0.0.5\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
        let (r, n) = request(raw);
        assert_eq!(n, raw.len());
        assert_eq!(
            (r.method.as_str(), r.path(), r.target.as_str()),
            ("GET", "/index.html", "/index.html?a=1")
        );
        assert_eq!(r.header("user-agent"), Some("curl/7.88.1"));
        assert!(r.keep_alive());
    }

    #[test]
    fn bodies_by_length_and_chunks() {
        let (r, _) = request(
            b"POST /wp-login.php HTTP/1.0\r\nContent-Length: 19\r\n\r\nlog=admin&pwd=s%21x",
        );
        assert_eq!(
            form_pairs(&String::from_utf8_lossy(&r.body)),
            vec![("log".into(), "admin".into()), ("pwd".into(), "s!x".into())]
        );
        assert!(!r.keep_alive());
        let (r, n) = request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nGET");
        assert_eq!(r.body, b"abcde");
        assert_eq!(n, 71, "the trailing GET stays buffered");
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
            Parsed::Incomplete(Wait::Len(49))
        );
        // A trailer line is bounded like a header line: past it the request is refused, where
        // an unterminated one was re-read on every read that followed.
        let mut long_trailer =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ".to_vec();
        long_trailer.extend(std::iter::repeat_n(b'a', MAX_LINE + 1));
        assert_eq!(
            parse(&long_trailer),
            Parsed::Reject(400, "bad chunked body")
        );
    }

    #[test]
    fn rejections() {
        assert_eq!(
            parse(b"GET /\r\n"),
            Parsed::Reject(400, "unsupported protocol version")
        );
        assert!(matches!(
            parse(&[b'a'; MAX_LINE + 2]),
            Parsed::Reject(414, _)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nX: 1\r\n y\r\n\r\n"),
            Parsed::Reject(400, _)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"),
            Parsed::Reject(413, _)
        ));
        // A chunk size near 2^64 once wrapped `body + size` past the cap and panicked.
        for size in ["ffffffffffffffff", "fffffffffffffffe", "100000"] {
            let raw = format!(
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n{size}\r\nB"
            );
            assert!(
                matches!(parse(raw.as_bytes()), Parsed::Reject(413, _)),
                "{size}"
            );
        }
        let many: String = (0..=MAX_FIELDS).map(|i| format!("X{i}: 1\r\n")).collect();
        assert!(matches!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Parsed::Reject(400, _)
        ));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn form_decoding_never_panics(text in ".{0,200}") {
            let _ = form_pairs(&text);
        }
    }
}
