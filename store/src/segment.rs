//! Segment files: the durable first stop of every event.
//!
//! Each writer thread owns one open segment (a redb file) and appends batches to it, so
//! writers never share a lock. Commits inside a durability window are non-durable; the window
//! ends with a durable, two-phase commit (redb's advice for attacker-controlled data). A segment
//! rotates by size or age: it is sealed (renamed `*.sealed`) and handed to the flusher, which
//! moves it into SQL and deletes it. A segment left open by a crash holds exactly its last
//! durable commit; [`recover`] seals it on the next start.
//!
//! A commit's events are stored as [`block`](crate::block)s (one redb entry for up to 64 KiB
//! of events) rather than one entry each. Segments of the earlier one-entry-per-event format
//! (no `format` in their meta table) are still read, so an upgrade flushes what the previous
//! version left.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use crate::{
    Event,
    block::{self, Block, BlockBuilder},
    codec,
};

/// One entry per event, keyed by sequence: the format before blocks (read only).
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");
/// One entry per block, keyed by the sequence of its first event.
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// Meta key naming the entry format; absent in segments of one entry per event.
const FORMAT_KEY: &str = "format";
const FORMAT_BLOCKS: u64 = 2;
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
    /// A writer that has appended nothing for this long makes what it holds durable without
    /// waiting for the window to end: a burst is durable soon after its last event, while
    /// under steady load the window still bounds how often a writer syncs.
    pub durable_when_quiet: Duration,
    /// Seal a segment once its file reaches this size.
    pub max_bytes: u64,
    /// Seal a segment with events once it is this old, so events reach SQL promptly.
    pub max_age: Duration,
}

impl Default for SegmentPolicy {
    fn default() -> Self {
        Self {
            durable_window: Duration::from_millis(200),
            durable_when_quiet: Duration::from_millis(10),
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
    /// When events were last appended.
    last_append: Instant,
    /// The block being filled (its buffer is kept between commits).
    block: BlockBuilder,
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
            meta.insert(FORMAT_KEY, FORMAT_BLOCKS)
                .map_err(|e| SegmentError::db(&path, e))?;
            txn.open_table(BLOCKS)
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
            last_append: now,
            block: BlockBuilder::default(),
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
                .open_table(BLOCKS)
                .map_err(|e| SegmentError::db(path, e))?;
            let mut buf = Vec::with_capacity(512);
            let (next_seq, bytes, block) = (&mut self.next_seq, &mut self.bytes, &mut self.block);
            block.clear();
            let mut block_first = *next_seq;
            let mut store_block = |block: &mut BlockBuilder, first: u64| {
                table
                    .insert(first, block.bytes())
                    .map_err(|e| SegmentError::db(path, e))?;
                block.clear();
                Ok::<_, SegmentError>(())
            };
            let mut store = |encoded: &[u8]| {
                if block.would_overflow(encoded.len()) {
                    store_block(block, block_first)?;
                    block_first = *next_seq;
                }
                block.push(encoded);
                *next_seq += 1;
                *bytes += encoded.len() as u64 + 2;
                Ok(())
            };
            for event in events {
                event.each_encoded(&mut buf, &mut store)?;
            }
            if !block.is_empty() {
                store_block(block, block_first)?;
            }
        }
        txn.commit().map_err(|e| SegmentError::db(path, e))?;
        self.pending += self.next_seq - first_seq;
        if self.next_seq > first_seq {
            self.last_append = Instant::now();
        }
        if durable {
            Ok(self.mark_durable())
        } else {
            Ok(0)
        }
    }

    /// Append `bytes` as the next event's encoding as they are (tests write undecodable
    /// events with it).
    #[cfg(test)]
    pub(crate) fn append_bytes(&mut self, bytes: &[u8]) -> Result<(), SegmentError> {
        let mut block = BlockBuilder::default();
        block.push(bytes);
        self.append_raw_block(block.bytes(), 1)
    }

    /// Store `bytes` as the next block, claiming `events` sequence numbers (tests write
    /// damaged blocks with it).
    #[cfg(test)]
    pub(crate) fn append_raw_block(
        &mut self,
        bytes: &[u8],
        events: u64,
    ) -> Result<(), SegmentError> {
        let path = &self.path;
        let txn = self
            .db
            .begin_write()
            .map_err(|e| SegmentError::db(path, e))?;
        {
            let mut table = txn
                .open_table(BLOCKS)
                .map_err(|e| SegmentError::db(path, e))?;
            table
                .insert(self.next_seq, bytes)
                .map_err(|e| SegmentError::db(path, e))?;
        }
        txn.commit().map_err(|e| SegmentError::db(path, e))?;
        self.next_seq += events;
        Ok(())
    }

