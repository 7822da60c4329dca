//! Segment files: the durable first stop of every event.
//!
//! Each writer thread owns one open segment (a redb file) and appends batches to it, so
//! writers never share a lock. Commits inside a durability window are non-durable; the window
//! ends with a durable, two-phase commit (redb's advice for attacker-controlled data). A segment
//! rotates by size or age: it is sealed (renamed `*.sealed`) and handed to the flusher, which
//! moves it into SQL and deletes it. A segment left open by a crash holds exactly its last
//! durable commit; [`recover`] seals it on the next start.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use crate::{Event, codec};

const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const OPEN_SUFFIX: &str = "open";
const SEALED_SUFFIX: &str = "sealed";

/// A failure of the segment layer, naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("segment {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("segment {path} has no segment id; it was not written by this program")]
    NoId { path: PathBuf },
}

impl SegmentError {
    fn db(path: &Path, e: impl Into<redb::Error>) -> Self {
        Self::Db {
            path: path.to_owned(),
            source: Box::new(e.into()),
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// When a writer commits durably and rotates.
#[derive(Debug, Clone)]
pub struct SegmentPolicy {
    /// Longest time an accepted event may stay non-durable.
    pub durable_window: Duration,
    /// Seal a segment once its file reaches this size.
    pub max_bytes: u64,
    /// Seal a segment with events once it is this old, so events reach SQL promptly.
    pub max_age: Duration,
}

impl Default for SegmentPolicy {
    fn default() -> Self {
        Self {
            durable_window: Duration::from_millis(200),
            max_bytes: 32 * 1024 * 1024,
            max_age: Duration::from_secs(1),
        }
    }
}

/// The open segment of one writer.
#[derive(Debug)]
pub struct SegmentWriter {
    db: Database,
    path: PathBuf,
    id: u64,
    next_seq: u64,
    /// Events committed but not yet durable.
    pending: u64,
    /// Bytes appended (the file grows by about this much).
    bytes: u64,
    opened: Instant,
    window_start: Instant,
}

/// What a segment stores: an event, or encodings made ahead of time by the producer (one
/// event's, or a batch's).
pub trait Encodable {
    /// Hand each event's encoding to `store`, in order; an encoding that has to be made now is
    /// written into `scratch`. Stops at `store`'s first error.
    fn each_encoded(
        &self,
        scratch: &mut Vec<u8>,
        store: &mut dyn FnMut(&[u8]) -> Result<(), SegmentError>,
    ) -> Result<(), SegmentError>;
}

impl Encodable for Event {
    fn each_encoded(
        &self,
        scratch: &mut Vec<u8>,
        store: &mut dyn FnMut(&[u8]) -> Result<(), SegmentError>,
    ) -> Result<(), SegmentError> {
        scratch.clear();
        codec::encode(self, scratch);
        store(scratch)
    }
}

impl Encodable for codec::Encoded {
    fn each_encoded(
        &self,
        _: &mut Vec<u8>,
        store: &mut dyn FnMut(&[u8]) -> Result<(), SegmentError>,
    ) -> Result<(), SegmentError> {
        store(self.as_bytes())
    }
}

impl Encodable for codec::EncodedBatch {
    fn each_encoded(
        &self,
        _: &mut Vec<u8>,
        store: &mut dyn FnMut(&[u8]) -> Result<(), SegmentError>,
    ) -> Result<(), SegmentError> {
        self.iter().try_for_each(store)
    }
}

/// A sealed segment ready for the flusher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub id: u64,
    pub path: PathBuf,
    pub events: u64,
}

fn file_name(id: u64, suffix: &str) -> String {
    format!("{id:020}.{suffix}")
}

impl SegmentWriter {
    /// Create segment `id` in `dir`.
    pub fn create(dir: &Path, id: u64) -> Result<Self, SegmentError> {
        let path = dir.join(file_name(id, OPEN_SUFFIX));
        let db = Database::create(&path).map_err(|e| SegmentError::db(&path, e))?;
        let mut txn = db.begin_write().map_err(|e| SegmentError::db(&path, e))?;
        txn.set_two_phase_commit(true);
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| SegmentError::db(&path, e))?;
            meta.insert("segment_id", id)
                .map_err(|e| SegmentError::db(&path, e))?;
            txn.open_table(EVENTS)
                .map_err(|e| SegmentError::db(&path, e))?;
        }
        txn.commit().map_err(|e| SegmentError::db(&path, e))?;
        let now = Instant::now();
        Ok(Self {
            db,
            path,
            id,
            next_seq: 0,
            pending: 0,
            bytes: 0,
            opened: now,
            window_start: now,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Events appended so far.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// Append `events` in one non-durable commit (durable when `durable`). Returns how many
    /// events became durable with this call (0 for a non-durable commit).
    pub fn append<T: Encodable>(
        &mut self,
        events: &[T],
        durable: bool,
    ) -> Result<u64, SegmentError> {
        let path = &self.path;
        let first_seq = self.next_seq;
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| SegmentError::db(path, e))?;
        let durability = if durable {
            txn.set_two_phase_commit(true);
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability)
            .map_err(|e| SegmentError::db(path, e))?;
        {
            let mut table = txn
                .open_table(EVENTS)
                .map_err(|e| SegmentError::db(path, e))?;
            let mut buf = Vec::with_capacity(512);
            let (next_seq, bytes) = (&mut self.next_seq, &mut self.bytes);
            let mut store = |encoded: &[u8]| {
                table
                    .insert(*next_seq, encoded)
                    .map_err(|e| SegmentError::db(path, e))?;
                *next_seq += 1;
                *bytes += encoded.len() as u64 + 16;
                Ok(())
            };
            for event in events {
                event.each_encoded(&mut buf, &mut store)?;
            }
        }
        txn.commit().map_err(|e| SegmentError::db(path, e))?;
        self.pending += self.next_seq - first_seq;
        if durable {
            Ok(self.mark_durable())
        } else {
            Ok(0)
        }
    }

    /// Append `bytes` as the next entry as they are (tests write damaged entries with it).
    #[cfg(test)]
    pub(crate) fn append_bytes(&mut self, bytes: &[u8]) -> Result<(), SegmentError> {
        let path = &self.path;
        let txn = self
            .db
            .begin_write()
            .map_err(|e| SegmentError::db(path, e))?;
        {
            let mut table = txn
                .open_table(EVENTS)
                .map_err(|e| SegmentError::db(path, e))?;
            table
                .insert(self.next_seq, bytes)
                .map_err(|e| SegmentError::db(path, e))?;
        }
        txn.commit().map_err(|e| SegmentError::db(path, e))?;
        self.next_seq += 1;
        Ok(())
    }

    fn mark_durable(&mut self) -> u64 {
        self.window_start = Instant::now();
        std::mem::take(&mut self.pending)
    }

    /// Whether the durability window has run out with events still non-durable.
    pub fn window_elapsed(&self, policy: &SegmentPolicy) -> bool {
        self.pending > 0 && self.window_start.elapsed() >= policy.durable_window
    }

    /// When the current window ends (the writer waits for events at most until then).
    pub fn window_deadline(&self, policy: &SegmentPolicy) -> Instant {
        self.window_start + policy.durable_window
    }

    /// When the writer must look at this segment again with no new event: the end of the
    /// durable window while appended events wait for it, else the rotation age. (Waking at
    /// the past window deadline instead would spin every millisecond until rotation.)
    pub fn wake_deadline(&self, policy: &SegmentPolicy) -> Instant {
        if self.pending > 0 {
            self.window_deadline(policy)
        } else {
            self.opened + policy.max_age
        }
    }

    /// Make every appended event durable. Returns how many became durable.
    pub fn sync(&mut self) -> Result<u64, SegmentError> {
        if self.pending == 0 {
            return Ok(0);
        }
        self.append::<Event>(&[], true)
    }

    /// Whether the policy says this segment should be sealed now.
    pub fn should_rotate(&self, policy: &SegmentPolicy) -> bool {
        !self.is_empty()
            && (self.bytes >= policy.max_bytes || self.opened.elapsed() >= policy.max_age)
    }

    /// Make everything durable, close the file and rename it sealed.
    pub fn seal(mut self) -> Result<(Sealed, u64), SegmentError> {
        let durable = self.sync()?;
        let Self {
            db,
            path,
            id,
            next_seq,
            ..
        } = self;
        drop(db);
        let sealed = path.with_extension(SEALED_SUFFIX);
        fs::rename(&path, &sealed).map_err(|e| SegmentError::io(&path, e))?;
        Ok((
            Sealed {
                id,
                path: sealed,
                events: next_seq,
            },
            durable,
        ))
    }
}

/// One entry of a segment: its sequence number and the event, or why it did not decode.
pub type Entry = (u64, Result<Event, codec::DecodeError>);

/// Every event of a sealed segment in sequence order, with its segment id. Entries that do not
/// decode are returned as errors with their sequence number (counted by the flusher, never
/// silently skipped).
pub fn read_sealed(path: &Path) -> Result<(u64, Vec<Entry>), SegmentError> {
    let segment = SealedSegment::open(path)?;
    let mut out = Vec::new();
    segment.for_each(|seq, entry| {
        out.push((seq, entry.map(|v| v.to_event())));
        Ok::<_, SegmentError>(())
    })?;
    Ok((segment.id, out))
}

/// A sealed segment open for reading. [`Self::for_each`] streams its entries decoded in place,
/// so flushing one holds a page of it at a time instead of every event as an owned [`Event`].
#[derive(Debug)]
pub struct SealedSegment {
    db: Database,
    path: PathBuf,
    id: u64,
    entries: u64,
}

impl SealedSegment {
    pub fn open(path: &Path) -> Result<Self, SegmentError> {
        let db = Database::open(path).map_err(|e| SegmentError::db(path, e))?;
        let txn = db.begin_read().map_err(|e| SegmentError::db(path, e))?;
        let meta = txn
            .open_table(META)
            .map_err(|e| SegmentError::db(path, e))?;
        let id = meta
            .get("segment_id")
            .map_err(|e| SegmentError::db(path, e))?
            .map(|g| g.value())
            .ok_or_else(|| SegmentError::NoId {
                path: path.to_owned(),
            })?;
        let entries = txn
            .open_table(EVENTS)
            .and_then(|t| Ok(t.len()?))
            .map_err(|e| SegmentError::db(path, e))?;
        drop(meta);
        drop(txn);
        Ok(Self {
            db,
            path: path.to_owned(),
            id,
            entries,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Entries in the segment, decodable or not.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Call `f` with every entry in sequence order: its sequence number and the event read in
    /// place, or why it does not decode. Stops at the first error `f` returns.
    pub fn for_each<E: From<SegmentError>>(
        &self,
        mut f: impl FnMut(u64, Result<codec::EventView<'_>, codec::DecodeError>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut entries = self.iter()?;
        while let Some(r) = entries.next_with(&mut f) {
            r??;
        }
        Ok(())
    }

    /// The entries in sequence order, one at a time.
    pub fn iter(&self) -> Result<Entries<'_>, SegmentError> {
        let path = &self.path;
        let txn = self
            .db
            .begin_read()
            .map_err(|e| SegmentError::db(path, e))?;
        let table = txn
            .open_table(EVENTS)
            .map_err(|e| SegmentError::db(path, e))?;
        let range = table
            .range::<u64>(..)
            .map_err(|e| SegmentError::db(path, e))?;
        Ok(Entries {
            range,
            _table: table,
            _txn: txn,
            path,
        })
    }
}

/// A sealed segment's entries in sequence order ([`SealedSegment::iter`]).
pub struct Entries<'s> {
    range: redb::Range<'static, u64, &'static [u8]>,
    _table: redb::ReadOnlyTable<u64, &'static [u8]>,
    _txn: redb::ReadTransaction,
    path: &'s Path,
}

impl std::fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Entries<'_> {
    /// Call `f` with the next entry (its sequence number and the event read in place, valid
    /// only during the call); `None` after the last.
    pub fn next_with<R>(
        &mut self,
        f: impl FnOnce(u64, Result<codec::EventView<'_>, codec::DecodeError>) -> R,
    ) -> Option<Result<R, SegmentError>> {
        Some(match self.range.next()? {
            Ok((seq, bytes)) => Ok(f(seq.value(), codec::decode_view(bytes.value()))),
            Err(e) => Err(SegmentError::db(self.path, e)),
        })
    }
}

/// What a directory of segments holds after a restart.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Sealed segments waiting for the flusher, oldest first (crashed writers' open segments
    /// included, sealed now).
    pub sealed: Vec<Sealed>,
    /// Highest segment id present, so new ids never reuse one.
    pub max_id: u64,
}

/// Seal segments a crashed writer left open and list every sealed one. Call before any writer
/// starts (the data directory lock guarantees no other process is writing).
pub fn recover(dir: &Path) -> Result<Recovered, SegmentError> {
    let mut found = Recovered::default();
    let entries = fs::read_dir(dir).map_err(|e| SegmentError::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let ext = path.extension().and_then(|e| e.to_str());
        let sealed_path = match ext {
            Some(OPEN_SUFFIX) => {
                // Opening repairs the file back to its last durable commit.
                drop(Database::open(&path).map_err(|e| SegmentError::db(&path, e))?);
                let sealed = path.with_extension(SEALED_SUFFIX);
                fs::rename(&path, &sealed).map_err(|e| SegmentError::io(&path, e))?;
                sealed
            }
            Some(SEALED_SUFFIX) => path,
            _ => continue,
        };
        found.max_id = found.max_id.max(id);
        found.sealed.push(Sealed {
            id,
            path: sealed_path,
            events: 0,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Severity;

    fn event(i: u64) -> Event {
        let mut e = Event::new(i as i64, "d", "s", "k", Severity::Info);
        e.push_field("n", &i.to_string()).unwrap();
        e
    }

    #[test]
    fn append_seal_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 7).unwrap();
        let batch: Vec<Event> = (0..10).map(event).collect();
        assert_eq!(w.append(&batch[..4], false).unwrap(), 0);
        assert_eq!(w.append(&batch[4..], true).unwrap(), 10);
        let (sealed, durable) = w.seal().unwrap();
        assert_eq!(durable, 0);
        assert_eq!(sealed.events, 10);
        let (id, events) = read_sealed(&sealed.path).unwrap();
        assert_eq!(id, 7);
        let got: Vec<Event> = events.into_iter().map(|(_, e)| e.unwrap()).collect();
        assert_eq!(got, batch);
    }

    #[test]
    fn an_idle_durable_segment_wakes_its_writer_at_rotation_not_every_millisecond() {
        let dir = tempfile::tempdir().unwrap();
        let policy = SegmentPolicy {
            durable_window: Duration::from_millis(200),
            max_age: Duration::from_secs(30),
            ..SegmentPolicy::default()
        };
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        w.append(&[event(1)], false).unwrap();
        // Waiting events: wake when their durable window ends.
        assert_eq!(w.wake_deadline(&policy), w.window_deadline(&policy));
        w.sync().unwrap();
        // All durable: nothing to do before the segment is due to rotate.
        assert!(w.wake_deadline(&policy) > Instant::now() + Duration::from_secs(29));
    }

    #[test]
    fn recover_seals_open_segments_and_reports_the_highest_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 3).unwrap();
        w.append(&[event(1)], true).unwrap();
        drop(w);
        let (s, _) = SegmentWriter::create(dir.path(), 9)
            .unwrap()
            .seal()
            .unwrap();
        fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let found = recover(dir.path()).unwrap();
        assert_eq!(found.max_id, 9);
        assert_eq!(found.sealed.len(), 2);
        assert_eq!(found.sealed[1].path, s.path);
        let (_, events) = read_sealed(&found.sealed[0].path).unwrap();
        assert_eq!(events.len(), 1);
    }
}
