//! The user rows behind bearer tokens, kept in memory so an authenticated request does not
//! read the database. Every user change goes through this process's API, which calls
//! [`UserCache::forget_all`] after writing: a deleted user, a new role or a reset password
//! applies to the very next request. A row is also re-read after `fresh`, which bounds how
//! long a change made behind this process's back (another process on the same database)
//! can go unseen.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use decnet_store::repo::{RepoError, SqlRepository, User};

#[derive(Debug, Default)]
struct Rows {
    by_uuid: HashMap<String, (Arc<User>, Instant)>,
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
            let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((user, at)) = rows.by_uuid.get(uuid)
                && at.elapsed() < self.fresh
            {
                return Ok(Some(Arc::clone(user)));
            }
            rows.epoch
        };
        let at = Instant::now();
        let Some(user) = repo.user_by_uuid(uuid).await?.map(Arc::new) else {
            return Ok(None);
        };
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        // A change committed while this row was read may not be in it: serve it, keep it not.
        if rows.epoch == epoch {
            if rows.by_uuid.len() >= MAX_ROWS {
                let fresh = self.fresh;
                rows.by_uuid.retain(|_, (_, t)| t.elapsed() < fresh);
            }
            if rows.by_uuid.len() < MAX_ROWS {
                rows.by_uuid
                    .insert(uuid.to_owned(), (Arc::clone(&user), at));
            }
        }
        Ok(Some(user))
    }
}
