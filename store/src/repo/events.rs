//! Events in SQL: the exactly-once segment insert, the log search grammar, histogram, stats
//! and retention.

use std::{fmt::Write as _, net::IpAddr};

use serde::Serialize;
use sqlx::Row;

use super::{
    RepoError, Repository, SegmentFlush, SqlRepository, count_undecodable, insert_sealed_owned, q,
    sql::{Arg, Backend, Sql, clean_text, clip_chars},
    sqlite_flush::{self, Row as FlushRow, RowSource},
    undecodable,
};
use crate::{Event, Severity, codec::EventView, segment::SealedSegment};

/// Rows per multi-row INSERT: 15 parameters each stays under every backend's limit
/// (SQLite 32,766; PostgreSQL and MySQL 65,535).
const ROWS_PER_INSERT: usize = 1000;
pub(super) const EVENT_COLUMNS: &str = "segment_id, seq, ts_ns, decky, service, kind, severity, src_ip, \
                             src_port, dst_ip, dst_port, fields, raw, truncated";
/// Longest search string and most tokens accepted (input from the API).
const MAX_SEARCH_LEN: usize = 1024;
const MAX_TOKENS: usize = 16;
/// Most rows one page may return.
pub const MAX_PAGE: i64 = 10_000;
/// Most buckets one histogram answers with.
pub const MAX_HISTOGRAM_BUCKETS: usize = 10_000;

/// An event as stored, with its row id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    #[serde(flatten)]
    pub event: Event,
}

/// A filter over events: the search grammar plus a time range.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Tokens: `key:value` on decky, service, event/kind, attacker/attacker_ip/src_ip is column
    /// equality; any other `key:value` matches that field; a bare word matches anywhere
    /// (case-insensitive). Quotes group words. All tokens must match.
    pub search: String,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
}

/// One bar of the histogram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistogramBucket {
    pub start_ns: i64,
    pub count: i64,
}

/// Dashboard summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub total_events: i64,
    pub unique_attackers: i64,
    pub deckies_seen: i64,
}

/// One parsed search token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Column(&'static str, String),
    Field(String, String),
    Word(String),
}

