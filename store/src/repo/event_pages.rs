//! Reading the events table in id order, page by page, as fast as the backend allows: the
//! profiler's catch-up read.
//!
//! On SQLite the page is stepped on a native connection's raw handle and each column decoded
//! straight from SQLite's buffers into [`Event`]s: through sqlx `Any` every value is copied
//! into an `AnyValue` first and the fields column parsed into a `serde_json::Value` tree
//! (~20 µs per event, more than profiling it), and even sqlx's own `SqliteRow` duplicates every
//! value (`sqlite3_value_dup`, a `malloc` each) before it can be read. Other backends use
//! [`SqlRepository::events_after`].

use std::{borrow::Cow, ffi::c_int, fmt, net::IpAddr, ptr::NonNull, str::FromStr, time::Duration};

use libsqlite3_sys as ffi;

use super::{EventQuery, MAX_PAGE, RepoError, SqlRepository, StoredEvent, q, sqlite_flush};
use crate::{Event, Severity};
use serde::{
    Deserialize as _,
    de::{self, Deserializer, MapAccess, Visitor},
};

/// Native read connections: the profiler reads the next page while it profiles this one.
const READERS: u32 = 2;

/// The native read-only pool used for event pages on SQLite (same pragmas as the pool's, so
/// it reads the same WAL database).
pub(super) async fn sqlite_reader(url: &str) -> Result<sqlx::SqlitePool, RepoError> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let fail = |source| RepoError::Connect {
        backend: "sqlite",
        source,
    };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(fail)?
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30))
        .pragma("cache_size", "-16384")
        .pragma("temp_store", "MEMORY");
    SqlitePoolOptions::new()
        .max_connections(READERS)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(fail)
}

const SELECT_PAGE: &str = "SELECT id, ts_ns, decky, service, kind, severity, src_ip, src_port, \
                           dst_ip, dst_port, fields, raw, truncated FROM events \
                           WHERE id > ? ORDER BY id LIMIT ?";

/// Adds each member of the stored fields object to the event, in document order (the
/// producer's order): no intermediate map, one copy per value.
struct FieldsInto<'a>(&'a mut Event);

impl<'de> Visitor<'de> for FieldsInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of event fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value: FieldValue = map.next_value()?;
            // Over the field cap or a bad key: the event keeps what fits, as on insert.
            let _ = self.0.push_field(&key, &value.0);
        }
        Ok(())
    }
}

/// A field's value: its text, or the JSON text of a non-string value (as `events_after`).
/// Strings, nearly every value, are taken as they are parsed, without a `Value` in between.
struct FieldValue(String);

impl<'de> de::Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldValueVisitor)
    }
}

struct FieldValueVisitor;

