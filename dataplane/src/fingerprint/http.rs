//! The first HTTP/1.x request of a flow: method, path, Host, User-Agent.

use super::printable;

/// Largest request head looked at; longer heads are cut there.
pub const MAX_HEAD: usize = 8 * 1024;

/// A request line and the headers the sniffer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub version: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
}

/// Whether `stream` could start an HTTP request: an upper-case token (up to 16 bytes) and a
/// space, or too short to tell.
pub fn looks_like_http(stream: &[u8]) -> bool {
    for (i, b) in stream.iter().take(17).enumerate() {
        match b {
            b'A'..=b'Z' | b'-' | b'_' => {}
            b' ' => return i > 0,
            _ => return false,
        }
    }
    stream.len() < 17 && !stream.is_empty()
}

/// Parse the request head; `None` while the head is incomplete (and below [`MAX_HEAD`]) or
/// when the bytes are not an HTTP request.
pub fn parse_request(stream: &[u8]) -> Option<HttpRequest> {
    let head = &stream[..stream.len().min(MAX_HEAD)];
    let end = head.windows(4).position(|w| w == b"\r\n\r\n");
    let complete = end.is_some() || head.windows(2).any(|w| w == b"\n\n");
    if !complete && stream.len() < MAX_HEAD {
        return None;
    }
    let head = &head[..end.unwrap_or(head.len())];
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next()?;
    let mut parts = request_line.splitn(3, |b| *b == b' ');
    let method = parts.next()?;
    let path = parts.next()?;
    let version = parts.next().unwrap_or_default();
    if method.is_empty()
        || !method
            .iter()
            .all(|b| b.is_ascii_uppercase() || *b == b'-' || *b == b'_')
    {
        return None;
    }
    let mut req = HttpRequest {
        method: printable(method),
        path: printable(path),
        version: printable(version),
        host: None,
        user_agent: None,
    };
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"host") && req.host.is_none() {
            req.host = Some(printable(value));
        } else if name.eq_ignore_ascii_case(b"user-agent") && req.user_agent.is_none() {
            req.user_agent = Some(printable(value));
        }
    }
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_request() {
        let s = b"GET /index.html?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
        let r = parse_request(s).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/index.html?q=1");
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(r.host.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(r.user_agent.as_deref(), Some("curl/7.88.1"));
        assert!(looks_like_http(s));
        assert!(parse_request(&s[..40]).is_none());
    }

    #[test]
    fn not_http() {
        assert!(!looks_like_http(b"\x16\x03\x01"));
        assert!(!looks_like_http(b"SSH-2.0"));
        assert!(looks_like_http(b"GE"));
    }
}
