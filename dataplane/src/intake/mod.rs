//! Syslog intake: listeners that move bytes from sockets into the sans-IO [`crate::syslog`]
//! parser and hand the events to the store's segment writers.
//!
//! - unix datagram (the deckies' default sink, bind-mounted into each service container),
//! - UDP (`recvmmsg` batches),
//! - TCP with RFC 6587 octet-counting or LF framing detected per connection,
//! - the stdout/stderr of Docker containers chosen by label ([`docker`]).
//!
//! Every listener is a plain thread (a blocking send into the store's bounded queue is the
//! backpressure, and no async runtime worker is ever blocked by it). Every stage counts what it
//! received, dropped and failed on ([`IntakeMetrics`]).

mod batch;
pub mod docker;
pub mod ratelimit;
mod tcp;
#[cfg(feature = "tls")]
pub mod tls;

use std::{
    net::SocketAddr,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use decnet_store::{
    Event, EventDraft,
    codec::EncodedBatch,
    metrics::Counter,
    pipeline::{BatchError, EventSender},
};

use crate::syslog::{self, Limits};
use docker::{DockerFollower, DockerLogsConfig};
use ratelimit::RateLimiter;

/// How long a blocked receive waits before re-checking the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// Where to listen and how to limit.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    pub unix: Option<PathBuf>,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub limits: Limits,
    /// Lifecycle-noise window (zero disables the limiter).
    pub lifecycle_window: Duration,
    pub lifecycle_kinds: Vec<String>,
    /// Most concurrent TCP senders.
    pub max_tcp_connections: usize,
    /// Most concurrent TCP senders from one address, so one peer cannot take every place.
    pub max_tcp_connections_per_source: usize,
    /// A TCP sender that completes no message in this long is disconnected: bytes alone do
    /// not count, so a peer trickling a byte at a time cannot hold a place.
    pub tcp_idle: Duration,
    /// Syslog over TLS (RFC 5425): address and identity.
    #[cfg(feature = "tls")]
    pub tls: Option<(SocketAddr, tls::TlsIdentity)>,
    /// Follow the logs of Docker containers (see [`docker`]).
    pub docker_logs: Option<DockerLogsConfig>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            unix: None,
            udp: None,
            tcp: None,
            limits: Limits::default(),
            lifecycle_window: Duration::from_secs(1),
            lifecycle_kinds: ratelimit::DEFAULT_KINDS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            max_tcp_connections: 256,
            max_tcp_connections_per_source: 16,
            tcp_idle: Duration::from_secs(300),
            #[cfg(feature = "tls")]
            tls: None,
            docker_logs: None,
        }
    }
}

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("cannot listen on unix socket {path}: {source}")]
    Unix {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {proto} {addr}: {source}")]
    Net {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the {0} listener thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("cannot start the docker logs follower's async runtime: {0}")]
    DockerRuntime(std::io::Error),
    #[error("docker label selector {0:?} has no key; write KEY=VALUE (or KEY for any value)")]
    DockerLabel(String),
    #[cfg(feature = "tls")]
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
}

