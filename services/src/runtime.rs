//! The thin tokio layer around the sans-IO sessions: accept, bound, time out, emit.
//!
//! Besides bytes and events a [`Step`] can ask for three things only the I/O layer can do:
//! hold its output back ([`Step::delay`]), drive a data channel
//! ([`DataOp`](crate::session::DataOp), carried out by the `data` submodule), and keep
//! artifacts in the quarantine directory ([`Step::store`]).

mod data;
#[cfg(feature = "tls")]
mod tls;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use decnet_store::{Event, Severity};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
};

use crate::{
    emitter::Emitter,
    session::{Artifact, ConnInfo, ServiceEvent, Session, Step},
};

/// A protocol the runtime can serve: makes one session per connection.
pub trait Protocol: Send + Sync + 'static {
    fn slug(&self) -> &'static str;
    /// Ports the service listens on when none are given.
    fn default_ports(&self) -> &'static [u16];
    fn session(&self, conn: &ConnInfo) -> Box<dyn Session>;
    /// TLS settings when the service speaks TLS from the first byte (https); the runtime
    /// then completes the handshake before the session sees any byte.
    #[cfg(feature = "tls")]
    fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        None
    }
}

/// Per-connection and per-service bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further ones are closed at accept and counted.
    pub max_connections: usize,
    /// Connections at once from one source address.
    pub max_per_source: usize,
    /// Close after this long without a byte from the peer.
    pub idle_timeout: Duration,
    /// Close after this long whatever happens.
    pub session_timeout: Duration,
    /// Bytes accepted from one connection before it is closed.
    pub max_bytes_in: u64,
    /// Artifact bytes and files this service writes to quarantine in its lifetime: past
    /// either, artifacts are hashed and reported but not kept (`quarantine_full`), so uploads
    /// of many small or large files cannot fill the disk.
    pub max_quarantine_bytes: u64,
    pub max_quarantine_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_source: 64,
            idle_timeout: Duration::from_secs(300),
            session_timeout: Duration::from_secs(3600),
            max_bytes_in: 16 * 1024 * 1024,
            max_quarantine_bytes: 512 << 20,
            max_quarantine_files: 50_000,
        }
    }
}

/// Counters of the connection stage.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub active: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub io_errors: AtomicU64,
    /// Artifacts written to quarantine, and their bytes.
    pub quarantined_files: AtomicU64,
    pub quarantined_bytes: AtomicU64,
    /// Artifacts not kept because the quarantine budget was spent.
    pub quarantine_refused: AtomicU64,
}

/// Who events are attributed to and where they go.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    pub decky: String,
    pub service: String,
    pub emitter: Emitter,
    pub limits: Limits,
    pub stats: Arc<RuntimeStats>,
    /// Where artifacts sessions ask to keep are written; `None` drops them.
    pub quarantine: Option<PathBuf>,
    /// Connections per source ([`source_key`]) over every port of the service.
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ServiceContext {
    pub fn new(decky: &str, service: &str, emitter: Emitter, limits: Limits) -> Self {
        Self {
            decky: decky.to_owned(),
            service: service.to_owned(),
            emitter,
            limits,
            stats: Arc::new(RuntimeStats::default()),
            quarantine: None,
            sources: Arc::default(),
        }
    }

    /// Keep artifacts in `dir` (created when first needed).
    #[must_use]
    pub fn with_quarantine(mut self, dir: Option<PathBuf>) -> Self {
        self.quarantine = dir;
        self
    }

    /// Stamp a session event with time, host, service and the connection's addresses.
    pub fn event(&self, conn: &ConnInfo, ev: &ServiceEvent) -> Event {
        let mut event = Event::new(now_ns(), &self.decky, &self.service, &ev.kind, ev.severity);
        event.src_ip = Some(conn.peer.ip());
        event.src_port = Some(conn.peer.port());
        event.dst_ip = Some(conn.local.ip());
        event.dst_port = Some(conn.local.port());
        for (k, v) in &ev.fields {
            // Over-long or too many fields are truncated and flagged by the event itself.
            let _ = event.push_field(k, v);
        }
        event
    }

    fn emit(&self, conn: &ConnInfo, events: &[ServiceEvent]) {
        for ev in events {
            self.emitter.emit(&self.event(conn, ev));
        }
    }

    /// Write artifacts to the quarantine directory; a failure is an event, never fatal.
    async fn store(&self, conn: &ConnInfo, artifacts: Vec<Artifact>) {
        let Some(dir) = &self.quarantine else { return };
        for artifact in artifacts {
            let size = artifact.bytes.len() as u64;
            let stats = &self.stats;
            let files = stats.quarantined_files.load(Ordering::Relaxed);
            let bytes = stats.quarantined_bytes.load(Ordering::Relaxed);
            if files >= self.limits.max_quarantine_files
                || bytes.saturating_add(size) > self.limits.max_quarantine_bytes
            {
                stats.quarantine_refused.fetch_add(1, Ordering::Relaxed);
                let ev = service_event(
                    "quarantine_full",
                    Severity::Warning,
                    &[("name", &artifact.name), ("size", &size.to_string())],
                );
                self.emit(conn, &[ev]);
                continue;
            }
            stats.quarantined_files.fetch_add(1, Ordering::Relaxed);
            stats.quarantined_bytes.fetch_add(size, Ordering::Relaxed);
            let name = artifact.name.clone();
            let dir = dir.clone();
            let written = tokio::task::spawn_blocking(move || write_artifact(&dir, &artifact))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            if let Err(error) = written {
                self.stats.io_errors.fetch_add(1, Ordering::Relaxed);
                let ev = service_event(
                    "quarantine_error",
                    Severity::Error,
                    &[("name", &name), ("error", &error)],
                );
                self.emit(conn, &[ev]);
            }
        }
    }
}

