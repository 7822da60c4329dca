//! Whole answers of the dashboard's heavy read routes (`/attackers`, `/logs`, `/stats`,
//! `/logs/histogram`), kept as serialized JSON bytes for a short freshness window.
//!
//! Even with the event aggregates cached (`cache.rs`), each of these requests still went to
//! the database (a page of rows, a count, the newest-event check): with a thousand clients
//! refreshing, the connection pool was the queue and p99 was seconds. Here an answer is
//! computed at most once per key per window and served from memory meanwhile, so the
//! database sees a few queries per second whatever the request rate.
//!
//! Staleness bound: an answer reflects everything committed before it started computing; it
//! is served for at most `fresh`, plus, once expired, while its replacement is computed (one
//! request recomputes, the others keep getting the previous answer instead of queueing behind
//! it). Keys are the validated, normalized parameters; these routes answer the same to every
//! role, so the role is not part of the key.
//!
//! A kept answer of at least `GZIP_MIN` bytes is also gzipped once, when it is stored, and that
//! form goes to every client whose `Accept-Encoding` takes gzip (every browser's does): the
//! dashboard's 28 KB attacker pages cross the network, and the kernel's copies, at a fraction of
//! their size, and no request pays for compressing. Answers not kept are sent plain, so a
//! client cannot make the server compress per request.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use std::io::Write as _;

