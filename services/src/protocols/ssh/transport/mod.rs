//! The SSH transport layer, server side (RFC 4253 and its extensions), sans-IO. It presents
//! itself exactly as Debian 12's OpenSSH 9.2p1 does: same identification, same KEXINIT
//! (lists and order), same EXT_INFO, and the same reaction to malformed input, so scanners and
//! HASSH cannot tell it apart.

mod cipher;
mod groups;
mod hostkey;
mod kex;
mod kexinit;
mod umac;

use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore as _, SeedableRng as _};

pub use hostkey::HostKeys;
pub use kexinit::{Proposal, hassh};

use self::{
    cipher::{Direction, PacketError},
    kex::{DhGroup, HashAlg, KexError, ServerHalf},
    kexinit::{MSG_KEXINIT, Negotiated},
};
use super::wire::{Reader, Writer};

/// What Debian 12 bookworm's sshd says (openssh 1:9.2p1-2+deb12u3).
pub const DEFAULT_BANNER: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";

pub const MSG_DISCONNECT: u8 = 1;
pub const MSG_IGNORE: u8 = 2;
pub const MSG_UNIMPLEMENTED: u8 = 3;
pub const MSG_DEBUG: u8 = 4;
pub const MSG_SERVICE_REQUEST: u8 = 5;
pub const MSG_SERVICE_ACCEPT: u8 = 6;
pub const MSG_EXT_INFO: u8 = 7;
pub const MSG_NEWKEYS: u8 = 21;
/// Key exchanges one connection may run by default, the first included.
pub const MAX_KEY_EXCHANGES: u32 = 16;
/// SSH_MSG_USERAUTH_SUCCESS: delayed compression starts after it.
const MSG_USERAUTH_SUCCESS: u8 = 52;

pub const DISCONNECT_PROTOCOL_ERROR: u32 = 2;
pub const DISCONNECT_KEY_EXCHANGE_FAILED: u32 = 3;
pub const DISCONNECT_SERVICE_NOT_AVAILABLE: u32 = 7;
pub const DISCONNECT_BY_APPLICATION: u32 = 11;

/// OpenSSH's SSH_MAX_BANNER_LEN.
const MAX_BANNER_LINE: usize = 8192;
/// Input is taken in slices of this size so the buffer never holds more than one packet
/// plus one slice.
const INPUT_SLICE: usize = 64 * 1024;
/// Upper-layer payloads held back during a key exchange; beyond this the oldest are kept and
/// the rest dropped (our own upper layer never gets near it).
const MAX_QUEUED: usize = 4 * 1024 * 1024;

/// What OpenSSH 9.2's `kex_send_ext_info` announces: every plain signature algorithm in the
/// order of sshkey.c's table (checked against Debian 12's sshd; older releases ordered RSA
/// second).
const SERVER_SIG_ALGS: &str = "ssh-ed25519,sk-ssh-ed25519@openssh.com,ecdsa-sha2-nistp256,\
ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ecdsa-sha2-nistp256@openssh.com,\
webauthn-sk-ecdsa-sha2-nistp256@openssh.com,ssh-dss,ssh-rsa,rsa-sha2-256,rsa-sha2-512";

/// Why the transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("host key: {0}")]
    HostKey(String),
    #[error(
        "invalid server identification {0:?}: must start with SSH-2.0-, be printable and at most 253 bytes"
    )]
    Banner(String),
}

/// Everything connections of one persona share: identification, host keys, proposal.
/// Building it generates an RSA key, so make one per process and share it by `Arc`.
#[derive(Debug)]
pub struct TransportConfig {
    banner: String,
    host_keys: HostKeys,
    proposal: Proposal,
    /// Key exchanges one connection may run, the first included.
    max_key_exchanges: u32,
}

impl TransportConfig {
    /// Host keys derived deterministically from `seed` (same persona => same keys across restarts).
    pub fn new(banner: &str, seed: &[u8]) -> Result<Self, TransportError> {
        let printable = banner.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !banner.starts_with("SSH-2.0-") || !printable || banner.len() > 253 {
            return Err(TransportError::Banner(banner.to_owned()));
        }
        Ok(Self {
            banner: banner.to_owned(),
            host_keys: HostKeys::from_seed(seed)?,
            proposal: Proposal::server_default(),
            max_key_exchanges: MAX_KEY_EXCHANGES,
        })
    }