/// A plain, visible file name: nothing a session writes can land outside the directory.
fn safe_artifact_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Write under a temporary name and rename, so a reader never sees a partial file.
fn write_artifact(dir: &Path, artifact: &Artifact) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    if !safe_artifact_name(&artifact.name) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "unsafe artifact name",
        ));
    }
    std::fs::create_dir_all(dir)?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}.{seq}.part",
        artifact.name,
        std::process::id()
    ));
    std::fs::write(&tmp, &artifact.bytes)?;
    std::fs::rename(&tmp, dir.join(&artifact.name)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// How long a peer that stopped reading may hold up an idle session's farewell.
const LAST_WORDS: Duration = Duration::from_secs(5);

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A connection's place: counted in `stats.active` and for its source until dropped — when
/// the connection ends, and also when its task panics (a panicking session once left its
/// place taken until the service restarted).
struct SourceSlot {
    table: Arc<Mutex<HashMap<IpAddr, usize>>>,
    stats: Arc<RuntimeStats>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Ok(mut table) = self.table.lock()
            && let Some(n) = table.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                table.remove(&self.ip);
            }
        }
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the per-source limit counts: an IPv4 address, or an IPv6 /64 (one subscriber's
/// allocation, in which a single host can pick a new address for every connection).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !u128::from(u64::MAX),
        )),
    }
}

fn claim_slot(ctx: &ServiceContext, ip: IpAddr) -> Option<SourceSlot> {
    let ip = source_key(ip);
    let active = ctx.stats.active.load(Ordering::Relaxed);
    if usize::try_from(active).unwrap_or(usize::MAX) >= ctx.limits.max_connections {
        return None;
    }
    let mut guard = ctx.sources.lock().ok()?;
    let n = guard.entry(ip).or_insert(0);
    if *n >= ctx.limits.max_per_source {
        return None;
    }
    *n += 1;
    ctx.stats.active.fetch_add(1, Ordering::Relaxed);
    Some(SourceSlot {
        table: Arc::clone(&ctx.sources),
        stats: Arc::clone(&ctx.stats),
        ip,
    })
}

/// Serve `protocol` on `listener` until `shutdown` turns true.
pub async fn serve_tcp(
    listener: TcpListener,
    protocol: Arc<dyn Protocol>,
    ctx: Arc<ServiceContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                ctx.stats.io_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "accept failed");
                // Out of descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = claim_slot(&ctx, peer.ip()) else {
            ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let local = stream.local_addr().unwrap_or(peer);
        let conn = ConnInfo {
            peer: normalize(peer),
            local: normalize(local),
        };
        let session = protocol.session(&conn);
        let ctx = Arc::clone(&ctx);
        ctx.stats.accepted.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "tls")]
        let tls = protocol.tls();
        tokio::spawn(async move {
            #[cfg(feature = "tls")]
            match tls {
                None => run_connection(stream, conn, session, &ctx).await,
                Some(config) => {
                    if let Some(stream) = tls::handshake(stream, config, &conn, &ctx).await {
                        run_connection(stream, conn, session, &ctx).await;
                    }
                }
            }
            #[cfg(not(feature = "tls"))]
            run_connection(stream, conn, session, &ctx).await;
            drop(slot);
        });
    }
}

