//! The SQLite segment insert on the connection's raw handle.
//!
//! Through sqlx every row cost a dozen allocations (owned column values, then sqlx's argument
//! list, then SQLite's own copy of each text and blob) and a statement execution of its own:
//! each execution opens a cursor on the table and on each of its three indexes and seeks every
//! index from its root. Here a whole segment is one `INSERT … SELECT` from the
//! `decnet_segment_rows` virtual table ([`super::sqlite_rows`]), which reads the rows from Rust
//! one at a time: the cursors stay open for the whole segment, so appends to the time and
//! decky indexes land next to the previous entry instead of being searched for, and no owned
//! event is built. The rows are written inside the transaction sqlx began, so sqlx still owns
//! commit and rollback and the marker row keeps its exactly-once guarantee.

use std::{
    ffi::{CStr, c_int},
    io::Write as _,
    ops::Range,
    ptr::NonNull,
};

use libsqlite3_sys as ffi;

use super::{
    RepoError,
    events::{EVENT_COLUMNS, write_fields_json},
    sqlite_rows,
};
use crate::codec::EventView;

/// VARCHAR(255) columns count characters; a value of at most this many bytes fits unclipped.
const KEY_CHARS: usize = 255;

/// A prepared statement, finalized on drop.
struct Statement {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
}

impl Statement {
    /// # Safety
    /// `db` must be an open connection no other thread uses while the statement lives.
    unsafe fn prepare(db: NonNull<ffi::sqlite3>, text: &str) -> Result<Self, RepoError> {
        // SAFETY: the caller vouches for `db`.
        let stmt = unsafe { prepare(db, text, "preparing the event insert") }?;
        Ok(Self { db, stmt })
    }

    fn check(&self, rc: c_int, what: &'static str) -> Result<(), RepoError> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            // SAFETY: the connection is open while the statement lives.
            Err(unsafe { error(self.db, rc, what) })
        }
    }

    fn int(&self, i: c_int, v: i64) -> Result<(), RepoError> {
        // SAFETY: a live statement; SQLite checks the index.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt.as_ptr(), i, v) };
        self.check(rc, "binding the event insert")
    }

    /// Run the statement once with `feed` bound as parameter `i`, then unbind everything;
    /// returns rows changed.
    fn execute_with(&self, i: c_int, feed: &mut sqlite_rows::Feed<'_>) -> Result<u64, RepoError> {
        // SAFETY: a live statement; the pointer is only read by the virtual table during the
        // step below (typed, so no other function can take it), and unbound before `feed`'s
        // borrow ends.
        let rc = unsafe {
            ffi::sqlite3_bind_pointer(
                self.stmt.as_ptr(),
                i,
                std::ptr::from_mut(feed).cast(),
                sqlite_rows::FEED_TYPE.as_ptr(),
                None,
            )
        };
        self.check(rc, "binding the event insert")?;
        // SAFETY: a live statement on a connection only this thread uses.
        let rc = unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) };
        // SAFETY: as above.
        let reset = unsafe { ffi::sqlite3_reset(self.stmt.as_ptr()) };
        // SAFETY: as above; drops the statement's copy of the feed pointer.
        unsafe { ffi::sqlite3_clear_bindings(self.stmt.as_ptr()) };
        // The row source's own error says more than SQLite's "callback failed".
        if let Some(e) = feed.error.take() {
            return Err(e);
        }
        if rc != ffi::SQLITE_DONE {
            // SAFETY: as above.
            return Err(unsafe { error(self.db, rc, "inserting a segment's events") });
        }
        self.check(reset, "inserting a segment's events")?;
        // SAFETY: as above.
        let changed = unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) };
        Ok(u64::try_from(changed).unwrap_or(0))
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized exactly once.
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

/// Prepare `text` on `db`; `what` names the step in an error. The caller finalizes the
/// statement.
///
/// # Safety
/// `db` must be an open connection no other thread uses during the call.
pub(super) unsafe fn prepare(
    db: NonNull<ffi::sqlite3>,
    text: &str,
    what: &'static str,
) -> Result<NonNull<ffi::sqlite3_stmt>, RepoError> {
    let len = c_int::try_from(text.len()).map_err(|_| RepoError::Sqlite {
        what,
        code: ffi::SQLITE_TOOBIG,
        message: "statement too long".to_owned(),
    })?;
    let mut stmt = std::ptr::null_mut();
    // SAFETY: `text` outlives the call and `len` is its exact length; the caller vouches for
    // `db`.
    let rc = unsafe {
        ffi::sqlite3_prepare_v2(
            db.as_ptr(),
            text.as_ptr().cast(),
            len,
            &raw mut stmt,
            std::ptr::null_mut(),
        )
    };
    match NonNull::new(stmt) {
        Some(stmt) if rc == ffi::SQLITE_OK => Ok(stmt),
        // SAFETY: as above.
        _ => Err(unsafe { error(db, rc, what) }),
    }
}

/// # Safety
/// `db` must be an open connection.
pub(super) unsafe fn error(
    db: NonNull<ffi::sqlite3>,
    code: c_int,
    what: &'static str,
) -> RepoError {
    // SAFETY: sqlite3_errmsg returns a NUL-terminated string owned by the connection, valid
    // until the next call on it; it is copied at once.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) }
        .to_string_lossy()
        .into_owned();
    RepoError::Sqlite {
        what,
        code,
        message,
    }
}