    /// Allow `n` key exchanges per connection instead of [`MAX_KEY_EXCHANGES`].
    #[must_use]
    pub fn with_max_key_exchanges(mut self, n: u32) -> Self {
        self.max_key_exchanges = n;
        self
    }

    pub fn banner(&self) -> &str {
        &self.banner
    }

    pub fn host_keys(&self) -> &HostKeys {
        &self.host_keys
    }

    /// hasshServer of the proposal this server sends.
    pub fn hassh_server(&self) -> String {
        hassh(&self.proposal.hassh_algorithms(true))
    }
}

/// What the transport reports to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// The client's identification line (without CR LF).
    ClientVersion(String),
    /// Client KEXINIT seen: HASSH (md5 hex of "kex;enc_c2s;mac_c2s;comp_c2s") and the raw string.
    ClientKexInit {
        hassh: String,
        hassh_algorithms: String,
    },
    /// Algorithms negotiated (first kex only).
    Negotiated {
        kex: String,
        host_key: String,
        cipher: String,
        mac: String,
    },
    /// The peer broke the protocol (bad MAC, bad packet, unsupported algorithms...) or
    /// disconnected: the transport has already queued a DISCONNECT where OpenSSH would; the
    /// session must close.
    Failed(String),
}

/// Key material for the client-to-server direction, installed when the client's NEWKEYS
/// arrives.
struct RxKeys {
    cipher: String,
    key: Vec<u8>,
    iv: Vec<u8>,
    mac: Option<(String, Vec<u8>)>,
}

enum Stage {
    /// Both KEXINITs exchanged; waiting for the client's kex-specific first message.
    Init,
    /// RFC 4419: group sent, waiting for KEX_DH_GEX_INIT.
    GexInit { prefix: Vec<u8>, group: DhGroup },
    /// Our NEWKEYS is out; the client's completes the exchange.
    NewKeys(RxKeys),
}

struct Kex {
    neg: Negotiated,
    client_kexinit: Vec<u8>,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Version,
    Packets,
    Closed,
}

/// zlib@openssh.com streams, active once authentication succeeded. Like sshd, each NEWKEYS
/// starts fresh streams for its direction.
struct Compression {
    authenticated: bool,
    /// Compression negotiated for the keys in effect, per direction.
    tx_alg: String,
    rx_alg: String,
    tx: Option<flate2::Compress>,
    rx: Option<flate2::Decompress>,
}

impl Compression {
    fn restart_tx(&mut self) {
        self.tx = (self.authenticated && self.tx_alg == "zlib@openssh.com")
            .then(|| flate2::Compress::new(flate2::Compression::new(6), true));
    }

    fn restart_rx(&mut self) {
        self.rx = (self.authenticated && self.rx_alg == "zlib@openssh.com")
            .then(|| flate2::Decompress::new(true));
    }
}

/// One connection's transport state.
pub struct Transport {
    config: Arc<TransportConfig>,
    rng: ChaCha20Rng,
    phase: Phase,
    input: Vec<u8>,
    client_version: Vec<u8>,
    /// Our KEXINIT of the exchange in progress, if we sent one.
    server_kexinit: Option<Vec<u8>>,
    kex: Option<Kex>,
    /// Algorithms of the last completed exchange (for compression).
    current: Option<Negotiated>,
    rx: Direction,
    tx: Direction,
    session_id: Option<Vec<u8>>,
    strict: bool,
    client_ext_info: bool,
    ignore_next_kex_packet: bool,
    /// Key exchanges the client started on this connection (bounded by the configuration).
    key_exchanges: u32,
    queued: Vec<Vec<u8>>,
    queued_bytes: usize,
    compression: Compression,
    service_accepted: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("phase", &self.phase)
            .field("rx", &self.rx)
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub fn new(config: Arc<TransportConfig>) -> Self {
        let seed: [u8; 32] = rand::random();
        Self {
            config,
            rng: ChaCha20Rng::from_seed(seed),
            phase: Phase::Version,
            input: Vec::new(),
            client_version: Vec::new(),
            server_kexinit: None,
            kex: None,
            current: None,
            rx: Direction::plain(),
            tx: Direction::plain(),
            session_id: None,
            strict: false,
            client_ext_info: false,
            ignore_next_kex_packet: false,
            key_exchanges: 0,
            queued: Vec::new(),
            queued_bytes: 0,
            service_accepted: false,
            compression: Compression {
                authenticated: false,
                tx_alg: String::new(),
                rx_alg: String::new(),
                tx: None,
                rx: None,
            },
        }
    }

