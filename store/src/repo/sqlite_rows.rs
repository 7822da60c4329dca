//! `decnet_segment_rows`: an eponymous SQLite virtual table whose rows come from a Rust
//! [`RowSource`], so one `INSERT … SELECT` statement inserts a whole segment.
//!
//! The source is handed to the statement with `sqlite3_bind_pointer` under a private pointer
//! type, which SQL text cannot forge: `SELECT … FROM decnet_segment_rows(?)` with anything else
//! bound (or from any other connection) sees no rows.

use std::{
    ffi::{CStr, c_char, c_int, c_void},
    ptr::NonNull,
};

use libsqlite3_sys as ffi;

use super::{
    RepoError,
    sqlite_flush::{Row, RowSource, error},
};

pub(super) const MODULE_NAME: &str = "decnet_segment_rows";
const MODULE_NAME_C: &CStr = c"decnet_segment_rows";
/// The `sqlite3_bind_pointer` type of a [`Feed`].
pub(super) const FEED_TYPE: &CStr = c"decnet_segment_feed";
/// The columns the insert selects, in `EVENT_COLUMNS` order after the segment id.
pub(super) const COLUMNS: &str = "seq, ts_ns, decky, service, kind, severity, src_ip, src_port, \
                                  dst_ip, dst_port, fields, raw, truncated";
const SCHEMA: &CStr = c"CREATE TABLE x(seq, ts_ns, decky, service, kind, severity, src_ip, \
                        src_port, dst_ip, dst_port, fields, raw, truncated, feed HIDDEN)";
const FEED_COLUMN: c_int = 13;
/// `idxNum` of a plan that has the feed.
const WITH_FEED: c_int = 1;

/// What one insert statement reads: the source, the current row, and the source's error if
/// it failed (SQLite itself only reports that the virtual table failed).
pub(super) struct Feed<'s> {
    source: &'s mut dyn RowSource,
    row: Row,
    pub(super) error: Option<RepoError>,
}

impl<'s> Feed<'s> {
    pub(super) fn new(source: &'s mut dyn RowSource) -> Self {
        Self {
            source,
            row: Row::default(),
            error: None,
        }
    }
}

