//! hasshServer of an attacker's SSH server: send a client banner, read the server's banner and
//! KEXINIT, hash its server-to-client algorithm lists (Salesforce's algorithm; the parser and
//! hash are the sniffer's, so a passive and an active hasshServer of one server agree).

use std::{net::SocketAddr, time::Duration};

use decnet_dataplane::fingerprint::ssh::{SshError, parse_stream};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::{Instant, timeout_at},
};

use crate::ProbeError;

/// The banner we announce (the original prober's): a common client, nothing distinctive.
pub const CLIENT_BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.6\r\n";
/// Most bytes read from a server before giving up: pre-banner lines, the banner and one
/// KEXINIT (RFC 4253 bounds it at 35,000 bytes).
const MAX_READ: usize = 40 * 1024;

/// What an SSH server's first words say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHassh {
    /// md5 of `kex;enc_s2c;mac_s2c;comp_s2c`.
    pub hassh_server: String,
    /// The server's version line, printable.
    pub banner: String,
    pub kex: String,
    pub enc_s2c: String,
    pub mac_s2c: String,
    pub comp_s2c: String,
}

/// The fingerprint from the bytes a server sent so far: `Ok(None)` while the KEXINIT is
/// incomplete, `Err` when they are not SSH or the KEXINIT is malformed.
pub fn from_stream(bytes: &[u8]) -> Result<Option<ServerHassh>, SshError> {
    let Some(hello) = parse_stream(bytes, true)? else {
        return Ok(None);
    };
    Ok(hello.kexinit.map(|k| ServerHassh {
        hassh_server: k.hassh_server(),
        banner: hello.banner,
        kex: k.kex,
        enc_s2c: k.enc_s2c,
        mac_s2c: k.mac_s2c,
        comp_s2c: k.comp_s2c,
    }))
}

/// The hasshServer of the server at `target`, all within `timeout`. `Ok(None)`: nothing
/// listens there, or what answers is not SSH. `Err`: an SSH server that stalled or sent a
/// malformed KEXINIT (worth reporting).
pub async fn probe(
    target: SocketAddr,
    timeout: Duration,
) -> Result<Option<ServerHassh>, ProbeError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || ProbeError::Timeout { target, timeout };
    let io = |source| ProbeError::Io { target, source };
    let mut stream = match timeout_at(deadline, TcpStream::connect(target)).await {
        Err(_) => return Ok(None),
        Ok(Err(e)) if is_absent(&e) => return Ok(None),
        Ok(Err(e)) => return Err(io(e)),
        Ok(Ok(s)) => s,
    };
    timeout_at(deadline, stream.write_all(CLIENT_BANNER))
        .await
        .map_err(|_| timed_out())?
        .map_err(io)?;
    let mut got: Vec<u8> = Vec::with_capacity(4096);
    let mut buf = [0u8; 4096];
    loop {
        let n = match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) if !has_banner(&got) => return Ok(None),
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) if is_absent(&e) => return Ok(None),
            Ok(Err(e)) => return Err(io(e)),
            Ok(Ok(n)) => n,
        };
        let Some(chunk) = buf.get(..n) else {
            return Ok(None);
        };
        got.extend_from_slice(chunk);
        match from_stream(&got) {
            Ok(Some(fp)) => return Ok(Some(fp)),
            // Closed before any banner: not an SSH server (an HTTP server on port 22, say).
            Ok(None) if n == 0 && !has_banner(&got) => return Ok(None),
            Ok(None) if n == 0 || got.len() >= MAX_READ => {
                return Err(ProbeError::Protocol {
                    target,
                    reason: format!(
                        "SSH server closed or sent {} bytes without a full KEXINIT",
                        got.len()
                    ),
                });
            }
            Ok(None) => {}
            Err(SshError::NotSsh | SshError::BannerTooLong) => return Ok(None),
            Err(e) => {
                return Err(ProbeError::Protocol {
                    target,
                    reason: e.to_string(),
                });
            }
        }
    }
}

fn has_banner(bytes: &[u8]) -> bool {
    bytes
        .split(|b| *b == b'\n')
        .any(|line| line.starts_with(b"SSH-"))
}