    /// Server identification line. sshd sends its KEXINIT only once the client's
    /// identification arrived, and so does this transport.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.config.banner.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// Exchange hash of the first kex (needed to verify publickey signatures); None before.
    pub fn session_id(&self) -> Option<&[u8]> {
        self.session_id.as_deref()
    }

    /// Whether the transport gave up (after a DISCONNECT or a fatal error).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Queue a DISCONNECT with reason code and description.
    pub fn disconnect(&mut self, reason: u32, description: &str, out: &mut Vec<u8>) {
        if self.phase == Phase::Closed {
            return;
        }
        let mut w = Writer::message(MSG_DISCONNECT);
        w.u32(reason).string(description.as_bytes()).string(b"");
        let payload = w.finish();
        self.write_packet(&payload, out);
        self.phase = Phase::Closed;
    }

    /// Frame + encrypt one upper-layer payload (incl. msg byte) into `out`. Payloads given
    /// during a key exchange are queued and sent after our NEWKEYS.
    pub fn send(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        if self.phase == Phase::Closed || payload.is_empty() {
            return;
        }
        if self.kex_blocks_output() {
            if self.queued_bytes + payload.len() <= MAX_QUEUED {
                self.queued_bytes += payload.len();
                self.queued.push(payload.to_vec());
            }
            return;
        }
        self.write_packet(payload, out);
        if payload[0] == MSG_USERAUTH_SUCCESS {
            self.start_compression();
        }
    }

    /// Raw bytes from the peer. Transport-layer messages are handled inside; decrypted
    /// payloads for the layers above (message numbers >= 50) are appended to `upper`.
    pub fn receive(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        upper: &mut Vec<Vec<u8>>,
        events: &mut Vec<TransportEvent>,
    ) {
        for slice in data.chunks(INPUT_SLICE) {
            if self.phase == Phase::Closed {
                return;
            }
            self.input.extend_from_slice(slice);
            self.process(out, upper, events);
        }
    }

    fn process(
        &mut self,
        out: &mut Vec<u8>,
        upper: &mut Vec<Vec<u8>>,
        events: &mut Vec<TransportEvent>,
    ) {
        // Bytes the packets read so far took, cut from the buffer once at the end.
        let mut at = 0;
        loop {
            match self.phase {
                Phase::Closed => {
                    self.input.clear();
                    return;
                }
                Phase::Version => {
                    if !self.read_version(out, events) {
                        break;
                    }
                }
                Phase::Packets => {
                    let seq = self.rx.seq;
                    let Some(rest) = self.input.get(at..) else {
                        break;
                    };
                    match self.rx.open(rest) {
                        Ok(None) => break,
                        Ok(Some((payload, used))) => {
                            at += used;
                            self.packet(seq, payload, out, upper, events);
                        }
                        Err(e) => {
                            let reply = match &e {
                                // sshd queues "Packet corrupt" for a bad length but dies
                                // before flushing it: the peer sees a bare close.
                                PacketError::BadPadding(_) => Some(e.to_string()),
                                PacketError::BadLength(_)
                                | PacketError::BadMac
                                | PacketError::BlockAlign { .. } => None,
                            };
                            self.fail(&e.to_string(), reply.as_deref(), out, events);
                        }
                    }
                }
            }
        }
        self.input.drain(..at.min(self.input.len()));
    }

    /// One packet's payload: decompressed and dispatched.
    fn packet(
        &mut self,
        seq: u32,
        payload: Vec<u8>,
        out: &mut Vec<u8>,
        upper: &mut Vec<Vec<u8>>,
        events: &mut Vec<TransportEvent>,
    ) {
        match self.decompress(payload) {
            Some(payload) => self.dispatch(seq, &payload, out, upper, events),
            None => self.fail("decompression failed", None, out, events),
        }
    }

