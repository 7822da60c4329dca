//! SSH version banner and KEXINIT: HASSH (client) and hasshServer (server).
//!
//! Salesforce's algorithm: HASSH = md5(`kex;enc_c2s;mac_c2s;comp_c2s`), hasshServer =
//! md5(`kex;enc_s2c;mac_s2c;comp_s2c`), each list the comma-separated name-list as sent.
//! The KEXINIT is the first binary packet and is never encrypted, so it can be read from the
//! clear stream right after the banner.

use super::{Reader, Short, md5_hex, printable};

/// Longest banner line accepted (RFC 4253 §4.2: 255 bytes including CR LF).
pub const MAX_BANNER: usize = 255;
/// Lines a server may send before its banner (RFC 4253 §4.2); bounded here.
const MAX_PRE_BANNER_LINES: usize = 16;
/// Largest KEXINIT packet accepted (RFC 4253 §6.1 requires 35000 to be handled).
const MAX_PACKET: usize = 35_000;

/// Why SSH bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    #[error("the stream does not start with an SSH banner")]
    NotSsh,
    #[error("SSH banner longer than {MAX_BANNER} bytes")]
    BannerTooLong,
    #[error("SSH packet length {0} is outside 5..=35000")]
    BadPacketLength(usize),
    #[error("first SSH packet is message {0}, not KEXINIT (20)")]
    NotKexinit(u8),
    #[error(transparent)]
    Short(#[from] Short),
}

/// The algorithm lists of a KEXINIT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kexinit {
    pub kex: String,
    pub host_key: String,
    pub enc_c2s: String,
    pub enc_s2c: String,
    pub mac_c2s: String,
    pub mac_s2c: String,
    pub comp_c2s: String,
    pub comp_s2c: String,
}

impl Kexinit {
    /// The string HASSH hashes (client view).
    pub fn hassh_algorithms(&self) -> String {
        format!(
            "{};{};{};{}",
            self.kex, self.enc_c2s, self.mac_c2s, self.comp_c2s
        )
    }

    pub fn hassh(&self) -> String {
        md5_hex(&self.hassh_algorithms())
    }

    /// The string hasshServer hashes (server view).
    pub fn hassh_server_algorithms(&self) -> String {
        format!(
            "{};{};{};{}",
            self.kex, self.enc_s2c, self.mac_s2c, self.comp_s2c
        )
    }

    pub fn hassh_server(&self) -> String {
        md5_hex(&self.hassh_server_algorithms())
    }
}

/// Parse a KEXINIT payload (starting at the message number).
pub fn parse_kexinit(payload: &[u8]) -> Result<Kexinit, SshError> {
    let mut r = Reader::new(payload);
    let msg = r.u8("message number")?;
    if msg != 20 {
        return Err(SshError::NotKexinit(msg));
    }
    r.take(16, "cookie")?;
    let mut list = || -> Result<String, Short> { Ok(printable(r.vec(4, "name-list")?)) };
    Ok(Kexinit {
        kex: list()?,
        host_key: list()?,
        enc_c2s: list()?,
        enc_s2c: list()?,
        mac_c2s: list()?,
        mac_s2c: list()?,
        comp_c2s: list()?,
        comp_s2c: list()?,
    })
}

/// Whether `stream` could be SSH (it starts with `SSH-`, or is too short to tell).
pub fn looks_like_ssh(stream: &[u8]) -> bool {
    let n = stream.len().min(4);
    stream[..n] == b"SSH-"[..n] && n > 0
}

/// A banner and, once it arrived, the KEXINIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHello {
    /// The version line without CR LF, printable.
    pub banner: String,
    pub kexinit: Option<Kexinit>,
}

/// What [`parse_stream_need`] lacks before another call can tell more: a caller fed one
/// segment at a time waits for it instead of re-reading the stream on every byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshNeed {
    /// Nothing: the KEXINIT is in.
    Nothing,
    /// The end of the line being read, or the stream at this length (where that line is too
    /// long for a banner).
    LineEnd(usize),
    /// The stream at this length (the rest of the KEXINIT packet).
    Len(usize),
}

/// Read the banner and KEXINIT from the start of a stream; `Ok(None)` = need more bytes.
/// `server` allows the RFC 4253 pre-banner lines.
pub fn parse_stream(stream: &[u8], server: bool) -> Result<Option<SshHello>, SshError> {
    parse_stream_need(stream, server).map(|(hello, _)| hello)
}