/// Make the module available on `db` (idempotent: a second registration replaces the first,
/// and the module has no state of its own).
///
/// # Safety
/// `db` must be an open connection no other thread uses during the call.
pub(super) unsafe fn register(db: NonNull<ffi::sqlite3>) -> Result<(), RepoError> {
    // SAFETY: the name and module are statics; no client data, so no destructor.
    let rc = unsafe {
        ffi::sqlite3_create_module_v2(
            db.as_ptr(),
            MODULE_NAME_C.as_ptr(),
            &raw const MODULE,
            std::ptr::null_mut(),
            None,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        // SAFETY: the caller vouches for `db`.
        Err(unsafe { error(db, rc, "registering the segment row source") })
    }
}

static MODULE: ffi::sqlite3_module = ffi::sqlite3_module {
    iVersion: 0,
    // No xCreate: eponymous-only, it exists in every schema and cannot be CREATEd.
    xCreate: None,
    xConnect: Some(connect),
    xBestIndex: Some(best_index),
    xDisconnect: Some(disconnect),
    xDestroy: None,
    xOpen: Some(open),
    xClose: Some(close),
    xFilter: Some(filter),
    xNext: Some(next),
    xEof: Some(eof),
    xColumn: Some(column),
    xRowid: Some(rowid),
    xUpdate: None,
    xBegin: None,
    xSync: None,
    xCommit: None,
    xRollback: None,
    xFindFunction: None,
    xRename: None,
    xSavepoint: None,
    xRelease: None,
    xRollbackTo: None,
    xShadowName: None,
    xIntegrity: None,
};

/// A scan: `base` first so SQLite's `sqlite3_vtab_cursor*` is a pointer to it.
#[repr(C)]
struct Cursor {
    base: ffi::sqlite3_vtab_cursor,
    /// The bound [`Feed`], null when the plan has none.
    feed: *mut c_void,
    eof: bool,
    rowid: i64,
}

unsafe extern "C" fn connect(
    db: *mut ffi::sqlite3,
    _aux: *mut c_void,
    _argc: c_int,
    _argv: *const *const c_char,
    vtab: *mut *mut ffi::sqlite3_vtab,
    _err: *mut *mut c_char,
) -> c_int {
    // SAFETY: SQLite passes its open connection; the schema is a static C string.
    let mut rc = unsafe { ffi::sqlite3_declare_vtab(db, SCHEMA.as_ptr()) };
    if rc == ffi::SQLITE_OK {
        // Only statements the flusher prepares may read it: a view or trigger in a database
        // file someone altered cannot (it would see no rows without the feed pointer anyway).
        // SAFETY: called from xConnect on SQLite's connection, as the option requires.
        rc = unsafe { ffi::sqlite3_vtab_config(db, ffi::SQLITE_VTAB_DIRECTONLY) };
    }
    if rc == ffi::SQLITE_OK {
        let table = Box::new(ffi::sqlite3_vtab {
            pModule: std::ptr::null(),
            nRef: 0,
            zErrMsg: std::ptr::null_mut(),
        });
        // SAFETY: SQLite passes a valid out-pointer; it hands the table back to `disconnect`.
        unsafe { *vtab = Box::into_raw(table) };
    }
    rc
}

unsafe extern "C" fn disconnect(vtab: *mut ffi::sqlite3_vtab) -> c_int {
    // SAFETY: made by `Box::into_raw` in `connect`, disconnected once.
    drop(unsafe { Box::from_raw(vtab) });
    ffi::SQLITE_OK
}

unsafe extern "C" fn best_index(
    _vtab: *mut ffi::sqlite3_vtab,
    info: *mut ffi::sqlite3_index_info,
) -> c_int {
    // SAFETY: SQLite passes a valid index info for the duration of the call.
    let info = unsafe { &mut *info };
    let n = usize::try_from(info.nConstraint).unwrap_or(0);
    if n > 0 {
        // SAFETY: SQLite's arrays of `nConstraint` entries each.
        let (constraints, usage) = unsafe {
            (
                std::slice::from_raw_parts(info.aConstraint, n),
                std::slice::from_raw_parts_mut(info.aConstraintUsage, n),
            )
        };
        for (c, u) in constraints.iter().zip(usage) {
            if c.iColumn == FEED_COLUMN && c_int::from(c.op) == ffi::SQLITE_INDEX_CONSTRAINT_EQ {
                if c.usable == 0 {
                    // Ask for a plan in which the feed is known.
                    return ffi::SQLITE_CONSTRAINT;
                }
                u.argvIndex = 1;
                u.omit = 1;
                info.idxNum = WITH_FEED;
                info.estimatedCost = 1.0;
                return ffi::SQLITE_OK;
            }
        }
    }
    // No feed: an empty scan.
    info.idxNum = 0;
    info.estimatedCost = 1e12;
    ffi::SQLITE_OK
}

unsafe extern "C" fn open(
    _vtab: *mut ffi::sqlite3_vtab,
    cursor: *mut *mut ffi::sqlite3_vtab_cursor,
) -> c_int {
    let c = Box::new(Cursor {
        base: ffi::sqlite3_vtab_cursor {
            pVtab: std::ptr::null_mut(),
        },
        feed: std::ptr::null_mut(),
        eof: true,
        rowid: 0,
    });
    // SAFETY: SQLite passes a valid out-pointer and hands the cursor back to `close`;
    // `base` is the first field of a `repr(C)` struct.
    unsafe { *cursor = Box::into_raw(c).cast() };
    ffi::SQLITE_OK
}

unsafe extern "C" fn close(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: made by `Box::into_raw` in `open`, closed once.
    drop(unsafe { Box::from_raw(cursor.cast::<Cursor>()) });
    ffi::SQLITE_OK
}

unsafe extern "C" fn filter(
    cursor: *mut ffi::sqlite3_vtab_cursor,
    idx_num: c_int,
    _idx_str: *const c_char,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) -> c_int {
    // SAFETY: one of our cursors (see `open`).
    let c = unsafe { &mut *cursor.cast::<Cursor>() };
    c.feed = std::ptr::null_mut();
    c.eof = true;
    c.rowid = 0;
    if idx_num == WITH_FEED && argc >= 1 {
        // SAFETY: `argv` has `argc` values; a value bound under another type (or none)
        // yields null.
        c.feed = unsafe { ffi::sqlite3_value_pointer(*argv, FEED_TYPE.as_ptr()) };
    }
    // SAFETY: as above.
    unsafe { advance(c) }
}

/// Move to the source's next row.
///
/// # Safety
/// `c.feed` is null or the [`Feed`] bound to the running statement, which outlives the step.
unsafe fn advance(c: &mut Cursor) -> c_int {
    if c.feed.is_null() {
        c.eof = true;
        return ffi::SQLITE_OK;
    }
    // SAFETY: the caller vouches for the pointer; nothing else touches the feed during the
    // step.
    let feed = unsafe { &mut *c.feed.cast::<Feed<'_>>() };
    // A panic must not unwind into SQLite (it would abort the process, and the segment would
    // be retried, and abort it again, at every start): it fails this flush like any error.
    let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        feed.source.next_row(&mut feed.row)
    }))
    .unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(RepoError::Invalid(format!(
            "reading the segment's rows panicked ({why}); the segment is kept for a retry"
        )))
    });
    match next {
        Ok(more) => {
            c.eof = !more;
            c.rowid += 1;
            ffi::SQLITE_OK
        }
        Err(e) => {
            feed.error = Some(e);
            c.eof = true;
            ffi::SQLITE_ERROR
        }
    }
}