    /// Gives up on the connection, sending a DISCONNECT only where sshd sends one.
    fn fail(
        &mut self,
        why: &str,
        disconnect: Option<&str>,
        out: &mut Vec<u8>,
        events: &mut Vec<TransportEvent>,
    ) {
        if let Some(text) = disconnect {
            self.disconnect(DISCONNECT_PROTOCOL_ERROR, text, out);
        }
        self.phase = Phase::Closed;
        self.input.clear();
        events.push(TransportEvent::Failed(why.to_owned()));
    }

    /// Reads the client identification the way sshd's `kex_exchange_identification` does.
    /// Returns whether to continue processing.
    fn read_version(&mut self, out: &mut Vec<u8>, events: &mut Vec<TransportEvent>) -> bool {
        let Some(nl) = self.input.iter().position(|&b| b == b'\n') else {
            if self.input.len() > MAX_BANNER_LINE || self.input.contains(&0) {
                self.refuse_version("banner line too long or invalid", out, events);
            }
            return false;
        };
        let raw: Vec<u8> = self.input.drain(..=nl).collect();
        let mut line = &raw[..raw.len() - 1];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        // sshd refuses NUL and a CR that is not right before the LF.
        if line.len() > MAX_BANNER_LINE || line.iter().any(|&b| b == 0 || b == b'\r') {
            self.refuse_version("banner line contains invalid characters", out, events);
            return false;
        }
        // Unlike a client, sshd accepts no other lines before the identification.
        let text = String::from_utf8_lossy(line).into_owned();
        let Some((major, minor)) = parse_version(&text) else {
            self.refuse_version(
                &format!("Bad remote protocol version identification: '{text}'"),
                out,
                events,
            );
            return false;
        };
        if !(major == 2 || (major == 1 && minor == 99)) {
            out.extend_from_slice(b"Protocol major versions differ.\r\n");
            self.phase = Phase::Closed;
            events.push(TransportEvent::ClientVersion(text));
            events.push(TransportEvent::Failed(format!(
                "Protocol major versions differ: 2 vs. {major}"
            )));
            return false;
        }
        self.client_version = line.to_vec();
        events.push(TransportEvent::ClientVersion(text));
        self.phase = Phase::Packets;
        self.send_kexinit(out);
        true
    }

    fn refuse_version(&mut self, why: &str, out: &mut Vec<u8>, events: &mut Vec<TransportEvent>) {
        out.extend_from_slice(b"Invalid SSH identification string.\r\n");
        self.phase = Phase::Closed;
        self.input.clear();
        events.push(TransportEvent::Failed(why.to_owned()));
    }

    fn send_kexinit(&mut self, out: &mut Vec<u8>) {
        let mut cookie = [0u8; 16];
        self.rng.fill_bytes(&mut cookie);
        let payload = self.config.proposal.encode(&cookie);
        self.write_packet(&payload, out);
        self.server_kexinit = Some(payload);
    }

    /// Whether upper-layer output must wait: before the first exchange completes, and during
    /// a re-exchange until our NEWKEYS is out.
    fn kex_blocks_output(&self) -> bool {
        if self.session_id.is_none() && self.kex.is_none() {
            return true;
        }
        match &self.kex {
            Some(k) => !matches!(k.stage, Stage::NewKeys(_)),
            None => self.server_kexinit.is_some(),
        }
    }

    /// True until the client's first NEWKEYS: strict kex's "initial" window.
    fn initial(&self) -> bool {
        self.current.is_none()
    }

    fn write_packet(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let compressed;
        let payload = match self.compression.tx.as_mut() {
            Some(z) => {
                compressed = compress(z, payload);
                &compressed[..]
            }
            None => payload,
        };
        let packet = self.tx.seal(payload, &mut self.rng);
        out.extend_from_slice(&packet);
    }

