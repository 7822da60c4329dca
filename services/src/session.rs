//! The sans-IO contract every protocol implements.

use std::net::SocketAddr;

use decnet_store::Severity;

/// The connection a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// Something the attacker did, before the runtime stamps it with time, host and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEvent {
    pub kind: String,
    pub severity: Severity,
    pub fields: Vec<(String, String)>,
}

impl ServiceEvent {
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What one step of a session produced: bytes to send, events, and whether to hang up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub out: Vec<u8>,
    pub events: Vec<ServiceEvent>,
    pub close: bool,
}

impl Step {
    pub fn send(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Record an event of `kind` with `fields` in order.
    pub fn event(&mut self, kind: &str, severity: Severity, fields: &[(&str, &str)]) {
        self.events.push(ServiceEvent {
            kind: kind.to_owned(),
            severity,
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
    }

    pub fn close(&mut self) {
        self.close = true;
    }

    /// Take what this step produced, leaving it empty for the next.
    pub fn take(&mut self) -> Step {
        std::mem::take(self)
    }
}

/// One connection's protocol state machine. Implementations never block, never do I/O and
/// never panic on any input; they buffer partial input themselves (bounded).
pub trait Session: Send {
    /// The connection opened: send the greeting, if the protocol has one.
    fn start(&mut self, step: &mut Step);
    /// Bytes arrived from the peer.
    fn receive(&mut self, data: &[u8], step: &mut Step);
    /// The peer went away or a limit ended the connection; nothing more can be sent.
    fn finish(&mut self, _step: &mut Step) {}
}
