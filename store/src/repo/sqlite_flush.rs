//! The SQLite segment insert on the connection's raw handle.
//!
//! Through sqlx every row cost a dozen allocations (owned column values, then sqlx's argument
//! list, then SQLite's own copy of each text and blob with `SQLITE_TRANSIENT`) and a multi-row
//! statement re-parsed per chunk. Here one prepared statement is bound straight from the
//! decoded events (`SQLITE_STATIC`: SQLite reads our memory during the step instead of copying
//! it) and stepped once per row. The rows are written inside the transaction sqlx began, so
//! sqlx still owns commit and rollback and the marker row keeps its exactly-once guarantee.

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
};
use crate::Event;

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
        let len = c_int::try_from(text.len()).map_err(|_| RepoError::Sqlite {
            what: "preparing the event insert",
            code: ffi::SQLITE_TOOBIG,
            message: "statement too long".to_owned(),
        })?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `text` outlives the call and `len` is its exact length; the caller vouches
        // for `db`.
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
            Some(stmt) if rc == ffi::SQLITE_OK => Ok(Self { db, stmt }),
            // SAFETY: as above.
            _ => Err(unsafe { error(db, rc, "preparing the event insert") }),
        }
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
        self.check(rc, "binding an event column")
    }

    fn opt_int(&self, i: c_int, v: Option<i64>) -> Result<(), RepoError> {
        match v {
            Some(v) => self.int(i, v),
            // SAFETY: a live statement; SQLite checks the index.
            None => self.check(
                unsafe { ffi::sqlite3_bind_null(self.stmt.as_ptr(), i) },
                "binding an event column",
            ),
        }
    }

    /// # Safety
    /// `v` must be UTF-8 and stay valid and unchanged until the statement is stepped and
    /// reset, or rebound: SQLite keeps the pointer, not a copy.
    unsafe fn text(&self, i: c_int, v: &[u8]) -> Result<(), RepoError> {
        // SAFETY: the caller keeps `v` alive; a slice pointer is never null, so an empty
        // string binds '' rather than NULL.
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                self.stmt.as_ptr(),
                i,
                v.as_ptr().cast(),
                v.len() as u64,
                ffi::SQLITE_STATIC(),
                ffi::SQLITE_UTF8 as u8,
            )
        };
        self.check(rc, "binding an event column")
    }

    /// # Safety
    /// As [`Self::text`].
    unsafe fn blob(&self, i: c_int, v: &[u8]) -> Result<(), RepoError> {
        // SAFETY: as `text`; a slice pointer is never null, so an empty blob binds x''.
        let rc = unsafe {
            ffi::sqlite3_bind_blob64(
                self.stmt.as_ptr(),
                i,
                v.as_ptr().cast(),
                v.len() as u64,
                ffi::SQLITE_STATIC(),
            )
        };
        self.check(rc, "binding an event column")
    }

    /// Run the statement once; returns rows changed.
    fn execute(&self) -> Result<u64, RepoError> {
        // SAFETY: a live statement on a connection only this thread uses.
        let rc = unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) };
        // SAFETY: as above; reset drops the statement's read of the bound memory.
        let reset = unsafe { ffi::sqlite3_reset(self.stmt.as_ptr()) };
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

/// # Safety
/// `db` must be an open connection.
unsafe fn error(db: NonNull<ffi::sqlite3>, code: c_int, what: &'static str) -> RepoError {
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

/// Where one text value of a row is: in the event itself, or in the row's scratch buffer
/// (cleaned or clipped copies, JSON, addresses; only ever UTF-8 written from `str`s).
enum Text<'a> {
    Borrowed(&'a str),
    Scratch(Range<usize>),
}

impl<'a> Text<'a> {
    fn resolve<'s>(&self, scratch: &'s [u8]) -> &'s [u8]
    where
        'a: 's,
    {
        match self {
            Text::Borrowed(s) => s.as_bytes(),
            Text::Scratch(r) => scratch.get(r.clone()).unwrap_or_default(),
        }
    }
}

fn scratch<'a>(scratch: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> Text<'a> {
    let start = scratch.len();
    write(scratch);
    Text::Scratch(start..scratch.len())
}

/// A VARCHAR(255) value as stored: borrowed when it is already short and NUL-free.
fn key<'a>(s: &'a str, buf: &mut Vec<u8>) -> Text<'a> {
    if s.len() <= KEY_CHARS && !s.contains('\0') {
        Text::Borrowed(s)
    } else {
        scratch(buf, |b| {
            b.extend_from_slice(super::sql::clip_chars(s, KEY_CHARS).as_bytes());
        })
    }
}