    fn dispatch(
        &mut self,
        seq: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
        upper: &mut Vec<Vec<u8>>,
        events: &mut Vec<TransportEvent>,
    ) {
        let Some(&msg) = payload.first() else {
            // An empty payload has no message number; sshd drops the connection.
            self.fail("empty packet", None, out, events);
            return;
        };
        // SSH2_MSG_MIN..SSH2_MSG_LOCAL_MIN: sshd refuses anything else outright.
        if msg == 0 || msg >= 192 {
            let text = format!("Invalid ssh2 packet type: {msg}");
            self.fail(&text, Some(&text), out, events);
            return;
        }
        let strict_initial = self.strict && self.initial();
        match msg {
            MSG_DISCONNECT => {
                let mut r = Reader::new(&payload[1..]);
                let reason = r.u32().unwrap_or(0);
                let text = r.string().map(String::from_utf8_lossy).unwrap_or_default();
                self.phase = Phase::Closed;
                events.push(TransportEvent::Failed(format!(
                    "Received disconnect: {reason}: {text}"
                )));
            }
            MSG_IGNORE | MSG_DEBUG | MSG_UNIMPLEMENTED if !strict_initial => {}
            MSG_KEXINIT => self.on_kexinit(seq, payload, out, events),
            MSG_NEWKEYS => self.on_newkeys(seq, out, events),
            30..=49 => self.on_kex_message(seq, payload, out, events),
            // Before the first kex completes sshd has no handler at all for these and drops
            // the connection (its DISCONNECT is never flushed).
            50.. if self.initial() => {
                let text = format!("protocol error: rcvd type {msg}");
                self.fail(&text, None, out, events);
            }
            _ if self.kex.is_some() && self.initial() => self.protocol_error(seq, msg, out, events),
            _ if self.initial() => self.protocol_error(seq, msg, out, events),
            MSG_SERVICE_REQUEST if !self.service_accepted => {
                self.on_service_request(payload, out, events);
            }
            MSG_EXT_INFO => {}
            // sshd only listens for userauth once ssh-userauth was accepted.
            50.. if self.service_accepted => upper.push(payload.to_vec()),
            _ => self.protocol_error(seq, msg, out, events),
        }
    }

    /// sshd's `kex_protocol_error`: UNIMPLEMENTED, or DISCONNECT in strict initial kex.
    fn protocol_error(
        &mut self,
        seq: u32,
        msg: u8,
        out: &mut Vec<u8>,
        events: &mut Vec<TransportEvent>,
    ) {
        if self.strict && self.initial() {
            let text = format!("strict KEX violation: unexpected packet type {msg} (seqnr {seq})");
            self.fail(&text, Some(&text), out, events);
            return;
        }
        let mut w = Writer::message(MSG_UNIMPLEMENTED);
        w.u32(seq);
        let payload = w.finish();
        self.write_packet(&payload, out);
    }

    fn on_service_request(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<TransportEvent>,
    ) {
        let mut r = Reader::new(&payload[1..]);
        let service = r.string().unwrap_or_default();
        if service == b"ssh-userauth" {
            let mut w = Writer::message(MSG_SERVICE_ACCEPT);
            w.string(service);
            let reply = w.finish();
            self.send(&reply, out);
            self.service_accepted = true;
        } else {
            let text = format!("bad service request {}", String::from_utf8_lossy(service));
            self.fail(&text, Some(&text), out, events);
        }
    }

