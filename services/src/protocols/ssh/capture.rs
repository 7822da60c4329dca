//! Files an attacker uploads (over SFTP or scp), kept within a per-connection byte budget,
//! hashed, stored in quarantine and reported as `upload` events.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use decnet_store::Severity;
use sha2::{Digest, Sha256};

use crate::{
    memory::{self, Held},
    session::Step,
};

/// Default bytes of uploads kept per connection.
pub const DEFAULT_UPLOAD_LIMIT: usize = 64 * 1024 * 1024;
/// Longest path kept in an event.
const MAX_PATH: usize = 1024;

/// How many upload bytes one connection may still keep, shared by all its channels.
#[derive(Debug, Clone)]
pub struct Budget {
    left: Arc<AtomicUsize>,
}

impl Budget {
    pub fn new(limit: usize) -> Self {
        Self {
            left: Arc::new(AtomicUsize::new(limit)),
        }
    }

    /// Reserve up to `want` bytes; returns how many were granted.
    pub fn take(&self, want: usize) -> usize {
        // One connection's channels run on one task: load-then-store cannot race.
        let left = self.left.load(Ordering::Relaxed);
        let granted = want.min(left);
        self.left.store(left - granted, Ordering::Relaxed);
        granted
    }
}

/// One file being received.
#[derive(Debug)]
pub struct Upload {
    pub path: String,
    kept: Vec<u8>,
    /// Highest byte offset written (the file's size as the client sees it).
    size: u64,
    /// Bytes the client actually sent for this file.
    received: u64,
    truncated: bool,
    /// What `kept` holds of the process's memory pool.
    held: Held,
}

/// Zero-filled gap a write may leave past the kept bytes, beyond what the client has sent:
/// clients pipeline their writes a few hundred KiB ahead, and a write far past the end once
/// made one 100-byte request allocate the connection's whole upload allowance in zeros.
const MAX_HOLE: u64 = 1 << 20;

impl Upload {
    pub fn new(path: &str) -> Self {
        Self::in_pool(path, memory::process_pool())
    }

    /// An upload whose kept bytes draw on `pool`.
    pub fn in_pool(path: &str, pool: &'static memory::MemoryPool) -> Self {
        Self {
            path: path.chars().take(MAX_PATH).collect(),
            kept: Vec::new(),
            size: 0,
            received: 0,
            truncated: false,
            held: pool.hold(),
        }
    }

    /// Place `data` at `offset`, keeping what the budget allows.
    pub fn write(&mut self, offset: u64, data: &[u8], budget: &Budget) {
        let end = offset.saturating_add(data.len() as u64);
        self.size = self.size.max(end);
        self.received = self.received.saturating_add(data.len() as u64);
        let hole = offset.saturating_sub(self.kept.len() as u64);
        let Ok(start) = usize::try_from(offset) else {
            self.truncated = true;
            return;
        };
        if hole > self.received.saturating_add(MAX_HOLE) {
            self.truncated = true;
            return;
        }
        let want_end = start.saturating_add(data.len());
        if want_end > self.kept.len() {
            // What the process can hold (see `memory`), then the connection's allowance for
            // what that leaves: bytes the pool refuses are not taken from the allowance.
            let room = memory::room(&mut self.kept, want_end, &mut self.held, usize::MAX);
            let new_len = self.kept.len() + budget.take(room - self.kept.len());
            if new_len < want_end {
                self.truncated = true;
            }
            self.kept.resize(new_len, 0);
        }
        if start < self.kept.len() {
            let n = (self.kept.len() - start).min(data.len());
            self.kept[start..start + n].copy_from_slice(&data[..n]);
        }
    }

    /// The file's size as written so far (kept or not).
    pub fn written(&self) -> u64 {
        self.size
    }

    /// The bytes kept so far.
    pub fn data(&self) -> &[u8] {
        &self.kept
    }

    /// Hash, store (when quarantine is on) and report the file.
    pub fn finish(self, method: &str, quarantine: bool, step: &mut Step) -> Vec<u8> {
        let sha = hex(&Sha256::digest(&self.kept));
        let stored_as = if quarantine {
            sha.clone()
        } else {
            String::new()
        };
        let truncated = self.truncated || self.size > self.kept.len() as u64;
        step.event(
            "upload",
            Severity::Warning,
            &[
                ("path", &self.path),
                ("size", &self.size.to_string()),
                ("sha256", &sha),
                ("stored_as", &stored_as),
                ("truncated", if truncated { "true" } else { "false" }),
                ("method", method),
            ],
        );
        if quarantine {
            step.store(&sha, self.kept.clone());
        }
        self.kept
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_keep_what_the_process_pool_grants_and_give_it_back() {
        let pool: &'static memory::MemoryPool = Box::leak(Box::new(memory::MemoryPool::new(100)));
        let budget = Budget::new(1 << 20);
        let mut a = Upload::in_pool("/a", pool);
        a.write(0, &[1; 60], &budget);
        let mut b = Upload::in_pool("/b", pool);
        b.write(0, &[2; 60], &budget);
        assert_eq!((a.data().len(), b.data().len()), (60, 40));
        let mut step = Step::default();
        b.finish("sftp", false, &mut step);
        assert_eq!(step.events[0].field("truncated"), Some("true"));
        assert_eq!(pool.free(), 40);
        drop(a);
        assert_eq!(pool.free(), 100);
    }

    #[test]
    fn writes_land_at_offsets_within_the_budget() {
        let budget = Budget::new(10);
        let mut u = Upload::new("/tmp/x");
        u.write(4, b"abcd", &budget);
        u.write(0, b"0123", &budget);
        assert_eq!(u.data(), b"0123abcd");
        u.write(8, b"WXYZ", &budget);
        assert_eq!(u.data(), b"0123abcdWX");
        let mut step = Step::default();
        let kept = u.finish("sftp", true, &mut step);
        assert_eq!(kept, b"0123abcdWX");
        let ev = &step.events[0];
        assert_eq!(ev.field("size"), Some("12"));
        assert_eq!(ev.field("truncated"), Some("true"));
        assert_eq!(ev.field("method"), Some("sftp"));
        assert_eq!(
            step.artifacts[0].name,
            ev.field("sha256").unwrap_or_default()
        );
        assert_eq!(budget.take(5), 0);
    }

    /// One byte at a far offset keeps nothing (and allocates nothing); the reported size is
    /// still the client's.
    #[test]
    fn a_write_far_past_the_end_is_not_zero_filled() {
        let budget = Budget::new(64 << 20);
        let mut u = Upload::new("/tmp/sparse");
        u.write(1 << 40, b"x", &budget);
        assert!(u.data().is_empty());
        u.write(0, b"head", &budget);
        // A modest hole after data (pipelined writes arriving out of order) is kept.
        u.write(4 + 65_536, b"tail", &budget);
        assert_eq!(u.data().len(), 4 + 65_536 + 4);
        let mut step = Step::default();
        u.finish("sftp", false, &mut step);
        let ev = &step.events[0];
        assert_eq!(
            ev.field("size"),
            Some(((1u64 << 40) + 1).to_string().as_str())
        );
        assert_eq!(ev.field("truncated"), Some("true"));
        assert!(budget.take(1) > 0, "the allowance was not spent on zeros");
    }
}
