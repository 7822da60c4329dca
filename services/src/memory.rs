//! One byte budget for the large buffers of all of a service process's connections.
//!
//! Each connection's buffers are capped on their own (a 16 MiB FTP upload, 64 MiB of SSH
//! uploads, a 10 MB mail), but a decky's container has a memory limit of a few dozen MiB: three
//! FTP uploads at once from one attacker would have had it killed, and a service that dies
//! under load tells the attacker what it is. Buffers that can grow large therefore also draw
//! from this process-wide pool; what it cannot grant is received and counted as usual but not
//! kept (the file is reported truncated), exactly as past the per-connection cap.

use std::sync::{
    OnceLock,
    atomic::{AtomicUsize, Ordering},
};

/// The pool when neither the container's memory limit nor `DECNET_SERVICE_MEMORY_MIB` says
/// otherwise.
pub const DEFAULT_POOL: usize = 256 << 20;

/// Bytes large buffers may hold at once across connections.
#[derive(Debug)]
pub struct MemoryPool {
    free: AtomicUsize,
}

impl MemoryPool {
    pub const fn new(bytes: usize) -> Self {
        Self {
            free: AtomicUsize::new(bytes),
        }
    }

    /// Take up to `want` bytes; returns how many were granted.
    fn take(&self, want: usize) -> usize {
        let mut granted = 0;
        // `fetch_update` retries on a race, so two connections never both get the last bytes.
        let _ = self
            .free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                granted = want.min(free);
                Some(free - granted)
            });
        granted
    }

    fn give_back(&self, bytes: usize) {
        self.free.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Bytes not held by anyone now.
    pub fn free(&self) -> usize {
        self.free.load(Ordering::Acquire)
    }

    /// An empty holding in this pool.
    pub fn hold(&'static self) -> Held {
        Held {
            pool: self,
            bytes: 0,
        }
    }
}

/// Bytes one buffer holds from a pool, given back when dropped.
#[derive(Debug)]
pub struct Held {
    pool: &'static MemoryPool,
    bytes: usize,
}

impl Held {
    /// Hold up to `want` more bytes; returns how many were granted.
    pub fn grow(&mut self, want: usize) -> usize {
        let granted = self.pool.take(want);
        self.bytes += granted;
        granted
    }

    /// Hold `bytes` more if the pool has them all; nothing otherwise.
    pub fn try_grow(&mut self, bytes: usize) -> bool {
        let granted = self.grow(bytes);
        if granted < bytes {
            self.shrink(granted);
            return false;
        }
        true
    }

    /// Give back up to `bytes` of what is held.
    pub fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.pool.give_back(bytes);
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Default for Held {
    /// An empty holding in the process's pool.
    fn default() -> Self {
        process_pool().hold()
    }
}

/// How long `buf` may grow towards `want_len` (at most `limit`) with its capacity paid for by
/// `held`: the capacity is reserved here, doubling as a `Vec` would, and only as far as the
/// pool grants. The caller then extends `buf` up to the returned length.
pub fn room(buf: &mut Vec<u8>, want_len: usize, held: &mut Held, limit: usize) -> usize {
    let want_len = want_len.min(limit);
    if want_len <= buf.capacity() {
        return want_len;
    }
    let target = want_len.max(buf.capacity().saturating_mul(2)).min(limit);
    if target > held.bytes() {
        held.grow(target - held.bytes());
    }
    let paid = held.bytes().min(target);
    if paid > buf.capacity() {
        buf.reserve_exact(paid - buf.len());
    }
    want_len.min(paid.max(buf.len()))
}

/// Append as much of `data` to `buf` as `limit` and the pool allow. False when the pool
/// refused part of what the limit allowed: the caller then keeps nothing more, since a later
/// grant would leave a gap in what it keeps.
pub fn append(buf: &mut Vec<u8>, data: &[u8], held: &mut Held, limit: usize) -> bool {
    let want = buf.len() + data.len().min(limit.saturating_sub(buf.len()));
    let room = room(buf, want, held, limit);
    buf.extend_from_slice(&data[..room - buf.len()]);
    room == want
}

impl Drop for Held {
    fn drop(&mut self) {
        self.pool.give_back(self.bytes);
    }
}

static PROCESS: OnceLock<MemoryPool> = OnceLock::new();

/// This process's pool: sized by [`size_process_pool`] if that ran first, else
/// [`DEFAULT_POOL`].
pub fn process_pool() -> &'static MemoryPool {
    PROCESS.get_or_init(|| MemoryPool::new(DEFAULT_POOL))
}