/// [`parse_stream`], and what it lacks to tell more.
pub fn parse_stream_need(
    stream: &[u8],
    server: bool,
) -> Result<(Option<SshHello>, SshNeed), SshError> {
    let mut rest = stream;
    let mut lines = 0usize;
    let banner = loop {
        let Some(nl) = rest.iter().take(MAX_BANNER).position(|b| *b == b'\n') else {
            if rest.len() >= MAX_BANNER {
                return Err(SshError::BannerTooLong);
            }
            let line_start = stream.len() - rest.len();
            return Ok((None, SshNeed::LineEnd(line_start + MAX_BANNER)));
        };
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        if line.starts_with(b"SSH-") {
            break line.strip_suffix(b"\r").unwrap_or(line);
        }
        lines += 1;
        if !server || lines > MAX_PRE_BANNER_LINES {
            return Err(SshError::NotSsh);
        }
    };
    let mut hello = SshHello {
        banner: printable(banner),
        kexinit: None,
    };
    let packet_start = stream.len() - rest.len();
    if rest.len() < 6 {
        return Ok((Some(hello), SshNeed::Len(packet_start + 6)));
    }
    let len = usize::try_from(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]))
        .unwrap_or(usize::MAX);
    if !(5..=MAX_PACKET).contains(&len) {
        return Err(SshError::BadPacketLength(len));
    }
    let Some(packet) = rest.get(4..4 + len) else {
        return Ok((Some(hello), SshNeed::Len(packet_start + 4 + len)));
    };
    let padding = usize::from(packet[0]);
    let payload = packet
        .get(1..len.saturating_sub(padding))
        .ok_or(SshError::BadPacketLength(len))?;
    hello.kexinit = Some(parse_kexinit(payload)?);
    Ok((Some(hello), SshNeed::Nothing))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn namelist(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn kexinit_packet(lists: [&str; 10]) -> Vec<u8> {
        let mut payload = vec![20u8];
        payload.extend_from_slice(&[0x11; 16]);
        for l in lists {
            payload.extend(namelist(l));
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        let padding = 8 - (payload.len() + 5) % 8 + 4;
        let mut pkt = ((payload.len() + padding + 1) as u32)
            .to_be_bytes()
            .to_vec();
        pkt.push(padding as u8);
        pkt.extend(payload);
        pkt.extend(std::iter::repeat_n(0u8, padding));
        pkt
    }

    #[test]
    fn hassh_matches_tshark_on_openssh_9_2() {
        // OpenSSH_9.2p1 client KEXINIT (tests/corpus/ssh.pcap): tshark 4.0's
        // ssh.kex.hassh_algorithms and ssh.kex.hassh for it.
        let k = Kexinit {
            kex: "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,ext-info-c,kex-strict-c-v00@openssh.com".into(),
            enc_c2s: "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com".into(),
            mac_c2s: "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1".into(),
            comp_c2s: "none,zlib@openssh.com,zlib".into(),
            ..Kexinit::default()
        };
        assert_eq!(k.hassh(), "472b5de333ad665af5cbf10ff892c4df");
    }

    /// An OpenSSH 9.2 client's banner and a KEXINIT with short algorithm lists.
    pub(crate) fn openssh_client_stream() -> Vec<u8> {
        let mut stream = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec();
        stream.extend(kexinit_packet([
            "curve25519-sha256,ext-info-c",
            "ssh-ed25519",
            "aes128-ctr",
            "aes256-ctr",
            "hmac-sha2-256",
            "hmac-sha2-512",
            "none",
            "zlib",
            "",
            "",
        ]));
        stream
    }

    #[test]
    fn banner_and_kexinit_from_a_stream() {
        let stream = openssh_client_stream();
        let hello = parse_stream(&stream, false).unwrap().unwrap();
        assert_eq!(hello.banner, "SSH-2.0-OpenSSH_9.2p1 Debian-2");
        let k = hello.kexinit.unwrap();
        assert_eq!(
            k.hassh_algorithms(),
            "curve25519-sha256,ext-info-c;aes128-ctr;hmac-sha2-256;none"
        );
        assert_eq!(
            k.hassh_server_algorithms(),
            "curve25519-sha256,ext-info-c;aes256-ctr;hmac-sha2-512;zlib"
        );
        // Every prefix is either incomplete or the same answer, never an error or a panic.
        for cut in 0..stream.len() {
            let r = parse_stream(&stream[..cut], false);
            assert!(r.is_ok(), "prefix {cut}: {r:?}");
        }
    }

    #[test]
    fn server_pre_banner_lines_are_skipped_but_not_for_clients() {
        let s = b"hello\r\nSSH-2.0-x\r\n";
        assert_eq!(parse_stream(s, true).unwrap().unwrap().banner, "SSH-2.0-x");
        assert_eq!(parse_stream(s, false), Err(SshError::NotSsh));
    }
}
