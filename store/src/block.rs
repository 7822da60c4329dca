//! Blocks: the encodings of consecutive events stored as one segment entry.
//!
//! A segment keyed one redb entry per event spent most of a writer's time in B-tree inserts
//! and in rewriting the pages each insert touched (4.8 µs of CPU per 400-byte syslog message).
//! A writer now packs the events of a commit into blocks of up to [`BLOCK_TARGET_BYTES`],
//! each stored under the sequence number of its first event; event `i` of a block has
//! sequence `key + i`, so the SQL key (segment id, sequence) is unchanged.
//!
//! Layout: `1, count u32 LE, (len varint, encoding)*count`. Blocks are read back after a crash
//! and hold attacker-controlled bytes, so [`Block::parse`] checks every length against what
//! remains and never panics; a block whose framing does not add up reports each of its entries
//! as undecodable (counted by the flusher, never skipped silently).

use crate::codec::{DecodeError, Reader, put_varint};

const VERSION: u8 = 1;
const HEADER: usize = 5;
/// A writer starts a new block once the current one holds this many bytes.
pub const BLOCK_TARGET_BYTES: usize = 64 * 1024 - 256;

/// A block being filled by a writer.
#[derive(Debug, Clone)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    count: u32,
}

impl Default for BlockBuilder {
    fn default() -> Self {
        let mut buf = Vec::with_capacity(BLOCK_TARGET_BYTES + 4096);
        buf.extend_from_slice(&[VERSION, 0, 0, 0, 0]);
        Self { buf, count: 0 }
    }
}

impl BlockBuilder {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `next` bytes more would take the block past [`BLOCK_TARGET_BYTES`] (a single
    /// larger encoding still gets a block of its own).
    pub fn would_overflow(&self, next: usize) -> bool {
        !self.is_empty() && self.buf.len() + next + 10 > BLOCK_TARGET_BYTES
    }

    /// Append one encoding as the next entry.
    pub fn push(&mut self, encoding: &[u8]) {
        put_varint(encoding.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(encoding);
        self.count += 1;
    }

    /// The block's bytes, ready to store.
    pub fn bytes(&mut self) -> &[u8] {
        self.buf[1..HEADER].copy_from_slice(&self.count.to_le_bytes());
        &self.buf
    }

    /// Empty the block, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.truncate(HEADER);
        self.count = 0;
    }
}

/// A stored block read back: its entries, or why its framing is broken.
#[derive(Debug, Clone)]
pub struct Block<'a> {
    bytes: &'a [u8],
    cursor: Cursor,
}

/// Where a reader is in a block: kept by a reader that holds the block's bytes behind a guard
/// and reads one entry per call ([`Block::resume`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pos: usize,
    remaining: u32,
}

/// A block whose framing is broken, and how many entries it claims (at least one, at most
/// one per byte, so a damaged count cannot make a reader report billions of entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedBlock {
    pub entries: u32,
    pub error: DecodeError,
}

impl<'a> Block<'a> {
    /// Check the whole framing of `bytes` (every length, nothing left over) before any entry is
    /// handed out, so an entry is either read from a sound block or reported damaged.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DamagedBlock> {
        let claimed = bytes
            .get(1..HEADER)
            .and_then(|c| c.try_into().ok())
            .map_or(1, u32::from_le_bytes);
        let damaged = |error| DamagedBlock {
            entries: claimed.clamp(1, u32::try_from(bytes.len()).unwrap_or(u32::MAX).max(1)),
            error,
        };
        match bytes.first() {
            None => return Err(damaged(DecodeError::Truncated("block header"))),
            Some(&VERSION) => {}
            Some(&v) => return Err(damaged(DecodeError::Version(v))),
        }
        if bytes.len() < HEADER {
            return Err(damaged(DecodeError::Truncated("block header")));
        }
        let block = Self {
            bytes,
            cursor: Cursor {
                pos: HEADER,
                remaining: claimed,
            },
        };
        let mut walk = block.clone();
        for _ in 0..claimed {
            walk.take_entry().map_err(damaged)?;
        }
        if walk.cursor.pos != bytes.len() {
            return Err(damaged(DecodeError::Trailing(
                bytes.len() - walk.cursor.pos,
            )));
        }
        Ok(block)
    }

    /// Go on reading `bytes` (a block [`Self::parse`] accepted) from `cursor`.
    pub fn resume(bytes: &'a [u8], cursor: Cursor) -> Self {
        Self { bytes, cursor }
    }

    /// Where the next entry starts.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Entries not yet read.
    pub fn remaining(&self) -> u32 {
        self.cursor.remaining
    }

    fn take_entry(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = self
            .bytes
            .get(self.cursor.pos..)
            .ok_or(DecodeError::Truncated("block entry"))?;
        let mut reader = Reader::new(rest);
        let len = reader.varint("block entry length")?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Invalid("block entry length"))?;
        let entry = reader.take(len, "block entry")?;
        self.cursor.pos = self.bytes.len() - reader.remaining();
        self.cursor.remaining = self.cursor.remaining.saturating_sub(1);
        Ok(entry)
    }
}

