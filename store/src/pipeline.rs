//! Writer threads and the flusher: events in, durable segments, SQL exactly once.
//!
//! Producers hand events to a bounded queue ([`EventSender`]); each writer thread drains it
//! into its own open segment (no lock shared between writers), commits durably at the end of
//! every window and seals the segment when it is big or old enough. Sealed segments travel over
//! a bounded crossbeam channel to the flusher, which inserts each into SQL in one transaction
//! under its (segment id, sequence) key and then deletes the file. When SQL falls behind, the
//! bounded channels fill and producers wait: memory stays bounded under any load.

use std::{
    fs,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded, never, select};

use crate::{
    Event,
    codec::{Encoded, EncodedBatch},
    metrics::StoreMetrics,
    repo::Repository,
    segment::{self, Encodable, Sealed, SegmentError, SegmentPolicy, SegmentWriter},
};

/// Events waiting for a writer: an owned event, one already encoded by its producer (the
/// syslog intake encodes what it parsed in place, so no owned event is built, sent and freed on
/// another thread per message), or a batch of those (a datagram listener's `recvmmsg` batch:
/// one queue operation and one allocation for up to [`BATCH_EVENTS`] events).
#[derive(Debug)]
enum Queued {
    Event(Event),
    Encoded(Encoded),
    Batch(EncodedBatch),
}

impl Queued {
    fn events(&self) -> usize {
        match self {
            Self::Event(_) | Self::Encoded(_) => 1,
            Self::Batch(b) => b.len(),
        }
    }
}

impl Encodable for Queued {
    fn each_encoded(
        &self,
        scratch: &mut Vec<u8>,
        store: &mut dyn FnMut(&[u8]) -> Result<(), SegmentError>,
    ) -> Result<(), SegmentError> {
        match self {
            Self::Event(e) => e.each_encoded(scratch, store),
            Self::Encoded(e) => e.each_encoded(scratch, store),
            Self::Batch(b) => b.each_encoded(scratch, store),
        }
    }
}

/// Most events one [`EventSender::send_batch`] takes. Batches wait in their own queue of
/// `queue_capacity / BATCH_EVENTS` places, so the events queued stay bounded by about twice
/// `queue_capacity` whatever mix producers send.
pub const BATCH_EVENTS: usize = 64;

/// Consecutive failed inserts after which a segment is set aside as `*.failed` (kept on disk,
/// named in the log) so one poisoned segment cannot stop every later event.
const MAX_FLUSH_ATTEMPTS: u32 = 8;

/// How the pipeline is sized.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub segments_dir: PathBuf,
    /// Writer threads (each owns one open segment).
    pub writers: usize,
    /// Events that may wait for a writer; producers block (or count a drop) beyond it.
    pub queue_capacity: usize,
    /// Most events one commit takes.
    pub batch_max: usize,
    /// Sealed segments that may wait for the flusher before writers stop taking events.
    pub sealed_backlog: usize,
    pub policy: SegmentPolicy,
    /// Nice value (0–19) the flusher thread gives itself. When intake and SQL compete for the
    /// CPU, a flood is made durable in segments first and indexed into SQL when the CPU frees
    /// up; the bounded sealed backlog still stops the writers if SQL falls too far behind, so
    /// this only moves work in time. 0 leaves the flusher at the process's priority.
    pub flusher_nice: i32,
}

impl PipelineConfig {
    pub fn new(segments_dir: PathBuf) -> Self {
        Self {
            segments_dir,
            writers: 2,
            queue_capacity: 65_536,
            batch_max: 4_096,
            sealed_backlog: 8,
            policy: SegmentPolicy::default(),
            flusher_nice: 19,
        }
    }
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("reading the highest flushed segment id: {0}")]
    Repo(#[from] crate::repo::RepoError),
    #[error("starting a {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

/// Where producers put events.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: Sender<Queued>,
    batches: Sender<Queued>,
    metrics: Arc<StoreMetrics>,
}

