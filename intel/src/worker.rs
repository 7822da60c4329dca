//! The continuous profiler: follow the events table from a persisted cursor, feed the engine,
//! and commit each batch's results together with the new cursor.
//!
//! Exactly-once by construction: results and cursor are one transaction, so a crash replays
//! the whole uncommitted batch onto the state saved with the previous cursor.

use std::collections::HashMap;

use decnet_store::repo::{IntelCommit, RepoError, SessionRow, SqlRepository, StoredEvent};

use crate::{Config, IntelError, Profiler};

/// The `state` key holding the last profiled event id.
pub const CURSOR_KEY: &str = "profiler_cursor";

/// Most events per committed batch.
pub const MAX_BATCH: i64 = 1_000_000;

/// One profiler worker over one repository.
#[derive(Debug)]
pub struct Worker {
    repo: SqlRepository,
    engine: Profiler,
    batch: i64,
    cursor: i64,
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
    for (ip, state) in repo.attacker_states(ips).await? {
        let open = sessions.get(&ip).map_or(&[][..], Vec::as_slice);
        engine.restore(&ip, &state, open)?;
    }
    Ok(())
}

impl Worker {
    /// Resume from the saved cursor; attackers with open sessions are reloaded so their
    /// sessions keep ending on time.
    pub async fn open(repo: SqlRepository, config: Config, batch: i64) -> Result<Self, IntelError> {
        let cursor = repo
            .state(CURSOR_KEY)
            .await?
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let cap = i64::try_from(config.max_cached_attackers).unwrap_or(i64::MAX);
        let mut engine = Profiler::new(config);
        let open = repo.open_session_ips(cap).await?;
        restore(&repo, &mut engine, &open).await?;
        Ok(Self {
            repo,
            engine,
            batch: batch.clamp(1, MAX_BATCH),
            cursor,
        })
    }

    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    pub fn engine(&self) -> &Profiler {
        &self.engine
    }

    /// Profile the next batch of events (none when caught up): read pages until `batch`
    /// events or the end of the table, then commit once. Committing less often is what makes
    /// the profiler fast: an attacker's row is rewritten once per batch, not once per page.
    pub async fn step(&mut self) -> Result<Step, IntelError> {
        let mut events = 0usize;
        let mut last = self.cursor;
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
            if full && want > 0 {
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
        if events == 0 {
            return Ok(Step {
                cursor: self.cursor,
                ..Step::default()
            });
        }
        let changes = self.engine.take_changes()?;
        let step = Step {
            events,
            attackers: changes.attackers.len(),
            sessions: changes.sessions.len(),
            bounties: changes.bounties.len(),
            cursor: last,
        };
        let committed = self
            .repo
            .commit_intel(&IntelCommit {
                attackers: changes.attackers,
                sessions: changes.sessions,
                bounties: changes.bounties,
                cursor: Some((CURSOR_KEY.to_owned(), last)),
            })
            .await;
        if let Err(e) = committed {
            // The engine is now ahead of the database: forget it, so the retried batch is
            // applied to the saved state, never twice.
            self.engine = Profiler::new(self.engine.config().clone());
            return Err(e.into());
        }
        self.cursor = last;
        self.engine.evict();
        tracing::debug!(?step, "profiled a batch");
        Ok(step)
    }

    fn read_ahead(
        &self,
        after: i64,
        limit: i64,
    ) -> tokio::task::JoinHandle<Result<Vec<StoredEvent>, RepoError>> {
        let repo = self.repo.clone();
        tokio::spawn(async move { repo.event_page_after(after, limit).await })
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
        loop {
            let s = self.step().await?;
            if s.events == 0 {
                return Ok(total);
            }
            total += s.events as u64;
        }
    }
}
