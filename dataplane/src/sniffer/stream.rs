//! Bounded in-order reassembly of a stream's first bytes and the protocol sniffing over them.
//!
//! Only the start of each direction matters (hellos, banners, request heads), so a direction
//! keeps at most `cap` bytes and is dropped as soon as its parser has answered. Out-of-order
//! segments are ignored: the retransmission that fills the gap arrives in order later, and a
//! gap that never fills only costs the fingerprint, never memory.

use super::AppEvent;
use crate::{
    decode::{Tcp, TcpFlags},
    fingerprint::{der, http, ssh, tls},
};

/// One direction of a TCP stream.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    buf: Vec<u8>,
    next_seq: Option<u32>,
    /// Nothing more to learn from this direction.
    pub(crate) done: bool,
}

impl Stream {
    /// Append the in-order part of a segment; `true` when new bytes arrived.
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
        let room = cap.saturating_sub(self.buf.len());
        let take = fresh.len().min(room);
        self.buf.extend_from_slice(&fresh[..take]);
        self.next_seq = Some(next.wrapping_add(u32::try_from(take).unwrap_or(0)));
        if self.buf.len() >= cap {
            // Full: the parser gets this last look, then the direction is closed.
            self.done = true;
        }
        take > 0
    }

    /// An SSH banner still waiting for its KEXINIT when the flow ended.
    pub(crate) fn pending_ssh_banner(&self, from_client: bool) -> Option<ssh::SshHello> {
        if self.done || !ssh::looks_like_ssh(&self.buf) {
            return None;
        }
        ssh::parse_stream(&self.buf, !from_client).ok().flatten()
    }

    fn finish(&mut self) {
        self.done = true;
        self.buf = Vec::new();
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

/// Run the parsers over the bytes so far; appends what they found.
pub(crate) fn analyze(
    stream: &mut Stream,
    app: &mut AppState,
    from_client: bool,
    out: &mut Vec<AppEvent>,
) {
    let buf = stream.buf.as_slice();
    let full = stream.done;
    let finished = if tls::looks_like_tls(buf) || *app == AppState::TlsAwaitCertificate {
        tls_step(buf, app, from_client, out)
    } else if ssh::looks_like_ssh(buf) || !from_client {
        // Servers may send lines before their banner (RFC 4253 §4.2); the parser bounds them.
        match ssh::parse_stream(buf, !from_client) {
            Ok(Some(hello)) if hello.kexinit.is_some() || full => {
                out.push(AppEvent::Ssh {
                    client: from_client,
                    hello,
                });
                true
            }
            Ok(_) => false,
            Err(_) => true,
        }
    } else if from_client && http::looks_like_http(buf) {
        match http::parse_request(buf) {
            Some(req) => {
                out.push(AppEvent::Http(req));
                true
            }
            None => buf.len() >= http::MAX_HEAD,
        }
    } else {
        // Something else (or a server's non-SSH banner): nothing to fingerprint.
        true
    };
    if finished || full {
        stream.finish();
    }
}

/// TLS: the ClientHello from a client; ServerHello then (TLS 1.2) Certificate from a server.
fn tls_step(buf: &[u8], app: &mut AppState, from_client: bool, out: &mut Vec<AppEvent>) -> bool {
    let Ok(hs) = tls::handshake_messages(buf) else {
        return true;
    };
    for (ty, body) in &hs.messages {
        match (*ty, from_client, *app) {
            (tls::hs::CLIENT_HELLO, true, _) => {
                if let Ok(ch) = tls::parse_client_hello(body) {
                    out.push(AppEvent::ClientHello(Box::new(ch)));
                }
                return true;
            }
            (tls::hs::SERVER_HELLO, false, AppState::Unknown) => {
                let Ok(sh) = tls::parse_server_hello(body) else {
                    return true;
                };
                let tls13 = sh.is_tls13();
                out.push(AppEvent::ServerHello(sh));
                if tls13 {
                    return true;
                }
                *app = AppState::TlsAwaitCertificate;
            }
            (tls::hs::CERTIFICATE, false, AppState::TlsAwaitCertificate) => {
                if let Ok(certs) = tls::parse_certificate_list(body)
                    && let Some(leaf) = certs.first()
                    && let Ok(summary) = der::certificate_summary(leaf)
                {
                    out.push(AppEvent::Certificate {
                        chain_len: certs.len(),
                        leaf: summary,
                    });
                }
                return true;
            }
            (tls::hs::SERVER_HELLO_DONE, false, _) => return true,
            _ => {}
        }
    }
    hs.ended
}