    /// Re-keying is the client's to ask for (OpenSSH does so after a gigabyte or an hour); a
    /// client asking again and again makes the server do an 8192-bit exponentiation each time.
    fn on_kexinit(
        &mut self,
        seq: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<TransportEvent>,
    ) {
        if self.kex.is_some() {
            self.protocol_error(seq, MSG_KEXINIT, out, events);
            return;
        }
        self.key_exchanges += 1;
        if self.key_exchanges > self.config.max_key_exchanges {
            let text = "too many key exchanges";
            self.fail(text, Some(text), out, events);
            return;
        }
        let Some(client) = Proposal::decode(payload) else {
            // sshd: "kex_input_kexinit: ... invalid format" and drops the connection.
            self.fail("malformed KEXINIT", None, out, events);
            return;
        };
        let first = self.initial();
        if first {
            let algorithms = client.hassh_algorithms(false);
            events.push(TransportEvent::ClientKexInit {
                hassh: hassh(&algorithms),
                hassh_algorithms: algorithms,
            });
        }
        if self.server_kexinit.is_none() {
            self.send_kexinit(out);
        }
        let neg = match kexinit::negotiate(&client, &self.config.proposal) {
            Ok(neg) => neg,
            Err(e) => {
                // sshd logs "Unable to negotiate ..." and closes without a DISCONNECT.
                self.fail(&format!("Unable to negotiate: {e}"), None, out, events);
                return;
            }
        };
        if first {
            self.strict = neg.client_strict;
            self.client_ext_info = neg.client_ext_info;
            if self.strict && seq != 0 {
                let text = "strict KEX violation: KEXINIT was not the first packet";
                self.fail(text, Some(text), out, events);
                return;
            }
            events.push(TransportEvent::Negotiated {
                kex: neg.kex.clone(),
                host_key: neg.host_key.clone(),
                cipher: neg.cipher_c2s.clone(),
                mac: neg
                    .mac_c2s
                    .clone()
                    .unwrap_or_else(|| "<implicit>".to_owned()),
            });
        }
        if let Some(missing) = unimplemented(&neg) {
            // Advertised (to look like sshd) but not available here: the client sees the
            // connection close, as with a server that cannot go on.
            self.fail(
                &format!("negotiated {missing}, which is not implemented"),
                None,
                out,
                events,
            );
            return;
        }
        self.ignore_next_kex_packet = neg.ignore_guess;
        self.kex = Some(Kex {
            neg,
            client_kexinit: payload.to_vec(),
            stage: Stage::Init,
        });
    }

