//! Bounded in-order reassembly of a stream's first bytes and the protocol sniffing over them.
//!
//! Only the start of each direction matters (hellos, banners, request heads), so a direction
//! keeps at most `cap` bytes and is dropped as soon as its parser has answered. Out-of-order
//! segments are ignored: the retransmission that fills the gap arrives in order later, and a
//! gap that never fills only costs the fingerprint, never memory.
//!
//! The parsers read a direction from its first byte every time, so a direction is looked at
//! again only when its bytes can tell more ([`Wait`]): the end of the TLS record or SSH packet
//! that completes the awaited message, a line end for an SSH banner, a blank line for an HTTP
//! head. Looking on every segment cost the square of the stream's length: a peer sending one
//! byte a segment made the capture thread re-read up to 32 KiB per byte.

use super::AppEvent;
use crate::{
    decode::{Tcp, TcpFlags},
    fingerprint::{der, http, ssh, tls},
};

/// Bytes that decide which parser reads a direction ([`http::looks_like_http`] reads the most):
/// below it a direction is looked at on every new byte.
const DETECT_BYTES: usize = 17;

/// One direction of a TCP stream.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    buf: Vec<u8>,
    next_seq: Option<u32>,
    /// Nothing more to learn from this direction.
    pub(crate) done: bool,
    /// What the parsers wait for before another look.
    wait: Wait,
}

/// When a direction is worth another look: any one of these.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Wait {
    /// The buffer holds this many bytes (0: any bytes at all).
    len: usize,
    /// A segment brings a line end.
    line_end: bool,
    /// The buffer holds an HTTP head's end (a blank line).
    head_end: bool,
}

impl Wait {
    fn len(len: usize) -> Self {
        Self {
            len,
            ..Self::default()
        }
    }

    /// Whether `buf`, of which the bytes from `old_len` on just arrived, meets the wait.
    fn met(&self, buf: &[u8], old_len: usize) -> bool {
        let fresh = buf.get(old_len..).unwrap_or_default();
        buf.len() >= self.len
            || (self.line_end && fresh.contains(&b'\n'))
            || (self.head_end
                && has_head_end(buf.get(old_len.saturating_sub(3)..).unwrap_or_default()))
    }
}

/// Whether `bytes` hold the blank line that ends an HTTP head, as [`http::parse_request`]
/// looks for it.
fn has_head_end(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(4).any(|w| w == b"\r\n\r\n")
}

impl Stream {
    /// Append the in-order part of a segment; `true` when the direction is worth another
    /// look ([`analyze`]): new bytes arrived that meet its wait, or it just filled up.
    pub(crate) fn push(&mut self, tcp: &Tcp<'_>, cap: usize) -> bool {
        if self.done {
            return false;
        }
        if tcp.flags.has(TcpFlags::SYN) {
            self.next_seq = Some(tcp.seq.wrapping_add(1));
            return false;
        }
        if tcp.payload.is_empty() {
            return false;
        }
        // Joined mid-stream (no SYN seen): start at the first payload.
        let next = *self.next_seq.get_or_insert(tcp.seq);
        let skip = next.wrapping_sub(tcp.seq);
        // `skip` above the payload means the segment is entirely old, or it lies ahead of a gap.
        let Some(fresh) = usize::try_from(skip)
            .ok()
            .and_then(|s| tcp.payload.get(s..))
        else {
            return false;
        };
        if fresh.is_empty() {
            return false;
        }
        let old_len = self.buf.len();
        let room = cap.saturating_sub(old_len);
        let take = fresh.len().min(room);
        self.buf.extend_from_slice(&fresh[..take]);
        self.next_seq = Some(next.wrapping_add(u32::try_from(take).unwrap_or(0)));
        if self.buf.len() >= cap {
            // Full: the parser gets this last look, then the direction is closed.
            self.done = true;
        }
        take > 0 && (self.done || self.wait.met(&self.buf, old_len))
    }

    /// An SSH banner still waiting for its KEXINIT when the flow ended.
    pub(crate) fn pending_ssh_banner(&self, from_client: bool) -> Option<ssh::SshHello> {
        if self.done || !ssh::looks_like_ssh(&self.buf) {
            return None;
        }
        ssh::parse_stream(&self.buf, !from_client).ok().flatten()
    }

    /// Nothing more will be read from this direction; its bytes are freed.
    pub(crate) fn finish(&mut self) {
        self.done = true;
        self.buf = Vec::new();
    }

    /// Bytes this direction holds (what its buffer has allocated).
    pub(crate) fn held(&self) -> usize {
        self.buf.capacity()
    }
}

