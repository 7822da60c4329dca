//! The continuous profiler: follow the events table from a persisted cursor, feed the engine,
//! and commit each batch's results together with the new cursor.
//!
//! Exactly-once by construction: results and cursor are one transaction, so a crash replays
//! the whole uncommitted batch onto the state saved with the previous cursor.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use decnet_store::repo::{IntelCommit, RepoError, SessionRow, SqlRepository, StoredEvent};

use crate::{Config, IntelError, Profiler};

/// The `state` key holding the last profiled event id.
pub const CURSOR_KEY: &str = "profiler_cursor";

/// Most events per committed batch.
pub const MAX_BATCH: i64 = 1_000_000;

/// Most events per batch unless configured (`decnet profiler --batch`): it bounds the memory
/// a batch's results take before they are committed.
pub const DEFAULT_BATCH: i64 = 500_000;
/// Bounty payload bytes after which a batch commits without reading further: a batch holds
/// its bounties until it commits, and a brute force of long distinct passwords makes one
/// bounty of a few KiB per event (500,000 of them would hold gigabytes).
pub const MAX_PENDING_BOUNTY_BYTES: usize = 64 << 20;

/// While catching up, a batch is committed once it has been read and fed for this long (or
/// holds its most events, or reached the end of the table), whichever comes first.
///
/// A commit rewrites every attacker and open session the batch touched, however many events
/// it held: committing on a clock instead of every N events keeps that cost per second, not
/// per event, so a backlog is worked off in fewer, larger transactions while the stored
/// results trail the events by about this much.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(2);

/// One profiler worker over one repository.
#[derive(Debug)]
pub struct Worker {
    repo: SqlRepository,
    engine: Profiler,
    batch: i64,
    commit_interval: Duration,
    cursor: i64,
}

/// A batch read and fed to the engine, not yet committed.
#[derive(Clone, Copy)]
struct Fed {
    events: usize,
    last: i64,
}

/// What one [`Worker::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    pub events: usize,
    pub attackers: usize,
    pub sessions: usize,
    pub bounties: usize,
    pub cursor: i64,
}

/// Put the saved state and open sessions of `ips` back into `engine`.
async fn restore(
    repo: &SqlRepository,
    engine: &mut Profiler,
    ips: &[String],
) -> Result<(), IntelError> {
    let mut sessions: HashMap<String, Vec<SessionRow>> = HashMap::new();
    for s in repo.open_sessions_of(ips).await? {
        sessions.entry(s.attacker_ip.clone()).or_default().push(s);
    }
    for saved in repo.attacker_states(ips).await? {
        let open = sessions.get(&saved.ip).map_or(&[][..], Vec::as_slice);
        engine.restore(&saved, open)?;
    }
    Ok(())
}

/// A batch being committed on a blocking thread.
type Committing = tokio::task::JoinHandle<Result<(), RepoError>>;

/// Start committing `commit` on a blocking thread: on SQLite the rows are written on the
/// calling thread, which would otherwise hold up the feeding of the next batch (and a runtime
/// thread) for the whole commit.
fn commit_aside(repo: SqlRepository, commit: IntelCommit) -> Committing {
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || rt.block_on(repo.commit_intel_owned(commit)))
}

/// The outcome of a commit started by [`commit_aside`].
async fn committed(committing: Committing) -> Result<(), IntelError> {
    committing
        .await
        .map_err(|e| IntelError::BadState(format!("profiler commit stopped: {e}")))?
        .map_err(IntelError::from)
}

/// A profiler that knows the attackers with open sessions in `repo` as dormant: each is
/// loaded when it comes back or when its sessions are due to end, not all up front (their
/// states and sessions together could hold more than the cache may).
async fn engine_over(repo: &SqlRepository, config: Config) -> Result<Profiler, IntelError> {
    let mut engine = Profiler::new(config);
    let most = i64::try_from(crate::engine::MAX_DORMANT).unwrap_or(i64::MAX);
    for (ip, end_ns) in repo.open_session_ends(most).await? {
        engine.add_dormant(&ip, end_ns)?;
    }
    Ok(engine)
}

impl Worker {
    /// Resume from the saved cursor; attackers with open sessions are remembered so their
    /// sessions keep ending on time.
    pub async fn open(repo: SqlRepository, config: Config, batch: i64) -> Result<Self, IntelError> {
        let cursor = repo
            .state(CURSOR_KEY)
            .await?
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let engine = engine_over(&repo, config).await?;
        Ok(Self {
            repo,
            engine,
            batch: batch.clamp(1, MAX_BATCH),
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            cursor,
        })
    }

    /// Commit a batch once it has been fed for `interval` (see [`DEFAULT_COMMIT_INTERVAL`]).
    #[must_use]
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    pub fn engine(&self) -> &Profiler {
        &self.engine
    }

    /// Profile the next batch of events (none when caught up): read pages until `batch`
    /// events, the commit interval or the end of the table, then commit once. Committing less
    /// often is what makes the profiler fast: an attacker's row is rewritten once per batch,
    /// not once per page.
    pub async fn step(&mut self) -> Result<Step, IntelError> {
        let fed = self.feed_batch(self.cursor).await;
        let fed = self.or_reset(fed).await?;
        if fed.events == 0 {
            return Ok(Step {
                cursor: self.cursor,
                ..Step::default()
            });
        }
        let changes = self.changes(fed);
        let (commit, step) = self.or_reset(changes).await?;
        let committed = self.repo.commit_intel_owned(commit).await;
        self.or_reset(committed.map_err(IntelError::from)).await?;
        self.cursor = step.cursor;
        self.engine.evict();
        tracing::debug!(?step, "profiled a batch");
        Ok(step)
    }