    fn mark_durable(&mut self) -> u64 {
        self.window_start = Instant::now();
        std::mem::take(&mut self.pending)
    }

    /// Whether events are still non-durable and the durability window has run out or nothing
    /// was appended for [`SegmentPolicy::durable_when_quiet`].
    pub fn window_elapsed(&self, policy: &SegmentPolicy) -> bool {
        self.pending > 0
            && (self.window_start.elapsed() >= policy.durable_window
                || self.last_append.elapsed() >= policy.durable_when_quiet)
    }

    /// When the current window ends (the writer waits for events at most until then).
    pub fn window_deadline(&self, policy: &SegmentPolicy) -> Instant {
        self.window_start + policy.durable_window
    }

    /// When the writer must look at this segment again with no new event: while appended
    /// events wait to be durable, the end of the window or of the quiet time, whichever comes
    /// first; else the rotation age. (Waking at the past window deadline instead would spin
    /// every millisecond until rotation.)
    pub fn wake_deadline(&self, policy: &SegmentPolicy) -> Instant {
        if self.pending > 0 {
            self.window_deadline(policy)
                .min(self.last_append + policy.durable_when_quiet)
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
/// so flushing one holds a block of it at a time instead of every event as an owned [`Event`].
#[derive(Debug)]
pub struct SealedSegment {
    db: Database,
    path: PathBuf,
    id: u64,
    entries: u64,
    /// Entries are blocks (else one entry per event: the earlier format).
    blocks: bool,
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
        let format = meta
            .get(FORMAT_KEY)
            .map_err(|e| SegmentError::db(path, e))?
            .map(|g| g.value());
        let blocks = format == Some(FORMAT_BLOCKS);
        let entries = if blocks {
            // Sequences are consecutive from 0: the last block's first sequence plus its
            // entries.
            let table = txn
                .open_table(BLOCKS)
                .map_err(|e| SegmentError::db(path, e))?;
            table
                .last()
                .map_err(|e| SegmentError::db(path, e))?
                .map_or(0, |(k, v)| {
                    // A damaged key near u64::MAX must not overflow (a debug build panics).
                    k.value()
                        .saturating_add(u64::from(block::entry_count(v.value())))
                })
        } else {
            txn.open_table(EVENTS)
                .and_then(|t| Ok(t.len()?))
                .map_err(|e| SegmentError::db(path, e))?
        };
        drop(meta);
        drop(txn);
        Ok(Self {
            db,
            path: path.to_owned(),
            id,
            entries,
            blocks,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Events in the segment, decodable or not.
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
            .open_table(if self.blocks { BLOCKS } else { EVENTS })
            .map_err(|e| SegmentError::db(path, e))?;
        let range = table
            .range::<u64>(..)
            .map_err(|e| SegmentError::db(path, e))?;
        Ok(Entries {
            range,
            blocks: self.blocks,
            current: None,
            _table: table,
            _txn: txn,
            path,
        })
    }
}

/// A sealed segment's entries in sequence order ([`SealedSegment::iter`]).
pub struct Entries<'s> {
    range: redb::Range<'static, u64, &'static [u8]>,
    blocks: bool,
    /// The block being read.
    current: Option<CurrentBlock>,
    _table: redb::ReadOnlyTable<u64, &'static [u8]>,
    _txn: redb::ReadTransaction,
    path: &'s Path,
}

struct CurrentBlock {
    bytes: redb::AccessGuard<'static, &'static [u8]>,
    next_seq: u64,
    cursor: block::Cursor,
    remaining: u32,
    /// Why the block's framing is broken: each of its entries is reported with it.
    damaged: Option<codec::DecodeError>,
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
        loop {
            if let Some(current) = &mut self.current
                && current.remaining > 0
            {
                let seq = current.next_seq;
                current.next_seq = current.next_seq.saturating_add(1);
                current.remaining -= 1;
                if let Some(e) = &current.damaged {
                    return Some(Ok(f(seq, Err(e.clone()))));
                }
                let bytes = current.bytes.value();
                let mut block = Block::resume(bytes, current.cursor);
                let entry = block.next();
                current.cursor = block.cursor();
                return Some(Ok(match entry {
                    Some(encoded) => f(seq, codec::decode_view(encoded)),
                    None => f(seq, Err(codec::DecodeError::Truncated("block entry"))),
                }));
            }
            self.current = None;
            let (key, value) = match self.range.next()? {
                Ok(kv) => kv,
                Err(e) => return Some(Err(SegmentError::db(self.path, e))),
            };
            if !self.blocks {
                return Some(Ok(f(key.value(), codec::decode_view(value.value()))));
            }
            let (cursor, remaining, damaged) = match Block::parse(value.value()) {
                Ok(b) => (b.cursor(), b.remaining(), None),
                Err(d) => (block::Cursor::default(), d.entries, Some(d.error)),
            };
            self.current = Some(CurrentBlock {
                bytes: value,
                next_seq: key.value(),
                cursor,
                remaining,
                damaged,
            });
        }
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
        // Waiting events: wake when the writer has been quiet long enough.
        assert_eq!(
            w.wake_deadline(&policy),
            w.last_append + policy.durable_when_quiet
        );
        let patient = SegmentPolicy {
            durable_when_quiet: Duration::from_secs(10),
            ..policy.clone()
        };
        // … or when their window ends, if that comes first.
        assert_eq!(w.wake_deadline(&patient), w.window_deadline(&patient));
        assert!(!w.window_elapsed(&patient));
        std::thread::sleep(policy.durable_when_quiet);
        assert!(w.window_elapsed(&policy));
        assert!(!w.window_elapsed(&patient));
        w.sync().unwrap();
        // All durable: nothing to do before the segment is due to rotate.
        assert!(w.wake_deadline(&policy) > Instant::now() + Duration::from_secs(29));
    }

    #[test]
    fn a_commit_larger_than_a_block_spans_several_with_consecutive_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        let batch: Vec<Event> = (0..3_000)
            .map(|i| {
                let mut e = event(i);
                e.set_raw(&[b'x'; 300]);
                e
            })
            .collect();
        w.append(&batch[..10], false).unwrap();
        w.append(&batch[10..], true).unwrap();
        let (sealed, _) = w.seal().unwrap();
        let segment = SealedSegment::open(&sealed.path).unwrap();
        assert_eq!(segment.entries(), 3_000);
        // More than one block per commit: the 2,990-event commit is over 256 KiB.
        let txn = segment.db.begin_read().unwrap();
        let blocks = txn.open_table(BLOCKS).unwrap().len().unwrap();
        assert!(blocks >= 4, "{blocks} blocks");
        drop(txn);
        drop(segment);
        let (_, events) = read_sealed(&sealed.path).unwrap();
        let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (0..3_000).collect::<Vec<u64>>());
        let got: Vec<Event> = events.into_iter().map(|(_, e)| e.unwrap()).collect();
        assert_eq!(got, batch);
    }