    fn on_kex_message(
        &mut self,
        seq: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<TransportEvent>,
    ) {
        let msg = payload[0];
        let Some(mut kex) = self.kex.take() else {
            self.protocol_error(seq, msg, out, events);
            return;
        };
        if self.ignore_next_kex_packet && matches!(kex.stage, Stage::Init) {
            self.ignore_next_kex_packet = false;
            self.kex = Some(kex);
            return;
        }
        let gex = kex.neg.kex == "diffie-hellman-group-exchange-sha256";
        let mut r = Reader::new(&payload[1..]);
        let result = match (&kex.stage, msg) {
            (Stage::Init, kex::MSG_KEX_DH_GEX_REQUEST) if gex => {
                let request = (r.u32(), r.u32(), r.u32());
                let (Some(min), Some(n), Some(max)) = request else {
                    self.kex = Some(kex);
                    self.fail("malformed KEX_DH_GEX_REQUEST", None, out, events);
                    return;
                };
                match DhGroup::for_request(min, n, max) {
                    Ok(group) => {
                        let p = group.p.to_bytes_be();
                        let g = group.g.to_bytes_be();
                        let mut w = Writer::message(kex::MSG_KEX_DH_GEX_GROUP);
                        w.mpint(&p).mpint(&g);
                        let reply = w.finish();
                        self.write_packet(&reply, out);
                        let mut prefix = Writer::new();
                        prefix.u32(min).u32(n).u32(max).mpint(&p).mpint(&g);
                        kex.stage = Stage::GexInit {
                            prefix: prefix.finish(),
                            group,
                        };
                        self.kex = Some(kex);
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
            (Stage::Init, kex::MSG_KEXDH_INIT) if !gex => {
                if let Some(group) = DhGroup::named(&kex.neg.kex) {
                    match r.mpint() {
                        Some(e) => group
                            .exchange(e, &mut self.rng)
                            .map(|(f, k)| kex::dh_half(&[], e, &f, &k)),
                        None => Err(KexError::Malformed("KEXDH_INIT")),
                    }
                } else {
                    match r.string() {
                        Some(q) => kex::ecdh_like(&kex.neg.kex, q, &mut self.rng),
                        None => Err(KexError::Malformed("KEX_ECDH_INIT")),
                    }
                }
            }
            (Stage::GexInit { prefix, group }, kex::MSG_KEX_DH_GEX_INIT) => match r.mpint() {
                Some(e) => group
                    .exchange(e, &mut self.rng)
                    .map(|(f, k)| kex::dh_half(prefix, e, &f, &k)),
                None => Err(KexError::Malformed("KEX_DH_GEX_INIT")),
            },
            _ => {
                self.kex = Some(kex);
                self.protocol_error(seq, msg, out, events);
                return;
            }
        };
        match result {
            Ok(half) => {
                let reply_msg = if gex {
                    kex::MSG_KEX_DH_GEX_REPLY
                } else {
                    kex::MSG_KEXDH_REPLY
                };
                if let Err(e) = self.finish_kex(&mut kex, &half, reply_msg, out) {
                    self.fail(&e, None, out, events);
                    return;
                }
                self.kex = Some(kex);
            }
            Err(e) => self.fail(&e.to_string(), None, out, events),
        }
    }

    /// Signs the exchange, sends the reply, NEWKEYS (and EXT_INFO after the first), switches
    /// our output keys and flushes what the upper layer queued meanwhile.
    fn finish_kex(
        &mut self,
        kex: &mut Kex,
        half: &ServerHalf,
        reply_msg: u8,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let neg = &kex.neg;
        let alg = HashAlg::of(&neg.kex).ok_or_else(|| format!("no hash for {}", neg.kex))?;
        let keys = &self.config.host_keys;
        let k_s = keys
            .public_blob(&neg.host_key)
            .ok_or_else(|| format!("no host key for {}", neg.host_key))?;
        let i_s = self.server_kexinit.clone().unwrap_or_default();
        let h = kex::exchange_hash(
            alg,
            &self.client_version,
            self.config.banner.as_bytes(),
            &kex.client_kexinit,
            &i_s,
            &k_s,
            half,
        );
        let signature = keys.sign(&neg.host_key, &h).map_err(|e| e.to_string())?;
        let session_id = self.session_id.get_or_insert_with(|| h.clone()).clone();

        let mut w = Writer::message(reply_msg);
        w.string(&k_s).raw(&half.reply_value).string(&signature);
        let reply = w.finish();
        self.write_packet(&reply, out);
        self.write_packet(&[MSG_NEWKEYS], out);

        let derive =
            |letter: u8, len: usize| kex::derive(alg, &half.shared, &h, letter, &session_id, len);
        let (c2s_key_len, c2s_iv_len) = cipher::cipher_sizes(&neg.cipher_c2s).ok_or("cipher")?;
        let (s2c_key_len, s2c_iv_len) = cipher::cipher_sizes(&neg.cipher_s2c).ok_or("cipher")?;
        let rx = RxKeys {
            cipher: neg.cipher_c2s.clone(),
            iv: derive(b'A', c2s_iv_len),
            key: derive(b'C', c2s_key_len),
            mac: match &neg.mac_c2s {
                Some(m) => Some((
                    m.clone(),
                    derive(b'E', cipher::mac_key_len(m).ok_or("mac")?),
                )),
                None => None,
            },
        };
        let s2c_mac = match &neg.mac_s2c {
            Some(m) => Some((
                m.clone(),
                derive(b'F', cipher::mac_key_len(m).ok_or("mac")?),
            )),
            None => None,
        };
        let tx_seq = if self.strict { 0 } else { self.tx.seq };
        self.tx = Direction::keyed(
            &neg.cipher_s2c,
            &derive(b'D', s2c_key_len),
            &derive(b'B', s2c_iv_len),
            s2c_mac.as_ref().map(|(n, k)| (n.as_str(), k.as_slice())),
            tx_seq,
        )
        .ok_or("cannot key the output cipher")?;
        self.compression.tx_alg.clone_from(&neg.comp_s2c);
        self.compression.restart_tx();
        kex.stage = Stage::NewKeys(rx);

        if self.current.is_none() && self.client_ext_info {
            let mut w = Writer::message(MSG_EXT_INFO);
            w.u32(2)
                .string(b"server-sig-algs")
                .string(SERVER_SIG_ALGS.as_bytes())
                .string(b"publickey-hostbound@openssh.com")
                .string(b"0");
            let ext = w.finish();
            self.write_packet(&ext, out);
        }
        self.server_kexinit = None;
        for payload in std::mem::take(&mut self.queued) {
            self.write_packet(&payload, out);
            if payload.first() == Some(&MSG_USERAUTH_SUCCESS) {
                self.start_compression();
            }
        }
        self.queued_bytes = 0;
        Ok(())
    }

    fn on_newkeys(&mut self, seq: u32, out: &mut Vec<u8>, events: &mut Vec<TransportEvent>) {
        let Some(kex) = self.kex.take() else {
            self.protocol_error(seq, MSG_NEWKEYS, out, events);
            return;
        };
        let Stage::NewKeys(keys) = kex.stage else {
            self.kex = Some(kex);
            self.protocol_error(seq, MSG_NEWKEYS, out, events);
            return;
        };
        let rx_seq = if self.strict { 0 } else { self.rx.seq };
        let mac = keys.mac.as_ref().map(|(n, k)| (n.as_str(), k.as_slice()));
        match Direction::keyed(&keys.cipher, &keys.key, &keys.iv, mac, rx_seq) {
            Some(rx) => self.rx = rx,
            None => {
                self.fail("cannot key the input cipher", None, out, events);
                return;
            }
        }
        self.compression.rx_alg.clone_from(&kex.neg.comp_c2s);
        self.compression.restart_rx();
        self.current = Some(kex.neg);
    }

    /// Delayed compression (zlib@openssh.com) starts in both directions right after
    /// USERAUTH_SUCCESS.
    fn start_compression(&mut self) {
        if !self.compression.authenticated {
            self.compression.authenticated = true;
            self.compression.restart_tx();
            self.compression.restart_rx();
        }
    }

    fn decompress(&mut self, payload: Vec<u8>) -> Option<Vec<u8>> {
        match self.compression.rx.as_mut() {
            None => Some(payload),
            Some(z) => decompress(z, &payload),
        }
    }
}

/// The first negotiated algorithm this build cannot run, if any.
fn unimplemented(neg: &Negotiated) -> Option<String> {
    if !kex::KEX.contains(&neg.kex.as_str()) {
        return Some(neg.kex.clone());
    }
    for mac in [&neg.mac_c2s, &neg.mac_s2c].into_iter().flatten() {
        if !cipher::MACS.contains(&mac.as_str()) {
            return Some(mac.clone());
        }
    }
    for c in [&neg.cipher_c2s, &neg.cipher_s2c] {
        if !cipher::CIPHERS.contains(&c.as_str()) {
            return Some(c.clone());
        }
    }
    None
}

/// "SSH-<major>.<minor>-<softwareversion>", as sshd's sscanf reads it.
fn parse_version(line: &str) -> Option<(u32, u32)> {
    let rest = line.strip_prefix("SSH-")?;
    let (proto, software) = rest.split_once('-')?;
    let (major, minor) = proto.split_once('.')?;
    if software.is_empty() {
        return None;
    }
    Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
}

/// Largest payload accepted after decompression (sshd bounds it by its packet limit).
const MAX_DECOMPRESSED: usize = cipher::MAX_PACKET;

fn compress(z: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut consumed = 0;
    loop {
        out.reserve(data.len() + 64);
        let before_in = z.total_in();
        let status = z.compress_vec(&data[consumed..], &mut out, flate2::FlushCompress::Partial);
        consumed += usize::try_from(z.total_in() - before_in).unwrap_or(0);
        if status.is_err() || (consumed >= data.len() && out.len() < out.capacity()) {
            return out;
        }
    }
}

fn decompress(z: &mut flate2::Decompress, data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 4 + 64);
    let mut consumed = 0;
    loop {
        let before_in = z.total_in();
        let before_out = out.len();
        z.decompress_vec(&data[consumed..], &mut out, flate2::FlushDecompress::Sync)
            .ok()?;
        consumed += usize::try_from(z.total_in() - before_in).ok()?;
        if out.len() > MAX_DECOMPRESSED {
            return None;
        }
        if consumed >= data.len() && out.len() < out.capacity() {
            return Some(out);
        }
        if out.len() == before_out && z.total_in() == before_in && out.len() < out.capacity() {
            return None;
        }
        out.reserve(data.len() * 2 + 64);
    }
}

#[cfg(test)]
mod tests;
