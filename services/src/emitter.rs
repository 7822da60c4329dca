//! Event emitter: every event leaves the container as one RFC 5424 message.
//!
//! Connection handlers never wait on the sink: events go through a bounded queue to one
//! writer task, and a full queue is counted as a drop (never unbounded memory, never a stalled
//! attacker session that would reveal the logging path by its timing).

use std::{
    net::SocketAddr,
    path::PathBuf,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use decnet_store::{Event, rfc5424};
use tokio::{
    io::AsyncWriteExt,
    net::{UdpSocket, UnixDatagram},
    sync::mpsc,
    task::JoinHandle,
};

/// Events queued for the writer before new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 8192;

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// One line per event on standard output (a container log follower collects it).
    Stdout,
    /// One datagram per event to a unix datagram socket (the appliance's intake).
    Unix(PathBuf),
    /// One datagram per event to a syslog collector.
    Udp(SocketAddr),
}

/// A sink specification that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid event sink {0:?}: use stdout, unix:/path/to/socket or udp:HOST:PORT")]
pub struct SinkError(pub String);

impl FromStr for Sink {
    type Err = SinkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SinkError(s.to_owned());
        if s == "stdout" || s == "-" {
            return Ok(Self::Stdout);
        }
        if let Some(path) = s.strip_prefix("unix:") {
            return if path.starts_with('/') {
                Ok(Self::Unix(path.into()))
            } else {
                Err(bad())
            };
        }
        let addr = s.strip_prefix("udp:").unwrap_or(s);
        addr.parse::<SocketAddr>().map(Self::Udp).map_err(|_| bad())
    }
}

/// Counters of the emitter stage (received = emitted + dropped + errors, eventually).
#[derive(Debug, Default)]
pub struct EmitterStats {
    pub received: AtomicU64,
    pub emitted: AtomicU64,
    pub dropped: AtomicU64,
    pub errors: AtomicU64,
}

/// Cheap to clone; hands events to the writer task.
#[derive(Debug, Clone)]
pub struct Emitter {
    tx: mpsc::Sender<Vec<u8>>,
    stats: Arc<EmitterStats>,
}

impl Emitter {
    /// Start the writer task for `sinks` (every event goes to every sink).
    pub fn spawn(sinks: Vec<Sink>) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(EmitterStats::default());
        let handle = tokio::spawn(writer(rx, sinks, Arc::clone(&stats)));
        (Self { tx, stats }, handle)
    }

    /// Queue an event; never waits.
    pub fn emit(&self, event: &Event) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(rfc5424::format(event)).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> &EmitterStats {
        &self.stats
    }
}

async fn writer(mut rx: mpsc::Receiver<Vec<u8>>, sinks: Vec<Sink>, stats: Arc<EmitterStats>) {
    let mut stdout = tokio::io::stdout();
    let unix = UnixDatagram::unbound().ok();
    let udp = UdpSocket::bind("0.0.0.0:0").await.ok();
    while let Some(message) = rx.recv().await {
        let mut ok = true;
        for sink in &sinks {
            let sent = match sink {
                Sink::Stdout => {
                    let mut line = message.clone();
                    line.push(b'\n');
                    stdout.write_all(&line).await.is_ok() && stdout.flush().await.is_ok()
                }
                Sink::Unix(path) => match &unix {
                    Some(sock) => sock.send_to(&message, path).await.is_ok(),
                    None => false,
                },
                Sink::Udp(addr) => match &udp {
                    Some(sock) => sock.send_to(&message, addr).await.is_ok(),
                    None => false,
                },
            };
            ok &= sent;
        }
        let counter = if ok { &stats.emitted } else { &stats.errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decnet_store::Severity;

    #[test]
    fn parses_sinks() {
        assert_eq!("stdout".parse(), Ok(Sink::Stdout));
        assert_eq!(
            "unix:/run/x.sock".parse(),
            Ok(Sink::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            "udp:127.0.0.1:514".parse(),
            Ok(Sink::Udp("127.0.0.1:514".parse().unwrap()))
        );
        assert!("unix:relative".parse::<Sink>().is_err());
        assert!("tcp:1.2.3.4:5".parse::<Sink>().is_err());
    }

    #[tokio::test]
    async fn delivers_datagrams_to_a_unix_socket() {
        let dir = std::env::temp_dir().join(format!("emitter-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("events.sock");
        let _ = std::fs::remove_file(&path);
        let intake = UnixDatagram::bind(&path).unwrap();
        let (emitter, _task) = Emitter::spawn(vec![Sink::Unix(path.clone())]);
        let mut e = Event::new(0, "web01", "http", "request", Severity::Info);
        e.push_field("path", "/admin").unwrap();
        emitter.emit(&e);
        let mut buf = [0u8; 1024];
        let n = intake.recv(&mut buf).await.unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            text.ends_with("web01 http - request [relay@55555 path=\"/admin\"]"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
