//! mysql: the connection phase of a MySQL server (protocol v10), up to "Access denied".
//!
//! Each connection gets a fresh 20-byte scramble and the next connection id; the greeting
//! carries the capabilities, character set and default auth plugin of the configured
//! version (5.7: `mysql_native_password`, 8.x: `caching_sha2_password`) on a server without
//! TLS. The client's handshake response is recorded whole (user, database, connection
//! attributes, plugin, and the scrambled password with the scramble, ready for offline
//! cracking), then answered with MySQL's own ERR 1045.

mod wire;

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use decnet_store::Severity;
use rand::{Rng, SeedableRng, rngs::StdRng};

use self::wire::{CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41, Parsed, Response};
use super::mailbox::seed_of;
use crate::{
    persona::Persona,
    runtime::Protocol,
    session::{ConnInfo, Session, Step},
};

/// Largest client packet read during the handshake (attributes included).
const MAX_PACKET: usize = 64 * 1024;
const NATIVE: &str = "mysql_native_password";
const CACHING_SHA2: &str = "caching_sha2_password";
const STATUS_AUTOCOMMIT: u16 = 0x0002;
/// Bytes of a user name or attribute value kept in events.
const LOGGED: usize = 256;

/// The service as configured for one host.
#[derive(Debug)]
pub struct Mysql {
    version: String,
    next_id: Arc<AtomicU32>,
}

impl Mysql {
    pub fn from_persona(p: &Persona) -> Self {
        let mut rng = StdRng::seed_from_u64(seed_of(p.hostname()) ^ 0x6d79_7371);
        Self {
            version: p.get_or("MYSQL_VERSION", "5.7.38-log").to_owned(),
            // A server that has been up a while has served some connections already.
            next_id: Arc::new(AtomicU32::new(rng.random_range(40..9000))),
        }
    }

    fn session_with(&self, peer: std::net::IpAddr, scramble: [u8; 20]) -> MysqlSession {
        // Other clients (cron jobs, the application) take ids in between.
        let step = 1 + u32::from(scramble[0].is_multiple_of(3));
        let id = self.next_id.fetch_add(step, Ordering::Relaxed);
        MysqlSession {
            version: self.version.clone(),
            conn_id: id,
            scramble,
            peer: peer.to_string(),
            buf: Vec::new(),
            state: State::Greeted,
        }
    }
}

/// MySQL's salt: printable-ish 7-bit bytes, never NUL or `$`.
fn new_scramble(rng: &mut impl Rng) -> [u8; 20] {
    let mut s = [0u8; 20];
    for b in &mut s {
        *b = rng.random_range(1..128u8);
        if *b == b'$' {
            *b += 1;
        }
    }
    s
}

impl Protocol for Mysql {
    fn slug(&self) -> &'static str {
        "mysql"
    }

    fn default_ports(&self) -> &'static [u16] {
        &[3306]
    }

    fn session(&self, conn: &ConnInfo) -> Box<dyn Session> {
        let scramble = new_scramble(&mut StdRng::from_os_rng());
        Box::new(self.session_with(conn.peer.ip(), scramble))
    }
}

#[derive(Debug)]
enum State {
    Greeted,
    /// An AuthSwitchRequest was sent; the client's next packet is its auth response.
    Switched {
        response: Response,
    },
    Done,
}

/// One client connection.
#[derive(Debug)]
pub struct MysqlSession {
    version: String,
    conn_id: u32,
    scramble: [u8; 20],
    peer: String,
    buf: Vec<u8>,
    state: State,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn clip(s: &str) -> String {
    s.chars().take(LOGGED).collect()
}

impl MysqlSession {
    fn is_8x(&self) -> bool {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|m| m >= 8)
    }

