//! The SASL bits mail protocols share: base64 (RFC 4648, padded) and PLAIN (RFC 4616).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sextet(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// Decode base64, tolerating missing padding (some clients drop it); `None` if malformed.
pub fn b64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let body = text.trim_ascii();
    let trimmed = body
        .strip_suffix(b"==")
        .or_else(|| body.strip_suffix(b"="))
        .unwrap_or(body);
    if trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The parts of a SASL PLAIN message: `authzid NUL authcid NUL password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    pub authzid: String,
    pub username: String,
    pub password: String,
}

/// Split a decoded PLAIN message; `None` if it has not exactly two NULs.
pub fn parse_plain(decoded: &[u8]) -> Option<Plain> {
    let mut parts = decoded.split(|&b| b == 0);
    let (authzid, username, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Some(Plain {
        authzid: text(authzid),
        username: text(username),
        password: text(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64_encode(plain.as_bytes()), enc);
            assert_eq!(b64_decode(enc.as_bytes()).unwrap(), plain.as_bytes());
        }
        assert_eq!(b64_decode(b"Zm9vYg").unwrap(), b"foob");
        assert_eq!(b64_decode(b"Zm9v!g=="), None);
        assert_eq!(b64_decode(b"Z"), None);
    }

    #[test]
    fn plain_messages() {
        let p = parse_plain(b"\0admin\0s3cret").unwrap();
        assert_eq!(
            (p.username.as_str(), p.password.as_str()),
            ("admin", "s3cret")
        );
        assert_eq!(parse_plain(b"admin"), None);
        assert_eq!(parse_plain(b"a\0b\0c\0d"), None);
    }

    proptest! {
        #[test]
        fn round_trip_and_total(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(b64_decode(b64_encode(&data).as_bytes()), Some(data.clone()));
            let _ = b64_decode(&data);
            let _ = parse_plain(&data);
        }
    }
}