fn ip<'a>(ip: Option<std::net::IpAddr>, buf: &mut Vec<u8>) -> Option<Text<'a>> {
    ip.map(|ip| {
        scratch(buf, |b| {
            let _ = write!(b, "{ip}");
        })
    })
}

const COLUMNS: c_int = 14;

/// One row per statement: measured faster than 32-row `VALUES` lists, which SQLite runs as
/// a co-routine over the list (the flush example: 57–97k vs 37–64k events/s, alternating runs).
fn insert_text() -> String {
    format!(
        "INSERT INTO events ({EVENT_COLUMNS}) VALUES ({})",
        ["?"; COLUMNS as usize].join(", ")
    )
}

/// One row's text values, each borrowed from the event or placed in the scratch buffer.
struct RowTexts<'a> {
    decky: Text<'a>,
    service: Text<'a>,
    kind: Text<'a>,
    src_ip: Option<Text<'a>>,
    dst_ip: Option<Text<'a>>,
    fields: Text<'a>,
}

impl<'a> RowTexts<'a> {
    fn of(e: &'a Event, buf: &mut Vec<u8>) -> Self {
        Self {
            decky: key(&e.decky, buf),
            service: key(&e.service, buf),
            kind: key(&e.kind, buf),
            src_ip: ip(e.src_ip, buf),
            dst_ip: ip(e.dst_ip, buf),
            fields: scratch(buf, |b| write_fields_json(e, b)),
        }
    }
}

/// Bind one row's 14 parameters.
///
/// # Safety
/// `buf` and `e` must stay unchanged until the statement has been stepped and reset, or
/// rebound (see [`Statement::text`]).
unsafe fn bind_row(
    stmt: &Statement,
    segment: i64,
    seq: u64,
    e: &Event,
    t: &RowTexts<'_>,
    buf: &[u8],
) -> Result<(), RepoError> {
    stmt.int(1, segment)?;
    stmt.int(2, i64::try_from(seq).unwrap_or(i64::MAX))?;
    stmt.int(3, e.ts_ns)?;
    stmt.int(7, i64::from(e.severity.code()))?;
    stmt.opt_int(9, e.src_port.map(i64::from))?;
    stmt.opt_int(11, e.dst_port.map(i64::from))?;
    stmt.int(14, i64::from(e.truncated))?;
    // SAFETY: the caller keeps `buf` and `e` unchanged while the statement may read them.
    unsafe {
        stmt.text(4, t.decky.resolve(buf))?;
        stmt.text(5, t.service.resolve(buf))?;
        stmt.text(6, t.kind.resolve(buf))?;
        match &t.src_ip {
            Some(ip) => stmt.text(8, ip.resolve(buf))?,
            None => stmt.opt_int(8, None)?,
        }
        match &t.dst_ip {
            Some(ip) => stmt.text(10, ip.resolve(buf))?,
            None => stmt.opt_int(10, None)?,
        }
        stmt.text(12, t.fields.resolve(buf))?;
        stmt.blob(13, e.raw())?;
    }
    Ok(())
}

/// Insert `rows` of `segment` on `db`, inside the caller's open transaction. Returns rows
/// inserted.
///
/// # Safety
/// `db` must be an open connection in a transaction, used by no other thread until this
/// returns (the caller holds sqlx's handle lock).
pub(super) unsafe fn insert_rows(
    db: NonNull<ffi::sqlite3>,
    segment: i64,
    rows: &[(u64, Event)],
) -> Result<u64, RepoError> {
    // Declared before the statement so it is dropped after it: bound pointers into it stay
    // valid for as long as the statement exists.
    let mut buf = Vec::with_capacity(1024);
    // SAFETY: the caller vouches for `db`.
    let stmt = unsafe { Statement::prepare(db, &insert_text()) }?;
    let mut inserted = 0;
    for (seq, e) in rows {
        // Every text of the row goes into `buf` before any is bound: binding keeps pointers
        // into it, which a later push could move.
        buf.clear();
        let texts = RowTexts::of(e, &mut buf);
        // SAFETY: `buf` and the event are not touched again until `execute` has stepped and
        // reset the statement; the next row rebinds every parameter.
        unsafe { bind_row(&stmt, segment, *seq, e, &texts, &buf) }?;
        inserted += stmt.execute()?;
    }
    Ok(inserted)
}