/// A batch over [`BATCH_EVENTS`] events was refused (nothing was queued).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Closed(#[from] Closed),
    #[error("a batch holds at most {BATCH_EVENTS} events, not {0}")]
    TooLarge(usize),
}

/// The pipeline has shut down and takes no more events.
#[derive(Debug, thiserror::Error)]
#[error("the store pipeline has shut down")]
pub struct Closed;

impl EventSender {
    /// Queue an event, waiting while the queue is full (backpressure).
    pub fn send(&self, event: Event) -> Result<(), Closed> {
        self.send_queued(Queued::Event(event))
    }

    /// [`Self::send`] for an event its producer has encoded already.
    pub fn send_encoded(&self, event: Encoded) -> Result<(), Closed> {
        self.send_queued(Queued::Encoded(event))
    }

    /// Queue the events of `batch` (at most [`BATCH_EVENTS`]) as one item, waiting while the
    /// batch queue is full (backpressure).
    pub fn send_batch(&self, batch: EncodedBatch) -> Result<(), BatchError> {
        if batch.len() > BATCH_EVENTS {
            return Err(BatchError::TooLarge(batch.len()));
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.metrics.received.add(batch.len() as u64);
        send_or_wait(&self.batches, Queued::Batch(batch)).map_err(BatchError::from)
    }

    fn send_queued(&self, event: Queued) -> Result<(), Closed> {
        self.metrics.received.inc();
        send_or_wait(&self.tx, event)
    }

    /// Queue an event unless the queue is full; a refused event is counted as discarded.
    pub fn try_send(&self, event: Event) -> Result<bool, Closed> {
        self.metrics.received.inc();
        match self.tx.try_send(Queued::Event(event)) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => {
                self.metrics.discarded_queue_full.inc();
                Ok(false)
            }
            Err(TrySendError::Disconnected(_)) => Err(Closed),
        }
    }

    /// Queue items (events and batches) waiting for a writer.
    pub fn queued(&self) -> usize {
        self.tx.len() + self.batches.len()
    }
}

fn send_or_wait(tx: &Sender<Queued>, item: Queued) -> Result<(), Closed> {
    match tx.try_send(item) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(item)) => tx.send(item).map_err(|_| Closed),
        Err(TrySendError::Disconnected(_)) => Err(Closed),
    }
}

/// The running writers and flusher.
#[derive(Debug)]
pub struct Pipeline {
    sender: Option<EventSender>,
    writers: Vec<JoinHandle<()>>,
    flusher: Option<JoinHandle<()>>,
    metrics: Arc<StoreMetrics>,
}

