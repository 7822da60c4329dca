//! The dashboard's event counts, kept current from the events added since the last look.
//!
//! [`SqlRepository::stats`] scans the whole events table (a count and two distinct counts):
//! a fifth of a CPU-second at a million events on SQLite, more on PostgreSQL, and it grows
//! with the table. The web recomputes the counts whenever a new event has arrived, which under
//! a steady flood is at every refresh. An [`EventTally`] reads the whole table once, then only
//! the rows added since (one range of ids), and starts over when rows were deleted (the lowest
//! id moved), when ids went backwards (a new database), or every `recount_every`, so a deletion
//! that kept the lowest id is not carried for ever.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use super::{RepoError, SqlRepository, Stats, q, sql::Arg, sql::Sql};

/// How often the counts are taken from the whole table again (retention deletes by time,
/// which nearly always moves the lowest id and so starts over at once; this bounds the rest).
pub const RECOUNT_EVERY: Duration = Duration::from_secs(600);
/// Most distinct attacker addresses remembered (≈ 50 MB at worst); beyond it the distinct
/// count is asked of the database at every refresh instead, exact and bounded in memory.
pub const MAX_REMEMBERED_SOURCES: usize = 1 << 20;

/// Running event counts; see the module documentation.
#[derive(Debug)]
pub struct EventTally {
    counted: Option<Counted>,
    recount_every: Duration,
    max_sources: usize,
}

#[derive(Debug)]
struct Counted {
    /// The id range counted, `(lowest, highest)`.
    low: i64,
    high: i64,
    at: Instant,
    total: i64,
    /// `None` once more than `max_sources` were seen.
    sources: Option<HashSet<String>>,
    deckies: HashSet<String>,
}

impl Default for EventTally {
    fn default() -> Self {
        Self::new(RECOUNT_EVERY, MAX_REMEMBERED_SOURCES)
    }
}

impl EventTally {
    pub fn new(recount_every: Duration, max_sources: usize) -> Self {
        Self {
            counted: None,
            recount_every,
            max_sources,
        }
    }

    /// The counts as of the event id range `(low, high)` the caller just read
    /// ([`SqlRepository::event_id_range`]), reading only what changed since the last call when
    /// it can.
    pub async fn refresh(
        &mut self,
        repo: &SqlRepository,
        (low, high): (i64, i64),
    ) -> Result<Stats, RepoError> {
        let reusable = self
            .counted
            .take()
            .filter(|c| c.low == low && c.high <= high && c.at.elapsed() < self.recount_every);
        let mut counted = match reusable {
            Some(c) => c,
            None => self.count_all(repo, low, high).await?,
        };
        if counted.high < high {
            for (source, decky, n) in repo.event_groups_between(counted.high, high).await? {
                counted.total += n;
                if let (Some(set), Some(ip)) = (counted.sources.as_mut(), source) {
                    set.insert(ip);
                }
                counted.deckies.insert(decky);
            }
            counted.high = high;
            if counted
                .sources
                .as_ref()
                .is_some_and(|s| s.len() > self.max_sources)
            {
                counted.sources = None;
            }
        }
        let unique_attackers = match &counted.sources {
            Some(set) => i64::try_from(set.len()).unwrap_or(i64::MAX),
            None => repo.count_distinct_sources().await?,
        };
        let stats = Stats {
            total_events: counted.total,
            unique_attackers,
            deckies_seen: i64::try_from(counted.deckies.len()).unwrap_or(i64::MAX),
        };
        self.counted = Some(counted);
        Ok(stats)
    }

    async fn count_all(
        &self,
        repo: &SqlRepository,
        low: i64,
        high: i64,
    ) -> Result<Counted, RepoError> {
        // The sets may take in rows newer than `high` (they are read after it); adding those
        // again later changes no set, and the total counts ids up to `high` only.
        let sources = repo.distinct_sources(self.max_sources).await?;
        Ok(Counted {
            low,
            high,
            at: Instant::now(),
            total: repo.count_events_up_to(high).await?,
            sources: (sources.len() <= self.max_sources).then(|| sources.into_iter().collect()),
            deckies: repo.distinct_deckies().await?.into_iter().collect(),
        })
    }
}

impl SqlRepository {
    /// `(lowest, highest)` event id, 0 when there is none: two index lookups.
    pub async fn event_id_range(&self) -> Result<(i64, i64), RepoError> {
        // Two subqueries: SQLite uses the index for a lone MIN or MAX, not for both at once.
        let (low, high): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT (SELECT MIN(id) FROM events), (SELECT MAX(id) FROM events)")
                .fetch_one(&self.pool)
                .await
                .map_err(q("reading the event id range"))?;
        Ok((low.unwrap_or(0), high.unwrap_or(0)))
    }

    /// Events with an id in `(after, up_to]`, counted per (attacker address, decky).
    async fn event_groups_between(
        &self,
        after: i64,
        up_to: i64,
    ) -> Result<Vec<(Option<String>, String, i64)>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            "SELECT src_ip, decky, COUNT(*) FROM events WHERE id > ",
        );
        sql.bind(Arg::I64(after));
        sql.push(" AND id <= ");
        sql.bind(Arg::I64(up_to));
        sql.push(" GROUP BY src_ip, decky");
        sql.query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(q("counting new events"))
    }

    async fn count_events_up_to(&self, up_to: i64) -> Result<i64, RepoError> {
        let mut sql = Sql::new(self.backend, "SELECT COUNT(*) FROM events WHERE id <= ");
        sql.bind(Arg::I64(up_to));
        sql.scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(q("counting events"))
    }

    /// At most `max + 1` distinct attacker addresses (one more than `max` says "too many").
    async fn distinct_sources(&self, max: usize) -> Result<Vec<String>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            "SELECT DISTINCT src_ip FROM events WHERE src_ip IS NOT NULL LIMIT ",
        );
        sql.bind(Arg::I64(i64::try_from(max).unwrap_or(i64::MAX - 1) + 1));
        sql.scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(q("listing attacker addresses"))
    }

    async fn count_distinct_sources(&self) -> Result<i64, RepoError> {
        sqlx::query_scalar("SELECT COUNT(DISTINCT src_ip) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(q("counting attacker addresses"))
    }

    async fn distinct_deckies(&self) -> Result<Vec<String>, RepoError> {
        sqlx::query_scalar("SELECT DISTINCT decky FROM events")
            .fetch_all(&self.pool)
            .await
            .map_err(q("listing deckies"))
    }
}
