//! Live packet capture: AF_XDP (XDP program + one pinned, busy-polling thread per RX queue) with
//! AF_PACKET `TPACKET_V3` as the fallback, on a dedicated interface or a tc mirror of a decoy one.
//!
//! [`Capture::open`] picks and sets up a backend from a [`CaptureConfig`]; [`Capture::run`] (or
//! [`capture_to_callback`]) drives one thread per queue, handing each frame to a
//! [`FrameConsumer`] until a stop flag is set. Dropping a [`Capture`] (or [`Capture::stop`], which
//! also reports errors) closes the sockets, detaches XDP and removes any mirror state.

mod af_packet;
mod af_xdp;
mod filter;
mod mirror;
mod sys;
mod xdp;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use af_packet::PacketSocket;
pub use af_xdp::{XskBindMode, XskSocket};
pub use filter::CaptureFilter;
pub use mirror::Mirror;
pub use xdp::{AttachedMode, XdpCounters, XdpProgram};

/// Errors of the capture path. Messages name the failing call or command.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// The call and its target.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The interface does not exist.
    #[error("no such network interface: {0}")]
    NoInterface(String),
    /// Loading, attaching or configuring the XDP program failed.
    #[error("XDP: {0}")]
    Xdp(String),
    /// An `ip`/`tc` command failed.
    #[error("`{cmd}` failed: {detail}")]
    Command {
        /// The command line.
        cmd: String,
        /// Exit status and stderr.
        detail: String,
    },
    /// The configuration cannot work.
    #[error("capture configuration: {0}")]
    Config(String),
    /// A capture thread panicked (a bug in a consumer).
    #[error("capture thread for queue {0} panicked")]
    ThreadPanicked(usize),
}

/// Receives captured frames. `data` is valid only during the call (it points into the ring).
pub trait FrameConsumer {
    /// One frame and its capture time (ns since the Unix epoch; AF_XDP: time of the batch).
    fn frame(&mut self, data: &[u8], ts_ns: u64);
    /// The frame that will follow the next call to [`FrameConsumer::frame`], announced before
    /// it so the consumer can start fetching what that frame will need (its flow's bucket in a
    /// large flow table) while the current one is analysed. A hint: it may be skipped.
    fn upcoming(&mut self, _data: &[u8]) {}
    /// Called after each non-empty batch (a place to flush).
    fn batch_end(&mut self) {}
    /// Called by [`Capture::run`] when a wait ended with no frame (a place for time-driven
    /// work on an idle link: flushing, timeouts).
    fn idle(&mut self) {}
}

/// Counters of every queue of a running capture, published by the capture threads about
/// once a second (see [`Capture::live_stats`]), so they can be read while [`Capture::run`]
/// holds the capture.
#[derive(Debug, Default)]
pub struct LiveStats {
    queues: std::sync::Mutex<Vec<CaptureStats>>,
    xdp: std::sync::Mutex<Option<XdpCounters>>,
}

impl LiveStats {
    /// Counters summed over queues, as last published.
    pub fn total(&self) -> CaptureStats {
        let mut total = CaptureStats::default();
        if let Ok(q) = self.queues.lock() {
            for s in q.iter() {
                total += *s;
            }
        }
        total
    }

    /// The XDP program's counters as last published (None with AF_PACKET).
    pub fn xdp(&self) -> Option<XdpCounters> {
        self.xdp.lock().ok().and_then(|x| *x)
    }