use axum::{
    body::Bytes,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use flate2::{Compression, write::GzEncoder};
use serde_json::Value;

use crate::{ApiError, extract::AcceptsGzip};

/// Most distinct keys kept; when full, expired answers are dropped first and, if all are
/// fresh, a new key is answered without caching.
const MAX_KEYS: usize = 256;
/// Answers larger than this are not kept (a full 1000-row page of long events), so the
/// worst case stays near `MAX_KEYS` × this.
const MAX_BODY: usize = 1 << 20;
/// Smaller answers go plain: a gzip header and a few saved bytes are not worth the decoding.
const GZIP_MIN: usize = 1024;

/// One JSON answer, with its gzip form when it is kept and large enough.
#[derive(Debug, Clone)]
pub struct Json {
    pub plain: Bytes,
    pub gzip: Option<Bytes>,
}

impl Json {
    fn plain(plain: Bytes) -> Self {
        Self { plain, gzip: None }
    }

    fn compressed(plain: Bytes) -> Self {
        let gzip = (plain.len() >= GZIP_MIN).then(|| gzip(&plain)).flatten();
        Self { plain, gzip }
    }

    /// A 200 response in the form the client takes.
    pub fn respond(self, accepts: AcceptsGzip) -> Response {
        // Either form may be served for the same URL: shared caches must key on the header.
        let vary = (header::VARY, HeaderValue::from_static("accept-encoding"));
        let json = (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self.gzip {
            Some(gzip) if accepts.0 => (
                [
                    json,
                    vary,
                    (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                ],
                gzip,
            )
                .into_response(),
            _ => ([json, vary], self.plain).into_response(),
        }
    }
}

fn gzip(plain: &[u8]) -> Option<Bytes> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(plain.len() / 4), Compression::default());
    // Writing into a Vec cannot fail; if it ever did, the answer is simply served plain.
    encoder.write_all(plain).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

#[derive(Debug)]
struct Answer {
    body: Json,
    /// When its computation started: the data is at least that new.
    at: Instant,
}

#[derive(Debug, Default)]
struct Slot {
    answer: Mutex<Option<Answer>>,
    /// Held by the one request recomputing this key.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
pub struct ResponseCache {
    fresh: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl ResponseCache {
    pub fn new(fresh: Duration) -> Self {
        Self {
            fresh,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Forget every answer (the data was purged).
    pub fn clear(&self) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn slot(&self, key: String) -> Option<Arc<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = slots.get(&key) {
            return Some(Arc::clone(s));
        }
        if slots.len() >= MAX_KEYS {
            let fresh = self.fresh;
            // A slot held elsewhere is being filled or served right now.
            slots.retain(|_, s| {
                Arc::strong_count(s) > 1
                    || s.answer
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .as_ref()
                        .is_some_and(|a| a.at.elapsed() < fresh)
            });
            if slots.len() >= MAX_KEYS {
                return None;
            }
        }
        Some(Arc::clone(slots.entry(key).or_default()))
    }

    /// `(answer, fresh)` of a slot, when it has one.
    fn current(&self, slot: &Slot) -> Option<(Json, bool)> {
        slot.answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|a| (a.body.clone(), a.at.elapsed() < self.fresh))
    }

    /// The JSON answer of `key`, computed by `compute` when there is no fresh one.
    pub async fn get<F, Fut>(&self, key: String, compute: F) -> Result<Json, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, ApiError>>,
    {
        let Some(slot) = self.slot(key) else {
            return serialize(&compute().await?).map(Json::plain);
        };
        let stale = match self.current(&slot) {
            Some((body, true)) => return Ok(body),
            Some((body, false)) => Some(body),
            None => None,
        };
        let _refreshing = match (slot.refresh.try_lock(), stale) {
            (Ok(guard), _) => guard,
            // Someone is recomputing: the previous answer meanwhile, not a queue.
            (Err(_), Some(body)) => return Ok(body),
            (Err(_), None) => slot.refresh.lock().await,
        };
        // Filled while this request waited for the lock.
        if let Some((body, true)) = self.current(&slot) {
            return Ok(body);
        }
        let at = Instant::now();
        let body = serialize(&compute().await?)?;
        if body.len() > MAX_BODY {
            return Ok(Json::plain(body));
        }
        let body = Json::compressed(body);
        *slot.answer.lock().unwrap_or_else(PoisonError::into_inner) = Some(Answer {
            body: body.clone(),
            at,
        });
        Ok(body)
    }
}

fn serialize(v: &Value) -> Result<Bytes, ApiError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("serializing the answer: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;

    impl PartialEq<&str> for Json {
        fn eq(&self, other: &&str) -> bool {
            self.plain == other.as_bytes()
        }
    }

    fn gunzip(gzip: &[u8]) -> Vec<u8> {
        use std::io::Read as _;
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(gzip)
            .read_to_end(&mut plain)
            .unwrap();
        plain
    }

    async fn body_of(response: Response) -> Bytes {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_kept_large_answer_is_gzipped_once_for_clients_that_take_gzip() {
        let cache = ResponseCache::new(Duration::from_secs(60));
        let rows: Vec<Value> = (0..200)
            .map(|i| json!({"ip": format!("10.0.0.{}", i % 250), "score": i}))
            .collect();
        let big = cache
            .get("big".into(), || async { Ok(json!(rows)) })
            .await
            .unwrap();
        let gzip = big
            .gzip
            .clone()
            .expect("a kept answer over GZIP_MIN is gzipped");
        assert!(
            gzip.len() < big.plain.len() / 3,
            "{} vs {}",
            gzip.len(),
            big.plain.len()
        );
        assert_eq!(gunzip(&gzip), big.plain);

        let zipped = big.clone().respond(AcceptsGzip(true));
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(zipped.headers()[header::VARY], "accept-encoding");
        assert_eq!(body_of(zipped).await, gzip);
        let plain = big.clone().respond(AcceptsGzip(false));
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::VARY], "accept-encoding");
        assert_eq!(body_of(plain).await, big.plain);

        // Small answers are not worth it.
        let small = cache
            .get("small".into(), || async { Ok(json!({"total": 1})) })
            .await
            .unwrap();
        assert!(small.gzip.is_none());
        assert!(
            small
                .respond(AcceptsGzip(true))
                .headers()
                .get(header::CONTENT_ENCODING)
                .is_none()
        );

        // An answer that is not kept is never compressed: no per-request compression to ask for.
        for i in 0..MAX_KEYS {
            cache
                .get(format!("k{i}"), || async { Ok(json!(0)) })
                .await
                .unwrap();
        }
        let unkept = cache
            .get("unkept".into(), || async { Ok(json!(rows)) })
            .await
            .unwrap();
        assert_eq!(unkept.plain, big.plain);
        assert!(unkept.gzip.is_none());
    }

    #[tokio::test]
    async fn an_answer_is_reused_until_it_expires() {
        let cache = ResponseCache::new(Duration::from_millis(200));
        let runs = AtomicUsize::new(0);
        let compute = |n: i64| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { Ok(json!(n)) }
        };
        assert_eq!(cache.get("a".into(), || compute(1)).await.unwrap(), "1");
        assert_eq!(cache.get("a".into(), || compute(2)).await.unwrap(), "1");
        assert_eq!(cache.get("b".into(), || compute(3)).await.unwrap(), "3");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get("a".into(), || compute(4)).await.unwrap(), "4");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        cache.clear();
        assert_eq!(cache.get("a".into(), || compute(5)).await.unwrap(), "5");
    }

    #[tokio::test]
    async fn an_expired_answer_is_served_while_one_request_recomputes() {
        let cache = Arc::new(ResponseCache::new(Duration::from_millis(50)));
        cache
            .get("a".into(), || async { Ok(json!(1)) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .get("a".into(), || async move {
                        let _ = wait.await;
                        Ok(json!(2))
                    })
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The recomputation is in flight: the previous answer, at once, without computing.
        let during = cache
            .get("a".into(), || async { Ok(json!(99)) })
            .await
            .unwrap();
        assert_eq!(during, "1");
        release.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), "2");
        assert_eq!(
            cache
                .get("a".into(), || async { Ok(json!(99)) })
                .await
                .unwrap(),
            "2"
        );
    }

    #[tokio::test]
    async fn failures_are_not_kept_and_a_full_cache_still_answers() {
        let cache = ResponseCache::new(Duration::from_secs(60));
        let failed = cache
            .get("a".into(), || async {
                Err(ApiError::Internal("boom".into()))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(
            cache
                .get("a".into(), || async { Ok(json!(7)) })
                .await
                .unwrap(),
            "7"
        );
        for i in 0..MAX_KEYS {
            cache
                .get(format!("k{i}"), || async { Ok(json!(0)) })
                .await
                .unwrap();
        }
        // Every kept answer is fresh: a new key is computed each time, not kept.
        assert_eq!(
            cache
                .get("new".into(), || async { Ok(json!(1)) })
                .await
                .unwrap(),
            "1"
        );
        assert_eq!(
            cache
                .get("new".into(), || async { Ok(json!(2)) })
                .await
                .unwrap(),
            "2"
        );
    }
}