unsafe extern "C" fn next(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: one of our cursors, its feed set by `filter`.
    unsafe { advance(&mut *cursor.cast::<Cursor>()) }
}

unsafe extern "C" fn eof(cursor: *mut ffi::sqlite3_vtab_cursor) -> c_int {
    // SAFETY: one of our cursors.
    c_int::from(unsafe { (*cursor.cast::<Cursor>()).eof })
}

unsafe extern "C" fn rowid(cursor: *mut ffi::sqlite3_vtab_cursor, out: *mut i64) -> c_int {
    // SAFETY: one of our cursors; SQLite passes a valid out-pointer.
    unsafe { *out = (*cursor.cast::<Cursor>()).rowid };
    ffi::SQLITE_OK
}

unsafe extern "C" fn column(
    cursor: *mut ffi::sqlite3_vtab_cursor,
    ctx: *mut ffi::sqlite3_context,
    i: c_int,
) -> c_int {
    // SAFETY: one of our cursors.
    let c = unsafe { &*cursor.cast::<Cursor>() };
    if c.feed.is_null() || c.eof {
        // SAFETY: SQLite's context for this call.
        unsafe { ffi::sqlite3_result_null(ctx) };
        return ffi::SQLITE_OK;
    }
    // SAFETY: as in `advance`; only read here.
    let row = unsafe { &(*c.feed.cast::<Feed<'_>>()).row };
    // SAFETY: SQLite's context for this call; SQLITE_TRANSIENT makes SQLite copy texts and
    // blobs (into the statement's reused registers) before the row buffer changes.
    unsafe {
        match i {
            0 => ffi::sqlite3_result_int64(ctx, row.seq),
            1 => ffi::sqlite3_result_int64(ctx, row.ts_ns),
            2 => text(ctx, row.decky()),
            3 => text(ctx, row.service()),
            4 => text(ctx, row.kind()),
            5 => ffi::sqlite3_result_int64(ctx, row.severity),
            6 => opt_text(ctx, row.src_ip()),
            7 => opt_int(ctx, row.src_port),
            8 => opt_text(ctx, row.dst_ip()),
            9 => opt_int(ctx, row.dst_port),
            10 => text(ctx, row.fields()),
            11 => {
                // A slice pointer is never null, so an empty raw is x'' rather than NULL.
                let raw = row.raw();
                ffi::sqlite3_result_blob64(
                    ctx,
                    raw.as_ptr().cast(),
                    raw.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                );
            }
            12 => ffi::sqlite3_result_int64(ctx, row.truncated),
            _ => ffi::sqlite3_result_null(ctx),
        }
    }
    ffi::SQLITE_OK
}

/// # Safety
/// `ctx` is SQLite's context of the running `xColumn`; `v` is UTF-8.
unsafe fn text(ctx: *mut ffi::sqlite3_context, v: &[u8]) {
    // SAFETY: as above; SQLite copies `v`. A slice pointer is never null, so "" stays ''.
    unsafe {
        ffi::sqlite3_result_text64(
            ctx,
            v.as_ptr().cast(),
            v.len() as u64,
            ffi::SQLITE_TRANSIENT(),
            ffi::SQLITE_UTF8 as u8,
        );
    }
}

/// # Safety
/// As [`text`].
unsafe fn opt_text(ctx: *mut ffi::sqlite3_context, v: Option<&[u8]>) {
    match v {
        // SAFETY: as above.
        Some(v) => unsafe { text(ctx, v) },
        // SAFETY: as above.
        None => unsafe { ffi::sqlite3_result_null(ctx) },
    }
}

/// # Safety
/// `ctx` is SQLite's context of the running `xColumn`.
unsafe fn opt_int(ctx: *mut ffi::sqlite3_context, v: Option<i64>) {
    // SAFETY: as above.
    unsafe {
        match v {
            Some(v) => ffi::sqlite3_result_int64(ctx, v),
            None => ffi::sqlite3_result_null(ctx),
        }
    }
}