/// Counters of the intake stage.
#[derive(Debug, Default)]
pub struct IntakeMetrics {
    pub received_messages: Counter,
    pub received_bytes: Counter,
    /// Messages kept in a degraded reading (RFC 5424 grammar broken; still stored).
    pub degraded: Counter,
    /// Messages refused by the parser (empty or over the size cap).
    pub parse_errors: Counter,
    /// Lifecycle repeats dropped by the limiter.
    pub rate_limited: Counter,
    /// Events sent to the store.
    pub sent: Counter,
    /// TCP framing errors (connections closed) and connections refused over the cap.
    pub framing_errors: Counter,
    pub refused_connections: Counter,
    pub socket_errors: Counter,
    /// Docker logs: containers being followed now.
    pub docker_containers_followed: Gauge,
    /// Docker logs: complete lines read from containers.
    pub docker_lines: Counter,
    /// Docker logs: lines longer than the size cap (cut to it; the rest dropped).
    pub docker_truncated_lines: Counter,
    /// Docker logs: engine connections lost or refused, log streams broken.
    pub docker_errors: Counter,
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl IntakeMetrics {
    /// Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let rows: [(&str, &str, &Counter); 9] = [
            (
                "component_received_events_total",
                "",
                &self.received_messages,
            ),
            ("component_received_bytes_total", "", &self.received_bytes),
            ("component_errors_total", "degraded_parse", &self.degraded),
            ("component_errors_total", "parse", &self.parse_errors),
            (
                "component_discarded_events_total",
                "lifecycle_rate_limit",
                &self.rate_limited,
            ),
            ("component_sent_events_total", "", &self.sent),
            ("component_errors_total", "framing", &self.framing_errors),
            (
                "component_discarded_connections_total",
                "over_limit",
                &self.refused_connections,
            ),
            ("component_errors_total", "socket", &self.socket_errors),
        ];
        for (name, reason, c) in rows {
            let _ = write!(out, "decnet_{name}{{component=\"syslog_intake\"");
            if !reason.is_empty() {
                let _ = write!(out, ",reason=\"{reason}\"");
            }
            let _ = writeln!(out, "}} {}", c.get());
        }
        let docker: [(&str, &str, &Counter); 3] = [
            ("component_received_lines_total", "", &self.docker_lines),
            (
                "component_errors_total",
                "line_too_long",
                &self.docker_truncated_lines,
            ),
            ("component_errors_total", "docker_api", &self.docker_errors),
        ];
        for (name, reason, c) in docker {
            let _ = write!(out, "decnet_{name}{{component=\"docker_logs\"");
            if !reason.is_empty() {
                let _ = write!(out, ",reason=\"{reason}\"");
            }
            let _ = writeln!(out, "}} {}", c.get());
        }
        let _ = writeln!(
            out,
            "decnet_docker_logs_containers_followed{{component=\"docker_logs\"}} {}",
            self.docker_containers_followed.get()
        );
    }
}

/// One listener's message handler: parse, limit, send.
#[derive(Debug)]
pub(crate) struct Ingest {
    sender: EventSender,
    limits: Limits,
    limiter: RateLimiter,
    metrics: Arc<IntakeMetrics>,
}

impl Ingest {
    fn new(config: &IntakeConfig, sender: EventSender, metrics: Arc<IntakeMetrics>) -> Self {
        let kinds: Vec<&str> = config.lifecycle_kinds.iter().map(String::as_str).collect();
        Self {
            sender,
            limits: config.limits,
            limiter: RateLimiter::new(config.lifecycle_window, &kinds),
            metrics,
        }
    }

    /// Handle one message; `false` once the store has shut down.
    ///
    /// The event is built borrowing from `bytes` and encoded here into the segment's form
    /// (the same bytes [`Self::message_with`]'s owned event encodes to), so the writer
    /// thread stores it as it is.
    pub(crate) fn message(&mut self, bytes: &[u8]) -> bool {
        // The method path clippy suggests is not general over the draft's lifetime.
        #[expect(clippy::redundant_closure_for_method_calls)]
        let Some(encoded) = self.admitted_draft(bytes, |d| d.encode()) else {
            return true;
        };
        if self.sender.send_encoded(encoded).is_err() {
            return false;
        }
        self.metrics.sent.inc();
        true
    }

    /// [`Self::message`] for one message of a batch: its encoding is appended to `batch`,
    /// which [`Self::send_batch`] hands on.
    pub(crate) fn message_into(&mut self, bytes: &[u8], batch: &mut EncodedBatch) {
        self.admitted_draft(bytes, |d| d.encode_into(batch));
    }

