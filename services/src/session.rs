//! The sans-IO contract every protocol implements.

use std::{net::SocketAddr, time::Duration};

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

/// A second connection a session needs besides its own (FTP's data channel), carried out by
/// the runtime so the session stays sans-IO. A connection has at most one channel; `Listen`
/// and `Connect` replace the previous one, and a transfer consumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOp {
    /// Listen on an ephemeral port of the connection's own local address and accept one
    /// connection from the peer's address; answered at once by [`DataEvent::Listening`] (or
    /// [`DataEvent::Failed`]).
    Listen,
    /// At the next transfer, connect to this port on the peer's own address. Only the peer's
    /// address: a session can never make the host open connections to third parties.
    Connect(u16),
    /// Open the channel, write these bytes and close it: [`DataEvent::Opened`], then
    /// [`DataEvent::Sent`] or [`DataEvent::Failed`].
    Send(Vec<u8>),
    /// Open the channel and read until the peer closes it, keeping at most `limit` bytes:
    /// [`DataEvent::Opened`], then [`DataEvent::Received`] (or `Failed` if it never opened).
    Receive { limit: usize },
    /// Drop the channel and any transfer on it.
    Close,
}

/// What happened to the data channel; delivered through [`Session::data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEvent {
    /// The listener is bound on this port of the connection's local address.
    Listening(u16),
    /// The peer connected (or was connected to); the transfer is under way.
    Opened,
    /// Every byte of a `Send` was written and the channel closed.
    Sent { bytes: u64 },
    /// The peer closed the channel after a `Receive`: the kept bytes and how many arrived.
    Received { data: Vec<u8>, total: u64 },
    /// No channel to use, nobody connected in time, or the transfer broke.
    Failed,
}

/// Bytes the runtime keeps in the service's quarantine directory (when one is configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// A plain file name (letters, digits, `.`, `_`, `-`); anything else is refused.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What one step of a session produced: bytes to send, events, and whether to hang up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub out: Vec<u8>,
    pub events: Vec<ServiceEvent>,
    pub close: bool,
    /// Hold `out` back this long before sending it (the real servers' pause after failures).
    pub delay: Option<Duration>,
    pub data: Vec<DataOp>,
    pub artifacts: Vec<Artifact>,
}

/// Output one step may hold. Past it the rest is dropped and the connection closes once what
/// fits is sent: no real reply comes near it, while pipelined Redis `KEYS *` over a large
/// keyspace once built gigabytes in one step.
pub const MAX_STEP_OUT: usize = 8 << 20;

/// Longest pause one step may ask for before its output goes out.
pub const MAX_STEP_DELAY: Duration = Duration::from_secs(10);

impl Step {
    pub fn send(&mut self, bytes: &[u8]) {
        let room = MAX_STEP_OUT.saturating_sub(self.out.len());
        if bytes.len() <= room {
            self.out.extend_from_slice(bytes);
            return;
        }
        self.out.extend_from_slice(&bytes[..room]);
        if !self.close {
            self.event(
                "output_limit",
                Severity::Notice,
                &[("limit_bytes", &MAX_STEP_OUT.to_string())],
            );
        }
        self.close = true;
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

    /// Delay this step's output by `by` (added to any delay already asked for, up to
    /// [`MAX_STEP_DELAY`]: a pipeline of failed logins, each worth a pause, once added up to
    /// an hour of silence in which the idle timeout never ran).
    pub fn delay(&mut self, by: Duration) {
        let total = self.delay.unwrap_or_default().saturating_add(by);
        self.delay = Some(total.min(MAX_STEP_DELAY));
    }

    /// Ask the runtime for something on the data channel.
    pub fn data(&mut self, op: DataOp) {
        self.data.push(op);
    }

    /// Ask the runtime to keep `bytes` as `name` in the quarantine directory.
    pub fn store(&mut self, name: &str, bytes: Vec<u8>) {
        self.artifacts.push(Artifact {
            name: name.to_owned(),
            bytes,
        });
    }

    /// Nothing produced yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
            && self.events.is_empty()
            && !self.close
            && self.delay.is_none()
            && self.data.is_empty()
            && self.artifacts.is_empty()
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
    /// The data channel asked for with [`Step::data`] changed state.
    fn data(&mut self, _event: DataEvent, _step: &mut Step) {}
    /// The peer stayed silent for the idle timeout; output is sent (best effort) as the
    /// connection's last words, e.g. a `421` line, before the runtime hangs up.
    fn idle(&mut self, _step: &mut Step) {}
    /// How long from now until the session must be woken ([`Self::wake`]) even if the peer
    /// stays silent: a protocol's own timer, shorter than the idle timeout (sshd's
    /// `LoginGraceTime`). Asked again after every step.
    fn wake_in(&self) -> Option<Duration> {
        None
    }
    /// The time [`Self::wake_in`] asked for has come.
    fn wake(&mut self, _step: &mut Step) {}
    /// The peer went away or a limit ended the connection; nothing more can be sent.
    fn finish(&mut self, _step: &mut Step) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_holds_bounded_output_and_delay() {
        let mut step = Step::default();
        for _ in 0..1000 {
            step.delay(Duration::from_secs(2));
        }
        assert_eq!(step.delay, Some(MAX_STEP_DELAY));
        step.send(&vec![b'x'; MAX_STEP_OUT - 1]);
        assert!(!step.close);
        step.send(b"yz");
        assert_eq!(step.out.len(), MAX_STEP_OUT);
        assert!(step.close);
        step.send(b"more");
        assert_eq!(step.out.len(), MAX_STEP_OUT);
        assert_eq!(
            step.events
                .iter()
                .filter(|e| e.kind == "output_limit")
                .count(),
            1
        );
    }
}
