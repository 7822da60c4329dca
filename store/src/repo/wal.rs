//! WAL checkpoints of the SQLite segment writer, off the flusher's commit path.
//!
//! With SQLite's automatic checkpoint, the commit that pushes the WAL past 1,000 pages copies
//! the whole WAL into the database file and syncs it before `COMMIT` returns — for a segment of
//! 200,000 events, about 100 MB, a fifth of the flush. The writer connection turns that off
//! (`wal_autocheckpoint=0`) and each commit asks for a PASSIVE checkpoint on a pool connection
//! instead, run by a background task while the flusher reads its next segment.
//!
//! Durability does not depend on the checkpoint: the writer commits with `synchronous=FULL`,
//! so its WAL frames are on disk before `COMMIT` returns, and the flusher deletes a segment
//! file only after that. SQLite reuses the WAL only after a checkpoint has copied every frame
//! into the database file and synced it (at NORMAL and FULL alike), so a commit stays in the
//! WAL or the database file across a power loss whenever the checkpoint runs, or if it never
//! does (a crash replays the WAL on the next open).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use sqlx::AnyPool;

/// Coalesces checkpoint requests into at most one running task.
#[derive(Debug, Default)]
pub(super) struct WalCheckpoints {
    /// A commit happened since the running task's last checkpoint began.
    wanted: AtomicBool,
    running: AtomicBool,
}

impl WalCheckpoints {
    /// Ask for a checkpoint of what has been committed so far. Outside a tokio runtime the
    /// frames wait in the WAL for the next request (or a pool connection's own checkpoint).
    pub(super) fn request(self: &Arc<Self>, pool: &AnyPool) {
        self.wanted.store(true, Ordering::SeqCst);
        if self.running.swap(true, Ordering::SeqCst) {
            // The running task checks `wanted` again before it ends.
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.running.store(false, Ordering::SeqCst);
            return;
        };
        let (me, pool) = (Arc::clone(self), pool.clone());
        runtime.spawn(async move {
            loop {
                while me.wanted.swap(false, Ordering::SeqCst) {
                    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                        .execute(&pool)
                        .await
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed; retried after the next commit");
                    }
                }
                me.running.store(false, Ordering::SeqCst);
                // A request that came between the last swap and the store above saw the task
                // running and left: take it over unless another task already has.
                if !me.wanted.load(Ordering::SeqCst) || me.running.swap(true, Ordering::SeqCst) {
                    break;
                }
            }
        });
    }
}
