//! The profiler's batch commit on SQLite's native handle: one prepared single-row statement per
//! table, stepped once per row, inside the transaction sqlx began.
//!
//! Through sqlx `Any` a batch was multi-row statements of 200 rows each: the SQL text rebuilt
//! and reparsed per statement, every value copied into an `AnyValue` and again into SQLite,
//! and — since a multi-row statement can fail half way — every page it touched first copied
//! into a statement journal (allocation and memcpy that were the largest single cost of the
//! commit). A single-row `INSERT` needs no statement journal, and a prepared one is parsed
//! once per batch.

use std::{
    ffi::{c_char, c_int},
    ptr::NonNull,
};

use libsqlite3_sys as ffi;

use super::{
    RepoError,
    intel::{IntelRows, Upsert},
    sql::Arg,
    sqlite_flush::{self, error},
};

/// The connection profiler batches are written through: the `Any` pool's pragmas (NORMAL is
/// durable at checkpoints; what the profiler writes is recomputed from the events, which go
/// through the FULL writer). One connection: SQLite has one writer at a time anyway.
pub(super) async fn pool(url: &str) -> Result<sqlx::SqlitePool, RepoError> {
    super::native_sqlite_writer(url, sqlx::sqlite::SqliteSynchronous::Normal, true).await
}

/// A prepared statement, finalized on drop.
struct Stmt {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    what: &'static str,
}

impl Stmt {
    /// # Safety
    /// `db` must be an open connection no other thread uses while the statement lives.
    unsafe fn prepare(
        db: NonNull<ffi::sqlite3>,
        text: &str,
        what: &'static str,
    ) -> Result<Self, RepoError> {
        // SAFETY: the caller vouches for `db`.
        let stmt = unsafe { sqlite_flush::prepare(db, text, what) }?;
        Ok(Self { db, stmt, what })
    }

    fn fail(&self, rc: c_int) -> RepoError {
        // SAFETY: the connection is open while the statement lives.
        unsafe { error(self.db, rc, self.what) }
    }

    /// Bind `arg` as parameter `i`. Texts and blobs are bound without a copy: they must
    /// outlive the next reset, which [`Self::run`] guarantees by borrowing them across it.
    fn bind(&self, i: c_int, arg: &Arg) -> Result<(), RepoError> {
        let s = self.stmt.as_ptr();
        // SAFETY: a live statement (SQLite checks the index); texts and blobs stay borrowed
        // until the statement is reset and its bindings cleared.
        let rc = unsafe {
            match arg {
                Arg::I64(v) | Arg::OptI64(Some(v)) => ffi::sqlite3_bind_int64(s, i, *v),
                Arg::F64(v) | Arg::OptF64(Some(v)) => ffi::sqlite3_bind_double(s, i, *v),
                Arg::Text(t) | Arg::OptText(Some(t)) => ffi::sqlite3_bind_text64(
                    s,
                    i,
                    t.as_ptr().cast::<c_char>(),
                    t.len() as u64,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                Arg::Bytes(b) => ffi::sqlite3_bind_blob64(
                    s,
                    i,
                    b.as_ptr().cast(),
                    b.len() as u64,
                    ffi::SQLITE_STATIC(),
                ),
                Arg::OptText(None) | Arg::OptI64(None) | Arg::OptF64(None) => {
                    ffi::sqlite3_bind_null(s, i)
                }
            }
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.fail(rc))
        }
    }

    /// Run the statement with `args` (then `more`) as its parameters; returns the first
    /// column of its first row as text, when it returns one.
    fn run(&self, args: &[Arg], more: &[Arg]) -> Result<Option<String>, RepoError> {
        let result = self.step_all(args, more);
        let s = self.stmt.as_ptr();
        // SAFETY: a live statement; after these no binding refers to `args` any more.
        let reset = unsafe { ffi::sqlite3_reset(s) };
        // SAFETY: as above.
        unsafe { ffi::sqlite3_clear_bindings(s) };
        let out = result?;
        if reset != ffi::SQLITE_OK {
            return Err(self.fail(reset));
        }
        Ok(out)
    }

