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

use std::time::Duration;

use sqlx::AnyPool;

/// First pause before retrying a checkpoint that readers kept from finishing; it doubles.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Past this pause the checkpoint waits for the readers instead (RESTART), so a WAL that
/// readers always overlap cannot grow without end.
const LAST_RETRY: Duration = Duration::from_secs(4);

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
                    checkpoint(&pool).await;
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

/// Copy the WAL into the database file until every frame is copied. A PASSIVE checkpoint
/// stops at frames that a reader's snapshot still needs, and SQLite writes the WAL from its
/// start again only once all of it is copied: left there, the WAL would keep growing by a
/// segment per flush whenever readers overlap the checkpoint. So an unfinished one is retried
/// with a growing pause, and finally run as RESTART, which waits (the pool's busy timeout)
/// for those readers to finish.
async fn checkpoint(pool: &AnyPool) {
    let mut pause = FIRST_RETRY;
    loop {
        let (mode, sql) = if pause > LAST_RETRY {
            ("RESTART", "PRAGMA wal_checkpoint(RESTART)")
        } else {
            ("PASSIVE", "PRAGMA wal_checkpoint(PASSIVE)")
        };
        // (busy, frames in the WAL, frames copied); -1 frames when the file is not in WAL mode.
        match sqlx::query_as::<_, (i64, i64, i64)>(sql)
            .fetch_one(pool)
            .await
        {
            Ok((_, frames, copied)) if frames < 0 || copied >= frames => return,
            Ok((_, frames, copied)) => {
                tracing::debug!(
                    mode,
                    frames,
                    copied,
                    "WAL checkpoint unfinished; readers hold it"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, mode, "WAL checkpoint failed; retried");
            }
        }
        if mode == "RESTART" {
            // Readers outlasted the busy timeout: the next commit asks again.
            return;
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sqlx::any::AnyPoolOptions;

    use super::*;

    #[tokio::test]
    async fn a_checkpoint_that_a_reader_holds_up_finishes_once_the_reader_is_gone() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let pool = AnyPoolOptions::new()
            .max_connections(3)
            .connect(&url)
            .await
            .unwrap();
        for sql in [
            "PRAGMA journal_mode=WAL",
            "CREATE TABLE t (v BLOB)",
            "INSERT INTO t VALUES (zeroblob(100000))",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let frames = |pool: AnyPool| async move {
            sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        // A reader's snapshot, then a commit after it: those frames cannot be copied yet.
        let mut reader = pool.begin().await.unwrap();
        sqlx::query("SELECT count(*) FROM t")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
            .execute(&pool)
            .await
            .unwrap();
        let (_, total, copied) = frames(pool.clone()).await;
        assert!(
            copied < total,
            "the reader did not hold the checkpoint up: {copied}/{total}"
        );

        let task = tokio::spawn({
            let pool = pool.clone();
            async move { checkpoint(&pool).await }
        });
        tokio::time::sleep(FIRST_RETRY * 2).await;
        assert!(
            !task.is_finished(),
            "gave up while the reader still held the WAL"
        );
        reader.commit().await.unwrap();
        // It returns only once a checkpoint reported every frame copied.
        tokio::time::timeout(LAST_RETRY * 4, task)
            .await
            .unwrap()
            .unwrap();
    }
}
