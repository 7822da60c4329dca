//! TCP syslog (RFC 6587): octet-counting or LF framing, detected per connection by the
//! sans-IO [`FrameDecoder`]; one thread per sender, bounded in number overall and per source
//! address, each dropped when it completes no message for [`IntakeConfig::tcp_idle`].

use std::{
    collections::HashMap,
    io::Read,
    net::{IpAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use decnet_store::pipeline::EventSender;

use super::{Ingest, IntakeConfig, IntakeMetrics, POLL};
use crate::syslog::FrameDecoder;

/// The senders being served: in all, and per source address.
#[derive(Debug, Default)]
struct Places {
    per_source: Mutex<HashMap<IpAddr, usize>>,
    live: AtomicUsize,
}

impl Places {
    /// A place for a sender from `ip`, or why there is none.
    fn claim(self: &Arc<Self>, ip: IpAddr, config: &IntakeConfig) -> Result<Place, String> {
        let mut map = self
            .per_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.live.load(Ordering::Relaxed) >= config.max_tcp_connections {
            return Err(format!("too many senders ({})", config.max_tcp_connections));
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= config.max_tcp_connections_per_source {
            return Err(format!(
                "too many from this address ({})",
                config.max_tcp_connections_per_source
            ));
        }
        *n += 1;
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(Place {
            places: Arc::clone(self),
            ip,
        })
    }
}

/// One sender's place, given back when dropped: when it leaves, when its setup fails, when
/// its thread cannot start or panics.
#[derive(Debug)]
struct Place {
    places: Arc<Places>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut map = self
            .places
            .per_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.places.live.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) fn accept_loop(
    listener: &TcpListener,
    config: &IntakeConfig,
    sender: &EventSender,
    metrics: &Arc<IntakeMetrics>,
    stop: &Arc<AtomicBool>,
) {
    accept_with(listener, "tcp", config, sender, metrics, stop, Ok);
}

/// Accept senders on `listener` (plain TCP, or TLS through `wrap`), one bounded thread each.
/// `wrap` turns an accepted connection (already blocking with the [`POLL`] read timeout) into
/// the stream frames are read from; its error is logged and the connection dropped.
pub(crate) fn accept_with<S: Read + Send + 'static>(
    listener: &TcpListener,
    proto: &'static str,
    config: &IntakeConfig,
    sender: &EventSender,
    metrics: &Arc<IntakeMetrics>,
    stop: &Arc<AtomicBool>,
    wrap: impl Fn(TcpStream) -> Result<S, String>,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!(error = %e, "{proto} intake cannot poll its listener");
        return;
    }
    let places = Arc::new(Places::default());
    while !stop.load(Ordering::Relaxed) {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                metrics.socket_errors.inc();
                tracing::warn!(error = %e, "{proto} intake accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let place = match places.claim(peer.ip(), config) {
            Ok(place) => place,
            Err(why) => {
                metrics.refused_connections.inc();
                tracing::warn!(%peer, "{proto} intake connection refused: {why}");
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(POLL));
        let stream = match wrap(stream) {
            Ok(s) => s,
            Err(e) => {
                metrics.socket_errors.inc();
                tracing::warn!(%peer, error = %e, "{proto} intake session setup failed");
                continue;
            }
        };
        let mut ingest = Ingest::new(config, sender.clone(), Arc::clone(metrics));
        let max_frame = config.limits.max_message_len;
        let idle = config.tcp_idle;
        let stop = Arc::clone(stop);
        let spawned = std::thread::Builder::new()
            .name(format!("intake-{proto}-conn"))
            .spawn(move || {
                let _place = place;
                serve(stream, &mut ingest, max_frame, idle, &stop);
            });
        if let Err(e) = spawned {
            metrics.socket_errors.inc();
            tracing::warn!(error = %e, "{proto} intake cannot start a connection thread");
        }
    }
}

/// Read frames from one sender until it closes, completes no message for `idle` or the
/// intake stops. `stream` must time out its reads at [`POLL`] so the stop flag is seen.
pub(crate) fn serve(
    mut stream: impl Read,
    ingest: &mut Ingest,
    max_frame: usize,
    idle: Duration,
    stop: &AtomicBool,
) {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_message = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || last_message.elapsed() >= idle {
            return;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        decoder.push(&buf[..n]);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    last_message = Instant::now();
                    if !ingest.message(frame) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    ingest.metrics.framing_errors.inc();
                    tracing::warn!(error = %e, "tcp syslog framing error");
                    if e.is_fatal() {
                        return;
                    }
                }
            }
        }
    }
    // The peer closed: a last LF-less line still counts.
    if let Ok(Some(frame)) = decoder.finish() {
        ingest.message(frame);
    }
}
