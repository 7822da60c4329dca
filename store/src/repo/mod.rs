//! The SQL repository: one implementation over sqlx's `Any` driver for SQLite (the embedded
//! default), PostgreSQL and MySQL/MariaDB, with the dialect differences in [`sql::Backend`] and
//! versioned migrations in [`schema`].
//!
//! The flusher only needs [`Repository`] (insert a sealed segment exactly once); the API,
//! fleet engine and intelligence workers use the query methods of [`SqlRepository`].

mod event_pages;
mod events;
mod intel;
mod lease;
pub mod schema;
pub mod sql;
mod sqlite_flush;
mod sqlite_intel;
mod sqlite_rows;
mod tables;
mod tally;
mod wal;

use std::{future::Future, str::FromStr, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
};

use crate::{Event, segment::SealedSegment};

pub use events::{EventQuery, HistogramBucket, MAX_PAGE, Stats, StoredEvent, Token, parse_search};
pub use intel::{
    AttackerUpdate, BehaviorRow, IdentityGroup, IntelCommit, SavedAttacker, SessionRow,
};
pub use lease::LeaseHeld;
pub use sql::Backend;
pub use tables::{Attacker, AttackerSeen, Bounty, DeckyRecord, NewBounty, User, bounty_dedup_key};
pub use tally::EventTally;

/// Environment variable choosing the backend (`sqlite`, `postgres`, `mysql`/`mariadb`).
pub const DB_TYPE_ENV: &str = "DECNET_DB_TYPE";
/// Environment variable with the database URL (required for postgres and mysql).
pub const DB_URL_ENV: &str = "DECNET_DB_URL";

/// A repository failure, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(
        "database URL {url:?} names no supported backend; use sqlite://PATH, postgres://… or mysql://…"
    )]
    UnknownBackend { url: String },
    #[error("{DB_TYPE_ENV}={0:?} is not sqlite, postgres or mysql")]
    UnknownType(String),
    #[error("{DB_TYPE_ENV}={0} needs {DB_URL_ENV} (e.g. postgres://user:pass@localhost/decnet)")]
    MissingUrl(String),
    #[error("{DB_TYPE_ENV}={kind} but {DB_URL_ENV} is a {url_kind} URL")]
    Mismatch { kind: String, url_kind: String },
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "migration {version} in the database differs from this build's (checksum {found} vs {expected}); the database was migrated by another version of decnet"
    )]
    MigrationDiverged {
        version: i64,
        found: String,
        expected: String,
    },
    #[error(
        "database schema is at version {found}, newer than this build knows ({known}); upgrade decnet"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("{what}: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what}: SQLite error {code}: {message}")]
    Sqlite {
        what: &'static str,
        code: i32,
        message: String,
    },
    #[error(transparent)]
    Segment(#[from] crate::segment::SegmentError),
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn q(what: &'static str) -> impl FnOnce(sqlx::Error) -> RepoError {
    move |source| RepoError::Query { what, source }
}

/// Where the database is, from `DECNET_DB_TYPE`/`DECNET_DB_URL` or the embedded default.
pub fn url_from_env(default_sqlite_url: &str) -> Result<String, RepoError> {
    let kind = std::env::var(DB_TYPE_ENV).ok().filter(|s| !s.is_empty());
    let url = std::env::var(DB_URL_ENV).ok().filter(|s| !s.is_empty());
    resolve_url(kind.as_deref(), url.as_deref(), default_sqlite_url)
}

/// [`url_from_env`] without the environment (testable).
pub fn resolve_url(
    kind: Option<&str>,
    url: Option<&str>,
    default_sqlite_url: &str,
) -> Result<String, RepoError> {
    let wanted = match kind {
        None => None,
        Some(k) => Some(
            Backend::of_url(&format!("{}:", k.to_ascii_lowercase()))
                .ok_or_else(|| RepoError::UnknownType(k.to_owned()))?,
        ),
    };
    match (wanted, url) {
        (None | Some(Backend::Sqlite), None) => Ok(default_sqlite_url.to_owned()),
        (Some(b), None) => Err(RepoError::MissingUrl(b.name().to_owned())),
        (wanted, Some(url)) => {
            let found = Backend::of_url(url)
                .ok_or_else(|| RepoError::UnknownBackend { url: redact(url) })?;
            if let Some(w) = wanted.filter(|w| *w != found) {
                return Err(RepoError::Mismatch {
                    kind: w.name().to_owned(),
                    url_kind: found.name().to_owned(),
                });
            }
            Ok(url.to_owned())
        }
    }
}

/// The URL with any password replaced, for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &creds[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// What flushing one sealed segment did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentFlush {
    /// Rows newly inserted (0 for a segment flushed before).
    pub inserted: u64,
    /// Entries that did not decode, logged and skipped.
    pub undecodable: u64,
}