/// What a direction turned out to carry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppState {
    #[default]
    Unknown,
    /// TLS server side after the ServerHello: waiting for the Certificate.
    TlsAwaitCertificate,
}

/// Run the parsers over the bytes so far; appends what they found and sets what the next
/// look waits for.
pub(crate) fn analyze(
    stream: &mut Stream,
    app: &mut AppState,
    from_client: bool,
    out: &mut Vec<AppEvent>,
) {
    let buf = stream.buf.as_slice();
    let full = stream.done;
    let (finished, mut wait) = if tls::looks_like_tls(buf) || *app == AppState::TlsAwaitCertificate
    {
        tls_step(buf, app, from_client, out)
    } else if ssh::looks_like_ssh(buf) || !from_client {
        // Servers may send lines before their banner (RFC 4253 §4.2); the parser bounds them.
        match ssh::parse_stream_need(buf, !from_client) {
            Ok((Some(hello), _)) if hello.kexinit.is_some() || full => {
                out.push(AppEvent::Ssh {
                    client: from_client,
                    hello,
                });
                (true, Wait::default())
            }
            Ok((_, ssh::SshNeed::LineEnd(len))) => (
                false,
                Wait {
                    len,
                    line_end: true,
                    head_end: false,
                },
            ),
            Ok((_, ssh::SshNeed::Len(len))) => (false, Wait::len(len)),
            Ok((_, ssh::SshNeed::Nothing)) | Err(_) => (true, Wait::default()),
        }
    } else if from_client && http::looks_like_http(buf) {
        match http::parse_request(buf) {
            Some(req) => {
                out.push(AppEvent::Http(req));
                (true, Wait::default())
            }
            None => (
                buf.len() >= http::MAX_HEAD,
                Wait {
                    len: http::MAX_HEAD,
                    line_end: false,
                    head_end: true,
                },
            ),
        }
    } else {
        // Something else (or a server's non-SSH banner): nothing to fingerprint.
        (true, Wait::default())
    };
    if finished || full {
        stream.finish();
        return;
    }
    // Until the first bytes decide the parser, every byte may change it.
    if buf.len() < DETECT_BYTES {
        wait = Wait::len(buf.len() + 1);
    }
    stream.wait = wait;
}

