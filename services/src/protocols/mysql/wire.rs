//! MySQL client/server protocol pieces: packet framing and the client's handshake response.

pub const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
pub const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
pub const CLIENT_SSL: u32 = 0x0000_0800;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
pub const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
pub const CLIENT_CONNECT_ATTRS: u32 = 0x0010_0000;
pub const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x0020_0000;

/// One packet: header (3-byte little-endian length, sequence id) and payload.
pub fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len())
        .unwrap_or(0)
        .min(0x00ff_ffff)
        .to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&[len[0], len[1], len[2], seq]);
    out.extend_from_slice(payload);
    out
}

/// One whole packet found in a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub seq: u8,
    pub payload: &'a [u8],
    /// Bytes of the buffer it took, header included.
    pub used: usize,
}

/// The next whole packet in `buf`, `Ok(None)` if more bytes are needed, `Err(())` if it
/// announces more than `max` bytes.
pub fn next_packet(buf: &[u8], max: usize) -> Result<Option<Frame<'_>>, ()> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len > max {
        return Err(());
    }
    Ok(buf.get(4..4 + len).map(|payload| Frame {
        seq: header[3],
        payload,
        used: 4 + len,
    }))
}

/// An ERR packet payload, with the SQL state marker when the client speaks protocol 4.1.
pub fn err_payload(code: u16, sqlstate: Option<&str>, message: &str) -> Vec<u8> {
    let mut out = vec![0xff];
    out.extend_from_slice(&code.to_le_bytes());
    if let Some(state) = sqlstate {
        out.push(b'#');
        out.extend_from_slice(state.as_bytes());
    }
    out.extend_from_slice(message.as_bytes());
    out
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string; a missing NUL at the very end is tolerated.
    fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        self.pos += (end + 1).min(rest.len());
        Some(&rest[..end])
    }

    fn lenenc(&mut self) -> Option<u64> {
        Some(match self.u8()? {
            n @ 0..=0xfa => u64::from(n),
            0xfc => {
                let b = self.take(2)?;
                u64::from(u16::from_le_bytes([b[0], b[1]]))
            }
            0xfd => {
                let b = self.take(3)?;
                u64::from(u32::from_le_bytes([b[0], b[1], b[2], 0]))
            }
            0xfe => {
                let b = self.take(8)?;
                u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            _ => return None,
        })
    }

    fn lenenc_bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.lenenc()?).ok()?;
        self.take(n)
    }
}

/// What a client said in HandshakeResponse41.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub capabilities: u32,
    pub charset: u8,
    pub username: String,
    pub auth: Vec<u8>,
    pub database: String,
    pub plugin: String,
    pub attrs: Vec<(String, String)>,
}

/// How a first client packet parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Response(Response),
    /// SSLRequest: the client wants TLS before sending its credentials.
    SslRequest(u32),
    /// Not a 4.1 handshake response; the capabilities if they could be read.
    Invalid(u32),
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Connection attributes kept per handshake.
const MAX_ATTRS: usize = 64;

pub fn parse_response(payload: &[u8]) -> Parsed {
    let mut c = Cursor {
        data: payload,
        pos: 0,
    };
    let Some(caps) = c.u32() else {
        return Parsed::Invalid(0);
    };
    if caps & CLIENT_PROTOCOL_41 == 0 {
        return Parsed::Invalid(caps);
    }
    let (Some(_max_packet), Some(charset), Some(_filler)) = (c.u32(), c.u8(), c.take(23)) else {
        return Parsed::Invalid(caps);
    };
    if c.pos == payload.len() && caps & CLIENT_SSL != 0 {
        return Parsed::SslRequest(caps);
    }
    let Some(user) = c.cstr() else {
        return Parsed::Invalid(caps);
    };
    let auth = if caps & CLIENT_PLUGIN_AUTH_LENENC != 0 {
        c.lenenc_bytes()
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        c.u8().and_then(|n| c.take(usize::from(n)))
    } else {
        c.cstr()
    };
    let mut r = Response {
        capabilities: caps,
        charset,
        username: text(user),
        auth: auth.unwrap_or_default().to_vec(),
        ..Response::default()
    };
    if caps & CLIENT_CONNECT_WITH_DB != 0 {
        r.database = c.cstr().map(text).unwrap_or_default();
    }
    if caps & CLIENT_PLUGIN_AUTH != 0 {
        r.plugin = c.cstr().map(text).unwrap_or_default();
    }
    if caps & CLIENT_CONNECT_ATTRS != 0
        && let Some(block) = c.lenenc_bytes()
    {
        let mut a = Cursor {
            data: block,
            pos: 0,
        };
        while r.attrs.len() < MAX_ATTRS {
            let (Some(k), Some(v)) = (a.lenenc_bytes(), a.lenenc_bytes()) else {
                break;
            };
            r.attrs.push((text(k), text(v)));
        }
    }
    Parsed::Response(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(packet(3, b"ab"), b"\x02\x00\x00\x03ab");
        assert_eq!(
            next_packet(b"\x02\x00\x00\x03abX", 10),
            Ok(Some(Frame {
                seq: 3,
                payload: b"ab",
                used: 6
            }))
        );
        assert_eq!(next_packet(b"\x02\x00\x00\x03a", 10), Ok(None));
        assert_eq!(next_packet(b"\r\n\r\n", 1 << 16), Err(()));
    }

    #[test]
    fn lenenc_ints() {
        for (bytes, n) in [
            (&b"\xfa"[..], 250u64),
            (b"\xfc\x01\x02", 0x0201),
            (b"\xfd\x01\x02\x03", 0x03_0201),
        ] {
            assert_eq!(
                Cursor {
                    data: bytes,
                    pos: 0
                }
                .lenenc(),
                Some(n)
            );
        }
        assert_eq!(
            Cursor {
                data: b"\xff",
                pos: 0
            }
            .lenenc(),
            None
        );
    }
}