    /// Parse `bytes` and hand the borrowed event to `use_it` if the lifecycle limiter admits
    /// it; `None` (counted) when the parser refused it or the limiter did not admit it.
    fn admitted_draft<R>(
        &mut self,
        bytes: &[u8],
        use_it: impl FnOnce(&EventDraft<'_>) -> R,
    ) -> Option<R> {
        let (parsed, now_ns) = self.parse(bytes)?;
        let limiter = &mut self.limiter;
        let used = parsed.message.with_draft(now_ns, |d| {
            limiter
                .admit_parts(d.src_ip, d.decky, d.service, d.kind, Instant::now())
                .then(|| use_it(d))
        });
        if used.is_none() {
            self.metrics.rate_limited.inc();
        }
        used
    }

    /// Queue the events [`Self::message_into`] collected; `false` once the store has shut
    /// down.
    pub(crate) fn send_batch(&mut self, batch: EncodedBatch) -> bool {
        let n = batch.len() as u64;
        match self.sender.send_batch(batch) {
            Ok(()) => {
                self.metrics.sent.add(n);
                true
            }
            Err(BatchError::Closed(_)) => false,
            Err(e @ BatchError::TooLarge(_)) => {
                // Unreachable while the listeners' batches are within the limit (checked at
                // compile time); the events are counted rather than lost silently.
                tracing::error!(error = %e, "intake batch refused");
                self.metrics.socket_errors.add(n);
                true
            }
        }
    }

    /// Count and parse one message; `None` when the parser refused it (counted).
    fn parse<'m>(&self, bytes: &'m [u8]) -> Option<(syslog::Parsed<'m>, i64)> {
        self.metrics.received_messages.inc();
        self.metrics.received_bytes.add(bytes.len() as u64);
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let parsed = match syslog::parse(bytes, &self.limits, now_ns) {
            Ok(p) => p,
            Err(e) => {
                self.metrics.parse_errors.inc();
                tracing::debug!(error = %e, "syslog message refused");
                return None;
            }
        };
        if parsed.degraded.is_some() {
            self.metrics.degraded.inc();
        }
        Some((parsed, now_ns))
    }

    /// [`Self::message`], with `annotate` adding what the transport knows to the event before
    /// the limiter sees it.
    pub(crate) fn message_with(&mut self, bytes: &[u8], annotate: impl FnOnce(&mut Event)) -> bool {
        let Some((parsed, now_ns)) = self.parse(bytes) else {
            return true;
        };
        let mut event = parsed.message.to_event(now_ns);
        annotate(&mut event);
        if !self.limiter.admit(&event, Instant::now()) {
            self.metrics.rate_limited.inc();
            return true;
        }
        if self.sender.send(event).is_err() {
            return false;
        }
        self.metrics.sent.inc();
        true
    }
}

/// The running listeners.
#[derive(Debug)]
pub struct Intake {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    metrics: Arc<IntakeMetrics>,
    docker: Option<DockerFollower>,
    unix_path: Option<PathBuf>,
    /// The addresses actually bound (a configured port 0 becomes the kernel's choice).
    pub udp_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
}