impl Pipeline {
    /// Recover what a previous run left, then start the writers and the flusher. `runtime`
    /// runs the repository's futures (the flusher is a plain thread that blocks on them).
    pub fn start<R: Repository + 'static>(
        config: &PipelineConfig,
        repo: R,
        runtime: tokio::runtime::Handle,
        metrics: Arc<StoreMetrics>,
    ) -> Result<Self, PipelineError> {
        let recovered = segment::recover(&config.segments_dir)?;
        if !recovered.sealed.is_empty() {
            tracing::info!(
                segments = recovered.sealed.len(),
                "flushing segments left by the previous run"
            );
        }
        let flushed_max = runtime.block_on(repo.max_segment_id())?;
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let ids = Arc::new(AtomicU64::new(
            now_us.max(recovered.max_id).max(flushed_max) + 1,
        ));

        let (sealed_tx, sealed_rx) = bounded::<Sealed>(config.sealed_backlog.max(1));
        let flusher = {
            let metrics = Arc::clone(&metrics);
            let backlog = recovered.sealed;
            let nice = config.flusher_nice;
            std::thread::Builder::new()
                .name("store-flusher".into())
                .spawn(move || {
                    lower_own_priority(nice);
                    flusher(&repo, &runtime, backlog, &sealed_rx, &metrics);
                })
                .map_err(|e| PipelineError::Thread("flusher", e))?
        };

        let (tx, rx) = bounded::<Queued>(config.queue_capacity.max(1));
        let (batch_tx, batch_rx) = bounded::<Queued>((config.queue_capacity / BATCH_EVENTS).max(1));
        let mut writers = Vec::new();
        for n in 0..config.writers.max(1) {
            let w = Writer {
                rx: rx.clone(),
                batches: batch_rx.clone(),
                sealed: sealed_tx.clone(),
                ids: Arc::clone(&ids),
                config: config.clone(),
                metrics: Arc::clone(&metrics),
            };
            writers.push(
                std::thread::Builder::new()
                    .name(format!("store-writer-{n}"))
                    .spawn(move || w.run())
                    .map_err(|e| PipelineError::Thread("writer", e))?,
            );
        }
        Ok(Self {
            sender: Some(EventSender {
                tx,
                batches: batch_tx,
                metrics: Arc::clone(&metrics),
            }),
            writers,
            flusher: Some(flusher),
            metrics,
        })
    }

    /// A handle producers send events through.
    pub fn sender(&self) -> Option<EventSender> {
        self.sender.clone()
    }

    pub fn metrics(&self) -> &Arc<StoreMetrics> {
        &self.metrics
    }

    /// Stop taking events, make every queued event durable, seal, flush everything to SQL and
    /// wait for all of it. Producers must have dropped their senders (or they will be waited
    /// for).
    pub fn shutdown(mut self) {
        self.sender = None;
        for w in self.writers.drain(..) {
            let _ = w.join();
        }
        if let Some(f) = self.flusher.take() {
            let _ = f.join();
        }
    }
}

struct Writer {
    rx: Receiver<Queued>,
    batches: Receiver<Queued>,
    sealed: Sender<Sealed>,
    ids: Arc<AtomicU64>,
    config: PipelineConfig,
    metrics: Arc<StoreMetrics>,
}

impl Writer {
    fn run(self) {
        let policy = &self.config.policy;
        let mut open: Option<SegmentWriter> = None;
        let mut batch: Vec<Queued> = Vec::with_capacity(self.config.batch_max);
        // A queue whose senders are all gone is replaced by one that never delivers, so the
        // other is still drained; the writer closes once both are gone.
        let mut events = self.rx.clone();
        let mut batches = self.batches.clone();
        let (mut events_open, mut batches_open) = (true, true);
        let mut closing = false;
        while !closing {
            let wait = match &open {
                Some(s) if !s.is_empty() => s
                    .wake_deadline(policy)
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
                _ => policy.max_age,
            };
            let first = select! {
                recv(events) -> item => item.map_err(|_| events_open = false),
                recv(batches) -> item => item.map_err(|_| batches_open = false),
                default(wait) => Err(()),
            };
            if let Ok(item) = first {
                let mut taken = item.events();
                batch.push(item);
                for rx in [&batches, &events] {
                    while taken < self.config.batch_max {
                        match rx.try_recv() {
                            Ok(item) => {
                                taken += item.events();
                                batch.push(item);
                            }
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        }
                    }
                }
            }
            if !events_open {
                events = never();
            }
            if !batches_open {
                batches = never();
            }
            closing = !events_open && !batches_open;
            self.commit(&mut open, &mut batch);
            let rotate = open
                .as_ref()
                .is_some_and(|s| closing || s.should_rotate(policy));
            if rotate && let Some(s) = open.take() {
                self.seal(s);
            }
        }
    }