    /// Read pages after `after` until `batch` events, the commit interval, the end of the
    /// table, or the attackers in memory reaching the cache's byte bound (they can leave
    /// memory only once written), feeding each to the engine (attackers not in memory are
    /// restored first).
    async fn feed_batch(&mut self, after: i64) -> Result<Fed, IntelError> {
        let started = Instant::now();
        let mut events = 0usize;
        let mut last = after;
        let page = |events: usize| {
            (self.batch - i64::try_from(events).unwrap_or(i64::MAX))
                .clamp(0, decnet_store::repo::MAX_PAGE)
        };
        let mut want = page(0);
        // The next page is read while this one is profiled: reading (the database's thread)
        // and feeding (this one) overlap instead of taking turns.
        let mut next = Some(self.read_ahead(last, want));
        while let Some(reading) = next.take() {
            let rows = reading
                .await
                .map_err(|e| IntelError::BadState(format!("event reader stopped: {e}")))??;
            let Some(page_last) = rows.last().map(|r| r.id) else {
                break;
            };
            let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= want;
            want = page(events + rows.len());
            if full
                && want > 0
                && started.elapsed() < self.commit_interval
                && self.engine.pending_bounty_bytes() < MAX_PENDING_BOUNTY_BYTES
                && self.engine.memory_estimate() < self.engine.config().max_cached_bytes
            {
                next = Some(self.read_ahead(page_last, want));
            }
            let missing = self.engine.missing(rows.iter().map(|r| &r.event));
            if !missing.is_empty() {
                restore(&self.repo, &mut self.engine, &missing).await?;
            }
            for r in &rows {
                self.engine.feed(&r.event);
            }
            events += rows.len();
            last = page_last;
        }
        // Attackers that left memory with sessions open come back to have them ended.
        let due = self.engine.take_dormant_due();
        if !due.is_empty() {
            restore(&self.repo, &mut self.engine, &due).await?;
        }
        Ok(Fed { events, last })
    }

    /// What the fed batch changed, as one commit with its cursor.
    fn changes(&mut self, fed: Fed) -> Result<(IntelCommit, Step), IntelError> {
        let changes = self.engine.take_changes()?;
        let step = Step {
            events: fed.events,
            attackers: changes.attackers.len(),
            sessions: changes.sessions.len(),
            bounties: changes.bounties.len(),
            cursor: fed.last,
        };
        let commit = IntelCommit {
            attackers: changes.attackers,
            sessions: changes.sessions,
            bounties: changes.bounties,
            cursor: Some((CURSOR_KEY.to_owned(), fed.last)),
        };
        Ok((commit, step))
    }

    /// On a failure the engine may be ahead of the database (events fed, results not
    /// committed): forget it and start again from the saved attackers with open sessions, so
    /// the batch is replayed onto the saved state, never applied twice.
    async fn or_reset<T>(&mut self, r: Result<T, IntelError>) -> Result<T, IntelError> {
        if r.is_err() {
            let config = self.engine.config().clone();
            self.engine = match engine_over(&self.repo, config.clone()).await {
                Ok(engine) => engine,
                Err(e) => {
                    // Their sessions still end when the attackers come back (restored then).
                    tracing::warn!(error = %e, "profiler reset: open sessions not listed");
                    Profiler::new(config)
                }
            };
        }
        r
    }

    fn read_ahead(
        &self,
        after: i64,
        limit: i64,
    ) -> tokio::task::JoinHandle<Result<Vec<StoredEvent>, RepoError>> {
        let repo = self.repo.clone();
        // On SQLite the page is decoded on the calling thread: a blocking one, so the runtime
        // keeps polling the commit and the feed meanwhile.
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || rt.block_on(repo.event_page_after(after, limit)))
    }

    /// Step until caught up; returns the events profiled.
    pub async fn run_until_idle(&mut self) -> Result<u64, IntelError> {
        // SQLite reuses ids once every event is gone (retention or purge): a cursor beyond
        // the highest id would otherwise skip every new event.
        if self.cursor > 0 && self.repo.max_event_id().await? < self.cursor {
            tracing::warn!(
                cursor = self.cursor,
                "events table was emptied; profiling from the start"
            );
            self.cursor = 0;
        }
        let mut total = 0u64;
        let mut read_to = self.cursor;
        let mut pending: Option<(Committing, Step)> = None;
        loop {
            // Batch N commits (the database's work, on its own thread) while batch N+1 is read,
            // fed and its rows built (this thread's). Still exactly-once: the cursor only
            // moves with a commit, and on any failure the engine, ahead of the database, is
            // reset and the batch replayed. Restores during N+1 never read rows N is writing:
            // N's attackers stay in memory (eviction waits for N's commit, and spares the
            // attackers of the batch taken since).
            let fed = self.feed_batch(read_to).await;
            let next = match &fed {
                Ok(f) if f.events > 0 => Some(self.changes(*f)),
                _ => None,
            };
            if let Some((committing, step)) = pending.take() {
                let done = committed(committing).await.map(|()| step);
                let step = self.or_reset(done).await?;
                self.cursor = step.cursor;
                total += step.events as u64;
                tracing::debug!(?step, "profiled a batch");
            }
            let fed = self.or_reset(fed).await?;
            if next.is_some() {
                self.engine.evict_sparing_taken();
            } else {
                self.engine.evict();
            }
            let Some(next) = next else {
                return Ok(total);
            };
            read_to = fed.last;
            let (commit, step) = self.or_reset(next).await?;
            pending = Some((commit_aside(self.repo.clone(), commit), step));
        }
    }
}