/// Errors that mean "no server here", not a failure worth an event.
fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::HostUnreachable
            | std::io::ErrorKind::NetworkUnreachable
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::net::TcpListener;

    use super::*;

    fn namelist(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&u32::try_from(s.len()).unwrap().to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// A server's banner and KEXINIT packet, as OpenSSH sends them.
    fn server_hello() -> Vec<u8> {
        let mut payload = vec![20u8];
        payload.extend_from_slice(&[7u8; 16]);
        for list in [
            "curve25519-sha256,diffie-hellman-group14-sha256",
            "ssh-ed25519",
            "aes128-ctr",
            "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com",
            "hmac-sha2-256",
            "umac-128-etm@openssh.com",
            "none",
            "none,zlib@openssh.com",
            "",
            "",
        ] {
            namelist(&mut payload, list);
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        let padding = 8 - (payload.len() + 5) % 8 + 4;
        let len = u32::try_from(1 + payload.len() + padding).unwrap();
        let mut out = b"SSH-2.0-OpenSSH_8.4p1 Debian-5\r\n".to_vec();
        out.extend_from_slice(&len.to_be_bytes());
        out.push(u8::try_from(padding).unwrap());
        out.extend_from_slice(&payload);
        out.extend(std::iter::repeat_n(0u8, padding));
        out
    }

    #[test]
    fn the_server_to_client_lists_are_hashed() {
        let bytes = server_hello();
        let fp = from_stream(&bytes).unwrap().unwrap();
        assert_eq!(fp.banner, "SSH-2.0-OpenSSH_8.4p1 Debian-5");
        assert_eq!(
            fp.enc_s2c,
            "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com"
        );
        assert_eq!(fp.mac_s2c, "umac-128-etm@openssh.com");
        assert_eq!(fp.comp_s2c, "none,zlib@openssh.com");
        // md5("curve25519-sha256,diffie-hellman-group14-sha256;chacha20-poly1305@openssh.com,aes256-gcm@openssh.com;umac-128-etm@openssh.com;none,zlib@openssh.com")
        let expected = {
            use md5_reference::md5_hex;
            md5_hex(
                "curve25519-sha256,diffie-hellman-group14-sha256;chacha20-poly1305@openssh.com,aes256-gcm@openssh.com;umac-128-etm@openssh.com;none,zlib@openssh.com",
            )
        };
        assert_eq!(fp.hassh_server, expected);
        // Any prefix is "need more", never an error or a panic.
        for cut in 0..bytes.len() {
            assert_eq!(from_stream(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
        // RFC 4253 lets a server send lines before its banner, but not many.
        assert_eq!(
            from_stream(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap(),
            None
        );
        assert!(from_stream(&b"HTTP/1.1 400 Bad Request\r\n".repeat(17)).is_err());
    }

    /// An independent md5 (RFC 1321) so the test does not check the hash with itself.
    mod md5_reference {
        pub fn md5_hex(text: &str) -> String {
            let s: [u32; 64] = [
                7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14,
                20, 5, 9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11,
                16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
            ];
            let k: Vec<u32> = (0..64)
                .map(|i| ((f64::from(i + 1)).sin().abs() * 4_294_967_296.0) as u32)
                .collect();
            let mut msg = text.as_bytes().to_vec();
            let bit_len = (msg.len() as u64).wrapping_mul(8);
            msg.push(0x80);
            while msg.len() % 64 != 56 {
                msg.push(0);
            }
            msg.extend_from_slice(&bit_len.to_le_bytes());
            let (mut a0, mut b0, mut c0, mut d0) = (
                0x6745_2301u32,
                0xefcd_ab89u32,
                0x98ba_dcfeu32,
                0x1032_5476u32,
            );
            for chunk in msg.chunks(64) {
                let m: Vec<u32> = chunk
                    .chunks(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    .collect();
                let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
                for i in 0..64 {
                    let (f, g) = match i / 16 {
                        0 => ((b & c) | (!b & d), i),
                        1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                        2 => (b ^ c ^ d, (3 * i + 5) % 16),
                        _ => (c ^ (b | !d), (7 * i) % 16),
                    };
                    let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
                    a = d;
                    d = c;
                    c = b;
                    b = b.wrapping_add(f.rotate_left(s[i]));
                }
                a0 = a0.wrapping_add(a);
                b0 = b0.wrapping_add(b);
                c0 = c0.wrapping_add(c);
                d0 = d0.wrapping_add(d);
            }
            [a0, b0, c0, d0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .map(|b| format!("{b:02x}"))
                .collect()
        }

        #[test]
        fn reference_md5_matches_rfc_1321() {
            assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
            assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
        }
    }

    #[tokio::test]
    async fn a_live_server_is_fingerprinted_and_silence_or_refusal_is_none() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut banner = [0u8; CLIENT_BANNER.len()];
            conn.read_exact(&mut banner).await.unwrap();
            assert_eq!(&banner, CLIENT_BANNER);
            // Split across writes, as a slow server might.
            let hello = server_hello();
            let (a, b) = hello.split_at(40);
            conn.write_all(a).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            conn.write_all(b).await.unwrap();
        });
        let fp = probe(addr, Duration::from_secs(5)).await.unwrap().unwrap();
        assert_eq!(fp.banner, "SSH-2.0-OpenSSH_8.4p1 Debian-5");
        server.await.unwrap();
        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(
            probe(closed_addr, Duration::from_secs(5))
                .await
                .unwrap()
                .is_none()
        );
        // A server that never speaks.
        let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mute_addr = mute.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (conn, _) = mute.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(conn);
        });
        let started = std::time::Instant::now();
        assert!(
            probe(mute_addr, Duration::from_millis(300))
                .await
                .unwrap()
                .is_none()
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        hold.abort();
    }
}