/// What the flusher needs: insert a sealed segment's events exactly once.
pub trait Repository: Send + Sync {
    /// Insert every decodable entry of `sealed` as [`Self::insert_segment`] does; entries that
    /// do not decode are logged, counted and skipped (never silently).
    fn insert_sealed(
        &self,
        sealed: &SealedSegment,
    ) -> impl Future<Output = Result<SegmentFlush, RepoError>> + Send {
        insert_sealed_owned(self, sealed)
    }

    /// Insert `(seq, event)` rows of segment `segment_id` in one transaction; rows already
    /// present (a segment replayed after a crash) are skipped. Returns rows newly inserted.
    fn insert_segment(
        &self,
        segment_id: u64,
        rows: &[(u64, Event)],
    ) -> impl Future<Output = Result<u64, RepoError>> + Send;

    /// Highest segment id ever inserted (0 when none), so new segment ids never collide with
    /// flushed ones even if the clock steps back.
    fn max_segment_id(&self) -> impl Future<Output = Result<u64, RepoError>> + Send;
}

/// [`Repository::insert_sealed`] through owned events: the whole segment decoded, then
/// [`Repository::insert_segment`].
async fn insert_sealed_owned<R: Repository + ?Sized>(
    repo: &R,
    sealed: &SealedSegment,
) -> Result<SegmentFlush, RepoError> {
    let mut rows = Vec::with_capacity(usize::try_from(sealed.entries()).unwrap_or(0));
    let mut skipped = 0;
    sealed.for_each(|seq, entry| {
        match entry {
            Ok(view) => rows.push((seq, view.to_event())),
            Err(e) => {
                skipped += 1;
                undecodable(sealed.id(), seq, &e);
            }
        }
        Ok::<_, RepoError>(())
    })?;
    Ok(SegmentFlush {
        inserted: repo.insert_segment(sealed.id(), &rows).await?,
        undecodable: skipped,
    })
}

fn undecodable(segment: u64, seq: u64, error: &crate::codec::DecodeError) {
    tracing::warn!(segment, seq, error = %error, "undecodable segment entry");
}

/// Entries of `sealed` that do not decode (a replayed segment's, logged again).
fn count_undecodable(sealed: &SealedSegment) -> Result<u64, RepoError> {
    let mut skipped = 0;
    sealed.for_each(|seq, entry| {
        if let Err(e) = entry {
            skipped += 1;
            undecodable(sealed.id(), seq, &e);
        }
        Ok::<_, RepoError>(())
    })?;
    Ok(skipped)
}

/// The repository over one SQL database.
#[derive(Debug, Clone)]
pub struct SqlRepository {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: one native connection for segment inserts. Binding through `Any` copies
    /// every text and blob twice more (into `AnyValue`, then into SQLite's argument), which
    /// was a third of the flush's CPU.
    sqlite_writer: Option<sqlx::SqlitePool>,
    /// SQLite only: native connections for [`SqlRepository::event_page_after`].
    sqlite_reader: Option<sqlx::SqlitePool>,
    /// SQLite only: the native connection profiler batches are written through.
    sqlite_intel: Option<sqlx::SqlitePool>,
    /// SQLite only: checkpoints of what `sqlite_writer` commits (see [`wal`]).
    wal: Option<std::sync::Arc<wal::WalCheckpoints>>,
}

impl SqlRepository {
    /// Connect to `url` and bring its schema up to date.
    pub async fn connect(url: &str) -> Result<Self, RepoError> {
        let repo = Self::open(url).await?;
        repo.migrate().await?;
        Ok(repo)
    }