/// One row's column values as the virtual table hands them to SQLite: integers, and every
/// text and blob in one reused buffer (cleaned or clipped keys, addresses, the fields JSON, the
/// raw bytes), so a row costs no allocation once the buffer has grown.
#[derive(Debug, Default)]
pub(super) struct Row {
    pub(super) seq: i64,
    pub(super) ts_ns: i64,
    pub(super) severity: i64,
    pub(super) src_port: Option<i64>,
    pub(super) dst_port: Option<i64>,
    pub(super) truncated: i64,
    buf: Vec<u8>,
    decky: Range<usize>,
    service: Range<usize>,
    kind: Range<usize>,
    src_ip: Option<Range<usize>>,
    dst_ip: Option<Range<usize>>,
    fields: Range<usize>,
    raw: Range<usize>,
}

impl Row {
    /// Make this row `e`, sequence number `seq`.
    pub(super) fn fill(&mut self, seq: u64, e: &EventView<'_>) {
        self.seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.ts_ns = e.ts_ns;
        self.severity = i64::from(e.severity.code());
        self.src_port = e.src_port.map(i64::from);
        self.dst_port = e.dst_port.map(i64::from);
        self.truncated = i64::from(e.truncated);
        let b = &mut self.buf;
        b.clear();
        self.decky = key(e.decky, b);
        self.service = key(e.service, b);
        self.kind = key(e.kind, b);
        self.src_ip = e.src_ip.map(|ip| put(b, |b| drop(write!(b, "{ip}"))));
        self.dst_ip = e.dst_ip.map(|ip| put(b, |b| drop(write!(b, "{ip}"))));
        self.fields = put(b, |b| write_fields_json(e.fields(), b));
        self.raw = put(b, |b| b.extend_from_slice(e.raw));
    }

    fn get(&self, r: &Range<usize>) -> &[u8] {
        self.buf.get(r.clone()).unwrap_or_default()
    }

    /// Texts are UTF-8: written from `str`s only.
    pub(super) fn decky(&self) -> &[u8] {
        self.get(&self.decky)
    }
    pub(super) fn service(&self) -> &[u8] {
        self.get(&self.service)
    }
    pub(super) fn kind(&self) -> &[u8] {
        self.get(&self.kind)
    }
    pub(super) fn src_ip(&self) -> Option<&[u8]> {
        self.src_ip.as_ref().map(|r| self.get(r))
    }
    pub(super) fn dst_ip(&self) -> Option<&[u8]> {
        self.dst_ip.as_ref().map(|r| self.get(r))
    }
    pub(super) fn fields(&self) -> &[u8] {
        self.get(&self.fields)
    }
    pub(super) fn raw(&self) -> &[u8] {
        self.get(&self.raw)
    }
}

fn put(buf: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> Range<usize> {
    let start = buf.len();
    write(buf);
    start..buf.len()
}

/// A VARCHAR(255) value as stored: NULs replaced, clipped to 255 characters.
fn key(s: &str, buf: &mut Vec<u8>) -> Range<usize> {
    put(buf, |b| {
        if s.len() <= KEY_CHARS && !s.contains('\0') {
            b.extend_from_slice(s.as_bytes());
        } else {
            b.extend_from_slice(super::sql::clip_chars(s, KEY_CHARS).as_bytes());
        }
    })
}

/// Where a segment insert's rows come from.
pub(super) trait RowSource {
    /// Fill `row` with the next row; `false` when there is none left.
    fn next_row(&mut self, row: &mut Row) -> Result<bool, RepoError>;
}

/// Owned events, as [`super::Repository::insert_segment`] takes them.
impl RowSource for std::slice::Iter<'_, (u64, crate::Event)> {
    fn next_row(&mut self, row: &mut Row) -> Result<bool, RepoError> {
        Ok(self.next().is_some_and(|(seq, e)| {
            row.fill(*seq, &EventView::of(e));
            true
        }))
    }
}

/// The segment insert: parameter 1 the segment id, 2 the [`sqlite_rows::Feed`].
pub(super) fn insert_text() -> String {
    format!(
        "INSERT INTO events ({EVENT_COLUMNS}) SELECT ?1, {} FROM {}(?2)",
        sqlite_rows::COLUMNS,
        sqlite_rows::MODULE_NAME
    )
}

/// Insert every row of `source` as rows of `segment` on `db`, inside the caller's open
/// transaction. Returns rows inserted.
///
/// # Safety
/// `db` must be an open connection in a transaction, used by no other thread until this
/// returns (the caller holds sqlx's handle lock).
pub(super) unsafe fn insert_rows(
    db: NonNull<ffi::sqlite3>,
    segment: i64,
    source: &mut dyn RowSource,
) -> Result<u64, RepoError> {
    let text = insert_text();
    // SAFETY: the caller vouches for `db`. The module is registered once per connection, the
    // first time the statement does not prepare.
    let stmt = match unsafe { Statement::prepare(db, &text) } {
        Ok(stmt) => stmt,
        Err(_) => unsafe {
            sqlite_rows::register(db)?;
            Statement::prepare(db, &text)?
        },
    };
    stmt.int(1, segment)?;
    let mut feed = sqlite_rows::Feed::new(source);
    stmt.execute_with(2, &mut feed)
}