impl<'a> Iterator for Block<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.cursor.remaining == 0 {
            return None;
        }
        // parse() walked the same framing, so this only fails on a block it refused.
        self.take_entry().ok()
    }
}

/// How many entries a stored block holds, read from its header (a damaged block's claim,
/// bounded as in [`DamagedBlock`]).
pub fn entry_count(bytes: &[u8]) -> u32 {
    match Block::parse(bytes) {
        Ok(b) => b.remaining(),
        Err(d) => d.entries,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn build(entries: &[&[u8]]) -> Vec<u8> {
        let mut b = BlockBuilder::default();
        for e in entries {
            b.push(e);
        }
        b.bytes().to_vec()
    }

    #[test]
    fn entries_come_back_in_order_byte_for_byte() {
        let big = vec![7u8; 300];
        let bytes = build(&[b"a", b"", &big]);
        assert_eq!(&bytes[..5], &[1, 3, 0, 0, 0]);
        assert_eq!(&bytes[5..7], &[1, b'a']);
        assert_eq!(bytes[7], 0);
        assert_eq!(&bytes[8..10], &[0xac, 0x02]); // 300 as a varint
        let got: Vec<&[u8]> = Block::parse(&bytes).unwrap().collect();
        assert_eq!(got, vec![&b"a"[..], &b""[..], &big[..]]);
        assert_eq!(entry_count(&bytes), 3);
    }

    #[test]
    fn a_cleared_builder_starts_an_empty_block() {
        let mut b = BlockBuilder::default();
        b.push(b"xyz");
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.bytes(), &[1, 0, 0, 0, 0]);
        assert_eq!(Block::parse(&[1, 0, 0, 0, 0]).unwrap().count(), 0);
    }

    #[test]
    fn overflow_is_judged_against_the_target_but_never_for_an_empty_block() {
        let mut b = BlockBuilder::default();
        assert!(!b.would_overflow(10 * BLOCK_TARGET_BYTES));
        b.push(&vec![0; BLOCK_TARGET_BYTES - 100]);
        assert!(!b.would_overflow(50));
        assert!(b.would_overflow(100));
    }

    #[test]
    fn damaged_framing_reports_every_claimed_entry() {
        let mut bytes = build(&[b"one", b"two"]);
        // Cut inside the second entry.
        bytes.truncate(bytes.len() - 1);
        let d = Block::parse(&bytes).unwrap_err();
        assert_eq!(d.entries, 2);
        assert_eq!(d.error, DecodeError::Truncated("block entry"));
        // Bytes after the last entry.
        let mut bytes = build(&[b"one"]);
        bytes.push(9);
        assert_eq!(
            Block::parse(&bytes).unwrap_err().error,
            DecodeError::Trailing(1)
        );
        // An unknown version, and a count no block of this size could hold.
        assert_eq!(
            Block::parse(&[2, 1, 0, 0, 0, 0]).unwrap_err(),
            DamagedBlock {
                entries: 1,
                error: DecodeError::Version(2)
            }
        );
        let d = Block::parse(&[1, 0xff, 0xff, 0xff, 0xff, 0]).unwrap_err();
        assert_eq!(d.entries, 6);
        assert_eq!(Block::parse(&[]).unwrap_err().entries, 1);
        assert_eq!(entry_count(&[1, 0xff, 0xff]), 1);
    }

    #[test]
    fn an_endless_length_varint_is_refused() {
        let mut bytes = vec![1, 1, 0, 0, 0];
        bytes.extend_from_slice(&[0xff; 11]);
        assert_eq!(
            Block::parse(&bytes).unwrap_err().error,
            DecodeError::Invalid("block entry length")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(block) = Block::parse(&bytes) {
                let claimed = block.remaining();
                prop_assert_eq!(block.count() as u32, claimed);
            }
            let _ = entry_count(&bytes);
        }

        #[test]
        fn built_blocks_round_trip(
            entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40)
        ) {
            let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            let bytes = build(&refs);
            let got: Vec<&[u8]> = Block::parse(&bytes).unwrap().collect();
            prop_assert_eq!(got, refs);
        }
    }
}
