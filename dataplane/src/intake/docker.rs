//! Docker logs follower: syslog lines that custom services print to stdout/stderr.
//!
//! A service that cannot write to the intake socket can print RFC 5424 (or RFC 3164) lines;
//! this follows the logs of every running container matching a label selector (by default
//! `fleet.role=service`, or every container), one lightweight task per container and no cap
//! on their number. Docker `events` (`start`, `die`, `destroy`) attach new containers and
//! forget removed ones; if the engine goes away the follower reconnects with backoff.
//!
//! Each complete line goes through the same parse → event → lifecycle limiter → store path as
//! the socket listeners ([`super::Ingest`]), on one ingest thread fed by a bounded channel (a
//! full store queue slows the followers down instead of blocking the async runtime). Events
//! get `container` and `container_id` fields, and the container name as decky when the line
//! names no host.
//!
//! # Delivery
//!
//! Logs are asked for with Docker timestamps, which are stripped before parsing: they are what
//! makes re-attaching exact. Per container the follower remembers (in memory) the timestamp of
//! the last log entry it handed on, re-attaches with `since` at that second and skips entries
//! up to that nanosecond, so a container restart, or the engine coming back, neither
//! duplicates nor loses lines. Every container is read from the moment the follower started
//! (or from its own start, if later): lines printed while no collector ran are not read back —
//! at-most-once across collector restarts, chosen so a restarted collector never stores an
//! attack twice — and within one collector run delivery is exactly once, except that a line
//! half read when the engine connection breaks is handed on as it was and again in full.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bollard::{
    Docker,
    container::LogOutput,
    query_parameters::{EventsOptions, ListContainersOptions, LogsOptions},
};
use decnet_store::{Event, pipeline::EventSender};
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, watch};

use super::{Ingest, IntakeConfig, IntakeError, IntakeMetrics};

/// The label the fleet engine puts on service containers.
pub const DEFAULT_LABEL: &str = "fleet.role=service";
/// Lines waiting for the ingest thread.
const QUEUE: usize = 4096;
/// Reconnect backoff bounds.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a restarted container's new follower waits for the previous run's to drain.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Which containers to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerLogsConfig {
    /// Follow containers carrying every one of these labels (`key=value`, or `key` for any
    /// value). Ignored when `all` is set.
    pub labels: Vec<String>,
    /// Follow every container.
    pub all: bool,
}

impl Default for DockerLogsConfig {
    fn default() -> Self {
        Self {
            labels: vec![DEFAULT_LABEL.to_owned()],
            all: false,
        }
    }
}

impl DockerLogsConfig {
    /// The Docker `label` filter, `None` for every container.
    fn label_filter(&self) -> Option<Vec<String>> {
        (!self.all && !self.labels.is_empty()).then(|| self.labels.clone())
    }

    /// Every label must have a key.
    pub(crate) fn validate(&self) -> Result<(), IntakeError> {
        for label in &self.labels {
            let key = label.split_once('=').map_or(label.as_str(), |(k, _)| k);
            if key.trim().is_empty() || key.contains(char::is_whitespace) {
                return Err(IntakeError::DockerLabel(label.clone()));
            }
        }
        Ok(())
    }
}

/// The container a line came from.
#[derive(Debug)]
struct Container {
    id: String,
    name: String,
}

/// One complete line, on its way to the ingest thread.
#[derive(Debug)]
struct Line {
    bytes: Vec<u8>,
    container: Arc<Container>,
}

/// The running follower: an async runtime thread (Docker API) and an ingest thread.
#[derive(Debug)]
pub(crate) struct DockerFollower {
    stop: watch::Sender<bool>,
    runtime: JoinHandle<()>,
    ingest: JoinHandle<()>,
}

impl DockerFollower {
    pub(crate) fn start(
        docker: &DockerLogsConfig,
        config: &IntakeConfig,
        sender: &EventSender,
        metrics: &Arc<IntakeMetrics>,
    ) -> Result<Self, IntakeError> {
        docker.validate()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(IntakeError::DockerRuntime)?;
        let (tx, mut rx) = mpsc::channel::<Line>(QUEUE);
        let (stop, stop_rx) = watch::channel(false);
        let mut ingest = Ingest::new(config, sender.clone(), Arc::clone(metrics));
        let ingest = std::thread::Builder::new()
            .name("intake-docker-ingest".into())
            .spawn(move || {
                while let Some(line) = rx.blocking_recv() {
                    if !ingest.message_with(&line.bytes, |e| annotate(e, &line.container)) {
                        return;
                    }
                }
            })
            .map_err(|e| IntakeError::Thread("docker ingest", e))?;
        let follower = Follower {
            selector: docker.clone(),
            max_line: config.limits.max_message_len,
            tx,
            metrics: Arc::clone(metrics),
            tracked: HashMap::new(),
            started_ns: now_ns(),
        };
        let runtime = std::thread::Builder::new()
            .name("intake-docker".into())
            .spawn(move || {
                rt.block_on(follower.run(stop_rx));
                // Dropping the runtime cancels every container task (and their senders).
                drop(rt);
            })
            .map_err(|e| IntakeError::Thread("docker", e))?;
        Ok(Self {
            stop,
            runtime,
            ingest,
        })
    }