    /// Append the batch (durably when the window is over); on failure keep the batch and retry,
    /// so an I/O hiccup delays events instead of losing them.
    fn commit(&self, open: &mut Option<SegmentWriter>, batch: &mut Vec<Queued>) {
        let policy = &self.config.policy;
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = (|| {
                if open.is_none() && !batch.is_empty() {
                    let id = self.ids.fetch_add(1, Ordering::Relaxed);
                    *open = Some(SegmentWriter::create(&self.config.segments_dir, id)?);
                }
                let Some(seg) = open.as_mut() else {
                    return Ok(0);
                };
                if batch.is_empty() {
                    return if seg.window_elapsed(policy) {
                        seg.sync()
                    } else {
                        Ok(0)
                    };
                }
                let durable =
                    seg.window_elapsed(policy) || seg.window_deadline(policy) <= Instant::now();
                seg.append(batch, durable)
            })();
            match result {
                Ok(durable) => {
                    let written: usize = batch.iter().map(Queued::events).sum();
                    self.metrics.written.add(written as u64);
                    batch.clear();
                    if durable > 0 {
                        self.metrics.durable.add(durable);
                        tracing::debug!(
                            durable_total = self.metrics.durable.get(),
                            "durable commit"
                        );
                    }
                    return;
                }
                Err(e) => {
                    self.metrics.segment_errors.inc();
                    tracing::error!(error = %e, "segment write failed; retrying");
                    // A half-created segment is abandoned (recover() seals it next start).
                    *open = None;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn seal(&self, seg: SegmentWriter) {
        match seg.seal() {
            Ok((sealed, durable)) => {
                self.metrics.durable.add(durable);
                if durable > 0 {
                    tracing::debug!(durable_total = self.metrics.durable.get(), "durable commit");
                }
                self.metrics.segments_sealed.inc();
                // Blocks while the flusher is behind: the writer stops draining the queue and
                // producers feel the backpressure.
                if self.sealed.send(sealed).is_err() {
                    tracing::error!("flusher is gone; sealed segment left for the next start");
                }
            }
            Err(e) => {
                self.metrics.segment_errors.inc();
                tracing::error!(error = %e, "sealing a segment failed; it is recovered at next start");
            }
        }
    }
}

/// Lower the calling thread's priority to `nice` (Linux nice values are per thread); best
/// effort, a failure only leaves the thread at the process's priority.
fn lower_own_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let Ok(who) = libc::id_t::try_from(tid) else {
        return;
    };
    // SAFETY: setpriority only reads its integer arguments; `who` is this thread's own id.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice.min(19)) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot lower the flusher's priority"
        );
    }
}

fn flusher<R: Repository>(
    repo: &R,
    runtime: &tokio::runtime::Handle,
    backlog: Vec<Sealed>,
    rx: &Receiver<Sealed>,
    metrics: &StoreMetrics,
) {
    for sealed in backlog.into_iter().chain(rx.iter()) {
        flush_one(repo, runtime, &sealed, metrics);
    }
}