    #[test]
    fn a_damaged_block_reports_each_of_its_entries_and_later_blocks_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        w.append(&[event(0), event(1)], false).unwrap();
        // Claims 3 entries, holds one and a half.
        w.append_raw_block(&[1, 3, 0, 0, 0, 2, b'h', b'i', 5, b'x'], 3)
            .unwrap();
        w.append(&[event(5)], true).unwrap();
        let (sealed, _) = w.seal().unwrap();
        assert_eq!(SealedSegment::open(&sealed.path).unwrap().entries(), 6);
        let (_, entries) = read_sealed(&sealed.path).unwrap();
        let shape: Vec<(u64, bool)> = entries.iter().map(|(s, e)| (*s, e.is_ok())).collect();
        assert_eq!(
            shape,
            [
                (0, true),
                (1, true),
                (2, false),
                (3, false),
                (4, false),
                (5, true)
            ]
        );
        assert_eq!(
            entries[2].1,
            Err(codec::DecodeError::Truncated("block entry"))
        );
        assert_eq!(entries[5].1.as_ref().unwrap(), &event(5));
    }

    #[test]
    fn segments_of_one_entry_per_event_left_by_an_earlier_version_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(4, SEALED_SUFFIX));
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("segment_id", 4).unwrap();
                let mut events = txn.open_table(EVENTS).unwrap();
                for i in 0..3 {
                    events
                        .insert(i, codec::to_bytes(&event(i)).as_slice())
                        .unwrap();
                }
                events.insert(3, &[9u8, 9][..]).unwrap();
            }
            txn.commit().unwrap();
        }
        assert_eq!(SealedSegment::open(&path).unwrap().entries(), 4);
        let (id, entries) = read_sealed(&path).unwrap();
        assert_eq!(id, 4);
        assert_eq!(entries.len(), 4);
        for (i, (seq, e)) in entries.iter().take(3).enumerate() {
            assert_eq!(*seq, i as u64);
            assert_eq!(e.as_ref().unwrap(), &event(i as u64));
        }
        assert_eq!(entries[3].1, Err(codec::DecodeError::Version(9)));
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
