//! The user rows behind bearer tokens, kept in memory so an authenticated request does not
//! read the database. Every user change goes through this process's API, which calls
//! [`UserCache::forget_all`] after writing: a deleted user, a new role or a reset password
//! applies to the very next request. A row is also re-read after `fresh`, which bounds how
//! long a change made behind this process's back (another process on the same database)
//! can go unseen. Every request of every client carries the same few tokens, so an expired row
//! is re-read by one request while the others keep the previous row meanwhile: all of them
//! reading it at the same instant queued a thousand reads on the pool once per second.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use decnet_store::repo::{RepoError, SqlRepository, User};

#[derive(Debug)]
struct Row {
    user: Arc<User>,
    /// When the read that produced it started.
    at: Instant,
    /// When a re-read of an expired row started (another request is doing it).
    rereading: Option<Instant>,
}

#[derive(Debug, Default)]
struct Rows {
    by_uuid: HashMap<String, Row>,
    /// Bumped by every change, so a read that raced with one is not kept.
    epoch: u64,
}

#[derive(Debug)]
pub struct UserCache {
    fresh: Duration,
    rows: Mutex<Rows>,
}

/// Most rows kept (users are few; a flood of tokens of deleted users must not grow it).
const MAX_ROWS: usize = 1024;

impl UserCache {
    pub fn new(fresh: Duration) -> Self {
        Self {
            fresh,
            rows: Mutex::new(Rows::default()),
        }
    }

    /// Drop every row; call after any write to the users table.
    pub fn forget_all(&self) {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        rows.by_uuid.clear();
        rows.epoch += 1;
    }

    /// The user `uuid`, from memory when read less than `fresh` ago.
    pub async fn get(
        &self,
        repo: &SqlRepository,
        uuid: &str,
    ) -> Result<Option<Arc<User>>, RepoError> {
        let epoch = {
            let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
            let fresh = self.fresh;
            if let Some(row) = rows.by_uuid.get_mut(uuid) {
                if row.at.elapsed() < fresh {
                    return Ok(Some(Arc::clone(&row.user)));
                }
                // A re-read that has not come back within `fresh` (its request was dropped)
                // no longer holds the others on the old row.
                if row.rereading.is_some_and(|t| t.elapsed() < fresh) {
                    return Ok(Some(Arc::clone(&row.user)));
                }
                row.rereading = Some(Instant::now());
            }
            rows.epoch
        };
        let at = Instant::now();
        let read = repo.user_by_uuid(uuid).await;
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        let user = match read {
            Ok(Some(user)) => Arc::new(user),
            Ok(None) => {
                if rows.epoch == epoch {
                    rows.by_uuid.remove(uuid);
                }
                return Ok(None);
            }
            Err(e) => {
                if let Some(row) = rows.by_uuid.get_mut(uuid) {
                    row.rereading = None;
                }
                return Err(e);
            }
        };
        // A change committed while this row was read may not be in it: serve it, keep it not.
        if rows.epoch == epoch {
            if rows.by_uuid.len() >= MAX_ROWS {
                let fresh = self.fresh;
                rows.by_uuid.retain(|_, r| r.at.elapsed() < fresh);
            }
            if rows.by_uuid.len() < MAX_ROWS {
                let row = Row {
                    user: Arc::clone(&user),
                    at,
                    rereading: None,
                };
                rows.by_uuid.insert(uuid.to_owned(), row);
            }
        }
        Ok(Some(user))
    }
}