impl Intake {
    /// Bind every configured listener (all bind before any runs, so a bad address fails the
    /// start cleanly) and start their threads.
    pub fn start(
        config: &IntakeConfig,
        sender: &EventSender,
        metrics: Arc<IntakeMetrics>,
    ) -> Result<Self, IntakeError> {
        if let Some(d) = &config.docker_logs {
            d.validate()?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let unix = config.unix.as_deref().map(bind_unix).transpose()?;
        let udp = config
            .udp
            .map(|addr| {
                std::net::UdpSocket::bind(addr).map_err(|source| IntakeError::Net {
                    proto: "udp",
                    addr,
                    source,
                })
            })
            .transpose()?;
        let tcp = config
            .tcp
            .map(|addr| {
                std::net::TcpListener::bind(addr).map_err(|source| IntakeError::Net {
                    proto: "tcp",
                    addr,
                    source,
                })
            })
            .transpose()?;
        #[cfg(feature = "tls")]
        let tls = config
            .tls
            .as_ref()
            .map(|(addr, identity)| {
                let server = tls::server_config(identity)?;
                let listener =
                    std::net::TcpListener::bind(addr).map_err(|source| IntakeError::Net {
                        proto: "tls",
                        addr: *addr,
                        source,
                    })?;
                Ok::<_, IntakeError>((listener, server))
            })
            .transpose()?;
        #[cfg(feature = "tls")]
        let tls_addr = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
        #[cfg(not(feature = "tls"))]
        let tls_addr = None;
        let udp_addr = udp.as_ref().and_then(|s| s.local_addr().ok());
        let tcp_addr = tcp.as_ref().and_then(|s| s.local_addr().ok());
        let mut threads = Vec::new();
        let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("intake-{name}"))
                .spawn(f)
                .map_err(|e| IntakeError::Thread(name, e))
        };
        if let Some(sock) = unix {
            let _ = sock.set_read_timeout(Some(POLL));
            let mut ingest = Ingest::new(config, sender.clone(), Arc::clone(&metrics));
            let stop = Arc::clone(&stop);
            threads.push(spawn(
                "unix",
                Box::new(move || batch::receive_loop(&sock, &mut ingest, &stop)),
            )?);
        }
        if let Some(sock) = udp {
            let _ = sock.set_read_timeout(Some(POLL));
            let mut ingest = Ingest::new(config, sender.clone(), Arc::clone(&metrics));
            let stop = Arc::clone(&stop);
            threads.push(spawn(
                "udp",
                Box::new(move || batch::receive_loop(&sock, &mut ingest, &stop)),
            )?);
        }
        if let Some(listener) = tcp {
            let config = config.clone();
            let sender = sender.clone();
            let metrics = Arc::clone(&metrics);
            let stop = Arc::clone(&stop);
            threads.push(spawn(
                "tcp",
                Box::new(move || tcp::accept_loop(&listener, &config, &sender, &metrics, &stop)),
            )?);
        }
        #[cfg(feature = "tls")]
        if let Some((listener, server)) = tls {
            let config = config.clone();
            let sender = sender.clone();
            let metrics = Arc::clone(&metrics);
            let stop = Arc::clone(&stop);
            threads.push(spawn(
                "tls",
                Box::new(move || {
                    tls::accept_loop(&listener, &server, &config, &sender, &metrics, &stop);
                }),
            )?);
        }
        let docker = match config
            .docker_logs
            .as_ref()
            .map(|d| DockerFollower::start(d, config, sender, &metrics))
            .transpose()
        {
            Ok(d) => d,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        };
        Ok(Self {
            stop,
            threads,
            metrics,
            docker,
            unix_path: config.unix.clone(),
            udp_addr,
            tcp_addr,
            tls_addr,
        })
    }

    pub fn metrics(&self) -> &Arc<IntakeMetrics> {
        &self.metrics
    }

    /// Stop every listener and wait for them (messages already received are handed on).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(docker) = self.docker.take() {
            docker.stop();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests;

/// Bind the unix datagram socket, replacing a stale socket file from a previous run (but never
/// a regular file someone put there).
fn bind_unix(path: &Path) -> Result<UnixDatagram, IntakeError> {
    use std::os::unix::fs::FileTypeExt;
    let fail = |source| IntakeError::Unix {
        path: path.to_owned(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path).map_err(fail)?;
        } else {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )));
        }
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    warn_if_short_unix_queue(
        std::fs::read_to_string(UNIX_QUEUE_SYSCTL)
            .ok()
            .and_then(|v| v.trim().parse().ok()),
    );
    let sock = UnixDatagram::bind(path).map_err(fail)?;
    batch::grow_receive_buffer(&sock);
    Ok(sock)
}

/// How many datagrams a unix datagram socket queues before its senders block, as the kernel
/// sets it when the socket is created.
const UNIX_QUEUE_SYSCTL: &str = "/proc/sys/net/unix/max_dgram_qlen";
/// systemd's default (`50-default.conf`), which a stock Debian 12 machine runs with.
const UNIX_QUEUE_ADVISED: u32 = 512;

/// Warn when the kernel's unix datagram queue is shorter than systemd's default: the kernel's
/// own default of 10 makes every emitter block after 10 queued messages, and sender and
/// intake then wake each other for every few datagrams (measured: about a third fewer
/// messages per second in a flood). Returns whether it warned.
fn warn_if_short_unix_queue(queue: Option<u32>) -> bool {
    match queue {
        Some(n) if n < UNIX_QUEUE_ADVISED => {
            tracing::warn!(
                max_dgram_qlen = n,
                "net.unix.max_dgram_qlen is {n}: services block after {n} queued log messages; \
                 `sysctl -w net.unix.max_dgram_qlen={UNIX_QUEUE_ADVISED}` (systemd's default) \
                 before starting decnet lets bursts queue"
            );
            true
        }
        _ => false,
    }
}