    /// Prometheus sample lines (`component="capture"`; XDP counters only with AF_XDP).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let t = self.total();
        let rows: [(&str, &str, u64); 6] = [
            ("component_received_packets_total", "", t.received),
            ("component_received_bytes_total", "", t.bytes),
            ("component_discarded_packets_total", "ring_full", t.dropped),
            (
                "component_discarded_packets_total",
                "kernel",
                t.kernel_drops,
            ),
            ("component_discarded_packets_total", "filtered", t.filtered),
            (
                "capture_queues",
                "",
                self.queues.lock().map_or(0, |q| q.len() as u64),
            ),
        ];
        for (name, reason, v) in rows {
            let _ = write!(out, "decnet_{name}{{component=\"capture\"");
            if !reason.is_empty() {
                let _ = write!(out, ",reason=\"{reason}\"");
            }
            let _ = writeln!(out, "}} {v}");
        }
        if let Some(x) = self.xdp() {
            for (action, v) in [
                ("seen", x.seen),
                ("redirected", x.redirected),
                ("passed", x.passed),
                ("no_socket", x.dropped),
            ] {
                let _ = writeln!(
                    out,
                    "decnet_xdp_packets_total{{component=\"capture\",action=\"{action}\"}} {v}"
                );
            }
        }
    }

    fn publish_xdp(&self, counters: XdpCounters) {
        if let Ok(mut x) = self.xdp.lock() {
            *x = Some(counters);
        }
    }

    fn publish(&self, queue: usize, stats: CaptureStats) {
        if let Ok(mut q) = self.queues.lock() {
            if q.len() <= queue {
                q.resize(queue + 1, CaptureStats::default());
            }
            q[queue] = stats;
        }
    }
}

impl<F: FnMut(&[u8], u64)> FrameConsumer for F {
    fn frame(&mut self, data: &[u8], ts_ns: u64) {
        self(data, ts_ns);
    }
}

/// Counters of one backend instance (one queue) or, summed, of a whole capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames handed to the consumer.
    pub received: u64,
    /// Bytes handed to the consumer.
    pub bytes: u64,
    /// Frames lost because the receive ring was full or had no free buffer (the consumer was
    /// too slow): AF_XDP `rx_ring_full + rx_dropped`, AF_PACKET `tp_drops`.
    pub dropped: u64,
    /// Frames lost before the ring for other reasons: invalid AF_XDP descriptors and, at the
    /// capture level, XDP-matched frames that found no socket on their queue.
    pub kernel_drops: u64,
    /// Frames the user-space filter discarded (AF_PACKET with a non-empty filter).
    pub filtered: u64,
}

impl std::ops::AddAssign for CaptureStats {
    fn add_assign(&mut self, o: Self) {
        self.received += o.received;
        self.bytes += o.bytes;
        self.dropped += o.dropped;
        self.kernel_drops += o.kernel_drops;
        self.filtered += o.filtered;
    }
}

/// One receive path (one queue's AF_XDP socket, or one AF_PACKET ring).
pub trait CaptureBackend: Send + std::fmt::Debug {
    /// Delivers the frames available now (waiting up to `timeout_ms` for the first one) to
    /// `consumer`; returns how many. `Ok(0)` means the wait timed out.
    fn recv_batch(
        &mut self,
        timeout_ms: i32,
        consumer: &mut dyn FrameConsumer,
    ) -> Result<usize, CaptureError>;
    /// Current counters (kernel counters are read now).
    fn stats(&mut self) -> CaptureStats;
    /// Human-readable description, for logs.
    fn describe(&self) -> String;
}

/// Which backend to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// AF_XDP, falling back to AF_PACKET (the reason is logged and kept in [`CaptureInfo`]).
    #[default]
    Auto,
    /// AF_XDP only.
    Xdp,
    /// AF_PACKET `TPACKET_V3` only.
    Packet,
}

impl std::str::FromStr for BackendChoice {
    type Err = CaptureError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "xdp" => Ok(Self::Xdp),
            "packet" => Ok(Self::Packet),
            _ => Err(CaptureError::Config(format!(
                "backend {s:?}: expected auto, xdp or packet"
            ))),
        }
    }
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XdpAttach {
    /// Native (driver) mode, else generic (SKB) mode.
    #[default]
    Auto,
    /// Native only.
    Native,
    /// Generic only.
    Generic,
}

/// Where frames come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaptureMode {
    /// Capture on the interface itself (a SPAN/TAP port, or a host interface).
    #[default]
    Dedicated,
    /// Mirror both directions of the interface into an internal veth pair and capture there.
    Mirror,
}