/// TLS: the ClientHello from a client; ServerHello then (TLS 1.2) Certificate from a server.
/// Each must come first in its place: a direction that starts otherwise is not followed
/// further (and cannot make the analyzer cut one message after another out of it).
fn tls_step(
    buf: &[u8],
    app: &mut AppState,
    from_client: bool,
    out: &mut Vec<AppEvent>,
) -> (bool, Wait) {
    let Ok(hs) = tls::handshake_messages(buf) else {
        return (true, Wait::default());
    };
    let pending = (hs.ended, Wait::len(hs.need));
    let mut messages = hs.messages.iter();
    if from_client {
        return match messages.next() {
            Some((tls::hs::CLIENT_HELLO, body)) => {
                if let Ok(ch) = tls::parse_client_hello(body) {
                    out.push(AppEvent::ClientHello(Box::new(ch)));
                }
                (true, Wait::default())
            }
            Some(_) => (true, Wait::default()),
            None => pending,
        };
    }
    match messages.next() {
        // Seen on an earlier look: the Certificate is what is awaited now.
        Some((tls::hs::SERVER_HELLO, _)) if *app == AppState::TlsAwaitCertificate => {}
        Some((tls::hs::SERVER_HELLO, body)) => {
            let Ok(sh) = tls::parse_server_hello(body) else {
                return (true, Wait::default());
            };
            let tls13 = sh.is_tls13();
            out.push(AppEvent::ServerHello(sh));
            if tls13 {
                return (true, Wait::default());
            }
            *app = AppState::TlsAwaitCertificate;
        }
        Some(_) => return (true, Wait::default()),
        None => return pending,
    }
    match messages.next() {
        Some((tls::hs::CERTIFICATE, body)) => {
            if let Ok(certs) = tls::parse_certificate_list(body)
                && let Some(leaf) = certs.first()
                && let Ok(summary) = der::certificate_summary(leaf)
            {
                out.push(AppEvent::Certificate {
                    chain_len: certs.len(),
                    leaf: summary,
                });
            }
            (true, Wait::default())
        }
        // ServerHelloDone, a key exchange without a certificate, or anything else.
        Some(_) => (true, Wait::default()),
        None => pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{ssh::tests::openssh_client_stream, tls::hs, tls::tests as tls_tests};

    const CAP: usize = 32 * 1024;

    fn segment(seq: u32, flags: u16, payload: &[u8]) -> Tcp<'_> {
        Tcp {
            src_port: 40000,
            dst_port: 443,
            seq,
            ack: 0,
            flags: TcpFlags(flags),
            window: 0,
            urgent: 0,
            options_raw: &[],
            payload,
        }
    }

    /// `bytes` after a SYN, in segments of `size`, looked at as the analyzer does: what the
    /// parsers found (as text) and how many looks it took.
    fn feed(bytes: &[u8], size: usize, from_client: bool) -> (Vec<String>, usize) {
        let mut stream = Stream::default();
        let mut app = AppState::default();
        let mut out = Vec::new();
        let mut looks = 0;
        stream.push(&segment(0, TcpFlags::SYN, &[]), CAP);
        let mut seq = 1u32;
        for chunk in bytes.chunks(size) {
            if stream.push(&segment(seq, TcpFlags::ACK, chunk), CAP) {
                looks += 1;
                analyze(&mut stream, &mut app, from_client, &mut out);
            }
            seq = seq.wrapping_add(chunk.len() as u32);
        }
        (out.iter().map(|e| format!("{e:?}")).collect(), looks)
    }

    fn ssh_hello(lines_before: &[u8]) -> Vec<u8> {
        let mut s = lines_before.to_vec();
        s.extend(openssh_client_stream());
        s
    }

    /// A TLS 1.2 ServerHello (cipher c030, renegotiation_info) then a ServerHelloDone.
    fn server_flight() -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&[0xc0, 0x30, 0]);
        b.extend_from_slice(&[0, 5, 0xff, 0x01, 0, 1, 0]);
        let mut s = tls_tests::records(hs::SERVER_HELLO, &b, 40);
        s.extend(tls_tests::records(hs::SERVER_HELLO_DONE, &[], 40));
        s
    }

    #[test]
    fn any_segmentation_finds_the_same_hellos() {
        let cases = [
            (
                tls_tests::records(hs::CLIENT_HELLO, &tls_tests::chrome_client_hello(), 120),
                true,
            ),
            (server_flight(), false),
            (ssh_hello(b""), true),
            (ssh_hello(b"Welcome\r\nto the host\r\n"), false),
            (
                b"GET /a?b=c HTTP/1.1\r\nHost: decky\r\nUser-Agent: curl/8.0\r\n\r\n".to_vec(),
                true,
            ),
            (b"GET / HTTP/1.0\n\n".to_vec(), true),
        ];
        for (bytes, from_client) in cases {
            let (whole, _) = feed(&bytes, bytes.len(), from_client);
            assert_eq!(whole.len(), 1, "{whole:?}");
            for size in [1, 2, 3, 5, 7, 16, 17, 64, 333] {
                assert_eq!(
                    feed(&bytes, size, from_client).0,
                    whole,
                    "segments of {size}"
                );
            }
        }
    }

    /// The parsers re-read a direction from its first byte, so the looks must stay few however
    /// a peer cuts its bytes: one look per byte cost the square of the stream's length.
    #[test]
    fn one_byte_segments_cost_few_looks() {
        // A 20,000-byte ClientHello in records of one byte each (6 stream bytes a record).
        let big = tls_tests::records(hs::CLIENT_HELLO, &vec![0; 20_000], 1);
        let (_, looks) = feed(&big[..CAP], 1, true);
        assert!(looks < 40, "{looks} looks for a fragmented ClientHello");
        // Complete messages of an unknown type: not a ClientHello first, so nothing follows.
        let junk: Vec<u8> = (0..3000)
            .flat_map(|_| [22, 3, 3, 0, 5, 99, 0, 0, 1, 0x41])
            .collect();
        let (found, looks) = feed(&junk, 1, true);
        assert!(found.is_empty());
        assert!(looks <= DETECT_BYTES, "{looks} looks for records of junk");
        // A banner, then a KEXINIT packet that announces 30,000 bytes.
        let mut ssh = b"SSH-2.0-x\r\n".to_vec();
        ssh.extend_from_slice(&30_000u32.to_be_bytes());
        ssh.resize(CAP, 0);
        let (_, looks) = feed(&ssh, 1, true);
        assert!(looks < 40, "{looks} looks for a long KEXINIT");
        // An HTTP head that does not end.
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        while head.len() < CAP {
            head.extend_from_slice(b"X-Pad: yes\r\n");
        }
        let (found, looks) = feed(&head, 1, true);
        assert_eq!(found.len(), 1, "the head cut at its cap is still reported");
        assert!(looks < 40, "{looks} looks for an endless HTTP head");
    }
}
