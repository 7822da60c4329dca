//! The live stream. ONE feeder task reads newly flushed events from the repository (by id
//! cursor) and broadcasts them in batches to every SSE client; clients never poll the
//! database (the original polled once a second per client). Each frame carries an `id:` line
//! so a reconnecting browser resumes from `Last-Event-ID`; a client that falls behind the
//! bounded channel gets a `lagged` frame and is closed instead of buffering without bound.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::State,
    http::HeaderMap,
    response::sse::{Event as SseEvent, KeepAlive, Sse},
};
use decnet_store::{
    Event,
    repo::{EventQuery, StoredEvent, Token, parse_search},
};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use crate::{ApiError, AppState, error::ApiQuery, routes::event_json};

/// Batches the channel holds (the last ones sent stay in it until overwritten) before a slow
/// client is declared lagged.
pub const CHANNEL_BATCHES: usize = 64;
/// Bytes of events (parsed and serialized) one batch holds at most; a read that holds more is
/// sent as several batches. With [`CHANNEL_BATCHES`] this bounds what the channel keeps at
/// 128 MiB plus a batch, where 256 batches of 1,000 events of attacker-sized fields (up to
/// ~270 KB each) could have held gigabytes.
const BATCH_BYTES: usize = 2 << 20;
/// Most events one feeder read (and one backfill) takes.
const READ_LIMIT: i64 = 1000;
/// How often the feeder refreshes the stats frame while events arrive.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// How often it refreshes it when no event arrived (the profiler's last commit after the last
/// event still shows up). The event counts are then cached; the bounty count may be re-read.
const STATS_IDLE_EVERY: Duration = Duration::from_secs(60);

/// One broadcast batch of newly flushed events, oldest first, each with its JSON (serialized
/// once by the feeder, not once per client).
pub type Batch = Arc<Vec<LiveEvent>>;

/// A newly flushed event and the JSON the stream sends for it.
#[derive(Debug)]
pub struct LiveEvent {
    pub row: StoredEvent,
    pub json: String,
}

impl LiveEvent {
    fn of(row: StoredEvent) -> Self {
        let json = serde_json::to_string(&event_json(&row)).unwrap_or_default();
        Self { row, json }
    }

    /// Memory it holds: its JSON, and the parsed event (about as large again).
    fn bytes(&self) -> usize {
        self.json.len() * 2
    }
}

/// `events` cut into batches of at most [`BATCH_BYTES`] (each holds at least one event).
fn batches(events: impl Iterator<Item = LiveEvent>) -> Vec<Vec<LiveEvent>> {
    let mut out: Vec<Vec<LiveEvent>> = Vec::new();
    let mut held = 0;
    for event in events {
        let bytes = event.bytes();
        match out.last_mut() {
            Some(batch) if held + bytes <= BATCH_BYTES => batch.push(event),
            _ => {
                held = 0;
                out.push(vec![event]);
            }
        }
        held += bytes;
    }
    out
}

#[derive(Debug)]
pub struct Live {
    tx: broadcast::Sender<Batch>,
    stats: watch::Sender<Option<Arc<serde_json::Value>>>,
    /// Highest event id broadcast so far (where a new client without Last-Event-ID starts).
    cursor: AtomicI64,
}

impl Live {
    pub fn new(
        tx: broadcast::Sender<Batch>,
        stats: watch::Sender<Option<Arc<serde_json::Value>>>,
    ) -> Self {
        Self {
            tx,
            stats,
            cursor: AtomicI64::new(-1),
        }
    }

    pub fn cursor(&self) -> i64 {
        self.cursor.load(Ordering::Acquire)
    }
}