/// AF_XDP socket sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// UMEM frames per queue.
    pub frames: u32,
    /// UMEM frame size (2048 or 4096).
    pub frame_size: u32,
    /// RX ring entries (power of two).
    pub rx_ring: u32,
    /// Fill ring entries (power of two).
    pub fill_ring: u32,
    /// Empty polls of the RX ring before sleeping in `poll()`.
    pub busy_poll_spins: u32,
    /// When a wakeup finds fewer than half a batch, sleep this long (µs) before taking them,
    /// so idle-ish links cost one wakeup per batch rather than per frame. 0 disables.
    pub coalesce_us: u32,
    /// Upper bound (µs) of an adaptive coalescing sleep: while wakeups keep finding less than
    /// a quarter of a batch the sleep doubles up to this, and it halves when one finds a full
    /// batch waiting, so each wakeup carries about a batch whatever the rate. At most
    /// `coalesce_max_us` × rate frames wait in the RX ring, so keep it well under
    /// `rx_ring` / peak rate. 0 (or ≤ `coalesce_us`) keeps the sleep fixed at `coalesce_us`.
    pub coalesce_max_us: u32,
    /// Most frames handled per batch.
    pub batch: u32,
    /// Try zero-copy before copy mode.
    pub try_zero_copy: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            frames: 4096,
            frame_size: 2048,
            rx_ring: 2048,
            fill_ring: 2048,
            busy_poll_spins: 2000,
            coalesce_us: 0,
            coalesce_max_us: 0,
            batch: 256,
            try_zero_copy: true,
        }
    }
}

/// AF_PACKET ring sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRingConfig {
    /// Block size in bytes (power of two).
    pub block_size: usize,
    /// Number of blocks.
    pub block_count: usize,
    /// A partly filled block is handed over after this long (ms). A full block is handed over
    /// at once, so this bounds only a slow link's latency; each handover costs a wakeup
    /// (100 ms: 10 wakeups a second instead of 100 at 10 ms, −30 % CPU per packet at 50 kpps).
    pub block_timeout_ms: u32,
    /// Sockets (and threads) in a `PACKET_FANOUT_HASH` group; 1 = a single socket.
    pub fanout: u32,
}

impl Default for PacketRingConfig {
    fn default() -> Self {
        Self {
            block_size: 1 << 20,
            block_count: 16,
            block_timeout_ms: 100,
            fanout: 1,
        }
    }
}

/// Everything [`Capture::open`] needs.
#[derive(Debug, Clone, Default)]
pub struct CaptureConfig {
    /// Capture interface (dedicated) or decoy-facing interface (mirror).
    pub interface: String,
    /// Dedicated or mirror.
    pub mode: CaptureMode,
    /// Backend selection.
    pub backend: BackendChoice,
    /// XDP attach mode.
    pub xdp_attach: XdpAttach,
    /// What to capture.
    pub filter: CaptureFilter,
    /// Put the interface in promiscuous mode while capturing.
    pub promiscuous: bool,
    /// Pin each queue's thread to its own CPU.
    pub pin_threads: bool,
    /// AF_XDP sizing.
    pub xsk: XskConfig,
    /// AF_PACKET sizing.
    pub packet: PacketRingConfig,
}

impl CaptureConfig {
    /// Defaults for `interface`: auto backend, dedicated mode, capture everything, promiscuous, pinned.
    pub fn new(interface: impl Into<String>) -> Self {
        Self {
            interface: interface.into(),
            promiscuous: true,
            pin_threads: true,
            ..Self::default()
        }
    }
}

/// The backend actually in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// AF_XDP.
    Xdp {
        /// Where the XDP program runs.
        attach: AttachedMode,
        /// How the sockets are bound.
        bind: XskBindMode,
    },
    /// AF_PACKET `TPACKET_V3`.
    Packet,
}

/// What [`Capture::open`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureInfo {
    /// Backend in use.
    pub backend: BackendKind,
    /// Interface the backend reads (the veth end in mirror mode).
    pub capture_interface: String,
    /// Number of receive queues (threads).
    pub queues: usize,
    /// Why AF_XDP was not used, when `auto` fell back to AF_PACKET.
    pub fallback_reason: Option<String>,
}