fn flush_one<R: Repository>(
    repo: &R,
    runtime: &tokio::runtime::Handle,
    sealed: &Sealed,
    metrics: &StoreMetrics,
) {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=MAX_FLUSH_ATTEMPTS {
        let outcome = segment::SealedSegment::open(&sealed.path)
            .map_err(|e| e.to_string())
            .and_then(|segment| {
                runtime
                    .block_on(repo.insert_sealed(&segment))
                    .map(|f| (f.inserted, f.undecodable))
                    .map_err(|e| e.to_string())
            });
        match outcome {
            Ok((inserted, bad)) => {
                metrics.flushed.add(inserted);
                metrics.undecodable.add(bad);
                metrics.segments_flushed.inc();
                if let Err(e) = fs::remove_file(&sealed.path) {
                    // Harmless: the next start re-inserts nothing (unique key) and deletes it.
                    tracing::warn!(path = %sealed.path.display(), error = %e, "flushed segment not deleted");
                }
                return;
            }
            Err(e) => {
                metrics.flush_errors.inc();
                tracing::error!(path = %sealed.path.display(), attempt, error = %e, "flushing a segment failed");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    let aside = sealed.path.with_extension("failed");
    match fs::rename(&sealed.path, &aside) {
        Ok(()) => tracing::error!(
            path = %aside.display(),
            "segment set aside after {MAX_FLUSH_ATTEMPTS} failed flushes; fix the cause and rename it back to .sealed to retry"
        ),
        Err(e) => {
            tracing::error!(path = %sealed.path.display(), error = %e, "cannot set a failing segment aside");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        Severity,
        repo::{EventQuery, SqlRepository},
    };

    #[test]
    fn events_flow_to_sql_exactly_once_and_segments_are_deleted() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let segs = dir.path().join("segments");
        fs::create_dir(&segs).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let repo = rt.block_on(SqlRepository::connect(&url)).unwrap();
        let mut config = PipelineConfig::new(segs.clone());
        config.policy.max_age = Duration::from_millis(50);
        config.queue_capacity = 100;
        let metrics = Arc::new(StoreMetrics::default());
        let p = Pipeline::start(
            &config,
            repo.clone(),
            rt.handle().clone(),
            Arc::clone(&metrics),
        )
        .unwrap();
        let tx = p.sender().unwrap();
        for i in 0..5_000 {
            let mut e = Event::new(i, "d", "s", "k", Severity::Info);
            e.push_field("n", &i.to_string()).unwrap();
            tx.send(e).unwrap();
        }
        drop(tx);
        p.shutdown();
        let count = rt
            .block_on(repo.count_events(&EventQuery::default()))
            .unwrap();
        assert_eq!(count, 5_000);
        assert_eq!(metrics.durable.get(), 5_000);
        assert_eq!(metrics.flushed.get(), 5_000);
        assert!(metrics.segments_sealed.get() >= 1);
        assert_eq!(fs::read_dir(&segs).unwrap().count(), 0);
    }

    #[test]
    fn batches_and_single_events_flow_to_sql_exactly_once() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let segs = dir.path().join("segments");
        fs::create_dir(&segs).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let repo = rt.block_on(SqlRepository::connect(&url)).unwrap();
        let mut config = PipelineConfig::new(segs.clone());
        config.policy.max_age = Duration::from_millis(50);
        // Two batches fit: producers wait on the writers most of the time.
        config.queue_capacity = 2 * BATCH_EVENTS;
        config.batch_max = 100;
        let metrics = Arc::new(StoreMetrics::default());
        let p = Pipeline::start(
            &config,
            repo.clone(),
            rt.handle().clone(),
            Arc::clone(&metrics),
        )
        .unwrap();
        let tx = p.sender().unwrap();
        let event = |i: i64| {
            let mut e = Event::new(i, "d", "s", "k", Severity::Info);
            e.push_field("n", &i.to_string()).unwrap();
            e
        };
        let mut too_big = EncodedBatch::default();
        for i in 0..=BATCH_EVENTS as i64 {
            too_big.push(&crate::codec::EventView::of(&event(i)));
        }
        assert!(matches!(
            tx.send_batch(too_big),
            Err(BatchError::TooLarge(n)) if n == BATCH_EVENTS + 1
        ));
        let mut sent = 0i64;
        for round in 0..200 {
            let mut batch = EncodedBatch::default();
            for _ in 0..(round % BATCH_EVENTS) {
                batch.push(&crate::codec::EventView::of(&event(sent)));
                sent += 1;
            }
            tx.send_batch(batch).unwrap();
            tx.send(event(sent)).unwrap();
            sent += 1;
        }
        drop(tx);
        p.shutdown();
        let count = rt
            .block_on(repo.count_events(&EventQuery::default()))
            .unwrap();
        assert_eq!(count, sent);
        let expected = u64::try_from(sent).unwrap();
        assert_eq!(metrics.received.get(), expected);
        assert_eq!(metrics.written.get(), expected);
        assert_eq!(metrics.durable.get(), expected);
        assert_eq!(metrics.flushed.get(), expected);
        assert_eq!(fs::read_dir(&segs).unwrap().count(), 0);
    }
}