/// The feeder: run once per process (spawned by `decnet api` / `decnet serve`).
pub async fn run_feeder(state: AppState) {
    let mut cursor = loop {
        match state.repo.max_event_id().await {
            Ok(id) => break id,
            Err(e) => {
                tracing::error!(error = %e, "live feeder cannot read the event cursor; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    state.live.cursor.store(cursor, Ordering::Release);
    let mut tick = tokio::time::interval(state.config.feed_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_stats = tokio::time::Instant::now() - STATS_IDLE_EVERY;
    // The cursor the last stats frame was computed at.
    let mut stats_cursor = None;
    loop {
        tick.tick().await;
        match state
            .repo
            .events_after(cursor, &EventQuery::default(), READ_LIMIT)
            .await
        {
            Ok(rows) if !rows.is_empty() => {
                cursor = rows.last().map_or(cursor, |r| r.id);
                state
                    .metrics
                    .events_broadcast
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                state.live.cursor.store(cursor, Ordering::Release);
                // No receivers is fine: nobody is watching.
                for batch in batches(rows.into_iter().map(LiveEvent::of)) {
                    let _ = state.live.tx.send(Arc::new(batch));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "live feeder read failed; retrying"),
        }
        let due = if stats_cursor == Some(cursor) {
            STATS_IDLE_EVERY
        } else {
            STATS_EVERY
        };
        if last_stats.elapsed() >= due {
            last_stats = tokio::time::Instant::now();
            stats_cursor = Some(cursor);
            // The counts `/stats` shares (scanned once per new event, not once per frame) and
            // the bounty total, which the profiler changes without new events.
            let counts = tokio::try_join!(
                crate::routes::event_stats(&state),
                crate::routes::bounty_total(&state),
            );
            match counts {
                Ok((mut s, bounties)) => {
                    s["bounties"] = serde_json::json!(bounties);
                    let v = serde_json::json!({"type": "stats", "data": s});
                    state.live.stats.send_replace(Some(Arc::new(v)));
                }
                Err(e) => tracing::warn!(error = %e, "live feeder stats failed"),
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Single-use ticket from `POST /api/v1/auth/ticket`.
    ticket: String,
    /// Resume point when the browser cannot send `Last-Event-ID` (first connection).
    #[serde(rename = "lastEventId")]
    last_event_id: Option<i64>,
    #[serde(default)]
    search: String,
}

/// Whether an event matches the search tokens, in memory, with the repository's semantics
/// (column equality, field equality, case-insensitive word anywhere).
pub fn matches(tokens: &[Token], e: &Event) -> bool {
    tokens.iter().all(|t| match t {
        Token::Column(col, v) => match *col {
            "decky" => e.decky == *v,
            "service" => e.service == *v,
            "kind" => e.kind == *v,
            "src_ip" => e.src_ip.is_some_and(|ip| ip.to_string() == *v),
            _ => false,
        },
        Token::Field(k, v) => e.field(k) == Some(v.as_str()),
        Token::Word(w) => {
            let w = w.to_lowercase();
            let mut scratch = String::new();
            let mut has = |s: &str| contains_lowercase(s, &w, &mut scratch);
            has(&e.decky)
                || has(&e.service)
                || has(&e.kind)
                || e.src_ip.is_some_and(|ip| has(&ip.to_string()))
                || e.fields().iter().any(|(k, v)| has(k) || has(v))
        }
    })
}

/// Whether `hay` holds `needle` (lowercase) ignoring case. An ASCII needle is looked for in
/// an ASCII-lowercased copy made in `scratch`, so filtering every live event for every client
/// allocates no string per field (fields hold up to 4 KiB each); others lowercase `hay` fully.
fn contains_lowercase(hay: &str, needle: &str, scratch: &mut String) -> bool {
    if !needle.is_ascii() {
        return hay.to_lowercase().contains(needle);
    }
    scratch.clear();
    scratch.push_str(hay);
    scratch.make_ascii_lowercase();
    scratch.contains(needle)
}

enum Phase {
    Backfill(Vec<SseEvent>),
    Live,
    Done,
}

struct Client {
    state: AppState,
    rx: broadcast::Receiver<Batch>,
    stats: watch::Receiver<Option<Arc<serde_json::Value>>>,
    tokens: Vec<Token>,
    last_sent: i64,
    phase: Phase,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.state
            .metrics
            .stream_clients
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A `logs` frame of events given by id and JSON, oldest first.
fn logs_frame<'a>(rows: impl IntoIterator<Item = (i64, &'a str)>) -> Option<SseEvent> {
    let mut data = String::from("[");
    let mut last = None;
    for (id, json) in rows {
        if last.is_some() {
            data.push(',');
        }
        data.push_str(json);
        last = Some(id);
    }
    data.push(']');
    Some(
        SseEvent::default()
            .event("logs")
            .id(last?.to_string())
            .data(data),
    )
}

pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let uuid = state.tickets.redeem(&p.ticket).ok_or_else(|| {
        ApiError::Unauthorized("the stream ticket is unknown, used or expired".into())
    })?;
    let user = state
        .repo
        .user_by_uuid(&uuid)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the ticket's user no longer exists".into()))?;
    if user.must_change_password {
        return Err(ApiError::MustChangePassword);
    }
    crate::routes::check_search(&p.search)?;
    let tokens = parse_search(&p.search)?;
    let header_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::bad("Last-Event-ID must be an event id"))
        })
        .transpose()?;
    // Subscribe before reading the backfill so nothing flushed in between is missed; the
    // live phase skips ids already sent.
    let rx = state.live.tx.subscribe();
    let cursor = state.live.cursor();
    let resume = header_id.or(p.last_event_id).filter(|id| *id > 0);
    let mut frames = Vec::new();
    let mut last_sent = cursor.max(0);
    if let Some(from) = resume.filter(|from| *from < cursor) {
        let query = EventQuery {
            search: p.search.clone(),
            ..EventQuery::default()
        };
        let rows = state.repo.events_after(from, &query, READ_LIMIT).await?;
        if rows.len() as i64 >= READ_LIMIT {
            // Too far behind to replay through the stream: tell the page to reload.
            frames.push(
                SseEvent::default()
                    .event("lagged")
                    .data("{\"reload\":true}"),
            );
        } else {
            let backfill: Vec<LiveEvent> = rows
                .into_iter()
                .filter(|r| r.id <= cursor)
                .map(LiveEvent::of)
                .collect();
            frames.extend(logs_frame(
                backfill.iter().map(|e| (e.row.id, e.json.as_str())),
            ));
            last_sent = cursor;
        }
    }
    if let Some(v) = state.live.stats.borrow().clone() {
        frames.push(
            SseEvent::default()
                .event("stats")
                .data(serde_json::to_string(&*v).unwrap_or_default()),
        );
    }
    state.metrics.stream_clients.fetch_add(1, Ordering::Relaxed);
    let mut stats = state.live.stats.subscribe();
    stats.mark_unchanged();
    let client = Client {
        state: state.clone(),
        rx,
        stats,
        tokens,
        last_sent,
        phase: Phase::Backfill(frames),
    };
    let events = stream::unfold(client, |mut c| async move {
        loop {
            match std::mem::replace(&mut c.phase, Phase::Live) {
                Phase::Done => return None,
                Phase::Backfill(mut frames) => {
                    if frames.is_empty() {
                        continue;
                    }
                    let first = frames.remove(0);
                    c.phase = Phase::Backfill(frames);
                    return Some((Ok(first), c));
                }
                Phase::Live => {}
            }
            tokio::select! {
                got = c.rx.recv() => match got {
                    Ok(batch) => {
                        let last_sent = c.last_sent;
                        let rows = batch
                            .iter()
                            .filter(|e| e.row.id > last_sent && matches(&c.tokens, &e.row.event))
                            .map(|e| (e.row.id, e.json.as_str()));
                        let frame = logs_frame(rows);
                        if let Some(last) = batch.last() {
                            c.last_sent = c.last_sent.max(last.row.id);
                        }
                        if let Some(frame) = frame {
                            return Some((Ok(frame), c));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        c.state.metrics.stream_lagged.fetch_add(1, Ordering::Relaxed);
                        c.phase = Phase::Done;
                        let frame = SseEvent::default().event("lagged").data("{\"reload\":true}");
                        return Some((Ok(frame), c));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                changed = c.stats.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let v = c.stats.borrow_and_update().clone();
                    if let Some(v) = v {
                        let frame = SseEvent::default()
                            .event("stats")
                            .data(serde_json::to_string(&*v).unwrap_or_default());
                        return Some((Ok(frame), c));
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod word_tests {
    use super::contains_lowercase;

    #[test]
    fn words_match_ignoring_case_in_ascii_and_beyond() {
        let mut scratch = String::new();
        assert!(contains_lowercase(
            "User-Agent: CURL/8",
            "curl/8",
            &mut scratch
        ));
        assert!(contains_lowercase("ÄRGER im Büro", "ärger", &mut scratch));
        assert!(contains_lowercase("grüße AUS köln", "aus k", &mut scratch));
        assert!(!contains_lowercase("wget", "curl", &mut scratch));
        assert!(contains_lowercase("anything", "", &mut scratch));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use decnet_store::Severity;

    use super::*;

    /// An event of about `kib` KiB of fields (at most 64 of 4 KiB).
    fn live(id: i64, kib: usize) -> LiveEvent {
        let mut e = Event::new(1, "d", "ssh", "command", Severity::Info);
        for i in 0..kib.div_ceil(4) {
            let len = (kib * 1024 - i * 4096).min(4000);
            e.push_field(&format!("f{i}"), &"x".repeat(len)).unwrap();
        }
        LiveEvent::of(StoredEvent { id, event: e })
    }

    /// A read is sent as batches of at most `BATCH_BYTES`, in order, every event once, and an
    /// event larger than a batch alone in its own.
    #[test]
    fn reads_are_cut_into_bounded_batches() {
        let events: Vec<LiveEvent> = (0..40).map(|i| live(i, 200)).collect();
        let one = events[0].bytes();
        let cut = batches(events.into_iter());
        assert!(cut.len() > 1);
        assert!(cut.iter().all(|b| !b.is_empty()));
        assert!(
            cut.iter()
                .all(|b| b.iter().map(LiveEvent::bytes).sum::<usize>() <= BATCH_BYTES)
        );
        let ids: Vec<i64> = cut.iter().flatten().map(|e| e.row.id).collect();
        assert_eq!(ids, (0..40).collect::<Vec<_>>());
        assert_eq!(cut[0].len(), BATCH_BYTES / one);
        let mixed = batches([live(1, 1), live(2, 250), live(3, 1)].into_iter());
        assert_eq!(
            mixed.len(),
            1,
            "{:?}",
            mixed.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let small = batches((0..1000).map(|i| live(i, 0)));
        assert_eq!(small.len(), 1, "the usual read stays one batch");
    }
}
