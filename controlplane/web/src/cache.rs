//! Results of whole-table event queries (stats, totals, histograms), shared between requests
//! until a new event arrives. Over a million events each of them scans the table (hundreds of
//! milliseconds); a dashboard full of viewers, or one refresh storm, asked for the same answer
//! over and over. Keyed by the query and the newest event id, so an answer is never older than
//! the last event flushed (events only append; retention deletes the oldest, which shows at the
//! next flush). One request computes a missing answer while the others asking for it wait for
//! that result instead of running the same scan beside it.

use std::{collections::HashMap, future::Future, sync::Arc};

use decnet_store::repo::RepoError;
use serde_json::Value;
use tokio::sync::Mutex;

/// Most distinct queries kept; beyond it the idle ones are dropped.
const MAX_KEYS: usize = 512;

#[derive(Debug, Default)]
struct Slot {
    /// (newest event id the value was computed at, value).
    value: Mutex<Option<(i64, Value)>>,
}

#[derive(Debug, Default)]
pub struct QueryCache {
    slots: std::sync::Mutex<HashMap<String, Arc<Slot>>>,
}

impl QueryCache {
    /// Forget everything (the events table was emptied and its ids may start again).
    pub fn clear(&self) {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// The value of `key` as of event id `generation`, computing it with `compute` when the
    /// cached one predates that event.
    pub async fn get<F, Fut>(
        &self,
        key: String,
        generation: i64,
        compute: F,
    ) -> Result<Value, RepoError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, RepoError>>,
    {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if slots.len() >= MAX_KEYS && !slots.contains_key(&key) {
                // Only this map holds an idle slot.
                slots.retain(|_, s| Arc::strong_count(s) > 1);
            }
            Arc::clone(slots.entry(key).or_default())
        };
        let mut value = slot.value.lock().await;
        // `>=`: a result computed while this request waited is newer than what it asked for.
        if let Some((at, v)) = value.as_ref()
            && *at >= generation
        {
            return Ok(v.clone());
        }
        let v = compute().await?;
        *value = Some((generation, v.clone()));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn recomputes_only_when_a_newer_event_exists() {
        let cache = QueryCache::default();
        let runs = AtomicUsize::new(0);
        let compute = |n: i64| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { Ok(json!(n)) }
        };
        assert_eq!(cache.get("a".into(), 5, || compute(1)).await.unwrap(), 1);
        assert_eq!(cache.get("a".into(), 5, || compute(2)).await.unwrap(), 1);
        assert_eq!(cache.get("a".into(), 6, || compute(3)).await.unwrap(), 3);
        assert_eq!(cache.get("b".into(), 6, || compute(4)).await.unwrap(), 4);
        // A result computed at a later event serves a request that looked earlier.
        assert_eq!(cache.get("a".into(), 5, || compute(5)).await.unwrap(), 3);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // An emptied table (reinit) restarts the ids: the caller clears.
        cache.clear();
        assert_eq!(cache.get("a".into(), 0, || compute(6)).await.unwrap(), 6);
    }

    #[tokio::test]
    async fn a_failure_is_not_cached() {
        let cache = QueryCache::default();
        let failed = cache
            .get("a".into(), 1, || async {
                Err(RepoError::Invalid("boom".into()))
            })
            .await;
        assert!(failed.is_err());
        let v = cache
            .get("a".into(), 1, || async { Ok(json!(7)) })
            .await
            .unwrap();
        assert_eq!(v, 7);
    }
}
