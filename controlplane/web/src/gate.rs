//! Bounds on expensive work any client can start: at most a few at a time, a few more
//! waiting, the rest answered 503 at once instead of piling up.
//!
//! - Password hashing (argon2: ~19 MiB and tens of milliseconds each): a burst of a thousand
//!   logins once ran a thousand hashes at once and took gigabytes.
//! - Event queries (search, counts, histograms): each may scan the events table, and the
//!   SQLite pool has four connections that logins and token checks need too.
//! - Packet exports: each reads retained segments on a blocking thread for as long as its
//!   client reads.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

#[derive(Debug)]
pub struct Gate {
    permits: Semaphore,
    waiting: AtomicUsize,
    queue: usize,
}

impl Gate {
    pub const fn new(permits: usize, queue: usize) -> Self {
        Self {
            permits: Semaphore::const_new(permits),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// A place, once one is free; 503 `busy` (retry in a second) at once when the queue is
    /// full too.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        let busy = ApiError::Busy { retry_after: 1 };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy);
        }
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| busy)
    }
}

/// Every argon2 computation of the process: two at a time (one per core), 32 waiting.
pub static PASSWORDS: Gate = Gate::new(2, 32);
/// Event queries that may scan the table (logs pages with their count, histograms).
pub static EVENT_QUERIES: Gate = Gate::new(2, 16);
/// Packet exports.
pub static EXPORTS: Gate = Gate::new(2, 0);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_gate_admits_a_few_and_queues_a_few_more() {
        let gate: &'static Gate = Box::leak(Box::new(Gate::new(2, 2)));
        let first = gate.enter().await.ok();
        let second = gate.enter().await.ok();
        assert!(first.is_some() && second.is_some());
        // Two more may wait for a place; a fifth is turned away at once.
        let third = tokio::spawn(async move { gate.enter().await.map(drop) });
        let fourth = tokio::spawn(async move { gate.enter().await.map(drop) });
        while gate.waiting.load(Ordering::Relaxed) < 2 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(gate.enter().await, Err(ApiError::Busy { .. })));
        drop(first);
        drop(second);
        assert!(third.await.unwrap().is_ok() && fourth.await.unwrap().is_ok());
        assert!(gate.enter().await.is_ok());
    }
}