    fn step_all(&self, args: &[Arg], more: &[Arg]) -> Result<Option<String>, RepoError> {
        for (i, arg) in args.iter().chain(more).enumerate() {
            self.bind(c_int::try_from(i + 1).unwrap_or(c_int::MAX), arg)?;
        }
        let s = self.stmt.as_ptr();
        let mut first = None;
        loop {
            // SAFETY: a live statement on a connection only this thread uses.
            match unsafe { ffi::sqlite3_step(s) } {
                ffi::SQLITE_DONE => return Ok(first),
                ffi::SQLITE_ROW if first.is_none() => first = Some(self.text0()),
                ffi::SQLITE_ROW => {}
                rc => return Err(self.fail(rc)),
            }
        }
    }

    /// Column 0 of the current row as text (empty when NULL).
    fn text0(&self) -> String {
        let s = self.stmt.as_ptr();
        // SAFETY: the statement is on a row; the pointer is valid until the next step or
        // reset, and `len` bytes long; it is copied at once.
        unsafe {
            let p = ffi::sqlite3_column_text(s, 0);
            let len = usize::try_from(ffi::sqlite3_column_bytes(s, 0)).unwrap_or(0);
            if p.is_null() {
                String::new()
            } else {
                String::from_utf8_lossy(std::slice::from_raw_parts(p, len)).into_owned()
            }
        }
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized exactly once.
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

/// `INSERT INTO table (cols) VALUES (?, …)` plus `tail`.
fn insert_text(table: &str, cols: &[&str], tail: &str) -> String {
    let params = vec!["?"; cols.len()].join(", ");
    format!(
        "INSERT INTO {table} ({}) VALUES ({params}){tail}",
        cols.join(", ")
    )
}

fn upsert_text(u: &Upsert) -> String {
    insert_text(u.table, u.cols, &u.suffix(super::Backend::Sqlite))
}

/// Run every upsert `u` of `rows`.
///
/// # Safety
/// As [`write`].
unsafe fn upsert_all(
    db: NonNull<ffi::sqlite3>,
    u: &Upsert,
    rows: &[Vec<Arg>],
) -> Result<(), RepoError> {
    if rows.is_empty() {
        return Ok(());
    }
    // SAFETY: the caller vouches for `db`.
    let stmt = unsafe { Stmt::prepare(db, &upsert_text(u), u.what)? };
    for row in rows {
        stmt.run(row, &[])?;
    }
    Ok(())
}

/// Write one profiler batch's rows (in the order the `Any` path writes them) on `db`, inside
/// the caller's open transaction.
///
/// # Safety
/// `db` must be an open connection in a transaction, used by no other thread until this
/// returns (the caller holds sqlx's handle lock).
pub(super) unsafe fn write(db: NonNull<ffi::sqlite3>, rows: &IntelRows) -> Result<(), RepoError> {
    use super::intel::{ATTACKERS, BEHAVIOR, BOUNTY_COLS, CURSOR, SESSIONS, STATE};
    if !rows.bounties.is_empty() {
        // SAFETY: the caller vouches for `db`.
        let stmt = unsafe {
            Stmt::prepare(
                db,
                &insert_text(
                    "bounties",
                    &BOUNTY_COLS,
                    super::Backend::Sqlite.on_conflict_ignore(),
                ),
                "recording bounties",
            )?
        };
        for row in &rows.bounties {
            stmt.run(row, &[])?;
        }
    }
    // SAFETY (all below): the caller vouches for `db`.
    unsafe { upsert_all(db, &ATTACKERS, &rows.attackers)? };
    if !rows.behavior.is_empty() {
        // The behaviour row hangs off the stored uuid, which predates this batch for known IPs.
        let uuid = unsafe {
            Stmt::prepare(
                db,
                "SELECT uuid FROM attackers WHERE ip = ?",
                "reading attacker uuids",
            )?
        };
        let behavior = unsafe { Stmt::prepare(db, &upsert_text(&BEHAVIOR), BEHAVIOR.what)? };
        for (ip, row) in &rows.behavior {
            let Some(id) = uuid.run(std::slice::from_ref(ip), &[])? else {
                return Err(RepoError::Invalid(format!(
                    "attacker {ip:?} vanished inside its own transaction"
                )));
            };
            behavior.run(&[Arg::Text(id)], row)?;
        }
    }
    unsafe { upsert_all(db, &STATE, &rows.state)? };
    unsafe { upsert_all(db, &SESSIONS, &rows.sessions)? };
    if let Some(cursor) = &rows.cursor {
        unsafe { upsert_all(db, &CURSOR, std::slice::from_ref(cursor))? };
    }
    Ok(())
}