    /// Stop every container task, then let the ingest thread hand on what it holds.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.runtime.join();
        let _ = self.ingest.join();
    }
}

/// Name the container in the event; it is the host when the line named none.
fn annotate(event: &mut Event, container: &Container) {
    if event.decky.is_empty() {
        event.decky.clone_from(&container.name);
    }
    let _ = event.push_field("container", &container.name);
    let short = container.id.get(..12).unwrap_or(&container.id);
    let _ = event.push_field("container_id", short);
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// What the follower remembers of a container across its runs and across reconnects.
#[derive(Debug)]
struct Tracked {
    container: Arc<Container>,
    /// Log entries at or before this time (ns) were handed on or deliberately skipped.
    last_ns: Arc<AtomicI64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Follower {
    selector: DockerLogsConfig,
    max_line: usize,
    tx: mpsc::Sender<Line>,
    metrics: Arc<IntakeMetrics>,
    tracked: HashMap<String, Tracked>,
    /// When the follower started: containers are read from then on.
    started_ns: i64,
}

/// Why a session with the engine ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot reach the Docker engine (DOCKER_HOST or /var/run/docker.sock): {0}")]
    Connect(bollard::errors::Error),
    #[error("Docker {action} failed: {source}")]
    Api {
        action: &'static str,
        source: bollard::errors::Error,
    },
    #[error("the Docker event stream ended")]
    EventsEnded,
}

impl Follower {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let mut connected = false;
            let result = tokio::select! {
                r = self.session(&mut connected) => r,
                _ = stop.wait_for(|s| *s) => break,
            };
            if let Err(e) = result {
                self.metrics.docker_errors.inc();
                tracing::warn!(error = %e, retry_in = ?backoff, "docker logs follower: reconnecting");
            }
            if connected {
                backoff = MIN_BACKOFF;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        for t in self.tracked.values_mut() {
            if let Some(task) = t.task.take() {
                task.abort();
            }
        }
    }

    /// Connect, subscribe to events, attach to the running containers, then follow events
    /// until the engine goes away.
    async fn session(&mut self, connected: &mut bool) -> Result<(), SessionError> {
        let docker = Docker::connect_with_local_defaults().map_err(SessionError::Connect)?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(SessionError::Connect)?;
        docker.ping().await.map_err(SessionError::Connect)?;
        *connected = true;
        let labels = self.selector.label_filter();
        let mut filters: HashMap<String, Vec<String>> = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            (
                "event".to_owned(),
                vec!["start".to_owned(), "die".to_owned(), "destroy".to_owned()],
            ),
        ]);
        if let Some(l) = &labels {
            filters.insert("label".to_owned(), l.clone());
        }
        // Subscribed before listing, so a container starting in between is not missed (a
        // duplicate attach is harmless: the running task is kept).
        let mut events = docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..EventsOptions::default()
        }));
        let mut list_filters = HashMap::from([("status".to_owned(), vec!["running".to_owned()])]);
        if let Some(l) = labels {
            list_filters.insert("label".to_owned(), l);
        }
        let running = docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(list_filters),
                ..ListContainersOptions::default()
            }))
            .await
            .map_err(|source| SessionError::Api {
                action: "container list",
                source,
            })?;
        for c in running {
            let Some(id) = c.id else { continue };
            let name = c.names.and_then(|n| n.into_iter().next()).map_or_else(
                || id.chars().take(12).collect(),
                |n| n.trim_start_matches('/').to_owned(),
            );
            self.attach(&docker, &id, &name, false);
        }
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|source| SessionError::Api {
                action: "event stream",
                source,
            })?;
            let Some(actor) = ev.actor else { continue };
            let Some(id) = actor.id else { continue };
            match ev.action.as_deref() {
                Some("start") => {
                    let name = actor
                        .attributes
                        .as_ref()
                        .and_then(|a| a.get("name"))
                        .cloned()
                        .unwrap_or_else(|| id.chars().take(12).collect());
                    self.attach(&docker, &id, &name, true);
                }
                Some("destroy") => {
                    if let Some(mut t) = self.tracked.remove(&id)
                        && let Some(task) = t.task.take()
                    {
                        // Its stream ended at `die`; give it a moment, then let it go.
                        tokio::spawn(async move {
                            let mut task = task;
                            if tokio::time::timeout(DRAIN_WAIT, &mut task).await.is_err() {
                                task.abort();
                            }
                        });
                    }
                }
                // The log stream ends by itself once the container stopped and its last lines
                // were read; the task then finishes and the gauge drops.
                _ => {}
            }
        }
        Err(SessionError::EventsEnded)
    }

    /// Follow `id` unless a live task already does. `restarted`: the container (re)started,
    /// so a previous task belongs to its last run: it is let finish before the new one reads.
    /// A container met for the first time is read from the follower's start (its `start`
    /// event comes after its first lines, so the event's time would lose them).
    fn attach(&mut self, docker: &Docker, id: &str, name: &str, restarted: bool) {
        let from_ns = self.started_ns;
        let tracked = self
            .tracked
            .entry(id.to_owned())
            .or_insert_with(|| Tracked {
                container: Arc::new(Container {
                    id: id.to_owned(),
                    name: name.to_owned(),
                }),
                last_ns: Arc::new(AtomicI64::new(from_ns)),
                task: None,
            });
        let previous = tracked.task.take();
        if let Some(p) = &previous
            && !p.is_finished()
            && !restarted
        {
            tracked.task = previous;
            return;
        }
        if tracked.container.name != name {
            tracked.container = Arc::new(Container {
                id: id.to_owned(),
                name: name.to_owned(),
            });
        }
        let follow = Follow {
            docker: docker.clone(),
            container: Arc::clone(&tracked.container),
            last_ns: Arc::clone(&tracked.last_ns),
            tx: self.tx.clone(),
            metrics: Arc::clone(&self.metrics),
            max_line: self.max_line,
        };
        tracked.task = Some(tokio::spawn(async move {
            if let Some(mut p) = previous
                && tokio::time::timeout(DRAIN_WAIT, &mut p).await.is_err()
            {
                p.abort();
            }
            follow.run().await;
        }));
    }
}

