//! Reading the events table in id order, page by page, as fast as the backend allows: the
//! profiler's catch-up read.
//!
//! On SQLite the page is read through a native connection and decoded straight into
//! [`Event`]s: through sqlx `Any` every value is copied into an `AnyValue` first and the
//! fields column is parsed into a `serde_json::Value` tree, which cost ~20 µs per event, more
//! than profiling the event. Other backends use [`SqlRepository::events_after`].

use std::{fmt, net::IpAddr, str::FromStr, time::Duration};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use sqlx::Row;

use super::{EventQuery, MAX_PAGE, RepoError, SqlRepository, StoredEvent, q};
use crate::{Event, Severity};

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
struct FieldValue(String);

impl<'de> de::Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Self(match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
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

fn page_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredEvent, sqlx::Error> {
    let severity: i64 = row.try_get(5)?;
    let mut event = Event::new(
        row.try_get(1)?,
        row.try_get::<&str, _>(2)?,
        row.try_get::<&str, _>(3)?,
        row.try_get::<&str, _>(4)?,
        u8::try_from(severity)
            .ok()
            .and_then(Severity::from_code)
            .unwrap_or(Severity::Info),
    );
    event.src_ip = ip(row.try_get(6)?);
    event.src_port = port(row.try_get(7)?);
    event.dst_ip = ip(row.try_get(8)?);
    event.dst_port = port(row.try_get(9)?);
    push_fields(&mut event, row.try_get(10)?);
    let raw: Option<&[u8]> = row.try_get(11)?;
    event.set_raw(raw.unwrap_or_default());
    event.truncated = row.try_get::<i64, _>(12)? != 0;
    Ok(StoredEvent {
        id: row.try_get(0)?,
        event,
    })
}

impl SqlRepository {
    /// Every event with id above `after`, oldest first, at most `limit` (capped at
    /// [`MAX_PAGE`]): [`Self::events_after`] without a filter, read natively on SQLite.
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
        let rows = sqlx::query(SELECT_PAGE)
            .bind(after)
            .bind(limit.clamp(0, MAX_PAGE))
            .fetch_all(reader)
            .await
            .map_err(q("reading events after an id"))?;
        rows.iter()
            .map(page_row)
            .collect::<Result<_, _>>()
            .map_err(q("reading events"))
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