    /// Connect to `url` without touching its schema.
    async fn open(url: &str) -> Result<Self, RepoError> {
        sqlx::any::install_default_drivers();
        let backend =
            Backend::of_url(url).ok_or_else(|| RepoError::UnknownBackend { url: redact(url) })?;
        let options = AnyConnectOptions::from_str(url).map_err(|source| RepoError::Connect {
            backend: backend.name(),
            source,
        })?;
        let max = if backend == Backend::Sqlite { 4 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Takes effect only when the file is new (before WAL mode writes the
                        // header): 16 KiB pages quarter the B-tree page splits per event of
                        // the segment inserts.
                        conn.execute("PRAGMA page_size=16384").await?;
                        // WAL lets the API read while the flusher writes. NORMAL is durable at
                        // checkpoints: what these connections write (profiler results with
                        // their cursor, users, fleet state) is recomputed or re-sent after a
                        // power loss; events go through the FULL writer (`sqlite_writer`).
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout=30000").await?;
                        conn.execute("PRAGMA foreign_keys=ON").await?;
                        // 64 MiB of page cache keeps the event indexes' hot pages in memory
                        // during segment inserts.
                        conn.execute("PRAGMA cache_size=-65536").await?;
                        conn.execute("PRAGMA temp_store=MEMORY").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| RepoError::Connect {
                backend: backend.name(),
                source,
            })?;
        let (sqlite_writer, sqlite_reader, sqlite_intel) = if backend == Backend::Sqlite {
            (
                Some(sqlite_writer(url).await?),
                Some(event_pages::sqlite_reader(url).await?),
                Some(sqlite_intel::pool(url).await?),
            )
        } else {
            (None, None, None)
        };
        Ok(Self {
            pool,
            backend,
            wal: sqlite_writer.as_ref().map(|_| std::sync::Arc::default()),
            sqlite_writer,
            sqlite_reader,
            sqlite_intel,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Apply every migration not yet applied; refuse a database from a newer or diverging
    /// build.
    pub async fn migrate(&self) -> Result<(), RepoError> {
        self.migrate_up_to(i64::MAX).await
    }

    /// [`Self::migrate`] stopping after version `last` (tests build older schemas with it).
    async fn migrate_up_to(&self, last: i64) -> Result<(), RepoError> {
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version BIGINT PRIMARY KEY,
                    name VARCHAR(255) NOT NULL,
                    checksum VARCHAR(64) NOT NULL,
                    applied_ns BIGINT NOT NULL
                )",
            )
            .await
            .map_err(q("creating schema_migrations"))?;
        let applied: Vec<(i64, String)> =
            sqlx::query_as("SELECT version, checksum FROM schema_migrations ORDER BY version")
                .fetch_all(&self.pool)
                .await
                .map_err(q("reading schema_migrations"))?;
        let known = schema::MIGRATIONS.last().map_or(0, |m| m.version);
        if let Some((found, _)) = applied.iter().rev().find(|(v, _)| *v > known) {
            return Err(RepoError::SchemaTooNew {
                found: *found,
                known,
            });
        }
        for m in schema::MIGRATIONS.iter().filter(|m| m.version <= last) {
            let expected = schema::checksum(m);
            if let Some((_, found)) = applied.iter().find(|(v, _)| *v == m.version) {
                if *found != expected {
                    return Err(RepoError::MigrationDiverged {
                        version: m.version,
                        found: found.clone(),
                        expected,
                    });
                }
                continue;
            }
            self.apply(m, &expected).await?;
            tracing::info!(
                version = m.version,
                name = m.name,
                backend = self.backend.name(),
                "applied migration"
            );
        }
        Ok(())
    }

    async fn apply(&self, m: &schema::Migration, checksum: &str) -> Result<(), RepoError> {
        let fail = |source| RepoError::Migration {
            version: m.version,
            name: m.name,
            source,
        };
        let mut tx = self.pool.begin().await.map_err(fail)?;
        for statement in m.statements {
            let Some(text) = schema::render(statement, self.backend) else {
                continue;
            };
            tx.execute(sqlx::AssertSqlSafe(text.as_str()))
                .await
                .map_err(fail)?;
        }
        let mut record = sql::Sql::new(
            self.backend,
            "INSERT INTO schema_migrations (version, name, checksum, applied_ns) VALUES (",
        );
        record
            .bind(sql::Arg::I64(m.version))
            .push(", ")
            .bind(sql::Arg::Text(m.name.to_owned()))
            .push(", ")
            .bind(sql::Arg::Text(checksum.to_owned()))
            .push(", ")
            .bind(sql::Arg::I64(now_ns()))
            .push(")");
        record.query().execute(&mut *tx).await.map_err(fail)?;
        tx.commit().await.map_err(fail)
    }

    /// Close every pooled connection.
    pub async fn close(&self) {
        for native in [&self.sqlite_writer, &self.sqlite_reader, &self.sqlite_intel]
            .into_iter()
            .flatten()
        {
            native.close().await;
        }
        self.pool.close().await;
    }
}

/// The native connection [`SqlRepository`] inserts segments through on SQLite: the pool's
/// pragmas, except `synchronous=FULL`, because the flusher deletes a segment file as soon as
/// its transaction commits — under NORMAL a WAL commit is only durable at the next
/// checkpoint, and a power loss in between would lose events that no segment holds any more.
/// One fsync per segment (thousands of events) is the whole cost. Checkpoints run in the
/// background instead of inside a commit (see `wal`).
async fn sqlite_writer(url: &str) -> Result<sqlx::SqlitePool, RepoError> {
    native_sqlite_writer(url, sqlx::sqlite::SqliteSynchronous::Full, false).await
}

/// One native SQLite write connection (SQLite has one writer at a time anyway) with the
/// repository's pragmas, the given `synchronous`, and SQLite's own checkpoint after commits
/// unless `auto_checkpoint` is false.
pub(super) async fn native_sqlite_writer(
    url: &str,
    synchronous: sqlx::sqlite::SqliteSynchronous,
    auto_checkpoint: bool,
) -> Result<sqlx::SqlitePool, RepoError> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let fail = |source| RepoError::Connect {
        backend: "sqlite",
        source,
    };
    let mut options = SqliteConnectOptions::from_str(url)
        .map_err(fail)?
        .page_size(16384)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        .pragma("cache_size", "-65536")
        .pragma("temp_store", "MEMORY");
    if !auto_checkpoint {
        options = options.pragma("wal_autocheckpoint", "0");
    }
    SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(fail)
}

pub(crate) fn now_ns() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