/// Size this process's pool (call before serving): `DECNET_SERVICE_MEMORY_MIB` if set, else half
/// the container's memory limit (cgroup v2 `memory.max`, then v1), else [`DEFAULT_POOL`].
/// Returns the size chosen, or an error naming a bad `DECNET_SERVICE_MEMORY_MIB`.
pub fn size_process_pool() -> Result<usize, String> {
    let bytes = match std::env::var("DECNET_SERVICE_MEMORY_MIB") {
        Ok(mib) => mib
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|m| *m > 0)
            .and_then(|m| m.checked_mul(1 << 20))
            .ok_or_else(|| {
                format!("DECNET_SERVICE_MEMORY_MIB={mib:?}: expected a positive number of MiB")
            })?,
        Err(_) => container_limit().map_or(DEFAULT_POOL, |limit| limit / 2),
    };
    // A pool already in use keeps its size: the bytes it holds were counted against it.
    Ok(PROCESS.get_or_init(|| MemoryPool::new(bytes)).free())
}

/// The memory limit of this process's cgroup, when it has one.
fn container_limit() -> Option<usize> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| parse_limit(&std::fs::read_to_string(path).ok()?))
}

/// A cgroup limit file's value: `max` (v2) or a near-`i64::MAX` page-rounded number (v1) mean
/// none.
fn parse_limit(text: &str) -> Option<usize> {
    let limit: u64 = text.trim().parse().ok()?;
    (limit < 1 << 50)
        .then(|| usize::try_from(limit).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(bytes: usize) -> &'static MemoryPool {
        Box::leak(Box::new(MemoryPool::new(bytes)))
    }

    #[test]
    fn holdings_share_the_pool_and_give_back_when_dropped() {
        let p = pool(100);
        let mut a = p.hold();
        let mut b = p.hold();
        assert_eq!(a.grow(60), 60);
        assert_eq!(b.grow(60), 40, "only what is left");
        assert_eq!(b.grow(1), 0);
        assert_eq!(p.free(), 0);
        a.shrink(10);
        assert_eq!((a.bytes(), p.free()), (50, 10));
        a.shrink(1000);
        assert_eq!((a.bytes(), p.free()), (0, 60));
        drop(b);
        assert_eq!(p.free(), 100);
        drop(a);
        assert_eq!(p.free(), 100);
    }

    #[test]
    fn racing_holders_never_get_more_than_the_pool() {
        let p = pool(1 << 20);
        let granted: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let mut held = p.hold();
                        for _ in 0..100_000 {
                            held.grow(7);
                        }
                        let bytes = held.bytes();
                        std::mem::forget(held);
                        bytes
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
        });
        assert_eq!(granted, 1 << 20);
        assert_eq!(p.free(), 0);
    }

    #[test]
    fn a_buffer_grows_by_doubling_as_far_as_the_pool_pays() {
        let p = pool(1000);
        let mut held = p.hold();
        let mut buf = Vec::new();
        assert_eq!(room(&mut buf, 100, &mut held, 10_000), 100);
        buf.resize(100, 1);
        assert_eq!(held.bytes(), 100);
        assert!(buf.capacity() <= held.bytes());
        // Doubling: one reservation covers the next few appends.
        assert_eq!(room(&mut buf, 110, &mut held, 10_000), 110);
        assert_eq!(held.bytes(), 200);
        buf.resize(110, 1);
        assert_eq!(room(&mut buf, 190, &mut held, 10_000), 190);
        assert_eq!(held.bytes(), 200);
        buf.resize(190, 1);
        // Past what the pool has left: only as far as it pays.
        assert_eq!(room(&mut buf, 5000, &mut held, 10_000), 1000);
        buf.resize(1000, 1);
        assert_eq!((held.bytes(), p.free()), (1000, 0));
        assert_eq!(room(&mut buf, 1001, &mut held, 10_000), 1000);
        // And never past the buffer's own limit.
        let mut other = p.hold();
        drop(held);
        assert_eq!(room(&mut Vec::new(), 5000, &mut other, 300), 300);
    }

    #[test]
    fn cgroup_limits_read_as_a_limit_or_none() {
        assert_eq!(parse_limit("50331648\n"), Some(48 << 20));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit(""), None);
    }
}
