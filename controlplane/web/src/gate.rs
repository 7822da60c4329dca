//! Bounds on expensive work any client can start: at most a few at a time, a few more
//! waiting, the rest answered 503 at once instead of piling up.
//!
//! - Password hashing (argon2: ~19 MiB and tens of milliseconds each): a burst of a thousand
//!   logins once ran a thousand hashes at once and took gigabytes.
//! - Event queries (search, counts, histograms): each may scan the events table, and the
//!   SQLite pool has four connections that logins and token checks need too.
//! - Packet exports: each reads retained segments on a blocking thread for as long as its
//!   client reads.

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

#[derive(Debug)]
pub struct Gate {
    /// Places to work in.
    permits: Semaphore,
    /// Places in the building: working or waiting (`permits + queue`). Held as a permit, so a
    /// request dropped while it waits gives its place back too.
    admitted: Semaphore,
}

/// A place at a [`Gate`], given back when dropped.
#[derive(Debug)]
pub struct Place {
    _work: SemaphorePermit<'static>,
    _admitted: SemaphorePermit<'static>,
}

impl Gate {
    pub const fn new(permits: usize, queue: usize) -> Self {
        Self {
            permits: Semaphore::const_new(permits),
            admitted: Semaphore::const_new(permits + queue),
        }
    }

    /// A place, once one is free; 503 `busy` (retry in a second) at once when the queue is
    /// full too.
    pub async fn enter(&'static self) -> Result<Place, ApiError> {
        let busy = || ApiError::Busy { retry_after: 1 };
        let admitted = self.admitted.try_acquire().map_err(|_| busy())?;
        let work = self.permits.acquire().await.map_err(|_| busy())?;
        Ok(Place {
            _work: work,
            _admitted: admitted,
        })
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
        while gate.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(gate.enter().await, Err(ApiError::Busy { .. })));
        drop(first);
        drop(second);
        assert!(third.await.unwrap().is_ok() && fourth.await.unwrap().is_ok());
        assert!(gate.enter().await.is_ok());
    }

    /// A request dropped while it waits gives its place in the queue back.
    #[tokio::test]
    async fn a_waiter_that_goes_away_leaves_its_place() {
        let gate: &'static Gate = Box::leak(Box::new(Gate::new(1, 1)));
        let working = gate.enter().await.unwrap();
        for _ in 0..3 {
            let waiting = tokio::spawn(async move { gate.enter().await.map(drop) });
            while gate.admitted.available_permits() > 0 {
                tokio::task::yield_now().await;
            }
            waiting.abort();
            let _ = waiting.await;
        }
        drop(working);
        assert!(gate.enter().await.is_ok(), "the queue place leaked");
    }
}