/// Split a search string into tokens (shell-like quoting), refusing oversized input.
pub fn parse_search(search: &str) -> Result<Vec<Token>, RepoError> {
    if search.len() > MAX_SEARCH_LEN {
        return Err(RepoError::Invalid(format!(
            "search is {} bytes; at most {MAX_SEARCH_LEN} are accepted",
            search.len()
        )));
    }
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in search.chars() {
        match (quote, c) {
            (Some(qc), c) if c == qc => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.len() > MAX_TOKENS {
        return Err(RepoError::Invalid(format!(
            "search has {} terms; at most {MAX_TOKENS} are accepted",
            words.len()
        )));
    }
    Ok(words
        .into_iter()
        .filter(|w| !w.is_empty())
        .map(|w| match w.split_once(':') {
            Some((key, value)) if !key.is_empty() && valid_key(key) => {
                let column = match key.to_ascii_lowercase().as_str() {
                    "decky" => Some("decky"),
                    "service" => Some("service"),
                    "event" | "kind" | "event_type" => Some("kind"),
                    "attacker" | "attacker_ip" | "attacker-ip" | "src_ip" | "ip" => Some("src_ip"),
                    _ => None,
                };
                match column {
                    Some(c) => Token::Column(c, value.to_owned()),
                    None => Token::Field(key.to_owned(), value.to_owned()),
                }
            }
            _ => Token::Word(w),
        })
        .collect())
}

fn valid_key(key: &str) -> bool {
    key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn like_pattern(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('%');
    for c in clean_text(word).chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl EventQuery {
    /// Append ` WHERE …` (or nothing) for this query. Every token binds its own value (the
    /// original bound one shared parameter, so only the last of several tokens counted).
    fn where_clause(&self, sql: &mut Sql, backend: Backend) -> Result<(), RepoError> {
        let mut conds: Vec<String> = Vec::new();
        for token in parse_search(&self.search)? {
            match token {
                Token::Column(col, value) => {
                    let ph = sql.ph(Arg::Text(clean_text(&value)));
                    conds.push(format!("{col} = {ph}"));
                }
                Token::Field(key, value) => {
                    let path = sql.ph(Arg::Text(backend.json_path(&key)));
                    let ph = sql.ph(Arg::Text(clean_text(&value)));
                    conds.push(format!("{} = {ph}", backend.json_text("fields", &path)));
                }
                Token::Word(word) => {
                    let op = backend.ilike();
                    let pattern = like_pattern(&word);
                    let mut any = Vec::new();
                    for col in ["fields", "decky", "service", "kind", "src_ip"] {
                        let ph = sql.ph(Arg::Text(pattern.clone()));
                        any.push(format!("{col} {op} {ph} ESCAPE '!'"));
                    }
                    conds.push(format!("({})", any.join(" OR ")));
                }
            }
        }
        if let Some(start) = self.start_ns {
            let ph = sql.ph(Arg::I64(start));
            conds.push(format!("ts_ns >= {ph}"));
        }
        if let Some(end) = self.end_ns {
            let ph = sql.ph(Arg::I64(end));
            conds.push(format!("ts_ns < {ph}"));
        }
        if !conds.is_empty() {
            let _ = write!(sql.text, " WHERE {}", conds.join(" AND "));
        }
        Ok(())
    }
}

/// Fields as a JSON object in producer order; a repeated key keeps its first value (the one
/// [`Event::field`] returns), so every backend's JSON functions agree.
fn fields_json(event: &Event) -> String {
    let mut out = Vec::new();
    write_fields_json(EventView::of(event).fields(), &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`fields_json`] of an event's fields appended to `out` (UTF-8) without allocating per
/// field. Repeats are found among the keys already written, not by walking the fields again:
/// over encoded fields each walk re-read every earlier value (up to 4 KiB each), so an event
/// of many large fields cost the flusher the square of its size.
pub(super) fn write_fields_json<'a>(
    fields: impl Iterator<Item = (&'a str, &'a str)>,
    out: &mut Vec<u8>,
) {
    out.push(b'{');
    let mut first = true;
    let mut written: Vec<&'a str> = Vec::with_capacity(16);
    for (k, v) in fields {
        if written.contains(&k) {
            continue;
        }
        written.push(k);
        if !first {
            out.push(b',');
        }
        first = false;
        json_string(k, out);
        out.push(b':');
        json_string(v, out);
    }
    out.push(b'}');
}

/// `s` as a JSON string, NULs replaced as [`clean_text`] does (no backend stores them).
fn json_string(s: &str, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = if s.contains('\0') {
        serde_json::to_writer(&mut *out, &clean_text(s))
    } else {
        serde_json::to_writer(&mut *out, s)
    };
}

fn ip_text(ip: Option<IpAddr>) -> Option<String> {
    ip.map(|i| i.to_string())
}

/// One event's column values as bound (in [`EVENT_COLUMNS`] order after the segment id).
struct RowValues {
    seq: i64,
    ts_ns: i64,
    decky: String,
    service: String,
    kind: String,
    severity: i64,
    src_ip: Option<String>,
    src_port: Option<i64>,
    dst_ip: Option<String>,
    dst_port: Option<i64>,
    fields: String,
    raw: Vec<u8>,
    truncated: i64,
}

impl RowValues {
    fn of(seq: u64, e: &Event) -> Self {
        Self {
            seq: i64::try_from(seq).unwrap_or(i64::MAX),
            ts_ns: e.ts_ns,
            decky: clip_chars(&e.decky, 255),
            service: clip_chars(&e.service, 255),
            kind: clip_chars(&e.kind, 255),
            severity: i64::from(e.severity.code()),
            src_ip: ip_text(e.src_ip),
            src_port: e.src_port.map(i64::from),
            dst_ip: ip_text(e.dst_ip),
            dst_port: e.dst_port.map(i64::from),
            fields: fields_json(e),
            raw: e.raw().to_vec(),
            truncated: i64::from(e.truncated),
        }
    }
}

/// A segment insert over the native SQLite connection: sqlx begins, marks and commits; the
/// rows of `source` go through [`super::sqlite_flush`] on the raw handle. `entries` is the
/// segment's entry count, recorded in its marker less `skipped(source)` (entries the source
/// skipped as undecodable). Returns rows inserted, `None` when the segment was flushed before.
async fn insert_segment_sqlite<S: RowSource + Send>(
    pool: &sqlx::SqlitePool,
    segment: i64,
    entries: u64,
    source: &mut S,
    skipped: impl FnOnce(&S) -> u64,
) -> Result<Option<u64>, RepoError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(q("starting the segment insert"))?;
    let fresh = sqlx::query(
        "INSERT INTO flushed_segments (segment_id, events, flushed_ns) VALUES (?, ?, ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(segment)
    .bind(i64::try_from(entries).unwrap_or(i64::MAX))
    .bind(super::now_ns())
    .execute(&mut *tx)
    .await
    .map_err(q("marking a segment flushed"))?
    .rows_affected();
    if fresh == 0 {
        tx.rollback()
            .await
            .map_err(q("ending a replayed segment's insert"))?;
        return Ok(None);
    }
    let inserted = {
        let mut handle = tx
            .lock_handle()
            .await
            .map_err(q("locking the SQLite connection"))?;
        // SAFETY: the handle lock keeps sqlx's worker off this connection until it drops,
        // and the transaction begun above is open on it.
        unsafe { sqlite_flush::insert_rows(handle.as_raw_handle(), segment, source) }
    };
    // On an error the transaction is dropped here, which rolls it back.
    let inserted = inserted?;
    let skipped = skipped(source);
    if skipped > 0 {
        sqlx::query("UPDATE flushed_segments SET events = ? WHERE segment_id = ?")
            .bind(i64::try_from(entries.saturating_sub(skipped)).unwrap_or(i64::MAX))
            .bind(segment)
            .execute(&mut *tx)
            .await
            .map_err(q("marking a segment flushed"))?;
    }
    tx.commit()
        .await
        .map_err(q("committing a segment's events"))?;
    Ok(Some(inserted))
}

/// A sealed segment's entries as rows, read in place; undecodable entries are logged,
/// counted and skipped.
struct SegmentRows<'s> {
    id: u64,
    entries: crate::segment::Entries<'s>,
    skipped: u64,
}

impl RowSource for SegmentRows<'_> {
    fn next_row(&mut self, row: &mut FlushRow) -> Result<bool, RepoError> {
        loop {
            let next = self.entries.next_with(|seq, entry| match entry {
                Ok(view) => {
                    row.fill(seq, &view);
                    true
                }
                Err(e) => {
                    undecodable(self.id, seq, &e);
                    false
                }
            });
            match next {
                None => return Ok(false),
                Some(Ok(true)) => return Ok(true),
                Some(Ok(false)) => self.skipped += 1,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }
}

impl SqlRepository {
    /// After a segment commit on the SQLite writer: checkpoint its WAL in the background.
    fn checkpoint_later(&self) {
        if let Some(wal) = &self.wal {
            wal.request(&self.pool);
        }
    }
}

impl Repository for SqlRepository {
    async fn insert_segment(
        &self,
        segment_id: u64,
        rows: &[(u64, Event)],
    ) -> Result<u64, RepoError> {
        let segment = i64::try_from(segment_id)
            .map_err(|_| RepoError::Invalid(format!("segment id {segment_id} exceeds i64")))?;
        if let Some(writer) = &self.sqlite_writer {
            let written =
                insert_segment_sqlite(writer, segment, rows.len() as u64, &mut rows.iter(), |_| 0)
                    .await?;
            self.checkpoint_later();
            return Ok(written.unwrap_or(0));
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(q("starting the segment insert"))?;
        // The segment's marker goes first: a replayed segment (crash between commit and file
        // delete) stops here, and a concurrent insert of the same segment waits on the marker's
        // key until this transaction ends, then finds it.
        let mut marker = Sql::new(self.backend, self.backend.insert_ignore());
        marker.push(" flushed_segments (segment_id, events, flushed_ns) VALUES (");
        marker
            .bind(Arg::I64(segment))
            .push(", ")
            .bind(Arg::I64(i64::try_from(rows.len()).unwrap_or(i64::MAX)))
            .push(", ")
            .bind(Arg::I64(super::now_ns()))
            .push(")");
        marker.push(self.backend.on_conflict_ignore());
        let fresh = marker
            .query()
            .execute(&mut *tx)
            .await
            .map_err(q("marking a segment flushed"))?
            .rows_affected();
        if fresh == 0 {
            tx.rollback()
                .await
                .map_err(q("ending a replayed segment's insert"))?;
            return Ok(0);
        }
        let mut inserted = 0;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut sql = Sql::new(self.backend, "INSERT INTO");
            let _ = write!(sql.text, " events ({EVENT_COLUMNS}) VALUES ");
            for (i, (seq, e)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                let r = RowValues::of(*seq, e);
                let args = [
                    Arg::I64(segment),
                    Arg::I64(r.seq),
                    Arg::I64(r.ts_ns),
                    Arg::Text(r.decky),
                    Arg::Text(r.service),
                    Arg::Text(r.kind),
                    Arg::I64(r.severity),
                    Arg::OptText(r.src_ip),
                    Arg::OptI64(r.src_port),
                    Arg::OptText(r.dst_ip),
                    Arg::OptI64(r.dst_port),
                    Arg::Text(r.fields),
                    Arg::Bytes(r.raw),
                    Arg::I64(r.truncated),
                ];
                sql.push("(");
                for (j, arg) in args.into_iter().enumerate() {
                    if j > 0 {
                        sql.push(", ");
                    }
                    sql.bind(arg);
                }
                sql.push(")");
            }
            let done = sql
                .query()
                .execute(&mut *tx)
                .await
                .map_err(q("inserting a segment's events"))?;
            inserted += done.rows_affected();
        }
        tx.commit()
            .await
            .map_err(q("committing a segment's events"))?;
        Ok(inserted)
    }

    async fn insert_sealed(&self, sealed: &SealedSegment) -> Result<SegmentFlush, RepoError> {
        let Some(writer) = &self.sqlite_writer else {
            return insert_sealed_owned(self, sealed).await;
        };
        let segment = i64::try_from(sealed.id())
            .map_err(|_| RepoError::Invalid(format!("segment id {} exceeds i64", sealed.id())))?;
        // Streamed: each entry is read in place from the segment's page and inserted before
        // the next is read: no owned event is built and the segment is never in memory whole.
        let mut source = SegmentRows {
            id: sealed.id(),
            entries: sealed.iter()?,
            skipped: 0,
        };
        let written = insert_segment_sqlite(writer, segment, sealed.entries(), &mut source, |s| {
            s.skipped
        })
        .await?;
        self.checkpoint_later();
        Ok(match written {
            Some(inserted) => SegmentFlush {
                inserted,
                undecodable: source.skipped,
            },
            // Flushed before: count its undecodable entries as a first flush would.
            None => SegmentFlush {
                inserted: 0,
                undecodable: count_undecodable(sealed)?,
            },
        })
    }

    async fn max_segment_id(&self) -> Result<u64, RepoError> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(segment_id) FROM flushed_segments")
            .fetch_one(&self.pool)
            .await
            .map_err(q("reading the highest segment id"))?;
        Ok(max.and_then(|m| u64::try_from(m).ok()).unwrap_or(0))
    }
}

const SELECT_EVENTS: &str = "SELECT id, ts_ns, decky, service, kind, severity, src_ip, src_port, \
                             dst_ip, dst_port, fields, raw, truncated FROM events";

fn row_to_event(row: &sqlx::any::AnyRow) -> Result<StoredEvent, sqlx::Error> {
    let severity: i64 = row.try_get("severity")?;
    let mut event = Event::new(
        row.try_get("ts_ns")?,
        row.try_get::<String, _>("decky")?,
        row.try_get::<String, _>("service")?,
        row.try_get::<String, _>("kind")?,
        u8::try_from(severity)
            .ok()
            .and_then(Severity::from_code)
            .unwrap_or(Severity::Info),
    );
    let ip = |col: &str| -> Result<Option<IpAddr>, sqlx::Error> {
        Ok(row
            .try_get::<Option<String>, _>(col)?
            .and_then(|s| s.parse().ok()))
    };
    let port = |col: &str| -> Result<Option<u16>, sqlx::Error> {
        Ok(row
            .try_get::<Option<i64>, _>(col)?
            .and_then(|p| u16::try_from(p).ok()))
    };
    event.src_ip = ip("src_ip")?;
    event.src_port = port("src_port")?;
    event.dst_ip = ip("dst_ip")?;
    event.dst_port = port("dst_port")?;
    let fields: String = row.try_get("fields")?;
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&fields) {
        for (k, v) in map {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            let _ = event.push_field(&k, &text);
        }
    }
    event.set_raw(&row.try_get::<Vec<u8>, _>("raw")?);
    event.truncated = row.try_get::<i64, _>("truncated")? != 0;
    Ok(StoredEvent {
        id: row.try_get("id")?,
        event,
    })
}

impl SqlRepository {
    /// Events matching `query`, newest first.
    pub async fn events(
        &self,
        query: &EventQuery,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<StoredEvent>, RepoError> {
        let mut sql = Sql::new(self.backend, SELECT_EVENTS);
        query.where_clause(&mut sql, self.backend)?;
        sql.push(" ORDER BY id DESC LIMIT ");
        sql.bind(Arg::I64(limit.clamp(0, MAX_PAGE)));
        sql.push(" OFFSET ");
        sql.bind(Arg::I64(offset.max(0)));
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(q("searching events"))?;
        rows.iter()
            .map(row_to_event)
            .collect::<Result<_, _>>()
            .map_err(q("reading events"))
    }

    /// How many events match `query`.
    pub async fn count_events(&self, query: &EventQuery) -> Result<i64, RepoError> {
        let mut sql = Sql::new(self.backend, "SELECT COUNT(*) FROM events");
        query.where_clause(&mut sql, self.backend)?;
        sql.scalar::<i64>()
            .fetch_one(&self.pool)
            .await
            .map_err(q("counting events"))
    }

    /// Highest event row id (0 when empty): the live stream's resume point.
    pub async fn max_event_id(&self) -> Result<i64, RepoError> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(q("reading the highest event id"))?;
        Ok(max.unwrap_or(0))
    }

    /// Events with id above `after`, oldest first (the live stream and the profiler cursor).
    pub async fn events_after(
        &self,
        after: i64,
        query: &EventQuery,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, RepoError> {
        let mut sql = Sql::new(self.backend, SELECT_EVENTS);
        query.where_clause(&mut sql, self.backend)?;
        sql.push(if sql.arg_count() == 0 {
            " WHERE "
        } else {
            " AND "
        });
        sql.push("id > ");
        sql.bind(Arg::I64(after));
        sql.push(" ORDER BY id LIMIT ");
        sql.bind(Arg::I64(limit.clamp(0, MAX_PAGE)));
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(q("reading events after an id"))?;
        rows.iter()
            .map(row_to_event)
            .collect::<Result<_, _>>()
            .map_err(q("reading events"))
    }

    /// Event counts per `bucket_secs` interval for `query`, oldest first.
    pub async fn histogram(
        &self,
        query: &EventQuery,
        bucket_secs: i64,
    ) -> Result<Vec<HistogramBucket>, RepoError> {
        if !(1..=86_400 * 366).contains(&bucket_secs) {
            return Err(RepoError::Invalid(format!(
                "histogram interval {bucket_secs}s must be between 1 second and 1 year"
            )));
        }
        let width = bucket_secs * 1_000_000_000;
        let mut sql = Sql::new(self.backend, "SELECT ");
        let ph = sql.ph(Arg::I64(width));
        let bucket = self.backend.idiv("ts_ns", &ph);
        let _ = write!(sql.text, "{bucket} AS b, COUNT(*) AS n FROM events");
        query.where_clause(&mut sql, self.backend)?;
        sql.push(" GROUP BY b ORDER BY b LIMIT ");
        sql.bind(Arg::I64(MAX_HISTOGRAM_BUCKETS as i64 + 1));
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(q("computing the histogram"))?;
        // One bucket per interval that holds events: a one-minute interval over a year of
        // them answered with half a million.
        if rows.len() > MAX_HISTOGRAM_BUCKETS {
            return Err(RepoError::Invalid(format!(
                "the histogram would have more than {MAX_HISTOGRAM_BUCKETS} buckets: \
                 use a longer interval or a shorter time range"
            )));
        }
        rows.iter()
            .map(|r| {
                Ok(HistogramBucket {
                    start_ns: r.try_get::<i64, _>("b")? * width,
                    count: r.try_get("n")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("reading the histogram"))
    }

    /// Totals for the dashboard's stat cards, scanning the whole table; the web keeps them
    /// with an [`super::EventTally`] instead, which reads only what changed.
    pub async fn stats(&self) -> Result<Stats, RepoError> {
        let one = |text: &'static str| {
            let pool = self.pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(text)
                    .fetch_one(&pool)
                    .await
                    .map_err(q("computing stats"))
            }
        };
        Ok(Stats {
            total_events: one("SELECT COUNT(*) FROM events").await?,
            unique_attackers: one("SELECT COUNT(DISTINCT src_ip) FROM events").await?,
            deckies_seen: one("SELECT COUNT(DISTINCT decky) FROM events").await?,
        })
    }

    /// Delete events (and bounties) older than `before_ns`. Returns events deleted.
    pub async fn delete_events_before(&self, before_ns: i64) -> Result<u64, RepoError> {
        let mut sql = Sql::new(self.backend, "DELETE FROM events WHERE ts_ns < ");
        sql.bind(Arg::I64(before_ns));
        let done = sql
            .query()
            .execute(&self.pool)
            .await
            .map_err(q("deleting old events"))?;
        let mut bounties = Sql::new(self.backend, "DELETE FROM bounties WHERE ts_ns < ");
        bounties.bind(Arg::I64(before_ns));
        bounties
            .query()
            .execute(&self.pool)
            .await
            .map_err(q("deleting old bounties"))?;
        self.prune_segment_markers(before_ns).await?;
        Ok(done.rows_affected())
    }

    /// Forget segment markers flushed before `before_ns`: a marker only matters while its
    /// segment file may still be on disk (a crash between commit and delete, replayed at the
    /// next start). The newest marker stays, so segment ids keep increasing.
    async fn prune_segment_markers(&self, before_ns: i64) -> Result<(), RepoError> {
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(segment_id) FROM flushed_segments")
                .fetch_one(&self.pool)
                .await
                .map_err(q("reading the newest segment marker"))?;
        let Some(newest) = newest else {
            return Ok(());
        };
        let mut sql = Sql::new(
            self.backend,
            "DELETE FROM flushed_segments WHERE flushed_ns < ",
        );
        sql.bind(Arg::I64(before_ns))
            .push(" AND segment_id < ")
            .bind(Arg::I64(newest));
        sql.query()
            .execute(&self.pool)
            .await
            .map_err(q("pruning segment markers"))?;
        Ok(())
    }

    /// Approximate bytes the events table holds (fields + raw + a fixed row overhead).
    pub async fn events_bytes(&self) -> Result<i64, RepoError> {
        let text = match self.backend {
            Backend::Sqlite => {
                "SELECT COALESCE(SUM(LENGTH(fields) + LENGTH(raw) + 96), 0) FROM events"
            }
            Backend::Postgres => {
                "SELECT COALESCE(SUM(OCTET_LENGTH(fields) + OCTET_LENGTH(raw) + 96), 0)::BIGINT FROM events"
            }
            Backend::Mysql => {
                "SELECT CAST(COALESCE(SUM(LENGTH(fields) + LENGTH(raw) + 96), 0) AS SIGNED) FROM events"
            }
        };
        sqlx::query_scalar::<_, i64>(text)
            .fetch_one(&self.pool)
            .await
            .map_err(q("measuring the events table"))
    }

    /// Delete the oldest events until the table holds at most about `max_bytes`. Returns
    /// events deleted.
    pub async fn enforce_size(&self, max_bytes: i64) -> Result<u64, RepoError> {
        let mut deleted = 0;
        loop {
            let bytes = self.events_bytes().await?;
            if bytes <= max_bytes {
                return Ok(deleted);
            }
            let total = self.count_events(&EventQuery::default()).await?;
            if total == 0 {
                return Ok(deleted);
            }
            // Remove the share of rows that is over budget (at least one), oldest ids first.
            let over = (bytes - max_bytes) as f64 / bytes as f64;
            let n = ((total as f64 * over).ceil() as i64).clamp(1, 100_000);
            let mut sql = Sql::new(
                self.backend,
                "SELECT id FROM events ORDER BY id LIMIT 1 OFFSET ",
            );
            sql.bind(Arg::I64(n - 1));
            let cutoff: i64 = sql
                .scalar()
                .fetch_one(&self.pool)
                .await
                .map_err(q("finding the retention cutoff"))?;
            let mut del = Sql::new(self.backend, "DELETE FROM events WHERE id <= ");
            del.bind(Arg::I64(cutoff));
            deleted += del
                .query()
                .execute(&self.pool)
                .await
                .map_err(q("deleting events over the size budget"))?
                .rows_affected();
        }
    }

    /// Delete every event, bounty, attacker and behaviour row (the original's purge).
    pub async fn purge(&self) -> Result<(), RepoError> {
        for table in [
            "attacker_behavior",
            "attackers",
            "attacker_state",
            "sessions",
            "bounties",
            "events",
        ] {
            let text = format!("DELETE FROM {table}");
            sqlx::query(sqlx::AssertSqlSafe(text))
                .execute(&self.pool)
                .await
                .map_err(q("purging"))?;
        }
        // Event ids may start again from 1 in an emptied table; the profiler must too.
        sqlx::query("DELETE FROM state WHERE state_key = 'profiler_cursor'")
            .execute(&self.pool)
            .await
            .map_err(q("purging"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::Cell, rc::Rc};

    use super::*;

    /// An iterator that counts the fields read from it, clones included.
    #[derive(Clone)]
    struct Counted<'a> {
        fields: std::slice::Iter<'a, (&'a str, &'a str)>,
        reads: Rc<Cell<usize>>,
    }

    impl<'a> Iterator for Counted<'a> {
        type Item = (&'a str, &'a str);
        fn next(&mut self) -> Option<Self::Item> {
            self.reads.set(self.reads.get() + 1);
            self.fields.next().copied()
        }
    }

    #[test]
    fn repeated_keys_keep_the_first_value_and_each_field_is_read_once() {
        let keys: Vec<String> = (0..64).map(|i| format!("k{}", i % 40)).collect();
        let fields: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
        let reads = Rc::new(Cell::new(0));
        let mut out = Vec::new();
        let counted = Counted {
            fields: fields.iter(),
            reads: Rc::clone(&reads),
        };
        write_fields_json(counted, &mut out);
        let json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&out).unwrap();
        assert_eq!(json.len(), 40);
        // Walking the earlier fields again for every field read 2,000+ of them (each value
        // decoded and checked again when they come from a segment).
        assert_eq!(reads.get(), 65);
        let mut dup = Vec::new();
        write_fields_json([("a", "1"), ("b", "2"), ("a", "3")].into_iter(), &mut dup);
        assert_eq!(String::from_utf8(dup).unwrap(), r#"{"a":"1","b":"2"}"#);
    }
}