/// An open capture. Field order is the teardown order: sockets, then XDP, then the mirror.
#[derive(Debug)]
pub struct Capture {
    queues: Vec<Box<dyn CaptureBackend>>,
    /// AF_XDP has no membership API of its own: a packet-socket guard keeps the NIC promiscuous.
    promisc: Option<std::os::fd::OwnedFd>,
    xdp: Option<XdpProgram>,
    mirror: Option<Mirror>,
    info: CaptureInfo,
    pin_threads: bool,
    live: std::sync::Arc<LiveStats>,
}

impl Capture {
    /// Sets up capture as configured. In `auto`, any AF_XDP failure falls back to AF_PACKET.
    pub fn open(cfg: &CaptureConfig) -> Result<Self, CaptureError> {
        let mirror = match cfg.mode {
            CaptureMode::Dedicated => None,
            CaptureMode::Mirror => Some(Mirror::create(&cfg.interface)?),
        };
        let iface = mirror
            .as_ref()
            .map_or(cfg.interface.as_str(), Mirror::capture_interface)
            .to_owned();
        sys::ifindex(&iface)?;
        let mut fallback_reason = None;
        if cfg.backend != BackendChoice::Packet {
            match open_xdp(&iface, cfg) {
                Ok((xdp, queues, bind)) => {
                    let info = CaptureInfo {
                        backend: BackendKind::Xdp {
                            attach: xdp.mode(),
                            bind,
                        },
                        capture_interface: iface,
                        queues: queues.len(),
                        fallback_reason: None,
                    };
                    // The program only redirects; frames not addressed to us still need promiscuity.
                    let promisc = if cfg.promiscuous {
                        Some(sys::promisc_guard(sys::ifindex(&info.capture_interface)?)?)
                    } else {
                        None
                    };
                    return Ok(Self {
                        queues,
                        promisc,
                        xdp: Some(xdp),
                        mirror,
                        info,
                        pin_threads: cfg.pin_threads,
                        live: std::sync::Arc::default(),
                    });
                }
                Err(e) if cfg.backend == BackendChoice::Auto => {
                    tracing::warn!(interface = %iface, error = %e, "AF_XDP unavailable, falling back to AF_PACKET");
                    fallback_reason = Some(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        let n = cfg.packet.fanout.clamp(1, 64);
        let group = (n > 1).then(fanout_group_id);
        let mut queues: Queues = Vec::new();
        for _ in 0..n {
            let sock = PacketSocket::open(
                &iface,
                &cfg.packet,
                cfg.filter.clone(),
                cfg.promiscuous,
                group,
            )?;
            queues.push(Box::new(sock));
        }
        let info = CaptureInfo {
            backend: BackendKind::Packet,
            capture_interface: iface,
            queues: queues.len(),
            fallback_reason,
        };
        Ok(Self {
            queues,
            promisc: None,
            xdp: None,
            mirror,
            info,
            pin_threads: cfg.pin_threads,
            live: std::sync::Arc::default(),
        })
    }

    /// Per-queue counters that the threads of [`Capture::run`] publish about once a second.
    pub fn live_stats(&self) -> std::sync::Arc<LiveStats> {
        std::sync::Arc::clone(&self.live)
    }

    /// What was set up.
    pub fn info(&self) -> &CaptureInfo {
        &self.info
    }

    /// The mirror's state, in mirror mode.
    pub fn mirror(&self) -> Option<&Mirror> {
        self.mirror.as_ref()
    }

    /// The receive paths, one per queue, for callers that drive them themselves.
    pub fn backends_mut(&mut self) -> &mut [Box<dyn CaptureBackend>] {
        &mut self.queues
    }

    /// Counters summed over queues, plus the XDP program's no-socket drops.
    pub fn stats(&mut self) -> CaptureStats {
        let mut total = CaptureStats::default();
        for q in &mut self.queues {
            total += q.stats();
        }
        if let Some(Ok(c)) = self.xdp_counters() {
            total.kernel_drops += c.dropped;
        }
        total
    }

    /// The XDP program's counters (None with AF_PACKET).
    pub fn xdp_counters(&self) -> Option<Result<XdpCounters, CaptureError>> {
        self.xdp.as_ref().map(XdpProgram::counters)
    }

    /// Runs one thread per queue until `stop` is set, each feeding the consumer `make(queue)`
    /// built for it; returns the consumers. Threads are pinned to CPUs when configured.
    pub fn run<C, F>(&mut self, stop: &AtomicBool, mut make: F) -> Result<Vec<C>, CaptureError>
    where
        C: FrameConsumer + Send,
        F: FnMut(usize) -> C,
    {
        let pin = self.pin_threads;
        let live = &self.live;
        let xdp = self.xdp.as_ref();
        // Each queue thread counts itself out and wakes this one as it ends, so the wait below
        // can sleep a whole second between counter reads.
        let waiter = std::thread::current();
        let ended = AtomicUsize::new(0);
        let ended = &ended;
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .queues
                .iter_mut()
                .enumerate()
                .map(|(i, q)| {
                    let mut consumer = make(i);
                    let waiter = waiter.clone();
                    std::thread::Builder::new()
                        .name(format!("capture-q{i}"))
                        .spawn_scoped(s, move || -> Result<C, CaptureError> {
                            let _wake_on_exit = WakeOnDrop(waiter, ended);
                            if pin {
                                match sys::pin_current_thread(i) {
                                    Ok(cpu) => tracing::debug!(queue = i, cpu, "capture thread pinned"),
                                    Err(e) => tracing::warn!(queue = i, error = %e, "cannot pin capture thread"),
                                }
                            }
                            let mut published = std::time::Instant::now();
                            while !stop.load(Ordering::Relaxed) {
                                if q.recv_batch(100, &mut consumer)? == 0 {
                                    consumer.idle();
                                }
                                if published.elapsed() >= std::time::Duration::from_secs(1) {
                                    live.publish(i, q.stats());
                                    published = std::time::Instant::now();
                                }
                            }
                            live.publish(i, q.stats());
                            Ok(consumer)
                        })
                        .map_err(|e| CaptureError::Os { what: "spawn capture thread".into(), source: e })
                })
                .collect();
            // This thread only waits for the queues: it publishes the XDP program's counters
            // once a second meanwhile (the program is not shared with the queue threads), and
            // sleeps in between — a queue thread that ends wakes it at once.
            if let Some(xdp) = xdp {
                let every = std::time::Duration::from_secs(1);
                let started = handles.iter().filter(|h| h.is_ok()).count();
                let mut last: Option<std::time::Instant> = None;
                while ended.load(Ordering::Acquire) < started {
                    if last.is_none_or(|l| l.elapsed() >= every) {
                        match xdp.counters() {
                            Ok(c) => live.publish_xdp(c),
                            Err(e) => tracing::debug!(error = %e, "reading the XDP counters"),
                        }
                        last = Some(std::time::Instant::now());
                    }
                    let next = last.map_or(every, |l| every.saturating_sub(l.elapsed()));
                    std::thread::park_timeout(next);
                }
                if let Ok(c) = xdp.counters() {
                    live.publish_xdp(c);
                }
            }
            let mut out = Vec::new();
            let mut first_err = None;
            for (i, h) in handles.into_iter().enumerate() {
                match h.map(std::thread::ScopedJoinHandle::join) {
                    Ok(Ok(Ok(c))) => out.push(c),
                    Ok(Ok(Err(e))) | Err(e) => {
                        // One queue failing stops the others: a partial capture would be silent loss.
                        stop.store(true, Ordering::Relaxed);
                        first_err.get_or_insert(e);
                    }
                    Ok(Err(_)) => {
                        stop.store(true, Ordering::Relaxed);
                        first_err.get_or_insert(CaptureError::ThreadPanicked(i));
                    }
                }
            }
            first_err.map_or(Ok(out), Err)
        })
    }

    /// Tears everything down in order, reporting mirror cleanup failures (drop only logs them).
    pub fn stop(mut self) -> Result<(), CaptureError> {
        self.queues.clear();
        self.promisc = None;
        self.xdp = None;
        match self.mirror.take() {
            Some(mut m) => m.remove(),
            None => Ok(()),
        }
    }
}

/// A fanout group id unlikely to collide with another capture on the host (ids are global).
fn fanout_group_id() -> u16 {
    static SEQ: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let pid = std::process::id() as u16;
    pid.rotate_left(5) ^ SEQ.fetch_add(1, Ordering::Relaxed)
}

/// One receive path per RX queue.
type Queues = Vec<Box<dyn CaptureBackend>>;

fn open_xdp(
    iface: &str,
    cfg: &CaptureConfig,
) -> Result<(XdpProgram, Queues, XskBindMode), CaptureError> {
    let ifindex = sys::ifindex(iface)?;
    let nq = sys::rx_queue_count(iface).min(decnet_ebpf::MAX_QUEUES);
    let mut xdp = XdpProgram::attach(iface, cfg.xdp_attach, &cfg.filter)?;
    let mut queues: Vec<Box<dyn CaptureBackend>> = Vec::new();
    let mut bind = XskBindMode::Copy;
    for q in 0..nq {
        let sock = open_xsk(ifindex, q, &cfg.xsk)?;
        bind = sock.bind_mode();
        xdp.register_socket(q, sock.raw_fd())?;
        queues.push(Box::new(sock));
    }
    tracing::info!(interface = iface, queues = nq, attach = ?xdp.mode(), ?bind, "AF_XDP capture ready");
    Ok((xdp, queues, bind))
}

fn open_xsk(ifindex: u32, q: u32, cfg: &XskConfig) -> Result<XskSocket, CaptureError> {
    if cfg.try_zero_copy {
        match XskSocket::open(ifindex, q, cfg, XskBindMode::ZeroCopy) {
            Ok(s) => return Ok(s),
            // A failed bind may leave the UMEM half-assigned: start again with a fresh socket.
            Err(e) => {
                tracing::debug!(queue = q, error = %e, "zero-copy bind failed, using copy mode");
            }
        }
    }
    XskSocket::open(ifindex, q, cfg, XskBindMode::Copy)
}

/// Opens a capture, runs it until `stop`, tears it down. Returns what was chosen, the final
/// counters, the XDP counters (AF_XDP only) and the per-queue consumers.
pub fn capture_to_callback<C, F>(
    cfg: &CaptureConfig,
    stop: &AtomicBool,
    make: F,
) -> Result<CaptureReport<C>, CaptureError>
where
    C: FrameConsumer + Send,
    F: FnMut(usize) -> C,
{
    let mut cap = Capture::open(cfg)?;
    let consumers = cap.run(stop, make)?;
    let stats = cap.stats();
    let xdp = cap.xdp_counters().transpose()?;
    let info = cap.info().clone();
    cap.stop()?;
    Ok(CaptureReport {
        info,
        stats,
        xdp,
        consumers,
    })
}

/// Result of [`capture_to_callback`].
#[derive(Debug)]
pub struct CaptureReport<C> {
    /// What was set up.
    pub info: CaptureInfo,
    /// Final counters.
    pub stats: CaptureStats,
    /// Final XDP program counters (AF_XDP only).
    pub xdp: Option<XdpCounters>,
    /// The consumers, one per queue.
    pub consumers: Vec<C>,
}

/// Counts a queue thread out and unparks the waiting thread when dropped, however the queue
/// thread ends (return, error or panic).
struct WakeOnDrop<'a>(std::thread::Thread, &'a AtomicUsize);

impl Drop for WakeOnDrop<'_> {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::Release);
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The waiting thread sleeps up to a second between XDP counter reads; a queue thread that
    /// ends — normally or by panicking — must count itself out and wake it at once.
    #[test]
    fn a_queue_thread_that_ends_wakes_the_waiter_and_counts_itself_out() {
        let ended = AtomicUsize::new(0);
        for panics in [false, true] {
            let before = ended.load(Ordering::Acquire);
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                let waiter = std::thread::current();
                let ended = &ended;
                let h = s.spawn(move || {
                    let _wake = WakeOnDrop(waiter, ended);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    assert!(!panics, "queue thread failed");
                });
                while ended.load(Ordering::Acquire) == before {
                    std::thread::park_timeout(std::time::Duration::from_secs(10));
                }
                assert_eq!(h.join().is_err(), panics);
            });
            assert_eq!(ended.load(Ordering::Acquire), before + 1);
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "woken only by the timeout: {:?}",
                start.elapsed()
            );
        }
    }
}
