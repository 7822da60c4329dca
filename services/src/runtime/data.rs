//! The data channel a session may ask for ([`DataOp`]): one listener or one connect-back
//! target per connection, and at most one transfer on it at a time. Transfers run as their
//! own task and report back through a queue the connection loop selects on, so the control
//! connection keeps being served while bytes flow.

use std::{
    future::pending,
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};

use super::{RuntimeStats, normalize};
use crate::{
    memory::{self, Held},
    session::{ConnInfo, DataEvent, DataOp},
};

/// How long the peer has to connect to a listener, or a connect-back has to succeed
/// (vsftpd's `accept_timeout` and `connect_timeout`).
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

const CHUNK: usize = 64 * 1024;

enum Target {
    Listener(TcpListener),
    Peer(SocketAddr),
}

enum Work {
    Send(Vec<u8>),
    Receive(usize),
}

/// One connection's data channel.
pub(super) struct DataChannel {
    conn: ConnInfo,
    /// A transfer that sees no byte for this long is abandoned.
    stall: Duration,
    stats: Arc<RuntimeStats>,
    target: Option<Target>,
    task: Option<JoinHandle<()>>,
    /// Events of replaced channels may still be queued; only the current generation counts.
    generation: u64,
    tx: mpsc::Sender<Report>,
    rx: mpsc::Receiver<Report>,
}

/// A transfer's event, its generation, and the memory a received upload holds (kept until the
/// session has stored it).
type Report = (u64, DataEvent, Option<Held>);

impl DataChannel {
    pub(super) fn new(conn: ConnInfo, stall: Duration, stats: Arc<RuntimeStats>) -> Self {
        let (tx, rx) = mpsc::channel(4);
        Self {
            conn,
            stall,
            stats,
            target: None,
            task: None,
            generation: 0,
            tx,
            rx,
        }
    }

    fn reset(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.target = None;
        self.generation += 1;
    }

    /// Carry out `op`; an event that is known at once is returned instead of queued.
    pub(super) async fn apply(&mut self, op: DataOp) -> Option<DataEvent> {
        match op {
            DataOp::Listen => {
                self.reset();
                let bound = TcpListener::bind(SocketAddr::new(self.conn.local.ip(), 0)).await;
                let Some((listener, addr)) =
                    bound.and_then(|l| l.local_addr().map(|a| (l, a))).ok()
                else {
                    return Some(DataEvent::Failed);
                };
                self.target = Some(Target::Listener(listener));
                Some(DataEvent::Listening(addr.port()))
            }
            DataOp::Connect(port) => {
                self.reset();
                self.target = Some(Target::Peer(SocketAddr::new(self.conn.peer.ip(), port)));
                None
            }
            DataOp::Send(bytes) => self.start(Work::Send(bytes)),
            DataOp::Receive { limit } => self.start(Work::Receive(limit)),
            DataOp::Close => {
                self.reset();
                None
            }
        }
    }

    fn start(&mut self, work: Work) -> Option<DataEvent> {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.generation += 1;
        let Some(target) = self.target.take() else {
            return Some(DataEvent::Failed);
        };
        let generation = self.generation;
        let tx = self.tx.clone();
        let (peer, stall, stats) = (self.conn.peer.ip(), self.stall, Arc::clone(&self.stats));
        self.task = Some(tokio::spawn(async move {
            let report = |event, held| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((generation, event, held)).await;
                }
            };
            let Some(stream) = open(target, peer).await else {
                report(DataEvent::Failed, None).await;
                return;
            };
            report(DataEvent::Opened, None).await;
            let (outcome, held) = match work {
                Work::Send(bytes) => (send(stream, &bytes, stall, &stats).await, None),
                Work::Receive(limit) => {
                    let (event, held) = receive(stream, limit, stall, &stats).await;
                    (event, Some(held))
                }
            };
            report(outcome, held).await;
        }));
        None
    }

    /// A transfer is under way (or waiting for its peer).
    pub(super) fn busy(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The next event of the current channel, with the memory its data holds; pending forever
    /// when there is none.
    pub(super) async fn next(&mut self) -> (DataEvent, Option<Held>) {
        loop {
            match self.rx.recv().await {
                Some((generation, event, held)) if generation == self.generation => {
                    return (event, held);
                }
                Some(_) => {}
                // Unreachable while `self.tx` lives, but never spin if it were.
                None => pending::<()>().await,
            }
        }
    }
}

impl Drop for DataChannel {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accept the peer (connections from any other address are dropped, as vsftpd refuses
/// them) or connect back to it, within [`OPEN_TIMEOUT`].
async fn open(target: Target, peer: IpAddr) -> Option<TcpStream> {
    let deadline = tokio::time::Instant::now() + OPEN_TIMEOUT;
    match target {
        Target::Listener(listener) => loop {
            let (stream, from) = tokio::time::timeout_at(deadline, listener.accept())
                .await
                .ok()?
                .ok()?;
            if normalize(from).ip() == peer {
                return Some(stream);
            }
        },
        Target::Peer(addr) => tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .ok()?
            .ok(),
    }
}

async fn send(
    mut stream: TcpStream,
    bytes: &[u8],
    stall: Duration,
    stats: &RuntimeStats,
) -> DataEvent {
    for chunk in bytes.chunks(CHUNK) {
        match tokio::time::timeout(stall, stream.write_all(chunk)).await {
            Ok(Ok(())) => {
                stats
                    .bytes_out
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            _ => return DataEvent::Failed,
        }
    }
    // The peer learns the transfer is complete from the FIN.
    let _ = tokio::time::timeout(stall, stream.shutdown()).await;
    DataEvent::Sent {
        bytes: bytes.len() as u64,
    }
}

/// Receive an upload, keeping up to `limit` bytes, and no more than the process's memory pool
/// grants (see [`memory`]): past either, bytes are counted but not kept.
async fn receive(
    mut stream: TcpStream,
    limit: usize,
    stall: Duration,
    stats: &RuntimeStats,
) -> (DataEvent, Held) {
    let mut data = Vec::new();
    let mut held = memory::process_pool().hold();
    let mut total = 0u64;
    let mut keeping = true;
    let mut buf = vec![0u8; CHUNK];
    // A reset or a stall ends the upload like a close: what arrived is still evidence.
    while let Ok(Ok(n)) = tokio::time::timeout(stall, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        total += n as u64;
        stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        if keeping {
            keeping = memory::append(&mut data, &buf[..n], &mut held, limit);
        }
    }
    (DataEvent::Received { data, total }, held)
}