/// IPv4-mapped IPv6 peers (dual-stack sockets) are reported as plain IPv4.
fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

async fn run_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    conn: ConnInfo,
    mut session: Box<dyn Session>,
    ctx: &ServiceContext,
) {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + ctx.limits.session_timeout;
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    ctx.emit(&conn, &[lifecycle("connect", &[])]);
    let mut data = data::DataChannel::new(conn, ctx.limits.idle_timeout, Arc::clone(&ctx.stats));
    let mut step = Step::default();
    session.start(&mut step);
    let mut reason = "closed";
    let mut buf = vec![0u8; 16 * 1024];
    // The memory pool's bytes an upload holds, until the session has stored it.
    let mut upload_held = None;
    'conn: loop {
        if let Some(pause) = step.delay.take()
            && tokio::time::timeout_at(deadline, tokio::time::sleep(pause))
                .await
                .is_err()
        {
            reason = "session_timeout";
            break;
        }
        let done = step.close;
        let produced = step.take();
        ctx.emit(&conn, &produced.events);
        ctx.store(&conn, produced.artifacts).await;
        drop(upload_held.take());
        if !produced.out.is_empty() {
            // A peer that stops reading (a zero window) must not hold its place past the idle
            // timeout: an unbounded write never reached the idle or session deadline.
            let stall = tokio::time::Instant::now() + ctx.limits.idle_timeout;
            match tokio::time::timeout_at(stall.min(deadline), stream.write_all(&produced.out))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    reason = "reset";
                    break 'conn;
                }
                Err(_) => {
                    reason = "write_timeout";
                    break 'conn;
                }
            }
            bytes_out += produced.out.len() as u64;
        }
        if done {
            reason = "server_close";
            break;
        }
        for op in produced.data {
            if let Some(event) = data.apply(op).await {
                session.data(event, &mut step);
            }
        }
        if !step.is_empty() {
            continue;
        }
        // A transfer in flight keeps the session alive (vsftpd times the data channel instead).
        let idle = if data.busy() {
            ctx.limits.session_timeout
        } else {
            ctx.limits.idle_timeout
        };
        let wake_in = session.wake_in();
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read(&mut buf)) => r,
            report = data.next() => {
                let (event, held) = report;
                session.data(event, &mut step);
                upload_held = held;
                continue;
            }
            () = sleep_for(wake_in) => {
                session.wake(&mut step);
                continue;
            }
            () = tokio::time::sleep_until(deadline) => { reason = "session_timeout"; break }
        };
        let n = match read {
            Err(_) => {
                reason = "idle_timeout";
                session.idle(&mut step);
                let last = std::mem::take(&mut step.out);
                if !last.is_empty()
                    && let Ok(Ok(())) =
                        tokio::time::timeout(LAST_WORDS, stream.write_all(&last)).await
                {
                    bytes_out += last.len() as u64;
                }
                break;
            }
            Ok(Err(_)) => {
                reason = "reset";
                break;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
        };
        bytes_in += n as u64;
        if bytes_in > ctx.limits.max_bytes_in {
            reason = "byte_limit";
            break;
        }
        session.receive(&buf[..n], &mut step);
    }
    drop(data);
    let _ = stream.shutdown().await;
    session.finish(&mut step);
    ctx.emit(&conn, &step.events);
    ctx.store(&conn, std::mem::take(&mut step.artifacts)).await;
    ctx.stats.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
    ctx.stats.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    let secs = format!("{:.3}", started.elapsed().as_secs_f64());
    let (bin, bout) = (bytes_in.to_string(), bytes_out.to_string());
    ctx.emit(
        &conn,
        &[lifecycle(
            "disconnect",
            &[
                ("reason", reason),
                ("duration_s", &secs),
                ("bytes_in", &bin),
                ("bytes_out", &bout),
            ],
        )],
    );
}

/// Sleep for `time`, or forever when there is none.
async fn sleep_for(time: Option<Duration>) {
    match time {
        Some(time) => tokio::time::sleep(time).await,
        None => std::future::pending().await,
    }
}

fn lifecycle(kind: &str, fields: &[(&str, &str)]) -> ServiceEvent {
    service_event(kind, Severity::Info, fields)
}

fn service_event(kind: &str, severity: Severity, fields: &[(&str, &str)]) -> ServiceEvent {
    ServiceEvent {
        kind: kind.to_owned(),
        severity,
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[cfg(test)]
mod tests;