/// One container's log stream.
struct Follow {
    docker: Docker,
    container: Arc<Container>,
    last_ns: Arc<AtomicI64>,
    tx: mpsc::Sender<Line>,
    metrics: Arc<IntakeMetrics>,
    max_line: usize,
}

/// Counts a followed container while alive (also when the task is cancelled).
struct Followed(Arc<IntakeMetrics>);

impl Followed {
    fn new(metrics: &Arc<IntakeMetrics>) -> Self {
        metrics.docker_containers_followed.inc();
        Self(Arc::clone(metrics))
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        self.0.docker_containers_followed.dec();
    }
}

impl Follow {
    async fn run(self) {
        let _followed = Followed::new(&self.metrics);
        let cut = self.last_ns.load(Ordering::Relaxed);
        let since = i32::try_from(cut.div_euclid(1_000_000_000)).unwrap_or(0);
        let mut stream = self.docker.logs(
            &self.container.id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                since,
                timestamps: true,
                ..LogsOptions::default()
            }),
        );
        tracing::debug!(container = %self.container.name, since, "following docker logs");
        let mut out = LineBuffer::new(self.max_line);
        let mut err = LineBuffer::new(self.max_line);
        let mut lines = Vec::new();
        while let Some(chunk) = stream.next().await {
            let (buffer, bytes) = match chunk {
                Ok(LogOutput::StdErr { message }) => (&mut err, message),
                Ok(
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message },
                ) => (&mut out, message),
                Err(e) => {
                    self.metrics.docker_errors.inc();
                    tracing::debug!(container = %self.container.name, error = %e, "docker log stream ended");
                    break;
                }
            };
            let (ts, body) = split_timestamp(&bytes);
            tracing::trace!(container = %self.container.name, len = bytes.len(), ?ts, "docker log frame");
            if let Some(ts) = ts
                && ts <= self.last_ns.load(Ordering::Relaxed)
            {
                continue;
            }
            let truncated = buffer.push(body, &mut lines);
            self.metrics.docker_truncated_lines.add(truncated);
            if !self.send(&mut lines).await {
                return;
            }
            // Docker gives the pieces of a long line (16 KiB partial entries) the timestamp of
            // the first: the mark only moves once no line is half read.
            if let Some(ts) = ts
                && out.is_idle()
                && err.is_idle()
            {
                self.last_ns.fetch_max(ts, Ordering::Relaxed);
            }
        }
        // The container stopped (or the engine went away): a last LF-less line still counts.
        out.finish(&mut lines);
        err.finish(&mut lines);
        self.send(&mut lines).await;
    }

    /// Hand the lines on; `false` once the ingest side is gone.
    async fn send(&self, lines: &mut Vec<Vec<u8>>) -> bool {
        for bytes in lines.drain(..) {
            self.metrics.docker_lines.inc();
            let line = Line {
                bytes,
                container: Arc::clone(&self.container),
            };
            if self.tx.send(line).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Docker's `timestamps=true` prefix (`RFC 3339 nanoseconds` and one space), as ns since the
/// epoch, and the rest. A frame without one is all body.
fn split_timestamp(frame: &[u8]) -> (Option<i64>, &[u8]) {
    let Some(space) = frame.iter().take(40).position(|&b| b == b' ') else {
        return (None, frame);
    };
    let parsed = std::str::from_utf8(&frame[..space]).ok().and_then(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    });
    match parsed {
        Some(t) => (
            i64::try_from(t.unix_timestamp_nanos()).ok(),
            &frame[space + 1..],
        ),
        None => (None, frame),
    }
}

/// Splits a byte stream into LF-terminated lines (a trailing CR dropped, empty lines
/// skipped), buffering at most `max` bytes of an unfinished line: a longer line is cut to
/// `max` bytes, handed on, counted, and its rest dropped up to the next LF.
#[derive(Debug)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl LineBuffer {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(1),
            discarding: false,
        }
    }

    /// Add bytes; complete lines are appended to `out`. Returns how many lines were cut.
    pub(crate) fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Vec<u8>>) -> u64 {
        let mut cut = 0;
        while !chunk.is_empty() {
            let (part, rest, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(lf) => (&chunk[..lf], &chunk[lf + 1..], true),
                None => (chunk, &chunk[chunk.len()..], false),
            };
            chunk = rest;
            if self.discarding {
                self.discarding = !complete;
                continue;
            }
            let room = self.max - self.buf.len();
            if part.len() > room {
                self.buf.extend_from_slice(&part[..room]);
                self.emit(out);
                cut += 1;
                self.discarding = !complete;
                continue;
            }
            self.buf.extend_from_slice(part);
            if complete {
                self.emit(out);
            }
        }
        cut
    }

    /// No unfinished line is held.
    pub(crate) fn is_idle(&self) -> bool {
        self.buf.is_empty() && !self.discarding
    }

    /// The stream ended: an unfinished line is a line.
    pub(crate) fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        if !self.discarding {
            self.emit(out);
        }
        self.discarding = false;
        self.buf.clear();
    }

    fn emit(&mut self, out: &mut Vec<Vec<u8>>) {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if !self.buf.is_empty() {
            out.push(std::mem::take(&mut self.buf));
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buf: &mut LineBuffer, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, u64) {
        let mut out = Vec::new();
        let mut cut = 0;
        for c in chunks {
            cut += buf.push(c, &mut out);
        }
        (out, cut)
    }

    #[test]
    fn lines_across_chunks() {
        let mut b = LineBuffer::new(64);
        let (out, cut) = lines(&mut b, &[b"<13>1 a", b" b\r\n\n<13>1 c\n<13", b">1 d"]);
        assert_eq!(out, [b"<13>1 a b".to_vec(), b"<13>1 c".to_vec()]);
        assert_eq!(cut, 0);
        let mut out = Vec::new();
        b.finish(&mut out);
        assert_eq!(out, [b"<13>1 d".to_vec()]);
    }

    #[test]
    fn long_lines_are_cut_and_counted() {
        let mut b = LineBuffer::new(4);
        let (out, cut) = lines(&mut b, &[b"abcdef", b"gh\nxy\nabcd", b"e\nz\n"]);
        assert_eq!(
            out,
            [
                b"abcd".to_vec(),
                b"xy".to_vec(),
                b"abcd".to_vec(),
                b"z".to_vec()
            ]
        );
        assert_eq!(cut, 2);
        // Exactly the cap is not cut.
        let (out, cut) = lines(&mut b, &[b"abcd\n"]);
        assert_eq!((out, cut), (vec![b"abcd".to_vec()], 0));
    }

    #[test]
    fn docker_timestamps_are_split_off() {
        let (ts, body) = split_timestamp(b"2026-11-27T09:24:30.123456789Z <13>1 - x");
        assert_eq!(ts, Some(1_795_771_470_123_456_789));
        assert_eq!(body, b"<13>1 - x");
        assert_eq!(split_timestamp(b"<13>1 - x"), (None, &b"<13>1 - x"[..]));
        assert_eq!(split_timestamp(b"nospace"), (None, &b"nospace"[..]));
    }

    #[test]
    fn label_selectors_are_checked() {
        let ok = DockerLogsConfig {
            labels: vec!["a=b".into(), "present".into(), "k=".into()],
            all: false,
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.label_filter().map(|l| l.len()), Some(3));
        let bad = DockerLogsConfig {
            labels: vec!["=v".into()],
            all: false,
        };
        assert!(matches!(bad.validate(), Err(IntakeError::DockerLabel(_))));
        let all = DockerLogsConfig {
            labels: vec!["a=b".into()],
            all: true,
        };
        assert_eq!(all.label_filter(), None);
    }
}