impl<'de> Visitor<'de> for FieldValueVisitor {
    type Value = FieldValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event field value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
        Ok(FieldValue(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<FieldValue, E> {
        Ok(FieldValue(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<FieldValue, E> {
        Ok(FieldValue(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldValue, E> {
        Ok(FieldValue(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldValue, E> {
        Ok(FieldValue(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<FieldValue, E> {
        Ok(FieldValue(serde_json::Value::from(v).to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<FieldValue, E> {
        Ok(FieldValue("null".to_owned()))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<FieldValue, A::Error> {
        let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(FieldValue(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldValue, A::Error> {
        let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(FieldValue(v.to_string()))
    }
}

fn push_fields(event: &mut Event, json: &str) {
    let mut de = serde_json::Deserializer::from_str(json);
    // A malformed fields column leaves the event without (some of) its fields, as
    // `events_after` does; the row itself is still profiled.
    let _ = de.deserialize_map(FieldsInto(event));
}

fn ip(text: Option<&str>) -> Option<IpAddr> {
    text.and_then(|s| s.parse().ok())
}

fn port(p: Option<i64>) -> Option<u16> {
    p.and_then(|p| u16::try_from(p).ok())
}

/// A prepared statement, finalized on drop.
struct PageStmt(NonNull<ffi::sqlite3_stmt>);

impl Drop for PageStmt {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized exactly once.
        unsafe { ffi::sqlite3_finalize(self.0.as_ptr()) };
    }
}

/// Column `i` of the current row as bytes (empty when NULL): valid until the next step.
///
/// # Safety
/// `s` must be a statement positioned on a row.
unsafe fn column_bytes<'a>(s: *mut ffi::sqlite3_stmt, i: c_int) -> Option<&'a [u8]> {
    // SAFETY: the caller vouches for the row; `sqlite3_column_blob` returns `len` bytes that
    // stay valid until the statement steps again, and the caller's borrow ends before that.
    unsafe {
        if ffi::sqlite3_column_type(s, i) == ffi::SQLITE_NULL {
            return None;
        }
        let p = ffi::sqlite3_column_blob(s, i).cast::<u8>();
        let len = usize::try_from(ffi::sqlite3_column_bytes(s, i)).unwrap_or(0);
        Some(if p.is_null() || len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(p, len)
        })
    }
}

/// Column `i` as text; bytes that are not UTF-8 (never written by this store) are replaced.
///
/// # Safety
/// As [`column_bytes`].
unsafe fn column_text<'a>(s: *mut ffi::sqlite3_stmt, i: c_int) -> Option<Cow<'a, str>> {
    // SAFETY: the caller vouches for the row.
    unsafe { column_bytes(s, i) }.map(String::from_utf8_lossy)
}

/// Column `i` as an integer, `None` when NULL.
///
/// # Safety
/// As [`column_bytes`].
unsafe fn column_int(s: *mut ffi::sqlite3_stmt, i: c_int) -> Option<i64> {
    // SAFETY: the caller vouches for the row.
    unsafe {
        (ffi::sqlite3_column_type(s, i) != ffi::SQLITE_NULL)
            .then(|| ffi::sqlite3_column_int64(s, i))
    }
}

/// The current row of [`SELECT_PAGE`] as an event, its values copied once, into the event.
///
/// # Safety
/// As [`column_bytes`].
unsafe fn page_row(s: *mut ffi::sqlite3_stmt) -> StoredEvent {
    // SAFETY (all below): the caller vouches for the row; every borrow ends in this call.
    unsafe {
        let text = |i| column_text(s, i).unwrap_or_default();
        let severity = column_int(s, 5).unwrap_or_default();
        let mut event = Event::new(
            column_int(s, 1).unwrap_or_default(),
            text(2),
            text(3),
            text(4),
            u8::try_from(severity)
                .ok()
                .and_then(Severity::from_code)
                .unwrap_or(Severity::Info),
        );
        event.src_ip = ip(column_text(s, 6).as_deref());
        event.src_port = port(column_int(s, 7));
        event.dst_ip = ip(column_text(s, 8).as_deref());
        event.dst_port = port(column_int(s, 9));
        push_fields(&mut event, &text(10));
        event.set_raw(column_bytes(s, 11).unwrap_or_default());
        event.truncated = column_int(s, 12).unwrap_or_default() != 0;
        StoredEvent {
            id: column_int(s, 0).unwrap_or_default(),
            event,
        }
    }
}

/// Run [`SELECT_PAGE`] on `db` and decode every row.
///
/// # Safety
/// `db` must be an open connection no other thread uses until this returns.
unsafe fn read_page(
    db: NonNull<ffi::sqlite3>,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, RepoError> {
    const WHAT: &str = "reading events after an id";
    // SAFETY: the caller vouches for `db`.
    let stmt = PageStmt(unsafe { sqlite_flush::prepare(db, SELECT_PAGE, WHAT) }?);
    let s = stmt.0.as_ptr();
    // SAFETY: a live statement; integers are bound by value.
    let bound = unsafe {
        let rc = ffi::sqlite3_bind_int64(s, 1, after);
        if rc == ffi::SQLITE_OK {
            ffi::sqlite3_bind_int64(s, 2, limit)
        } else {
            rc
        }
    };
    if bound != ffi::SQLITE_OK {
        // SAFETY: as above.
        return Err(unsafe { sqlite_flush::error(db, bound, WHAT) });
    }
    let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
    loop {
        // SAFETY: a live statement on a connection only this thread uses.
        match unsafe { ffi::sqlite3_step(s) } {
            // SAFETY: the statement is on a row.
            ffi::SQLITE_ROW => out.push(unsafe { page_row(s) }),
            ffi::SQLITE_DONE => return Ok(out),
            // SAFETY: as above.
            rc => return Err(unsafe { sqlite_flush::error(db, rc, WHAT) }),
        }
    }
}

impl SqlRepository {
    /// Every event with id above `after`, oldest first, at most `limit` (capped at
    /// [`MAX_PAGE`]): [`Self::events_after`] without a filter, read natively on SQLite.
    ///
    /// On SQLite the page is stepped on the calling thread (a page of 10,000 events takes
    /// milliseconds): callers that must not hold up a runtime thread that long call it from a
    /// blocking one.
    pub async fn event_page_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, RepoError> {
        let Some(reader) = &self.sqlite_reader else {
            return self
                .events_after(after, &EventQuery::default(), limit)
                .await;
        };
        let mut conn = reader
            .acquire()
            .await
            .map_err(q("opening an event reader"))?;
        let mut handle = conn
            .lock_handle()
            .await
            .map_err(q("locking the SQLite event reader"))?;
        // SAFETY: the handle lock keeps sqlx's worker off this connection until it drops.
        unsafe { read_page(handle.as_raw_handle(), after, limit.clamp(0, MAX_PAGE)) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::repo::Repository;

    fn event(i: i64) -> Event {
        let mut e = Event::new(
            1_000 + i,
            "decky-α",
            "ssh",
            "auth_attempt",
            Severity::Warning,
        );
        e.src_ip = Some(if i % 2 == 0 {
            "192.0.2.7".parse().unwrap()
        } else {
            "2001:db8::7".parse().unwrap()
        });
        e.src_port = Some(40_000);
        e.dst_ip = Some("10.0.0.2".parse().unwrap());
        e.dst_port = (i % 3 != 0).then_some(22);
        // Not in key order: the page keeps the producer's order.
        e.push_field("username", "root").unwrap();
        e.push_field("password", &format!("p\"w\\{i}\n")).unwrap();
        e.push_field("agent", "ü ✓").unwrap();
        e.set_raw(&[0, 159, 255, b'x']);
        e.truncated = i == 3;
        e
    }

    #[tokio::test]
    async fn sqlite_pages_round_trip_events_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
        let repo = SqlRepository::connect(&url).await.unwrap();
        assert!(repo.sqlite_reader.is_some());
        let rows: Vec<(u64, Event)> = (0..5).map(|i| (i as u64, event(i))).collect();
        repo.insert_segment(1, &rows).await.unwrap();

        let all = repo.event_page_after(0, 100).await.unwrap();
        let got: Vec<&Event> = all.iter().map(|s| &s.event).collect();
        let want: Vec<&Event> = rows.iter().map(|(_, e)| e).collect();
        assert_eq!(got, want);
        // The same rows and ids as the generic read (which orders fields by key).
        let generic = repo
            .events_after(0, &EventQuery::default(), 100)
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|s| s.id).collect::<Vec<_>>(),
            generic.iter().map(|s| s.id).collect::<Vec<_>>()
        );
        for (a, b) in all.iter().zip(&generic) {
            let mut fa = a.event.fields().to_vec();
            fa.sort();
            let mut fb = b.event.fields().to_vec();
            fb.sort();
            assert_eq!(fa, fb);
        }

        let page = repo.event_page_after(all[1].id, 2).await.unwrap();
        assert_eq!(
            page.iter().map(|s| s.id).collect::<Vec<_>>(),
            [all[2].id, all[3].id]
        );
        assert!(
            repo.event_page_after(all[4].id, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn non_string_and_malformed_fields_are_tolerated() {
        let mut e = Event::new(0, "d", "s", "k", Severity::Info);
        push_fields(&mut e, r#"{"n":12,"o":{"a":[1]},"s":"x"}"#);
        assert_eq!(e.field("n"), Some("12"));
        assert_eq!(e.field("o"), Some(r#"{"a":[1]}"#));
        assert_eq!(e.field("s"), Some("x"));
        let mut bad = Event::new(0, "d", "s", "k", Severity::Info);
        push_fields(&mut bad, "not json");
        assert!(bad.fields().is_empty());
    }
}