    fn plugin(&self) -> &'static str {
        if self.is_8x() { CACHING_SHA2 } else { NATIVE }
    }

    fn greeting(&self) -> Vec<u8> {
        // Capabilities of a stock server with TLS off (no CLIENT_SSL).
        let (caps, charset): (u32, u8) = if self.is_8x() {
            (0xdfff_f7ff, 0xff)
        } else {
            (0x81ff_f7ff, 0x08)
        };
        let caps = caps.to_le_bytes();
        let mut p = vec![0x0a];
        p.extend_from_slice(self.version.as_bytes());
        p.push(0);
        p.extend_from_slice(&self.conn_id.to_le_bytes());
        p.extend_from_slice(&self.scramble[..8]);
        p.push(0);
        p.extend_from_slice(&caps[..2]);
        p.push(charset);
        p.extend_from_slice(&STATUS_AUTOCOMMIT.to_le_bytes());
        p.extend_from_slice(&caps[2..]);
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(&self.scramble[8..]);
        p.push(0);
        p.extend_from_slice(self.plugin().as_bytes());
        p.push(0);
        wire::packet(0, &p)
    }

    /// "Bad handshake", as the server sends it for a first packet it cannot use.
    fn bad_handshake(&mut self, seq: u8, caps: u32, why: &str, out: &mut Step) {
        let state = (caps & CLIENT_PROTOCOL_41 != 0).then_some("08S01");
        out.send(&wire::packet(
            seq.wrapping_add(1),
            &wire::err_payload(1043, state, "Bad handshake"),
        ));
        out.event("protocol_error", Severity::Notice, &[("error", why)]);
        out.close();
        self.state = State::Done;
    }

    fn deny(&mut self, r: &Response, plugin: &str, auth: &[u8], seq: u8, out: &mut Step) {
        let attr = |k: &str| {
            r.attrs
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| clip(v))
                .unwrap_or_default()
        };
        let using = if auth.is_empty() { "NO" } else { "YES" };
        let (auth_hex, scramble_hex) = (hex(auth), hex(&self.scramble));
        let hashcat = if plugin == NATIVE && auth.len() == 20 {
            format!("$mysqlna${scramble_hex}*{auth_hex}")
        } else {
            String::new()
        };
        let attrs: Vec<String> = r
            .attrs
            .iter()
            .map(|(k, v)| format!("{}={}", clip(k), clip(v)))
            .collect();
        out.event(
            "auth",
            Severity::Warning,
            &[
                ("username", &clip(&r.username)),
                ("database", &clip(&r.database)),
                ("plugin", plugin),
                ("client_plugin", &clip(&r.plugin)),
                ("auth_response_hex", &auth_hex),
                ("scramble_hex", &scramble_hex),
                ("hashcat", &hashcat),
                ("using_password", using),
                ("status", "failed"),
                ("client_name", &attr("_client_name")),
                ("client_version", &attr("_client_version")),
                ("os", &attr("_os")),
                ("platform", &attr("_platform")),
                ("program_name", &attr("program_name")),
                ("client_pid", &attr("_pid")),
                ("attrs", &clip(&attrs.join("; "))),
                ("capabilities", &format!("{:08x}", r.capabilities)),
                ("connection_id", &self.conn_id.to_string()),
            ],
        );
        let user: String = r.username.chars().take(96).collect();
        let message = format!(
            "Access denied for user '{user}'@'{}' (using password: {using})",
            self.peer
        );
        out.send(&wire::packet(
            seq.wrapping_add(1),
            &wire::err_payload(1045, Some("28000"), &message),
        ));
        out.close();
        self.state = State::Done;
    }

    fn packet(&mut self, seq: u8, payload: &[u8], out: &mut Step) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Greeted => match wire::parse_response(payload) {
                Parsed::Invalid(caps) => self.bad_handshake(seq, caps, "bad handshake", out),
                Parsed::SslRequest(caps) => self.bad_handshake(seq, caps, "ssl request", out),
                Parsed::Response(r) => {
                    let ours = self.plugin();
                    if r.capabilities & CLIENT_PLUGIN_AUTH != 0
                        && !r.plugin.is_empty()
                        && r.plugin != ours
                    {
                        // Ask for a response computed with our plugin, as a server does when
                        // the client guessed another one.
                        let mut p = vec![0xfe];
                        p.extend_from_slice(ours.as_bytes());
                        p.push(0);
                        p.extend_from_slice(&self.scramble);
                        p.push(0);
                        out.send(&wire::packet(seq.wrapping_add(1), &p));
                        self.state = State::Switched { response: r };
                    } else {
                        let auth = r.auth.clone();
                        self.deny(&r, ours, &auth, seq, out);
                    }
                }
            },
            State::Switched { response } => {
                let ours = self.plugin();
                self.deny(&response, ours, payload, seq, out);
            }
            State::Done => {}
        }
    }
}

impl Session for MysqlSession {
    fn start(&mut self, step: &mut Step) {
        step.send(&self.greeting());
    }

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        if matches!(self.state, State::Done) {
            return;
        }
        self.buf.extend_from_slice(data);
        loop {
            match wire::next_packet(&self.buf, MAX_PACKET) {
                Ok(None) => break,
                Err(()) => {
                    // Not a packet at all (an HTTP request, a line protocol's probe).
                    self.buf.clear();
                    self.bad_handshake(0, 0, "packet too large", step);
                }
                Ok(Some(p)) => {
                    let (seq, payload, used) = (p.seq, p.payload.to_vec(), p.used);
                    self.buf.drain(..used);
                    self.packet(seq, &payload, step);
                }
            }
            if matches!(self.state, State::Done) {
                self.buf.clear();
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
