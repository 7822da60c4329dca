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

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::header,
    response::{IntoResponse, Response},
};
use serde_json::Value;

use crate::ApiError;

/// Most distinct keys kept; when full, expired answers are dropped first and, if all are
/// fresh, a new key is answered without caching.
const MAX_KEYS: usize = 256;
/// Answers larger than this are not kept (a full 1000-row page of long events), so the
/// worst case stays near `MAX_KEYS` × this.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug)]
struct Answer {
    body: Bytes,
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
    fn current(&self, slot: &Slot) -> Option<(Bytes, bool)> {
        slot.answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|a| (a.body.clone(), a.at.elapsed() < self.fresh))
    }

    /// The JSON answer of `key`, computed by `compute` when there is no fresh one.
    pub async fn get<F, Fut>(&self, key: String, compute: F) -> Result<Bytes, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, ApiError>>,
    {
        let Some(slot) = self.slot(key) else {
            return serialize(&compute().await?);
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
        if body.len() <= MAX_BODY {
            *slot.answer.lock().unwrap_or_else(PoisonError::into_inner) = Some(Answer {
                body: body.clone(),
                at,
            });
        }
        Ok(body)
    }
}

fn serialize(v: &Value) -> Result<Bytes, ApiError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("serializing the answer: {e}")))
}

/// A 200 JSON response of already serialized bytes.
pub fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;

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
